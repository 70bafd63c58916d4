//! End to end, on real protocols: hourly logs land in (moto) S3 → bucket
//! notifications → `router run --drain` → routed files and manifests in S3 →
//! notifications of the routed prefix's manifests → `loader run --drain`
//! into PostgreSQL, and `loader load s3://…` into SQLite → rows per table
//! equal the manifests' counts; run again → unchanged.

use std::collections::BTreeMap;

use aws_sdk_s3::primitives::ByteStream;
use logrouter::location::Location;
use logrouter::manifest::Manifest;
use logrouter::queue::RunStats;

use crate::support::*;

async fn manifest_counts_s3(s3: &aws_sdk_s3::Client, bucket: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for key in list_keys(s3, bucket).await {
        if key.starts_with("routed/_manifests/") {
            let m: Manifest = serde_json::from_slice(&get(s3, bucket, &key).await).unwrap();
            for (t, o) in m.types {
                *out.entry(t).or_default() += o.lines as i64;
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_in_s3_end_up_in_postgres_and_sqlite_exactly_once() {
    let s3 = s3().await;
    let sqs = sqs().await;
    let bucket = unique("pipe");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let router_q = create_queue(&sqs, "router").await;
    let loader_q = create_queue(&sqs, "loader").await;
    notify_on_prefixes(
        &s3,
        &sqs,
        &bucket,
        &[(&router_q, "logs/"), (&loader_q, "routed/_manifests/")],
    )
    .await;
    for h in 13..16 {
        s3.put_object()
            .bucket(&bucket)
            .key(format!("logs/2015/01/20/{h}/app.log.gz"))
            .body(ByteStream::from(gzip(events(3000, h).as_bytes())))
            .send()
            .await
            .unwrap();
    }

    // The router service, in process, drains its queue.
    let mut config = logrouter::config::Config::default();
    config.aws.force_path_style = true;
    config.queue.wait_time_secs = 1;
    config.queue.visibility_timeout_secs = 30;
    config.validate().unwrap();
    let stats = router::service::run(
        &config,
        router_q.clone(),
        &Location::S3 {
            bucket: bucket.clone(),
            key: "routed".into(),
        },
        true,
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(RunStats::get(&stats.objects_done), 3);
    let want = manifest_counts_s3(&s3, &bucket).await;
    assert_eq!(want.values().sum::<i64>(), 9000);

    // The loader service drains the manifests' notifications into PostgreSQL.
    let schema = unique_schema("pipe");
    let url = database_url();
    let loader_run = || {
        let mut cmd = loader_at_moto();
        cmd.env("LOGROUTER_LOAD__DB_SCHEMA", &schema)
            .env("LOGROUTER_QUEUE__WAIT_TIME_SECS", "1")
            .env("LOGROUTER_QUEUE__VISIBILITY_TIMEOUT_SECS", "30");
        run(
            &mut cmd,
            &[
                "run",
                "--queue-url",
                &loader_q,
                "--warehouse",
                &url,
                "--drain",
            ],
        )
    };
    let out = loader_run();
    assert!(out.status.success());
    assert_eq!(pg_counts(&schema).await, want);
    assert_eq!(messages_on_queue(&sqs, &loader_q).await, 0);

    // SQLite through `loader load` of the routed prefix.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let sqlite = format!("sqlite:{}", db.display());
    let root = format!("s3://{bucket}/routed");
    let out = run(
        &mut loader_at_moto(),
        &["load", "--warehouse", &sqlite, &root],
    );
    assert!(out.status.success());
    assert!(
        text(&out).contains("loaded 6 files (9000 rows)"),
        "{}",
        text(&out)
    );
    assert_eq!(sqlite_counts(&db), want);

    // Again: a second `load` of both, and duplicate notifications.
    for warehouse in [&sqlite, &url] {
        let mut cmd = loader_at_moto();
        cmd.env("LOGROUTER_LOAD__DB_SCHEMA", &schema);
        let out = run(&mut cmd, &["load", "--warehouse", warehouse, &root]);
        assert!(
            text(&out).contains("loaded 0 files (0 rows), 6 already loaded"),
            "{}",
            text(&out)
        );
    }
    for key in list_keys(&s3, &bucket).await {
        if key.starts_with("routed/_manifests/") {
            touch(&s3, &bucket, &key).await;
        }
    }
    assert!(loader_run().status.success());
    assert_eq!(pg_counts(&schema).await, want);
    assert_eq!(sqlite_counts(&db), want);
}

fn router_cli(args: &[&str]) -> std::process::ExitCode {
    use clap::Parser;
    let cli = router::cli::Cli::parse_from(std::iter::once("router").chain(args.iter().copied()));
    block_on(router::cli::execute(cli))
}

/// Runs a future to completion on a runtime of its own (the router's CLI
/// entry is called in process, from a synchronous helper).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn ok(code: std::process::ExitCode) -> bool {
    format!("{code:?}") == format!("{:?}", std::process::ExitCode::SUCCESS)
}

/// Issue #4's recovery recipe, end to end: backfill a window, load it;
/// the archive is corrected and the range re-routed with `--force`;
/// `loader verify` reports the stale files; `loader load` replaces their
/// rows; `loader verify` passes and the tables equal the manifests.
#[test]
fn issue4_recovery_recipe_re_route_reload_verify() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3 = rt.block_on(s3());
    let bucket = unique("recipe");
    let put = |hour: u32, n: u64, seed: u64| {
        rt.block_on(
            s3.put_object()
                .bucket(&bucket)
                .key(format!("logs/app-2015-01-20-{hour}.log.gz"))
                .body(ByteStream::from(gzip(events(n, seed).as_bytes())))
                .send(),
        )
        .unwrap();
    };
    rt.block_on(s3.create_bucket().bucket(&bucket).send())
        .unwrap();
    for h in 10..14 {
        put(h, 1000, h as u64);
    }
    let src = format!("s3://{bucket}/logs/");
    let root = format!("s3://{bucket}/routed");
    std::env::set_var("LOGROUTER_AWS__FORCE_PATH_STYLE", "true");
    assert!(ok(router_cli(&[
        "backfill",
        "--source",
        &src,
        "--from",
        "2015-01-20T10",
        "--to",
        "2015-01-20T14",
        "--out",
        &root,
    ])));
    let schema = unique_schema("recipe");
    let url = database_url();
    let loader_cmd = |verb: &str| {
        let mut cmd = loader_at_moto();
        cmd.env("LOGROUTER_LOAD__DB_SCHEMA", &schema);
        run(&mut cmd, &[verb, "--warehouse", &url, &root])
    };
    assert!(loader_cmd("load").status.success());
    let out = loader_cmd("verify");
    assert!(
        text(&out)
            .contains("verified 8 files (4000 lines in their manifests = 4000 rows + 0 rejects): every file's rows match"),
        "{}",
        text(&out)
    );

    // The archive is corrected for two hours, which are re-routed.
    put(11, 700, 111);
    put(12, 600, 112);
    assert!(ok(router_cli(&[
        "backfill",
        "--source",
        &src,
        "--from",
        "2015-01-20T11",
        "--to",
        "2015-01-20T13",
        "--out",
        &root,
        "--force",
    ])));
    let out = loader_cmd("verify");
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert_eq!(t.matches("MISMATCH").count(), 4, "{t}");
    assert!(
        t.contains("loaded from an earlier version of the file (its source was re-routed since)"),
        "{t}"
    );

    let out = loader_cmd("load");
    assert!(
        text(&out).contains("loaded 4 files (1300 rows), 4 already loaded, 4 replaced"),
        "{}",
        text(&out)
    );
    let out = loader_cmd("verify");
    assert!(out.status.success());
    assert!(
        text(&out)
            .contains("verified 8 files (3300 lines in their manifests = 3300 rows + 0 rejects): every file's rows match"),
        "{}",
        text(&out)
    );
    let counts = rt.block_on(pg_counts(&schema));
    assert_eq!(counts, rt.block_on(manifest_counts_s3(&s3, &bucket)));
    assert_eq!(counts.values().sum::<i64>(), 3300);
}
