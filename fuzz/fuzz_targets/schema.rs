//! The loader's JSON Schema subset (`loader::schema::parse_schema`) and,
//! for a schema that parses, `create_table_sql` in every dialect: never a
//! panic, and every column a distinct valid name.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use loader::schema::{create_table_sql, parse_schema, Dialect};
use logrouter::normalize::validate_name;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(schema) = parse_schema("t", text, "t.json") else {
        return;
    };
    assert!(!schema.columns.is_empty());
    let mut names = HashSet::new();
    for c in &schema.columns {
        assert!(validate_name(&c.name).is_ok(), "column {:?}", c.name);
        assert!(names.insert(c.name.as_str()), "column {:?} twice", c.name);
        assert!(!c.path.is_empty());
    }
    let _ = schema.version();
    for dialect in [Dialect::Sqlite, Dialect::Postgres, Dialect::Redshift] {
        for db_schema in ["events", ""] {
            let sql = create_table_sql(&schema, dialect, db_schema);
            assert!(sql[0].starts_with("CREATE TABLE IF NOT EXISTS "));
        }
    }
});
