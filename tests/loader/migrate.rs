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

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shipped migrations are what `schemas/` needs (CI fails when a schema
/// changes without its migration) and apply on SQLite and PostgreSQL.
#[tokio::test]
async fn shipped_migrations_match_the_schemas_and_apply() {
    let mut cmd = loader();
    cmd.env("LOGROUTER_LOAD__SCHEMAS_DIR", repo().join("schemas"));
    let migrations = repo().join("migrations");
    let out = run(
        &mut cmd,
        &[
            "schema",
            "diff",
            "--check",
            "--migrations",
            migrations.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "schemas/ changed without a migration: {}",
        text(&out)
    );

    let dir = tempfile::tempdir().unwrap();
    let schema = unique_schema("shipped");
    for url in [
        format!("sqlite:{}", dir.path().join("w.db").display()),
        database_url(),
    ] {
        let out = migrate(&migrations, &url, &schema);
        assert!(out.status.success());
        assert!(
            text(&out).contains(
                "3 migrations applied (0001_create_demo_tables, 0002_create_access_log_tables, 0003_add_access_log_timestamp)"
            ),
            "{}",
            text(&out)
        );
    }
    let c = pg().await;
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name NOT LIKE '\\_%'",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0);
    // The twelve demo types and the three access-log formats (issue #12).
    assert_eq!(n, 15);
    // Issue #25: 0003 gave every access-log table its UTC `timestamp`.
    let stamps: Vec<String> = c
        .query(
            "SELECT table_name::text || ' ' || data_type || ' ' || is_nullable FROM information_schema.columns WHERE table_schema = $1 AND column_name = 'timestamp' ORDER BY table_name",
            &[&schema],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        stamps,
        [
            "alb timestamp without time zone YES",
            "cloudfront timestamp without time zone YES",
            "s3_access timestamp without time zone YES"
        ]
    );
}

/// The schema-change workflow: a new optional field → `schema diff` writes
/// the migrations → `migrate` → the loader fills the new column. A breaking
/// change is refused, naming the field and the way out.
#[tokio::test]
async fn a_new_optional_field_goes_through_diff_migrate_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let schemas = dir.path().join("schemas");
    let migrations = dir.path().join("migrations");
    std::fs::create_dir_all(&schemas).unwrap();
    let play = std::fs::read_to_string(schemas_dir().join("play.json")).unwrap();
    std::fs::write(schemas.join("play.json"), &play).unwrap();
    let diff = |name: &str| {
        let mut cmd = loader();
        cmd.env("LOGROUTER_LOAD__SCHEMAS_DIR", &schemas);
        run(
            &mut cmd,
            &[
                "schema",
                "diff",
                "--name",
                name,
                "--migrations",
                migrations.to_str().unwrap(),
            ],
        )
    };
    assert!(diff("create_play").status.success());
    let db = dir.path().join("w.db");
    let url = format!("sqlite:{}", db.display());
    let schema = unique_schema("evolve");
    for u in [&url, &database_url()] {
        assert!(migrate(&migrations, u, &schema).status.success());
    }

    // A new optional property.
    let v: serde_json::Value = serde_json::from_str(&play).unwrap();
    let mut v2 = v.clone();
    v2["properties"]["quality"] = serde_json::json!({"type": "string", "maxLength": 8});
    std::fs::write(schemas.join("play.json"), v2.to_string()).unwrap();
    let out = diff("add_quality");
    assert!(out.status.success());
    assert!(
        text(&out).contains("add column play.quality varchar(8)"),
        "{}",
        text(&out)
    );
    for d in ["sqlite", "postgres", "redshift"] {
        let sql = std::fs::read_to_string(migrations.join(d).join("0002_add_quality.sql")).unwrap();
        assert!(
            sql.contains("ALTER TABLE \"play\" ADD COLUMN \"quality\""),
            "{d}: {sql}"
        );
    }
    for u in [&url, &database_url()] {
        let out = migrate(&migrations, u, &schema);
        assert!(
            text(&out).contains("1 migrations applied (0002_add_quality)"),
            "{}",
            text(&out)
        );
    }
    route_local(
        dir.path(),
        "app-2015-01-20-13.log.gz",
        "{\"event_type\":\"play\",\"id\":1,\"ts\":\"2015-01-20T13:00:00Z\",\"quality\":\"hd\"}\n",
    )
    .await;
    for u in [&url, &database_url()] {
        let mut cmd = loader();
        cmd.env("LOGROUTER_LOAD__SCHEMAS_DIR", &schemas)
            .env("LOGROUTER_LOAD__DB_SCHEMA", &schema);
        let out = run(
            &mut cmd,
            &[
                "load",
                "--warehouse",
                u,
                dir.path().join("routed").to_str().unwrap(),
            ],
        );
        assert!(out.status.success());
        let mut cmd = loader();
        cmd.env("LOGROUTER_LOAD__DB_SCHEMA", &schema);
        let table = if u.starts_with("sqlite") {
            "play".to_owned()
        } else {
            format!("\"{schema}\".play")
        };
        let out = run(
            &mut cmd,
            &[
                "query",
                "--warehouse",
                u,
                &format!("SELECT quality FROM {table}"),
            ],
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hd\n");
    }

    // Breaking: a changed type is refused and nothing is written.
    let mut v3 = v2.clone();
    v3["properties"]["id"] = serde_json::json!({"type": "string"});
    std::fs::write(schemas.join("play.json"), v3.to_string()).unwrap();
    let out = diff("id_to_string");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("play.id: type changed from integer to text; only a wider string can change in place: keep the old type, or create a new versioned table instead (a new event type such as play_v2"),
        "{}",
        text(&out)
    );
    assert!(!migrations
        .join("sqlite")
        .join("0003_id_to_string.sql")
        .exists());
}
