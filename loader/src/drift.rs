//! Schema drift: fields present in the data that the table's schema does not
//! have.
//!
//! Producers add fields every week. The loader cannot store a field its
//! table has no column for, but it must not drop it silently either: each
//! load counts, per field path, the lines that carry a non-null value the
//! schema does not describe, reports them in its summary, logs and metrics,
//! and `loader schema infer --update` proposes them as new optional
//! properties. Fields inside a JSON column (arrays, objects without
//! `properties`) are stored whole, so they are never drift.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::schema::TableSchema;

/// Distinct unknown paths counted per file; further ones are counted
/// together under [`OTHER`], so hostile data cannot grow this map.
pub const MAX_DRIFT_PATHS: usize = 100;
/// Where paths beyond [`MAX_DRIFT_PATHS`] are counted.
pub const OTHER: &str = "(other fields)";

/// What a schema describes of an event: nested objects it flattens, and
/// leaves (columns, JSON columns included).
#[derive(Debug, Default)]
pub struct KnownFields {
    /// Sorted by name: looked up by binary search, which beats hashing for
    /// the few dozen names an object has (this runs for every key of every
    /// line loaded).
    children: Vec<(String, KnownFields)>,
    /// A column (its value is stored whole, whatever is inside).
    leaf: bool,
}

impl KnownFields {
    pub fn of(table: &TableSchema) -> Self {
        let mut root = KnownFields::default();
        for c in &table.columns {
            if c.path.is_empty() {
                // The whole event in one column: nothing can be unknown.
                root.leaf = true;
                continue;
            }
            let mut at = &mut root;
            for seg in &c.path {
                let i = match at.children.binary_search_by(|(k, _)| k.as_str().cmp(seg)) {
                    Ok(i) => i,
                    Err(i) => {
                        at.children.insert(i, (seg.clone(), KnownFields::default()));
                        i
                    }
                };
                at = &mut at.children[i].1;
            }
            at.leaf = true;
        }
        root
    }

    fn child(&self, key: &str) -> Option<&KnownFields> {
        self.children
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| &self.children[i].1)
    }

    /// Whether nothing in an event can be unknown (a schemaless table).
    pub fn everything(&self) -> bool {
        self.leaf
    }
}

/// Lines per unknown field path (`/user/locale`), for one file or summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drift {
    pub fields: BTreeMap<String, u64>,
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

impl Drift {
    /// Counts the unknown fields of one event (each path once per line).
    pub fn observe(&mut self, known: &KnownFields, event: &Value) {
        if known.leaf {
            return;
        }
        if let Value::Object(map) = event {
            let mut path = String::new();
            self.walk(known, map, &mut path);
        }
    }

    fn walk(
        &mut self,
        known: &KnownFields,
        map: &serde_json::Map<String, Value>,
        path: &mut String,
    ) {
        for (key, value) in map {
            if value.is_null() {
                continue;
            }
            // The path is built only for what is counted or descended into.
            match known.child(key) {
                Some(k) if k.leaf => {}
                Some(k) => {
                    if let Value::Object(inner) = value {
                        let len = path.len();
                        push_segment(path, key);
                        self.walk(k, inner, path);
                        path.truncate(len);
                    }
                }
                None => {
                    let len = path.len();
                    push_segment(path, key);
                    self.count(path);
                    path.truncate(len);
                }
            }
        }
    }

    fn count(&mut self, path: &str) {
        if let Some(n) = self.fields.get_mut(path) {
            *n += 1;
        } else if self.fields.len() < MAX_DRIFT_PATHS {
            self.fields.insert(path.to_owned(), 1);
        } else {
            *self.fields.entry(OTHER.to_owned()).or_default() += 1;
        }
    }

    /// Adds another file's counts.
    pub fn add(&mut self, other: &Drift) {
        for (path, n) in &other.fields {
            *self.fields.entry(path.clone()).or_default() += n;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// `/a (3 lines), /b/c (1 line)`.
    pub fn describe(&self) -> String {
        self.fields
            .iter()
            .map(|(p, n)| format!("{p} ({n} line{})", if *n == 1 { "" } else { "s" }))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{parse_schema, schemaless};

    fn check(line: &str, expected: &str) {
        let t = parse_schema(
            "t",
            r#"{"type":"object","properties":{"id":{"type":"integer"},
                "user":{"type":"object","properties":{"name":{"type":"string"}}},
                "extra":{"type":"object"},"tags":{"type":"array"}}}"#,
            "t.json",
        )
        .unwrap();
        let mut d = Drift::default();
        d.observe(&KnownFields::of(&t), &serde_json::from_str(line).unwrap());
        assert_eq!(d.describe(), expected, "{line}");
    }

    #[test]
    fn unknown_fields_are_counted_by_path() {
        check(r#"{"id":1,"user":{"name":"a"}}"#, "");
        check(
            r#"{"id":1,"new":2,"user":{"name":"a","locale":"fr"}}"#,
            "/new (1 line), /user/locale (1 line)",
        );
        // Inside JSON columns everything is kept; null carries nothing.
        check(r#"{"extra":{"any":1},"tags":[{"x":1}],"gone":null}"#, "");
        check(r#"{"a/b":1,"user":"not an object"}"#, "/a~1b (1 line)");
    }

    #[test]
    fn schemaless_tables_have_no_drift_and_paths_are_bounded() {
        let mut d = Drift::default();
        d.observe(
            &KnownFields::of(&schemaless("x")),
            &serde_json::json!({"a": 1}),
        );
        assert!(d.is_empty());
        let t = parse_schema(
            "t",
            r#"{"type":"object","properties":{"id":{"type":"integer"}}}"#,
            "t.json",
        )
        .unwrap();
        let known = KnownFields::of(&t);
        for i in 0..(MAX_DRIFT_PATHS + 50) {
            let mut m = serde_json::Map::new();
            m.insert(format!("f{i}"), Value::from(1));
            d.observe(&known, &Value::Object(m));
        }
        assert_eq!(d.fields.len(), MAX_DRIFT_PATHS + 1);
        assert_eq!(d.fields[OTHER], 50);
    }
}
