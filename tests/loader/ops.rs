//! Issue #5, what an operator sees of `loader run`: rows and files per
//! table scraped from `/metrics` equal the manifests, a duplicate
//! notification is counted as skipped, and readiness follows the warehouse.
//!
//! The warehouse is Redshift through a Data API test server of the test's
//! own (tests/redshift_data_server.py on the shared PostgreSQL), so that the
//! test can stop it.

use std::collections::BTreeMap;

use logrouter::location::Location;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue5_loader_metrics_count_the_load_and_readiness_follows_the_warehouse() {
    let s3 = s3().await;
    let sqs = sqs().await;
    let bucket = unique("ops");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let queue = create_queue(&sqs, "loader-ops").await;
    notify_on_prefixes(&s3, &sqs, &bucket, &[(&queue, "routed/_manifests/")]).await;
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

    let rs_port = free_port();
    let warehouse = own_redshift_data(rs_port, &[]);
    let endpoint = format!("http://127.0.0.1:{rs_port}");
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
            "logrouter_loader_failures_total{reason=\"too_many_rejects\"}"
        ),
        Some(0.0)
    );
    let (_, body) = wait_for(30, "ready", || {
        http_get(port, "/healthz").filter(|(s, _)| *s == 200)
    });
    assert_eq!(body, "ready\nqueue: ok\nwarehouse: ok\n");

    // A duplicate notification (a manifest touched in place): every file it
    // names is counted as skipped, and no row is added.
    let manifests: Vec<String> = list_keys(&s3, &bucket)
        .await
        .into_iter()
        .filter(|k| k.starts_with("routed/_manifests/"))
        .collect();
    let files_of = |key: &str| {
        let key = key.to_owned();
        let (s3, bucket) = (s3.clone(), bucket.clone());
        async move {
            let m: logrouter::manifest::Manifest =
                serde_json::from_slice(&get(&s3, &bucket, &key).await).unwrap();
            m.types.values().map(|o| o.parts.len()).sum::<usize>() as f64
        }
    };
    let skipped = |m: &str| -> f64 {
        want.keys()
            .filter_map(|t| {
                series(
                    m,
                    &format!("logrouter_loader_duplicates_skipped_total{{table=\"{t}\"}}"),
                )
            })
            .sum()
    };
    touch(&s3, &bucket, &manifests[0]).await;
    let first = files_of(&manifests[0]).await;
    // Handled whole (skipped, then the manifest's orphans checked) and
    // deleted, before the warehouse is stopped below.
    let settled = |m: &str| {
        series(m, "logrouter_queue_messages_deleted_total")
            == series(m, "logrouter_queue_messages_received_total")
    };
    let metrics = wait_for(60, "the duplicate skipped", || {
        let (_, m) = http_get(port, "/metrics")?;
        (skipped(&m) == first && settled(&m)).then_some(m)
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

    // While it is gone the loader receives nothing: a new notification waits
    // in the queue, its receives unspent, instead of failing towards the
    // dead-letter queue.
    // (A long poll begun before the check failed ends within its 1 s wait.)
    std::thread::sleep(std::time::Duration::from_secs(2));
    touch(&s3, &bucket, &manifests[1]).await;
    wait_for(10, "the notification on the queue", || {
        let (_, m) = http_get(port, "/metrics")?;
        (series(&m, "logrouter_queue_messages_visible")? >= 1.0).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (_, m) = http_get(port, "/metrics").unwrap();
    assert_eq!(
        series(&m, "logrouter_queue_messages_visible"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        series(&m, "logrouter_queue_objects_total{outcome=\"failed\"}").unwrap_or(0.0),
        0.0,
        "{}",
        loader.stderr()
    );

    // Back: ready again, and the waiting notification is handled.
    let _warehouse = own_redshift_data(rs_port, &[]);
    wait_for(30, "ready again", || {
        http_get(port, "/healthz").filter(|(s, _)| *s == 200)
    });
    let second = files_of(&manifests[1]).await;
    wait_for(60, "the waiting notification handled", || {
        let (_, m) = http_get(port, "/metrics")?;
        (skipped(&m) == first + second).then_some(())
    });
    for _ in 0..50 {
        if messages_on_queue(&sqs, &queue).await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        messages_on_queue(&sqs, &queue).await,
        0,
        "deleted once handled"
    );
    let log = loader.stderr();
    assert!(
        log.contains("not receiving until it is ready again"),
        "{log}"
    );
    assert_eq!(loader.stop(), Some(0), "{log}");
}
