//! Issue #10: a line that cannot become a row is a reject, never a blocked
//! file. Rejects are kept in `_logrouter_rejects` (reason, column, message,
//! excerpt) with the file's rows and ledger row, in one transaction; rows +
//! rejects = the manifest's lines; past `load.max_rejects_per_file` the file
//! fails alone.

use std::path::{Path, PathBuf};

use crate::support::*;

/// A routed root holding one `play` file of exactly `lines` (its manifest
/// counts them) and one `click` file of one line.
async fn routed_with_play_lines(dir: &Path, lines: &[Vec<u8>]) -> (PathBuf, String) {
    let mut source = String::new();
    for i in 0..lines.len() {
        source.push_str(&format!(
            "{{\"event_type\":\"play\",\"id\":{i},\"ts\":\"2015-01-20T13:00:00Z\"}}\n"
        ));
    }
    source.push_str("{\"event_type\":\"click\",\"id\":1}\n");
    route_local(dir, "app-2015-01-20-13.log.gz", &source).await;
    let routed = dir.join("routed");
    let part = files_under(&routed.join("play")).remove(0);
    let path = routed.join("play").join(part);
    let mut content = Vec::new();
    for l in lines {
        content.extend_from_slice(l);
        content.push(b'\n');
    }
    std::fs::write(&path, gzip(&content)).unwrap();
    (routed, path.display().to_string())
}

/// The two warehouses every reject test runs on: (URL, schema, the rejects
/// table as a query names it).
fn warehouses(dir: &Path, prefix: &str) -> Vec<(String, String, String)> {
    let schema = unique_schema(prefix);
    vec![
        (
            format!("sqlite:{}", dir.join("w.db").display()),
            schema.clone(),
            "_logrouter_rejects".to_owned(),
        ),
        (
            database_url(),
            schema.clone(),
            format!("\"{schema}\"._logrouter_rejects"),
        ),
    ]
}

fn loader_in(schema: &str) -> std::process::Command {
    let mut cmd = loader();
    cmd.env("LOGROUTER_LOAD__DB_SCHEMA", schema);
    cmd
}

fn query(url: &str, schema: &str, sql: &str) -> Vec<String> {
    let out = run(&mut loader_in(schema), &["query", "--warehouse", url, sql]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Loads `lines` as the play file into SQLite and PostgreSQL and checks its
/// rejects, one per line of `expected`: `line reason column` (column empty
/// for a line bad as a whole); the other lines are rows, and rows + rejects
/// = the manifest's lines (`loader verify`).
async fn check(lines: &[Vec<u8>], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (routed, play) = routed_with_play_lines(dir.path(), lines).await;
    let want: Vec<String> = expected
        .trim()
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for (url, schema, rejects) in warehouses(dir.path(), "rej") {
        let out = run(
            &mut loader_in(&schema),
            &["load", "--warehouse", &url, routed.to_str().unwrap()],
        );
        assert!(out.status.success(), "{url}: {}", text(&out));
        assert!(
            text(&out).contains(&format!("{} lines rejected", want.len())),
            "{url}: {}",
            text(&out)
        );
        let got: Vec<String> = query(
            &url,
            &schema,
            &format!("SELECT line, reason, column_name, file FROM {rejects} ORDER BY line"),
        )
        .into_iter()
        .map(|r| {
            let f: Vec<&str> = r.split('\t').collect();
            assert_eq!(f[3], play, "{url}: the reject names its file");
            let column = if f[2] == "NULL" { "" } else { f[2] };
            format!("{} {} {column}", f[0], f[1]).trim().to_owned()
        })
        .collect();
        assert_eq!(got, want, "{url}");
        let table = if url.starts_with("sqlite") {
            "play".to_owned()
        } else {
            format!("\"{schema}\".play")
        };
        let rows: usize = query(&url, &schema, &format!("SELECT count(*) FROM {table}"))[0]
            .parse()
            .unwrap();
        assert_eq!(rows + want.len(), lines.len(), "{url}: rows + rejects");
        let out = run(
            &mut loader_in(&schema),
            &["verify", "--warehouse", &url, routed.to_str().unwrap()],
        );
        assert!(out.status.success(), "{url}: {}", text(&out));
        assert!(
            // The play rows and the one click.
            text(&out).contains(&format!(
                "= {} rows + {} rejects): every file's rows match its manifest",
                rows + 1,
                want.len()
            )),
            "{url}: {}",
            text(&out)
        );
        // `loader rejects` lists them with a command that prints each line
        // back from its routed file.
        let out = run(
            &mut loader_in(&schema),
            &["rejects", "--warehouse", &url, "--table", "play"],
        );
        assert!(out.status.success(), "{}", text(&out));
        let listing = String::from_utf8_lossy(&out.stdout).into_owned();
        if !want.is_empty() {
            assert!(
                listing.contains(&format!("{} rejected lines", want.len())),
                "{listing}"
            );
        }
        let recover: Vec<&str> = listing
            .lines()
            .filter_map(|l| l.trim().strip_prefix("recover: "))
            .collect();
        assert_eq!(recover.len(), want.len(), "{listing}");
        for cmd in recover {
            let line: usize = cmd
                .rsplit("sed -n '")
                .next()
                .and_then(|s| s.split('{').next())
                .unwrap()
                .parse()
                .unwrap();
            let out = std::process::Command::new("sh")
                .args(["-c", cmd])
                .output()
                .unwrap();
            let mut original = lines[line - 1].clone();
            original.push(b'\n');
            assert_eq!(
                out.stdout, original,
                "{cmd} prints line {line} byte for byte"
            );
        }
    }
}

fn play(extra: &str) -> Vec<u8> {
    format!("{{\"event_type\":\"play\",\"id\":1,\"ts\":\"2015-01-20T13:00:00Z\"{extra}}}")
        .into_bytes()
}

#[tokio::test]
async fn issue10_every_reject_reason_on_sqlite_and_postgres() {
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    check(
        &[
            play(""),
            br#"{"event_type":"play","ts":"2015-01-20T13:00:00Z"}"#.to_vec(),
            br#"{"event_type":"play","id":"7","ts":"2015-01-20T13:00:00Z"}"#.to_vec(),
            play(r#","user":{"name":"seventeen chars!!"}"#),
            br#"{"event_type":"play","id":3000000000,"ts":"2015-01-20T13:00:00Z"}"#.to_vec(),
            play(r#","user":{"name":"a\u0000b"}"#),
            br#"{"event_type":"play","id":1,"ts":"yesterday"}"#.to_vec(),
            play(&format!(r#","deep":{deep}"#)),
            b"[1, 2]".to_vec(),
            br#"{"event_type":"play","#.to_vec(),
            b"{\"event_type\":\"play\",\"x\":\"\xff\"}".to_vec(),
            play(r#","user":{"name":"ok","tags":["a"]}"#),
        ],
        "
        2 missing_required id
        3 wrong_type id
        4 too_long user_name
        5 out_of_range id
        6 nul_character user_name
        7 invalid_format ts
        8 too_deep
        9 not_an_object
        10 invalid_json
        11 invalid_utf8
        ",
    )
    .await;
}

/// A line longer than the loader reads as one line (64 MiB) is a reject
/// too, and is never held in memory whole.
#[tokio::test]
async fn issue10_a_line_too_long_is_rejected() {
    let long = play(&format!(r#","pad":"{}""#, "a".repeat(65 * 1024 * 1024)));
    check(&[play(""), long, play("")], "2 line_too_long").await;
}

/// Past `load.max_rejects_per_file` the file fails alone, with nothing of
/// it committed (rows or rejects); the other files load; exit code 1.
#[tokio::test]
async fn issue10_a_file_over_the_reject_limit_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let bad = br#"{"event_type":"play","id":"x","ts":"2015-01-20T13:00:00Z"}"#.to_vec();
    let (routed, play_file) =
        routed_with_play_lines(dir.path(), &[play(""), bad.clone(), bad]).await;
    for (url, schema, rejects) in warehouses(dir.path(), "rejlim") {
        let mut cmd = loader_in(&schema);
        cmd.env("LOGROUTER_LOAD__MAX_REJECTS_PER_FILE", "1");
        let out = run(
            &mut cmd,
            &["load", "--warehouse", &url, routed.to_str().unwrap()],
        );
        assert_eq!(out.status.code(), Some(1), "{url}: {}", text(&out));
        let t = text(&out);
        assert!(
            t.contains(&format!(
                "{play_file}: more than 1 lines do not fit table play"
            )),
            "{t}"
        );
        assert!(t.contains("loaded 1 files (1 rows)"), "{t}");
        assert_eq!(
            query(&url, &schema, &format!("SELECT count(*) FROM {rejects}")),
            ["0"],
            "{url}: no rejects of the failed file"
        );
        // With the default limit the same file loads: 1 row, 2 rejects.
        let out = run(
            &mut loader_in(&schema),
            &["load", "--warehouse", &url, routed.to_str().unwrap()],
        );
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            text(&out).contains("loaded 1 files (1 rows), 1 already loaded"),
            "{}",
            text(&out)
        );
        assert_eq!(
            query(&url, &schema, &format!("SELECT count(*) FROM {rejects}")),
            ["2"]
        );
    }
}

/// Rejects commit with the rows: a loader killed at any moment leaves, for
/// every file, its rows, its rejects and its ledger row all, or none of
/// them; the rerun completes the counts.
#[tokio::test]
async fn issue10_a_killed_loader_leaves_rows_and_rejects_together() {
    let dir = tempfile::tempdir().unwrap();
    let mut events = String::new();
    for i in 0..300_000u64 {
        if i % 100 == 7 {
            events.push_str(&format!(
                "{{\"event_type\":\"play\",\"id\":\"bad {i}\",\"ts\":\"2015-01-20T13:00:00Z\"}}\n"
            ));
        } else {
            events.push_str(&format!(
                "{{\"event_type\":\"play\",\"id\":{i},\"ts\":\"2015-01-20T13:00:00Z\"}}\n"
            ));
        }
    }
    for hour in 13..16 {
        route_local(
            dir.path(),
            &format!("app-2015-01-20-{hour}.log.gz"),
            &events,
        )
        .await;
    }
    let routed = dir.path().join("routed");
    let schema = unique_schema("rejkill");
    let url = database_url();
    let mut child = loader_in(&schema)
        .env("LOGROUTER_LOAD__FILES_IN_FLIGHT", "1")
        .args(["load", "--warehouse", &url, routed.to_str().unwrap()])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    child.kill().unwrap();
    child.wait().unwrap();
    let per_file = |sql: &str| -> std::collections::BTreeMap<String, i64> {
        query(&url, &schema, sql)
            .into_iter()
            .map(|r| {
                let (f, n) = r.split_once('\t').unwrap();
                (f.to_owned(), n.parse().unwrap())
            })
            .collect()
    };
    let ledger = per_file(&format!(
        "SELECT file, rows + rejects FROM \"{schema}\"._logrouter_ledger"
    ));
    let rows = per_file(&format!(
        "SELECT _routed_file, count(*) FROM \"{schema}\".play GROUP BY 1"
    ));
    let rejects = per_file(&format!(
        "SELECT file, count(*) FROM \"{schema}\"._logrouter_rejects GROUP BY 1"
    ));
    for file in rows.keys().chain(rejects.keys()) {
        let n = rows.get(file).unwrap_or(&0) + rejects.get(file).unwrap_or(&0);
        assert_eq!(
            ledger.get(file),
            Some(&n),
            "{file}: rows and rejects without their ledger row"
        );
    }
    for (file, n) in &ledger {
        assert_eq!(*n, 300_000, "{file}");
        assert_eq!(rejects.get(file), Some(&3_000), "{file}");
    }
    let out = run(
        &mut loader_in(&schema),
        &["load", "--warehouse", &url, routed.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = run(
        &mut loader_in(&schema),
        &["verify", "--warehouse", &url, routed.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("= 891000 rows + 9000 rejects)"),
        "{}",
        text(&out)
    );
}
