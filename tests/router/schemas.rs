//! `schemas/` matches the demo's data: every event `gen-events` writes for
//! the demo's twelve types fits its type's columns (no unknown field, no
//! missing required value, no value wider or of another kind than its
//! column), so the loader's tables will hold the demo data as it is.

use std::collections::BTreeMap;

use loader::schema::{load_dir, ColumnType, TableSchema};
use serde_json::Value;

fn leaves(prefix: &mut Vec<String>, v: &Value, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                prefix.push(k.clone());
                leaves(prefix, x, out);
                prefix.pop();
            }
        }
        _ => out.push(prefix.clone()),
    }
}

fn fits(ty: ColumnType, v: &Value) -> bool {
    match ty {
        ColumnType::Boolean => v.is_boolean(),
        ColumnType::SmallInt => v.as_i64().is_some_and(|n| i16::try_from(n).is_ok()),
        ColumnType::Integer => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        ColumnType::BigInt => v.is_i64(),
        ColumnType::Double => v.is_number(),
        ColumnType::Varchar(n) => v.as_str().is_some_and(|s| s.chars().count() <= n as usize),
        ColumnType::Text => v.is_string(),
        ColumnType::Char(n) => v.as_str().is_some_and(|s| s.chars().count() == n as usize),
        ColumnType::Timestamp => v
            .as_str()
            .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
        ColumnType::Date => v
            .as_str()
            .is_some_and(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()),
        ColumnType::Json => true,
    }
}

fn check_event(t: &TableSchema, event: &Value) -> Result<(), String> {
    let mut paths = Vec::new();
    leaves(&mut Vec::new(), event, &mut paths);
    for p in &paths {
        if !t.columns.iter().any(|c| c.path == *p) {
            return Err(format!(
                "field {} has no column: add it to schemas/{}.json",
                p.join("."),
                t.table
            ));
        }
    }
    for c in &t.columns {
        let mut v = event;
        for seg in &c.path {
            v = v.get(seg).unwrap_or(&Value::Null);
        }
        if v.is_null() {
            if !c.nullable {
                return Err(format!("required {} is missing", c.name));
            }
        } else if !fits(c.ty, v) {
            return Err(format!("{} = {v} does not fit {:?}", c.name, c.ty));
        }
    }
    Ok(())
}

#[test]
fn demo_events_fit_their_schemas() {
    let schemas = load_dir(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas"
    )))
    .unwrap();
    assert_eq!(schemas.len(), 12, "{:?}", schemas.keys());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gen-events"))
        .args(["--lines", "30000", "--types", "12", "--seed", "13"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for line in out.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let event: Value = serde_json::from_slice(line).unwrap();
        let t = event["event_type"].as_str().unwrap().to_owned();
        let schema = schemas
            .get(&t)
            .unwrap_or_else(|| panic!("no schema for demo type {t}"));
        if let Err(e) = check_event(schema, &event) {
            panic!("{t}: {e}\n{}", String::from_utf8_lossy(line));
        }
        *seen.entry(t).or_default() += 1;
    }
    assert_eq!(seen.len(), 12, "every demo type was generated: {seen:?}");
}

/// The kind of value a column holds, whatever its size: what inference can
/// know from data (sizes are a human decision, see `loader::schema::infer`).
fn kind(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Boolean => "boolean",
        ColumnType::SmallInt | ColumnType::Integer | ColumnType::BigInt => "integer",
        ColumnType::Double => "number",
        ColumnType::Varchar(_) | ColumnType::Text => "string",
        ColumnType::Char(_) => "uuid",
        ColumnType::Timestamp => "date-time",
        ColumnType::Date => "date",
        ColumnType::Json => "json",
    }
}

/// Issue #10: `loader schema infer` on the demo's data gives, for each of
/// the twelve types, the columns of the hand-written schema with the same
/// kinds (sizes aside), and every field the shipped schema requires is
/// required in the inferred one too.
#[test]
fn issue10_inferred_schemas_match_the_shipped_ones() {
    use loader::schema::infer::{infer, TypeStats};
    let shipped = load_dir(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas"
    )))
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gen-events"))
        .args(["--lines", "30000", "--types", "12", "--seed", "14"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut stats: BTreeMap<String, TypeStats> = BTreeMap::new();
    for line in out.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let event: Value = serde_json::from_slice(line).unwrap();
        let t = event["event_type"].as_str().unwrap().to_owned();
        stats.entry(t).or_default().observe(line);
    }
    assert_eq!(stats.len(), 12);
    for (t, s) in &stats {
        let inferred = infer(t, s).unwrap().schema;
        let want = &shipped[t];
        let describe = |schema: &TableSchema| -> Vec<String> {
            schema
                .columns
                .iter()
                .map(|c| format!("{} {}", c.name, kind(c.ty)))
                .collect()
        };
        let (mut got, mut wanted) = (describe(&inferred), describe(want));
        got.sort();
        wanted.sort();
        assert_eq!(got, wanted, "{t}: inferred columns and kinds");
        for c in want.columns.iter().filter(|c| !c.nullable) {
            let i = inferred.columns.iter().find(|x| x.name == c.name).unwrap();
            assert!(
                !i.nullable,
                "{t}.{}: required in schemas/, optional inferred",
                c.name
            );
        }
    }
}
