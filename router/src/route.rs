//! `route_object`: one source, from its first byte to its manifest.
//!
//! The async side opens the source and commits finished parts; the per-line
//! work runs on a blocking thread ([`crate::lines::LineRouter`]). Finished
//! parts travel over a small bounded channel, so a slow upload slows the
//! reader instead of piling parts up on disk or in memory.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::Utc;
use logrouter::aws::AwsClients;
use logrouter::config::Config;
use logrouter::layout::{key_time, SourceName};
use logrouter::location::Location;
use logrouter::manifest::{Damage, Manifest, ManifestSource, RouteFilter, FORMAT_VERSION};
use logrouter::store::{open_source, OutputStore, StoreError, UploadSettings};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use crate::decode;
use crate::lines::{FirstError, LineRouter, RouteRules};
use crate::parts::FinishedPart;

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("cannot open source: {0}")]
    Open(StoreError),
    #[error("{uri}: {message}")]
    Read { uri: String, message: String },
    #[error("{uri}: writing output failed: {source}")]
    Write { uri: String, source: StoreError },
    #[error("{uri}: line accounting failed, manifest not written (this is a bug): {message}")]
    Accounting { uri: String, message: String },
    #[error("{uri}: routed (its manifest is written), but removing the parts of an earlier route it no longer writes failed: {source}; routing it again finishes the clean-up")]
    Cleanup { uri: String, source: StoreError },
}

/// What happened to one source.
#[derive(Debug)]
pub enum RouteOutcome {
    Routed {
        manifest: Box<Manifest>,
        manifest_key: String,
        first_errors: std::collections::BTreeMap<String, FirstError>,
    },
    /// A manifest for the same ETag already exists (duplicate notification).
    /// `damage` repeats the damage it recorded, so a rerun still reports it.
    AlreadyRouted {
        uri: String,
        manifest_key: String,
        damage: Option<String>,
    },
}

/// Routes sources to one destination.
pub struct Router {
    rules: Arc<RouteRules>,
    out: OutputStore,
    clients: Arc<AwsClients>,
    spool: Arc<PathBuf>,
    upload: UploadSettings,
    upload_concurrency: usize,
    key_time_patterns: Vec<String>,
    type_field: String,
    filter: Option<RouteFilter>,
    progress: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl Router {
    /// `dest` is a local folder or `s3://bucket/prefix`.
    pub async fn new(
        config: &Config,
        dest: &Location,
        clients: Arc<AwsClients>,
    ) -> Result<Self, String> {
        let out = match dest {
            Location::Local(p) => OutputStore::local(p.clone()),
            Location::S3 { bucket, key } => {
                let out = OutputStore::s3(clients.s3().await, bucket.clone(), key);
                if let OutputStore::S3 { prefix, .. } = &out {
                    logrouter::layout::check_dest_prefix(prefix)
                        .map_err(|e| format!("{}: {e}", out.uri()))?;
                }
                out
            }
            Location::Stdin => return Err("--out cannot be stdin".to_owned()),
        };
        let r = &config.route;
        Ok(Self {
            rules: Arc::new(RouteRules::new(config)),
            out,
            clients,
            spool: Arc::new(r.spool_dir.clone().unwrap_or_else(std::env::temp_dir)),
            upload: UploadSettings {
                multipart_threshold: r.multipart_threshold_bytes,
                chunk: r.multipart_chunk_bytes,
            },
            upload_concurrency: r.upload_concurrency,
            key_time_patterns: r.key_time_patterns.clone(),
            type_field: r.type_field.clone(),
            filter: None,
            progress: None,
        })
    }

    /// Counts every raw byte this router reads into `counter` (progress).
    pub fn with_progress(mut self, counter: Arc<std::sync::atomic::AtomicU64>) -> Self {
        self.progress = Some(counter);
        self
    }

    /// A router for a selective replay: only lines passing `filter` are
    /// written, under names of their own (`<source>.replay-<hash>`), and the
    /// manifest records the filter, so a replay never stands for (nor blocks)
    /// a full route of the same source.
    pub fn with_filter(mut self, filter: RouteFilter) -> Result<Self, String> {
        if filter == RouteFilter::default() {
            return Ok(self);
        }
        self.rules = Arc::new(self.rules.filtered(&filter)?);
        self.filter = Some(filter);
        Ok(self)
    }

    pub fn dest(&self) -> &OutputStore {
        &self.out
    }

    /// Routes one source. With `skip_if_routed`, a source whose manifest
    /// already records the same ETag is not read again.
    ///
    /// Each outcome is logged and counted here (`logrouter_router_*`), so
    /// `route`, `backfill` and `run` report alike.
    pub async fn route_object(
        &self,
        source: &Location,
        skip_if_routed: bool,
    ) -> Result<RouteOutcome, RouteError> {
        let result = self.route(source, skip_if_routed).await;
        let outcome = match &result {
            Ok(RouteOutcome::Routed { manifest, .. }) if manifest.damage.is_some() => "damaged",
            Ok(RouteOutcome::Routed { .. }) => "routed",
            Ok(RouteOutcome::AlreadyRouted { uri, .. }) => {
                debug!(source = %uri, "already routed with this ETag; skipped");
                "already_routed"
            }
            // Its caller reports it (the queue worker at WARN, `route` and
            // `backfill` in their summaries).
            Err(e) => {
                debug!(source = %source, error = %e, "source not routed");
                "failed"
            }
        };
        metrics::counter!("logrouter_router_sources_total", "outcome" => outcome).increment(1);
        result
    }

    async fn route(
        &self,
        source: &Location,
        skip_if_routed: bool,
    ) -> Result<RouteOutcome, RouteError> {
        let started = std::time::Instant::now();
        let s3 = match source {
            Location::S3 { .. } => Some(self.clients.s3().await),
            _ => None,
        };
        let opened = open_source(source, s3.as_ref(), self.progress.clone())
            .await
            .map_err(RouteError::Open)?;
        let info = opened.info.clone();
        let time_text = info.key.as_deref().unwrap_or(&info.uri);
        let mut name = SourceName::new(
            &info.uri,
            key_time(time_text, &self.key_time_patterns),
            info.last_modified,
        );
        if let Some(f) = &self.filter {
            name = name.variant(&f.tag());
        }
        let manifest_key = name.manifest_key();
        let write_err = |source| RouteError::Write {
            uri: info.uri.clone(),
            source,
        };
        let previous: Option<Manifest> = match self
            .out
            .get_small(&manifest_key)
            .await
            .map_err(write_err)?
        {
            Some(bytes) => match serde_json::from_slice(&bytes) {
                Ok(m) => Some(m),
                Err(e) => {
                    warn!(key = %manifest_key, error = %e, "existing manifest is unreadable; routing again and replacing it");
                    None
                }
            },
            None => None,
        };
        // Outputs of earlier routes a re-route that failed or was killed
        // had not removed yet (see `SourceName::withdrawn_key`).
        let withdrawn_key = name.withdrawn_key();
        let mut withdrawn: Vec<String> = match self
            .out
            .get_small(&withdrawn_key)
            .await
            .map_err(write_err)?
        {
            Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                warn!(key = %withdrawn_key, error = %e, "record of an earlier route's outputs is unreadable; ignored");
                Vec::new()
            }),
            None => Vec::new(),
        };
        if skip_if_routed {
            if let (Some(prev), Some(etag)) = (&previous, &info.etag) {
                if prev.source.object.etag.as_ref() == Some(etag) && prev.filter == self.filter {
                    // Routed, but perhaps not cleaned up (stopped right
                    // after the manifest was written): finish that first.
                    self.remove_stale(prev, &withdrawn, &withdrawn_key)
                        .await
                        .map_err(|source| RouteError::Cleanup {
                            uri: info.uri.clone(),
                            source,
                        })?;
                    return Ok(RouteOutcome::AlreadyRouted {
                        uri: info.uri.clone(),
                        manifest_key,
                        damage: prev.damage.as_ref().map(Damage::describe),
                    });
                }
            }
        }

        // The parts about to be written reuse the keys the previous manifest
        // names. Withdraw that manifest first, so that no manifest ever names
        // a part holding data it does not describe; if this route fails
        // midway, the source simply has no manifest until a retry succeeds.
        // What it named is recorded first: once it is gone, that record is
        // how a retry knows which of its parts to remove.
        if let Some(prev) = &previous {
            for key in prev.output_keys() {
                if !withdrawn.iter().any(|k| k == key) {
                    withdrawn.push(key.to_owned());
                }
            }
            let record = serde_json::to_vec(&withdrawn).expect("keys serialise");
            self.out
                .put_small(&withdrawn_key, record)
                .await
                .map_err(write_err)?;
            self.out.delete(&manifest_key).await.map_err(write_err)?;
        }

        let (tx, rx) = mpsc::channel::<FinishedPart>(self.upload_concurrency.max(1) * 2);
        let committer = tokio::spawn(commit_parts(
            self.out.clone(),
            rx,
            self.upload,
            self.upload_concurrency,
        ));
        // Should this future be dropped (a Lambda invocation's deadline),
        // the work it started stops too: the uploads are aborted and the
        // line loop's next read fails. No manifest is written (that is this
        // future's last step), so nothing of the attempt is ever trusted,
        // and a retry rewrites the same keys.
        let abandoned = Arc::new(AtomicBool::new(false));
        let _abandon = AbandonOnDrop {
            flag: abandoned.clone(),
            committer: committer.abort_handle(),
        };
        let rules = self.rules.clone();
        let out = self.out.clone();
        let spool = self.spool.clone();
        let uri = info.uri.clone();
        let blocking_name = name.clone();
        let reader: Box<dyn std::io::Read + Send> = Box::new(StopWhen {
            inner: opened.reader,
            flag: abandoned,
        });
        let lines = tokio::task::spawn_blocking(move || {
            let (_compression, decoded) = decode::decoder(reader)?;
            LineRouter::new(&rules, &blocking_name, &uri, &out, &spool, tx)
                .run(decode::read_ahead(decoded))
        })
        .await
        .unwrap_or_else(|panic| {
            Err(std::io::Error::other(format!(
                "routing thread failed: {panic}"
            )))
        });
        // The sender is gone now; the committer finishes what it was given.
        // A failed upload is reported first: it is why the line loop stopped.
        committer
            .await
            .unwrap_or_else(|panic| {
                Err(StoreError::Io {
                    op: "commit parts",
                    path: PathBuf::from(&info.uri),
                    source: std::io::Error::other(format!("committer failed: {panic}")),
                })
            })
            .map_err(write_err)?;
        let lines = lines.map_err(|e| RouteError::Read {
            uri: info.uri.clone(),
            message: e.to_string(),
        })?;

        let damage = lines.damage.as_ref().map(|(decoded, line, error)| Damage {
            raw_offset: opened.raw_bytes.load(Ordering::Relaxed),
            decoded_offset: *decoded,
            line: *line,
            error: error.clone(),
        });
        let manifest = Manifest {
            format: FORMAT_VERSION,
            source: ManifestSource {
                object: info.clone(),
                time: name.time,
                time_from: name.time_from,
            },
            dest: self.out.uri(),
            type_field: self.type_field.clone(),
            router_version: env!("CARGO_PKG_VERSION").to_owned(),
            routed_at: Utc::now(),
            lines: lines.counts,
            types: lines.types,
            quarantine: lines.quarantine,
            damage,
            filter: self.filter.clone(),
        };
        manifest
            .check_counts()
            .map_err(|message| RouteError::Accounting {
                uri: info.uri.clone(),
                message,
            })?;
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
        self.out
            .put_small(&manifest_key, json)
            .await
            .map_err(write_err)?;
        // Committed: logged and counted now, before anything can stop us.
        let raw_bytes = opened.raw_bytes.load(Ordering::Relaxed);
        info!(source = %info.uri, read = manifest.lines.read, routed = manifest.lines.routed,
            quarantined = manifest.lines.quarantined, bytes = raw_bytes, "source routed");
        if let Some(d) = &manifest.damage {
            // Terminal: the bytes will not heal on a retry. The manifest
            // records what was routed before the damage.
            error!(source = %info.uri, raw_offset = d.raw_offset, line = d.line,
                error = %d.error, "source is damaged; routed what came before the damage");
        }
        count_routed(&manifest, raw_bytes, started.elapsed());

        // Parts of earlier routes of this source that this one did not
        // write again (fewer parts now) are removed, after the new manifest.
        self.remove_stale(&manifest, &withdrawn, &withdrawn_key)
            .await
            .map_err(|source| RouteError::Cleanup {
                uri: info.uri.clone(),
                source,
            })?;
        Ok(RouteOutcome::Routed {
            manifest: Box::new(manifest),
            manifest_key,
            first_errors: lines.first_errors,
        })
    }
}

impl Router {
    /// Removes the outputs of earlier routes (`withdrawn`) that `current`
    /// does not name, then the record of them. On a failure the record
    /// stays, so the next route of the source (or of a duplicate
    /// notification) tries again.
    async fn remove_stale(
        &self,
        current: &Manifest,
        withdrawn: &[String],
        withdrawn_key: &str,
    ) -> Result<(), StoreError> {
        if withdrawn.is_empty() {
            return Ok(());
        }
        let now: std::collections::HashSet<&str> = current.output_keys().collect();
        for stale in withdrawn.iter().filter(|k| !now.contains(k.as_str())) {
            self.out.delete(stale).await.inspect_err(|e| {
                warn!(key = %stale, error = %e, "could not remove a stale part of an earlier route");
            })?;
        }
        self.out.delete(withdrawn_key).await
    }
}

/// Stops a route's other tasks when the route's future is dropped
/// (dropped itself at the end of a finished route, when that is moot).
struct AbandonOnDrop {
    flag: Arc<AtomicBool>,
    committer: tokio::task::AbortHandle,
}

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.flag.store(true, Ordering::Relaxed);
        self.committer.abort();
    }
}

/// A source reader whose reads fail once `flag` is set.
struct StopWhen {
    inner: Box<dyn std::io::Read + Send>,
    flag: Arc<AtomicBool>,
}

impl std::io::Read for StopWhen {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.flag.load(Ordering::Relaxed) {
            return Err(std::io::Error::other(logrouter::store::TransportError(
                "the route was abandoned".into(),
            )));
        }
        self.inner.read(buf)
    }
}

/// The counters of one routed source: they add up to its manifest.
fn count_routed(m: &Manifest, raw_bytes: u64, took: std::time::Duration) {
    use logrouter::telemetry::data_label;
    metrics::counter!("logrouter_router_lines_read_total").increment(m.lines.read);
    metrics::counter!("logrouter_router_lines_blank_total").increment(m.lines.blank);
    metrics::counter!("logrouter_router_lines_filtered_total").increment(m.lines.filtered);
    let mut bytes_out = 0;
    for (event_type, out) in &m.types {
        metrics::counter!("logrouter_router_lines_routed_total", "type" => data_label(event_type))
            .increment(out.lines);
        bytes_out += out.parts.iter().map(|p| p.bytes).sum::<u64>();
    }
    for (reason, n) in &m.quarantine.by_reason {
        metrics::counter!("logrouter_router_lines_quarantined_total", "reason" => reason.clone())
            .increment(*n);
    }
    bytes_out += m.quarantine.parts.iter().map(|p| p.bytes).sum::<u64>();
    metrics::counter!("logrouter_router_bytes_read_total").increment(raw_bytes);
    metrics::counter!("logrouter_router_bytes_written_total").increment(bytes_out);
    metrics::histogram!("logrouter_router_source_seconds").record(took.as_secs_f64());
}

/// HELP lines of the router's metrics, for `/metrics`.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_histogram, Unit};
    describe_counter!(
        "logrouter_router_sources_total",
        "Source objects, by outcome: routed, damaged (routed up to the damage), already_routed (same ETag), failed"
    );
    describe_counter!(
        "logrouter_router_lines_read_total",
        "Lines read from sources"
    );
    describe_counter!(
        "logrouter_router_lines_routed_total",
        "Lines written to their event type's files, by type (equals the manifests)"
    );
    describe_counter!(
        "logrouter_router_lines_quarantined_total",
        "Lines quarantined, by reason"
    );
    describe_counter!("logrouter_router_lines_blank_total", "Blank lines skipped");
    describe_counter!(
        "logrouter_router_lines_filtered_total",
        "Lines left out by a selective replay's filter"
    );
    describe_counter!(
        "logrouter_router_bytes_read_total",
        Unit::Bytes,
        "Stored (compressed) bytes read from sources"
    );
    describe_counter!(
        "logrouter_router_bytes_written_total",
        Unit::Bytes,
        "Compressed bytes of the routed and quarantine files written"
    );
    describe_histogram!(
        "logrouter_router_source_seconds",
        Unit::Seconds,
        "Time to route one source, from open to manifest"
    );
    for outcome in ["routed", "damaged", "already_routed", "failed"] {
        metrics::counter!("logrouter_router_sources_total", "outcome" => outcome).increment(0);
    }
}

/// Commits finished parts, at most `concurrency` at once. Stops at the
/// first failure (dropping the receiver makes the line loop stop too).
async fn commit_parts(
    out: OutputStore,
    mut rx: mpsc::Receiver<FinishedPart>,
    upload: UploadSettings,
    concurrency: usize,
) -> Result<(), StoreError> {
    let mut running = JoinSet::new();
    let mut result = Ok(());
    while let Some(part) = rx.recv().await {
        if running.len() >= concurrency {
            if let Some(r) = running.join_next().await {
                result = r.expect("commit task panicked");
                if result.is_err() {
                    break;
                }
            }
        }
        let out = out.clone();
        running.spawn(async move { out.commit_file(&part.temp, &part.output.key, upload).await });
    }
    drop(rx);
    while let Some(r) = running.join_next().await {
        let r = r.expect("commit task panicked");
        if result.is_ok() {
            result = r;
        }
    }
    result
}
