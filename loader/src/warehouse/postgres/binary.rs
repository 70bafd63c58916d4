//! COPY's binary format, for tables whose every column allows it.
//!
//! The server parses text COPY field by field (`integer_in`,
//! `timestamp_in`…), and on the loader's data that was most of the
//! server's work: loading the same rows in binary took about half the
//! server time (measured with `COPY … TO/FROM` of 321,772 rows). The loader
//! has already parsed and checked every value, so writing it as binary
//! costs it nothing.
//!
//! Binary input must match the column's type exactly (an `int4` column
//! takes 4 bytes, not 8), so the plan is made from the table's columns as
//! the database has them (`pg_attribute`), in the same transaction as the
//! COPY; a column whose type is not one the schema's type writes exactly
//! (a hand-written migration that made a column `numeric`, say) makes the
//! whole file go as text, which the server converts as before.

use bytes::{BufMut, BytesMut};
use chrono::{NaiveDate, NaiveDateTime};

use crate::rows::Cell;
use crate::schema::{standard_columns, ColumnType, Dialect, TableSchema};

/// How one column is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Bool,
    Int2,
    Int4,
    Int8,
    Float8,
    /// text, varchar, char, json: the UTF-8 bytes.
    Text,
    /// jsonb: a version byte, then the text.
    Jsonb,
    /// Microseconds since 2000-01-01 00:00:00.
    Timestamp,
    /// Days since 2000-01-01.
    Date,
}

/// The signature every binary COPY stream starts with, then its flags and
/// header extension length (both 0).
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The fields of a COPY of `table` (its columns, then the standard ones),
/// given the database's type of each column by name (`format_type`), or
/// `None` when one of them must go as text.
pub fn plan(table: &TableSchema, db_types: &[(String, String)]) -> Option<Vec<Field>> {
    table
        .columns
        .iter()
        .cloned()
        .chain(standard_columns(Dialect::Postgres))
        .map(|c| {
            let (_, db) = db_types.iter().find(|(name, _)| *name == c.name)?;
            field(c.ty, db)
        })
        .collect()
}

/// The binary field for a schema type stored in a column of the database
/// type `db`, when the loader's value is exactly what that type takes.
fn field(ty: ColumnType, db: &str) -> Option<Field> {
    use ColumnType::*;
    // `format_type(atttypid, NULL)`: no length, e.g. `character varying`.
    Some(match (ty, db) {
        (Boolean, "boolean") => Field::Bool,
        (SmallInt, "smallint") => Field::Int2,
        (SmallInt | Integer, "integer") => Field::Int4,
        (SmallInt | Integer | BigInt, "bigint") => Field::Int8,
        (Double, "double precision") => Field::Float8,
        (Varchar(_) | Char(_) | Text, "text" | "character varying" | "character") => Field::Text,
        (Json, "json") => Field::Text,
        (Json, "jsonb") => Field::Jsonb,
        (Timestamp, "timestamp without time zone") => Field::Timestamp,
        (Date, "date") => Field::Date,
        _ => return None,
    })
}

pub fn header(buf: &mut BytesMut) {
    buf.put_slice(HEADER);
}

pub fn trailer(buf: &mut BytesMut) {
    buf.put_i16(-1);
}

/// Starts a row of `fields` fields.
pub fn row(buf: &mut BytesMut, fields: usize) {
    buf.put_i16(fields as i16);
}

/// One cell as the field `f`. The cell was made for the schema's type,
/// which [`plan`] matched with `f`; an error is a value the database
/// column cannot hold (it is narrower than the schema says).
pub fn cell(buf: &mut BytesMut, c: &Cell<'_>, f: Field) -> Result<(), String> {
    match (c, f) {
        (Cell::Null, _) => buf.put_i32(-1),
        (Cell::Bool(b), Field::Bool) => {
            buf.put_i32(1);
            buf.put_u8(*b as u8);
        }
        (Cell::Int(v), Field::Int2) => {
            let v = i16::try_from(*v).map_err(|_| format!("{v} is out of range for smallint"))?;
            buf.put_i32(2);
            buf.put_i16(v);
        }
        (Cell::Int(v), Field::Int4) => {
            let v = i32::try_from(*v).map_err(|_| format!("{v} is out of range for integer"))?;
            buf.put_i32(4);
            buf.put_i32(v);
        }
        (Cell::Int(v), Field::Int8) => {
            buf.put_i32(8);
            buf.put_i64(*v);
        }
        (Cell::Float(v), Field::Float8) => {
            buf.put_i32(8);
            buf.put_f64(*v);
        }
        (Cell::Text(s), Field::Text) => text(buf, 0, s),
        (Cell::Text(s), Field::Jsonb) => text(buf, 1, s),
        (Cell::Text(s), Field::Timestamp) => timestamp(buf, &parse_timestamp(s)?),
        (Cell::Text(s), Field::Date) => {
            let d =
                NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| format!("date {s:?}: {e}"))?;
            buf.put_i32(4);
            buf.put_i32((d - epoch().date()).num_days() as i32);
        }
        (c, f) => return Err(format!("a {c:?} cannot be written as {f:?}")),
    }
    Ok(())
}

/// A timestamp as the field `Timestamp` (for `_loaded_at`).
pub fn timestamp(buf: &mut BytesMut, t: &NaiveDateTime) {
    buf.put_i32(8);
    buf.put_i64((*t - epoch()).num_microseconds().unwrap_or(i64::MAX));
}

fn text(buf: &mut BytesMut, version: u8, s: &str) {
    let len = s.len() + usize::from(version > 0);
    buf.put_i32(len as i32);
    if version > 0 {
        buf.put_u8(version);
    }
    buf.put_slice(s.as_bytes());
}

fn epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("a valid date")
}

/// The text `rows::timestamp` made (`YYYY-MM-DD HH:MM:SS.ffffff`) back to
/// a time: by position for four-digit years, through chrono otherwise.
fn parse_timestamp(s: &str) -> Result<NaiveDateTime, String> {
    let b = s.as_bytes();
    let digits = |from: usize, to: usize| -> Option<u32> {
        b.get(from..to)?.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + (c - b'0') as u32)
        })
    };
    let by_position = || {
        if b.len() != 26 || [b[4], b[7], b[10], b[13], b[16], b[19]] != *b"-- ::." {
            return None;
        }
        NaiveDate::from_ymd_opt(digits(0, 4)? as i32, digits(5, 7)?, digits(8, 10)?)?
            .and_hms_micro_opt(
                digits(11, 13)?,
                digits(14, 16)?,
                digits(17, 19)?,
                digits(20, 26)?,
            )
    };
    by_position()
        .or_else(|| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").ok())
        .ok_or_else(|| format!("timestamp {s:?} is not YYYY-MM-DD HH:MM:SS.ffffff"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_follow_the_database_type() {
        use ColumnType::*;
        assert_eq!(field(Integer, "integer"), Some(Field::Int4));
        assert_eq!(field(SmallInt, "bigint"), Some(Field::Int8));
        assert_eq!(
            field(BigInt, "integer"),
            None,
            "narrower: the server checks it"
        );
        assert_eq!(field(Integer, "numeric"), None);
        assert_eq!(field(Varchar(5), "character varying"), Some(Field::Text));
        assert_eq!(field(Json, "jsonb"), Some(Field::Jsonb));
        assert_eq!(field(Text, "jsonb"), None);
    }

    #[test]
    fn timestamps_and_dates_count_from_2000() {
        let mut buf = BytesMut::new();
        cell(
            &mut buf,
            &Cell::Text("2000-01-01 00:00:01.000002".into()),
            Field::Timestamp,
        )
        .unwrap();
        assert_eq!(&buf[..], [0, 0, 0, 8, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x42]);
        buf.clear();
        cell(&mut buf, &Cell::Text("1999-12-31".into()), Field::Date).unwrap();
        assert_eq!(&buf[..], [0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff]);
        for s in ["2015-01-01 15:00:00.123456", "0001-01-01 00:00:00.000000"] {
            assert_eq!(
                parse_timestamp(s).unwrap(),
                NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap()
            );
        }
        assert!(parse_timestamp("2015-13-01 15:00:00.000000").is_err());
        buf.clear();
        assert!(cell(&mut buf, &Cell::Int(70_000), Field::Int2).is_err());
    }
}
