//! From `schemas/<event_type>.json` to table columns and DDL.
//!
//! A schema is a JSON Schema (draft 2020-12) subset: `type`, `properties`,
//! `required`, `format`, `maxLength`, `minimum`/`maximum`, `enum`, `items`,
//! `description` (plus `$schema`, `$id`, `title`, `examples` and
//! `additionalProperties`, which are ignored). Any other keyword is an error
//! naming it, so a typo such as `maxlength` never silently widens a column.
//!
//! Mapping:
//! - nested objects with `properties` are flattened, path segments joined
//!   with `_` (`user.id` → `user_id`); each segment goes through
//!   [`normalize_event_type`], the one naming function, so `userId` becomes
//!   `user_id` too, and two properties that collide are an error;
//! - arrays and objects without `properties` become one JSON column (SUPER
//!   on Redshift, jsonb on PostgreSQL, TEXT on SQLite);
//! - `format: date-time` → TIMESTAMP, `date` → DATE, `uuid` → CHAR(36);
//! - integers → the narrowest of SMALLINT / INTEGER / BIGINT that holds
//!   `minimum..=maximum` (BIGINT without both bounds); numbers → DOUBLE;
//! - strings → VARCHAR(`maxLength`, or the longest `enum` value), else
//!   unbounded (TEXT; VARCHAR(65535) on Redshift, whose lengths are bytes,
//!   so a bound of n characters becomes 4n bytes there);
//! - a column is NOT NULL only when it and every enclosing object are
//!   `required` and `null` is not among its types;
//! - `description` becomes the column comment;
//! - `x-logrouter-from-text: true` on an `integer`, `number` or `boolean`
//!   property: its values may arrive as JSON strings (`"200"`), parsed by
//!   the loader ([`FROM_TEXT`]); it changes no column type.

pub mod diff;
pub mod infer;
pub mod parse;

pub use parse::{load_dir, parse_schema};

use std::fmt;

/// A column's type, before it is spelled in a dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Boolean,
    SmallInt,
    Integer,
    BigInt,
    Double,
    /// At most this many characters.
    Varchar(u32),
    /// Unbounded text.
    Text,
    /// Exactly this many characters (UUIDs).
    Char(u32),
    Timestamp,
    Date,
    /// Arrays and free-form objects, kept as JSON.
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// Where the value is in an event: `["user", "id"]`.
    pub path: Vec<String>,
    pub ty: ColumnType,
    pub nullable: bool,
    pub comment: Option<String>,
    /// `x-logrouter-from-text`: the column's values may arrive as JSON
    /// strings holding its type (`"200"` for an integer), which the loader
    /// parses (see [`FROM_TEXT`]).
    pub from_text: bool,
}

/// The schema keyword of a property (`integer`, `number` or `boolean`)
/// whose values arrive as text: `{"type": "integer", "x-logrouter-from-text":
/// true}`. A JSON string that parses fully as the column's type is that
/// value (integers: an optional sign and ASCII digits; numbers: a finite
/// decimal with optional fraction and exponent; booleans: `true` or
/// `false`); any other string is `wrong_type`; a JSON value of the type is
/// accepted as without it. Access logs need it: their routed values are all
/// strings. Without it a string in such a column is `wrong_type`, since for
/// JSON events it is a producer's bug. It changes no DDL (`schema diff` and
/// the lock ignore it), only the rows.
pub const FROM_TEXT: &str = "x-logrouter-from-text";

/// The columns of one event type's table (without the standard columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub table: String,
    pub columns: Vec<Column>,
}

impl TableSchema {
    /// A short hash of what shapes the rows: each column's name, path, type
    /// and nullability (not comments). The ledger records it per file, so
    /// `loader reload` finds the files loaded under an earlier schema.
    pub fn version(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for c in &self.columns {
            h.update(c.name.as_bytes());
            h.update([0]);
            for seg in &c.path {
                h.update(seg.as_bytes());
                h.update([1]);
            }
            h.update(c.ty.token().as_bytes());
            h.update([u8::from(c.nullable), 0]);
            // Only when set, so the versions of schemas without it stay.
            if c.from_text {
                h.update(b"from_text\0");
            }
        }
        h.finalize()
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    Redshift,
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

/// Redshift's longest VARCHAR, in bytes.
const REDSHIFT_MAX_VARCHAR: u64 = 65_535;

/// The table of a type with no schema file: the whole event in one JSON
/// column, so no type is ever dropped.
pub fn schemaless(table: &str) -> TableSchema {
    TableSchema {
        table: table.to_owned(),
        columns: vec![Column {
            name: "event".to_owned(),
            path: Vec::new(),
            ty: ColumnType::Json,
            nullable: false,
            comment: Some("The whole event, as routed (no schema file for this type).".to_owned()),
            from_text: false,
        }],
    }
}

/// Columns every table has, so an analyst can trace a row back to the
/// routed file and line it came from, and to when it was loaded.
pub fn standard_columns(dialect: Dialect) -> Vec<Column> {
    let col = |name: &str, ty, comment: &str| Column {
        name: name.to_owned(),
        path: Vec::new(),
        ty,
        nullable: false,
        comment: Some(comment.to_owned()),
        from_text: false,
    };
    vec![
        col(
            "_routed_file",
            ColumnType::Text,
            "Key of the routed file the row was loaded from.",
        ),
        Column {
            // Redshift's COPY does not number lines: NULL there.
            nullable: dialect == Dialect::Redshift,
            ..col(
                "_routed_line",
                ColumnType::BigInt,
                "Line of the row in that file (1-based).",
            )
        },
        col(
            "_loaded_at",
            ColumnType::Timestamp,
            "When the row was loaded.",
        ),
    ]
}

impl ColumnType {
    /// A dialect-neutral spelling (`varchar(64)`), for the schema lock.
    pub fn token(self) -> String {
        use ColumnType::*;
        match self {
            Boolean => "boolean".into(),
            SmallInt => "smallint".into(),
            Integer => "integer".into(),
            BigInt => "bigint".into(),
            Double => "double".into(),
            Varchar(n) => format!("varchar({n})"),
            Text => "text".into(),
            Char(n) => format!("char({n})"),
            Timestamp => "timestamp".into(),
            Date => "date".into(),
            Json => "json".into(),
        }
    }

    /// The inverse of [`ColumnType::token`].
    pub fn from_token(s: &str) -> Option<Self> {
        use ColumnType::*;
        let sized = |prefix: &str| -> Option<u32> {
            s.strip_prefix(prefix)?.strip_suffix(')')?.parse().ok()
        };
        Some(match s {
            "boolean" => Boolean,
            "smallint" => SmallInt,
            "integer" => Integer,
            "bigint" => BigInt,
            "double" => Double,
            "text" => Text,
            "timestamp" => Timestamp,
            "date" => Date,
            "json" => Json,
            _ => {
                if let Some(n) = sized("varchar(") {
                    Varchar(n)
                } else {
                    Char(sized("char(")?)
                }
            }
        })
    }

    /// The type as `dialect` spells it.
    pub fn sql(self, dialect: Dialect) -> String {
        use ColumnType::*;
        use Dialect::*;
        match (self, dialect) {
            (Boolean, Sqlite) | (SmallInt, Sqlite) | (Integer, Sqlite) | (BigInt, Sqlite) => {
                "INTEGER".into()
            }
            (Double, Sqlite) => "REAL".into(),
            (_, Sqlite) => "TEXT".into(),
            (Boolean, _) => "BOOLEAN".into(),
            (SmallInt, _) => "SMALLINT".into(),
            (Integer, _) => "INTEGER".into(),
            (BigInt, _) => "BIGINT".into(),
            (Double, _) => "DOUBLE PRECISION".into(),
            (Varchar(n), Postgres) => format!("VARCHAR({n})"),
            (Varchar(n), Redshift) => {
                format!("VARCHAR({})", (n as u64 * 4).min(REDSHIFT_MAX_VARCHAR))
            }
            (Text, Postgres) => "TEXT".into(),
            (Text, Redshift) => format!("VARCHAR({REDSHIFT_MAX_VARCHAR})"),
            (Char(n), _) => format!("CHAR({n})"),
            (Timestamp, _) => "TIMESTAMP".into(),
            (Date, _) => "DATE".into(),
            (Json, Postgres) => "JSONB".into(),
            (Json, Redshift) => "SUPER".into(),
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
            Dialect::Redshift => "redshift",
        })
    }
}

/// `"events"."video_play"`, or `"video_play"` on SQLite (no schemas there)
/// and when `db_schema` is empty (migrations: they run with the schema as
/// `search_path`, so the same file serves any configured schema).
pub fn qualified(table: &str, dialect: Dialect, db_schema: &str) -> String {
    match dialect {
        _ if db_schema.is_empty() => format!("\"{table}\""),
        Dialect::Sqlite => format!("\"{table}\""),
        _ => format!("\"{db_schema}\".\"{table}\""),
    }
}

/// A SQL string literal (`'` doubled), for text in statements that take no
/// parameters (DDL, Data API batches).
pub fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The statements that create `t` with its standard columns: the table,
/// then (PostgreSQL, Redshift) one `COMMENT ON COLUMN` per description.
/// Names are safe to quote as they are: every one passed `validate_name`.
pub fn create_table_sql(t: &TableSchema, dialect: Dialect, db_schema: &str) -> Vec<String> {
    let name = qualified(&t.table, dialect, db_schema);
    let all: Vec<Column> = t
        .columns
        .iter()
        .cloned()
        .chain(standard_columns(dialect))
        .collect();
    let cols: Vec<String> = all
        .iter()
        .map(|c| {
            let null = if c.nullable { "" } else { " NOT NULL" };
            format!("  \"{}\" {}{null}", c.name, c.ty.sql(dialect))
        })
        .collect();
    let mut out = vec![format!(
        "CREATE TABLE IF NOT EXISTS {name} (\n{}\n)",
        cols.join(",\n")
    )];
    if dialect != Dialect::Sqlite {
        for c in &all {
            if let Some(comment) = &c.comment {
                out.push(format!(
                    "COMMENT ON COLUMN {name}.\"{}\" IS {}",
                    c.name,
                    sql_string(comment)
                ));
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Columns as `name type null?`, one per line, in schema order.
    fn check(schema: &str, expected: &str) {
        let t = parse_schema("t", schema, "t.json").unwrap();
        let got: Vec<String> = t
            .columns
            .iter()
            .map(|c| {
                format!(
                    "{} {}{}",
                    c.name,
                    c.ty.sql(Dialect::Postgres),
                    if c.nullable { " null" } else { "" }
                )
            })
            .collect();
        let want: Vec<&str> = expected.trim().lines().map(str::trim).collect();
        assert_eq!(got, want, "{schema}");
    }

    fn check_err(schema: &str, needle: &str) {
        let e = parse_schema("t", schema, "t.json").unwrap_err().to_string();
        assert!(e.contains(needle), "{e}");
    }

    /// Found by fuzzing (issue #13's note): an `enum` of only `""` failed
    /// with "maxLength must be at least 1", which the schema never said.
    #[test]
    fn issue13_an_enum_of_only_the_empty_string_is_a_column_of_one() {
        check(
            r#"{"type":"object","properties":{"e":{"type":"string","enum":[""]}}}"#,
            "e VARCHAR(1) null",
        );
        check_err(
            r#"{"type":"object","properties":{"e":{"type":"string","maxLength":0}}}"#,
            "maxLength must be at least 1",
        );
    }

    #[test]
    fn mapping_table() {
        check(
            r#"{"type":"object","required":["id","user","ts"],"properties":{
                "id":{"type":"string","format":"uuid"},
                "ts":{"type":"string","format":"date-time","description":"When it happened"},
                "day":{"type":"string","format":"date"},
                "user":{"type":"object","required":["id"],"properties":{
                    "id":{"type":"integer","minimum":0,"maximum":2147483647},
                    "countryCode":{"type":"string","maxLength":2}}},
                "device":{"type":"object","required":["os"],"properties":{"os":{"type":"string"}}},
                "n16":{"type":"integer","minimum":-5,"maximum":300},
                "n64":{"type":"integer","minimum":0},
                "plan":{"type":"string","enum":["free","premium"]},
                "score":{"type":["number","null"]},
                "ok":{"type":"boolean"},
                "tags":{"type":"array","items":{"type":"string"}},
                "extra":{"type":"object"},
                "mixed":{"type":["string","integer"]}}}"#,
            r#"
            id CHAR(36)
            ts TIMESTAMP
            day DATE null
            user_id INTEGER
            user_country_code VARCHAR(2) null
            device_os TEXT null
            n16 SMALLINT null
            n64 BIGINT null
            plan VARCHAR(7) null
            score DOUBLE PRECISION null
            ok BOOLEAN null
            tags JSONB null
            extra JSONB null
            mixed JSONB null
            "#,
        );
    }

    #[test]
    fn errors_name_the_place_and_the_fix() {
        check_err(
            r#"{"type":"object","properties":{"a":{"type":"string","maxlength":3}}}"#,
            "\"maxlength\"",
        );
        check_err(
            r#"{"type":"object","properties":{"a":{"type":"text"}}}"#,
            "/a: unknown type",
        );
        check_err(
            r#"{"type":"object","properties":{"userId":{"type":"string"},"user_id":{"type":"string"}}}"#,
            "rename one",
        );
        check_err(
            r#"{"type":"object","properties":{"n":{"type":"integer","minimum":5,"maximum":1}}}"#,
            "above maximum",
        );
        check_err(
            r#"{"type":"object","properties":{"☃":{"type":"string"}}}"#,
            "property name",
        );
        check_err(r#"{"type":"array"}"#, "top level");
        check_err(r#"{"type":"object","properties":{}}"#, "no properties");
        check_err("not json", "not JSON");
        let e = parse_schema(
            "Video Play",
            r#"{"type":"object","properties":{"a":{"type":"string"}}}"#,
            "Video Play.json",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("rename it"), "{e}");
    }

    /// `x-logrouter-from-text`: on integer, number and boolean properties
    /// only; it changes no type, and the version only where it is set.
    #[test]
    fn from_text_keyword() {
        let t = parse_schema(
            "t",
            r#"{"type":"object","properties":{
                "a":{"type":"integer","x-logrouter-from-text":true,"minimum":0,"maximum":999},
                "b":{"type":["number","null"],"x-logrouter-from-text":true},
                "c":{"type":"boolean","x-logrouter-from-text":false},
                "d":{"type":"integer","minimum":0,"maximum":999}}}"#,
            "t.json",
        )
        .unwrap();
        let got: Vec<(String, bool)> = t
            .columns
            .iter()
            .map(|c| (c.ty.token(), c.from_text))
            .collect();
        let want = [
            ("smallint", true),
            ("double", true),
            ("boolean", false),
            ("smallint", false),
        ];
        assert_eq!(got, want.map(|(t, f)| (t.to_owned(), f)));
        let plain = parse_schema(
            "t",
            r#"{"type":"object","properties":{"a":{"type":"integer"}}}"#,
            "t.json",
        )
        .unwrap();
        let opted = parse_schema(
            "t",
            r#"{"type":"object","properties":{"a":{"type":"integer","x-logrouter-from-text":true}}}"#,
            "t.json",
        )
        .unwrap();
        let off = parse_schema(
            "t",
            r#"{"type":"object","properties":{"a":{"type":"integer","x-logrouter-from-text":false}}}"#,
            "t.json",
        )
        .unwrap();
        assert_eq!(plain.version(), off.version());
        assert_ne!(plain.version(), opted.version());
        assert_eq!(
            create_table_sql(&plain, Dialect::Postgres, "events"),
            create_table_sql(&opted, Dialect::Postgres, "events")
        );
        for (prop, needle) in [
            (
                r#"{"type":"string","x-logrouter-from-text":true}"#,
                "/a: x-logrouter-from-text applies to a property of type integer, number or boolean (with or without null), not string",
            ),
            (
                r#"{"type":"string","format":"date-time","x-logrouter-from-text":true}"#,
                "not string",
            ),
            (
                r#"{"type":["integer","string"],"x-logrouter-from-text":true}"#,
                "not integer or string",
            ),
            (
                r#"{"type":"object","properties":{"x":{"type":"integer"}},"x-logrouter-from-text":true}"#,
                "not object",
            ),
            (
                r#"{"type":"integer","x-logrouter-from-text":"yes"}"#,
                "/a: x-logrouter-from-text must be true or false, not \"yes\"",
            ),
            (
                r#"{"type":"integer","x-logrouter-fromtext":true}"#,
                "unsupported keyword \"x-logrouter-fromtext\"",
            ),
        ] {
            check_err(
                &format!(r#"{{"type":"object","properties":{{"a":{prop}}}}}"#),
                needle,
            );
        }
        check_err(
            r#"{"type":"object","x-logrouter-from-text":true,"properties":{"a":{"type":"integer"}}}"#,
            "the top level: x-logrouter-from-text belongs on an integer, number or boolean property",
        );
    }

    #[test]
    fn redshift_lengths_are_bytes() {
        assert_eq!(
            ColumnType::Varchar(10).sql(Dialect::Redshift),
            "VARCHAR(40)"
        );
        assert_eq!(
            ColumnType::Varchar(60_000).sql(Dialect::Redshift),
            "VARCHAR(65535)"
        );
        assert_eq!(ColumnType::Text.sql(Dialect::Redshift), "VARCHAR(65535)");
        assert_eq!(ColumnType::Json.sql(Dialect::Redshift), "SUPER");
        assert_eq!(ColumnType::Json.sql(Dialect::Sqlite), "TEXT");
    }

    /// sqlparser 0.59's Redshift dialect lacks `COMMENT ON`, which Redshift
    /// has (docs: COMMENT); this one adds only that, for those statements.
    #[derive(Debug)]
    struct RedshiftWithComment(sqlparser::dialect::RedshiftSqlDialect);

    impl sqlparser::dialect::Dialect for RedshiftWithComment {
        fn is_identifier_start(&self, c: char) -> bool {
            self.0.is_identifier_start(c)
        }
        fn is_identifier_part(&self, c: char) -> bool {
            self.0.is_identifier_part(c)
        }
        fn is_delimited_identifier_start(&self, c: char) -> bool {
            self.0.is_delimited_identifier_start(c)
        }
        fn supports_comment_on(&self) -> bool {
            true
        }
    }

    /// Parses one statement as `dialect` (Redshift or PostgreSQL) would.
    pub(crate) fn parse_as(dialect: Dialect, sql: &str) -> Result<(), String> {
        use sqlparser::dialect::{PostgreSqlDialect, RedshiftSqlDialect};
        use sqlparser::parser::Parser;
        let parser: &dyn sqlparser::dialect::Dialect = match dialect {
            Dialect::Redshift if sql.starts_with("COMMENT ON") => {
                &RedshiftWithComment(RedshiftSqlDialect {})
            }
            Dialect::Redshift => &RedshiftSqlDialect {},
            _ => &PostgreSqlDialect {},
        };
        Parser::parse_sql(parser, sql)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn ddl_parses_as_redshift_and_postgres() {
        use sqlparser::dialect::{PostgreSqlDialect, RedshiftSqlDialect};
        use sqlparser::parser::Parser;
        let redshift_comment = RedshiftWithComment(RedshiftSqlDialect {});
        let t = parse_schema(
            "video_play",
            r#"{"type":"object","properties":{"title":{"type":"string","description":"It's the title"},
                "tags":{"type":"array"},"n":{"type":"integer","minimum":0,"maximum":9}}}"#,
            "video_play.json",
        )
        .unwrap();
        for (dialect, parser) in [
            (
                Dialect::Redshift,
                &RedshiftSqlDialect {} as &dyn sqlparser::dialect::Dialect,
            ),
            (Dialect::Postgres, &PostgreSqlDialect {}),
        ] {
            let stmts = create_table_sql(&t, dialect, "events");
            assert_eq!(
                stmts.len(),
                1 + 1 + 3,
                "table, one description, three standard comments"
            );
            for s in &stmts {
                let parser = if dialect == Dialect::Redshift && s.starts_with("COMMENT ON") {
                    &redshift_comment
                } else {
                    parser
                };
                Parser::parse_sql(parser, s).unwrap_or_else(|e| panic!("{dialect}: {e}\n{s}"));
            }
        }
        let sqlite = create_table_sql(&schemaless("odd_type"), Dialect::Sqlite, "events");
        assert_eq!(sqlite.len(), 1);
        assert!(
            sqlite[0].contains("\"event\" TEXT NOT NULL"),
            "{}",
            sqlite[0]
        );
    }
}
