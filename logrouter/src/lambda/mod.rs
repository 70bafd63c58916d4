//! Lambda mode: `router lambda` and `loader lambda` as functions behind an
//! SQS event source mapping.
//!
//! An invocation is an SQS event: a batch of messages, each with a body in
//! any shape `run` accepts. [`handle_batch`] is a plain async function over
//! that typed event, testable without a runtime: each message goes through
//! the queue worker's own steps ([`crate::queue::read_body`], then
//! [`crate::queue::process_objects`] with the same [`ObjectHandler`] `run`
//! uses), so the manifest-last commit and the loader's ledger are the same
//! code. Its answer is an SQS batch response (`ReportBatchItemFailures`):
//! exactly the messages that did not complete are listed, and the event
//! source deletes the others. Where `run` deletes a message, the event
//! source does; where `run` leaves one for a retry, it is listed.
//!
//! The invocation's deadline bounds the work ([`Budget`]): what has not
//! finished `lambda.deadline_margin_secs` before it is abandoned (its future
//! dropped: no manifest is written and no transaction commits, see
//! `Router::route_object`), and listed as failed, so the response reaches
//! Lambda in time and the message comes back after its visibility timeout.
//!
//! [`runtime`] is the Runtime API client that feeds it.

pub mod runtime;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::config::LambdaConfig;
use crate::notification::ObjectRef;
use crate::queue::{bump, process_objects, read_body, BodyAction, ObjectHandler, RunStats};

/// An SQS event, as Lambda's event source mapping sends it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct SqsEvent {
    #[serde(rename = "Records")]
    pub records: Vec<SqsRecord>,
}

/// One message of an [`SqsEvent`]; the fields this code reads.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct SqsRecord {
    #[serde(rename = "messageId")]
    pub message_id: String,
    #[serde(default)]
    pub body: String,
    #[serde(rename = "eventSourceARN", default)]
    pub event_source_arn: Option<String>,
}

/// The answer to an SQS event: the messages to retry.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

impl BatchResponse {
    /// The message ids listed as failures.
    pub fn failed_ids(&self) -> BTreeSet<&str> {
        self.batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }
}

/// How long an invocation may work.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Work not finished by then is abandoned.
    pub work_until: tokio::time::Instant,
    /// Whether the deadline came from Lambda (false: the fallback).
    pub deadline_known: bool,
}

impl Budget {
    /// The budget of an invocation that arrived `now` (epoch ms `now_ms`)
    /// with `Lambda-Runtime-Deadline-Ms` = `deadline_ms`. A deadline not
    /// after the arrival is not a deadline (cargo-lambda's emulator sends a
    /// fixed 600000, ten minutes after 1970): it is treated as unknown, with
    /// a warning, and `lambda.fallback_timeout_secs` applies, never "already
    /// past".
    pub fn new(
        deadline_ms: Option<u64>,
        now_ms: u64,
        now: tokio::time::Instant,
        config: &LambdaConfig,
    ) -> Self {
        let margin = Duration::from_secs(config.deadline_margin_secs);
        match deadline_ms {
            Some(d) if d > now_ms => Budget {
                work_until: now + Duration::from_millis(d - now_ms).saturating_sub(margin),
                deadline_known: true,
            },
            other => {
                warn!(
                    deadline_ms = ?other,
                    now_ms,
                    fallback_secs = config.fallback_timeout_secs,
                    "the invocation's deadline is missing or not in the future (a local emulator?): treating it as unknown and using lambda.fallback_timeout_secs"
                );
                Budget {
                    work_until: now + Duration::from_secs(config.fallback_timeout_secs) - margin,
                    deadline_known: false,
                }
            }
        }
    }

    /// The budget of an invocation arriving now.
    pub fn from_deadline_ms(deadline_ms: Option<u64>, config: &LambdaConfig) -> Self {
        Self::new(
            deadline_ms,
            epoch_ms(SystemTime::now()),
            tokio::time::Instant::now(),
            config,
        )
    }
}

pub fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Lets one object be worked on once at a time within a process: a batch
/// may hold two notifications of one object (S3 delivers at least once),
/// and the second then finds the first's result (its manifest, its ledger
/// row) instead of racing it.
pub struct OnePerObject<H> {
    inner: Arc<H>,
    locks: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

impl<H> OnePerObject<H> {
    pub fn new(inner: Arc<H>) -> Self {
        Self {
            inner,
            locks: DashMap::new(),
        }
    }
}

impl<H: ObjectHandler> ObjectHandler for OnePerObject<H> {
    async fn handle(&self, object: ObjectRef) -> Result<String, String> {
        let uri = object.uri();
        let lock = self.locks.entry(uri.clone()).or_default().clone();
        let result = {
            let _turn = lock.lock().await;
            self.inner.handle(object).await
        };
        // The last holder removes the entry (two references: the map's and
        // this one), so the map holds only objects in flight.
        self.locks.remove_if(&uri, |_, l| Arc::strong_count(l) <= 2);
        result
    }
}

/// Handles one SQS event: every message through the queue worker's steps,
/// up to `max_in_flight` at once, until `budget.work_until`. Returns the
/// messages to retry. Every message is logged and counted as `run` counts
/// it (`logrouter_queue_*`; "deleted" is the event source's deletion of the
/// messages not listed).
pub async fn handle_batch<H: ObjectHandler>(
    handler: &Arc<H>,
    event: SqsEvent,
    budget: Budget,
    max_in_flight: usize,
    stats: &Arc<RunStats>,
) -> BatchResponse {
    let permits = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let mut failed: Vec<String> = Vec::new();
    // Listed too, but counted as `run` counts them: unknown, not retried.
    let mut unknown: Vec<String> = Vec::new();
    let mut pending: BTreeSet<String> = BTreeSet::new();
    let mut consumed = 0u64;
    let mut tasks: JoinSet<(String, bool)> = JoinSet::new();
    let order: Vec<String> = event.records.iter().map(|r| r.message_id.clone()).collect();
    let out_of_time = tokio::time::Instant::now() >= budget.work_until;
    for record in event.records {
        bump(&stats.messages_received);
        metrics::counter!("logrouter_queue_messages_received_total").increment(1);
        let id = record.message_id;
        match read_body(&id, &record.body, stats) {
            BodyAction::Leave => unknown.push(id),
            BodyAction::Consume => consumed += 1,
            BodyAction::Process(_) if out_of_time => {
                warn!(message_id = %id, "no time left before the invocation's deadline (less lambda.deadline_margin_secs): not started; it is retried");
                failed.push(id);
            }
            BodyAction::Process(objects) => {
                pending.insert(id.clone());
                let (handler, permits, stats) = (handler.clone(), permits.clone(), stats.clone());
                tasks.spawn(async move {
                    let _permit = permits.acquire_owned().await.expect("never closed");
                    let failures = process_objects(handler.as_ref(), &id, objects, &stats).await;
                    (id, failures.is_empty())
                });
            }
        }
    }
    let mut done = consumed;
    let gathered = tokio::time::timeout_at(budget.work_until, async {
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((id, ok)) => {
                    pending.remove(&id);
                    if ok {
                        done += 1;
                    } else {
                        failed.push(id);
                    }
                }
                // `process_objects` catches a handler's panic; a task can
                // only end otherwise by being aborted, below.
                Err(e) => warn!(error = %e, "a message's task ended abnormally"),
            }
        }
    })
    .await;
    if gathered.is_err() {
        // Dropping the work abandons it: a route writes no manifest, a load
        // commits nothing (see the module documentation).
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        for id in std::mem::take(&mut pending) {
            warn!(message_id = %id, deadline_known = budget.deadline_known,
                "abandoned: not finished before the invocation's deadline (less lambda.deadline_margin_secs); it is retried");
            failed.push(id);
        }
    }
    // Left over only if a task ended abnormally: never report those done.
    failed.extend(pending);
    for _ in &failed {
        bump(&stats.messages_failed);
        metrics::counter!("logrouter_queue_messages_retried_total").increment(1);
    }
    stats
        .messages_deleted
        .fetch_add(done, std::sync::atomic::Ordering::Relaxed);
    metrics::counter!("logrouter_queue_messages_deleted_total").increment(done);
    let failed: BTreeSet<String> = failed.into_iter().chain(unknown).collect();
    info!(
        messages = order.len(),
        done,
        failed = failed.len(),
        "invocation done"
    );
    BatchResponse {
        batch_item_failures: order
            .into_iter()
            .filter(|id| failed.contains(id))
            .map(|item_identifier| ItemFailure { item_identifier })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn config(margin: u64) -> LambdaConfig {
        LambdaConfig {
            deadline_margin_secs: margin,
            ..LambdaConfig::default()
        }
    }

    #[tokio::test]
    async fn a_deadline_before_arrival_is_unknown_never_past() {
        let now = tokio::time::Instant::now();
        let c = config(10);
        // cargo-lambda's emulator: 600000 ms after the epoch.
        let b = Budget::new(Some(600_000), 1_764_000_000_000, now, &c);
        assert!(!b.deadline_known);
        assert_eq!(b.work_until - now, Duration::from_secs(900 - 10));
        let b = Budget::new(None, 1_764_000_000_000, now, &c);
        assert!(!b.deadline_known);
        // Equal to the arrival is not in the future either.
        let b = Budget::new(Some(1_764_000_000_000), 1_764_000_000_000, now, &c);
        assert!(!b.deadline_known);
    }

    #[tokio::test]
    async fn a_real_deadline_less_the_margin_bounds_the_work() {
        let now = tokio::time::Instant::now();
        let b = Budget::new(Some(1_000_000 + 60_000), 1_000_000, now, &config(10));
        assert!(b.deadline_known);
        assert_eq!(b.work_until - now, Duration::from_secs(50));
        // Less time than the margin: nothing may start.
        let b = Budget::new(Some(1_000_000 + 5_000), 1_000_000, now, &config(10));
        assert_eq!(b.work_until, now);
    }

    /// Succeeds for keys starting `ok`, fails `bad…`, sleeps an hour on
    /// `slow…`; counts the objects it started.
    struct Fake {
        started: AtomicUsize,
    }

    impl ObjectHandler for Fake {
        async fn handle(&self, object: ObjectRef) -> Result<String, String> {
            self.started.fetch_add(1, Ordering::SeqCst);
            if object.key.starts_with("slow") {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            if object.key.starts_with("bad") {
                return Err("no".into());
            }
            Ok(object.uri())
        }
    }

    fn s3_body(key: &str) -> String {
        serde_json::json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "b"}, "object": {"key": key}}}]})
        .to_string()
    }

    fn record(id: &str, body: String) -> SqsRecord {
        SqsRecord {
            message_id: id.into(),
            body,
            event_source_arn: None,
        }
    }

    /// `check(records, expected failures)`, with a budget of two seconds.
    async fn check(records: Vec<SqsRecord>, expected: &[&str]) -> Arc<RunStats> {
        let handler = Arc::new(Fake {
            started: AtomicUsize::new(0),
        });
        let budget = Budget {
            work_until: tokio::time::Instant::now() + Duration::from_secs(2),
            deadline_known: true,
        };
        let stats = Arc::new(RunStats::default());
        let r = handle_batch(&handler, SqsEvent { records }, budget, 4, &stats).await;
        let got: Vec<&str> = r
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(got, expected);
        stats
    }

    #[tokio::test]
    async fn exactly_the_messages_that_did_not_complete_are_failures() {
        let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#;
        let stats = check(
            vec![
                record("m1", s3_body("ok-1")),
                record("m2", s3_body("bad-1")),
                record("m3", "not a notification".into()),
                record("m4", test_event.into()),
                record("m5", s3_body("slow-1")),
                record("m6", s3_body("ok-2")),
            ],
            &["m2", "m3", "m5"],
        )
        .await;
        assert_eq!(RunStats::get(&stats.messages_received), 6);
        assert_eq!(RunStats::get(&stats.messages_deleted), 3);
        assert_eq!(RunStats::get(&stats.messages_unknown), 1);
        assert_eq!(RunStats::get(&stats.messages_failed), 2);
        assert_eq!(RunStats::get(&stats.objects_done), 2);
        assert_eq!(RunStats::get(&stats.objects_failed), 1);
    }

    #[tokio::test]
    async fn nothing_starts_when_no_time_is_left() {
        let handler = Arc::new(Fake {
            started: AtomicUsize::new(0),
        });
        let budget = Budget {
            work_until: tokio::time::Instant::now(),
            deadline_known: true,
        };
        let stats = Arc::new(RunStats::default());
        let event = SqsEvent {
            records: vec![record("a", s3_body("ok-1")), record("b", s3_body("ok-2"))],
        };
        let r = handle_batch(&handler, event, budget, 4, &stats).await;
        assert_eq!(r.failed_ids(), BTreeSet::from(["a", "b"]));
        assert_eq!(handler.started.load(Ordering::SeqCst), 0);
    }

    /// One object named twice in a batch is worked on once at a time.
    #[tokio::test]
    async fn one_object_is_handled_once_at_a_time() {
        struct Exclusive {
            busy: AtomicUsize,
            overlaps: AtomicUsize,
        }
        impl ObjectHandler for Exclusive {
            async fn handle(&self, _: ObjectRef) -> Result<String, String> {
                if self.busy.fetch_add(1, Ordering::SeqCst) > 0 {
                    self.overlaps.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.busy.fetch_sub(1, Ordering::SeqCst);
                Ok(String::new())
            }
        }
        let inner = Arc::new(Exclusive {
            busy: AtomicUsize::new(0),
            overlaps: AtomicUsize::new(0),
        });
        let handler = Arc::new(OnePerObject::new(inner.clone()));
        let budget = Budget {
            work_until: tokio::time::Instant::now() + Duration::from_secs(60),
            deadline_known: true,
        };
        let event = SqsEvent {
            records: (0..4)
                .map(|i| record(&format!("m{i}"), s3_body("same")))
                .collect(),
        };
        let stats = Arc::new(RunStats::default());
        let r = handle_batch(&handler, event, budget, 4, &stats).await;
        assert!(r.batch_item_failures.is_empty());
        assert_eq!(inner.overlaps.load(Ordering::SeqCst), 0);
        assert!(handler.locks.is_empty(), "the locks are released");
    }

    #[test]
    fn the_response_is_the_shape_lambda_reads() {
        let r = BatchResponse {
            batch_item_failures: vec![ItemFailure {
                item_identifier: "id-1".into(),
            }],
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"batchItemFailures":[{"itemIdentifier":"id-1"}]}"#
        );
        let e: SqsEvent = serde_json::from_str(
            r#"{"Records":[{"messageId":"x","receiptHandle":"r","body":"{}","attributes":{},"messageAttributes":{},"md5OfBody":"","eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:us-east-1:1:q","awsRegion":"us-east-1"}]}"#,
        )
        .unwrap();
        assert_eq!(e.records[0].message_id, "x");
        assert_eq!(e.records[0].body, "{}");
    }
}
