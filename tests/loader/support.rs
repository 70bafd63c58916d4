//! The shared support (`tests/support.rs`) plus loader helpers: test input,
//! routing it, running the loader, counting rows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use logrouter::aws::AwsClients;
use logrouter::config::Config;
use logrouter::location::Location;
use logrouter::manifest::Manifest;
use router::route::{RouteOutcome, Router};

#[allow(dead_code)]
#[path = "../support.rs"]
mod shared;
#[allow(unused_imports)]
pub use shared::*;

/// The test schemas: `play` has one, `click` has none (one JSON column).
pub fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/schemas")
}

/// `n` lines: plays (with a schema) and clicks (without), one in five a
/// click, plus a line the router quarantines. `seed` varies the content.
pub fn events(n: u64, seed: u64) -> String {
    let mut s = String::new();
    for i in 0..n {
        if i % 5 == 4 {
            s.push_str(&format!(
                "{{\"event_type\":\"Click\",\"id\":{i},\"target\":\"b{seed}\\ttab\"}}\n"
            ));
        } else {
            s.push_str(&format!(
                "{{\"event_type\":\"play\",\"id\":{i},\"ts\":\"2015-01-20T13:{:02}:00+01:00\",\"user\":{{\"name\":\"u{seed}\",\"tags\":[\"a\",\"b\\\\c\"]}}}}\n",
                i % 60
            ));
        }
    }
    s.push_str("not json\n");
    s
}

/// Routes local `src` into `dest` with the router's library.
pub async fn route(src: &Location, dest: &Location, force: bool) -> Manifest {
    let mut config = Config::default();
    config.aws.force_path_style = true;
    let router = Router::new(&config, dest, Arc::new(AwsClients::new(config.aws.clone())))
        .await
        .unwrap();
    match router.route_object(src, !force).await.unwrap() {
        RouteOutcome::Routed { manifest, .. } => *manifest,
        other => panic!("{other:?}"),
    }
}

/// Writes `events` as an hourly gzipped log under `dir` and routes it to
/// `dir/routed`.
pub async fn route_local(dir: &Path, name: &str, events: &str) -> Manifest {
    let src = dir.join(name);
    std::fs::write(&src, gzip(events.as_bytes())).unwrap();
    route(
        &Location::Local(src),
        &Location::Local(dir.join("routed")),
        true,
    )
    .await
}

/// Routed lines per table, summed over every manifest under `root`.
pub fn manifest_counts(root: &Path) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for f in files_under(&root.join("_manifests")) {
        let m: Manifest =
            serde_json::from_slice(&std::fs::read(root.join("_manifests").join(&f)).unwrap())
                .unwrap();
        for (t, o) in m.types {
            *out.entry(t).or_default() += o.lines as i64;
        }
    }
    out
}

/// The `loader` binary with the test schemas, quiet logs.
pub fn loader() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loader"));
    cmd.env("RUST_LOG", "warn")
        .env("LOGROUTER_LOAD__SCHEMAS_DIR", schemas_dir());
    cmd
}

/// The same, pointed at moto.
pub fn loader_at_moto() -> Command {
    let mut cmd = loader();
    cmd.env("AWS_ENDPOINT_URL", moto())
        .env("LOGROUTER_AWS__FORCE_PATH_STYLE", "true");
    cmd
}

/// A Redshift Data API test server of the test's own
/// (tests/redshift_data_server.py on the shared PostgreSQL and moto), on
/// `port`, with `args` (e.g. `--cost-model`).
pub fn own_redshift_data(port: u16, args: &[&str]) -> Service {
    let python = std::env::var("TEST_PYTHON").unwrap_or_else(|_| {
        panic!("TEST_PYTHON is not set: run the tests with scripts/test, which installs the Redshift Data API test server's Python")
    });
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/redshift_data_server.py");
    let server = Service::start(
        std::process::Command::new(python)
            .arg(script)
            .args([
                "--port",
                &port.to_string(),
                "--database-url",
                &database_url(),
            ])
            .args(args)
            .env("AWS_ENDPOINT_URL", moto()),
    );
    wait_for(30, "the test's own Redshift Data API server", || {
        http_get(port, "/").filter(|(s, _)| *s == 200)
    });
    server
}

/// Runs `cmd` with `args`, returns its output; prints it on failure.
pub fn run(cmd: &mut Command, args: &[&str]) -> Output {
    let out = cmd.args(args).output().unwrap();
    if !out.status.success() {
        eprintln!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Rows per table in a SQLite warehouse (tables named in the ledger).
pub fn sqlite_counts(db: &Path) -> BTreeMap<String, i64> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT DISTINCT table_name FROM _logrouter_ledger ORDER BY 1")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .into_iter()
        .map(|t| {
            let n: i64 = conn
                .query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0))
                .unwrap();
            (t, n)
        })
        .collect()
}

pub async fn pg() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// Rows per table in a PostgreSQL schema (tables named in its ledger).
pub async fn pg_counts(schema: &str) -> BTreeMap<String, i64> {
    let c = pg().await;
    let tables = c
        .query(
            &format!("SELECT DISTINCT table_name FROM \"{schema}\"._logrouter_ledger ORDER BY 1"),
            &[],
        )
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for r in tables {
        let t: String = r.get(0);
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM \"{schema}\".\"{t}\""), &[])
            .await
            .unwrap()
            .get(0);
        out.insert(t, n);
    }
    out
}

/// Sends S3 event notifications of new objects in `bucket` under each
/// prefix to its queue (by URL): the bucket notification set-up of every
/// end-to-end test.
pub async fn notify_on_prefixes(
    s3: &aws_sdk_s3::Client,
    sqs: &aws_sdk_sqs::Client,
    bucket: &str,
    routes: &[(&str, &str)],
) {
    let mut config = aws_sdk_s3::types::NotificationConfiguration::builder();
    for (queue, prefix) in routes {
        config = config.queue_configurations(on_prefix(queue_arn(sqs, queue).await, prefix));
    }
    s3.put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(config.build())
        .send()
        .await
        .unwrap();
}

/// S3 event notifications of new objects under `prefix` to the queue `arn`.
pub fn on_prefix(arn: String, prefix: &str) -> aws_sdk_s3::types::QueueConfiguration {
    aws_sdk_s3::types::QueueConfiguration::builder()
        .queue_arn(arn)
        .events(aws_sdk_s3::types::Event::S3ObjectCreated)
        .filter(
            aws_sdk_s3::types::NotificationConfigurationFilter::builder()
                .key(
                    aws_sdk_s3::types::S3KeyFilter::builder()
                        .filter_rules(
                            aws_sdk_s3::types::FilterRule::builder()
                                .name(aws_sdk_s3::types::FilterRuleName::Prefix)
                                .value(prefix)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .build()
        .unwrap()
}

/// Touches an object in place (a copy onto itself): a duplicate
/// notification of it.
pub async fn touch(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) {
    s3.copy_object()
        .bucket(bucket)
        .key(key)
        .copy_source(format!("{bucket}/{key}"))
        .metadata("touched", "1")
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .send()
        .await
        .unwrap();
}
