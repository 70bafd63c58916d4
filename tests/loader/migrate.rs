//! `loader migrate`: pending files in order, recorded with checksums; an
//! applied file that changed or vanished is an error naming the way out.

use std::path::Path;

use crate::support::*;

fn migrate(dir: &Path, url: &str, schema: &str) -> std::process::Output {
    let mut cmd = loader();
    cmd.env("LOGROUTER_LOAD__DB_SCHEMA", schema);
    run(
        &mut cmd,
        &[
            "migrate",
            "--warehouse",
            url,
            "--migrations",
            dir.to_str().unwrap(),
        ],
    )
}

#[tokio::test]
async fn migrations_apply_once_in_order_and_must_not_change() {
    for dialect in ["sqlite", "postgres"] {
        let dir = tempfile::tempdir().unwrap();
        let mdir = dir.path().join("migrations");
        let d = mdir.join(dialect);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("0001_create_t.sql"),
            "CREATE TABLE t (a INTEGER);\nCREATE TABLE u (b INTEGER);\n",
        )
        .unwrap();
        std::fs::write(
            d.join("0002_add_c.sql"),
            "ALTER TABLE t ADD COLUMN c TEXT;\n",
        )
        .unwrap();
        std::fs::write(d.join("README.md"), "not a migration").unwrap();
        let url = match dialect {
            "sqlite" => format!("sqlite:{}", dir.path().join("w.db").display()),
            _ => database_url(),
        };
        let schema = unique_schema("mig");

        let out = migrate(&mdir, &url, &schema);
        assert!(out.status.success(), "{dialect}");
        assert!(
            text(&out).contains(
                "2 migrations applied (0001_create_t, 0002_add_c), 0 were already applied"
            ),
            "{}",
            text(&out)
        );
        let out = migrate(&mdir, &url, &schema);
        assert!(
            text(&out).contains("0 migrations applied, 2 were already applied"),
            "{}",
            text(&out)
        );

        // A new one applies alone.
        std::fs::write(
            d.join("0003_add_d.sql"),
            "ALTER TABLE u ADD COLUMN d TEXT;\n",
        )
        .unwrap();
        let out = migrate(&mdir, &url, &schema);
        assert!(
            text(&out).contains("1 migrations applied (0003_add_d), 2 were already applied"),
            "{}",
            text(&out)
        );

        // A failing migration is not recorded and leaves nothing behind.
        std::fs::write(
            d.join("0004_broken.sql"),
            "CREATE TABLE v (x INTEGER);\nALTER TABLE nope ADD COLUMN y TEXT;\n",
        )
        .unwrap();
        let out = migrate(&mdir, &url, &schema);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out).contains("migration 0004_broken"),
            "{}",
            text(&out)
        );
        std::fs::write(d.join("0004_broken.sql"), "CREATE TABLE v (x INTEGER);\n").unwrap();
        let out = migrate(&mdir, &url, &schema);
        assert!(
            out.status.success(),
            "{dialect}: v was rolled back with the failure"
        );

        // Editing an applied migration is refused.
        std::fs::write(
            d.join("0002_add_c.sql"),
            "ALTER TABLE t ADD COLUMN c INTEGER;\n",
        )
        .unwrap();
        let out = migrate(&mdir, &url, &schema);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out).contains("0002_add_c.sql: applied as migration 2 with checksum"),
            "{}",
            text(&out)
        );
        assert!(
            text(&out).contains("restore it and put the change in a new migration"),
            "{}",
            text(&out)
        );
        // So is removing one, and numbering a new one before applied ones.
        std::fs::remove_file(d.join("0002_add_c.sql")).unwrap();
        let out = migrate(&mdir, &url, &schema);
        assert!(
            text(&out).contains("migration 2 (0002_add_c) was applied but its file is gone"),
            "{}",
            text(&out)
        );
        std::fs::write(
            d.join("0002_add_c.sql"),
            "ALTER TABLE t ADD COLUMN c TEXT;\n",
        )
        .unwrap();
        std::fs::write(d.join("0000_late.sql"), "SELECT 1;\n").unwrap();
        let out = migrate(&mdir, &url, &schema);
        assert!(
            text(&out).contains("numbered before migration 4, which is already applied"),
            "{}",
            text(&out)
        );
    }
}
