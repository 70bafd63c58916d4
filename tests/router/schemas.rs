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
    // The demo's twelve types, and the three access-log formats (issue #12).
    assert_eq!(schemas.len(), 15, "{:?}", schemas.keys());
    let out = gen_events::output(["--lines", "30000", "--types", "12", "--seed", "13"]).unwrap();
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
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
    let out = gen_events::output(["--lines", "30000", "--types", "12", "--seed", "14"]).unwrap();
    let mut stats: BTreeMap<String, TypeStats> = BTreeMap::new();
    for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
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

/// S3 server access log fields and ALB access log fields as AWS documents
/// them, in order (CloudFront's come from each file's `#Fields` header).
use router::format::alb::FIELDS as ALB_FIELDS;
use router::format::s3_access::FIELDS as S3_ACCESS_FIELDS;

/// CloudFront's percent-encoding decoded, as the router decodes it.
fn percent_decode(v: &str) -> String {
    logrouter::percent::decode(v, false)
        .expect("UTF-8 once decoded")
        .into_owned()
}

/// The routed object of a record: the documented names normalised, the
/// values as strings, `-` as null.
fn routed_object(names: &[&str], values: Vec<String>) -> String {
    assert_eq!(names.len(), values.len());
    let mut m = serde_json::Map::new();
    for (n, v) in names.iter().zip(values) {
        let key = logrouter::normalize::normalize_event_type(n).unwrap();
        let v = if v == "-" {
            Value::Null
        } else {
            Value::String(v)
        };
        assert!(m.insert(key, v).is_none(), "two fields normalise alike");
    }
    Value::Object(m).to_string()
}

/// One access-log record of gen-events → its fields (value strings, quotes
/// and brackets removed, CloudFront's percent-encoding decoded).
fn access_records(format: &str, extra: &[&str]) -> (Vec<String>, Vec<Vec<String>>) {
    let args = ["--format", format, "--lines", "3000", "--seed", "12"];
    let out = gen_events::output(args.iter().chain(extra).copied()).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut lines = text.lines();
    let names: Vec<String> = match format {
        "cloudfront" => {
            assert_eq!(lines.next(), Some("#Version: 1.0"));
            let fields = lines.next().unwrap().strip_prefix("#Fields: ").unwrap();
            fields.split(' ').map(str::to_owned).collect()
        }
        "s3_access" => S3_ACCESS_FIELDS.iter().map(|s| s.to_string()).collect(),
        _ => ALB_FIELDS.iter().map(|s| s.to_string()).collect(),
    };
    let n = match (format, extra) {
        ("cloudfront", _) => names.len(),
        (_, ["--fields", k]) => k.parse().unwrap(),
        _ => names.len(),
    };
    let s3 = regex::Regex::new(&format!(
        "^{}$",
        (0..n)
            .map(|i| match i {
                2 => r"\[([^\]]*)\]",
                8 | 15 => r#""([^"]*)""#,
                16 => r#""(.*)""#,
                _ => r"(\S+)",
            })
            .collect::<Vec<_>>()
            .join(" ")
    ))
    .unwrap();
    let alb = regex::Regex::new(r#""([^"]*)"|(\S+)"#).unwrap();
    let records = lines
        .map(|line| match format {
            "cloudfront" => line.split('\t').map(percent_decode).collect(),
            "s3_access" => {
                let c = s3.captures(line).unwrap();
                (1..=n).map(|i| c[i].to_owned()).collect()
            }
            _ => alb
                .captures_iter(line)
                .map(|c| c.get(1).or(c.get(2)).unwrap().as_str().to_owned())
                .collect(),
        })
        .collect();
    (names[..n].to_vec(), records)
}

/// Issue #12: `schemas/cloudfront.json`, `s3_access.json` and `alb.json`
/// have exactly the documented fields (normalised) as columns, and the
/// loader turns every record gen-events writes (routed as strings, `-` as
/// null; older and newer field counts) into a row with no reject and no
/// drift. Times load as timestamps or dates where the format writes RFC 3339
/// or a date; counts, sizes, ports, status codes and durations, routed as
/// strings, load as integers and numbers (`x-logrouter-from-text`), each
/// the value of its string.
#[test]
fn issue12_access_log_schemas_load_every_generated_record() {
    use loader::rows::{Cell, RowMaker};
    let schemas = load_dir(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas"
    )))
    .unwrap();
    for (format, extra, full) in [
        ("cloudfront", &[][..], 33),
        ("cloudfront", &["--fields", "24"][..], 33),
        ("s3_access", &[][..], 26),
        ("s3_access", &["--fields", "18"][..], 26),
        ("s3_access", &["--payload"][..], 26),
        ("alb", &[][..], 30),
        ("alb", &["--fields", "29"][..], 30),
    ] {
        let table = &schemas[format];
        // The documented fields and the router's `timestamp` (issue #25).
        assert_eq!(table.columns.len(), full + 1, "{format}");
        let (names, records) = access_records(format, extra);
        assert_eq!(records.len(), 3000);
        if names.len() == full {
            let mut want: Vec<String> = names
                .iter()
                .map(|n| logrouter::normalize::normalize_event_type(n).unwrap())
                .chain(["timestamp".to_owned()])
                .collect();
            let mut got: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
            want.sort();
            got.sort();
            assert_eq!(got, want, "{format}: the columns are the documented fields");
        }
        let maker = RowMaker::new(table);
        let mut unknown = Vec::new();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        // Typed values seen per column, to prove each typed column is used.
        let mut typed: BTreeMap<&str, u64> = BTreeMap::new();
        for r in records {
            let line = routed_object(&names, r);
            let mut values = Vec::new();
            maker.read(&line, &mut values, &mut unknown).unwrap();
            assert!(unknown.is_empty(), "{format}: drift {unknown:?}");
            let mut cells = Vec::new();
            if let Err(e) = maker.cells(&line, &values, &mut cells) {
                panic!("{format} {extra:?}: {e}\n{line}");
            }
            let event: Value = serde_json::from_str(&line).unwrap();
            for (c, cell) in table.columns.iter().zip(&cells) {
                if !c.from_text {
                    continue;
                }
                let text = event.get(&c.name).and_then(Value::as_str);
                match (c.ty, cell, text) {
                    (_, Cell::Null, None) => continue,
                    (
                        ColumnType::SmallInt | ColumnType::Integer | ColumnType::BigInt,
                        Cell::Int(n),
                        Some(t),
                    ) => {
                        assert_eq!(*n, t.parse::<i64>().unwrap(), "{format}.{}", c.name)
                    }
                    (ColumnType::Double, Cell::Float(f), Some(t)) => {
                        assert_eq!(*f, t.parse::<f64>().unwrap(), "{format}.{}", c.name)
                    }
                    other => panic!("{format}.{}: {other:?}\n{line}", c.name),
                }
                *typed.entry(c.name.as_str()).or_default() += 1;
            }
        }
        let want: &[&str] = match (format, extra) {
            ("cloudfront", []) => &[
                "sc_bytes",
                "sc_status",
                "cs_bytes",
                "time_taken",
                "c_port",
                "time_to_first_byte",
                "sc_content_len",
            ],
            ("cloudfront", _) => &["sc_bytes", "sc_status", "cs_bytes", "time_taken"],
            // The tracking GETs' responses are empty: Bytes Sent is "-".
            ("s3_access", ["--payload"]) => &[
                "http_status",
                "object_size",
                "total_time",
                "turn_around_time",
            ],
            ("s3_access", _) => &[
                "http_status",
                "bytes_sent",
                "object_size",
                "total_time",
                "turn_around_time",
            ],
            _ => &[
                "request_processing_time",
                "target_processing_time",
                "response_processing_time",
                "elb_status_code",
                "target_status_code",
                "received_bytes",
                "sent_bytes",
                "matched_rule_priority",
            ],
        };
        for c in want {
            assert!(
                typed.get(c).is_some_and(|n| *n > 0),
                "{format} {extra:?}: no typed {c}: {typed:?}"
            );
        }
    }
    let ty = |t: &str, c: &str| schemas[t].columns.iter().find(|x| x.name == c).unwrap().ty;
    assert_eq!(ty("alb", "time"), ColumnType::Timestamp);
    assert_eq!(ty("alb", "request_creation_time"), ColumnType::Timestamp);
    assert_eq!(ty("cloudfront", "date"), ColumnType::Date);
    assert_eq!(ty("cloudfront", "sc_bytes"), ColumnType::BigInt);
    assert_eq!(ty("cloudfront", "sc_status"), ColumnType::SmallInt);
    assert_eq!(ty("cloudfront", "c_port"), ColumnType::Integer);
    assert_eq!(ty("cloudfront", "time_taken"), ColumnType::Double);
    assert_eq!(ty("s3_access", "object_size"), ColumnType::BigInt);
    assert_eq!(ty("s3_access", "time"), ColumnType::Varchar(32));
    assert_eq!(ty("alb", "target_processing_time"), ColumnType::Double);
    assert_eq!(ty("alb", "matched_rule_priority"), ColumnType::Integer);
    // Every numeric column of the three parses text, and only those.
    for t in ["cloudfront", "s3_access", "alb"] {
        for c in &schemas[t].columns {
            let numeric = matches!(
                c.ty,
                ColumnType::SmallInt
                    | ColumnType::Integer
                    | ColumnType::BigInt
                    | ColumnType::Double
            );
            assert_eq!(c.from_text, numeric, "{t}.{}", c.name);
        }
    }
}
