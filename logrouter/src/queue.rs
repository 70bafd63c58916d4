//! The SQS worker loop shared by `router run` and `loader run`.
//!
//! One loop receives messages; each message with objects to process becomes
//! a task that holds one permit of a semaphore (objects in flight are
//! bounded), keeps its message invisible with a heartbeat while it works, and
//! on success hands the receipt to a deleter that deletes in batches. The
//! loop never waits for a slow object: it only waits for a free permit.
//!
//! Rules that keep data safe:
//! - a message is deleted only after its handler returned success for every
//!   object it names (the handler returns only once its outputs are durable);
//! - a body of unknown shape is never deleted: it is logged with an excerpt
//!   and left for the queue's redrive policy;
//! - a failed message is made visible again after a backoff that grows with
//!   its receive count, so a poison message does not spin.
//!
//! Every event below is logged and counted (`logrouter_queue_*`, see
//! [`crate::telemetry`]) at the same place. The queue's readiness follows
//! each receive and a periodic `GetQueueAttributes`, which also reports the
//! backlog.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use dashmap::DashMap;
use futures_util::FutureExt;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use crate::aws::describe;
use crate::config::QueueConfig;
use crate::notification::{parse_body, Notification, ObjectRef};
use crate::telemetry::{spawn_check, Health, QUEUE};

/// Processes one object named by a notification.
pub trait ObjectHandler: Send + Sync + 'static {
    /// Returns a one-line summary on success. Must return success only once
    /// everything the object produced is durable.
    fn handle(&self, object: ObjectRef) -> impl Future<Output = Result<String, String>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue {url} does not exist (check --queue-url and the region)")]
    NoSuchQueue { url: String },
}

/// Counts of one run, for the exit code and the final log line.
#[derive(Debug, Default)]
pub struct RunStats {
    pub messages_received: AtomicU64,
    pub messages_deleted: AtomicU64,
    /// Messages left on the queue because an object failed.
    pub messages_failed: AtomicU64,
    /// Messages of unknown shape left for the redrive policy.
    pub messages_unknown: AtomicU64,
    pub objects_done: AtomicU64,
    pub objects_failed: AtomicU64,
    pub receive_errors: AtomicU64,
    pub delete_errors: AtomicU64,
    pub visibility_errors: AtomicU64,
}

impl RunStats {
    pub fn get(v: &AtomicU64) -> u64 {
        v.load(Ordering::Relaxed)
    }
}

pub(crate) fn bump(v: &AtomicU64) {
    v.fetch_add(1, Ordering::Relaxed);
}

pub struct QueueWorker<H> {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    config: QueueConfig,
    handler: Arc<H>,
    /// Stop once a receive came back empty and nothing is in flight.
    drain: bool,
    /// Where the queue's readiness is reported, and how often it is checked.
    health: Option<(Arc<Health>, Duration)>,
    /// A component (the loader's warehouse) without which receiving only
    /// spends the messages' receives: no receive while it is not ready.
    needs: Option<&'static str>,
}

/// A message being worked on, so that it can be released on shutdown.
/// Keyed by receipt handle: two deliveries of one message have two.
struct InFlight {
    message_id: String,
}

impl<H: ObjectHandler> QueueWorker<H> {
    pub fn new(
        sqs: aws_sdk_sqs::Client,
        queue_url: String,
        config: QueueConfig,
        handler: Arc<H>,
    ) -> Self {
        Self {
            sqs,
            queue_url,
            config,
            handler,
            drain: false,
            health: None,
            needs: None,
        }
    }

    /// Stop once a receive came back empty and nothing is in flight.
    pub fn drain(mut self, drain: bool) -> Self {
        self.drain = drain;
        self
    }

    /// Reports the queue's readiness to `health`, checking it every `every`
    /// (the last receive, then `GetQueueAttributes`).
    pub fn with_health(mut self, health: Arc<Health>, every: Duration) -> Self {
        self.health = Some((health, every));
        self
    }

    /// Receives nothing while `component` of the health given to
    /// [`QueueWorker::with_health`] is not ready: the messages wait in the
    /// queue (and its lag alarm fires) instead of failing until they reach
    /// the dead-letter queue.
    pub fn pause_while_not_ready(mut self, component: &'static str) -> Self {
        self.needs = Some(component);
        self
    }

    /// Runs until `shutdown` resolves (or, with `drain`, the queue is empty).
    /// On shutdown, work in flight gets `shutdown_grace_secs` to finish; the
    /// messages of whatever is still running then are released (visibility 0).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Arc<RunStats>, QueueError> {
        let stats = Arc::new(RunStats::default());
        let permits = Arc::new(Semaphore::new(self.config.max_objects_in_flight));
        let in_flight: Arc<DashMap<String, InFlight>> = Arc::new(DashMap::new());
        let (delete_tx, delete_rx) = mpsc::unbounded_channel::<String>();
        let deleter = tokio::spawn(delete_batches(
            self.sqs.clone(),
            self.queue_url.clone(),
            delete_rx,
            stats.clone(),
        ));
        let mut tasks = JoinSet::new();
        let mut checks = JoinSet::new();
        // The check is the one writer of the queue's readiness; the receive
        // loop tells it how its last receive went.
        let receive_error: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        if let Some((health, every)) = &self.health {
            let (sqs, url, last) = (
                self.sqs.clone(),
                self.queue_url.clone(),
                receive_error.clone(),
            );
            spawn_check(&mut checks, health.clone(), QUEUE, *every, move || {
                let last = last.lock().expect("receive error lock").clone();
                check_queue(sqs.clone(), url.clone(), last)
            });
        }
        let mut paused = false;
        let mut receive_backoff = Duration::ZERO;
        tokio::pin!(shutdown);
        let mut stopped_by_signal = false;

        loop {
            while tasks.try_join_next().is_some() {}
            let free = permits.available_permits();
            if free == 0 {
                tokio::select! {
                    _ = &mut shutdown => { stopped_by_signal = true; break; }
                    _ = tasks.join_next() => continue,
                }
            }
            if let (Some(needs), Some((health, _))) = (self.needs, &self.health) {
                if !health.is_ready(needs) {
                    if !paused {
                        info!(component = needs, "not receiving until it is ready again");
                        paused = true;
                    }
                    tokio::select! {
                        _ = &mut shutdown => { stopped_by_signal = true; break; }
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    }
                }
                if paused {
                    info!(component = needs, "ready again: receiving");
                    paused = false;
                }
            }
            let receive = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(free.min(10) as i32)
                .wait_time_seconds(self.config.wait_time_secs as i32)
                .visibility_timeout(self.config.visibility_timeout_secs as i32)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                .send();
            let received = tokio::select! {
                _ = &mut shutdown => { stopped_by_signal = true; break; }
                r = receive => r,
            };
            let messages = match received {
                Ok(out) => {
                    receive_backoff = Duration::ZERO;
                    *receive_error.lock().expect("receive error lock") = None;
                    let messages = out.messages.unwrap_or_default();
                    metrics::gauge!("logrouter_queue_oldest_message_age_seconds")
                        .set(oldest_age_secs(&messages));
                    messages
                }
                Err(e) => {
                    if e.as_service_error()
                        .is_some_and(|s| s.is_queue_does_not_exist())
                    {
                        return Err(QueueError::NoSuchQueue {
                            url: self.queue_url.clone(),
                        });
                    }
                    bump(&stats.receive_errors);
                    metrics::counter!("logrouter_queue_errors_total", "op" => "receive")
                        .increment(1);
                    receive_backoff = (receive_backoff * 2)
                        .clamp(Duration::from_millis(500), Duration::from_secs(30));
                    let error = describe(&e);
                    warn!(queue = %self.queue_url, %error, retry_in = ?receive_backoff, "receive failed");
                    *receive_error.lock().expect("receive error lock") =
                        Some(format!("receive failed: {error}"));
                    tokio::select! {
                        _ = &mut shutdown => { stopped_by_signal = true; break; }
                        _ = tokio::time::sleep(receive_backoff) => continue,
                    }
                }
            };
            if messages.is_empty() {
                if self.drain && tasks.is_empty() {
                    debug!("queue empty after one long poll and nothing in flight: drained");
                    break;
                }
                continue;
            }
            for message in messages {
                bump(&stats.messages_received);
                metrics::counter!("logrouter_queue_messages_received_total").increment(1);
                self.dispatch(
                    message, &permits, &in_flight, &delete_tx, &stats, &mut tasks,
                )
                .await;
            }
        }

        if stopped_by_signal {
            info!(
                in_flight = tasks.len(),
                "stopping: no more receives; finishing work in flight"
            );
        }
        let grace = Duration::from_secs(self.config.shutdown_grace_secs as u64);
        let finished =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if finished.is_err() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
            let unfinished: Vec<(String, String)> = in_flight
                .iter()
                .map(|e| (e.key().clone(), e.value().message_id.clone()))
                .collect();
            for (receipt, message_id) in unfinished {
                warn!(%message_id, "releasing unfinished message back to the queue");
                self.set_visibility(&receipt, 0, &stats).await;
            }
        }
        drop(delete_tx);
        let _ = deleter.await;
        Ok(stats)
    }

    async fn dispatch(
        &self,
        message: Message,
        permits: &Arc<Semaphore>,
        in_flight: &Arc<DashMap<String, InFlight>>,
        delete_tx: &mpsc::UnboundedSender<String>,
        stats: &Arc<RunStats>,
        tasks: &mut JoinSet<()>,
    ) {
        let id = message.message_id.clone().unwrap_or_default();
        let Some(receipt) = message.receipt_handle.clone() else {
            warn!(message_id = %id, "message without receipt handle ignored");
            return;
        };
        let body = message.body.as_deref().unwrap_or("");
        let objects = match read_body(&id, body, stats) {
            BodyAction::Leave => return,
            BodyAction::Consume => {
                let _ = delete_tx.send(receipt);
                return;
            }
            BodyAction::Process(objects) => objects,
        };
        let receive_count: u32 = message
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        in_flight.insert(
            receipt.clone(),
            InFlight {
                message_id: id.clone(),
            },
        );
        let ctx = MessageTask {
            sqs: self.sqs.clone(),
            queue_url: self.queue_url.clone(),
            config: self.config.clone(),
            stats: stats.clone(),
        };
        let handler = self.handler.clone();
        let in_flight = in_flight.clone();
        let delete_tx = delete_tx.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let ok = ctx
                .process(&id, &receipt, objects, receive_count, handler)
                .await;
            in_flight.remove(&receipt);
            if ok {
                let _ = delete_tx.send(receipt);
            }
        });
    }

    async fn set_visibility(&self, receipt: &str, secs: u32, stats: &RunStats) {
        set_visibility(&self.sqs, &self.queue_url, receipt, secs, stats).await
    }
}

struct MessageTask {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    config: QueueConfig,
    stats: Arc<RunStats>,
}

impl MessageTask {
    /// Processes every object of one message under a visibility heartbeat.
    /// Returns whether the message may be deleted.
    async fn process<H: ObjectHandler>(
        &self,
        id: &str,
        receipt: &str,
        objects: Vec<ObjectRef>,
        receive_count: u32,
        handler: Arc<H>,
    ) -> bool {
        let work = process_objects(handler.as_ref(), id, objects, &self.stats);
        let heartbeat = async {
            let period = Duration::from_secs(self.config.heartbeat_secs() as u64);
            loop {
                tokio::time::sleep(period).await;
                debug!(message_id = %id, "extending visibility");
                set_visibility(
                    &self.sqs,
                    &self.queue_url,
                    receipt,
                    self.config.visibility_timeout_secs,
                    &self.stats,
                )
                .await;
            }
        };
        let failures = tokio::select! {
            f = work => f,
            _ = heartbeat => unreachable!("the heartbeat never ends"),
        };
        if failures.is_empty() {
            return true;
        }
        bump(&self.stats.messages_failed);
        metrics::counter!("logrouter_queue_messages_retried_total").increment(1);
        let backoff = backoff_secs(self.config.failure_backoff_secs, receive_count);
        warn!(message_id = %id, failed = failures.len(), retry_in_secs = backoff, "message will be retried");
        set_visibility(&self.sqs, &self.queue_url, receipt, backoff, &self.stats).await;
        false
    }
}

/// What a message's body asks for.
pub(crate) enum BodyAction {
    /// Objects to process; the message is done once each of them is.
    Process(Vec<ObjectRef>),
    /// Nothing to do (a test event, a removal): the message is consumed.
    Consume,
    /// A body of unknown shape: never consumed, left for the queue's
    /// redrive policy.
    Leave,
}

/// Classifies a message body, logging and counting what is not work, the
/// same way for the queue worker and the Lambda handler.
pub(crate) fn read_body(message_id: &str, body: &str, stats: &RunStats) -> BodyAction {
    match parse_body(body) {
        Notification::Unknown { why, excerpt } => {
            bump(&stats.messages_unknown);
            metrics::counter!("logrouter_queue_messages_unknown_total").increment(1);
            error!(%message_id, %why, %excerpt,
                "message of unknown shape left on the queue for its redrive policy (dead-letter queue)");
            BodyAction::Leave
        }
        Notification::Nothing { why } => {
            info!(%message_id, %why, "notification asks for nothing; deleting it");
            BodyAction::Consume
        }
        Notification::Objects(objects) => BodyAction::Process(objects),
    }
}

/// Processes the objects of one message in order, each logged and counted
/// here whatever runs it (the queue worker, a Lambda invocation). Returns
/// the URIs of the objects that failed: the message is done only when
/// there are none.
pub(crate) async fn process_objects<H: ObjectHandler>(
    handler: &H,
    id: &str,
    objects: Vec<ObjectRef>,
    stats: &RunStats,
) -> Vec<String> {
    let mut failures = Vec::new();
    for object in objects {
        let uri = object.uri();
        let started = Instant::now();
        let in_flight = InFlightGauge::enter();
        // A panicking handler fails its object like an error does: the
        // message is retried after the backoff, never lost and never
        // silently left invisible.
        let outcome = AssertUnwindSafe(handler.handle(object))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(format!("panicked: {}", panic_message(&*panic))));
        drop(in_flight);
        let outcome_label = if outcome.is_ok() { "done" } else { "failed" };
        metrics::counter!("logrouter_queue_objects_total", "outcome" => outcome_label).increment(1);
        metrics::histogram!("logrouter_queue_object_seconds", "outcome" => outcome_label)
            .record(started.elapsed().as_secs_f64());
        match outcome {
            Ok(summary) => {
                bump(&stats.objects_done);
                info!(message_id = %id, %summary, "object done");
            }
            Err(error) => {
                bump(&stats.objects_failed);
                // Retried: not yet an operator's problem. The dead-letter
                // queue (and its alarm) is.
                warn!(message_id = %id, object = %uri, %error, "object failed; the message stays on the queue and is retried after a backoff");
                failures.push(uri);
            }
        }
    }
    failures
}

/// `logrouter_queue_objects_in_flight` up while it lives: down again however
/// the object ends, an abort at shutdown included.
struct InFlightGauge(metrics::Gauge);

impl InFlightGauge {
    fn enter() -> Self {
        let gauge = metrics::gauge!("logrouter_queue_objects_in_flight");
        gauge.increment(1.0);
        InFlightGauge(gauge)
    }
}

impl Drop for InFlightGauge {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// `base * 2^(receives-1)`, capped at 15 minutes.
pub fn backoff_secs(base: u32, receive_count: u32) -> u32 {
    let exp = receive_count.saturating_sub(1).min(16);
    base.saturating_mul(1 << exp).min(900)
}

async fn set_visibility(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    receipt: &str,
    secs: u32,
    stats: &RunStats,
) {
    if let Err(e) = sqs
        .change_message_visibility()
        .queue_url(queue_url)
        .receipt_handle(receipt)
        .visibility_timeout(secs as i32)
        .send()
        .await
    {
        bump(&stats.visibility_errors);
        metrics::counter!("logrouter_queue_errors_total", "op" => "visibility").increment(1);
        warn!(error = %describe(&e), "changing message visibility failed");
    }
}

/// Age in seconds of the oldest message of a receive (0 when empty): how far
/// behind the service is.
fn oldest_age_secs(messages: &[Message]) -> f64 {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    messages
        .iter()
        .filter_map(|m| {
            m.attributes
                .as_ref()?
                .get(&MessageSystemAttributeName::SentTimestamp)
        })
        .filter_map(|sent| sent.parse::<i64>().ok())
        .map(|sent| (now_ms - sent).max(0) as f64 / 1000.0)
        .fold(0.0, f64::max)
}

/// The queue's readiness check: the last receive succeeded, and the queue
/// answers `GetQueueAttributes`. The backlog it reports is exposed for
/// scaling and alarms.
async fn check_queue(
    sqs: aws_sdk_sqs::Client,
    url: String,
    last_receive_error: Option<String>,
) -> Result<(), String> {
    if let Some(e) = last_receive_error {
        return Err(e);
    }
    let out = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .map_err(|e| format!("{url}: {}", describe(&e)))?;
    let attr = |name: QueueAttributeName| {
        out.attributes
            .as_ref()
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse::<f64>().ok())
    };
    if let Some(n) = attr(QueueAttributeName::ApproximateNumberOfMessages) {
        metrics::gauge!("logrouter_queue_messages_visible").set(n);
    }
    if let Some(n) = attr(QueueAttributeName::ApproximateNumberOfMessagesNotVisible) {
        metrics::gauge!("logrouter_queue_messages_not_visible").set(n);
    }
    Ok(())
}

/// Deletes receipts in batches of up to ten, gathering for at most 100 ms.
async fn delete_batches(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    mut rx: mpsc::UnboundedReceiver<String>,
    stats: Arc<RunStats>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::sleep(Duration::from_millis(100));
        tokio::pin!(deadline);
        while batch.len() < 10 {
            tokio::select! {
                _ = &mut deadline => break,
                next = rx.recv() => match next {
                    Some(r) => batch.push(r),
                    None => break,
                },
            }
        }
        let entries: HashMap<String, String> = batch
            .into_iter()
            .enumerate()
            .map(|(i, r)| (i.to_string(), r))
            .collect();
        let request = sqs
            .delete_message_batch()
            .queue_url(&queue_url)
            .set_entries(Some(
                entries
                    .iter()
                    .map(|(id, r)| {
                        DeleteMessageBatchRequestEntry::builder()
                            .id(id)
                            .receipt_handle(r)
                            .build()
                            .expect("id and receipt are set")
                    })
                    .collect(),
            ));
        match request.send().await {
            Ok(out) => {
                let failed = out.failed.len() as u64;
                let deleted = entries.len() as u64 - failed;
                stats.messages_deleted.fetch_add(deleted, Ordering::Relaxed);
                metrics::counter!("logrouter_queue_messages_deleted_total").increment(deleted);
                for f in &out.failed {
                    bump(&stats.delete_errors);
                    metrics::counter!("logrouter_queue_errors_total", "op" => "delete")
                        .increment(1);
                    warn!(code = %f.code, message = ?f.message, "delete failed; the message will be processed again (idempotently)");
                }
            }
            Err(e) => {
                stats
                    .delete_errors
                    .fetch_add(entries.len() as u64, Ordering::Relaxed);
                metrics::counter!("logrouter_queue_errors_total", "op" => "delete")
                    .increment(entries.len() as u64);
                warn!(error = %describe(&e), count = entries.len(), "batch delete failed; the messages will be processed again (idempotently)");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::backoff_secs;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff_secs(30, 1), 30);
        assert_eq!(backoff_secs(30, 2), 60);
        assert_eq!(backoff_secs(30, 3), 120);
        assert_eq!(backoff_secs(30, 50), 900);
        assert_eq!(backoff_secs(0, 5), 0);
    }
}
