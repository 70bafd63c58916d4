//! `loader load` into SQLite and PostgreSQL: rows equal the manifests, a
//! rerun loads nothing, a re-route replaces, a bad file is reported without
//! stopping the others and without committing anything of itself.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use logrouter::aws::AwsClients;
use logrouter::config::Config;
use logrouter::location::Location;
use router::route::{RouteOutcome, Router};

use crate::support::*;

fn counts(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

#[tokio::test]
async fn sqlite_rows_equal_the_manifests_and_a_rerun_loads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    route_local(dir.path(), "app-2015-01-20-13.log.gz", &events(500, 1)).await;
    route_local(dir.path(), "app-2015-01-20-14.log.gz", &events(300, 2)).await;
    let routed = dir.path().join("routed");
    let db = dir.path().join("w.db");
    let url = format!("sqlite:{}", db.display());

    let out = run(
        &mut loader(),
        &["load", "--warehouse", &url, routed.to_str().unwrap()],
    );
    assert!(out.status.success());
    assert!(
        text(&out).contains("loaded 4 files (800 rows), 0 already loaded"),
        "{}",
        text(&out)
    );
    assert_eq!(sqlite_counts(&db), manifest_counts(&routed));
    assert_eq!(sqlite_counts(&db), counts(&[("click", 160), ("play", 640)]));

    let again = run(
        &mut loader(),
        &["load", "--warehouse", &url, routed.to_str().unwrap()],
    );
    assert!(again.status.success());
    assert!(
        text(&again).contains("loaded 0 files (0 rows), 4 already loaded"),
        "{}",
        text(&again)
    );
    assert_eq!(sqlite_counts(&db), counts(&[("click", 160), ("play", 640)]));

    // Typed, flattened columns; offsets turned into UTC; provenance.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (id, ts, name, tags, file, line): (i64, String, String, String, String, i64) = conn
        .query_row(
            "SELECT id, ts, user_name, user_tags, _routed_file, _routed_line FROM play WHERE id = 1 AND user_name = 'u1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .unwrap();
    assert_eq!(
        (id, ts.as_str(), name.as_str()),
        (1, "2015-01-20 12:01:00.000000", "u1")
    );
    assert_eq!(tags, r#"["a","b\\c"]"#);
    assert!(
        file.ends_with(".part-00000.json.gz") && file.contains("/play/dt=2015-01-20/hour=13/"),
        "{file}"
    );
    assert_eq!(line, 2);
    // A type without a schema keeps the whole event, as routed.
    let event: String = conn
        .query_row(
            "SELECT event FROM click WHERE _routed_line = 1 AND _routed_file LIKE '%hour=13%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        event,
        "{\"event_type\":\"Click\",\"id\":4,\"target\":\"b1\\ttab\"}"
    );
}

#[tokio::test]
async fn postgres_rows_equal_the_manifests_and_a_rerun_loads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    route_local(dir.path(), "app-2015-01-20-13.log.gz", &events(2000, 1)).await;
    let routed = dir.path().join("routed");
    let schema = unique_schema("load");
    let url = database_url();
    let load = || {
        let mut cmd = loader();
        cmd.env("LOGROUTER_LOAD__DB_SCHEMA", &schema);
        run(
            &mut cmd,
            &["load", "--warehouse", &url, routed.to_str().unwrap()],
        )
    };
    let out = load();
    assert!(out.status.success());
    assert_eq!(pg_counts(&schema).await, manifest_counts(&routed));
    assert_eq!(
        pg_counts(&schema).await,
        counts(&[("click", 400), ("play", 1600)])
    );
    let again = load();
    assert!(
        text(&again).contains("loaded 0 files (0 rows), 2 already loaded"),
        "{}",
        text(&again)
    );
    assert_eq!(
        pg_counts(&schema).await,
        counts(&[("click", 400), ("play", 1600)])
    );

    let c = pg().await;
    let row = c
        .query_one(
            &format!("SELECT ts::text, user_name, user_tags::text, _routed_line FROM \"{schema}\".play WHERE id = 1"),
            &[],
        )
        .await
        .unwrap();
    let (ts, name, tags, line): (String, String, String, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(
        (ts.as_str(), name.as_str(), line),
        ("2015-01-20 12:01:00", "u1", 2)
    );
    assert_eq!(tags, r#"["a", "b\\c"]"#);
    let event: String = c
        .query_one(
            &format!("SELECT event::text FROM \"{schema}\".click WHERE _routed_line = 1"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        event,
        r#"{"id": 4, "target": "b1\ttab", "event_type": "Click"}"#
    );
    let comment: Option<String> = c
        .query_one(
            &format!("SELECT col_description('\"{schema}\".play'::regclass, 2)"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(comment.as_deref(), Some("Event number."));
}

/// A re-route of the same source (same keys, new content) replaces that
/// file's rows instead of adding to them, in both warehouses.
#[tokio::test]
async fn a_re_routed_source_replaces_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let name = "app-2015-01-20-13.log.gz";
    route_local(dir.path(), name, &events(1000, 1)).await;
    let routed = dir.path().join("routed");
    let db = dir.path().join("w.db");
    let sqlite = format!("sqlite:{}", db.display());
    let schema = unique_schema("reroute");
    let pg_url = database_url();
    let load = |url: &str| {
        let mut cmd = loader();
        cmd.env("LOGROUTER_LOAD__DB_SCHEMA", &schema);
        run(
            &mut cmd,
            &["load", "--warehouse", url, routed.to_str().unwrap()],
        )
    };
    assert!(load(&sqlite).status.success());
    assert!(load(&pg_url).status.success());

    // Same source, fewer lines: the router rewrites the same keys.
    route_local(dir.path(), name, &events(600, 2)).await;
    for url in [&sqlite, &pg_url] {
        let out = load(url);
        assert!(out.status.success());
        assert!(
            text(&out).contains("loaded 2 files (600 rows), 0 already loaded, 2 replaced"),
            "{}",
            text(&out)
        );
    }
    let want = counts(&[("click", 120), ("play", 480)]);
    assert_eq!(manifest_counts(&routed), want);
    assert_eq!(sqlite_counts(&db), want);
    assert_eq!(pg_counts(&schema).await, want);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let old: i64 = conn
        .query_row(
            "SELECT count(*) FROM play WHERE user_name = 'u1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(old, 0);
}

fn replace_part(routed: &Path, table: &str, content: &str) -> String {
    let part = files_under(&routed.join(table)).into_iter().next().unwrap();
    let path = routed.join(table).join(&part);
    std::fs::write(&path, gzip(content.as_bytes())).unwrap();
    path.display().to_string()
}

/// A file whose rows do not match its manifest's count, or that holds a
/// line its table cannot take, is reported (file, line, column, fix) and
/// nothing of it is committed; the other files still load, exit code 1.
#[tokio::test]
async fn bad_files_are_reported_and_nothing_of_them_is_committed() {
    for warehouse in ["sqlite", "postgres"] {
        let dir = tempfile::tempdir().unwrap();
        route_local(dir.path(), "app-2015-01-20-13.log.gz", &events(50, 1)).await;
        let routed = dir.path().join("routed");
        // 40 plays in the manifest: 41 lines in the file is a count mismatch.
        let mut plays: String = events(50, 1)
            .lines()
            .filter(|l| l.contains("\"play\""))
            .map(|l| format!("{l}\n"))
            .collect();
        let first = plays.lines().next().unwrap().to_owned();
        plays.push_str(&first);
        let play_file = replace_part(&routed, "play", &plays);

        let db = dir.path().join("w.db");
        let url = match warehouse {
            "sqlite" => format!("sqlite:{}", db.display()),
            _ => database_url(),
        };
        let schema = unique_schema("bad");
        let mut cmd = loader();
        cmd.env("LOGROUTER_LOAD__DB_SCHEMA", &schema);
        let out = run(
            &mut cmd,
            &["load", "--warehouse", &url, routed.to_str().unwrap()],
        );
        assert_eq!(out.status.code(), Some(1), "{warehouse}");
        let t = text(&out);
        assert!(
            t.contains(&format!(
                "{play_file}: loaded 41 rows and 0 rejects but its manifest says 40 lines"
            )),
            "{t}"
        );
        assert!(t.contains("loaded 1 files (10 rows), 0 already loaded, 0 replaced an earlier version, 1 failed"), "{t}");

        // A line that does not fit, with no rejects allowed (like COPY's
        // MAXERROR 0): required id missing at line 3 fails the file.
        let mut lines: Vec<String> = plays.lines().take(40).map(str::to_owned).collect();
        lines[2] = lines[2].replace("\"id\":", "\"id_\":");
        replace_part(&routed, "play", &(lines.join("\n") + "\n"));
        let mut cmd = loader();
        cmd.env("LOGROUTER_LOAD__DB_SCHEMA", &schema)
            .env("LOGROUTER_LOAD__MAX_REJECTS_PER_FILE", "0");
        let out = run(
            &mut cmd,
            &["load", "--warehouse", &url, routed.to_str().unwrap()],
        );
        assert_eq!(out.status.code(), Some(1));
        let t = text(&out);
        assert!(
            t.contains(&format!("{play_file}: more than 0 lines do not fit table play (load.max_rejects_per_file); nothing of the file was committed; first: line 3 column id: required field id is missing (make it optional in the schema, or fix the producer) (missing_required)")),
            "{t}"
        );
        let got = match warehouse {
            "sqlite" => sqlite_counts(&db),
            _ => pg_counts(&schema).await,
        };
        // Only the clicks: nothing of the failed play file was committed.
        assert_eq!(got, counts(&[("click", 10)]), "{warehouse}");
    }
}

/// Two loaders started at once on the same files load every file once.
#[tokio::test]
async fn racing_loaders_load_each_file_once() {
    let dir = tempfile::tempdir().unwrap();
    for h in 10..16 {
        route_local(
            dir.path(),
            &format!("app-2015-01-20-{h}.log.gz"),
            &events(3000, h),
        )
        .await;
    }
    let routed = dir.path().join("routed");
    let db = dir.path().join("w.db");
    let schema = unique_schema("race");
    for url in [format!("sqlite:{}", db.display()), database_url()] {
        let children: Vec<_> = (0..3)
            .map(|_| {
                let mut cmd = loader();
                cmd.env("LOGROUTER_LOAD__DB_SCHEMA", &schema)
                    .args(["load", "--warehouse", &url, routed.to_str().unwrap()])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut loaded_files = 0;
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", text(&out));
            let t = text(&out);
            let n: u64 = t
                .split("loaded ")
                .nth(1)
                .and_then(|s| s.split(' ').next())
                .unwrap()
                .parse()
                .unwrap();
            loaded_files += n;
        }
        assert_eq!(
            loaded_files, 12,
            "{url}: each file loaded by exactly one loader"
        );
    }
    let want = manifest_counts(&routed);
    assert_eq!(sqlite_counts(&db), want);
    assert_eq!(pg_counts(&schema).await, want);
}

/// A loader killed in the middle of a load (between COPY and commit, or
/// anywhere else) leaves nothing half-loaded: the rerun makes the counts
/// exact.
#[tokio::test]
async fn a_killed_loader_then_a_rerun_loads_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    route_local(dir.path(), "app-2015-01-20-13.log.gz", &events(200_000, 1)).await;
    route_local(dir.path(), "app-2015-01-20-14.log.gz", &events(200_000, 2)).await;
    let routed = dir.path().join("routed");
    let schema = unique_schema("kill");
    let url = database_url();
    let mut cmd = loader();
    cmd.env("LOGROUTER_LOAD__DB_SCHEMA", &schema)
        .env("LOGROUTER_LOAD__FILES_IN_FLIGHT", "1")
        .args(["load", "--warehouse", &url, routed.to_str().unwrap()]);
    let mut child = cmd.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    let mut cmd = loader();
    cmd.env("LOGROUTER_LOAD__DB_SCHEMA", &schema);
    let out = run(
        &mut cmd,
        &["load", "--warehouse", &url, routed.to_str().unwrap()],
    );
    assert!(out.status.success());
    assert_eq!(pg_counts(&schema).await, manifest_counts(&routed));
    assert_eq!(
        pg_counts(&schema).await,
        counts(&[("click", 80_000), ("play", 320_000)])
    );
}

/// Single routed files and single manifests can be named too; a replay root
/// loads only when named, never through its parent.
#[tokio::test]
async fn sources_can_be_single_files_or_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let m = route_local(dir.path(), "app-2015-01-20-13.log.gz", &events(100, 1)).await;
    let routed = dir.path().join("routed");
    let db = dir.path().join("w.db");
    let url = format!("sqlite:{}", db.display());
    let play = routed.join(&m.types["play"].parts[0].key);
    let out = run(
        &mut loader(),
        &["load", "--warehouse", &url, play.to_str().unwrap()],
    );
    assert!(out.status.success());
    assert_eq!(sqlite_counts(&db), counts(&[("play", 80)]));
    let manifest = files_under(&routed.join("_manifests")).remove(0);
    let manifest = routed.join("_manifests").join(manifest);
    let out = run(
        &mut loader(),
        &["load", "--warehouse", &url, manifest.to_str().unwrap()],
    );
    assert!(
        text(&out).contains("loaded 1 files (20 rows), 1 already loaded"),
        "{}",
        text(&out)
    );

    // Not a router output root: a clear error, exit 1.
    let out = run(
        &mut loader(),
        &["load", "--warehouse", &url, dir.path().to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("has no _manifests/ folder: name the router's output root"),
        "{}",
        text(&out)
    );
    // Bad warehouse URL: usage error, exit 2.
    let out = run(
        &mut loader(),
        &["load", "--warehouse", "mysql://x", routed.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("is not a warehouse URL"),
        "{}",
        text(&out)
    );
}

fn plays_and_clicks(plays: usize, clicks: usize) -> String {
    let mut s = String::new();
    for i in 0..plays {
        s.push_str(&format!(
            "{{\"event_type\":\"play\",\"id\":{i},\"ts\":\"2015-01-20T13:00:00Z\"}}\n"
        ));
    }
    for i in 0..clicks {
        s.push_str(&format!("{{\"event_type\":\"click\",\"id\":{i}}}\n"));
    }
    s
}

/// Found in review: a re-route that no longer writes a type (its lines moved
/// to another type or to quarantine) left that type's old rows in place and
/// `verify` passed. The load now removes rows of files the manifest no
/// longer names, and `verify` reports them until it does.
#[tokio::test]
async fn review_a_re_route_that_drops_a_type_removes_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let name = "app-2015-01-20-13.log.gz";
    route_local(dir.path(), name, &plays_and_clicks(5, 5)).await;
    let routed = dir.path().join("routed");
    let db = dir.path().join("w.db");
    let schema = unique_schema("orphan");
    let urls = [format!("sqlite:{}", db.display()), database_url()];
    let cmd = |verb: &str, url: &str| {
        let mut c = loader();
        c.env("LOGROUTER_LOAD__DB_SCHEMA", &schema);
        run(
            &mut c,
            &[verb, "--warehouse", url, routed.to_str().unwrap()],
        )
    };
    for url in &urls {
        assert!(cmd("load", url).status.success());
    }
    route_local(dir.path(), name, &plays_and_clicks(10, 0)).await;
    for url in &urls {
        let out = cmd("verify", url);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            text(&out).contains("rows in click from a file its manifest no longer names"),
            "{}",
            text(&out)
        );
        let out = cmd("load", url);
        assert!(out.status.success());
        assert!(text(&out).contains("removed the rows of 1 files of earlier routes that their manifests no longer name (5 rows)"), "{}", text(&out));
        assert!(cmd("verify", url).status.success());
    }
    let want = counts(&[("play", 10)]);
    let got: BTreeMap<String, i64> = sqlite_counts(&db);
    assert_eq!(got, want);
    assert_eq!(pg_counts(&schema).await, want);
}

/// Found in review: the same routed folder named through `..` or a symlink
/// was a different ledger entry, and loaded twice.
#[tokio::test]
async fn review_the_same_files_by_another_path_load_once() {
    let dir = tempfile::tempdir().unwrap();
    route_local(
        dir.path(),
        "app-2015-01-20-13.log.gz",
        &plays_and_clicks(10, 0),
    )
    .await;
    let routed = dir.path().join("routed");
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&routed, &link).unwrap();
    let db = dir.path().join("w.db");
    let url = format!("sqlite:{}", db.display());
    for root in [routed.clone(), routed.join("..").join("routed"), link] {
        assert!(run(
            &mut loader(),
            &["load", "--warehouse", &url, root.to_str().unwrap()]
        )
        .status
        .success());
    }
    assert_eq!(sqlite_counts(&db), counts(&[("play", 10)]));
}

/// Found in review: a manifest's types and keys are data. A type that is not
/// a valid name, or a key outside its root, fails that manifest (naming it);
/// an unreadable manifest too; the other manifests still load.
#[tokio::test]
async fn review_hostile_or_broken_manifests_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    route_local(
        dir.path(),
        "app-2015-01-20-13.log.gz",
        &plays_and_clicks(3, 0),
    )
    .await;
    route_local(
        dir.path(),
        "app-2015-01-20-14.log.gz",
        &plays_and_clicks(4, 0),
    )
    .await;
    route_local(
        dir.path(),
        "app-2015-01-20-15.log.gz",
        &plays_and_clicks(5, 0),
    )
    .await;
    let routed = dir.path().join("routed");
    let manifests: Vec<_> = files_under(&routed.join("_manifests"))
        .into_iter()
        .map(|f| routed.join("_manifests").join(f))
        .collect();
    let text_of = |p: &Path| std::fs::read_to_string(p).unwrap();
    // 13: a hostile type name; 14: a key escaping the root; 15 stays good.
    let m13 = text_of(&manifests[0]).replace("\"play\":", "\"play\\\"; DROP TABLE x; --\":");
    std::fs::write(&manifests[0], m13).unwrap();
    let m14 = text_of(&manifests[1]).replace("\"play/dt=", "\"../../play/dt=");
    std::fs::write(&manifests[1], m14).unwrap();
    std::fs::write(routed.join("_manifests").join("broken.json"), "{").unwrap();
    let db = dir.path().join("w.db");
    let url = format!("sqlite:{}", db.display());
    let out = run(
        &mut loader(),
        &["load", "--warehouse", &url, routed.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(
        t.contains("has characters other than a-z, 0-9 and _"),
        "{t}"
    );
    assert!(
        t.contains("is not <type>/…/<name>.part-NNNNN.json.gz inside its root"),
        "{t}"
    );
    assert!(t.contains("broken.json: not a router manifest"), "{t}");
    assert!(t.contains("loaded 1 files (5 rows)"), "{t}");
    assert_eq!(sqlite_counts(&db), counts(&[("play", 5)]));
}

/// Found in review: a loader holding an older version of a file (its source
/// was re-routed meanwhile) must not replace the rows of the newer route
/// that another loader already committed.
#[tokio::test]
async fn review_an_older_route_never_replaces_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let name = "app-2015-01-20-13.log.gz";
    route_local(dir.path(), name, &plays_and_clicks(3, 0)).await;
    let routed = dir.path().join("routed");
    let old = dir.path().join("old");
    std::fs::rename(&routed, &old).unwrap();
    route_local(dir.path(), name, &plays_and_clicks(7, 0)).await;
    let db = dir.path().join("w.db");
    let url = format!("sqlite:{}", db.display());
    assert!(run(
        &mut loader(),
        &["load", "--warehouse", &url, routed.to_str().unwrap()]
    )
    .status
    .success());
    // The older route's files arrive late, at the same keys.
    std::fs::remove_dir_all(&routed).unwrap();
    std::fs::rename(&old, &routed).unwrap();
    let out = run(
        &mut loader(),
        &["load", "--warehouse", &url, routed.to_str().unwrap()],
    );
    assert!(
        text(&out).contains("loaded 0 files (0 rows), 1 already loaded"),
        "{}",
        text(&out)
    );
    assert_eq!(sqlite_counts(&db), counts(&[("play", 7)]));
}

/// Issue #13 (known defect): `loader … | head` panicked on the broken pipe.
/// Output into a pipe its reader closed now ends the process quietly, with
/// exit code 0 (as ripgrep does): what the command did is already done.
#[tokio::test]
async fn issue13_output_into_a_closed_pipe_exits_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("w.db").display());
    let mut child = loader()
        .args([
            "query",
            "--warehouse",
            &url,
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) SELECT i FROM n",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read one chunk, then close the pipe, as `head -1` does.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

/// Issue #12, the tick pipeline: an S3 server access log whose requests
/// carry events in `?data=|…|` is routed into per-type files of JSON
/// objects that `loader load` puts into one SQLite table per event type.
#[tokio::test]
async fn issue12_s3_access_payload_loads_into_sqlite() {
    use logrouter::config::LineFormat;
    let dir = tempfile::tempdir().unwrap();
    let line = |data: &str| {
        format!("79a5 bucket1 [15/Jan/2014:19:33:24 +0000] 192.0.2.3 - REQ1 REST.GET.OBJECT tick \"GET /tick?data={data} HTTP/1.1\" 200 - 0 0 12 11 \"-\" \"Mozilla/5.0 \"x\" (X11)\" - host1 SigV4 ECDHE-RSA-AES128-SHA QueryString bucket1.s3.amazonaws.com TLSv1.2 - -\n")
    };
    let log = [
        line("|2014-01-15T19:33:23|g1|1234567|Registered|C|Wales|watch|video|4|60|120|"),
        line("|2014-01-15T19:33:24|g2|7|Guest|C|Wales|watch|video|5|0|10|"),
        line("|2014-01-15T19:33:25|g3|8|Guest|C|North+East|pause|video|5|10||"),
        "79a5 bucket1 [15/Jan/2014:19:33:26 +0000] 192.0.2.3 - REQ2 REST.GET.OBJECT favicon.ico \"GET /favicon.ico HTTP/1.1\" 404 NoSuchKey 0 0 1 1 \"-\" \"-\" - host1 SigV4 - AuthHeader bucket1.s3.amazonaws.com TLSv1.2 - -\n".to_string(),
    ]
    .concat();
    let src = dir.path().join("2014-01-15-19-33-27-EXAMPLE");
    std::fs::write(&src, log).unwrap();
    let mut config = Config::default();
    config.route.format = LineFormat::S3Access;
    config.route.payload = Some(crate::support::tick_payload());
    config.validate().unwrap();
    let routed = dir.path().join("routed");
    let router = Router::new(
        &config,
        &Location::Local(routed.clone()),
        Arc::new(AwsClients::default()),
    )
    .await
    .unwrap();
    let RouteOutcome::Routed { manifest, .. } = router
        .route_object(&Location::Local(src), false)
        .await
        .unwrap()
    else {
        panic!("not routed");
    };
    assert_eq!(
        manifest.quarantine.by_reason.get("payload_missing"),
        Some(&1)
    );

    let db = dir.path().join("w.db");
    let url = format!("sqlite:{}", db.display());
    let out = run(
        &mut loader(),
        &["load", "--warehouse", &url, routed.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sqlite_counts(&db), counts(&[("pause", 1), ("watch", 2)]));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let event: String = conn
        .query_row("SELECT event FROM pause", [], |r| r.get(0))
        .unwrap();
    let event: serde_json::Value = serde_json::from_str(&event).unwrap();
    assert_eq!(event["country"], "North East");
    assert_eq!(event["end"], serde_json::Value::Null);
    assert_eq!(event["access_log"]["user_agent"], "Mozilla/5.0 \"x\" (X11)");
    assert_eq!(event["access_log"]["time"], "15/Jan/2014:19:33:24 +0000");
}

/// Issue #14: rows go to PostgreSQL in COPY's binary format when every
/// column's type allows it, and as text when one does not (here a column a
/// hand-written migration made `numeric`); both give the same rows, typed
/// and JSON columns, NULLs, escapes and timestamps alike.
#[tokio::test]
async fn issue14_binary_and_text_copy_load_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    route_local(dir.path(), "app-2015-01-20-13.log.gz", &events(2000, 1)).await;
    let routed = dir.path().join("routed");
    let url = database_url();
    let load = |schema: &str| {
        let mut cmd = loader();
        cmd.env("LOGROUTER_LOAD__DB_SCHEMA", schema);
        let out = run(
            &mut cmd,
            &["load", "--warehouse", &url, routed.to_str().unwrap()],
        );
        assert!(out.status.success(), "{}", text(&out));
    };
    let (binary, textual) = (unique_schema("bin"), unique_schema("txt"));
    load(&binary);
    // The same tables, emptied, one column made numeric: a text COPY.
    load(&textual);
    let c = pg().await;
    c.batch_execute(&format!(
        "TRUNCATE \"{textual}\".play, \"{textual}\".click, \"{textual}\"._logrouter_ledger;
         ALTER TABLE \"{textual}\".play ALTER COLUMN id TYPE numeric"
    ))
    .await
    .unwrap();
    load(&textual);
    assert_eq!(pg_counts(&textual).await, pg_counts(&binary).await);
    let type_of_id = |schema: &str| {
        format!("SELECT data_type FROM information_schema.columns WHERE table_schema = '{schema}' AND table_name = 'play' AND column_name = 'id'")
    };
    let id_type: String = c
        .query_one(&type_of_id(&textual), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(id_type, "numeric", "the text path really ran");
    for (table, columns) in [
        (
            "play",
            "id::bigint, ts, user_name, user_tags::text, _routed_file, _routed_line",
        ),
        ("click", "event::text, _routed_file, _routed_line"),
    ] {
        let differ: i64 = c
            .query_one(
                &format!(
                    "SELECT count(*) FROM (
                       (SELECT {columns} FROM \"{binary}\".{table} EXCEPT ALL SELECT {columns} FROM \"{textual}\".{table})
                       UNION ALL
                       (SELECT {columns} FROM \"{textual}\".{table} EXCEPT ALL SELECT {columns} FROM \"{binary}\".{table})
                     ) d"
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(differ, 0, "{table}: binary and text rows differ");
    }
    // Loaded-at stamps are whole microseconds either way.
    let stamps: i64 = c
        .query_one(
            &format!("SELECT count(DISTINCT _loaded_at) FROM \"{binary}\".play"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stamps, 1);
}
