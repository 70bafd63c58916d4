//! Finding one string in a JSON line without building a `Value`.
//!
//! The router only needs the event type, so [`JsonPointer::lookup`] walks the
//! line with serde's visitor API: it descends along the pointer, skips every
//! other value with [`crate::json`]'s validating skipper, and borrows the
//! found string when it has no escapes. That is both cheaper than
//! `serde_json::Value` and exactly as strict: a line is valid for the lookup
//! if and only if `Value` would parse it (numbers in range, escapes decoded,
//! at most [`crate::json::MAX_JSON_DEPTH`] levels), even if the type field
//! came first, so the router never routes a line the loader cannot parse
//! (issue #10). Not `IgnoredAny`: serde_json skips that with a scanner that
//! accepts `1e400`, lone surrogates and any depth.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::json::{skip_map, skip_seq, JsonProblem, Key, Skip};

/// A parsed RFC 6901 JSON pointer such as `/event_type` or `/payload/0/type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPointer {
    text: String,
    segments: Vec<String>,
}

impl JsonPointer {
    /// Parses a pointer. It must start with `/` and name at least one member;
    /// `~1` and `~0` are unescaped to `/` and `~`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "JSON pointer {text:?} must start with '/', for example \"/event_type\" or \"/type\""
            ));
        };
        let mut segments = Vec::new();
        for raw in rest.split('/') {
            let mut seg = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => seg.push('~'),
                        Some('1') => seg.push('/'),
                        _ => {
                            return Err(format!(
                                "JSON pointer {text:?} has a '~' not followed by 0 or 1 (write ~0 for '~', ~1 for '/')"
                            ))
                        }
                    }
                } else {
                    seg.push(c);
                }
            }
            segments.push(seg);
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The members the pointer names, unescaped, outermost first.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// Looks the pointer up in one JSON text, validating the whole text on
    /// the way exactly as [`crate::json::check_json`] does: anything but
    /// [`Lookup::InvalidJson`] and [`Lookup::TooDeep`] means that
    /// `serde_json::from_str::<serde_json::Value>(json)` succeeds.
    ///
    /// Ordinary lines are decided in one pass over their bytes
    /// ([`crate::ordinary`]); anything else goes through serde_json.
    pub fn lookup<'a>(&self, json: &'a str) -> Lookup<'a> {
        match crate::ordinary::lookup(json, &self.segments) {
            Some(found) => found,
            None => self.serde_lookup(json),
        }
    }

    /// [`JsonPointer::lookup`] through serde_json's deserializer alone.
    pub fn serde_lookup<'a>(&self, json: &'a str) -> Lookup<'a> {
        let mut de = serde_json::Deserializer::from_str(json);
        let walked = (Root {
            path: &self.segments,
        })
        .deserialize(&mut de)
        .and_then(|found| de.end().map(|()| found));
        match walked {
            Ok(found) => found,
            Err(e) => match JsonProblem::from(e) {
                JsonProblem::TooDeep(m) => Lookup::TooDeep(m),
                JsonProblem::Invalid(m) => Lookup::InvalidJson(m),
            },
        }
    }
}

impl fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// The pointer resolves to a string.
    Found(Cow<'a, str>),
    /// The pointer does not resolve, or resolves to `null`.
    Missing,
    /// The pointer resolves to a value that is not a string (its JSON kind).
    NotAString(&'static str),
    /// A member on the path appears twice in one object, so the value is ambiguous.
    Duplicate,
    /// The line is valid JSON but not an object (its JSON kind).
    NotAnObject(&'static str),
    /// The line is not valid JSON (serde_json's message, with column).
    InvalidJson(String),
    /// The line is nested deeper than [`crate::json::MAX_JSON_DEPTH`] levels,
    /// which `serde_json::Value` refuses (serde_json's message, with column).
    TooDeep(String),
}

/// Root visitor: the line must be an object.
struct Root<'p> {
    path: &'p [String],
}

/// Visitor for a value somewhere on the path.
struct Node<'p> {
    path: &'p [String],
}

/// Visitor for the value the pointer names.
struct Leaf;

macro_rules! scalar_kinds {
    ($ret:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($ret("boolean"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($ret("number"))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($ret("number"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($ret("number"))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($ret("null"))
        }
    };
}

/// Walks the members of an object, descending into the one named by
/// `path[0]` and skipping (and validating) the rest. Shared by [`Root`] and
/// [`Node`].
fn walk_map<'de, A: MapAccess<'de>>(mut map: A, path: &[String]) -> Result<Lookup<'de>, A::Error> {
    let mut result: Option<Lookup<'de>> = None;
    while let Some(key) = map.next_key_seed(Key)? {
        if key == path[0] {
            let found = map.next_value_seed(Node { path: &path[1..] })?;
            result = Some(match result {
                None => found,
                Some(_) => Lookup::Duplicate,
            });
        } else {
            map.next_value_seed(Skip)?;
        }
    }
    Ok(result.unwrap_or(Lookup::Missing))
}

impl<'de> DeserializeSeed<'de> for Root<'_> {
    type Value = Lookup<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Root<'_> {
    type Value = Lookup<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    scalar_kinds!(Lookup::NotAnObject);
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Lookup::NotAnObject("string"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        skip_seq(seq)?;
        Ok(Lookup::NotAnObject("array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        walk_map(map, self.path)
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Lookup<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        if self.path.is_empty() {
            d.deserialize_any(Leaf)
        } else {
            d.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Lookup<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    scalar_kinds!(|_| Lookup::Missing);
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Lookup::Missing)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let index = array_index(&self.path[0]);
        let mut result = Lookup::Missing;
        let mut i = 0usize;
        loop {
            if Some(i) == index {
                match seq.next_element_seed(Node {
                    path: &self.path[1..],
                })? {
                    Some(found) => result = found,
                    None => break,
                }
            } else if seq.next_element_seed(Skip)?.is_none() {
                break;
            }
            i += 1;
        }
        Ok(result)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        walk_map(map, self.path)
    }
}

/// The element a segment names in an array: RFC 6901's `array-index`,
/// `0` or digits without a leading zero (no sign), as `Value::pointer`
/// reads it; any other segment names no element.
pub(crate) fn array_index(segment: &str) -> Option<usize> {
    let b = segment.as_bytes();
    let canonical =
        !b.is_empty() && b.iter().all(u8::is_ascii_digit) && (b[0] != b'0' || b.len() == 1);
    canonical.then(|| segment.parse().ok()).flatten()
}

impl<'de> Visitor<'de> for Leaf {
    type Value = Lookup<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Lookup::NotAString("boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Lookup::NotAString("number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Lookup::NotAString("number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Lookup::NotAString("number"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Lookup::Missing)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Lookup::Found(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Lookup::Found(Cow::Owned(v.to_owned())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        skip_seq(seq)?;
        Ok(Lookup::NotAString("array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        skip_map(map)?;
        Ok(Lookup::NotAString("object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::MAX_JSON_DEPTH;

    fn check(pointer: &str, json: &str, expected: Lookup<'_>) {
        let p = JsonPointer::parse(pointer).unwrap();
        assert_eq!(p.lookup(json), expected, "{pointer} in {json}");
    }

    fn found(s: &str) -> Lookup<'_> {
        Lookup::Found(Cow::Borrowed(s))
    }

    #[test]
    fn lookups() {
        check(
            "/event_type",
            r#"{"event_type":"video_play","x":[1,{"a":2}]}"#,
            found("video_play"),
        );
        check(
            "/event_type",
            r#"{"x":{"event_type":"no"},"event_type":"yes"}"#,
            found("yes"),
        );
        check(
            "/type",
            r#"{"type":"Push\"Event"}"#,
            Lookup::Found(Cow::Owned("Push\"Event".into())),
        );
        check("/a/b", r#"{"a":{"b":"deep"}}"#, found("deep"));
        check("/a/1/t", r#"{"a":[{"t":"x"},{"t":"y"}]}"#, found("y"));
        check("/a~1b", r#"{"a/b":"slash"}"#, found("slash"));
        check("/event_type", r#"{"other":1}"#, Lookup::Missing);
        check("/event_type", r#"{"event_type":null}"#, Lookup::Missing);
        check("/a/b", r#"{"a":"scalar"}"#, Lookup::Missing);
        check(
            "/event_type",
            r#"{"event_type":7}"#,
            Lookup::NotAString("number"),
        );
        check(
            "/event_type",
            r#"{"event_type":{"k":1}}"#,
            Lookup::NotAString("object"),
        );
        check(
            "/event_type",
            r#"{"event_type":"a","event_type":"b"}"#,
            Lookup::Duplicate,
        );
        check("/event_type", r#"[1,2]"#, Lookup::NotAnObject("array"));
        check("/event_type", r#""text""#, Lookup::NotAnObject("string"));
        check("/event_type", r#"42"#, Lookup::NotAnObject("number"));
    }

    /// Found by the `json_pointer` fuzz target: `/payload/commits/00/sha`
    /// found the first commit's sha (`usize::from_str` takes `00`, `01`
    /// and `+1`), where `Value::pointer` and RFC 6901 name no element.
    #[test]
    fn issue13_fuzz_array_index_has_no_leading_zero_or_sign() {
        let line = r#"{"a":["x","y"],"n":{"01":"key"}}"#;
        check("/a/0", line, found("x"));
        check("/a/1", line, found("y"));
        for pointer in ["/a/00", "/a/01", "/a/+1", "/a/-0", "/a/", "/a/ 1", "/a/2"] {
            check(pointer, line, Lookup::Missing);
        }
        // In an object the segment is a member's name, zeros and all.
        check("/n/01", line, found("key"));
    }

    #[test]
    fn invalid_json_is_reported_even_after_the_type() {
        for bad in [
            r#"{"event_type":"a","x":}"#,
            r#"{"event_type":"a"} trailing"#,
            r#"{"event_type":"a""#,
            r#"{event_type:"a"}"#,
            "",
            // Issue #10: what IgnoredAny let through and Value refuses.
            r#"{"event_type":"a","x":1e400}"#,
            r#"{"event_type":"a","x":"\ud800"}"#,
            r#"{"event_type":"a","x":{"\udc00x":1}}"#,
            r#"{"event_type":"a","x":[1,-1e400]}"#,
            r#"{"event_type":"\ud800"}"#,
        ] {
            let p = JsonPointer::parse("/event_type").unwrap();
            assert!(matches!(p.lookup(bad), Lookup::InvalidJson(_)), "{bad}");
        }
    }

    #[test]
    fn too_deep_is_reported_wherever_it_is() {
        let deep = format!(
            "{}1{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        for line in [
            format!(r#"{{"event_type":"a","x":{deep}}}"#),
            format!(r#"{{"x":{deep},"event_type":"a"}}"#),
            format!(r#"{{"event_type":{deep}}}"#),
            format!(r#"{{"a":{{"b":{deep}}}}}"#),
            deep.clone(),
        ] {
            for pointer in ["/event_type", "/a/b/3"] {
                let p = JsonPointer::parse(pointer).unwrap();
                assert!(
                    matches!(p.lookup(&line), Lookup::TooDeep(ref m) if m.starts_with("recursion limit exceeded")),
                    "{pointer} in {line}"
                );
            }
        }
    }

    #[test]
    fn pointer_syntax() {
        assert!(JsonPointer::parse("event_type").is_err());
        assert!(JsonPointer::parse("/a~2").is_err());
        assert_eq!(
            JsonPointer::parse("/a~0b").unwrap().segments,
            vec!["a~b".to_string()]
        );
    }
}
