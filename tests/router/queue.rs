//! The shared queue worker against moto's SQS, with a handler that only
//! sleeps and counts: the heartbeat keeps a slow message invisible, shutdown
//! releases unfinished messages, SIGTERM stops `router run` cleanly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logrouter::notification::ObjectRef;
use logrouter::queue::{ObjectHandler, QueueWorker, RunStats};

use crate::support::{sqs, test_config};

/// Sleeps `delay` per object and counts how often each key was handed over.
struct SlowHandler {
    delay: Duration,
    calls: Mutex<HashMap<String, u32>>,
}

impl ObjectHandler for SlowHandler {
    async fn handle(&self, object: ObjectRef) -> Result<String, String> {
        *self
            .calls
            .lock()
            .unwrap()
            .entry(object.key.clone())
            .or_default() += 1;
        tokio::time::sleep(self.delay).await;
        Ok(object.key)
    }
}

fn body(key: &str) -> String {
    serde_json::json!({"Records": [{"eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "b"}, "object": {"key": key}}}]})
    .to_string()
}

async fn queue_with(keys: &[&str]) -> (aws_sdk_sqs::Client, String) {
    let sqs = sqs().await;
    let url = crate::support::create_queue(&sqs, "wq").await;
    for k in keys {
        sqs.send_message()
            .queue_url(&url)
            .message_body(body(k))
            .send()
            .await
            .unwrap();
    }
    (sqs, url)
}

#[tokio::test]
async fn heartbeat_keeps_a_slow_message_from_a_second_delivery() {
    let (sqs, url) = queue_with(&["slow"]).await;
    let mut config = test_config();
    config.queue.visibility_timeout_secs = 2;
    config.queue.heartbeat_secs = Some(1);
    let handler = Arc::new(SlowHandler {
        delay: Duration::from_secs(5),
        calls: Mutex::default(),
    });
    let worker =
        QueueWorker::new(sqs.clone(), url.clone(), config.queue, handler.clone()).drain(true);
    let stats = worker.run(std::future::pending()).await.unwrap();
    assert_eq!(
        handler.calls.lock().unwrap()["slow"],
        1,
        "redelivered while in flight"
    );
    assert_eq!(RunStats::get(&stats.messages_deleted), 1);
    assert_eq!(crate::support::messages_on_queue(&sqs, &url).await, 0);
}

#[tokio::test]
async fn objects_in_flight_are_bounded_and_the_loop_keeps_receiving() {
    let keys: Vec<String> = (0..6).map(|i| format!("k{i}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let (sqs, url) = queue_with(&refs).await;
    let mut config = test_config();
    config.queue.max_objects_in_flight = 3;
    let handler = Arc::new(SlowHandler {
        delay: Duration::from_millis(1500),
        calls: Mutex::default(),
    });
    let started = std::time::Instant::now();
    let stats = QueueWorker::new(sqs.clone(), url.clone(), config.queue, handler.clone())
        .drain(true)
        .run(std::future::pending())
        .await
        .unwrap();
    assert_eq!(RunStats::get(&stats.objects_done), 6);
    assert_eq!(handler.calls.lock().unwrap().len(), 6);
    // Three at a time: two rounds of 1.5 s, not six (sequential) nor one.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(3000),
        "{took:?}: more than 3 in flight"
    );
    assert!(
        took < Duration::from_millis(8500),
        "{took:?}: no concurrency"
    );
    assert_eq!(crate::support::messages_on_queue(&sqs, &url).await, 0);
}

#[tokio::test]
async fn shutdown_releases_unfinished_messages() {
    let (sqs, url) = queue_with(&["stuck"]).await;
    let mut config = test_config();
    config.queue.visibility_timeout_secs = 600;
    config.queue.shutdown_grace_secs = 1;
    let handler = Arc::new(SlowHandler {
        delay: Duration::from_secs(3600),
        calls: Mutex::default(),
    });
    let stats = QueueWorker::new(sqs.clone(), url.clone(), config.queue, handler.clone())
        .drain(false)
        .run(tokio::time::sleep(Duration::from_secs(3)))
        .await
        .unwrap();
    assert_eq!(handler.calls.lock().unwrap()["stuck"], 1);
    assert_eq!(RunStats::get(&stats.messages_deleted), 0);
    // Released: visible again at once, not after the 600 s visibility timeout.
    let again = sqs
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    assert_eq!(again.messages().len(), 1);
}

#[test]
fn sigterm_stops_router_run_with_exit_0() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_sqs, queue_url) = rt.block_on(queue_with(&[]));
    let dir = tempfile::tempdir().unwrap();
    let mut child = crate::support::router_at_moto()
        .args([
            "run",
            "--queue-url",
            &queue_url,
            "--out",
            dir.path().to_str().unwrap(),
        ])
        .env("LOGROUTER_QUEUE__WAIT_TIME_SECS", "1")
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        child.try_wait().unwrap().is_none(),
        "router run must keep running"
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(String::from_utf8_lossy(&out.stderr).contains("signal received"));
}

struct PanickingHandler;

impl ObjectHandler for PanickingHandler {
    async fn handle(&self, object: ObjectRef) -> Result<String, String> {
        if object.key == "boom" {
            panic!("handler bug");
        }
        Ok(object.key)
    }
}

/// Found when the loader's first S3 read blocked inside the runtime and
/// panicked: the message was neither failed nor deleted, and `--drain`
/// exited 0. A panic now fails its object like an error.
#[tokio::test]
async fn a_panicking_handler_fails_its_message() {
    let (sqs, url) = queue_with(&["boom", "fine"]).await;
    let worker = QueueWorker::new(
        sqs.clone(),
        url.clone(),
        test_config().queue,
        Arc::new(PanickingHandler),
    )
    .drain(true);
    let stats = worker.run(std::future::pending()).await.unwrap();
    assert_eq!(RunStats::get(&stats.messages_failed), 1);
    assert_eq!(RunStats::get(&stats.objects_failed), 1);
    assert_eq!(RunStats::get(&stats.messages_deleted), 1);
}
