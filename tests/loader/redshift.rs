//! The Redshift path, through the Data API, against the project's test
//! server (tests/redshift_data_server.py: the Data API protocol, statements
//! run on PostgreSQL, COPY sources read from moto S3). Ledger, transactions
//! and COPY are therefore real; FAILED, ABORTED and slow statements are
//! produced with the server's test rules.

use std::collections::BTreeMap;

use aws_sdk_s3::primitives::ByteStream;
use logrouter::location::Location;

use crate::support::*;

const ROLE: &str = "arn:aws:iam::123456789012:role/logrouter-copy";

fn url() -> String {
    format!("redshift://test-cluster/dev?db_user=loader&iam_role={ROLE}")
}

/// Writes the hourly log of `hour` to moto S3 and routes it to
/// `s3://bucket/routed`.
async fn put_and_route(bucket: &str, hour: &str, events: &str) {
    let key = format!("logs/app-2015-01-20-{hour}.log.gz");
    s3().await
        .put_object()
        .bucket(bucket)
        .key(&key)
        .body(ByteStream::from(gzip(events.as_bytes())))
        .send()
        .await
        .unwrap();
    let at = |key: String| Location::S3 {
        bucket: bucket.to_owned(),
        key,
    };
    route(&at(key), &at("routed".into()), true).await;
}

/// Routed files in a new moto bucket: returns (bucket, routed root URI).
async fn routed_in_s3(lines: &[(&str, &str)]) -> (String, String) {
    let bucket = unique("rs");
    s3().await
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    for (hour, events) in lines {
        put_and_route(&bucket, hour, events).await;
    }
    (bucket.clone(), format!("s3://{bucket}/routed"))
}

fn redshift_loader(schema: &str) -> std::process::Command {
    let mut cmd = loader_at_moto();
    cmd.env("AWS_ENDPOINT_URL_REDSHIFT_DATA", redshift_data())
        .env("LOGROUTER_LOAD__DB_SCHEMA", schema);
    cmd
}

/// Runs the Redshift loader on `schema` with `args`.
fn rs(schema: &str, args: &[&str]) -> std::process::Output {
    run(&mut redshift_loader(schema), args)
}

async fn rules(rules: serde_json::Value) {
    let url = format!("{}/_test/rules", redshift_data());
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("curl")
            .args(["-fsS", "-X", "POST", "-d", &rules.to_string(), &url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    })
    .await
    .unwrap();
}

/// Loads run as Data API batches (LOCK, guards, COPY with jsonpaths into a
/// staging table, DELETE, INSERT, ledger) and commit exactly once; a rerun
/// loads nothing; a re-route replaces; migrations run through the API.
/// (One test sets the server's rules, which are global: each rule matches
/// only this test's bucket.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redshift_through_the_data_api() {
    rules(serde_json::json!({})).await;
    let (bucket, root) = routed_in_s3(&[("13", &events(500, 1)), ("14", &events(300, 2))]).await;
    let schema = unique_schema("rs");
    let url = url();

    // The shipped Redshift migrations apply through the API (in a schema of
    // their own: the demo's `click` has a schema, the tests' has none).
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let out = run(
        &mut redshift_loader(&unique_schema("rsmig")),
        &[
            "migrate",
            "--warehouse",
            &url,
            "--migrations",
            migrations.to_str().unwrap(),
        ],
    );
    assert!(
        text(&out).contains(
            "3 migrations applied (0001_create_demo_tables, 0002_create_access_log_tables, 0003_add_access_log_timestamp)"
        ),
        "{}",
        text(&out)
    );

    let out = rs(&schema, &["load", "--warehouse", &url, &root]);
    assert!(out.status.success());
    assert!(
        text(&out).contains("loaded 4 files (800 rows), 0 already loaded"),
        "{}",
        text(&out)
    );
    let want: BTreeMap<String, i64> = [("click".to_owned(), 160), ("play".to_owned(), 640)].into();
    assert_eq!(pg_counts(&schema).await, want);
    let c = pg().await;
    let row = c
        .query_one(
            &format!("SELECT user_name, user_tags::text, _routed_line IS NULL, _routed_file FROM \"{schema}\".play WHERE id = 1 ORDER BY _routed_file LIMIT 1"),
            &[],
        )
        .await
        .unwrap();
    let (name, tags, no_line, file): (String, String, bool, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(
        (name.as_str(), tags.as_str(), no_line),
        ("u1", r#"["a", "b\\c"]"#, true)
    );
    assert!(
        file.starts_with(&format!("s3://{bucket}/routed/play/dt=2015-01-20/hour=13/")),
        "{file}"
    );
    let event: String = c
        .query_one(&format!("SELECT event->>'target' FROM \"{schema}\".click WHERE event->>'id' = '4' ORDER BY _routed_file LIMIT 1"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(event, "b1\ttab");

    let out = rs(&schema, &["load", "--warehouse", &url, &root]);
    assert!(
        text(&out).contains("loaded 0 files (0 rows), 4 already loaded"),
        "{}",
        text(&out)
    );
    let out = rs(&schema, &["verify", "--warehouse", &url, &root]);
    assert!(out.status.success(), "{}", text(&out));

    // Re-route hour 13 with fewer lines: its rows are replaced.
    put_and_route(&bucket, "13", &events(100, 9)).await;
    let out = rs(&schema, &["load", "--warehouse", &url, &root]);
    assert!(
        text(&out).contains("loaded 2 files (100 rows), 2 already loaded, 2 replaced"),
        "{}",
        text(&out)
    );
    let want: BTreeMap<String, i64> = [("click".to_owned(), 80), ("play".to_owned(), 320)].into();
    assert_eq!(pg_counts(&schema).await, want);

    // A FAILED statement: reported, nothing of the file committed.
    // Rules are global: each matches only this test's bucket, so the other
    // Redshift tests running meanwhile are not affected.
    let (bucket2, root2) = routed_in_s3(&[("15", &events(50, 3))]).await;
    rules(
        serde_json::json!({"fail_matching": "INSERT INTO \"".to_owned() + &schema + "\".\"play\""}),
    )
    .await;
    let out = rs(&schema, &["load", "--warehouse", &url, &root2]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("test server: failing as asked (in: INSERT INTO"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("loaded 1 files (10 rows)"),
        "{}",
        text(&out)
    );

    // ABORTED: reported as such.
    rules(serde_json::json!({"abort_matching": format!("FROM 's3://{bucket2}/")})).await;
    let out = rs(&schema, &["load", "--warehouse", &url, &root2]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("was aborted"), "{}", text(&out));

    // Slow: past load.statement_timeout_secs the statement is cancelled.
    rules(
        serde_json::json!({"delay_ms": 4000, "delay_matching": format!("FROM 's3://{bucket2}/")}),
    )
    .await;
    let mut cmd = redshift_loader(&schema);
    cmd.env("LOGROUTER_LOAD__STATEMENT_TIMEOUT_SECS", "1");
    let out = run(&mut cmd, &["load", "--warehouse", &url, &root2]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .contains("did not finish within 1 s (load.statement_timeout_secs); it was cancelled"),
        "{}",
        text(&out)
    );
    rules(serde_json::json!({})).await;

    // A line COPY cannot load, with no rejects allowed: the file fails and
    // the message carries its rows of sys_load_error_detail.
    let bad = "{\"event_type\":\"play\",\"id\":1,\"ts\":\"2015-01-20T13:00:00Z\"}\n{\"event_type\":\"play\",\"ts\":\"2015-01-20T13:00:00Z\"}\n";
    let (_, root3) = routed_in_s3(&[("16", bad)]).await;
    let mut cmd = redshift_loader(&schema);
    cmd.env("LOGROUTER_LOAD__MAX_REJECTS_PER_FILE", "0");
    let out = run(&mut cmd, &["load", "--warehouse", &url, &root3]);
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(t.contains("more than 0 lines do not fit table play"), "{t}");
    assert!(
        t.contains("play/dt=2015-01-20/hour=16/") && t.contains(" line 2 column id: "),
        "{t}"
    );

    // Nothing of the failed loads was committed; once the cause is gone the
    // file loads, once.
    assert_eq!(pg_counts(&schema).await["play"], 320);
    let out = rs(&schema, &["load", "--warehouse", &url, &root2]);
    assert!(
        text(&out).contains("loaded 1 files (40 rows), 1 already loaded"),
        "{}",
        text(&out)
    );
    assert_eq!(pg_counts(&schema).await["play"], 360);

    // With the default limit the bad line is a reject (COPY's MAXERROR and
    // sys_load_error_detail), committed with the file's rows.
    let out = rs(&schema, &["load", "--warehouse", &url, &root3]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("loaded 1 files (1 rows)") && text(&out).contains("1 lines rejected"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("  play: 1 (missing_required 1)"),
        "{}",
        text(&out)
    );
    let out = rs(&schema, &["verify", "--warehouse", &url, &root3]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("= 1 rows + 1 rejects)"),
        "{}",
        text(&out)
    );

    // Issue #11: a serializable isolation violation (error 1023, "to be
    // retried") fails the batch twice; the loader retries it, and every
    // file loads once.
    let (_, root4) = routed_in_s3(&[("17", &events(40, 4)), ("18", &events(40, 5))]).await;
    let schema4 = unique_schema("rs1023");
    rules(serde_json::json!({
        "fail_matching": format!("LOCK \"{schema4}\".\"_logrouter_ledger\""),
        "fail_message": "1023 DETAIL: Serializable isolation violation on table - 100123, transactions forming the cycle are: 1, 2 (pid:3)",
        "fail_times": 2,
    }))
    .await;
    let out = rs(&schema4, &["load", "--warehouse", &url, &root4]);
    rules(serde_json::json!({})).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("loaded 4 files (80 rows), 0 already loaded"),
        "{}",
        text(&out)
    );
    assert_eq!(
        text(&out).matches("batch retried").count(),
        2,
        "{}",
        text(&out)
    );
    let want: BTreeMap<String, i64> = [("click".to_owned(), 16), ("play".to_owned(), 64)].into();
    assert_eq!(pg_counts(&schema4).await, want);
}

/// Issue #10 on Redshift: every reason the Data API test server's COPY
/// reports (as Redshift's load error codes) becomes the same reject as on
/// the other warehouses; rows + rejects = the manifest's lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_redshift_rejects_through_maxerror_and_the_load_error_view() {
    let lines: Vec<&str> = vec![
        r#"{"event_type":"play","id":1,"ts":"2015-01-20T13:00:00Z"}"#,
        r#"{"event_type":"play","ts":"2015-01-20T13:00:00Z"}"#,
        r#"{"event_type":"play","id":"abc","ts":"2015-01-20T13:00:00Z"}"#,
        r#"{"event_type":"play","id":1,"ts":"2015-01-20T13:00:00Z","user":{"name":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}"#,
        r#"{"event_type":"play","id":3000000000,"ts":"2015-01-20T13:00:00Z"}"#,
        r#"{"event_type":"play","id":1,"ts":"not a time"}"#,
        r#"{"event_type":"play","#,
        r#"{"event_type":"play","id":2,"ts":"2015-01-20T13:00:00Z","user":{"name":"ok"}}"#,
    ];
    let expected = [
        "2 missing_required id",
        "3 wrong_type id",
        "4 too_long user_name",
        "5 out_of_range id",
        "6 invalid_format ts",
        "7 invalid_json",
    ];
    // Route as many plays as there are lines, then put the test's lines in
    // the routed file (the manifest counts lines, not content).
    let source: String = (0..lines.len())
        .map(|i| {
            format!("{{\"event_type\":\"play\",\"id\":{i},\"ts\":\"2015-01-20T13:00:00Z\"}}\n")
        })
        .collect();
    let (bucket, root) = routed_in_s3(&[("13", &source)]).await;
    let s3 = s3().await;
    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("routed/play/")
        .send()
        .await
        .unwrap();
    let key = listed.contents()[0].key().unwrap().to_owned();
    let body = lines.join("\n") + "\n";
    s3.put_object()
        .bucket(&bucket)
        .key(&key)
        .body(ByteStream::from(gzip(body.as_bytes())))
        .send()
        .await
        .unwrap();
    let schema = unique_schema("rsrej");
    let url = url();
    let out = rs(&schema, &["load", "--warehouse", &url, &root]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("loaded 1 files (2 rows), 0 already loaded, 0 replaced an earlier version, 0 failed, {} lines rejected", expected.len())),
        "{}",
        text(&out)
    );
    let c = pg().await;
    let got: Vec<String> = c
        .query(
            &format!("SELECT line, reason, COALESCE(column_name, ''), file FROM \"{schema}\"._logrouter_rejects ORDER BY line"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let file: String = r.get(3);
            assert_eq!(file, format!("s3://{bucket}/{key}"));
            let (line, reason, column): (i64, String, String) = (r.get(0), r.get(1), r.get(2));
            format!("{line} {reason} {column}").trim().to_owned()
        })
        .collect();
    assert_eq!(got, expected);
    let out = rs(&schema, &["verify", "--warehouse", &url, &root]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("= 2 rows + 6 rejects)"),
        "{}",
        text(&out)
    );
    // A rerun loads nothing; `loader rejects` lists them with the command
    // that prints each line from S3.
    let out = rs(&schema, &["load", "--warehouse", &url, &root]);
    assert!(
        text(&out).contains("loaded 0 files (0 rows), 1 already loaded"),
        "{}",
        text(&out)
    );
    let out = rs(&schema, &["rejects", "--warehouse", &url]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "recover: aws s3 cp s3://{bucket}/{key} - | gzip -dc | sed -n '2{{p;q}}'"
        )),
        "{}",
        text(&out)
    );
}

/// Transactions that loaded files of `schema`, per table: the ledger's
/// `loaded_at` is the batch's transaction time (GETDATE()), shared by every
/// file of one batch.
pub async fn commits_per_table(schema: &str) -> BTreeMap<String, i64> {
    pg().await
        .query(
            &format!("SELECT table_name, count(DISTINCT loaded_at) FROM \"{schema}\"._logrouter_ledger GROUP BY 1"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Replaces a routed file in S3 with `content` (the manifest keeps its count).
async fn replace_in_s3(bucket: &str, key: &str, content: &str) {
    s3().await
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(gzip(content.as_bytes())))
        .send()
        .await
        .unwrap();
}

/// Issue #11: a backfill root loads in batches of up to 13 files of one
/// table, one commit each; a file that cannot load (rows ≠ manifest, too
/// many rejects) fails alone while the rest of its batch loads; two loaders
/// racing on the same root load every file once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue11_many_files_per_commit_and_a_bad_file_fails_alone() {
    let hours: Vec<String> = (0..26).map(|h| format!("{:02}", h % 24)).collect();
    let bucket = unique("rsbatch");
    s3().await
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    for (i, h) in hours.iter().enumerate() {
        // Two days of hours: 13 of play and click each on each day.
        let key_hour = format!("{}-{h}", if i < 24 { "20" } else { "21" });
        let key = format!("logs/app-2015-01-{key_hour}.log.gz");
        s3().await
            .put_object()
            .bucket(&bucket)
            .key(&key)
            .body(ByteStream::from(gzip(events(20, i as u64).as_bytes())))
            .send()
            .await
            .unwrap();
        let at = |key: String| Location::S3 {
            bucket: bucket.clone(),
            key,
        };
        route(&at(key), &at("routed".into()), true).await;
    }
    let root = format!("s3://{bucket}/routed");
    let listed = s3()
        .await
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("routed/play/")
        .send()
        .await
        .unwrap();
    let plays: Vec<String> = listed
        .contents()
        .iter()
        .map(|o| o.key().unwrap().to_owned())
        .collect();
    assert_eq!(plays.len(), 26);
    // One play file one line longer than its manifest says; another with
    // two lines its table cannot take (over a limit of 1).
    let line = "{\"event_type\":\"play\",\"id\":1,\"ts\":\"2015-01-20T13:00:00Z\"}\n";
    replace_in_s3(&bucket, &plays[3], &line.repeat(17)).await;
    let bad = "{\"event_type\":\"play\",\"id\":\"x\",\"ts\":\"2015-01-20T13:00:00Z\"}\n";
    replace_in_s3(&bucket, &plays[20], &(line.repeat(14) + bad + bad)).await;

    let schema = unique_schema("rsbatch");
    let url = url();
    let mut cmd = redshift_loader(&schema);
    cmd.env("LOGROUTER_LOAD__MAX_REJECTS_PER_FILE", "1");
    let out = run(&mut cmd, &["load", "--warehouse", &url, &root]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains(
            "loaded 50 files (488 rows), 0 already loaded, 0 replaced an earlier version, 2 failed"
        ),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "s3://{bucket}/{}: loaded 17 rows and 0 rejects but its manifest says 16 lines",
            plays[3]
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "s3://{bucket}/{}: more than 1 lines do not fit table play",
            plays[20]
        )),
        "{t}"
    );
    // 26 files of each table: two batches each, one commit each (the
    // failed file's batch ran again without it).
    let commits = commits_per_table(&schema).await;
    assert_eq!(
        commits,
        [("click".to_owned(), 2), ("play".to_owned(), 2)].into()
    );
    let want: BTreeMap<String, i64> =
        [("click".to_owned(), 26 * 4), ("play".to_owned(), 24 * 16)].into();
    assert_eq!(pg_counts(&schema).await, want);
    let out = rs(&schema, &["verify", "--warehouse", &url, &root]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out).matches("MISMATCH ").count(), 2, "{}", text(&out));

    // Two loaders at once on a fresh schema: every file once.
    let schema2 = unique_schema("rsrace");
    let children: Vec<_> = (0..2)
        .map(|_| {
            redshift_loader(&schema2)
                .env("LOGROUTER_LOAD__MAX_REJECTS_PER_FILE", "2")
                .args(["load", "--warehouse", &url, &root])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut loaded = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        let t = text(&out);
        assert!(t.contains("loaded "), "{t}");
        loaded += t
            .split("loaded ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .unwrap()
            .parse::<u64>()
            .unwrap();
    }
    assert_eq!(loaded, 51, "each loadable file by exactly one loader");
    let want: BTreeMap<String, i64> = [
        ("click".to_owned(), 26 * 4),
        ("play".to_owned(), 24 * 16 + 14),
    ]
    .into();
    assert_eq!(pg_counts(&schema2).await, want);
}

/// Issue #11: `loader run` on Redshift gathers the files of many
/// notifications into batches per table, and deletes each message once its
/// files committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue11_loader_run_gathers_notifications_into_batches() {
    let s3 = s3().await;
    let sqs = sqs().await;
    let bucket = unique("rsrun");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let queue = create_queue(&sqs, "rsrun").await;
    notify_on_prefixes(&s3, &sqs, &bucket, &[(&queue, "routed/_manifests/")]).await;
    for h in 0..10 {
        put_and_route(&bucket, &format!("{h:02}"), &events(20, h)).await;
    }
    let schema = unique_schema("rsrun");
    let mut cmd = redshift_loader(&schema);
    cmd.env("LOGROUTER_QUEUE__WAIT_TIME_SECS", "1")
        .env("LOGROUTER_QUEUE__MAX_OBJECTS_IN_FLIGHT", "20")
        .env("LOGROUTER_LOAD__BATCH_WINDOW_SECS", "3");
    let out = run(
        &mut cmd,
        &[
            "run",
            "--queue-url",
            &queue,
            "--warehouse",
            &url(),
            "--drain",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let want: BTreeMap<String, i64> = [("click".to_owned(), 40), ("play".to_owned(), 160)].into();
    assert_eq!(pg_counts(&schema).await, want);
    assert_eq!(messages_on_queue(&sqs, &queue).await, 0);
    // 20 files, 10 of each table: gathered into a few batches, not 20.
    let commits: i64 = commits_per_table(&schema).await.values().sum();
    assert!(commits <= 6, "{commits} commits for 20 files");
}

/// Issue #12, what differs on Redshift: its COPY converts a string of
/// digits into an INTEGER column itself (the Data API test server does it
/// as the COPY-from-JSON page describes), so a column without
/// `x-logrouter-from-text` takes `"7"` there, where SQLite and PostgreSQL
/// reject it as `wrong_type` (tests/loader/rejects.rs); `"7x"` is a reject
/// everywhere. Documented in the README (schema section).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue12_redshift_copy_converts_digit_strings_even_without_the_keyword() {
    let source = concat!(
        "{\"event_type\":\"play\",\"id\":\"7\",\"ts\":\"2015-01-20T13:00:00Z\"}\n",
        "{\"event_type\":\"play\",\"id\":\"7x\",\"ts\":\"2015-01-20T13:00:00Z\"}\n",
    );
    let (_, root) = routed_in_s3(&[("13", source)]).await;
    let schema = unique_schema("rsdigits");
    let out = rs(&schema, &["load", "--warehouse", &url(), &root]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("loaded 1 files (1 rows)") && text(&out).contains("1 lines rejected"),
        "{}",
        text(&out)
    );
    let c = pg().await;
    let ids: Vec<i32> = c
        .query(&format!("SELECT id FROM \"{schema}\".play"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, [7]);
    let rejects: Vec<(String, String)> = c
        .query(
            &format!("SELECT reason, column_name FROM \"{schema}\"._logrouter_rejects"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rejects, [("wrong_type".to_owned(), "id".to_owned())]);
}
