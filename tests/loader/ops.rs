//! Issue #5, what an operator sees of `loader run`: rows and files per
//! table scraped from `/metrics` equal the manifests, a duplicate
//! notification is counted as skipped, and readiness follows the warehouse.
//!
//! The warehouse is Redshift through a Data API test server of the test's
//! own (tests/redshift_data_server.py on the shared PostgreSQL), so that the
//! test can stop it.

use std::collections::BTreeMap;

use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
    QueueConfiguration, S3KeyFilter,
};
use logrouter::location::Location;

use crate::support::*;

/// A Redshift Data API test server of the test's own.
fn own_redshift_data() -> (Service, String) {
    let python = std::env::var("TEST_PYTHON").unwrap_or_else(|_| {
        panic!("TEST_PYTHON is not set: run the tests with scripts/test, which installs the Redshift Data API test server's Python")
    });
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/redshift_data_server.py");
    let port = free_port();
    let server = Service::start(
        std::process::Command::new(python)
            .arg(script)
            .args([
                "--port",
                &port.to_string(),
                "--database-url",
                &database_url(),
            ])
            .env("AWS_ENDPOINT_URL", moto()),
    );
    wait_for(30, "the test's own Redshift Data API server", || {
        http_get(port, "/").filter(|(s, _)| *s == 200)
    });
    (server, format!("http://127.0.0.1:{port}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue5_loader_metrics_count_the_load_and_readiness_follows_the_warehouse() {
    let s3 = s3().await;
    let sqs = sqs().await;
    let bucket = unique("ops");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let queue = create_queue(&sqs, "loader-ops").await;
    let on_manifests = QueueConfiguration::builder()
        .queue_arn(queue_arn(&sqs, &queue).await)
        .events(Event::S3ObjectCreated)
        .filter(
            NotificationConfigurationFilter::builder()
                .key(
                    S3KeyFilter::builder()
                        .filter_rules(
                            FilterRule::builder()
                                .name(FilterRuleName::Prefix)
                                .value("routed/_manifests/")
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .build()
        .unwrap();
    s3.put_bucket_notification_configuration()
        .bucket(&bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(on_manifests)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let at = |key: &str| Location::S3 {
        bucket: bucket.clone(),
        key: key.to_owned(),
    };
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    let mut files = 0;
    for h in 13..15 {
        let key = format!("logs/app-2015-01-20-{h}.log.gz");
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .body(gzip(events(200, h).as_bytes()).into())
            .send()
            .await
            .unwrap();
        let m = route(&at(&key), &at("routed"), true).await;
        for (t, o) in m.types {
            *want.entry(t).or_default() += o.lines;
            files += o.parts.len();
        }
    }

    let (warehouse, endpoint) = own_redshift_data();
    let port = free_port();
    let loader = Service::start(
        loader_at_moto()
            .env("RUST_LOG", "info")
            .env("AWS_ENDPOINT_URL_REDSHIFT_DATA", &endpoint)
            .env("LOGROUTER_LOAD__DB_SCHEMA", unique_schema("ops"))
            .env("LOGROUTER_QUEUE__WAIT_TIME_SECS", "1")
            .env("LOGROUTER_METRICS__HEALTH_CHECK_SECS", "1")
            .args(["run", "--queue-url", &queue, "--warehouse"])
            .arg("redshift://test-cluster/dev?db_user=loader&iam_role=arn:aws:iam::123456789012:role/copy")
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")]),
    );
    let rows = |m: &str, t: &str| {
        series(
            m,
            &format!("logrouter_loader_rows_loaded_total{{table=\"{t}\"}}"),
        )
    };
    let metrics = wait_for(90, "every table loaded", || {
        let (_, m) = http_get(port, "/metrics")?;
        want.iter()
            .all(|(t, n)| rows(&m, t) == Some(*n as f64))
            .then_some(m)
    });
    let loaded: f64 = want
        .keys()
        .map(|t| {
            series(
                &metrics,
                &format!("logrouter_loader_files_loaded_total{{table=\"{t}\"}}"),
            )
            .unwrap()
        })
        .sum();
    assert_eq!(loaded, files as f64, "{metrics}");
    assert_eq!(
        series(
            &metrics,
            "logrouter_loader_failures_total{reason=\"bad_line\"}"
        ),
        Some(0.0)
    );
    let (status, body) = http_get(port, "/healthz").unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, "ready\nqueue: ok\nwarehouse: ok\n")
    );

    // A duplicate notification (a manifest touched in place): every file it
    // names is counted as skipped, and no row is added.
    let manifest = list_keys(&s3, &bucket)
        .await
        .into_iter()
        .find(|k| k.starts_with("routed/_manifests/"))
        .unwrap();
    s3.copy_object()
        .bucket(&bucket)
        .key(&manifest)
        .copy_source(format!("{bucket}/{manifest}"))
        .metadata("touched", "1")
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .send()
        .await
        .unwrap();
    let metrics = wait_for(60, "the duplicate skipped", || {
        let (_, m) = http_get(port, "/metrics")?;
        let skipped: f64 = want
            .keys()
            .filter_map(|t| {
                series(
                    &m,
                    &format!("logrouter_loader_duplicates_skipped_total{{table=\"{t}\"}}"),
                )
            })
            .sum();
        (skipped > 0.0).then_some(m)
    });
    for (t, n) in &want {
        assert_eq!(
            rows(&metrics, t),
            Some(*n as f64),
            "{t}: rows added by a duplicate"
        );
    }

    // The warehouse goes away: not ready, alive, and it says why.
    drop(warehouse);
    let (_, body) = wait_for(30, "not ready once the warehouse is gone", || {
        http_get(port, "/healthz").filter(|(s, _)| *s == 503)
    });
    assert!(body.contains("queue: ok\nwarehouse: not ready: "), "{body}");
    assert_eq!(http_get(port, "/livez").unwrap().0, 200);
    let log = loader.stderr();
    assert_eq!(loader.stop(), Some(0), "{log}");
}
