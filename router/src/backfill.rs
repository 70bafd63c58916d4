//! `router backfill`: reprocess a time window of an archive.
//!
//! Lists the objects under an S3 prefix, keeps those whose hour (from the key,
//! else LastModified) falls in `[from, to)`, and either routes them here with
//! `concurrency` objects in flight, or (`--enqueue`) sends one S3-event-shaped
//! message per object to the router's queue so that the whole fleet of
//! `router run` workers shares the work: SQS is the scale-out engine, there is
//! no coordinator of our own.
//!
//! Resumable by construction: an object whose manifest already records the
//! same ETag (and the same replay filter) is skipped, so a killed backfill run
//! again continues where it stopped; `--force` routes everything again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use chrono::{DateTime, Utc};
use logrouter::aws::{describe, AwsClients};
use logrouter::layout::key_time;
use logrouter::location::Location;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::info;

use crate::route::{RouteOutcome, Router};

/// One archived object selected for the window.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub time: DateTime<Utc>,
    /// True when the key had no time and LastModified was used.
    pub from_last_modified: bool,
}

/// What the listing found.
#[derive(Debug, Default, Serialize)]
pub struct Selection {
    pub listed: u64,
    pub selected: Vec<Candidate>,
    /// Selected objects whose time came from LastModified.
    pub time_from_last_modified: u64,
}

impl Selection {
    pub fn total_bytes(&self) -> u64 {
        self.selected.iter().map(|c| c.size).sum()
    }
}

/// Parses `2015-01-20T13`, `2015-01-20` or RFC 3339 as a UTC time (shared
/// with the loader's `reload --from/--to`).
pub use logrouter::layout::parse_time;

/// Lists `bucket/prefix` and keeps the objects whose hour is in `[from, to)`,
/// sorted by time then key.
pub async fn select(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    patterns: &[String],
) -> Result<Selection, String> {
    let mut sel = Selection::default();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| format!("listing s3://{bucket}/{prefix}: {}", describe(&e)))?;
        for o in page.contents() {
            let Some(key) = o.key() else { continue };
            if key.ends_with('/') {
                continue;
            }
            sel.listed += 1;
            let last_modified = o
                .last_modified()
                .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()));
            let (time, from_lm) = match (key_time(key, patterns), last_modified) {
                (Some(t), _) => (t, false),
                (None, Some(t)) => (t, true),
                (None, None) => continue,
            };
            if time < from || time >= to {
                continue;
            }
            sel.time_from_last_modified += u64::from(from_lm);
            sel.selected.push(Candidate {
                key: key.to_owned(),
                size: o.size().unwrap_or(0).max(0) as u64,
                etag: o.e_tag().map(|e| e.trim_matches('"').to_owned()),
                time,
                from_last_modified: from_lm,
            });
        }
    }
    sel.selected
        .sort_by(|a, b| (a.time, &a.key).cmp(&(b.time, &b.key)));
    Ok(sel)
}

/// The outcome of a backfill run.
#[derive(Debug, Default, Serialize)]
pub struct BackfillSummary {
    pub listed: u64,
    pub selected: u64,
    pub selected_bytes: u64,
    pub time_from_last_modified: u64,
    pub routed: u64,
    pub skipped: u64,
    pub damaged: Vec<FailedObject>,
    pub failed: Vec<FailedObject>,
    pub messages_sent: u64,
    pub lines_read: u64,
    pub lines_filtered: u64,
    pub lines_by_type: BTreeMap<String, u64>,
    pub quarantined_by_reason: BTreeMap<String, u64>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedObject {
    pub key: String,
    pub error: String,
}

impl BackfillSummary {
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.damaged.is_empty()
    }

    fn absorb_piped(&mut self, piped: &crate::pipe::PipedObject, key: &str) {
        let l = &piped.lines;
        self.routed += 1;
        self.lines_read += l.counts.read;
        self.lines_filtered += l.counts.filtered;
        for (t, o) in &l.types {
            *self.lines_by_type.entry(t.clone()).or_default() += o.lines;
        }
        for (r, n) in &l.quarantine.by_reason {
            *self.quarantined_by_reason.entry(r.clone()).or_default() += n;
        }
        if let Some(d) = &piped.damage {
            self.damaged.push(FailedObject {
                key: key.to_owned(),
                error: d.describe(),
            });
        }
    }

    fn absorb(&mut self, outcome: RouteOutcome, key: &str) {
        match outcome {
            RouteOutcome::AlreadyRouted { damage, .. } => {
                self.skipped += 1;
                if let Some(error) = damage {
                    self.damaged.push(FailedObject {
                        key: key.to_owned(),
                        error: format!("already routed, but {error}"),
                    });
                }
            }
            RouteOutcome::Routed { manifest, .. } => {
                self.routed += 1;
                self.lines_read += manifest.lines.read;
                self.lines_filtered += manifest.lines.filtered;
                for (t, o) in &manifest.types {
                    *self.lines_by_type.entry(t.clone()).or_default() += o.lines;
                }
                for (r, n) in &manifest.quarantine.by_reason {
                    *self.quarantined_by_reason.entry(r.clone()).or_default() += n;
                }
                if let Some(d) = &manifest.damage {
                    self.damaged.push(FailedObject {
                        key: key.to_owned(),
                        error: d.describe(),
                    });
                }
            }
        }
    }
}

/// Live progress: a bar on a terminal (refreshed every second), a log line
/// every 10 s otherwise. Bytes are counted as they are read, so progress
/// moves inside large objects too; skipped objects count as done.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total_objects: u64,
    total_bytes: u64,
    bytes_read: Arc<AtomicU64>,
    bytes_skipped: AtomicU64,
    done_objects: AtomicU64,
    lines: AtomicU64,
    started: Instant,
}

impl Progress {
    fn new(total_objects: u64, total_bytes: u64) -> Self {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let bar = indicatif::ProgressBar::new(total_bytes);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {bytes}/{total_bytes} {msg} ETA {eta}",
                )
                .expect("valid template"),
            );
            bar
        });
        Self {
            bar,
            total_objects,
            total_bytes,
            bytes_read: Arc::new(AtomicU64::new(0)),
            bytes_skipped: AtomicU64::new(0),
            done_objects: AtomicU64::new(0),
            lines: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    fn object_done(&self, skipped_bytes: u64, lines: u64) {
        self.done_objects.fetch_add(1, Ordering::Relaxed);
        self.bytes_skipped
            .fetch_add(skipped_bytes, Ordering::Relaxed);
        self.lines.fetch_add(lines, Ordering::Relaxed);
        if self.bar.is_some() {
            self.report();
        }
    }

    fn report(&self) {
        let objects = self.done_objects.load(Ordering::Relaxed);
        let done = (self.bytes_read.load(Ordering::Relaxed)
            + self.bytes_skipped.load(Ordering::Relaxed))
        .min(self.total_bytes);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.lines.load(Ordering::Relaxed) as f64 / secs;
        let msg = format!(
            "{objects}/{} objects, {rate:.0} lines/s",
            self.total_objects
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(done);
                bar.set_message(msg);
            }
            None => {
                let eta = if done > 0 {
                    (self.total_bytes - done) as f64 * secs / done as f64
                } else {
                    0.0
                };
                info!(
                    "backfill: {msg}, {} of {} MB, ETA {eta:.0} s",
                    done / 1_000_000,
                    self.total_bytes / 1_000_000
                );
            }
        }
    }

    /// Reports every second on a terminal, every 10 s otherwise, until the
    /// returned handle is aborted.
    fn start_ticker(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        let period = Duration::from_secs(if me.bar.is_some() { 1 } else { 10 });
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                me.report();
            }
        })
    }

    fn finish(&self) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => self.report(),
        }
    }
}

/// Routes every selected object with `concurrency` in flight.
pub async fn route_all(
    router: Router,
    bucket: &str,
    selection: &Selection,
    concurrency: usize,
    force: bool,
    summary: &mut BackfillSummary,
) {
    let progress = Arc::new(Progress::new(
        selection.selected.len() as u64,
        selection.total_bytes(),
    ));
    let router = Arc::new(router.with_progress(progress.bytes_read.clone()));
    let ticker = progress.start_ticker();
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for c in &selection.selected {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("open semaphore");
        let (router, progress) = (router.clone(), progress.clone());
        let source = Location::S3 {
            bucket: bucket.to_owned(),
            key: c.key.clone(),
        };
        let (key, size) = (c.key.clone(), c.size);
        tasks.spawn(async move {
            let _permit = permit;
            let result = router.route_object(&source, !force).await;
            let (skipped, lines) = match &result {
                Ok(RouteOutcome::Routed { manifest, .. }) => (0, manifest.lines.read),
                Ok(RouteOutcome::AlreadyRouted { .. }) => (size, 0),
                Err(_) => (0, 0),
            };
            progress.object_done(skipped, lines);
            (key, result)
        });
        while let Some(done) = tasks.try_join_next() {
            record(done, summary);
        }
    }
    while let Some(done) = tasks.join_next().await {
        record(done, summary);
    }
    ticker.abort();
    progress.finish();
}

type RouteResult = Result<RouteOutcome, crate::route::RouteError>;

/// `--out -`: streams the routed lines of every selected object to standard
/// output, one object after the other in the selection's order (key time,
/// then key), so the stream is in key-time order. An object that fails is
/// listed in the summary and the next one follows (its lines read before the
/// failure were written). Returns `Err` when standard output itself failed:
/// the replay stopped there.
pub async fn pipe_all(
    piper: crate::pipe::Piper,
    bucket: &str,
    selection: &Selection,
    summary: &mut BackfillSummary,
) -> Result<(), crate::pipe::PipeError> {
    let progress = Arc::new(Progress::new(
        selection.selected.len() as u64,
        selection.total_bytes(),
    ));
    let piper = piper.with_progress(progress.bytes_read.clone());
    let ticker = progress.start_ticker();
    let mut result = Ok(());
    for c in &selection.selected {
        let source = Location::S3 {
            bucket: bucket.to_owned(),
            key: c.key.clone(),
        };
        match piper.pipe_object(&source).await {
            Ok(piped) => {
                progress.object_done(0, piped.lines.counts.read);
                summary.absorb_piped(&piped, &c.key);
            }
            Err(crate::pipe::PipeError::Source(e)) => {
                progress.object_done(0, 0);
                summary.failed.push(FailedObject {
                    key: c.key.clone(),
                    error: format!("{e} (any of its lines read before the failure were written)"),
                });
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    ticker.abort();
    progress.finish();
    result
}

fn record(
    done: Result<(String, RouteResult), tokio::task::JoinError>,
    summary: &mut BackfillSummary,
) {
    let (key, result) = done.expect("backfill task panicked");
    match result {
        Ok(outcome) => summary.absorb(outcome, &key),
        // Logged and counted where it failed (`Router::route_object`); the
        // summary lists it at the end.
        Err(e) => {
            summary.failed.push(FailedObject {
                key,
                error: e.to_string(),
            });
        }
    }
}

/// Percent-encodes a key the way S3 event notifications do (`+` for space),
/// so that `notification::decode_key` gives it back.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The S3 event notification body `router run` receives for `c`; with
/// `force`, the record asks the worker to route it even if already routed.
pub fn event_body(bucket: &str, c: &Candidate, force: bool) -> String {
    serde_json::json!({"Records": [{
        "logrouter": {"force": force},
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "eventTime": Utc::now().to_rfc3339(),
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "logrouter-backfill",
            "bucket": {"name": bucket},
            "object": {"key": encode_key(&c.key), "size": c.size, "eTag": c.etag},
        },
    }]})
    .to_string()
}

/// Sends one message per selected object, in batches of ten.
pub async fn enqueue_all(
    clients: &AwsClients,
    queue_url: &str,
    bucket: &str,
    selection: &Selection,
    force: bool,
    summary: &mut BackfillSummary,
) {
    let sqs = clients.sqs().await;
    for chunk in selection.selected.chunks(10) {
        let entries: Vec<SendMessageBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .map(|(i, c)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(event_body(bucket, c, force))
                    .build()
                    .expect("id and body are set")
            })
            .collect();
        match sqs
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                summary.messages_sent += out.successful().len() as u64;
                for f in out.failed() {
                    let key = f
                        .id()
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| chunk.get(i))
                        .map_or_else(String::new, |c| c.key.clone());
                    summary.failed.push(FailedObject {
                        key,
                        error: format!(
                            "SendMessageBatch: {} {}",
                            f.code(),
                            f.message().unwrap_or("")
                        ),
                    });
                }
            }
            Err(e) => {
                let error = format!("SendMessageBatch: {}", describe(&e));
                for c in chunk {
                    summary.failed.push(FailedObject {
                        key: c.key.clone(),
                        error: error.clone(),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logrouter::notification::decode_key;

    #[test]
    fn keys_round_trip_through_notification_encoding() {
        for key in [
            "logs/2015/01/20/a b+c.json.gz",
            "logs/café/(copy 1).log",
            "x%y=z&?.gz",
            "plain/key",
        ] {
            assert_eq!(decode_key(&encode_key(key)).as_deref(), Some(key), "{key}");
        }
    }

    #[test]
    fn times() {
        assert_eq!(
            parse_time("2015-01-20T13").unwrap().to_rfc3339(),
            "2015-01-20T13:00:00+00:00"
        );
        assert_eq!(
            parse_time("2015-01-20").unwrap().to_rfc3339(),
            "2015-01-20T00:00:00+00:00"
        );
        assert_eq!(
            parse_time("2015-01-20T13:30:00Z").unwrap().to_rfc3339(),
            "2015-01-20T13:30:00+00:00"
        );
        assert!(parse_time("yesterday")
            .unwrap_err()
            .contains("2015-01-20T13"));
    }
}
