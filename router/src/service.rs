//! `router run`: the SQS service. The shared [`QueueWorker`] receives
//! notifications; [`RouteHandler`] routes each object they name.

use std::future::Future;
use std::sync::Arc;

use logrouter::aws::AwsClients;
use logrouter::config::{Config, MetricsFormat};
use logrouter::lambda::runtime::RuntimeApi;
use logrouter::location::Location;
use logrouter::notification::ObjectRef;
use logrouter::queue::{ObjectHandler, QueueWorker, RunStats};
use std::time::Duration;

use logrouter::telemetry::{self, Health, QUEUE};

use crate::route::{RouteOutcome, Router};
use crate::summary::summary_line;

/// Routes each notified object; duplicates of an already routed ETag are
/// skipped cheaply (the manifest is the record).
pub struct RouteHandler {
    pub router: Router,
}

impl ObjectHandler for RouteHandler {
    async fn handle(&self, object: ObjectRef) -> Result<String, String> {
        let source = Location::S3 {
            bucket: object.bucket,
            key: object.key,
        };
        match self.router.route_object(&source, !object.force).await {
            // A damaged source is logged where it is routed; its message is
            // deleted: the bytes will not heal on a retry.
            Ok(RouteOutcome::Routed {
                manifest,
                manifest_key,
                first_errors,
            }) => Ok(summary_line(&manifest, &manifest_key, &first_errors)),
            Ok(RouteOutcome::AlreadyRouted {
                uri, manifest_key, ..
            }) => Ok(format!(
                "{uri}: already routed with this ETag ({manifest_key})"
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Runs the service until `shutdown` (or until drained, with `drain`),
/// serving metrics and readiness on `metrics.addr` when it is set.
pub async fn run(
    config: &Config,
    queue_url: String,
    dest: &Location,
    drain: bool,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<Arc<RunStats>> {
    let health = Health::new(&[QUEUE]);
    let exporter = telemetry::install_for(
        &config.metrics,
        MetricsFormat::Prometheus,
        "router",
        crate::route::describe_metrics,
    )?;
    let ops = match &config.metrics.addr {
        Some(addr) => {
            Some(telemetry::serve(addr.parse()?, health.clone(), exporter.clone()).await?)
        }
        None => None,
    };
    let flusher = telemetry::Flusher::start(
        exporter.as_ref(),
        Duration::from_secs(config.metrics.emf_interval_secs.into()),
    );
    let clients = Arc::new(AwsClients::new(config.aws.clone()));
    let router = Router::new(config, dest, clients.clone())
        .await
        .map_err(anyhow::Error::msg)?;
    let mut worker = QueueWorker::new(
        clients.sqs().await,
        queue_url,
        config.queue.clone(),
        Arc::new(RouteHandler { router }),
    )
    .drain(drain);
    if ops.is_some() {
        let every = Duration::from_secs(config.metrics.health_check_secs.into());
        worker = worker.with_health(health, every);
    }
    let stats = worker.run(shutdown).await;
    flusher.finish();
    Ok(stats?)
}

/// `router lambda`: serves the invocations of an SQS event source mapping
/// until the sandbox's SIGTERM, routing each object as `run` does.
pub async fn lambda(
    config: &Config,
    dest: &Location,
    api: RuntimeApi,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let exporter = telemetry::install_for(
        &config.metrics,
        MetricsFormat::Emf,
        "router",
        crate::route::describe_metrics,
    )?;
    let clients = Arc::new(AwsClients::new(config.aws.clone()));
    let router = Router::new(config, dest, clients)
        .await
        .map_err(anyhow::Error::msg)?;
    logrouter::lambda::runtime::serve(
        api,
        Arc::new(RouteHandler { router }),
        config,
        exporter,
        shutdown,
    )
    .await?;
    Ok(())
}
