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
//! - `description` becomes the column comment.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use logrouter::normalize::{normalize_event_type, validate_name};
use serde_json::{Map, Value};

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
}

/// The columns of one event type's table (without the standard columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub table: String,
    pub columns: Vec<Column>,
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

const KNOWN: [&str; 15] = [
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
                "{}: unsupported keyword {key:?} (supported: {})",
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
        if structured {
            flatten(schema, path, names, !nullable, out)?;
        } else {
            let name = names.join("_");
            validate_name(&name).map_err(|e| format!("/{here}: column {name:?} {}", e.rule))?;
            out.push(Column {
                name,
                path: path.clone(),
                ty: column_type(&non_null, schema, &here)?,
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
