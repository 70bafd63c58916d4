//! `loader load`: loads every routed file the ledger lacks.
//!
//! Files are loaded one transaction each, by `files_in_flight` workers that
//! each own a connection (one for SQLite, which has a single writer). One
//! bad file is reported and the others still load (ripgrep's rule); the
//! summary and the exit code say what failed.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use logrouter::aws::AwsClients;
use logrouter::location::Location;

use crate::drift::Drift;
use crate::schema::{schemaless, TableSchema};
use crate::source::{Discovery, RoutedFile};
use crate::warehouse::{
    LoadError, LoadJob, LoadOutcome, OpenedFile, RejectSummary, Warehouse, WarehouseUrl,
};

/// What a `load` did, added up over its files.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub files: u64,
    pub rows: u64,
    pub rejects: u64,
    pub already: u64,
    pub replaced: u64,
}

/// Everything needed to load files, shared by `load` and `run`.
pub struct Loader {
    pub url: WarehouseUrl,
    pub db_schema: String,
    /// Tables with a schema file; any other type gets [`schemaless`].
    pub schemas: BTreeMap<String, TableSchema>,
    pub clients: Arc<AwsClients>,
    pub files_in_flight: usize,
    /// How long one Redshift statement may run before it is cancelled.
    pub statement_timeout: std::time::Duration,
    /// More rejected lines than this fail a file (`load.max_rejects_per_file`).
    pub max_rejects_per_file: u64,
}

/// What `load_all` and `load_one` do with a file the ledger already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Skip it (`loader load`, `loader run`): only new files and new
    /// versions (re-routes) are loaded.
    Load,
    /// Replace its rows when it was loaded under another version of its
    /// table's schema (`loader reload`, after a migration).
    Reload,
}

/// The outcome of one file.
#[derive(Debug)]
pub struct FileResult {
    pub file: RoutedFile,
    pub outcome: Result<LoadOutcome, LoadError>,
}

/// What a `load` did.
#[derive(Debug, Default)]
pub struct LoadSummary {
    pub files: Vec<FileResult>,
    /// Files of an earlier route that their manifest no longer names, whose
    /// rows were removed: (file, rows).
    pub forgotten: Vec<(String, u64)>,
    /// Manifests that could not be read, and failures removing old rows.
    pub errors: Vec<String>,
}

impl LoadSummary {
    /// Whether anything failed (a file, a manifest, a clean-up).
    pub fn ok(&self) -> bool {
        self.errors.is_empty() && self.failed().next().is_none()
    }

    pub fn failed(&self) -> impl Iterator<Item = &FileResult> {
        self.files.iter().filter(|f| f.outcome.is_err())
    }

    /// Files loaded, rows and rejects, files already loaded, files replaced.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for f in &self.files {
            match &f.outcome {
                Ok(LoadOutcome::Loaded {
                    rows,
                    replaced,
                    rejects,
                    ..
                }) => {
                    t.files += 1;
                    t.rows += rows;
                    t.rejects += rejects.total;
                    t.replaced += u64::from(replaced.is_some());
                }
                Ok(LoadOutcome::AlreadyLoaded) => t.already += 1,
                Err(_) => {}
            }
        }
        t
    }

    /// Per table: rejects by reason and the first one, of this run.
    pub fn rejects_by_table(&self) -> BTreeMap<&str, RejectSummary> {
        let mut m: BTreeMap<&str, RejectSummary> = BTreeMap::new();
        for f in &self.files {
            if let Ok(LoadOutcome::Loaded { rejects, .. }) = &f.outcome {
                if rejects.total == 0 {
                    continue;
                }
                let s = m.entry(f.file.table.as_str()).or_default();
                s.total += rejects.total;
                for (r, n) in &rejects.by_reason {
                    *s.by_reason.entry(*r).or_default() += n;
                }
                if s.first.is_none() {
                    s.first = rejects
                        .first
                        .as_ref()
                        .map(|d| format!("{}: {d}", f.file.uri));
                }
            }
        }
        m
    }

    /// Per table: fields in the lines its schema lacks, of this run.
    pub fn drift_by_table(&self) -> BTreeMap<&str, Drift> {
        let mut m: BTreeMap<&str, Drift> = BTreeMap::new();
        for f in &self.files {
            if let Ok(LoadOutcome::Loaded { drift, .. }) = &f.outcome {
                if !drift.is_empty() {
                    m.entry(f.file.table.as_str()).or_default().add(drift);
                }
            }
        }
        m
    }

    /// Rows loaded by this run per table.
    pub fn rows_by_table(&self) -> BTreeMap<&str, u64> {
        let mut m = BTreeMap::new();
        for f in &self.files {
            if let Ok(LoadOutcome::Loaded { rows, .. }) = &f.outcome {
                *m.entry(f.file.table.as_str()).or_default() += rows;
            }
        }
        m
    }
}

impl Loader {
    /// The table a type loads into.
    pub fn table_for(&self, table: &str) -> TableSchema {
        self.schemas
            .get(table)
            .cloned()
            .unwrap_or_else(|| schemaless(table))
    }

    pub async fn connect(&self) -> Result<Warehouse, LoadError> {
        Warehouse::connect(
            &self.url,
            &self.db_schema,
            &self.clients,
            self.statement_timeout,
        )
        .await
    }

    /// Opens a routed file: its version (S3 ETag, or SHA-256 of a local
    /// file) and its stored bytes.
    pub async fn open(&self, file: &RoutedFile) -> Result<OpenedFile, LoadError> {
        Ok(crate::source::open_file(&self.clients, file, true).await?)
    }

    /// An S3 file's ETag, without reading it.
    async fn s3_version(&self, file: &RoutedFile) -> Result<String, LoadError> {
        let Location::S3 { bucket, key } = &file.location else {
            return Err(LoadError::Read {
                file: file.uri.clone(),
                message: "Redshift COPY reads from S3: route to s3://… to load into Redshift"
                    .into(),
            });
        };
        let head = self
            .clients
            .s3()
            .await
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| LoadError::Read {
                file: file.uri.clone(),
                message: logrouter::aws::describe(&e),
            })?;
        head.e_tag()
            .map(|e| e.trim_matches('"').to_owned())
            .ok_or_else(|| LoadError::Read {
                file: file.uri.clone(),
                message: "S3 returned no ETag".into(),
            })
    }

    /// The current version of each file, as [`Loader::open`] would see it:
    /// S3 ETags from one listing per root, SHA-256 of local files.
    pub async fn current_versions(
        &self,
        files: &[RoutedFile],
    ) -> Result<std::collections::HashMap<String, String>, LoadError> {
        let mut out = std::collections::HashMap::new();
        let mut buckets: BTreeMap<&str, Vec<&RoutedFile>> = BTreeMap::new();
        for f in files {
            match &f.location {
                Location::Local(path) => {
                    let path = path.clone();
                    let v = tokio::task::spawn_blocking(move || sha256_file(&path))
                        .await
                        .map_err(|e| LoadError::Database(e.to_string()))?
                        .map_err(|e| LoadError::Read {
                            file: f.uri.clone(),
                            message: e.to_string(),
                        })?;
                    out.insert(f.uri.clone(), v);
                }
                Location::S3 { bucket, .. } => buckets.entry(bucket).or_default().push(f),
                Location::Stdin => {}
            }
        }
        if buckets.is_empty() {
            return Ok(out);
        }
        let s3 = self.clients.s3().await;
        for (bucket, fs) in buckets {
            // The longest common prefix of the keys: one listing covers them.
            let keys: Vec<&str> = fs
                .iter()
                .filter_map(|f| match &f.location {
                    Location::S3 { key, .. } => Some(key.as_str()),
                    _ => None,
                })
                .collect();
            let mut prefix = keys[0].to_owned();
            for k in &keys[1..] {
                while !k.starts_with(prefix.as_str()) {
                    prefix.pop();
                }
            }
            let mut pages = s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(&prefix)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| LoadError::Read {
                    file: format!("s3://{bucket}/{prefix}"),
                    message: logrouter::aws::describe(&e),
                })?;
                for o in page.contents() {
                    if let (Some(k), Some(e)) = (o.key(), o.e_tag()) {
                        out.insert(format!("s3://{bucket}/{k}"), e.trim_matches('"').to_owned());
                    }
                }
            }
        }
        Ok(out)
    }

    /// Loads one file through `w`. Its outcome is logged and counted here
    /// (`logrouter_loader_*`), so `load` and `run` report alike.
    pub async fn load_one(
        &self,
        w: &mut Warehouse,
        file: &RoutedFile,
        mode: Mode,
    ) -> Result<LoadOutcome, LoadError> {
        let started = std::time::Instant::now();
        let result = self.load_file(w, file, mode).await;
        let table = logrouter::telemetry::data_label(&file.table);
        match &result {
            Ok(LoadOutcome::Loaded {
                rows,
                replaced,
                rejects,
                drift,
            }) => {
                tracing::info!(file = %file.uri, table = %file.table, rows, rejects = rejects.total, replaced = ?replaced, "loaded");
                if let Some(first) = &rejects.first {
                    tracing::warn!(file = %file.uri, table = %file.table, rejects = rejects.total, first = %first, "lines rejected (see `loader rejects`)");
                }
                if !drift.is_empty() {
                    tracing::info!(file = %file.uri, table = %file.table, fields = %drift.describe(), "fields not in the schema (see `loader schema infer --update`)");
                }
                metrics::counter!("logrouter_loader_files_loaded_total", "table" => table.clone())
                    .increment(1);
                metrics::counter!("logrouter_loader_rows_loaded_total", "table" => table.clone())
                    .increment(*rows);
                for (reason, n) in &rejects.by_reason {
                    metrics::counter!("logrouter_loader_rows_rejected_total", "table" => table.clone(), "reason" => reason.as_str())
                        .increment(*n);
                }
                for (field, n) in &drift.fields {
                    metrics::counter!("logrouter_loader_unknown_field_lines_total", "table" => table.clone(), "field" => logrouter::telemetry::data_label(field))
                        .increment(*n);
                }
                metrics::histogram!("logrouter_loader_load_seconds", "table" => table)
                    .record(started.elapsed().as_secs_f64());
            }
            Ok(LoadOutcome::AlreadyLoaded) => {
                tracing::debug!(file = %file.uri, "already loaded");
                metrics::counter!("logrouter_loader_duplicates_skipped_total", "table" => table)
                    .increment(1);
            }
            Err(e) => {
                if e.needs_operator() {
                    tracing::error!(file = %file.uri, error = %e, "not loaded: fix the data or the schema, then load again");
                } else {
                    tracing::warn!(file = %file.uri, error = %e, "not loaded (a read or database error: loading again may succeed)");
                }
                metrics::counter!("logrouter_loader_failures_total", "reason" => e.reason())
                    .increment(1);
            }
        }
        result
    }

    /// The job of loading `file` in `mode`.
    pub fn job(&self, file: &RoutedFile, mode: Mode) -> LoadJob {
        let table = self.table_for(&file.table);
        LoadJob {
            file: file.clone(),
            schema_version: table.version(),
            table,
            reload: mode == Mode::Reload,
            max_rejects: self.max_rejects_per_file,
        }
    }

    async fn load_file(
        &self,
        w: &mut Warehouse,
        file: &RoutedFile,
        mode: Mode,
    ) -> Result<LoadOutcome, LoadError> {
        let job = self.job(file, mode);
        let opened = match w {
            // COPY reads the file from S3: only its version is needed.
            Warehouse::Redshift(_) => OpenedFile {
                version: self.s3_version(file).await?,
                raw: Box::new(std::io::empty()),
            },
            _ => self.open(file).await?,
        };
        w.load_file(&job, opened).await
    }

    /// Removes the rows of files the complete `manifests` no longer name (a
    /// re-route wrote fewer parts, or none of a type): (file, rows) removed.
    pub async fn forget_orphans(
        &self,
        w: &mut Warehouse,
        manifests: &[(String, Vec<String>)],
    ) -> Result<Vec<(String, u64)>, LoadError> {
        let mut out = Vec::new();
        for (file, table) in w.orphans_of(&self.db_schema, manifests).await? {
            let n = w.forget_file(&file, &table).await?;
            tracing::info!(%file, %table, rows = n, "removed the rows of a file its manifest no longer names");
            out.push((file, n));
        }
        Ok(out)
    }

    /// Loads what `discovery` found, `files_in_flight` at a time, then
    /// removes rows of files the complete manifests no longer name.
    pub async fn load_all(
        self: &Arc<Self>,
        discovery: Discovery,
        mode: Mode,
    ) -> Result<LoadSummary, LoadError> {
        let Discovery {
            files,
            complete,
            errors,
        } = discovery;
        let workers = if self.url.parallel() {
            self.files_in_flight.min(files.len()).max(1)
        } else {
            1
        };
        let queue = Arc::new(Mutex::new(VecDeque::from(files)));
        let results = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers {
            let mut w = self.connect().await?;
            let (me, queue, results) = (self.clone(), queue.clone(), results.clone());
            tasks.spawn(async move {
                loop {
                    let Some(file) = queue.lock().unwrap().pop_front() else {
                        break;
                    };
                    let outcome = me.load_one(&mut w, &file, mode).await;
                    results.lock().unwrap().push(FileResult { file, outcome });
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.map_err(|e| LoadError::Database(format!("a load worker failed: {e}")))?;
        }
        let mut files = std::mem::take(&mut *results.lock().unwrap());
        files.sort_by(|a, b| a.file.uri.cmp(&b.file.uri));
        let mut summary = LoadSummary {
            files,
            forgotten: Vec::new(),
            errors,
        };
        if !complete.is_empty() {
            let mut w = self.connect().await?;
            match self.forget_orphans(&mut w, &complete).await {
                Ok(f) => summary.forgotten = f,
                Err(e) => summary.errors.push(format!(
                    "removing rows of files their manifests no longer name: {e}"
                )),
            }
        }
        Ok(summary)
    }
}

/// HELP lines of the loader's metrics, for `/metrics`.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_histogram, Unit};
    describe_counter!(
        "logrouter_loader_files_loaded_total",
        "Routed files loaded (committed with their ledger row), by table"
    );
    describe_counter!(
        "logrouter_loader_rows_loaded_total",
        "Rows loaded, by table (equals the manifests' lines)"
    );
    describe_histogram!(
        "logrouter_loader_load_seconds",
        Unit::Seconds,
        "Time to load one file, open to commit, by table"
    );
    describe_counter!(
        "logrouter_loader_duplicates_skipped_total",
        "Files skipped because the ledger already has their version (duplicate notification or rerun), by table"
    );
    describe_counter!(
        "logrouter_loader_failures_total",
        "Files not loaded, by reason: too_many_rejects and count_mismatch need an operator; read, database and manifest (not readable yet) may pass on a retry"
    );
    describe_counter!(
        "logrouter_loader_rows_rejected_total",
        "Lines recorded in _logrouter_rejects instead of their table, by table and reason (see `loader rejects`)"
    );
    describe_counter!(
        "logrouter_loader_unknown_field_lines_total",
        "Lines carrying a field their table's schema has no column for, by table and field path (see `loader schema infer --update`)"
    );
    for reason in LoadError::REASONS {
        metrics::counter!("logrouter_loader_failures_total", "reason" => reason).increment(0);
    }
}

/// A local file's version: `sha256:<hex>` of its bytes.
fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    crate::source::sha256_of(&mut std::fs::File::open(path)?)
}
