//! `router backfill --out -`: a replay written to standard output.
//!
//! Each selected object is read, decoded and routed as a full route or a
//! replay would be (same rules, same `--types`/`--match` filter), but every
//! routed line goes, as it is read, to one stream instead of per-type parts:
//! the JSON lines a consumer would get from the type files, in the order of
//! the source objects (their key time, then key) and, inside one object, in
//! the order read. Nothing is held whole in memory: one object is streamed at
//! a time, through a 64 KiB buffer.
//!
//! Nothing is written to any destination: no part, no quarantine record, no
//! manifest (so such a replay is never skipped as "already routed", and never
//! makes a later route or replay skip). Quarantined lines are counted, by
//! reason, in the summary on stderr; the full route of the same objects
//! quarantines them with their records.

use std::io::{self, BufWriter};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use logrouter::aws::AwsClients;
use logrouter::config::Config;
use logrouter::layout::{key_time, SourceName};
use logrouter::location::Location;
use logrouter::manifest::{Damage, RouteFilter};
use logrouter::store::open_source;

use crate::decode;
use crate::lines::{LineRouter, LinesResult, PipeWriteError, RouteRules};
use crate::route::RouteError;

/// Why an object was not piped in full.
#[derive(Debug, thiserror::Error)]
pub enum PipeError {
    /// The object could not be opened or read: this object failed (lines
    /// written before the failure stay written).
    #[error(transparent)]
    Source(#[from] RouteError),
    /// Standard output failed (or its reader went away): the replay stops.
    #[error("{0}")]
    Output(io::Error),
}

impl PipeError {
    /// The reader of the pipe closed it (`… --out - | head`).
    pub fn is_closed_pipe(&self) -> bool {
        matches!(self, PipeError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// What one piped object gave.
#[derive(Debug)]
pub struct PipedObject {
    pub uri: String,
    pub lines: LinesResult,
    pub damage: Option<Damage>,
}

/// Writes the routed lines of objects to standard output.
pub struct Piper {
    rules: Arc<RouteRules>,
    clients: Arc<AwsClients>,
    key_time_patterns: Vec<String>,
    progress: Option<Arc<AtomicU64>>,
}

impl Piper {
    /// The rules of `config` with `filter` (the default filter selects
    /// every line); the error is a usage error.
    pub fn new(
        config: &Config,
        clients: Arc<AwsClients>,
        filter: &RouteFilter,
    ) -> Result<Self, String> {
        Ok(Self {
            rules: Arc::new(RouteRules::new(config).filtered(filter)?),
            clients,
            key_time_patterns: config.route.key_time_patterns.clone(),
            progress: None,
        })
    }

    /// Counts every raw byte read into `counter` (progress).
    pub fn with_progress(mut self, counter: Arc<AtomicU64>) -> Self {
        self.progress = Some(counter);
        self
    }

    /// Streams the routed lines of `source` to standard output.
    pub async fn pipe_object(&self, source: &Location) -> Result<PipedObject, PipeError> {
        let s3 = match source {
            Location::S3 { .. } => Some(self.clients.s3().await),
            _ => None,
        };
        let opened = open_source(source, s3.as_ref(), self.progress.clone())
            .await
            .map_err(RouteError::Open)?;
        let info = opened.info.clone();
        let time_text = info.key.as_deref().unwrap_or(&info.uri);
        let name = SourceName::new(
            &info.uri,
            key_time(time_text, &self.key_time_patterns),
            info.last_modified,
        );
        let rules = self.rules.clone();
        let uri = info.uri.clone();
        let reader = opened.reader;
        let lines = tokio::task::spawn_blocking(move || {
            let (_compression, decoded) = decode::decoder(reader)?;
            let mut out = BufWriter::with_capacity(64 * 1024, io::stdout().lock());
            LineRouter::to_pipe(&rules, &name, &uri, &mut out).run(decode::read_ahead(decoded))
        })
        .await
        .unwrap_or_else(|panic| Err(io::Error::other(format!("routing thread failed: {panic}"))));
        let lines = match lines {
            Ok(l) => l,
            Err(e) => {
                return Err(match PipeWriteError::of(&e) {
                    Some(PipeWriteError(w)) => {
                        PipeError::Output(io::Error::new(w.kind(), w.to_string()))
                    }
                    None => PipeError::Source(RouteError::Read {
                        uri: info.uri.clone(),
                        message: e.to_string(),
                    }),
                })
            }
        };
        let damage = lines.damage.as_ref().map(|(decoded, line, error)| Damage {
            raw_offset: opened.raw_bytes.load(Ordering::Relaxed),
            decoded_offset: *decoded,
            line: *line,
            error: error.clone(),
        });
        Ok(PipedObject {
            uri: info.uri,
            lines,
            damage,
        })
    }
}
