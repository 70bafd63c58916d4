//! Issue #5, what an operator sees of `router run`: the metrics scraped
//! during a run add up to the manifests it wrote, and readiness flips when
//! the queue's endpoint goes away while the process stays alive.

use std::collections::BTreeMap;

use logrouter::manifest::Manifest;

use crate::s3_sqs::{put, stand};
use crate::support::*;

/// Three notified objects: every `logrouter_router_*` counter scraped from
/// `/metrics` equals the sum over the three manifests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue5_metrics_scraped_during_a_run_equal_the_manifests() {
    let st = stand(true).await;
    for (i, extra) in ["", "{\"event_type\":\"Click\"}\n", "{\"no_type\":1}\n\n"]
        .iter()
        .enumerate()
    {
        let lines = format!(
            "{{\"event_type\":\"video_play\",\"n\":{i}}}\n{{\"event_type\":\"page.view\"}}\nnot json\n{extra}"
        );
        put(
            &st,
            &format!("logs/2015/01/20/1{i}/web.log.gz"),
            gzip(lines.as_bytes()),
        )
        .await;
    }
    let port = free_port();
    let router = Service::start(
        router_at_moto()
            .env("RUST_LOG", "info")
            .env("LOGROUTER_AWS__FORCE_PATH_STYLE", "true")
            .env("LOGROUTER_QUEUE__WAIT_TIME_SECS", "1")
            .env("LOGROUTER_METRICS__HEALTH_CHECK_SECS", "1")
            .args(["run", "--queue-url", &st.queue_url, "--out"])
            .arg(format!("s3://{}/routed", st.out))
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")]),
    );
    let scrape = || http_get(port, "/metrics").map(|(_, body)| body);
    let metrics = wait_for(60, "three sources routed", || {
        scrape().filter(|m| {
            series(m, "logrouter_router_sources_total{outcome=\"routed\"}") == Some(3.0)
                && series(m, "logrouter_queue_objects_total{outcome=\"done\"}") == Some(3.0)
        })
    });

    let (mut read, mut bytes, mut types, mut reasons) = (0, 0, BTreeMap::new(), BTreeMap::new());
    for key in list_keys(&st.s3, &st.out).await {
        if key.starts_with("routed/_manifests/") {
            let m: Manifest = serde_json::from_slice(&get(&st.s3, &st.out, &key).await).unwrap();
            read += m.lines.read;
            for (t, o) in m.types {
                *types.entry(t).or_insert(0) += o.lines;
                bytes += o.parts.iter().map(|p| p.bytes).sum::<u64>();
            }
            bytes += m.quarantine.parts.iter().map(|p| p.bytes).sum::<u64>();
            for (r, n) in m.quarantine.by_reason {
                *reasons.entry(r).or_insert(0) += n;
            }
        }
    }
    assert_eq!(read, 12, "the manifests cover every line");
    assert_eq!(types.len(), 3, "{types:?}");
    for (t, n) in &types {
        let s = format!("logrouter_router_lines_routed_total{{type=\"{t}\"}}");
        assert_eq!(series(&metrics, &s), Some(*n as f64), "{s}\n{metrics}");
    }
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    for (r, n) in &reasons {
        let s = format!("logrouter_router_lines_quarantined_total{{reason=\"{r}\"}}");
        assert_eq!(series(&metrics, &s), Some(*n as f64), "{s}\n{metrics}");
    }
    assert_eq!(
        series(&metrics, "logrouter_router_lines_read_total"),
        Some(read as f64)
    );
    assert_eq!(
        series(&metrics, "logrouter_router_lines_blank_total"),
        Some(1.0)
    );
    assert_eq!(
        series(&metrics, "logrouter_router_bytes_written_total"),
        Some(bytes as f64)
    );
    assert_eq!(
        metrics
            .matches("logrouter_router_lines_routed_total{")
            .count(),
        types.len(),
        "no type the manifests do not have\n{metrics}"
    );
    for s in [
        "logrouter_router_bytes_read_total",
        "logrouter_router_source_seconds_count",
    ] {
        assert!(series(&metrics, s).unwrap_or(0.0) > 0.0, "{s}\n{metrics}");
    }
    assert_eq!(
        series(&metrics, "logrouter_queue_errors_total{op=\"receive\"}"),
        Some(0.0)
    );
    assert!(metrics.contains("# HELP logrouter_router_lines_routed_total"));

    // Deleted once done: the three notifications and moto's test event.
    wait_for(30, "every message deleted", || {
        let m = scrape()?;
        let received = series(&m, "logrouter_queue_messages_received_total")?;
        (received == 4.0 && series(&m, "logrouter_queue_messages_deleted_total") == Some(received))
            .then_some(())
    });
    assert_eq!(messages_on_queue(&st.sqs, &st.queue_url).await, 0);
    let (status, body) = http_get(port, "/healthz").unwrap();
    assert_eq!((status, body.as_str()), (200, "ready\nqueue: ok\n"));
    assert_eq!(http_get(port, "/livez").unwrap().0, 200);
    assert_eq!(http_get(port, "/nope").unwrap().0, 404);
    let log = router.stderr();
    assert_eq!(router.stop(), Some(0), "{log}");
}

/// Found missing: nothing told an operator that a router had lost its queue.
/// Readiness now turns 503 (and `logrouter_ready{component="queue"}` 0)
/// while the endpoint is gone; the process stays alive and keeps retrying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue5_readiness_flips_when_the_queue_endpoint_goes_away() {
    let (moto, endpoint) = own_moto();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .load()
        .await;
    let queue_url = aws_sdk_sqs::Client::new(&sdk)
        .create_queue()
        .queue_name("ops")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    let router = Service::start(
        router_at_moto()
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("LOGROUTER_QUEUE__WAIT_TIME_SECS", "1")
            .env("LOGROUTER_METRICS__HEALTH_CHECK_SECS", "1")
            .args(["run", "--queue-url", &queue_url, "--out"])
            .arg(out.path())
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")]),
    );
    wait_for(30, "ready", || {
        http_get(port, "/healthz").filter(|(s, _)| *s == 200)
    });

    drop(moto);
    let (_, body) = wait_for(30, "not ready once moto is gone", || {
        http_get(port, "/healthz").filter(|(s, _)| *s == 503)
    });
    assert!(body.starts_with("not ready\nqueue: not ready: "), "{body}");
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert_eq!(
        series(&metrics, "logrouter_ready{component=\"queue\"}"),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(
        http_get(port, "/livez").unwrap().0,
        200,
        "alive while not ready"
    );
    let log = router.stderr();
    assert!(log.contains("not ready"), "{log}");
    assert_eq!(router.stop(), Some(0), "{log}");
}

/// Issue #23, `router run` as a Fargate task: `metrics.format = "emf"`
/// writes the counters to stdout (every `metrics.emf_interval_secs`, and
/// once more at SIGTERM), where the awslogs driver takes them to
/// CloudWatch; they equal the manifests. `--metrics-addr` still serves
/// `/healthz` and `/livez` (not `/metrics`), and `router healthcheck`, the
/// task's health check, passes against it and fails where nothing answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue23_run_with_emf_metrics_and_its_health_check() {
    let st = stand(true).await;
    for h in 0..2 {
        let lines =
            format!("{{\"event_type\":\"a\",\"h\":{h}}}\n{{\"event_type\":\"b\"}}\nnot json\n");
        put(
            &st,
            &format!("logs/2015/01/20/1{h}/web.log.gz"),
            gzip(lines.as_bytes()),
        )
        .await;
    }
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let router = Service::start_keeping_stdout(
        router_at_moto()
            .env("LOGROUTER_AWS__FORCE_PATH_STYLE", "true")
            .env("LOGROUTER_QUEUE__WAIT_TIME_SECS", "1")
            .env("LOGROUTER_METRICS__HEALTH_CHECK_SECS", "1")
            .env("LOGROUTER_METRICS__FORMAT", "emf")
            .env("LOGROUTER_METRICS__EMF_INTERVAL_SECS", "1")
            .args(["run", "--queue-url", &st.queue_url, "--out"])
            .arg(format!("s3://{}/routed", st.out))
            .args(["--metrics-addr", &addr]),
    );
    wait_for(60, "both sources routed (EMF on stdout)", || {
        let sums = emf_sums(&router.stdout());
        (sums.get("logrouter_router_sources_total{outcome=routed}") == Some(&2.0)).then_some(())
    });
    let health = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_router"))
            .arg("healthcheck")
            .args(args)
            .output()
            .unwrap()
    };
    wait_for(30, "ready", || {
        health(&["--addr", &addr, "--path", "/healthz"])
            .status
            .success()
            .then_some(())
    });
    assert!(health(&["--addr", &addr]).status.success(), "/livez");
    let nobody = format!("127.0.0.1:{}", free_port());
    let down = health(&["--addr", &nobody, "--timeout-secs", "2"]);
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("unhealthy"));
    let (status, body) = http_get(port, "/metrics").unwrap();
    assert_eq!(status, 404);
    assert!(body.contains("EMF"), "{body}");

    let mut router = router;
    let code = router.terminate();
    assert_eq!(code, Some(0), "{}", router.stderr());
    let mut read = 0;
    let mut routed = BTreeMap::new();
    for key in list_keys(&st.s3, &st.out).await {
        if key.starts_with("routed/_manifests/") {
            let m: Manifest = serde_json::from_slice(&get(&st.s3, &st.out, &key).await).unwrap();
            read += m.lines.read;
            for (t, o) in m.types {
                *routed.entry(t).or_insert(0u64) += o.lines;
            }
        }
    }
    assert_eq!(read, 6);
    let sums = emf_sums(&router.stdout());
    assert_eq!(sums["logrouter_router_lines_read_total"], read as f64);
    for (t, n) in &routed {
        assert_eq!(
            sums[&format!("logrouter_router_lines_routed_total{{type={t}}}")],
            *n as f64
        );
    }
    assert_eq!(
        sums["logrouter_router_lines_quarantined_total{reason=invalid_json}"],
        2.0
    );
}
