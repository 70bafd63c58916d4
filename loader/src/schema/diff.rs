//! `loader schema diff`: turns changes in `schemas/` into new, reviewable
//! migration files, one per dialect.
//!
//! What the migrations have built so far is recorded beside them in
//! `migrations/schemas.lock.json` (columns per table, dialect-neutral), so
//! the diff needs no warehouse connection and its result can be reviewed in
//! a pull request like any code. Only changes that cannot lose or reinterpret
//! loaded rows are generated: a new table, a new optional column, a wider
//! string. Everything else (a removed column or table, a changed type, a new
//! required column, a column made optional or required) is refused with the
//! field and the way out: a new, versioned table (`video_play_v2`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::migrate::read_dir;
use crate::schema::{create_table_sql, Column, ColumnType, Dialect, TableSchema};

pub const LOCK_FILE: &str = "schemas.lock.json";
const DIALECTS: [Dialect; 3] = [Dialect::Sqlite, Dialect::Postgres, Dialect::Redshift];

/// The lock: what the migrations have built, table → columns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub tables: BTreeMap<String, Vec<LockedColumn>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub nullable: bool,
}

impl Lock {
    pub fn of(schemas: &BTreeMap<String, TableSchema>) -> Self {
        Lock {
            tables: schemas
                .iter()
                .map(|(t, s)| {
                    let cols = s
                        .columns
                        .iter()
                        .map(|c| LockedColumn {
                            name: c.name.clone(),
                            ty: c.ty.token(),
                            nullable: c.nullable,
                        })
                        .collect();
                    (t.clone(), cols)
                })
                .collect(),
        }
    }
}

/// One generated change.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    CreateTable(TableSchema),
    AddColumn {
        table: String,
        column: Column,
    },
    Widen {
        table: String,
        column: Column,
        from: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct Refused(pub Vec<String>);

/// The changes from `lock` to `schemas`, or every breaking change found.
pub fn diff(lock: &Lock, schemas: &BTreeMap<String, TableSchema>) -> Result<Vec<Change>, Refused> {
    let mut changes = Vec::new();
    let mut refused = Vec::new();
    let way_out = |table: &str| {
        format!("create a new versioned table instead (a new event type such as {table}_v2, with its own schema file)")
    };
    for table in lock.tables.keys() {
        if !schemas.contains_key(table) {
            refused.push(format!(
                "schemas/{table}.json was removed, but table {table} exists: restore the file (the table keeps its columns), or {}",
                way_out(table)
            ));
        }
    }
    for (table, schema) in schemas {
        let Some(old) = lock.tables.get(table) else {
            changes.push(Change::CreateTable(schema.clone()));
            continue;
        };
        for o in old {
            if !schema.columns.iter().any(|c| c.name == o.name) {
                refused.push(format!(
                    "{table}.{}: removed from the schema; removing a column drops loaded data: keep it (optional), or {}",
                    o.name,
                    way_out(table)
                ));
            }
        }
        for c in &schema.columns {
            let Some(o) = old.iter().find(|o| o.name == c.name) else {
                if c.nullable {
                    changes.push(Change::AddColumn {
                        table: table.clone(),
                        column: c.clone(),
                    });
                } else {
                    refused.push(format!(
                        "{table}.{}: a new required field; rows already loaded have no value for it: make it optional (leave it out of \"required\"), or {}",
                        c.name,
                        way_out(table)
                    ));
                }
                continue;
            };
            if o.nullable != c.nullable {
                refused.push(format!(
                    "{table}.{}: changed from {} to {}; Redshift cannot change a column's nullability: keep it as it was, or {}",
                    c.name,
                    if o.nullable { "optional" } else { "required" },
                    if c.nullable { "optional" } else { "required" },
                    way_out(table)
                ));
            }
            let new = c.ty.token();
            if o.ty == new {
                continue;
            }
            let wider = match (ColumnType::from_token(&o.ty), c.ty) {
                (Some(ColumnType::Varchar(a)), ColumnType::Varchar(b)) => b > a,
                (Some(ColumnType::Varchar(_)), ColumnType::Text) => true,
                _ => false,
            };
            if wider {
                changes.push(Change::Widen {
                    table: table.clone(),
                    column: c.clone(),
                    from: o.ty.clone(),
                });
            } else {
                refused.push(format!(
                    "{table}.{}: type changed from {} to {new}; only a wider string can change in place: keep the old type, or {}",
                    c.name,
                    o.ty,
                    way_out(table)
                ));
            }
        }
    }
    if refused.is_empty() {
        Ok(changes)
    } else {
        Err(Refused(refused))
    }
}

/// The SQL of `changes` in `dialect`, names unqualified (migrations run with
/// the configured schema as `search_path`).
pub fn sql(changes: &[Change], dialect: Dialect) -> String {
    let mut out = String::new();
    for change in changes {
        let stmts: Vec<String> = match change {
            Change::CreateTable(t) => create_table_sql(t, dialect, ""),
            Change::AddColumn { table, column } => {
                let mut v = vec![format!(
                    "ALTER TABLE \"{table}\" ADD COLUMN \"{}\" {}",
                    column.name,
                    column.ty.sql(dialect)
                )];
                if let (Some(comment), false) = (&column.comment, dialect == Dialect::Sqlite) {
                    v.push(format!(
                        "COMMENT ON COLUMN \"{table}\".\"{}\" IS {}",
                        column.name,
                        crate::schema::sql_string(comment)
                    ));
                }
                v
            }
            Change::Widen { table, column, from } => match dialect {
                // SQLite's TEXT has no length: nothing to change.
                Dialect::Sqlite => vec![format!(
                    "-- {table}.{}: {from} -> {} (SQLite text has no length; nothing to do)\nSELECT 1",
                    column.name,
                    column.ty.token()
                )],
                _ => vec![format!(
                    "ALTER TABLE \"{table}\" ALTER COLUMN \"{}\" TYPE {}",
                    column.name,
                    column.ty.sql(dialect)
                )],
            },
        };
        for s in stmts {
            out.push_str(&s);
            out.push_str(";\n\n");
        }
    }
    out
}

/// What `schema diff` wrote (or would write, with `check`).
#[derive(Debug)]
pub struct DiffReport {
    pub changes: Vec<Change>,
    pub files: Vec<PathBuf>,
}

/// Compares `schemas` with the lock under `migrations`; unless `check`,
/// writes `NNNN_<name>.sql` for every dialect and updates the lock.
pub fn write_migrations(
    schemas: &BTreeMap<String, TableSchema>,
    migrations: &Path,
    name: &str,
    check: bool,
) -> Result<DiffReport, String> {
    let lock_path = migrations.join(LOCK_FILE);
    let lock: Lock = match std::fs::read(&lock_path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            format!(
                "{}: {e} (restore it from version control)",
                lock_path.display()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Lock::default(),
        Err(e) => return Err(format!("{}: {e}", lock_path.display())),
    };
    let changes = diff(&lock, schemas).map_err(|e| e.to_string())?;
    if changes.is_empty() || check {
        return Ok(DiffReport {
            changes,
            files: Vec::new(),
        });
    }
    logrouter::normalize::validate_name(name).map_err(|e| {
        format!(
            "--name {name:?} {}: use lower case, digits and _, e.g. add_video_quality",
            e.rule
        )
    })?;
    let mut next = 1;
    for d in DIALECTS {
        let dir = crate::migrate::dialect_dir(migrations, d);
        let last = read_dir(&dir)
            .map_err(|e| e.to_string())?
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0);
        next = next.max(last + 1);
    }
    let mut files = Vec::new();
    for d in DIALECTS {
        let dir = crate::migrate::dialect_dir(migrations, d);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(format!("{next:04}_{name}.sql"));
        let text = format!(
            "-- Generated by `loader schema diff` from schemas/; reviewed like code.\n-- Applied once, in order, by `loader migrate`; never edit it after it is applied.\n\n{}",
            sql(&changes, d)
        );
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        files.push(path);
    }
    let text = serde_json::to_string_pretty(&Lock::of(schemas)).expect("lock serialises") + "\n";
    std::fs::write(&lock_path, text).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    files.push(lock_path);
    Ok(DiffReport { changes, files })
}

/// A one-line description of a change.
pub fn describe(c: &Change) -> String {
    match c {
        Change::CreateTable(t) => format!("create table {} ({} columns)", t.table, t.columns.len()),
        Change::AddColumn { table, column } => {
            format!("add column {table}.{} {}", column.name, column.ty.token())
        }
        Change::Widen {
            table,
            column,
            from,
        } => format!(
            "widen {table}.{} from {from} to {}",
            column.name,
            column.ty.token()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::parse_schema;

    fn schemas(list: &[(&str, &str)]) -> BTreeMap<String, TableSchema> {
        list.iter()
            .map(|(t, props)| {
                let json =
                    format!("{{\"type\":\"object\",\"required\":[\"id\"],\"properties\":{props}}}");
                (t.to_string(), parse_schema(t, &json, "x.json").unwrap())
            })
            .collect()
    }

    /// Diff from `old` to `new`: the changes one per line, or the refusal.
    fn check(old: &[(&str, &str)], new: &[(&str, &str)], expected: &str) {
        let lock = Lock::of(&schemas(old));
        let got = match diff(&lock, &schemas(new)) {
            Ok(c) => c.iter().map(describe).collect::<Vec<_>>().join("\n"),
            Err(e) => format!("refused: {e}"),
        };
        assert!(
            got == expected
                || (expected.ends_with('…') && got.starts_with(expected.trim_end_matches('…'))),
            "\n got: {got}\nwant: {expected}"
        );
    }

    const ID: &str = r#""id":{"type":"integer"}"#;

    #[test]
    fn additive_changes_are_generated() {
        check(
            &[],
            &[("a", &format!("{{{ID}}}"))],
            "create table a (1 columns)",
        );
        check(
            &[("a", &format!("{{{ID}}}"))],
            &[(
                "a",
                &format!("{{{ID},\"n\":{{\"type\":\"string\",\"maxLength\":5}}}}"),
            )],
            "add column a.n varchar(5)",
        );
        check(
            &[(
                "a",
                &format!("{{{ID},\"n\":{{\"type\":\"string\",\"maxLength\":5}}}}"),
            )],
            &[(
                "a",
                &format!("{{{ID},\"n\":{{\"type\":\"string\",\"maxLength\":9}}}}"),
            )],
            "widen a.n from varchar(5) to varchar(9)",
        );
        check(
            &[(
                "a",
                &format!("{{{ID},\"n\":{{\"type\":\"string\",\"maxLength\":5}}}}"),
            )],
            &[("a", &format!("{{{ID},\"n\":{{\"type\":\"string\"}}}}"))],
            "widen a.n from varchar(5) to text",
        );
        check(
            &[("a", &format!("{{{ID}}}"))],
            &[("a", &format!("{{{ID}}}"))],
            "",
        );
    }

    /// `x-logrouter-from-text` is a loading rule, not DDL: set or cleared
    /// on a column it is no change; with a new type it is a type change.
    #[test]
    fn from_text_is_no_change_of_type() {
        const FT: &str = r#""x-logrouter-from-text":true"#;
        check(
            &[("a", &format!("{{{ID},\"n\":{{\"type\":\"integer\"}}}}"))],
            &[(
                "a",
                &format!("{{{ID},\"n\":{{\"type\":\"integer\",{FT}}}}}"),
            )],
            "",
        );
        check(
            &[(
                "a",
                &format!("{{{ID},\"n\":{{\"type\":\"integer\",{FT}}}}}"),
            )],
            &[("a", &format!("{{{ID},\"n\":{{\"type\":\"integer\"}}}}"))],
            "",
        );
        check(
            &[("a", &format!("{{{ID}}}"))],
            &[("a", &format!("{{{ID},\"n\":{{\"type\":\"number\",{FT}}}}}"))],
            "add column a.n double",
        );
        check(
            &[(
                "a",
                &format!("{{{ID},\"n\":{{\"type\":\"string\",\"maxLength\":20}}}}"),
            )],
            &[(
                "a",
                &format!("{{{ID},\"n\":{{\"type\":\"integer\",{FT}}}}}"),
            )],
            "refused: a.n: type changed from varchar(20) to bigint…",
        );
    }

    #[test]
    fn breaking_changes_are_refused_with_the_way_out() {
        check(
            &[("a", &format!("{{{ID},\"n\":{{\"type\":\"string\"}}}}"))],
            &[("a", &format!("{{{ID}}}"))],
            "refused: a.n: removed from the schema; removing a column drops loaded data: keep it (optional), or create a new versioned table instead (a new event type such as a_v2…",
        );
        check(
            &[("a", &format!("{{{ID},\"n\":{{\"type\":\"string\"}}}}"))],
            &[("a", &format!("{{{ID},\"n\":{{\"type\":\"integer\"}}}}"))],
            "refused: a.n: type changed from text to bigint…",
        );
        check(
            &[(
                "a",
                &format!("{{{ID},\"n\":{{\"type\":\"string\",\"maxLength\":9}}}}"),
            )],
            &[(
                "a",
                &format!("{{{ID},\"n\":{{\"type\":\"string\",\"maxLength\":5}}}}"),
            )],
            "refused: a.n: type changed from varchar(9) to varchar(5)…",
        );
        check(
            &[("a", &format!("{{{ID}}}"))],
            &[("a", r#"{"id":{"type":"integer"},"m":{"type":"integer"}}"#)],
            "add column a.m bigint",
        );
        check(
            &[("a", &format!("{{{ID}}}"))],
            &[],
            "refused: schemas/a.json was removed…",
        );
        let lock = Lock::of(&schemas(&[("a", &format!("{{{ID}}}"))]));
        let mut new = schemas(&[("a", &format!("{{{ID}}}"))]);
        new.get_mut("a").unwrap().columns.push(Column {
            name: "r".into(),
            path: vec!["r".into()],
            ty: ColumnType::Boolean,
            nullable: false,
            comment: None,
            from_text: false,
        });
        let e = diff(&lock, &new).unwrap_err().to_string();
        assert!(e.starts_with("a.r: a new required field"), "{e}");
    }

    #[test]
    fn generated_sql_parses_for_redshift_and_postgres() {
        let old = schemas(&[(
            "a",
            &format!("{{{ID},\"n\":{{\"type\":\"string\",\"maxLength\":5}}}}"),
        )]);
        let new = schemas(&[
            ("a", &format!("{{{ID},\"n\":{{\"type\":\"string\",\"maxLength\":9}},\"o\":{{\"type\":\"boolean\",\"description\":\"it's\"}}}}")),
            ("b", &format!("{{{ID}}}")),
        ]);
        let changes = diff(&Lock::of(&old), &new).unwrap();
        assert_eq!(changes.len(), 3);
        for d in [Dialect::Postgres, Dialect::Redshift] {
            let text = sql(&changes, d);
            let stmts: Vec<&str> = text
                .split(";\n\n")
                .filter(|s| !s.trim().is_empty())
                .collect();
            assert_eq!(stmts.len(), 7, "{d}:\n{text}");
            for s in stmts {
                crate::schema::tests::parse_as(d, s).unwrap_or_else(|e| panic!("{d}: {e}\n{s}"));
            }
        }
    }
}
