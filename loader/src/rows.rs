//! One routed line → the cells of its table's row.
//!
//! The conversion is done here, in Rust, for every warehouse alike, rather
//! than by each database's own casts: the same event gives the same row in
//! SQLite and PostgreSQL, a bad value is reported with the file, line, column
//! and the fix (not as a database error about "invalid input syntax"), and
//! timestamps with an offset are turned into UTC instead of having the offset
//! silently dropped (PostgreSQL's `timestamp` ignores it).

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, NaiveDateTime};
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
pub struct RowMaker<'s> {
    table: &'s TableSchema,
}

impl<'s> RowMaker<'s> {
    pub fn new(table: &'s TableSchema) -> Self {
        Self { table }
    }

    /// The cells of `line` (already parsed as `value`) for the table's own
    /// columns, in order; the standard columns are the caller's.
    pub fn cells<'v>(
        &self,
        line: &'v str,
        value: &'v Value,
        out: &mut Vec<Cell<'v>>,
    ) -> Result<(), RowError> {
        out.clear();
        // A schemaless table stores the line itself; its caller checked it
        // is an object without building `value` (Null then).
        let whole_line = self.table.columns.iter().all(|c| c.path.is_empty());
        if !whole_line && !value.is_object() {
            return Err(RowError {
                column: "(line)".into(),
                reason: RejectReason::NotAnObject,
                message: "is not a JSON object".into(),
            });
        }
        for c in &self.table.columns {
            if c.path.is_empty() {
                // The whole event (schemaless table): the line as routed.
                if line.contains("\\u0000") {
                    return Err(nul(c));
                }
                out.push(Cell::Text(Cow::Borrowed(line)));
                continue;
            }
            let found = lookup(value, &c.path);
            out.push(cell(c, found)?);
        }
        Ok(())
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

fn lookup<'v>(value: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut at = value;
    for seg in path {
        at = at.as_object()?.get(seg)?;
    }
    Some(at)
}

fn cell<'v>(c: &Column, v: Option<&'v Value>) -> Result<Cell<'v>, RowError> {
    let fail = |reason: RejectReason, message: String| RowError {
        column: c.name.clone(),
        reason,
        message,
    };
    let v = match v {
        None | Some(Value::Null) if c.nullable => return Ok(Cell::Null),
        None => {
            return Err(fail(
                RejectReason::MissingRequired,
                format!(
            "required field {} is missing (make it optional in the schema, or fix the producer)",
            c.path.join(".")
        ),
            ))
        }
        Some(Value::Null) => {
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
        ColumnType::Boolean => Cell::Bool(v.as_bool().ok_or_else(|| wrong("a boolean"))?),
        ColumnType::SmallInt | ColumnType::Integer | ColumnType::BigInt => {
            let n = integer(v).ok_or_else(|| wrong("an integer"))?;
            let (lo, hi) = match c.ty {
                ColumnType::SmallInt => (i16::MIN as i64, i16::MAX as i64),
                ColumnType::Integer => (i32::MIN as i64, i32::MAX as i64),
                _ => (i64::MIN, i64::MAX),
            };
            if n < lo || n > hi {
                return Err(fail(RejectReason::OutOfRange, format!(
                    "{n} is outside the column's range {lo}..={hi} (widen minimum/maximum in the schema and add a migration)"
                )));
            }
            Cell::Int(n)
        }
        ColumnType::Double => {
            let f = v.as_f64().ok_or_else(|| wrong("a number"))?;
            Cell::Float(f)
        }
        ColumnType::Varchar(n) | ColumnType::Char(n) => {
            let s = v.as_str().ok_or_else(|| wrong("a string"))?;
            if s.contains('\0') {
                return Err(nul(c));
            }
            let len = s.chars().count();
            if len > n as usize {
                return Err(fail(RejectReason::TooLong, format!(
                    "{len} characters do not fit its {n} (raise maxLength in the schema and add a migration: `loader schema diff`)"
                )));
            }
            Cell::Text(Cow::Borrowed(s))
        }
        ColumnType::Text => {
            let s = v.as_str().ok_or_else(|| wrong("a string"))?;
            if s.contains('\0') {
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
            let text = v.to_string();
            if text.contains("\\u0000") {
                return Err(nul(c));
            }
            Cell::Text(Cow::Owned(text))
        }
    })
}

fn integer(v: &Value) -> Option<i64> {
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
    Some(utc.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
}

fn excerpt(v: &Value) -> String {
    let s = v.to_string();
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
        let value: Value = serde_json::from_str(line).unwrap();
        let mut out = Vec::new();
        let got = match RowMaker::new(&t).cells(line, &value, &mut out) {
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

    #[test]
    fn schemaless_rows_keep_the_line_as_routed() {
        let t = crate::schema::schemaless("x");
        let line = r#"{"b":1, "a":2}"#;
        let value: Value = serde_json::from_str(line).unwrap();
        let mut out = Vec::new();
        RowMaker::new(&t).cells(line, &value, &mut out).unwrap();
        assert_eq!(out, vec![Cell::Text(Cow::Borrowed(line))]);
    }
}
