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
    /// Redshift: files of one table loaded in one transaction, and batches
    /// of different tables loaded at once.
    pub redshift_files_per_batch: usize,
    pub redshift_concurrency: usize,
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
            self.redshift_files_per_batch,
        )
        .await
    }

    /// Opens a routed file: its version (S3 ETag, or SHA-256 of a local
    /// file) and its stored bytes.
    pub async fn open(&self, file: &RoutedFile) -> Result<OpenedFile, LoadError> {
        Ok(crate::source::open_file(&self.clients, file, true).await?)
    }

    /// The S3 ETags of `files`, by HeadObject, 16 at a time (a file not
    /// found is left out).
    pub async fn s3_versions(
        &self,
        files: &[RoutedFile],
    ) -> std::collections::HashMap<String, String> {
        let mut out = std::collections::HashMap::new();
        for chunk in files.chunks(16) {
            let heads: Vec<_> = chunk.iter().map(|f| self.s3_version(f)).collect();
            for (f, v) in chunk
                .iter()
                .zip(futures_util::future::join_all(heads).await)
            {
                if let Ok(v) = v {
                    out.insert(f.uri.clone(), v);
                }
            }
        }
        out
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
        let wanted: std::collections::HashSet<&str> =
            files.iter().map(|f| f.uri.as_str()).collect();
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
                        // Only the files asked for: the listing may cover
                        // the whole root (quarantine, other types, history).
                        let uri = format!("s3://{bucket}/{k}");
                        if wanted.contains(uri.as_str()) {
                            out.insert(uri, e.trim_matches('"').to_owned());
                        }
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
        self.report(file, &result, started.elapsed());
        result
    }

    /// Loads `files` of one table through `w`: on Redshift in batches of
    /// `load.redshift_files_per_batch` files, one transaction each;
    /// elsewhere one file at a time. Each outcome is logged and counted.
    pub async fn load_batch(
        &self,
        w: &mut Warehouse,
        files: &[RoutedFile],
        versions: &std::collections::HashMap<String, String>,
        mode: Mode,
    ) -> Vec<FileResult> {
        let Warehouse::Redshift(rs) = w else {
            let mut out = Vec::new();
            for file in files {
                let outcome = self.load_one(w, file, mode).await;
                out.push(FileResult {
                    file: file.clone(),
                    outcome,
                });
            }
            return out;
        };
        let started = std::time::Instant::now();
        let mut jobs = Vec::new();
        let mut out = Vec::new();
        for file in files {
            match versions.get(&file.uri) {
                Some(v) => jobs.push((self.job(file, mode), v.clone())),
                None => out.push(FileResult {
                    file: file.clone(),
                    outcome: Err(LoadError::Read {
                        file: file.uri.clone(),
                        message:
                            "not found in S3 (listed under its root): was it removed by a re-route?"
                                .into(),
                    }),
                }),
            }
        }
        let outcomes = rs.load_files(&jobs).await;
        // Per file, its share of the batch's time.
        let each = started.elapsed() / (jobs.len().max(1) as u32);
        for ((job, _), outcome) in jobs.into_iter().zip(outcomes) {
            self.report(&job.file, &outcome, each);
            out.push(FileResult {
                file: job.file,
                outcome,
            });
        }
        out
    }

    /// Logs and counts one file's outcome (`logrouter_loader_*`), so `load`,
    /// `reload` and `run` report alike.
    fn report(
        &self,
        file: &RoutedFile,
        result: &Result<LoadOutcome, LoadError>,
        took: std::time::Duration,
    ) {
        let table = logrouter::telemetry::data_label(&file.table);
        match result {
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
                    .record(took.as_secs_f64());
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
        // Units of work: one file, or on Redshift a batch of files of one
        // table. Redshift batches of one table take turns (they would wait
        // for each other's LOCK of the table anyway); of different tables
        // they run at once.
        let redshift = matches!(self.url, WarehouseUrl::Redshift(_));
        let (units, versions) = if redshift {
            // A file named twice (by a root and by its manifest) is one file.
            let mut seen = std::collections::HashSet::new();
            let files: Vec<RoutedFile> = files
                .into_iter()
                .filter(|f| seen.insert(f.uri.clone()))
                .collect();
            let versions = self.current_versions(&files).await?;
            let mut by_table: BTreeMap<String, Vec<RoutedFile>> = BTreeMap::new();
            for f in files {
                by_table.entry(f.table.clone()).or_default().push(f);
            }
            let per = self.redshift_files_per_batch.max(1);
            let mut units = VecDeque::new();
            // Round-robin over tables, so every table's first batch is near
            // the front.
            let mut chunks: Vec<std::vec::IntoIter<Vec<RoutedFile>>> = by_table
                .into_values()
                .map(|fs| {
                    fs.chunks(per)
                        .map(<[RoutedFile]>::to_vec)
                        .collect::<Vec<_>>()
                        .into_iter()
                })
                .collect();
            loop {
                let before = units.len();
                for c in &mut chunks {
                    if let Some(u) = c.next() {
                        units.push_back(u);
                    }
                }
                if units.len() == before {
                    break;
                }
            }
            (units, versions)
        } else {
            let units = files.into_iter().map(|f| vec![f]).collect();
            (units, Default::default())
        };
        let workers = match &self.url {
            WarehouseUrl::Redshift(_) => self.redshift_concurrency,
            u if u.parallel() => self.files_in_flight,
            _ => 1,
        }
        .min(units.len())
        .max(1);
        let queue = Arc::new(Mutex::new(Scheduler {
            units,
            busy: Default::default(),
            exclusive: redshift,
        }));
        let versions = Arc::new(versions);
        let results = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers {
            let mut w = self.connect().await?;
            let (me, queue, results, versions) = (
                self.clone(),
                queue.clone(),
                results.clone(),
                versions.clone(),
            );
            tasks.spawn(async move {
                loop {
                    let next = queue.lock().unwrap().next();
                    let unit = match next {
                        Next::Unit(u) => u,
                        Next::Wait => {
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                            continue;
                        }
                        Next::Done => break,
                    };
                    let done = me.load_batch(&mut w, &unit, &versions, mode).await;
                    queue.lock().unwrap().finished(&unit[0].table);
                    results.lock().unwrap().extend(done);
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

/// The units of `load_all`'s work, handed out so that (on Redshift) no two
/// batches of one table run at once.
struct Scheduler {
    units: VecDeque<Vec<RoutedFile>>,
    busy: std::collections::HashSet<String>,
    exclusive: bool,
}

enum Next {
    Unit(Vec<RoutedFile>),
    /// Every unit left is of a table being loaded.
    Wait,
    Done,
}

impl Scheduler {
    fn next(&mut self) -> Next {
        if self.units.is_empty() {
            return Next::Done;
        }
        let free = self
            .units
            .iter()
            .position(|u| !self.exclusive || !self.busy.contains(&u[0].table));
        match free {
            Some(i) => {
                let u = self.units.remove(i).expect("index from position");
                if self.exclusive {
                    self.busy.insert(u[0].table.clone());
                }
                Next::Unit(u)
            }
            None => Next::Wait,
        }
    }

    fn finished(&mut self, table: &str) {
        self.busy.remove(table);
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
