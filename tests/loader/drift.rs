//! Issue #10: real event data drifts. `loader schema infer` writes typed
//! schemas from routed data; a load reports fields its schema lacks;
//! `infer --update` → `schema diff` → `migrate` → `reload` refills the rows
//! already loaded, exactly once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use logrouter::aws::AwsClients;
use logrouter::config::Config;
use logrouter::location::Location;
use router::route::Router;

use crate::support::*;

/// Routes local `src` into `dest` with the event type at `type_field`.
async fn route_with_type_field(src: &Path, dest: &Path, type_field: &str) {
    let mut config = Config::default();
    config.route.type_field = type_field.to_owned();
    let router = Router::new(
        &config,
        &Location::Local(dest.to_path_buf()),
        Arc::new(AwsClients::new(config.aws.clone())),
    )
    .await
    .unwrap();
    router
        .route_object(&Location::Local(src.to_path_buf()), false)
        .await
        .unwrap();
}

fn loader_with(schemas: &Path, db_schema: &str) -> std::process::Command {
    let mut cmd = loader();
    cmd.env("LOGROUTER_LOAD__SCHEMAS_DIR", schemas)
        .env("LOGROUTER_LOAD__DB_SCHEMA", db_schema);
    cmd
}

fn ok(cmd: &mut std::process::Command, args: &[&str]) -> String {
    let out = run(cmd, args);
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// GitHub-archive events (deeply nested) become typed, flattened columns.
#[tokio::test]
async fn issue10_infer_gives_typed_columns_for_nested_github_events() {
    let dir = tempfile::tempdir().unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/logs/gharchive-2015-01-01-15-sample.jsonl");
    let src = dir.path().join("2015-01-01-15.json.gz");
    std::fs::write(&src, gzip(&std::fs::read(sample).unwrap())).unwrap();
    let routed = dir.path().join("routed");
    route_with_type_field(&src, &routed, "/type").await;
    let schemas = dir.path().join("schemas");
    let migrations = dir.path().join("migrations");
    let out = ok(
        &mut loader_with(&schemas, "gh"),
        &["schema", "infer", routed.to_str().unwrap()],
    );
    for t in ["create_event", "push_event", "issue_comment_event"] {
        assert!(
            out.contains(&format!(
                "wrote {}",
                schemas.join(format!("{t}.json")).display()
            )),
            "{out}"
        );
    }
    let push = loader::schema::parse_schema(
        "push_event",
        &std::fs::read_to_string(schemas.join("push_event.json")).unwrap(),
        "push_event.json",
    )
    .unwrap();
    let columns: Vec<String> = push
        .columns
        .iter()
        .map(|c| format!("{} {}", c.name, c.ty.token()))
        .collect();
    for want in [
        "id text",
        "actor_id bigint",
        "actor_login text",
        "repo_name text",
        "payload_push_id bigint",
        "payload_size bigint",
        "payload_commits json",
        "public boolean",
        "created_at timestamp",
    ] {
        assert!(columns.iter().any(|c| c == want), "{want} in {columns:?}");
    }
    let comment = std::fs::read_to_string(schemas.join("issue_comment_event.json")).unwrap();
    let comment = loader::schema::parse_schema("issue_comment_event", &comment, "x.json").unwrap();
    assert!(
        comment
            .columns
            .iter()
            .any(|c| c.name == "payload_issue_user_login"),
        "three levels deep, flattened"
    );
    // A second run keeps what exists; the result is what diff and migrate
    // turn into tables that load.
    let again = ok(
        &mut loader_with(&schemas, "gh"),
        &["schema", "infer", routed.to_str().unwrap()],
    );
    assert!(again.contains("kept "), "{again}");
    assert!(!again.contains("wrote "), "{again}");
    ok(
        &mut loader_with(&schemas, "gh"),
        &[
            "schema",
            "diff",
            "--migrations",
            migrations.to_str().unwrap(),
            "--name",
            "github",
        ],
    );
    let db = format!("sqlite:{}", dir.path().join("w.db").display());
    ok(
        &mut loader_with(&schemas, "gh"),
        &[
            "migrate",
            "--warehouse",
            &db,
            "--migrations",
            migrations.to_str().unwrap(),
        ],
    );
    let out = ok(
        &mut loader_with(&schemas, "gh"),
        &["load", "--warehouse", &db, routed.to_str().unwrap()],
    );
    assert!(out.contains("loaded 3 files (3 rows)"), "{out}");
    let rows = ok(
        &mut loader_with(&schemas, "gh"),
        &[
            "query",
            "--warehouse",
            &db,
            "SELECT actor_login, payload_size, created_at FROM push_event",
        ],
    );
    assert_eq!(rows, "rspt\t1\t2015-01-01 15:00:01.000000\n");
}

/// `n` plays with a field the schema lacks (`device`), and one line whose
/// id is not a number.
fn drifted_plays(n: u64, offset: u64) -> String {
    let mut s = String::new();
    for i in 0..n {
        let id = if i == 3 {
            "\"three\"".to_owned()
        } else {
            (offset + i).to_string()
        };
        s.push_str(&format!(
            "{{\"event_type\":\"play\",\"id\":{id},\"ts\":\"2015-01-20T13:00:00Z\",\"device\":\"tv{}\",\"user\":{{\"name\":\"u\",\"locale\":\"fr\"}}}}\n",
            i % 3
        ));
    }
    s
}

/// The README's loop: a drifted file's load shows the reject and the new
/// fields; `infer --update`, `diff`, `migrate`, then `reload` fills the new
/// columns of the rows already loaded; a second reload changes nothing.
#[tokio::test]
async fn issue10_reload_after_an_added_column_fills_it_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let routed = dir.path().join("routed");
    for (hour, offset) in [("13", 0), ("14", 1000)] {
        let src = dir.path().join(format!("app-2015-01-20-{hour}.log.gz"));
        std::fs::write(&src, gzip(drifted_plays(50, offset).as_bytes())).unwrap();
        route(
            &Location::Local(src),
            &Location::Local(routed.clone()),
            true,
        )
        .await;
    }
    let schemas = dir.path().join("schemas");
    std::fs::create_dir_all(&schemas).unwrap();
    std::fs::copy(schemas_dir().join("play.json"), schemas.join("play.json")).unwrap();
    let migrations = dir.path().join("migrations");
    let db_schema = unique_schema("reload");
    let cmd = || loader_with(&schemas, &db_schema);
    let root = routed.to_str().unwrap();
    let m = migrations.to_str().unwrap();
    ok(
        &mut cmd(),
        &["schema", "diff", "--migrations", m, "--name", "init"],
    );
    let urls = [
        format!("sqlite:{}", dir.path().join("w.db").display()),
        database_url(),
    ];
    for url in &urls {
        ok(
            &mut cmd(),
            &["migrate", "--warehouse", url, "--migrations", m],
        );
        let out = ok(&mut cmd(), &["load", "--warehouse", url, root]);
        assert!(out.contains("loaded 2 files (98 rows)"), "{out}");
        assert!(out.contains("  play: 2 (wrong_type 2)"), "{out}");
        assert!(
            out.contains("  play: /device (98 lines), /user/locale (98 lines)"),
            "{out}"
        );
    }
    // Proposed by infer --update, additive and optional.
    let out = ok(&mut cmd(), &["schema", "infer", "--update", root]);
    assert!(out.contains("2 new optional properties"), "{out}");
    assert!(
        out.contains("/user/locale") && out.contains("user_locale text"),
        "{out}"
    );
    let out = ok(
        &mut cmd(),
        &["schema", "diff", "--migrations", m, "--name", "add_device"],
    );
    assert!(out.contains("add column play.device text"), "{out}");
    let table = |url: &str| {
        if url.starts_with("sqlite") {
            "play".to_owned()
        } else {
            format!("\"{db_schema}\".play")
        }
    };
    for url in &urls {
        ok(
            &mut cmd(),
            &["migrate", "--warehouse", url, "--migrations", m],
        );
        let filled = |url: &str| {
            ok(
                &mut cmd(),
                &[
                    "query",
                    "--warehouse",
                    url,
                    &format!(
                        "SELECT count(*), count(device), count(user_locale) FROM {}",
                        table(url)
                    ),
                ],
            )
        };
        assert_eq!(filled(url), "98\t0\t0\n", "{url}: loaded before the column");
        // Only the hour in the window.
        let out = ok(
            &mut cmd(),
            &[
                "reload",
                "--warehouse",
                url,
                "--table",
                "play",
                "--from",
                "2015-01-20T14",
                root,
            ],
        );
        assert!(out.contains("reloaded 1 files (49 rows)"), "{out}");
        assert_eq!(filled(url), "98\t49\t49\n", "{url}");
        let out = ok(
            &mut cmd(),
            &["reload", "--warehouse", url, "--table", "play", root],
        );
        assert!(
            out.contains("reloaded 1 files (49 rows), 1 already loaded"),
            "{out}"
        );
        assert!(out.contains("1 lines rejected"), "{out}");
        assert_eq!(filled(url), "98\t98\t98\n", "{url}: filled, no row twice");
        let out = ok(
            &mut cmd(),
            &["reload", "--warehouse", url, "--table", "play", root],
        );
        assert!(
            out.contains("reloaded 0 files (0 rows), 2 already loaded"),
            "{out}"
        );
        assert_eq!(filled(url), "98\t98\t98\n");
        let out = ok(&mut cmd(), &["verify", "--warehouse", url, root]);
        assert!(out.contains("= 98 rows + 2 rejects)"), "{out}");
    }
}

/// A reload killed at any moment leaves each file with its old rows or its
/// new ones, never both and never neither.
#[tokio::test]
async fn issue10_a_killed_reload_leaves_old_or_new_rows() {
    let dir = tempfile::tempdir().unwrap();
    let routed = dir.path().join("routed");
    let mut files: Vec<PathBuf> = Vec::new();
    for hour in ["13", "14", "15"] {
        let src = dir.path().join(format!("app-2015-01-20-{hour}.log.gz"));
        std::fs::write(&src, gzip(drifted_plays(150_000, 0).as_bytes())).unwrap();
        route(
            &Location::Local(src.clone()),
            &Location::Local(routed.clone()),
            true,
        )
        .await;
        files.push(src);
    }
    let schemas = dir.path().join("schemas");
    std::fs::create_dir_all(&schemas).unwrap();
    std::fs::copy(schemas_dir().join("play.json"), schemas.join("play.json")).unwrap();
    let db_schema = unique_schema("reloadkill");
    let cmd = || loader_with(&schemas, &db_schema);
    let root = routed.to_str().unwrap();
    let url = database_url();
    ok(&mut cmd(), &["load", "--warehouse", &url, root]);
    ok(&mut cmd(), &["schema", "infer", "--update", root]);
    // The table was created by the first load: add the columns by hand, as
    // the migration would.
    let c = pg().await;
    c.batch_execute(&format!(
        "ALTER TABLE \"{db_schema}\".play ADD COLUMN device TEXT, ADD COLUMN user_locale TEXT"
    ))
    .await
    .unwrap();
    let mut child = cmd()
        .env("LOGROUTER_LOAD__FILES_IN_FLIGHT", "1")
        .args(["reload", "--warehouse", &url, "--table", "play", root])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    child.kill().unwrap();
    child.wait().unwrap();
    let rows = c
        .query(
            &format!(
                "SELECT _routed_file, count(*), count(device) FROM \"{db_schema}\".play GROUP BY 1"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 3, "every file keeps rows");
    for r in rows {
        let (file, n, filled): (String, i64, i64) = (r.get(0), r.get(1), r.get(2));
        assert_eq!(n, 149_999, "{file}: old or new rows, never both");
        assert!(filled == 0 || filled == n, "{file}: {filled} of {n} filled");
    }
    ok(
        &mut cmd(),
        &["reload", "--warehouse", &url, "--table", "play", root],
    );
    let filled: i64 = c
        .query_one(
            &format!("SELECT count(device) FROM \"{db_schema}\".play"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(filled, 3 * 149_999);
    let out = ok(&mut cmd(), &["verify", "--warehouse", &url, root]);
    assert!(
        out.contains("every file's rows match its manifest"),
        "{out}"
    );
}
