//! `loader run` on Redshift: routed files of many notifications, gathered
//! per table into batches.
//!
//! Each manifest names about one file per type, so loading each
//! notification's files by themselves would cost a commit per file, the
//! cost issue #11 is about. Here a file waits up to `load.batch_window_secs`
//! for others of its table (from the other notifications in flight) to
//! share its batch of up to `load.redshift_files_per_batch` files; a full
//! batch goes at once. Batches of different tables run at once, up to
//! `load.redshift_concurrency`, and of one table one at a time. A
//! notification's handler awaits the outcome of each of its files, so its
//! message is still deleted only after everything it names is committed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Semaphore};

use crate::load::{FileResult, Loader, Mode};
use crate::source::RoutedFile;
use crate::warehouse::{LoadError, Warehouse};

struct Waiting {
    file: RoutedFile,
    since: Instant,
    reply: oneshot::Sender<FileResult>,
}

#[derive(Default)]
struct State {
    waiting: HashMap<String, Vec<Waiting>>,
    /// Tables with a batch being loaded.
    busy: std::collections::HashSet<String>,
    flusher: bool,
}

/// Gathers files into batches and loads them; see the module documentation.
pub struct Gatherer {
    loader: Arc<Loader>,
    window: Duration,
    state: Mutex<State>,
    slots: Semaphore,
    /// Idle connections.
    pool: Mutex<Vec<Warehouse>>,
}

impl Gatherer {
    pub fn new(loader: Arc<Loader>, window: Duration) -> Arc<Self> {
        Arc::new(Self {
            slots: Semaphore::new(loader.redshift_concurrency.max(1)),
            loader,
            window,
            state: Mutex::default(),
            pool: Mutex::default(),
        })
    }

    /// Loads `file` in a batch with others of its table; returns once its
    /// batch committed (or failed).
    pub async fn load(self: &Arc<Self>, file: RoutedFile) -> FileResult {
        let (reply, outcome) = oneshot::channel();
        let start = {
            let mut s = self.state.lock().unwrap();
            s.waiting
                .entry(file.table.clone())
                .or_default()
                .push(Waiting {
                    file: file.clone(),
                    since: Instant::now(),
                    reply,
                });
            !std::mem::replace(&mut s.flusher, true)
        };
        if start {
            tokio::spawn(self.clone().flush_loop());
        }
        outcome.await.unwrap_or_else(|_| FileResult {
            outcome: Err(LoadError::Database(format!(
                "{}: its batch was abandoned (the loader is stopping)",
                file.uri
            ))),
            file,
        })
    }

    /// Hands ready batches to loading tasks, every tenth of the window.
    async fn flush_loop(self: Arc<Self>) {
        let tick = (self.window / 10).clamp(Duration::from_millis(10), Duration::from_millis(500));
        loop {
            for batch in self.ready() {
                let me = self.clone();
                tokio::spawn(async move { me.load_batch(batch).await });
            }
            tokio::time::sleep(tick).await;
        }
    }

    /// Batches whose table is free and that are full or waited long enough.
    fn ready(&self) -> Vec<Vec<Waiting>> {
        let per = self.loader.redshift_files_per_batch.max(1);
        let mut s = self.state.lock().unwrap();
        let mut out = Vec::new();
        let State { waiting, busy, .. } = &mut *s;
        for (table, files) in waiting.iter_mut() {
            if files.is_empty() || busy.contains(table) {
                continue;
            }
            let due = files.len() >= per || files[0].since.elapsed() >= self.window;
            if due {
                // Distinct files only: a duplicate notification's copy
                // waits for the next batch (and finds the file loaded).
                let mut batch: Vec<Waiting> = Vec::new();
                let mut rest = Vec::new();
                for w in files.drain(..) {
                    if batch.len() < per && !batch.iter().any(|b| b.file.uri == w.file.uri) {
                        batch.push(w);
                    } else {
                        rest.push(w);
                    }
                }
                *files = rest;
                out.push(batch);
                busy.insert(table.clone());
            }
        }
        waiting.retain(|_, f| !f.is_empty());
        out
    }

    async fn load_batch(self: Arc<Self>, batch: Vec<Waiting>) {
        let table = batch[0].file.table.clone();
        // The table is free again however this ends (a panic included), or
        // its later files would wait forever.
        let _free = Free {
            gatherer: &self,
            table: &table,
        };
        let _slot = self.slots.acquire().await.expect("never closed");
        let files: Vec<RoutedFile> = batch.iter().map(|w| w.file.clone()).collect();
        let results = match self.connection().await {
            Ok(mut w) => {
                let versions = self.loader.s3_versions(&files).await;
                let r = self
                    .loader
                    .load_batch(&mut w, &files, &versions, Mode::Load)
                    .await;
                if !w.is_closed() {
                    self.pool.lock().unwrap().push(w);
                }
                r
            }
            Err(e) => files
                .iter()
                .map(|f| FileResult {
                    file: f.clone(),
                    outcome: Err(LoadError::Database(e.to_string())),
                })
                .collect(),
        };
        let mut by_uri: HashMap<String, FileResult> = results
            .into_iter()
            .map(|r| (r.file.uri.clone(), r))
            .collect();
        for w in batch {
            let r = by_uri.remove(&w.file.uri).unwrap_or_else(|| FileResult {
                outcome: Err(LoadError::Database("no outcome (a bug)".into())),
                file: w.file.clone(),
            });
            let _ = w.reply.send(r);
        }
    }

    async fn connection(&self) -> Result<Warehouse, LoadError> {
        let idle = self.pool.lock().unwrap().pop();
        match idle {
            Some(w) => Ok(w),
            None => self.loader.connect().await,
        }
    }
}

/// Marks a table free when dropped.
struct Free<'a> {
    gatherer: &'a Gatherer,
    table: &'a str,
}

impl Drop for Free<'_> {
    fn drop(&mut self) {
        let mut s = self
            .gatherer
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        s.busy.remove(self.table);
    }
}
