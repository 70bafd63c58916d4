//! What a valid JSON text is: the one definition the router and the loader
//! share.
//!
//! The loader parses every routed line with
//! `serde_json::from_str::<serde_json::Value>`, so the router must route only
//! lines that parse that way (issue #10). Skipping values with
//! `serde::de::IgnoredAny` is not enough: serde_json skips those with a
//! lenient scanner (`ignore_value`) that does not parse numbers (`1e400`
//! passes), does not decode escapes (a lone surrogate `"\ud800"` passes) and
//! has no recursion limit (a line nested 200,000 deep passes), while `Value`
//! refuses all three.
//!
//! [`Skip`] goes through `deserialize_any` instead, the very path `Value`
//! takes: numbers are parsed, strings are decoded with their escapes checked,
//! and serde_json's own recursion limit ([`MAX_JSON_DEPTH`]) applies. It
//! keeps nothing, so it allocates nothing, except that serde_json decodes a
//! string with escapes into its scratch buffer (one per deserializer, grown
//! on the first escaped string of a text and reused for the rest).
//!
//! This holds for serde_json as the workspace builds it: without the
//! `arbitrary_precision` feature (with it, `Value` would accept `1e400` and so
//! would [`check_json`], as both still take the same path). The tests below
//! check the agreement on a table of tricky texts and on random ones.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// serde_json's recursion limit, which both the router (through
/// [`check_json`] and [`crate::pointer::JsonPointer::lookup`]) and the loader
/// (through `serde_json::Value`) rely on: it is why a line the router routes
/// is never too deep for the loader.
///
/// Counted in levels: the top-level value is on level 1, and every array or
/// object puts its members one level further down. A text may reach level
/// `MAX_JSON_DEPTH` (`[[1]]` reaches level 3; 127 arrays or objects inside
/// one another, with their members on level 128) and no further: opening a
/// 128th array or object, whose members would be on level 129, is refused,
/// even if it is empty. serde_json counts the same way: its deserializer
/// starts with 128 levels to spend and stops when none is left.
pub const MAX_JSON_DEPTH: usize = 128;

/// Why a text is not a JSON text that `serde_json::Value` accepts. The
/// `String` is serde_json's message, with line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonProblem {
    /// Valid so far, but nested deeper than [`MAX_JSON_DEPTH`] levels.
    #[error("nested deeper than {MAX_JSON_DEPTH} levels ({0})")]
    TooDeep(String),
    /// Not valid JSON: syntax, a number out of `f64`'s range, a lone
    /// surrogate, trailing characters, empty input…
    #[error("{0}")]
    Invalid(String),
}

impl JsonProblem {
    /// serde_json's message, with line and column.
    pub fn message(&self) -> &str {
        match self {
            JsonProblem::TooDeep(m) | JsonProblem::Invalid(m) => m,
        }
    }
}

impl From<serde_json::Error> for JsonProblem {
    /// serde_json has no public error code for the recursion limit, only its
    /// message; the tests pin that message, so a serde_json that changed it
    /// would fail them rather than turn `too_deep` into `invalid_json`.
    fn from(e: serde_json::Error) -> Self {
        let message = e.to_string();
        if e.is_syntax() && message.starts_with(RECURSION_LIMIT_MESSAGE) {
            JsonProblem::TooDeep(message)
        } else {
            JsonProblem::Invalid(message)
        }
    }
}

/// How serde_json's message for its recursion limit starts.
const RECURSION_LIMIT_MESSAGE: &str = "recursion limit exceeded";

/// Checks one whole JSON text exactly as
/// `serde_json::from_str::<serde_json::Value>(text)` would (the same
/// deserializer, the same path through it, the same check that only
/// whitespace follows), without building the `Value`.
///
/// For the loader's lines that it stores whole (schemaless types), and the
/// definition the router's [`crate::pointer::JsonPointer::lookup`] applies
/// to every line.
pub fn check_json(text: &str) -> Result<(), JsonProblem> {
    if crate::ordinary::is_valid(text) {
        return Ok(());
    }
    let mut de = serde_json::Deserializer::from_str(text);
    Skip.deserialize(&mut de)?;
    de.end()?;
    Ok(())
}

/// Deserialises an object key, borrowing it from the text when it has no
/// escapes (serde's own `Cow<str>` always copies).
pub struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// Skips one JSON value the way `serde_json::Value` would parse it, keeping
/// nothing: through `deserialize_any`, never `deserialize_ignored_any`.
pub struct Skip;

/// The scalar visits of a serde `Visitor` that only walks a line's
/// structure: every boolean, number, string (borrowed ones forward to
/// `visit_str`, so nothing is copied) and null is accepted as `$value`.
/// Shared by [`Skip`] and the loader's row and inference visitors.
#[macro_export]
macro_rules! accept_scalars {
    ($ty:ty, $value:expr) => {
        fn visit_bool<E: ::serde::de::Error>(self, _: bool) -> Result<$ty, E> {
            Ok($value)
        }
        fn visit_i64<E: ::serde::de::Error>(self, _: i64) -> Result<$ty, E> {
            Ok($value)
        }
        fn visit_u64<E: ::serde::de::Error>(self, _: u64) -> Result<$ty, E> {
            Ok($value)
        }
        fn visit_f64<E: ::serde::de::Error>(self, _: f64) -> Result<$ty, E> {
            Ok($value)
        }
        fn visit_str<E: ::serde::de::Error>(self, _: &str) -> Result<$ty, E> {
            Ok($value)
        }
        fn visit_unit<E: ::serde::de::Error>(self) -> Result<$ty, E> {
            Ok($value)
        }
    };
}

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    crate::accept_scalars!((), ());
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        skip_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        skip_map(map)
    }
}

/// Skips the rest of an array, validating each element as [`Skip`] does.
pub(crate) fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element_seed(Skip)?.is_some() {}
    Ok(())
}

/// Skips the rest of an object, validating each key (escapes decoded) and
/// each value as [`Skip`] does. Duplicate keys are valid JSON (`Value` keeps
/// the last); whoever cares about one key checks that itself.
pub(crate) fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_key_seed(Skip)?.is_some() {
        map.next_value_seed(Skip)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pointer::{JsonPointer, Lookup};
    use serde_json::Value;

    /// What a text is expected to be.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Valid,
        TooDeep,
        Invalid,
    }

    fn kind_of(r: &Result<(), JsonProblem>) -> Kind {
        match r {
            Ok(()) => Kind::Valid,
            Err(JsonProblem::TooDeep(_)) => Kind::TooDeep,
            Err(JsonProblem::Invalid(_)) => Kind::Invalid,
        }
    }

    /// A text whose deepest members are on level `levels` (see
    /// [`MAX_JSON_DEPTH`]): `levels - 1` containers inside one another around
    /// a scalar, chosen by `shape` (`'a'` arrays, `'o'` objects, `'m'` both
    /// in turn).
    fn nested(levels: usize, shape: char) -> String {
        let containers = levels - 1;
        let mut open = String::new();
        let mut close = String::new();
        for i in 0..containers {
            let object = match shape {
                'a' => false,
                'o' => true,
                _ => i % 2 == 1,
            };
            if object {
                open.push_str("{\"k\":");
                close.insert(0, '}');
            } else {
                open.push('[');
                close.insert(0, ']');
            }
        }
        format!("{open}1{close}")
    }

    /// Asserts that `check_json`, `JsonPointer::lookup` and `Value` agree on
    /// `text` (valid or not, too deep or not, and serde_json's very message),
    /// and returns the kind.
    fn agree(text: &str) -> Kind {
        let ours = check_json(text);
        let theirs = serde_json::from_str::<Value>(text);
        assert_eq!(
            ours.is_ok(),
            theirs.is_ok(),
            "check_json {ours:?} vs Value {theirs:?} on {}",
            excerpt(text)
        );
        if let (Err(p), Err(e)) = (&ours, &theirs) {
            assert_eq!(p.message(), e.to_string(), "on {}", excerpt(text));
        }
        let pointer = JsonPointer::parse("/k").unwrap();
        let lookup = pointer.lookup(text);
        match (&lookup, &ours) {
            (Lookup::InvalidJson(m), Err(JsonProblem::Invalid(n)))
            | (Lookup::TooDeep(m), Err(JsonProblem::TooDeep(n))) => {
                assert_eq!(m, n, "on {}", excerpt(text))
            }
            (Lookup::InvalidJson(_) | Lookup::TooDeep(_), _) | (_, Err(_)) => panic!(
                "lookup {lookup:?} vs check_json {ours:?} on {}",
                excerpt(text)
            ),
            _ => {}
        }
        if let Ok(value) = &theirs {
            lookup_agrees_with_value(&lookup, value, text);
        }
        kind_of(&ours)
    }

    /// On a valid text, what the lookup found is what `Value` holds there.
    fn lookup_agrees_with_value(lookup: &Lookup<'_>, value: &Value, text: &str) {
        let at = value.pointer("/k");
        let ok = match lookup {
            Lookup::Found(s) => at == Some(&Value::String(s.to_string())),
            Lookup::Missing => matches!(at, None | Some(Value::Null)),
            Lookup::NotAString(_) => at.is_some_and(|v| !v.is_string() && !v.is_null()),
            // Value keeps the last of duplicate members.
            Lookup::Duplicate => true,
            Lookup::NotAnObject(_) => !value.is_object(),
            Lookup::InvalidJson(_) | Lookup::TooDeep(_) => false,
        };
        assert!(ok, "lookup {lookup:?} vs Value {at:?} on {}", excerpt(text));
    }

    fn excerpt(text: &str) -> String {
        if text.len() <= 120 {
            format!("{text:?}")
        } else {
            let head: String = text.chars().take(60).collect();
            format!("{head:?}… ({} bytes)", text.len())
        }
    }

    #[test]
    fn tricky_texts_agree_with_value() {
        use Kind::*;
        let deep_200 = nested(200, 'a');
        let deep_200k = format!("{{\"a\":{}}}", nested(200_000, 'm'));
        let at_limit = |shape| nested(MAX_JSON_DEPTH, shape);
        let over_limit = |shape| nested(MAX_JSON_DEPTH + 1, shape);
        let cases: Vec<(String, Kind)> = vec![
            // The cases of issue #10.
            (r#"{"a":1e400}"#.into(), Invalid),
            (r#"{"a":"\ud800"}"#.into(), Invalid),
            (r#"{"a":"\udc00x"}"#.into(), Invalid),
            (format!(r#"{{"a":{deep_200}}}"#), TooDeep),
            (deep_200k, TooDeep),
            // Depth: exactly the limit, and one level more.
            (at_limit('a'), Valid),
            (over_limit('a'), TooDeep),
            (at_limit('o'), Valid),
            (over_limit('o'), TooDeep),
            (at_limit('m'), Valid),
            (over_limit('m'), TooDeep),
            (
                "[".repeat(MAX_JSON_DEPTH - 1) + &"]".repeat(MAX_JSON_DEPTH - 1),
                Valid,
            ),
            (
                "[".repeat(MAX_JSON_DEPTH) + &"]".repeat(MAX_JSON_DEPTH),
                TooDeep,
            ),
            // Too deep wins over a later error: parsing stops there.
            ("[".repeat(MAX_JSON_DEPTH) + "x", TooDeep),
            ("[".repeat(MAX_JSON_DEPTH - 1) + "x", Invalid),
            // Wide is not deep: siblings do not add up.
            (
                format!("[{}]", vec![nested(MAX_JSON_DEPTH - 1, 'm'); 3].join(",")),
                Valid,
            ),
            (format!("[{}]", vec![at_limit('m'); 3].join(",")), TooDeep),
            // Numbers: parsed, not scanned.
            ("1e308".into(), Valid),
            ("1e309".into(), Invalid),
            ("-1e400".into(), Invalid),
            ("1.7976931348623157e308".into(), Valid),
            ("1.7976931348623159e308".into(), Invalid),
            ("0e400".into(), Valid),
            ("1e-400".into(), Valid),
            ("123456789012345678901234567890".into(), Valid),
            ("-123456789012345678901234567890".into(), Valid),
            ("18446744073709551616".into(), Valid),
            ("-9223372036854775809".into(), Valid),
            (format!("1{}", "0".repeat(400)), Invalid),
            (format!("0.{}1", "0".repeat(400)), Valid),
            ("-0".into(), Valid),
            ("01".into(), Invalid),
            ("1.".into(), Invalid),
            (".5".into(), Invalid),
            ("1e".into(), Invalid),
            ("+1".into(), Invalid),
            ("-".into(), Invalid),
            ("NaN".into(), Invalid),
            ("Infinity".into(), Invalid),
            // Strings: escapes decoded and checked.
            (r#""\ud83d\ude00""#.into(), Valid),
            (r#""\uD83D\uDE00""#.into(), Valid),
            (r#""\ude00\ud83d""#.into(), Invalid),
            (r#""\ud800\u0041""#.into(), Invalid),
            (r#""\ud800\ud800""#.into(), Invalid),
            (r#""\ud800""#.into(), Invalid),
            (r#""\ud800x""#.into(), Invalid),
            (r#""x\udfff""#.into(), Invalid),
            (r#""\u00e9\n\t\"\\\/\b\f\r""#.into(), Valid),
            (r#""\u12""#.into(), Invalid),
            (r#""\uzzzz""#.into(), Invalid),
            (r#""\x41""#.into(), Invalid),
            ("\"a\u{1}b\"".into(), Invalid),
            ("\"tab\there\"".into(), Invalid),
            (r#""\u0001""#.into(), Valid),
            ("\"é😀\"".into(), Valid),
            (r#""unterminated"#.into(), Invalid),
            // Keys: decoded like any string.
            (r#"{"\ud83d\ude00":1}"#.into(), Valid),
            (r#"{"a\"b\\c\u00e9":1}"#.into(), Valid),
            (r#"{"\ud800":1}"#.into(), Invalid),
            (r#"{"k\udc00":1,"other":2}"#.into(), Invalid),
            (r#"{"\k":1}"#.into(), Invalid),
            (r#"{k:1}"#.into(), Invalid),
            (r#"{1:1}"#.into(), Invalid),
            // Duplicate keys are valid JSON (Value keeps the last).
            (r#"{"a":1,"a":2}"#.into(), Valid),
            (r#"{"k":"x","k":"y"}"#.into(), Valid),
            // The lookup's path and what it skips are checked alike.
            (r#"{"k":"\ud800"}"#.into(), Invalid),
            (r#"{"k":"ok","x":"\ud800"}"#.into(), Invalid),
            (r#"{"x":1e400,"k":"ok"}"#.into(), Invalid),
            (r#"{"k":["\ud800"]}"#.into(), Invalid),
            (
                format!(r#"{{"k":"ok","x":{}}}"#, nested(MAX_JSON_DEPTH - 1, 'm')),
                Valid,
            ),
            (
                format!(r#"{{"k":"ok","x":{}}}"#, nested(MAX_JSON_DEPTH, 'm')),
                TooDeep,
            ),
            (
                format!(r#"{{"k":{}}}"#, nested(MAX_JSON_DEPTH, 'o')),
                TooDeep,
            ),
            // Trailing characters, structure, empty input.
            (r#"{"a":1} x"#.into(), Invalid),
            (r#"{"a":1}{}"#.into(), Invalid),
            (r#"{"a":1},"#.into(), Invalid),
            ("{\"a\":1} \t\r\n".into(), Valid),
            (" \n{\"a\":1}".into(), Valid),
            ("\u{feff}{}".into(), Invalid),
            ("".into(), Invalid),
            ("   ".into(), Invalid),
            ("[1,]".into(), Invalid),
            (r#"{"a":1,}"#.into(), Invalid),
            (r#"{"a"}"#.into(), Invalid),
            ("[1 2]".into(), Invalid),
            ("// comment\n{}".into(), Invalid),
            ("tru".into(), Invalid),
            ("nulll".into(), Invalid),
            // Plain values.
            ("{}".into(), Valid),
            ("[]".into(), Valid),
            ("true".into(), Valid),
            ("null".into(), Valid),
            (r#""s""#.into(), Valid),
            (
                r#"{"k":"v","n":[1,-2.5e-3,true,null,{"x":{}}]}"#.into(),
                Valid,
            ),
        ];
        for (text, expected) in &cases {
            assert_eq!(agree(text), *expected, "{}", excerpt(text));
        }
    }

    #[test]
    fn depth_limit_is_the_same_for_router_and_value() {
        // MAX_JSON_DEPTH is serde_json's limit, not a guess: the deepest text
        // of each shape that the router accepts is one Value accepts, and
        // one level more is too deep for both.
        for shape in ['a', 'o', 'm'] {
            let ok = format!(r#"{{"k":"t","x":{}}}"#, nested(MAX_JSON_DEPTH - 1, shape));
            let deep = format!(r#"{{"k":"t","x":{}}}"#, nested(MAX_JSON_DEPTH, shape));
            assert!(serde_json::from_str::<Value>(&ok).is_ok());
            assert_eq!(check_json(&ok), Ok(()));
            let pointer = JsonPointer::parse("/k").unwrap();
            assert_eq!(pointer.lookup(&ok), Lookup::Found("t".into()));

            let e = serde_json::from_str::<Value>(&deep).unwrap_err();
            assert!(e.to_string().starts_with(RECURSION_LIMIT_MESSAGE), "{e}");
            assert!(matches!(check_json(&deep), Err(JsonProblem::TooDeep(_))));
            assert_eq!(pointer.lookup(&deep), Lookup::TooDeep(e.to_string()));
        }
    }

    #[test]
    fn problems_say_what_is_wrong() {
        assert_eq!(
            check_json(&nested(MAX_JSON_DEPTH + 1, 'a'))
                .unwrap_err()
                .to_string(),
            "nested deeper than 128 levels (recursion limit exceeded at line 1 column 128)"
        );
        assert_eq!(
            check_json(r#"{"a":1e400}"#).unwrap_err(),
            JsonProblem::Invalid("number out of range at line 1 column 10".into())
        );
        assert_eq!(
            check_json(r#"{"a":"\ud800"}"#).unwrap_err().to_string(),
            "unexpected end of hex escape at line 1 column 13"
        );
    }

    /// splitmix64: deterministic, so a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    const NUMBERS: &[&str] = &[
        "0",
        "-0",
        "7",
        "-12",
        "3.25",
        "1e308",
        "1e309",
        "-1e400",
        "1e-400",
        "0e999",
        "123456789012345678901234567890",
        "18446744073709551615",
        "1.5E+3",
        "2e-5",
    ];
    const STRING_PIECES: &[&str] = &[
        "a",
        "event",
        "é",
        "😀",
        r"\n",
        r#"\""#,
        r"\\",
        r"\/",
        r"\u00e9",
        r"\ud83d\ude00",
        r"\ud800",
        r"\udc00",
        r"\ud800\u0041",
        r"\uDBFF\uDFFF",
        r"\u0000",
        " ",
    ];

    fn gen_string(rng: &mut Rng, out: &mut String) {
        out.push('"');
        for _ in 0..rng.below(4) {
            out.push_str(rng.pick(STRING_PIECES));
        }
        out.push('"');
    }

    /// A random value; now and then a deep chain, around the limit.
    fn gen_value(rng: &mut Rng, depth: usize, out: &mut String) {
        if depth == 1 && rng.below(4) == 0 {
            let levels = MAX_JSON_DEPTH - 3 + rng.below(6);
            out.push_str(&nested(levels, ['a', 'o', 'm'][rng.below(3)]));
            return;
        }
        let roll = if depth > 5 {
            rng.below(5)
        } else {
            rng.below(8)
        };
        match roll {
            0 => out.push_str(rng.pick(&["true", "false", "null"])),
            1 | 2 => out.push_str(rng.pick(NUMBERS)),
            3 | 4 => gen_string(rng, out),
            5 => {
                out.push('[');
                for i in 0..rng.below(4) {
                    if i > 0 {
                        out.push(',');
                    }
                    gen_value(rng, depth + 1, out);
                }
                out.push(']');
            }
            _ => {
                out.push('{');
                for i in 0..rng.below(4) {
                    if i > 0 {
                        out.push(',');
                    }
                    if rng.below(3) == 0 {
                        out.push_str("\"k\"");
                    } else {
                        gen_string(rng, out);
                    }
                    out.push(':');
                    gen_value(rng, depth + 1, out);
                }
                out.push('}');
            }
        }
    }

    /// A few random edits at character boundaries: deletions, insertions of
    /// JSON's significant characters, truncation.
    fn mutate(rng: &mut Rng, text: &mut String) {
        const INSERTS: &[&str] = &[
            "{", "}", "[", "]", ",", ":", "\"", "\\", "\\u", "d800", "e400", "-", "0", ".", " ",
            "x", "\u{1}",
        ];
        for _ in 0..1 + rng.below(3) {
            let bounds: Vec<usize> = (0..=text.len())
                .filter(|i| text.is_char_boundary(*i))
                .collect();
            let at = bounds[rng.below(bounds.len())];
            match rng.below(3) {
                0 if at < text.len() => {
                    let next = bounds.iter().find(|b| **b > at).copied().unwrap();
                    text.replace_range(at..next, "");
                }
                1 => text.truncate(at),
                _ => text.insert_str(at, rng.pick(INSERTS)),
            }
        }
    }

    #[test]
    fn random_texts_agree_with_value() {
        let mut rng = Rng(20150120);
        let mut counts = [0usize; 3];
        for i in 0..8000 {
            let mut text = String::new();
            if rng.below(2) == 0 {
                // An event-like object with the looked-up member somewhere.
                text.push_str("{\"k\":");
                gen_value(&mut rng, 2, &mut text);
                text.push_str(",\"payload\":");
                gen_value(&mut rng, 1, &mut text);
                text.push('}');
            } else {
                gen_value(&mut rng, 1, &mut text);
            }
            if i % 3 == 0 {
                mutate(&mut rng, &mut text);
            }
            let kind = agree(&text);
            counts[kind as usize] += 1;
        }
        // The generator reaches every kind often enough to mean something.
        assert!(
            counts.iter().all(|n| *n > 500),
            "valid, too deep, invalid: {counts:?}"
        );
    }
}
