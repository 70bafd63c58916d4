//! One routed line → the cells of its table's row.
//!
//! The conversion is done here, in Rust, for every warehouse alike, rather
//! than by each database's own casts: the same event gives the same row in
//! SQLite and PostgreSQL, a bad value is reported with the file, line, column
//! and the fix (not as a database error about "invalid input syntax"), and
//! timestamps with an offset are turned into UTC instead of having the offset
//! silently dropped (PostgreSQL's `timestamp` ignores it).

use std::borrow::Cow;
use std::cell::Cell as Guess;
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use logrouter::json::{Key, Skip};
use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::reject::RejectReason;
use crate::schema::{Column, ColumnType, TableSchema};

/// One value of a row, borrowed from the parsed line where it can be.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(Cow<'a, str>),
}

/// Why a line does not fit its table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct RowError {
    pub column: String,
    pub reason: RejectReason,
    pub message: String,
}

/// Converts lines of one table.
///
/// A line is read once, with a serde visitor that follows the table's
/// [`Shape`]: the value of each key a column takes is kept (a [`Raw`],
/// borrowed from the line), a nested object the schema flattens is walked into, and every
/// other value is only checked and skipped, its key counted as drift when
/// it carries a value. No `Value` of the whole line is built: the maps and
/// key strings of every line were most of the loader's time. What the line
/// must be is what `serde_json::Value` accepts (the same deserializer, the
/// same `deserialize_any` path, the same nesting limit), so the router and
/// the loader agree on valid lines.
pub struct RowMaker<'s> {
    table: &'s TableSchema,
    shape: Shape,
}

/// What a table's schema makes of an event's keys: per object, sorted by
/// [`key_order`], the column a key fills or the nested object it descends
/// into.
#[derive(Debug, Default)]
pub struct Shape {
    children: Vec<(String, Slot)>,
    /// Lines of one type nearly always write their keys in one order, so
    /// the lookup first tries the child that followed the previous key
    /// last time (`follow`, by child; `first` for an object's first key)
    /// and searches only when that guess is wrong: one comparison per key
    /// instead of a binary search's several.
    first: Guess<u32>,
    follow: Vec<Guess<u32>>,
    /// Every column below this object: cleared when the object appears
    /// again in a line, as a `Value` keeps only a key's last value.
    columns: Vec<usize>,
}

/// Keys by length, then bytes: most comparisons of a lookup are settled by
/// the lengths alone, without comparing text (the lookup runs for every key
/// of every line).
fn key_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

#[derive(Debug)]
enum Slot {
    Column(usize),
    Object(Shape),
}

impl Shape {
    fn of(table: &TableSchema) -> Self {
        let mut root = Shape::default();
        for (i, c) in table.columns.iter().enumerate() {
            let Some((leaf, parents)) = c.path.split_last() else {
                continue;
            };
            let mut at = &mut root;
            at.columns.push(i);
            for seg in parents {
                let k = match at.children.binary_search_by(|(k, _)| key_order(k, seg)) {
                    Ok(k) => k,
                    Err(k) => {
                        at.children
                            .insert(k, (seg.clone(), Slot::Object(Shape::default())));
                        k
                    }
                };
                at = match &mut at.children[k].1 {
                    Slot::Object(s) => {
                        s.columns.push(i);
                        s
                    }
                    // A schema never flattens into a column's path.
                    Slot::Column(_) => unreachable!("a column's path goes through another column"),
                };
            }
            if let Err(k) = at.children.binary_search_by(|(k, _)| key_order(k, leaf)) {
                at.children.insert(k, (leaf.clone(), Slot::Column(i)));
            }
        }
        root.size_guesses();
        root
    }

    fn size_guesses(&mut self) {
        self.follow = (0..self.children.len()).map(|_| Guess::new(0)).collect();
        for (_, slot) in &mut self.children {
            if let Slot::Object(s) = slot {
                s.size_guesses();
            }
        }
    }

    /// The child for `key`, given the child the previous key of this object
    /// found (`None` for its first key); returns the child's index too, for
    /// the next key's guess.
    fn child(&self, key: &str, previous: Option<usize>) -> Option<(usize, &Slot)> {
        let guess = match previous {
            None => &self.first,
            Some(p) => &self.follow[p],
        };
        let g = guess.get() as usize;
        let i = match self.children.get(g) {
            Some((k, _)) if k == key => g,
            _ => {
                let i = self
                    .children
                    .binary_search_by(|(k, _)| key_order(k, key))
                    .ok()?;
                guess.set(i as u32);
                i
            }
        };
        Some((i, &self.children[i].1))
    }
}

/// Why a line could not be read as an event: JSON it is not (serde_json's
/// error), or JSON that is not an object.
#[derive(Debug)]
pub enum LineError {
    Json(serde_json::Error),
    NotAnObject,
}

impl<'s> RowMaker<'s> {
    pub fn new(table: &'s TableSchema) -> Self {
        Self {
            shape: Shape::of(table),
            table,
        }
    }

    /// Whether the table keeps the whole event in one column (schemaless).
    pub fn whole_line(&self) -> bool {
        self.table.columns.iter().all(|c| c.path.is_empty())
    }

    /// Reads `line` into `values` (one per column, `None` when absent) and
    /// the paths of fields the schema lacks into `unknown`.
    pub fn read<'l>(
        &self,
        line: &'l str,
        values: &mut Vec<Option<Raw<'l>>>,
        unknown: &mut Vec<String>,
    ) -> Result<(), LineError> {
        values.clear();
        values.resize(self.table.columns.len(), None);
        unknown.clear();
        let mut de = serde_json::Deserializer::from_str(line);
        let mut path = String::new();
        let object = RootSeed(ObjectSeed {
            shape: &self.shape,
            values,
            unknown,
            path: &mut path,
        })
        .deserialize(&mut de)
        .map_err(LineError::Json)?;
        de.end().map_err(LineError::Json)?;
        if object {
            Ok(())
        } else {
            Err(LineError::NotAnObject)
        }
    }

    /// The cells of a line for the table's own columns, in order, from what
    /// [`RowMaker::read`] found (`values`), or for a schemaless table the
    /// line itself; the standard columns are the caller's.
    pub fn cells<'v>(
        &self,
        line: &'v str,
        values: &'v [Option<Raw<'v>>],
        out: &mut Vec<Cell<'v>>,
    ) -> Result<(), RowError> {
        out.clear();
        for (i, c) in self.table.columns.iter().enumerate() {
            if c.path.is_empty() {
                // The whole event (schemaless table): the line as routed.
                if line.contains("\\u0000") {
                    return Err(nul(c));
                }
                out.push(Cell::Text(Cow::Borrowed(line)));
                continue;
            }
            out.push(cell(c, values.get(i).and_then(Option::as_ref))?);
        }
        Ok(())
    }
}

/// The root of a line: an object (`true`), or any other value, checked and
/// skipped (`false`).
struct RootSeed<'a, 'de>(ObjectSeed<'a, 'de>);

impl<'de> DeserializeSeed<'de> for RootSeed<'_, 'de> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RootSeed<'_, 'de> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        self.0.visit_map(map).map(|()| true)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(false)
    }
    logrouter::accept_scalars!(bool, false);
}

/// An object the schema describes (the root, or one it flattens).
struct ObjectSeed<'a, 'de> {
    shape: &'a Shape,
    values: &'a mut Vec<Option<Raw<'de>>>,
    unknown: &'a mut Vec<String>,
    path: &'a mut String,
}

impl<'de> ObjectSeed<'_, 'de> {
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut previous = None;
        while let Some(key) = map.next_key_seed(Key)? {
            let found = self.shape.child(&key, previous);
            if let Some((i, _)) = found {
                previous = Some(i);
            }
            match found.map(|(_, slot)| slot) {
                // A later duplicate wins, as in a `Value`.
                Some(Slot::Column(i)) => self.values[*i] = Some(map.next_value_seed(RawSeed)?),
                Some(Slot::Object(shape)) => {
                    let len = self.path.len();
                    push_segment(self.path, &key);
                    // A key seen again replaces what it held before.
                    for &i in &shape.columns {
                        self.values[i] = None;
                    }
                    let below = format!("{}/", self.path);
                    self.unknown.retain(|p| !p.starts_with(&below));
                    map.next_value_seed(Nested(ObjectSeed {
                        shape,
                        values: &mut *self.values,
                        unknown: &mut *self.unknown,
                        path: &mut *self.path,
                    }))?;
                    self.path.truncate(len);
                }
                None => {
                    if map.next_value_seed(SkipCounting)?
                        && self.unknown.len() < crate::drift::MAX_DRIFT_PATHS
                    {
                        let len = self.path.len();
                        push_segment(self.path, &key);
                        self.unknown.push(crate::drift::bounded_path(self.path));
                        self.path.truncate(len);
                    }
                }
            }
        }
        Ok(())
    }
}

/// A value where the schema has a nested object: walked into when it is
/// one; anything else is checked and leaves the object's columns empty.
struct Nested<'a, 'de>(ObjectSeed<'a, 'de>);

impl<'de> DeserializeSeed<'de> for Nested<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Nested<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.0.visit_map(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }
    logrouter::accept_scalars!((), ());
}

/// The value of a column's key as read from the line: scalars as they
/// are, strings borrowed from the line unless they hold escapes, objects
/// and arrays (JSON columns) as a `Value`. A `Value` for every cell cost
/// an allocation per string; this is what it was used for.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw<'l> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'l, str>),
    Json(Value),
}

impl Raw<'_> {
    fn as_bool(&self) -> Option<bool> {
        match self {
            Raw::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Raw::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Whether a string may hold U+0000. One read straight from the line
    /// cannot: JSON writes it only as the escape `\u0000` (serde_json
    /// refuses a raw control character), and a string with an escape is
    /// unescaped into a copy. So most strings skip the scan.
    fn may_hold_nul(&self) -> bool {
        matches!(self, Raw::Str(Cow::Owned(_)))
    }

    /// As `Value::as_i64`: an integer that fits.
    fn as_i64(&self) -> Option<i64> {
        match *self {
            Raw::Int(n) => Some(n),
            Raw::UInt(n) => i64::try_from(n).ok(),
            _ => None,
        }
    }

    /// As `Value::as_f64`: any number.
    fn as_f64(&self) -> Option<f64> {
        match *self {
            Raw::Int(n) => Some(n as f64),
            Raw::UInt(n) => Some(n as f64),
            Raw::Float(f) => Some(f),
            _ => None,
        }
    }

    /// The `Value` it was read from (for JSON columns and messages).
    fn to_value(&self) -> Value {
        match self {
            Raw::Null => Value::Null,
            Raw::Bool(b) => Value::Bool(*b),
            Raw::Int(n) => Value::from(*n),
            Raw::UInt(n) => Value::from(*n),
            Raw::Float(f) => Value::from(*f),
            Raw::Str(s) => Value::String(s.to_string()),
            Raw::Json(v) => v.clone(),
        }
    }
}

/// Reads a column's value into a [`Raw`] through `deserialize_any`, as a
/// `Value` would be read (objects and arrays are read as one).
struct RawSeed;

impl<'de> DeserializeSeed<'de> for RawSeed {
    type Value = Raw<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Raw<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RawSeed {
    type Value = Raw<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw<'de>, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw<'de>, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw<'de>, E> {
        Ok(Raw::UInt(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw<'de>, E> {
        Ok(Raw::Float(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Raw<'de>, E> {
        Ok(Raw::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw<'de>, E> {
        Ok(Raw::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw<'de>, E> {
        Ok(Raw::Str(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Raw<'de>, E> {
        Ok(Raw::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Raw<'de>, A::Error> {
        Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(Raw::Json)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Raw<'de>, A::Error> {
        Value::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Raw::Json)
    }
}

/// A value of a key the schema lacks: checked and skipped; `true` when it
/// carries a value (not null), which is drift.
struct SkipCounting;

impl<'de> DeserializeSeed<'de> for SkipCounting {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SkipCounting {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_key_seed(Skip)?.is_some() {
            map.next_value_seed(Skip)?;
        }
        Ok(true)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(true)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// `/key`, JSON-pointer escaped, so a path names exactly one field.
fn push_segment(path: &mut String, key: &str) {
    path.push('/');
    if key.contains(['~', '/']) {
        path.push_str(&key.replace('~', "~0").replace('/', "~1"));
    } else {
        path.push_str(key);
    }
}

/// PostgreSQL cannot store U+0000 in text or jsonb; refused everywhere, so
/// the same event loads the same way into every warehouse.
fn nul(c: &Column) -> RowError {
    RowError {
        column: c.name.clone(),
        reason: RejectReason::NulCharacter,
        message: "contains a NUL character (\\u0000), which PostgreSQL and Redshift cannot store: fix the producer".into(),
    }
}

fn cell<'v>(c: &Column, v: Option<&'v Raw<'v>>) -> Result<Cell<'v>, RowError> {
    let fail = |reason: RejectReason, message: String| RowError {
        column: c.name.clone(),
        reason,
        message,
    };
    let v = match v {
        None | Some(Raw::Null) if c.nullable => return Ok(Cell::Null),
        None => {
            return Err(fail(
                RejectReason::MissingRequired,
                format!(
            "required field {} is missing (make it optional in the schema, or fix the producer)",
            c.path.join(".")
        ),
            ))
        }
        Some(Raw::Null) => {
            return Err(fail(
                RejectReason::MissingRequired,
                format!(
                "required field {} is null (make it optional in the schema, or fix the producer)",
                c.path.join(".")
            ),
            ))
        }
        Some(v) => v,
    };
    let wrong = |want: &str| {
        fail(RejectReason::WrongType, format!(
            "expected {want}, found {} (fix the producer, or change the schema through a new table version)",
            excerpt(v)
        ))
    };
    Ok(match c.ty {
        ColumnType::Boolean if c.from_text => Cell::Bool(match v {
            Raw::Str(s) if s == "true" => true,
            Raw::Str(s) if s == "false" => false,
            _ => v
                .as_bool()
                .ok_or_else(|| wrong("a boolean, or true or false as text"))?,
        }),
        ColumnType::Boolean => Cell::Bool(v.as_bool().ok_or_else(|| wrong("a boolean"))?),
        ColumnType::SmallInt | ColumnType::Integer | ColumnType::BigInt => {
            let (lo, hi) = match c.ty {
                ColumnType::SmallInt => (i16::MIN as i64, i16::MAX as i64),
                ColumnType::Integer => (i32::MIN as i64, i32::MAX as i64),
                _ => (i64::MIN, i64::MAX),
            };
            let out_of_range = |n: &dyn fmt::Display| {
                fail(RejectReason::OutOfRange, format!(
                "{n} is outside the column's range {lo}..={hi} (widen minimum/maximum in the schema and add a migration)"
            ))
            };
            let want = if c.from_text {
                "an integer, or one as text (digits with an optional sign)"
            } else {
                "an integer"
            };
            let n = match (v, c.from_text) {
                (Raw::Str(s), true) => match integer_text(s) {
                    Some(Ok(n)) => n,
                    Some(Err(())) => return Err(out_of_range(&excerpt(v))),
                    None => return Err(wrong(want)),
                },
                _ => integer(v).ok_or_else(|| wrong(want))?,
            };
            if n < lo || n > hi {
                return Err(out_of_range(&n));
            }
            Cell::Int(n)
        }
        ColumnType::Double => {
            let want = if c.from_text {
                "a number, or a finite one as text such as 0.082"
            } else {
                "a number"
            };
            let f = match (v, c.from_text) {
                (Raw::Str(s), true) => number_text(s),
                _ => v.as_f64(),
            };
            Cell::Float(f.ok_or_else(|| wrong(want))?)
        }
        ColumnType::Varchar(n) | ColumnType::Char(n) => {
            let s = v.as_str().ok_or_else(|| wrong("a string"))?;
            if v.may_hold_nul() && s.contains('\0') {
                return Err(nul(c));
            }
            // Characters never outnumber bytes: count them only when the
            // bytes alone do not fit.
            let len = if s.len() <= n as usize {
                0
            } else {
                s.chars().count()
            };
            if len > n as usize {
                return Err(fail(RejectReason::TooLong, format!(
                    "{len} characters do not fit its {n} (raise maxLength in the schema and add a migration: `loader schema diff`)"
                )));
            }
            Cell::Text(Cow::Borrowed(s))
        }
        ColumnType::Text => {
            let s = v.as_str().ok_or_else(|| wrong("a string"))?;
            if v.may_hold_nul() && s.contains('\0') {
                return Err(nul(c));
            }
            Cell::Text(Cow::Borrowed(s))
        }
        ColumnType::Timestamp => {
            let s = v.as_str().ok_or_else(|| wrong("a date-time string"))?;
            Cell::Text(Cow::Owned(timestamp(s).ok_or_else(|| {
                fail(
                    RejectReason::InvalidFormat,
                    format!(
                        "{} is not an RFC 3339 date-time such as 2015-01-01T15:00:00Z",
                        excerpt(v)
                    ),
                )
            })?))
        }
        ColumnType::Date => {
            let s = v.as_str().ok_or_else(|| wrong("a date string"))?;
            let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
                fail(
                    RejectReason::InvalidFormat,
                    format!("{} is not a date such as 2015-01-01", excerpt(v)),
                )
            })?;
            Cell::Text(Cow::Owned(d.format("%Y-%m-%d").to_string()))
        }
        ColumnType::Json => {
            let text = match v {
                Raw::Json(v) => v.to_string(),
                scalar => scalar.to_value().to_string(),
            };
            if text.contains("\\u0000") {
                return Err(nul(c));
            }
            Cell::Text(Cow::Owned(text))
        }
    })
}

/// An integer written as text (`x-logrouter-from-text`): an optional sign
/// and ASCII digits, nothing else (no spaces, no fraction, no exponent);
/// `Some(Err)` when it is one but beyond BIGINT.
fn integer_text(s: &str) -> Option<Result<i64, ()>> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Rust's i64 parser takes the same forms, and says when out of range.
    Some(s.parse::<i64>().map_err(|_| ()))
}

/// A number written as text (`x-logrouter-from-text`): an optional sign,
/// digits with an optional fraction (`1.`, `.5`), an optional exponent;
/// finite. Not `inf`, `NaN`, hex or spaces, which Rust's parser or
/// PostgreSQL would take.
fn number_text(s: &str) -> Option<f64> {
    let b = s.strip_prefix(['+', '-']).unwrap_or(s).as_bytes();
    let digits = |mut i: usize| {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        (i, i - start)
    };
    let (mut i, int_digits) = digits(0);
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        (i, frac_digits) = digits(i + 1);
    }
    if int_digits + frac_digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let (end, exp_digits) = digits(i);
        if exp_digits == 0 {
            return None;
        }
        i = end;
    }
    if i != b.len() {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn integer(v: &Raw<'_>) -> Option<i64> {
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    // 3.0 is an integer in JSON Schema; 3.5 and 2^64 are not.
    let f = v.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 9.0e18).then_some(f as i64)
}

/// RFC 3339 (any offset) → `YYYY-MM-DD HH:MM:SS[.ffffff]` in UTC; a time
/// without an offset is taken as UTC.
pub fn timestamp(s: &str) -> Option<String> {
    let utc = match DateTime::parse_from_rfc3339(s) {
        Ok(t) => t.naive_utc(),
        Err(_) => ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())?,
    };
    Some(format_utc(&utc))
}

/// `YYYY-MM-DD HH:MM:SS.ffffff`, written by hand: chrono's `format` parses
/// its pattern on every call, and this runs for every timestamp loaded.
fn format_utc(t: &NaiveDateTime) -> String {
    use chrono::{Datelike, Timelike};
    let (year, micros) = (t.year(), t.nanosecond() / 1_000);
    // Beyond four-digit years, and a leap second (nanoseconds past 1e9):
    // chrono's own way.
    if !(0..=9999).contains(&year) || micros >= 1_000_000 {
        return t.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
    }
    let mut b = [0u8; 26];
    let mut put = |at: usize, v: u32, width: usize| {
        let mut v = v;
        for i in (0..width).rev() {
            b[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year as u32, 4);
    put(5, t.month(), 2);
    put(8, t.day(), 2);
    put(11, t.hour(), 2);
    put(14, t.minute(), 2);
    put(17, t.second(), 2);
    put(20, micros, 6);
    b[4] = b'-';
    b[7] = b'-';
    b[10] = b' ';
    b[13] = b':';
    b[16] = b':';
    b[19] = b'.';
    String::from_utf8(b.to_vec()).expect("ASCII digits")
}

fn excerpt(v: &Raw<'_>) -> String {
    let s = v.to_value().to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::parse_schema;

    const SCHEMA: &str = r#"{"type":"object","required":["id","ts"],"properties":{
        "id":{"type":"integer","minimum":0,"maximum":1000},
        "ts":{"type":"string","format":"date-time"},
        "user":{"type":"object","properties":{"name":{"type":"string","maxLength":5}}},
        "tags":{"type":"array","items":{"type":"string"}},
        "ok":{"type":"boolean"},
        "score":{"type":"number"}}}"#;

    /// Cells of `line` rendered as `a|b|…` (NULL for null), or the error.
    fn check(line: &str, expected: &str) {
        let t = parse_schema("t", SCHEMA, "t.json").unwrap();
        let maker = RowMaker::new(&t);
        let (mut values, mut unknown, mut out) = (Vec::new(), Vec::new(), Vec::new());
        let got = match maker.read(line, &mut values, &mut unknown) {
            Err(LineError::NotAnObject) => {
                "error[not_an_object]: column (line): is not a JSON object".to_owned()
            }
            Err(LineError::Json(e)) => format!("error[json]: {e}"),
            Ok(()) => match maker.cells(line, &values, &mut out) {
                Ok(()) => out
                    .iter()
                    .map(|c| match c {
                        Cell::Null => "NULL".to_owned(),
                        Cell::Bool(b) => b.to_string(),
                        Cell::Int(n) => n.to_string(),
                        Cell::Float(f) => f.to_string(),
                        Cell::Text(s) => s.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("|"),
                Err(e) => format!("error[{}]: {e}", e.reason),
            },
        };
        assert!(
            got == expected || (expected.starts_with("error") && got.starts_with(expected)),
            "{line}\n got: {got}\nwant: {expected}"
        );
    }

    #[test]
    fn rows() {
        check(
            r#"{"id":7,"ts":"2015-01-01T15:00:00Z","user":{"name":"ann"},"tags":["a"],"ok":true,"score":1.5}"#,
            r#"7|2015-01-01 15:00:00.000000|ann|["a"]|true|1.5"#,
        );
        // Offsets become UTC; missing optional fields are NULL; 3.0 is an integer.
        check(
            r#"{"id":3.0,"ts":"2015-01-01T17:30:00+02:00"}"#,
            "3|2015-01-01 15:30:00.000000|NULL|NULL|NULL|NULL",
        );
        check(
            r#"{"ts":"2015-01-01T15:00:00Z"}"#,
            "error[missing_required]: column id: required field id is missing",
        );
        check(
            r#"{"id":null,"ts":"2015-01-01T15:00:00Z"}"#,
            "error[missing_required]: column id: required field id is null",
        );
        check(
            r#"{"id":"7","ts":"2015-01-01T15:00:00Z"}"#,
            "error[wrong_type]: column id: expected an integer, found \"7\"",
        );
        check(
            r#"{"id":70000,"ts":"2015-01-01T15:00:00Z"}"#,
            "error[out_of_range]: column id: 70000 is outside the column's range -32768..=32767",
        );
        check(
            r#"{"id":1.5,"ts":"2015-01-01T15:00:00Z"}"#,
            "error[wrong_type]: column id: expected an integer",
        );
        check(
            r#"{"id":1,"ts":"yesterday"}"#,
            "error[invalid_format]: column ts: \"yesterday\" is not an RFC 3339 date-time",
        );
        check(
            r#"{"id":1,"ts":"2015-01-01T15:00:00Z","user":{"name":"abcdef"}}"#,
            "error[too_long]: column user_name: 6 characters do not fit its 5",
        );
        check(
            r#"[1]"#,
            "error[not_an_object]: column (line): is not a JSON object",
        );
        check(
            r#"{"id":1,"ts":"2015-01-01T15:00:00Z","user":{"name":"a\u0000"}}"#,
            "error[nul_character]: column user_name: contains a NUL character",
        );
        check(
            r#"{"id":1,"ts":"2015-01-01T15:00:00Z","tags":["\u0000"]}"#,
            "error[nul_character]: column tags: contains a NUL character",
        );
    }

    /// `x-logrouter-from-text`: `(line, cells or error)` for a table of
    /// four opted-in columns and one that is not.
    fn check_from_text(line: &str, expected: &str) {
        const FROM_TEXT: &str = r#"{"type":"object","properties":{
            "status":{"type":"integer","minimum":0,"maximum":999,"x-logrouter-from-text":true},
            "bytes":{"type":["integer","null"],"x-logrouter-from-text":true},
            "took":{"type":"number","x-logrouter-from-text":true},
            "ok":{"type":"boolean","x-logrouter-from-text":true},
            "plain":{"type":"integer"}}}"#;
        let t = parse_schema("t", FROM_TEXT, "t.json").unwrap();
        let flags: Vec<bool> = t.columns.iter().map(|c| c.from_text).collect();
        assert_eq!(flags, [true, true, true, true, false]);
        let maker = RowMaker::new(&t);
        let (mut values, mut unknown, mut out) = (Vec::new(), Vec::new(), Vec::new());
        maker.read(line, &mut values, &mut unknown).unwrap();
        let got = match maker.cells(line, &values, &mut out) {
            Ok(()) => format!("{out:?}"),
            Err(e) => format!("error[{}]: {e}", e.reason),
        };
        assert!(
            got == expected || (expected.starts_with("error") && got.starts_with(expected)),
            "{line}\n got: {got}\nwant: {expected}"
        );
    }

    #[test]
    fn from_text_parses_strings_of_the_column_type() {
        use Cell::*;
        let row = |cells: &[Cell]| format!("{cells:?}");
        check_from_text(
            r#"{"status":"200","bytes":"9223372036854775807","took":"0.082","ok":"true","plain":7}"#,
            &row(&[Int(200), Int(i64::MAX), Float(0.082), Bool(true), Int(7)]),
        );
        // Signs, exponents, ALB's -1; JSON numbers and booleans still load.
        check_from_text(
            r#"{"status":"+0","bytes":"-1","took":"-1","ok":"false"}"#,
            &row(&[Int(0), Int(-1), Float(-1.0), Bool(false), Null]),
        );
        check_from_text(
            r#"{"status":404,"bytes":3.0,"took":"1.5e-3","ok":true}"#,
            &row(&[Int(404), Int(3), Float(0.0015), Bool(true), Null]),
        );
        check_from_text(
            r#"{"took":".5","bytes":null}"#,
            &row(&[Null, Null, Float(0.5), Null, Null]),
        );
        // In BIGINT but not in the column, or beyond BIGINT: out of range.
        check_from_text(
            r#"{"status":"70000"}"#,
            "error[out_of_range]: column status: 70000 is outside the column's range -32768..=32767",
        );
        check_from_text(
            r#"{"bytes":"9223372036854775808"}"#,
            "error[out_of_range]: column bytes: \"9223372036854775808\" is outside the column's range -9223372036854775808..=9223372036854775807",
        );
        // Not fully a value of the type: wrong_type, naming column and value.
        for (line, want) in [
            (r#"{"status":"2OO"}"#, "column status: expected an integer, or one as text (digits with an optional sign), found \"2OO\""),
            (r#"{"status":"200.0"}"#, "column status: expected an integer, or one as text"),
            (r#"{"status":" 200"}"#, "column status: expected an integer, or one as text"),
            (r#"{"status":"1e3"}"#, "column status: expected an integer, or one as text"),
            (r#"{"status":""}"#, "column status: expected an integer, or one as text"),
            (r#"{"status":"-"}"#, "column status: expected an integer, or one as text"),
            (r#"{"status":1.5}"#, "column status: expected an integer, or one as text (digits with an optional sign), found 1.5"),
            (r#"{"took":"NaN"}"#, "column took: expected a number, or a finite one as text such as 0.082, found \"NaN\""),
            (r#"{"took":"inf"}"#, "column took: expected a number, or a finite one"),
            (r#"{"took":"1e400"}"#, "column took: expected a number, or a finite one"),
            (r#"{"took":"0x10"}"#, "column took: expected a number, or a finite one"),
            (r#"{"took":"1."}"#, ""),
            (r#"{"took":"."}"#, "column took: expected a number, or a finite one"),
            (r#"{"took":"1e"}"#, "column took: expected a number, or a finite one"),
            (r#"{"took":"0.082 "}"#, "column took: expected a number, or a finite one"),
            (r#"{"ok":"yes"}"#, "column ok: expected a boolean, or true or false as text, found \"yes\""),
            (r#"{"ok":"True"}"#, "column ok: expected a boolean, or true or false as text"),
            (r#"{"ok":1}"#, "column ok: expected a boolean, or true or false as text, found 1"),
        ] {
            if want.is_empty() {
                check_from_text(line, &row(&[Null, Null, Float(1.0), Null, Null]));
            } else {
                check_from_text(line, &format!("error[wrong_type]: {want}"));
            }
        }
        // Without the keyword a string is still wrong_type (issue #10).
        check_from_text(
            r#"{"plain":"7"}"#,
            "error[wrong_type]: column plain: expected an integer, found \"7\"",
        );
    }

    #[test]
    fn timestamps_are_formatted_as_chrono_would() {
        for s in [
            "2015-01-01T15:00:00Z",
            "2015-01-01T17:30:00.123456789+02:00",
            "1999-12-31T23:59:59.5-00:30",
            "2015-01-01 15:00:00",
            "0001-01-01T00:00:00Z",
            "2016-12-31T23:59:60Z",
        ] {
            let utc = match DateTime::parse_from_rfc3339(s) {
                Ok(t) => t.naive_utc(),
                Err(_) => NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap(),
            };
            assert_eq!(
                timestamp(s).unwrap(),
                utc.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
                "{s}"
            );
        }
    }

    #[test]
    fn schemaless_rows_keep_the_line_as_routed() {
        let t = crate::schema::schemaless("x");
        let line = r#"{"b":1, "a":2}"#;
        let mut out = Vec::new();
        RowMaker::new(&t).cells(line, &[], &mut out).unwrap();
        assert_eq!(out, vec![Cell::Text(Cow::Borrowed(line))]);
    }

    /// Fields the schema lacks, by path (each once a line); not inside JSON
    /// columns, not null ones, not below a known key whose value is not an
    /// object. Duplicate keys: the last wins, as in a `Value`.
    #[test]
    fn unknown_fields_and_duplicates() {
        let t = parse_schema("t", SCHEMA, "t.json").unwrap();
        let maker = RowMaker::new(&t);
        let (mut values, mut unknown) = (Vec::new(), Vec::new());
        for (line, want) in [
            (r#"{"id":1,"ts":"x","user":{"name":"a"}}"#, ""),
            (
                r#"{"id":1,"new":2,"user":{"name":"a","locale":"fr"}}"#,
                "/new /user/locale",
            ),
            (r#"{"tags":[{"x":1}],"gone":null,"a/b":{"c":1}}"#, "/a~1b"),
            (r#"{"user":"not an object","user2":[1]}"#, "/user2"),
        ] {
            maker.read(line, &mut values, &mut unknown).unwrap();
            assert_eq!(unknown.join(" "), want, "{line}");
        }
        maker
            .read(r#"{"id":1,"id":2}"#, &mut values, &mut unknown)
            .unwrap();
        // serde_json reads a non-negative integer as a u64.
        assert_eq!(values[0], Some(Raw::UInt(2)));
        // Invalid anywhere, even in a skipped value: what `Value` refuses.
        for bad in [
            r#"{"id":1,"x":1e400}"#,
            r#"{"x":"\ud800"}"#,
            r#"{"id":1} x"#,
        ] {
            assert!(
                matches!(
                    maker.read(bad, &mut values, &mut unknown),
                    Err(LineError::Json(_))
                ),
                "{bad}"
            );
        }
    }
}
