//! `loader run`: the SQS service. The shared [`QueueWorker`] receives S3
//! notifications of the routed prefix; [`LoadHandler`] loads what each
//! names.
//!
//! A manifest notification loads every file the manifest names. A routed
//! file's notification loads that file once its manifest exists (the router
//! writes the manifest last, so until then the message fails and comes back
//! after the backoff); subscribing the queue to `_manifests/` only avoids
//! those retries. Quarantine, replays and hidden temp files are ignored:
//! replays are loaded only on purpose, with `loader load`.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logrouter::aws::AwsClients;
use logrouter::config::{Config, MetricsFormat};
use logrouter::lambda::runtime::RuntimeApi;
use logrouter::layout::{REJECTED_DIR, REPLAYS_DIR};
use logrouter::location::Location;
use logrouter::notification::ObjectRef;
use logrouter::queue::{ObjectHandler, QueueWorker, RunStats};
use logrouter::telemetry::{self, spawn_check, Health, QUEUE, WAREHOUSE};
use tokio::task::JoinSet;

use crate::gather::Gatherer;
use crate::load::{Loader, Mode};
use crate::source::{files_of, manifest_of, manifest_root, read_manifest};
use crate::warehouse::{LoadError, LoadOutcome, Warehouse, WarehouseUrl};

pub struct LoadHandler {
    pub loader: Arc<Loader>,
    /// Idle connections; a handler takes one per object.
    pool: Mutex<Vec<Warehouse>>,
    /// Redshift: files of many notifications gathered into batches.
    gatherer: Option<Arc<Gatherer>>,
}

impl LoadHandler {
    /// `batch_window`: how long a file waits for others of its table
    /// (Redshift only; see [`Gatherer`]).
    pub fn new(loader: Arc<Loader>, batch_window: Duration) -> Self {
        let gatherer = matches!(loader.url, WarehouseUrl::Redshift(_))
            .then(|| Gatherer::new(loader.clone(), batch_window));
        Self {
            loader,
            pool: Mutex::new(Vec::new()),
            gatherer,
        }
    }

    async fn connection(&self) -> Result<Warehouse, String> {
        let idle = self.pool.lock().unwrap().pop();
        match idle {
            Some(w) if !w.is_closed() => Ok(w),
            _ => self.loader.connect().await.map_err(|e| e.to_string()),
        }
    }
}

/// Why a key is not loaded by the service, if it is not.
fn ignored(key: &str) -> Option<&'static str> {
    let segs: Vec<&str> = key.split('/').collect();
    if segs.last().is_some_and(|n| n.starts_with('.')) {
        return Some("a hidden temporary file");
    }
    if segs.contains(&REPLAYS_DIR) {
        return Some("a selective replay (load it on purpose with `loader load`)");
    }
    if segs.contains(&REJECTED_DIR) {
        return Some("quarantine");
    }
    None
}

/// A failure of `loader run` before any file is loaded, counted with the
/// files' failures (`Loader::load_one` counts those); the queue worker logs it.
fn failure(reason: &'static str, error: String) -> String {
    metrics::counter!("logrouter_loader_failures_total", "reason" => reason).increment(1);
    error
}

impl ObjectHandler for LoadHandler {
    async fn handle(&self, object: ObjectRef) -> Result<String, String> {
        let uri = object.uri();
        if let Some(why) = ignored(&object.key) {
            return Ok(format!("{uri}: ignored, {why}"));
        }
        let s3 = self.loader.clients.s3().await;
        let s3_loc = |key: String| Location::S3 {
            bucket: object.bucket.clone(),
            key,
        };
        let (manifest_at, root, only) = if let Some(root) = manifest_root(&object.key) {
            (s3_loc(object.key.clone()), root, None)
        } else if let Some((root, mkey)) = manifest_of(&object.key) {
            let full = if root.is_empty() {
                mkey
            } else {
                format!("{root}/{mkey}")
            };
            (s3_loc(full), root, Some(s3_loc(object.key.clone())))
        } else {
            return Ok(format!("{uri}: ignored, not a routed file or manifest"));
        };
        let manifest = read_manifest(&manifest_at, Some(&s3))
            .await
            .map_err(|e| failure("manifest", format!("{uri}: waiting for its manifest: {e}")))?;
        let all = files_of(&manifest, &s3_loc(root), &manifest_at).map_err(|e| e.to_string())?;
        let keep: Vec<String> = all.iter().map(|f| f.uri.clone()).collect();
        let files: Vec<_> = all
            .into_iter()
            .filter(|f| only.as_ref().is_none_or(|o| *o == f.location))
            .collect();
        if only.is_some() && files.is_empty() {
            return Err(format!(
                "{uri}: its manifest {manifest_at} does not name it yet (re-route in progress?)"
            ));
        }
        let mut w = self
            .connection()
            .await
            .map_err(|e| failure("database", e))?;
        let (mut loaded, mut rows, mut already) = (0, 0, 0);
        let mut result = Ok(());
        let outcomes: Vec<Result<LoadOutcome, LoadError>> = match &self.gatherer {
            // Each file in a batch of its table's, all at once.
            Some(g) => {
                let waits = files.iter().map(|f| g.load(f.clone()));
                futures_util::future::join_all(waits)
                    .await
                    .into_iter()
                    .map(|r| r.outcome)
                    .collect()
            }
            None => {
                let mut out = Vec::new();
                for f in &files {
                    let r = self.loader.load_one(&mut w, f, Mode::Load).await;
                    let failed = r.is_err();
                    out.push(r);
                    if failed {
                        break;
                    }
                }
                out
            }
        };
        for outcome in outcomes {
            match outcome {
                Ok(LoadOutcome::Loaded { rows: n, .. }) => {
                    loaded += 1;
                    rows += n;
                }
                Ok(LoadOutcome::AlreadyLoaded) => already += 1,
                Err(e) => {
                    if result.is_ok() {
                        result = Err(e.to_string());
                    }
                }
            }
        }
        // A whole manifest: rows of files an earlier route of the source
        // wrote and this one did not are removed.
        let mut forgotten = 0;
        if result.is_ok() && only.is_none() {
            match self
                .loader
                .forget_orphans(&mut w, &[(manifest_at.to_string(), keep)])
                .await
            {
                Ok(f) => forgotten = f.len(),
                Err(e) => result = Err(e.to_string()),
            }
        }
        self.pool.lock().unwrap().push(w);
        result?;
        Ok(format!(
            "{uri}: {loaded} files loaded ({rows} rows), {already} already loaded, {forgotten} files of an earlier route removed"
        ))
    }
}

/// Runs the service until `shutdown` (or until drained, with `drain`),
/// serving metrics and readiness on `metrics.addr` when it is set.
pub async fn run(
    config: &Config,
    loader: Arc<Loader>,
    queue_url: String,
    drain: bool,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<Arc<RunStats>> {
    let health = Health::new(&[QUEUE, WAREHOUSE]);
    let every = Duration::from_secs(config.metrics.health_check_secs.into());
    let exporter = telemetry::install_for(
        &config.metrics,
        MetricsFormat::Prometheus,
        "loader",
        crate::load::describe_metrics,
    )?;
    let _ops = match &config.metrics.addr {
        Some(addr) => {
            Some(telemetry::serve(addr.parse()?, health.clone(), exporter.clone()).await?)
        }
        None => None,
    };
    let flusher = telemetry::Flusher::start(
        exporter.as_ref(),
        Duration::from_secs(config.metrics.emf_interval_secs.into()),
    );
    // Fail fast on a warehouse that cannot be reached.
    let first = loader.connect().await?;
    // Checked (endpoint or not: receiving pauses while it is not ready)
    // only after that first connection prepared the ledger: two connections
    // preparing it at once race on CREATE SCHEMA.
    let mut checks = JoinSet::new();
    let (l, probe) = (loader.clone(), Arc::new(tokio::sync::Mutex::new(None)));
    spawn_check(&mut checks, health.clone(), WAREHOUSE, every, move || {
        check_warehouse(l.clone(), probe.clone())
    });
    let handler = LoadHandler::new(
        loader.clone(),
        Duration::from_secs(config.load.batch_window_secs),
    );
    handler.pool.lock().unwrap().push(first);
    let clients: &AwsClients = &loader.clients;
    let worker = QueueWorker::new(
        clients.sqs().await,
        queue_url,
        config.queue.clone(),
        Arc::new(handler),
    )
    .drain(drain)
    .with_health(health, every)
    .pause_while_not_ready(WAREHOUSE);
    let stats = worker.run(shutdown).await;
    flusher.finish();
    Ok(stats?)
}

/// `loader lambda`: serves the invocations of an SQS event source mapping
/// until the sandbox's SIGTERM, loading what each message names as `run`
/// does. On Redshift the files of one invocation's messages are committed
/// in batches per table: the event source's batching window gathered the
/// messages, and `lambda.batch_gather_ms` lets their files meet.
pub async fn lambda(
    config: &Config,
    loader: Arc<Loader>,
    api: RuntimeApi,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let exporter = telemetry::install_for(
        &config.metrics,
        MetricsFormat::Emf,
        "loader",
        crate::load::describe_metrics,
    )?;
    let handler = LoadHandler::new(loader, Duration::from_millis(config.lambda.batch_gather_ms));
    logrouter::lambda::runtime::serve(api, Arc::new(handler), config, exporter, shutdown).await?;
    Ok(())
}

/// The warehouse's readiness check: `SELECT 1` on a connection of its own,
/// made again after a failure.
async fn check_warehouse(
    loader: Arc<Loader>,
    conn: Arc<tokio::sync::Mutex<Option<Warehouse>>>,
) -> Result<(), String> {
    let mut conn = conn.lock().await;
    if conn.as_ref().is_none_or(Warehouse::is_closed) {
        *conn = Some(loader.connect().await.map_err(|e| e.to_string())?);
    }
    let w = conn.as_mut().expect("connected above");
    if let Err(e) = w.query_text("SELECT 1").await {
        *conn = None;
        return Err(e.to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_keys() {
        assert!(ignored("routed/_replays/replay-1/_manifests/undated/a.json").is_some());
        assert!(ignored("routed/_rejected/undated/a.part-00000.json.gz").is_some());
        assert!(ignored("routed/click/undated/.a.part-00000.json.gz.1-2.tmp").is_some());
        assert!(ignored("routed/_manifests/undated/a.json").is_none());
        assert!(ignored("routed/click/undated/a.part-00000.json.gz").is_none());
    }
}
