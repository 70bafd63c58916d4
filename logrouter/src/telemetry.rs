//! What an operator watches: Prometheus metrics, readiness and liveness.
//!
//! Counters, gauges and histograms are recorded with the `metrics` macros at
//! the place where each event is logged, so a log line and its counter never
//! tell different stories. Without an endpoint no recorder is installed and
//! every macro is a no-op; `router route`, `backfill` and `loader load` pay
//! nothing for it.
//!
//! With `--metrics-addr` (or `metrics.addr`), [`serve`] installs the
//! Prometheus recorder of `metrics-exporter-prometheus` and answers on one
//! small HTTP/1 server:
//! - `GET /metrics`: the Prometheus text exposition;
//! - `GET /healthz`: 200 when every component of [`Health`] is ready, else
//!   503; the body names each component and, when not ready, why;
//! - `GET /livez`: 200 while the process answers at all (restart it if not).
//!
//! Readiness is not liveness: a router whose queue endpoint is unreachable is
//! alive and retrying, and should be alarmed on, not restarted in a loop.

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use metrics::SharedString;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::config::{MetricsConfig, MetricsFormat};
use crate::emf::{EmfHandle, EmfRecorder};

/// The readiness component of a service's SQS queue.
pub const QUEUE: &str = "queue";
/// The readiness component of the loader's warehouse.
pub const WAREHOUSE: &str = "warehouse";

/// Upper bounds of every `*_seconds` histogram: 10 ms to an hour, which
/// covers a small object routed and a large file's COPY.
const SECONDS_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0,
];

/// Distinct values of a label that comes from data (event types, tables)
/// one process exposes; later ones share [`OTHER_LABEL`]. Every series costs
/// memory here and in Prometheus, and types come from the input.
pub const MAX_DATA_LABELS: usize = 1000;
/// The label value of data beyond [`MAX_DATA_LABELS`].
pub const OTHER_LABEL: &str = "_other";

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot listen on {addr} for /metrics and /healthz: {source} (choose a free IP:PORT with --metrics-addr or metrics.addr)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install the metrics recorder: {0}")]
    Recorder(String),
}

/// The readiness of a service: one state per component it depends on.
///
/// Components start "not checked yet", so a new task is not sent traffic
/// (or counted healthy) before its first successful check. Each component
/// has one writer: its check ([`spawn_check`]).
#[derive(Debug, Default)]
pub struct Health {
    components: Mutex<BTreeMap<&'static str, State>>,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Starting,
    Ready,
    NotReady(String),
}

impl Health {
    pub fn new(components: &[&'static str]) -> Arc<Self> {
        let health = Health::default();
        {
            let mut map = health.components.lock().expect("health lock");
            for c in components {
                map.insert(c, State::Starting);
                metrics::gauge!("logrouter_ready", "component" => *c).set(0.0);
            }
        }
        Arc::new(health)
    }

    /// Records a component's state. Becoming ready is logged at INFO,
    /// becoming not ready (from ready, or at start-up) at WARN: the service
    /// retries on its own, the operator watches the alarm. A failure that
    /// only changes its words is not logged again.
    /// `logrouter_ready{component}` follows it.
    pub fn set(&self, component: &'static str, state: Result<(), String>) {
        let mut map = self.components.lock().expect("health lock");
        let next = match state {
            Ok(()) => State::Ready,
            Err(why) => State::NotReady(why),
        };
        let before = map.insert(component, next.clone());
        match (&before, &next) {
            (Some(State::Ready), State::Ready) | (Some(State::NotReady(_)), State::NotReady(_)) => {
            }
            (_, State::Ready) => info!(component, "ready"),
            (_, State::NotReady(why)) => warn!(component, %why, "not ready"),
            (_, State::Starting) => {}
        }
        // Under the lock, so that the gauge and the map never disagree.
        metrics::gauge!("logrouter_ready", "component" => component)
            .set(f64::from(u8::from(next == State::Ready)));
    }

    /// Whether `component` is ready now.
    pub fn is_ready(&self, component: &'static str) -> bool {
        self.components.lock().expect("health lock").get(component) == Some(&State::Ready)
    }

    /// Whether every component is ready, and one line per component.
    pub fn report(&self) -> (bool, String) {
        let components = self.components.lock().expect("health lock");
        let mut ready = true;
        let mut text = String::new();
        for (name, state) in components.iter() {
            match state {
                State::Ready => text.push_str(&format!("{name}: ok\n")),
                State::Starting => {
                    ready = false;
                    text.push_str(&format!("{name}: not ready: not checked yet\n"));
                }
                State::NotReady(why) => {
                    ready = false;
                    text.push_str(&format!("{name}: not ready: {why}\n"));
                }
            }
        }
        let head = if ready { "ready\n" } else { "not ready\n" };
        (ready, format!("{head}{text}"))
    }
}

/// How long one check may take before it counts as failed: the Data API
/// answers a `SELECT 1` in seconds, not milliseconds.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks a component every `every`, until `tasks` is dropped.
pub fn spawn_check<F, Fut>(
    tasks: &mut JoinSet<()>,
    health: Arc<Health>,
    component: &'static str,
    every: Duration,
    check: F,
) where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    tasks.spawn(async move {
        loop {
            // A check that hangs is a failed check.
            let limit = every.max(CHECK_TIMEOUT);
            let state = match tokio::time::timeout(limit, check()).await {
                Ok(state) => state,
                Err(_) => Err(format!("no answer within {} s", limit.as_secs())),
            };
            health.set(component, state);
            tokio::time::sleep(every).await;
        }
    });
}

/// A label value from data, bounded to [`MAX_DATA_LABELS`] distinct values
/// per process.
pub fn data_label(value: &str) -> SharedString {
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut seen = SEEN.lock().expect("label lock");
    let seen = seen.get_or_insert_with(HashSet::new);
    if seen.contains(value) {
        return SharedString::from(value.to_owned());
    }
    if seen.len() >= MAX_DATA_LABELS {
        if seen.insert(OTHER_LABEL.to_owned()) {
            warn!(
                limit = MAX_DATA_LABELS,
                "more distinct event types or tables than metric labels allow; further ones are counted as {OTHER_LABEL}"
            );
        }
        return SharedString::const_str(OTHER_LABEL);
    }
    seen.insert(value.to_owned());
    SharedString::from(value.to_owned())
}

/// Where a process's counters go, once installed.
#[derive(Clone)]
pub enum Exporter {
    /// Rendered on `/metrics` for a scraper.
    Prometheus(PrometheusHandle),
    /// Written to stdout as CloudWatch EMF lines ([`crate::emf`]).
    Emf(Arc<EmfRecorder>),
}

impl Exporter {
    /// Writes the EMF lines of what changed since the last flush (a
    /// Prometheus scraper pulls: nothing to do).
    pub fn flush(&self) {
        if let Exporter::Emf(r) = self {
            r.flush_stdout();
        }
    }
}

/// Installs the process's metrics recorder in `format` (one per process; a
/// second call for the same format returns the first) and registers the
/// HELP lines and units (`describe`, and the queue worker's own).
/// `service` (`router`, `loader`) is EMF's extra dimension.
fn install(
    format: MetricsFormat,
    namespace: &str,
    service: &'static str,
    describe: fn(),
) -> Result<Exporter, TelemetryError> {
    static INSTALLED: Mutex<Option<Exporter>> = Mutex::new(None);
    let mut installed = INSTALLED.lock().expect("recorder lock");
    let exporter = match (&*installed, format) {
        (Some(e @ Exporter::Prometheus(_)), MetricsFormat::Prometheus)
        | (Some(e @ Exporter::Emf(_)), MetricsFormat::Emf) => return Ok(e.clone()),
        (Some(_), _) => {
            return Err(TelemetryError::Recorder(
                "this process already records metrics in another format".into(),
            ))
        }
        (None, MetricsFormat::Prometheus) => Exporter::Prometheus(
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
                .map_err(|e| TelemetryError::Recorder(e.to_string()))?
                .install_recorder()
                .map_err(|e| TelemetryError::Recorder(e.to_string()))?,
        ),
        (None, MetricsFormat::Emf) => {
            let recorder = Arc::new(EmfRecorder::new(namespace, service));
            metrics::set_global_recorder(EmfHandle(recorder.clone()))
                .map_err(|e| TelemetryError::Recorder(e.to_string()))?;
            Exporter::Emf(recorder)
        }
    };
    *installed = Some(exporter.clone());
    drop(installed);
    describe_queue_metrics();
    describe();
    Ok(exporter)
}

/// The recorder a service's configuration asks for: `metrics.format`
/// (unset: `default`, EMF in Lambda mode, else Prometheus), Prometheus only
/// when `metrics.addr` serves it. None: no recorder, the macros do nothing.
pub fn install_for(
    config: &MetricsConfig,
    default: MetricsFormat,
    service: &'static str,
    describe: fn(),
) -> Result<Option<Exporter>, TelemetryError> {
    let format = config.format.unwrap_or(default);
    if format == MetricsFormat::Prometheus && config.addr.is_none() {
        return Ok(None);
    }
    install(format, &config.namespace, service, describe).map(Some)
}

/// With EMF, writes the metrics every `every` while it runs;
/// [`Flusher::finish`] stops it and writes them once more (a service that
/// stops). Does nothing for Prometheus, which is scraped.
pub struct Flusher {
    task: Option<tokio::task::JoinHandle<()>>,
    exporter: Option<Exporter>,
}

impl Flusher {
    pub fn start(exporter: Option<&Exporter>, every: Duration) -> Self {
        let task = match exporter {
            Some(Exporter::Emf(r)) => {
                let r = r.clone();
                Some(tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(every).await;
                        r.flush_stdout();
                    }
                }))
            }
            _ => None,
        };
        Self {
            task,
            exporter: exporter.cloned(),
        }
    }

    pub fn finish(self) {
        if let Some(t) = self.task {
            t.abort();
        }
        if let Some(e) = &self.exporter {
            e.flush();
        }
    }
}

/// The endpoint, while it runs: dropping it stops serving.
pub struct OpsServer {
    pub addr: SocketAddr,
    _tasks: JoinSet<()>,
}

/// Serves `/metrics` (when `exporter` is Prometheus's), `/healthz` and
/// `/livez` on `addr`.
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
    exporter: Option<Exporter>,
) -> Result<OpsServer, TelemetryError> {
    let handle = match exporter {
        Some(Exporter::Prometheus(h)) => Some(h),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| TelemetryError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| TelemetryError::Bind { addr, source })?;
    let mut tasks = JoinSet::new();
    if let Some(upkeep) = handle.clone() {
        tasks.spawn(async move {
            // Histogram samples are folded into their buckets here; without
            // it they would pile up between scrapes.
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                upkeep.run_upkeep();
            }
        });
    }
    tasks.spawn(accept(listener, handle, health));
    info!(%addr, "serving /metrics, /healthz and /livez");
    Ok(OpsServer {
        addr,
        _tasks: tasks,
    })
}

/// `router healthcheck` and `loader healthcheck`: GET `path` on `addr`, a
/// container's health check where the image has no curl. Ok when it
/// answers 200 within `timeout`.
pub async fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        let mut head = Vec::new();
        let mut buf = [0u8; 512];
        while !head.contains(&b'\n') && head.len() < 4096 {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("{addr}: {e}"))?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&head);
        let status = text.lines().next().unwrap_or("").trim().to_owned();
        match status.split_whitespace().nth(1) {
            Some("200") => Ok(()),
            _ => Err(format!("http://{addr}{path} answered {status:?}")),
        }
    };
    tokio::time::timeout(timeout, ask)
        .await
        .unwrap_or_else(|_| Err(format!("http://{addr}{path}: no answer within {timeout:?}")))
}

/// Connections served at once; scrapers and probes need a handful.
const MAX_CONNECTIONS: usize = 32;

async fn accept(
    listener: tokio::net::TcpListener,
    handle: Option<PrometheusHandle>,
    health: Arc<Health>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: try again shortly.
                warn!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handle = handle.clone();
        let health = health.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let response = respond(&req, &handle, &health);
                async move { Ok::<_, Infallible>(response) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // No connection lives longer than a minute (a scraper reconnects).
            if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(60), conn).await {
                debug!(error = %e, "metrics endpoint: connection failed");
            }
        });
    }
}

fn respond(
    req: &Request<Incoming>,
    handle: &Option<PrometheusHandle>,
    health: &Health,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        Response::builder()
            .status(status)
            .header("allow", "GET, HEAD")
            .header("content-type", content_type)
            .header("cache-control", "no-store")
            .body(Full::new(Bytes::from(body)))
            .expect("static response parts are valid")
    };
    const TEXT: &str = "text/plain; charset=utf-8";
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "use GET\n".to_owned());
    }
    match req.uri().path() {
        "/metrics" => match handle {
            Some(handle) => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                handle.render(),
            ),
            None => reply(
                StatusCode::NOT_FOUND,
                TEXT,
                "metrics are written to stdout as CloudWatch EMF (metrics.format = \"emf\")\n"
                    .to_owned(),
            ),
        },
        "/healthz" => {
            let (ready, text) = health.report();
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            reply(status, TEXT, text)
        }
        "/livez" => reply(StatusCode::OK, TEXT, "alive\n".to_owned()),
        _ => reply(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: the endpoints are /metrics, /healthz and /livez\n".to_owned(),
        ),
    }
}

/// HELP lines of the queue worker's metrics (both services), and zeros for
/// the error counters so that an alarm on them has a series from the start.
fn describe_queue_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(
        "logrouter_ready",
        "1 while a component (queue, warehouse) answers its readiness check, else 0"
    );
    describe_counter!(
        "logrouter_queue_messages_received_total",
        "SQS messages received"
    );
    describe_counter!(
        "logrouter_queue_messages_deleted_total",
        "SQS messages deleted after everything they named was done"
    );
    describe_counter!(
        "logrouter_queue_messages_retried_total",
        "SQS messages left on the queue because an object failed; they come back after a backoff"
    );
    describe_counter!(
        "logrouter_queue_messages_unknown_total",
        "SQS messages of unknown shape, left for the redrive policy (dead-letter queue)"
    );
    describe_counter!(
        "logrouter_queue_errors_total",
        "SQS calls that failed, by op: receive, delete, visibility"
    );
    for op in ["receive", "delete", "visibility"] {
        metrics::counter!("logrouter_queue_errors_total", "op" => op).increment(0);
    }
    describe_counter!(
        "logrouter_queue_objects_total",
        "Objects processed, by outcome: done or failed"
    );
    describe_gauge!(
        "logrouter_queue_objects_in_flight",
        "Objects being processed now"
    );
    describe_histogram!(
        "logrouter_queue_object_seconds",
        Unit::Seconds,
        "Time to process one object, by outcome"
    );
    describe_gauge!(
        "logrouter_queue_oldest_message_age_seconds",
        Unit::Seconds,
        "Age (since sent) of the oldest message in the last receive; 0 when it came back empty"
    );
    describe_gauge!(
        "logrouter_queue_messages_visible",
        "ApproximateNumberOfMessages of the queue at the last readiness check (the backlog)"
    );
    describe_gauge!(
        "logrouter_queue_messages_not_visible",
        "ApproximateNumberOfMessagesNotVisible at the last readiness check (being worked on)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_ready_only_when_every_component_is() {
        let h = Health::new(&[QUEUE, WAREHOUSE]);
        let (ready, text) = h.report();
        assert!(!ready);
        assert!(text.contains("queue: not ready: not checked yet"), "{text}");
        h.set(QUEUE, Ok(()));
        assert!(!h.report().0);
        h.set(WAREHOUSE, Ok(()));
        assert_eq!(
            h.report(),
            (true, "ready\nqueue: ok\nwarehouse: ok\n".into())
        );
        assert!(h.is_ready(WAREHOUSE));
        h.set(WAREHOUSE, Err("connection refused".into()));
        let (ready, text) = h.report();
        assert!(!ready);
        assert!(
            text.contains("warehouse: not ready: connection refused"),
            "{text}"
        );
    }
}
