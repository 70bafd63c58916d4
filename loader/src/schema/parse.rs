//! Parsing `schemas/<event_type>.json` (the JSON Schema subset described
//! in [`crate::schema`]) into a [`TableSchema`].
//!
//! One keyword of the loader's own, namespaced as JSON Schema allows
//! (validators ignore `x-…` keywords): `"x-logrouter-from-text": true` on a
//! property of type `integer`, `number` or `boolean` (or that and `null`)
//! says its values arrive as JSON strings and are to be parsed
//! (`"sc_bytes": "392"` → 392). A string that is not fully a value of the
//! type is `wrong_type`, an integer outside the column's range
//! `out_of_range`; JSON numbers and booleans still load. Without it a
//! string in such a column is `wrong_type` (for JSON events, a producer's
//! bug). It is refused on any other type (a date-time, a string: text
//! already). See [`crate::schema::FROM_TEXT`].

use std::collections::BTreeMap;
use std::path::Path;

use logrouter::normalize::{normalize_event_type, validate_name};
use serde_json::{Map, Value};

use super::{Column, ColumnType, SchemaError, TableSchema, FROM_TEXT};

/// The keywords a schema may have; the first 10 and the last are named in
/// errors (the others are ignored).
const KNOWN: [&str; 16] = [
    "type",
    "properties",
    "required",
    "format",
    "maxLength",
    "minimum",
    "maximum",
    "enum",
    "items",
    "description",
    "$schema",
    "$id",
    "title",
    "examples",
    "additionalProperties",
    FROM_TEXT,
];

/// Parses the schema of `table` (a normalised event type); `file` names it in
/// errors.
pub fn parse_schema(table: &str, json: &str, file: &str) -> Result<TableSchema, SchemaError> {
    let fail = |message: String| SchemaError::Invalid {
        file: file.to_owned(),
        message,
    };
    validate_name(table).map_err(|e| {
        fail(format!(
            "the file name must be a normalised event type ({table:?} {}); rename it to e.g. video_play.json",
            e.rule
        ))
    })?;
    let root: Value = serde_json::from_str(json).map_err(|e| fail(format!("not JSON: {e}")))?;
    let obj = root
        .as_object()
        .ok_or_else(|| fail("the schema must be a JSON object".into()))?;
    if types_of(obj, "").map_err(&fail)? != ["object"] {
        return Err(fail(
            "the top level must be {\"type\": \"object\", \"properties\": {…}}".into(),
        ));
    }
    if obj.contains_key(FROM_TEXT) {
        return Err(fail(format!(
            "the top level: {FROM_TEXT} belongs on an integer, number or boolean property"
        )));
    }
    let mut columns = Vec::new();
    flatten(obj, &mut Vec::new(), &mut Vec::new(), true, &mut columns).map_err(&fail)?;
    if columns.is_empty() {
        return Err(fail("the schema has no properties".into()));
    }
    let mut seen: BTreeMap<&str, &Vec<String>> = BTreeMap::new();
    for c in &columns {
        if let Some(other) = seen.insert(&c.name, &c.path) {
            return Err(fail(format!(
                "/{} and /{} both become column {:?}; rename one of them",
                other.join("/"),
                c.path.join("/"),
                c.name
            )));
        }
    }
    Ok(TableSchema {
        table: table.to_owned(),
        columns,
    })
}

/// Reads every `*.json` in `dir`, keyed by table name.
pub fn load_dir(dir: &Path) -> Result<BTreeMap<String, TableSchema>, SchemaError> {
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| SchemaError::Invalid {
        file: dir.display().to_string(),
        message: format!("cannot read the schemas folder: {e}"),
    })?;
    for entry in entries {
        let path = entry
            .map_err(|e| SchemaError::Invalid {
                file: dir.display().to_string(),
                message: e.to_string(),
            })?
            .path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let file = path.display().to_string();
        let table = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&path).map_err(|e| SchemaError::Invalid {
            file: file.clone(),
            message: e.to_string(),
        })?;
        let schema = parse_schema(table, &text, &file)?;
        out.insert(schema.table.clone(), schema);
    }
    Ok(out)
}

fn types_of(obj: &Map<String, Value>, at: &str) -> Result<Vec<&'static str>, String> {
    const ALL: [&str; 7] = [
        "string", "integer", "number", "boolean", "object", "array", "null",
    ];
    let names: Vec<&Value> = match obj.get("type") {
        None => return Err(format!("{}: no \"type\"", pointer(at))),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v) => vec![v],
    };
    let mut out = Vec::new();
    for n in names {
        let found = n.as_str().and_then(|s| ALL.iter().find(|a| **a == s));
        match found {
            Some(t) => out.push(*t),
            None => return Err(format!("{}: unknown type {n}", pointer(at))),
        }
    }
    Ok(out)
}

fn pointer(at: &str) -> String {
    if at.is_empty() {
        "the top level".to_owned()
    } else {
        format!("/{at}")
    }
}

/// Adds the columns of object schema `obj` at `path`.
fn flatten(
    obj: &Map<String, Value>,
    path: &mut Vec<String>,
    names: &mut Vec<String>,
    required_here: bool,
    out: &mut Vec<Column>,
) -> Result<(), String> {
    let at = path.join("/");
    for key in obj.keys() {
        if !KNOWN.contains(&key.as_str()) {
            return Err(format!(
                "{}: unsupported keyword {key:?} (supported: {}, {FROM_TEXT})",
                pointer(&at),
                KNOWN[..10].join(", ")
            ));
        }
    }
    let required: Vec<&str> = match obj.get("required") {
        None => Vec::new(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        Some(_) => {
            return Err(format!(
                "{}: \"required\" must be a list of names",
                pointer(&at)
            ))
        }
    };
    let Some(props) = obj.get("properties").and_then(Value::as_object) else {
        return Err(format!("{}: an object needs \"properties\"", pointer(&at)));
    };
    for (prop, schema) in props {
        let schema = schema
            .as_object()
            .ok_or_else(|| format!("/{at}/{prop}: must be a schema object"))?;
        let segment =
            normalize_event_type(prop).map_err(|e| format!("/{at}/{prop}: property name {e}"))?;
        path.push(prop.clone());
        names.push(segment);
        let here = path.join("/");
        for key in schema.keys() {
            if !KNOWN.contains(&key.as_str()) {
                return Err(format!("/{here}: unsupported keyword {key:?}"));
            }
        }
        let types = types_of(schema, &here)?;
        let non_null: Vec<&str> = types.iter().copied().filter(|t| *t != "null").collect();
        let is_required = required_here && required.contains(&prop.as_str());
        let nullable = !is_required || types.contains(&"null");
        let structured = non_null == ["object"] && schema.contains_key("properties");
        let from_text = match schema.get(FROM_TEXT) {
            None | Some(Value::Bool(false)) => false,
            Some(Value::Bool(true)) if !structured && matches!(non_null[..], ["integer"] | ["number"] | ["boolean"]) => true,
            Some(Value::Bool(true)) => {
                return Err(format!(
                    "/{here}: {FROM_TEXT} applies to a property of type integer, number or boolean (with or without null), not {}",
                    types.join(" or ")
                ))
            }
            Some(v) => return Err(format!("/{here}: {FROM_TEXT} must be true or false, not {v}")),
        };
        if structured {
            flatten(schema, path, names, !nullable, out)?;
        } else {
            let name = names.join("_");
            validate_name(&name).map_err(|e| format!("/{here}: column {name:?} {}", e.rule))?;
            out.push(Column {
                name,
                path: path.clone(),
                ty: column_type(&non_null, schema, &here)?,
                from_text,
                nullable,
                comment: schema
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            });
        }
        path.pop();
        names.pop();
    }
    Ok(())
}

fn column_type(types: &[&str], s: &Map<String, Value>, at: &str) -> Result<ColumnType, String> {
    let [one] = types else {
        // Several kinds of value: keep them as JSON.
        return Ok(ColumnType::Json);
    };
    Ok(match *one {
        "boolean" => ColumnType::Boolean,
        "number" => ColumnType::Double,
        "object" | "array" => ColumnType::Json,
        "integer" => {
            let bound = |k: &str| s.get(k).and_then(Value::as_i64);
            match (bound("minimum"), bound("maximum")) {
                (Some(lo), Some(hi)) if lo > hi => {
                    return Err(format!("/{at}: minimum {lo} is above maximum {hi}"))
                }
                (Some(lo), Some(hi)) if lo >= i16::MIN as i64 && hi <= i16::MAX as i64 => {
                    ColumnType::SmallInt
                }
                (Some(lo), Some(hi)) if lo >= i32::MIN as i64 && hi <= i32::MAX as i64 => {
                    ColumnType::Integer
                }
                _ => ColumnType::BigInt,
            }
        }
        "string" => match s.get("format").and_then(Value::as_str) {
            Some("date-time") => ColumnType::Timestamp,
            Some("date") => ColumnType::Date,
            Some("uuid") => ColumnType::Char(36),
            _ => {
                let enum_max = s.get("enum").and_then(Value::as_array).map(|values| {
                    values
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|v| v.chars().count() as u64)
                        .max()
                        .unwrap_or(1)
                        // An enum of only "" still needs a column of one.
                        .max(1)
                });
                match s.get("maxLength").and_then(Value::as_u64).or(enum_max) {
                    Some(0) => return Err(format!("/{at}: maxLength must be at least 1")),
                    Some(n) if n <= u32::MAX as u64 => ColumnType::Varchar(n as u32),
                    _ => ColumnType::Text,
                }
            }
        },
        other => return Err(format!("/{at}: a column cannot be of type {other}")),
    })
}
