//! `loader schema infer`: JSON Schemas from routed data.
//!
//! Writing fifty schemas by hand is the price of typed tables; without one a
//! type lands as a single JSON column. Inference reads routed files (found
//! through their manifests, like `load`), keeps per field path only counts
//! and flags (never values), and writes a schema for each type that has
//! none. The rules, chosen so that tomorrow's data still fits:
//!
//! - **types**: `boolean`, `integer` (every value a whole number within
//!   BIGINT), `number` (any other number, or integers mixed with
//!   fractions), `string`; arrays, objects that look like maps (more than
//!   [`MAX_NESTED_FIELDS`] distinct keys) and fields seen with several kinds
//!   of value are kept as JSON;
//! - **formats**: `date-time`, `date` or `uuid` only when every sampled
//!   value is one (as the loader parses them);
//! - **sizes**: none. Integers get no `minimum`/`maximum` (ids grow: a
//!   bound read off a sample overflows next month) and strings no
//!   `maxLength` (lengths vary: a tight bound turns tomorrow's longer value
//!   into a reject). Bounds are a human decision: add them by hand where
//!   they are facts (a country code is 2 letters), and `schema diff` widens
//!   a string later without rewriting the table;
//! - **required**: only fields present, and not null, in every sampled line
//!   (in every occurrence of their enclosing object);
//! - **nested objects** become properties (flattened into `parent_child`
//!   columns by the usual rules) unless a column name would be invalid;
//!   a field name that cannot become a column, or whose column would
//!   collide with another, is left out and reported.
//!
//! Memory is bounded whatever the input: a type tracks at most
//! [`MAX_FIELDS`] paths and an object at most [`MAX_NESTED_FIELDS`] keys.
//!
//! `--update` adds the fields the data has and an existing schema lacks, as
//! optional properties (never required, never changing what is there), so
//! `schema diff` turns the result into `ADD COLUMN`s.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use logrouter::aws::AwsClients;

use logrouter::normalize::{normalize_event_type, validate_name};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{json, Map, Value};

use super::{parse_schema, TableSchema};
use crate::read::{for_each_line, RawLine};
use crate::source::{open_file, RoutedFile};

/// Field paths tracked per type (Redshift's limit is 1,600 columns).
pub const MAX_FIELDS: usize = 1_500;
/// Keys longer than this are not tracked (and counted as untracked): a
/// column name is at most 63 characters, and a long run of punctuation
/// collapses to one `_`, so longer keys are not worth holding.
pub const MAX_KEY_BYTES: usize = 256;
/// Distinct keys of one nested object before it is taken for a map (kept as
/// JSON) rather than a record.
pub const MAX_NESTED_FIELDS: usize = 200;

const BOOL: u8 = 1;
const INT: u8 = 2;
const FLOAT: u8 = 4;
const STRING: u8 = 8;
const OBJECT: u8 = 16;
const ARRAY: u8 = 32;

/// How a left-out field whose column name is invalid is reported (an object
/// with such a field is kept as JSON instead of flattened).
const INVALID_COLUMN: &str = "column name";

/// What the sample says of one field.
#[derive(Debug, Default)]
struct FieldStats {
    /// Occurrences with a value other than null.
    present: u64,
    kinds: u8,
    /// Every string seen so far is a date-time / date / uuid.
    not_datetime: bool,
    not_date: bool,
    not_uuid: bool,
    /// The longest string, in characters (reported, never used as a bound).
    max_chars: u64,
    object: Option<Box<ObjectStats>>,
}

/// What the sample says of one object: its fields in first-seen order.
#[derive(Debug, Default)]
struct ObjectStats {
    /// Occurrences of the object.
    seen: u64,
    fields: Vec<(String, FieldStats)>,
    index: HashMap<String, usize>,
    /// More distinct keys than an object may have: a map, kept as JSON.
    overflow: bool,
}

/// What the sample says of one type.
#[derive(Debug, Default)]
pub struct TypeStats {
    pub lines: u64,
    pub files: u64,
    /// Lines that were not a JSON object (the router quarantines those, so
    /// only files it did not write have them).
    pub skipped: u64,
    /// Fields not tracked because the type already had [`MAX_FIELDS`].
    pub untracked: u64,
    tracked: usize,
    root: ObjectStats,
}

impl TypeStats {
    /// Adds one routed line.
    pub fn observe(&mut self, line: &[u8]) {
        self.lines += 1;
        let mut de = serde_json::Deserializer::from_slice(line);
        let budget = Budget {
            tracked: &mut self.tracked,
            untracked: &mut self.untracked,
        };
        let ok = RootSeed {
            root: &mut self.root,
            budget,
        }
        .deserialize(&mut de)
        .and_then(|ok| de.end().map(|_| ok));
        if !matches!(ok, Ok(true)) {
            self.skipped += 1;
        }
    }
}

struct Budget<'a> {
    tracked: &'a mut usize,
    untracked: &'a mut u64,
}

struct RootSeed<'a> {
    root: &'a mut ObjectStats,
    budget: Budget<'a>,
}

impl<'de> DeserializeSeed<'de> for RootSeed<'_> {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RootSeed<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(mut self, map: A) -> Result<bool, A::Error> {
        observe_map(self.root, &mut self.budget, map, usize::MAX)?;
        Ok(true)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    logrouter::accept_scalars!(bool, false);
}

fn observe_map<'de, A: MapAccess<'de>>(
    obj: &mut ObjectStats,
    budget: &mut Budget<'_>,
    mut map: A,
    limit: usize,
) -> Result<(), A::Error> {
    obj.seen += 1;
    while let Some(key) = map.next_key_seed(logrouter::json::Key)? {
        if obj.overflow {
            map.next_value::<IgnoredAny>()?;
            continue;
        }
        let at = match obj.index.get(key.as_ref()) {
            Some(&i) => Some(i),
            // No column name is this long (63 characters after
            // normalisation): not kept, so a hostile key costs nothing.
            None if key.len() > MAX_KEY_BYTES => {
                *budget.untracked += 1;
                None
            }
            None if obj.fields.len() >= limit => {
                // A map keyed by data, not a record: drop what was learnt.
                obj.overflow = true;
                *budget.tracked -= obj.fields.len().min(*budget.tracked);
                obj.fields.clear();
                obj.index.clear();
                None
            }
            None if *budget.tracked >= MAX_FIELDS => {
                *budget.untracked += 1;
                None
            }
            None => {
                *budget.tracked += 1;
                obj.index.insert(key.to_string(), obj.fields.len());
                obj.fields.push((key.into_owned(), FieldStats::default()));
                Some(obj.fields.len() - 1)
            }
        };
        match at {
            Some(i) => map.next_value_seed(FieldSeed {
                field: &mut obj.fields[i].1,
                budget,
            })?,
            None => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(())
}

struct FieldSeed<'a, 'b> {
    field: &'a mut FieldStats,
    budget: &'a mut Budget<'b>,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.field.present += 1;
        self.field.kinds |= BOOL;
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.field.present += 1;
        self.field.kinds |= INT;
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.field.present += 1;
        // Beyond BIGINT: only a floating-point column holds it.
        self.field.kinds |= if v > i64::MAX as u64 { FLOAT } else { INT };
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.field.present += 1;
        self.field.kinds |= FLOAT;
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        let f = self.field;
        f.present += 1;
        f.kinds |= STRING;
        f.max_chars = f.max_chars.max(v.chars().count() as u64);
        if !f.not_uuid && !is_uuid(v) {
            f.not_uuid = true;
        }
        if !f.not_date && !is_date(v) {
            f.not_date = true;
        }
        if !f.not_datetime && !is_datetime(v) {
            f.not_datetime = true;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.field.present += 1;
        self.field.kinds |= ARRAY;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.field.present += 1;
        self.field.kinds |= OBJECT;
        let obj = self.field.object.get_or_insert_with(Default::default);
        observe_map(obj, self.budget, map, MAX_NESTED_FIELDS)
    }
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_date(s: &str) -> bool {
    s.len() == 10 && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

/// What the loader takes for a date-time column (RFC 3339, or without an
/// offset, taken as UTC).
fn is_datetime(s: &str) -> bool {
    s.len() >= 19 && s.as_bytes()[4] == b'-' && crate::rows::timestamp(s).is_some()
}

/// A property the inferred schema leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    /// JSON pointer of the field (`/user/2fa`).
    pub pointer: String,
    pub why: String,
}

/// The schema inferred for one type.
#[derive(Debug)]
pub struct Inferred {
    /// The schema document, ready to be written as `schemas/<type>.json`.
    pub document: Value,
    /// It, parsed: its columns.
    pub schema: TableSchema,
    pub left_out: Vec<LeftOut>,
}

/// Builds the schema of `table` from what was observed.
pub fn infer(table: &str, stats: &TypeStats) -> Result<Inferred, String> {
    let mut names = BTreeSet::new();
    let mut left_out = Vec::new();
    let (properties, required) = object_properties(&stats.root, "", "", &mut names, &mut left_out);
    if properties.is_empty() {
        return Err(format!(
            "no field of {table} can become a column ({} lines sampled, {} not JSON objects)",
            stats.lines, stats.skipped
        ));
    }
    if stats.untracked > 0 {
        left_out.push(LeftOut {
            pointer: "(more fields)".into(),
            why: format!(
                "{} occurrences of fields beyond the first {MAX_FIELDS} the type has",
                stats.untracked
            ),
        });
    }
    let mut doc = Map::new();
    doc.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    doc.insert("title".into(), json!(table));
    doc.insert(
        "description".into(),
        json!(format!(
            "Inferred by `loader schema infer` from {} lines of {} routed files; review it (add maxLength, minimum/maximum and descriptions where they are facts) before `loader schema diff`.",
            stats.lines, stats.files
        )),
    );
    doc.insert("type".into(), json!("object"));
    if !required.is_empty() {
        doc.insert("required".into(), json!(required));
    }
    doc.insert("properties".into(), Value::Object(properties));
    let document = Value::Object(doc);
    let schema = parse_schema(
        table,
        &document.to_string(),
        &format!("the schema inferred for {table}"),
    )
    .map_err(|e| format!("inference made a schema the loader refuses (a bug): {e}"))?;
    Ok(Inferred {
        document,
        schema,
        left_out,
    })
}

/// The `properties` and `required` of an observed object whose columns are
/// named `<prefix>_<field>`; `pointer` is its JSON pointer.
fn object_properties(
    obj: &ObjectStats,
    prefix: &str,
    pointer: &str,
    names: &mut BTreeSet<String>,
    left_out: &mut Vec<LeftOut>,
) -> (Map<String, Value>, Vec<String>) {
    let mut props = Map::new();
    let mut required = Vec::new();
    for (key, f) in &obj.fields {
        let here = format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
        let segment = match normalize_event_type(key) {
            Ok(s) => s,
            Err(e) => {
                left_out.push(LeftOut {
                    pointer: here,
                    why: format!("its name cannot become a column ({e})"),
                });
                continue;
            }
        };
        let name = if prefix.is_empty() {
            segment
        } else {
            format!("{prefix}_{segment}")
        };
        let Some(schema) = property(f, &name, &here, names, left_out) else {
            continue;
        };
        if f.present == obj.seen {
            required.push(key.clone());
        }
        props.insert(key.clone(), schema);
    }
    (props, required)
}

/// The schema of one observed field whose column (or column prefix) is
/// `name`, or `None` when it is left out.
fn property(
    f: &FieldStats,
    name: &str,
    pointer: &str,
    names: &mut BTreeSet<String>,
    left_out: &mut Vec<LeftOut>,
) -> Option<Value> {
    if f.kinds == 0 {
        left_out.push(LeftOut {
            pointer: pointer.to_owned(),
            why: "only null in the sample: its type is unknown".into(),
        });
        return None;
    }
    if f.kinds == OBJECT {
        if let Some(obj) = f.object.as_deref().filter(|o| !o.overflow) {
            // Flattened, unless a column name of it would be invalid.
            let mut trial_names = names.clone();
            let mut trial_left = Vec::new();
            let (props, required) =
                object_properties(obj, name, pointer, &mut trial_names, &mut trial_left);
            if !props.is_empty()
                && trial_left
                    .iter()
                    .all(|l| !l.why.starts_with(INVALID_COLUMN))
            {
                *names = trial_names;
                left_out.extend(trial_left);
                let mut m = Map::new();
                m.insert("type".into(), json!("object"));
                if !required.is_empty() {
                    m.insert("required".into(), json!(required));
                }
                m.insert("properties".into(), Value::Object(props));
                return Some(Value::Object(m));
            }
        }
    }
    // A column of its own.
    if let Err(e) = validate_name(name) {
        left_out.push(LeftOut {
            pointer: pointer.to_owned(),
            why: format!("{INVALID_COLUMN} {name:?} {}", e.rule),
        });
        return None;
    }
    if !names.insert(name.to_owned()) {
        left_out.push(LeftOut {
            pointer: pointer.to_owned(),
            why: format!("its column {name:?} collides with another field's"),
        });
        return None;
    }
    Some(match f.kinds {
        BOOL => json!({"type": "boolean"}),
        INT => json!({"type": "integer"}),
        k if k & !(INT | FLOAT) == 0 => json!({"type": "number"}),
        STRING => {
            let format = if !f.not_uuid {
                Some("uuid")
            } else if !f.not_date {
                Some("date")
            } else if !f.not_datetime {
                Some("date-time")
            } else {
                None
            };
            match format {
                Some(fmt) => json!({"type": "string", "format": fmt}),
                None => json!({"type": "string"}),
            }
        }
        OBJECT => json!({"type": "object"}),
        ARRAY => json!({"type": "array"}),
        k => {
            // Several kinds of value: one JSON column.
            let kinds: Vec<&str> = [
                (BOOL, "boolean"),
                (INT | FLOAT, "number"),
                (STRING, "string"),
                (OBJECT, "object"),
                (ARRAY, "array"),
            ]
            .iter()
            .filter(|(bit, _)| k & bit != 0)
            .map(|(_, n)| *n)
            .collect();
            json!({ "type": kinds })
        }
    })
}

/// A property `--update` adds to an existing schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    pub pointer: String,
    /// The column(s) it becomes (`player_quality text`).
    pub columns: Vec<String>,
}

/// Adds to the existing schema document `doc` (of `table`) the fields the
/// sample has and it lacks, as optional properties; never changes what is
/// there. Returns what was added and what was left out.
pub fn update(
    table: &str,
    doc: &mut Value,
    stats: &TypeStats,
) -> Result<(Vec<Added>, Vec<LeftOut>), String> {
    let before = parse_schema(table, &doc.to_string(), table).map_err(|e| e.to_string())?;
    let mut names: BTreeSet<String> = before.columns.iter().map(|c| c.name.clone()).collect();
    let mut added = Vec::new();
    let mut left_out = Vec::new();
    add_missing(
        doc,
        &stats.root,
        "",
        "",
        &mut names,
        &mut added,
        &mut left_out,
    );
    let after = parse_schema(table, &doc.to_string(), table)
        .map_err(|e| format!("the updated schema does not parse (a bug): {e}"))?;
    // What each addition became, for the report.
    let mut by_pointer: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in &after.columns {
        if before.columns.iter().any(|b| b.name == c.name) {
            continue;
        }
        let pointer: String = c
            .path
            .iter()
            .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
            .collect();
        let owner = added
            .iter()
            .map(|a: &Added| a.pointer.clone())
            .filter(|p| pointer == *p || pointer.starts_with(&format!("{p}/")))
            .max_by_key(|p| p.len())
            .unwrap_or(pointer);
        by_pointer
            .entry(owner)
            .or_default()
            .push(format!("{} {}", c.name, c.ty.token()));
    }
    for a in &mut added {
        a.columns = by_pointer.remove(&a.pointer).unwrap_or_default();
    }
    Ok((added, left_out))
}

fn add_missing(
    schema: &mut Value,
    obj: &ObjectStats,
    prefix: &str,
    pointer: &str,
    names: &mut BTreeSet<String>,
    added: &mut Vec<Added>,
    left_out: &mut Vec<LeftOut>,
) {
    let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for (key, f) in &obj.fields {
        let here = format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
        let Ok(segment) = normalize_event_type(key) else {
            left_out.push(LeftOut {
                pointer: here,
                why: "its name cannot become a column".into(),
            });
            continue;
        };
        let name = if prefix.is_empty() {
            segment
        } else {
            format!("{prefix}_{segment}")
        };
        match props.get_mut(key) {
            Some(existing) => {
                // Only inside objects the schema already flattens.
                let structured = existing.get("properties").is_some();
                if let (true, Some(inner)) = (structured, f.object.as_deref()) {
                    if !inner.overflow {
                        add_missing(existing, inner, &name, &here, names, added, left_out);
                    }
                }
            }
            None => {
                if let Some(s) = property(f, &name, &here, names, left_out) {
                    props.insert(key.clone(), s);
                    added.push(Added {
                        pointer: here,
                        columns: Vec::new(),
                    });
                }
            }
        }
    }
}

/// What sampling read.
#[derive(Debug, Default)]
pub struct Sample {
    pub types: BTreeMap<String, TypeStats>,
    /// Uncompressed bytes read.
    pub bytes: u64,
    /// Files that could not be read: (file, error). The others still count.
    pub errors: Vec<(String, String)>,
}

/// Reads the routed `files` of the types `wanted` accepts, up to
/// `sample_lines` lines per type (0: every line), one file at a time and one
/// line in memory at a time.
pub async fn sample(
    files: &[RoutedFile],
    wanted: impl Fn(&str) -> bool,
    sample_lines: u64,
    clients: &AwsClients,
) -> Sample {
    let mut out = Sample::default();
    let full = move |s: &TypeStats| sample_lines > 0 && s.lines >= sample_lines;
    for file in files {
        if !wanted(&file.table) || out.types.get(&file.table).is_some_and(full) {
            continue;
        }
        let opened = match open_file(clients, file, false).await {
            Ok(o) => o,
            Err(e) => {
                out.errors.push((file.uri.clone(), e.to_string()));
                continue;
            }
        };
        let mut stats = out.types.remove(&file.table).unwrap_or_default();
        let uri = file.uri.clone();
        let read = tokio::task::spawn_blocking(move || {
            let mut bytes = 0u64;
            let r = for_each_line(&uri, opened.raw, |_, line| {
                if let RawLine::Line(l) = line {
                    bytes += l.len() as u64 + 1;
                    stats.observe(l);
                }
                if full(&stats) {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            stats.files += 1;
            (stats, bytes, r)
        })
        .await;
        match read {
            Ok((stats, bytes, r)) => {
                out.bytes += bytes;
                if let Err(e) = r {
                    out.errors.push((file.uri.clone(), e.to_string()));
                }
                out.types.insert(file.table.clone(), stats);
            }
            Err(e) => out.errors.push((file.uri.clone(), e.to_string())),
        }
    }
    out
}

/// What `loader schema infer` did for one type.
#[derive(Debug)]
pub enum Outcome {
    /// A new schema (written unless a dry run).
    Written {
        path: PathBuf,
        inferred: Inferred,
        lines: u64,
        files: u64,
    },
    /// New optional properties added to an existing schema (`--update`).
    Updated {
        path: PathBuf,
        added: Vec<Added>,
        left_out: Vec<LeftOut>,
    },
    /// An existing schema left as it is (no `--update`, or nothing new).
    Kept {
        path: PathBuf,
        why: String,
    },
    Failed {
        table: String,
        error: String,
    },
}

/// Writes (or with `dry_run`, only works out) the schemas of the sampled
/// types under `dir`: new files for types without one; with `update`, new
/// optional properties in existing ones. Never overwrites a schema.
pub fn write_schemas(
    dir: &Path,
    sample: &Sample,
    update_existing: bool,
    dry_run: bool,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    for (table, stats) in &sample.types {
        let path = dir.join(format!("{table}.json"));
        let failed = |error: String| Outcome::Failed {
            table: table.clone(),
            error,
        };
        if path.exists() {
            if !update_existing {
                out.push(Outcome::Kept {
                    path,
                    why: "exists (`--update` adds the fields the data has and it lacks)".into(),
                });
                continue;
            }
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    out.push(failed(format!("{}: {e}", path.display())));
                    continue;
                }
            };
            let mut doc: Value = match serde_json::from_str(&text) {
                Ok(d) => d,
                Err(e) => {
                    out.push(failed(format!("{}: not JSON: {e}", path.display())));
                    continue;
                }
            };
            match update(table, &mut doc, stats) {
                Ok((added, left_out)) if added.is_empty() => out.push(Outcome::Kept {
                    path,
                    why: if left_out.is_empty() {
                        "has every field of the sample".into()
                    } else {
                        format!(
                            "has every field of the sample it can take ({} left out)",
                            left_out.len()
                        )
                    },
                }),
                Ok((added, left_out)) => {
                    if !dry_run {
                        if let Err(e) = write_json(&path, &doc) {
                            out.push(failed(e));
                            continue;
                        }
                    }
                    out.push(Outcome::Updated {
                        path,
                        added,
                        left_out,
                    });
                }
                Err(e) => out.push(failed(e)),
            }
            continue;
        }
        match infer(table, stats) {
            Ok(inferred) => {
                if !dry_run {
                    if let Err(e) = std::fs::create_dir_all(dir)
                        .map_err(|e| format!("{}: {e}", dir.display()))
                        .and_then(|()| write_json(&path, &inferred.document))
                    {
                        out.push(failed(e));
                        continue;
                    }
                }
                out.push(Outcome::Written {
                    path,
                    inferred,
                    lines: stats.lines,
                    files: stats.files,
                });
            }
            Err(e) => out.push(failed(e)),
        }
    }
    out
}

/// Writes pretty JSON through a temporary file, so a schema is never half
/// written.
fn write_json(path: &Path, doc: &Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(doc).expect("a schema serialises") + "\n";
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(lines: &[&str]) -> TypeStats {
        let mut s = TypeStats::default();
        for l in lines {
            s.observe(l.as_bytes());
        }
        s
    }

    /// Columns of the inferred schema as `name type [null]`, one per line.
    fn check(lines: &[&str], expected: &str) {
        let inferred = infer("t", &stats(lines)).unwrap();
        let got: Vec<String> = inferred
            .schema
            .columns
            .iter()
            .map(|c| {
                format!(
                    "{} {}{}",
                    c.name,
                    c.ty.token(),
                    if c.nullable { " null" } else { "" }
                )
            })
            .chain(
                inferred
                    .left_out
                    .iter()
                    .map(|l| format!("left out {}: {}", l.pointer, l.why)),
            )
            .collect();
        let want: Vec<&str> = expected.trim().lines().map(str::trim).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn types_formats_and_required() {
        check(
            &[
                r#"{"id":1,"ts":"2015-01-01T15:00:00Z","day":"2015-01-01","u":"5f0c7c1e-8f3b-4c52-9d5e-0123456789ab","ok":true,"n":1,"x":1.5,"s":"a","tags":["a"],"user":{"id":7,"name":"ann"},"m":"a"}"#,
                r#"{"id":2,"ts":"2015-01-01T16:00:00+02:00","day":"2015-01-02","u":"5F0C7C1E-8F3B-4C52-9D5E-0123456789AB","ok":false,"n":2.5,"x":2,"s":"2015-01-01","tags":[],"user":{"id":8},"m":3,"only_null":null}"#,
            ],
            "
            id bigint
            ts timestamp
            day date
            u char(36)
            ok boolean
            n double
            x double
            s text
            tags json
            user_id bigint
            user_name text null
            m json
            left out /only_null: only null in the sample: its type is unknown
            ",
        );
    }

    #[test]
    fn optional_fields_maps_and_bad_names() {
        let mut lines = vec![
            r#"{"id":1,"camelCase":1,"camel_case":2,"":1,"a":{"b":{"c":1}}}"#.to_owned(),
            r#"{"id":2,"extra":null,"big":18446744073709551615}"#.to_owned(),
        ];
        // An object with a key per value is a map, not a record.
        let mut map = serde_json::Map::new();
        for i in 0..=MAX_NESTED_FIELDS {
            map.insert(format!("k{i}"), json!(i));
        }
        lines.push(json!({"id": 3, "counts": map}).to_string());
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        check(
            &refs,
            "
            id bigint
            camel_case bigint null
            a_b_c bigint null
            big double null
            counts json null
            left out /camel_case: its column \"camel_case\" collides with another field's
            left out /: its name cannot become a column (normalises to \"\", which is empty: the type has no ASCII letter or digit)
            left out /extra: only null in the sample: its type is unknown
            ",
        );
    }

    #[test]
    fn update_adds_only_optional_new_fields() {
        let mut doc: Value = serde_json::from_str(
            r#"{"type":"object","required":["id"],"properties":{"id":{"type":"integer","minimum":0,"maximum":9},
                "n":{"type":"integer","x-logrouter-from-text":true},
                "user":{"type":"object","properties":{"name":{"type":"string","maxLength":5}}},
                "blob":{"type":"object"}}}"#,
        )
        .unwrap();
        let s = stats(&[
            r#"{"id":"not a number","user":{"name":"a very long name","locale":"fr"},"blob":{"new":1},"player":{"quality":"hd"}}"#,
        ]);
        let (added, _) = update("t", &mut doc, &s).unwrap();
        let got: Vec<String> = added
            .iter()
            .map(|a| format!("{} -> {}", a.pointer, a.columns.join(", ")))
            .collect();
        assert_eq!(
            got,
            vec![
                "/user/locale -> user_locale text",
                "/player -> player_quality text"
            ]
        );
        // What was there is unchanged; nothing new is required.
        assert_eq!(doc["properties"]["id"]["maximum"], 9);
        assert_eq!(doc["properties"]["n"]["x-logrouter-from-text"], true);
        assert_eq!(
            doc["properties"]["user"]["properties"]["name"]["maxLength"],
            5
        );
        assert_eq!(doc["required"], json!(["id"]));
        let t = parse_schema("t", &doc.to_string(), "t.json").unwrap();
        assert!(t
            .columns
            .iter()
            .filter(|c| c.name.starts_with("player") || c.name == "user_locale")
            .all(|c| c.nullable));
    }

    #[test]
    fn memory_is_bounded_by_the_field_caps() {
        let mut s = TypeStats::default();
        for i in 0..(MAX_FIELDS as u64 + 500) {
            s.observe(format!("{{\"f{i}\":1}}").as_bytes());
        }
        assert_eq!(s.root.fields.len(), MAX_FIELDS);
        assert_eq!(s.untracked, 500);
        assert_eq!(s.skipped, 0);
        s.observe(b"[1]");
        s.observe(b"not json");
        assert_eq!(s.skipped, 2);
    }
}
