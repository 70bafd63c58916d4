//! Configuration: one TOML file, every key overridable by environment
//! (`LOGROUTER_<SECTION>__<KEY>`), then by command-line flags.
//!
//! Loaded and validated once at start-up ([`Config::load`] then
//! [`Config::validate`]); the rest of the code trusts it. Unknown keys are an
//! error that names the key, so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::normalize::validate_name;
use crate::pointer::JsonPointer;

/// Error in the configuration: always names the key and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

/// Compression of routed output files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OutputCompression {
    #[default]
    Gzip,
    Zstd,
}

/// What writes gzip parts (issue #26). Both write standard multi-member
/// `.json.gz`; they differ in speed and size: on bench/router's two shapes
/// ISA-L's igzip at levels 1-2 compressed 2.6x and 1.7x faster than
/// libdeflate at level 1, for 2-6% more bytes (still below `gzip -1`'s).
/// ISA-L is assembly built with nasm and autotools, so it is a cargo
/// feature (`isal`) of the router rather than a default dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GzipEncoder {
    /// libdeflate, levels 0-12: in every build.
    Libdeflate,
    /// ISA-L's igzip, levels 0-3: in a router built with `--features isal`.
    Isal,
}

impl GzipEncoder {
    pub fn as_str(self) -> &'static str {
        match self {
            GzipEncoder::Libdeflate => "libdeflate",
            GzipEncoder::Isal => "isal",
        }
    }

    /// Whether this build can write with it.
    pub fn is_built(self) -> bool {
        match self {
            GzipEncoder::Libdeflate => true,
            GzipEncoder::Isal => cfg!(feature = "isal"),
        }
    }

    /// Its levels, and its default one.
    pub fn levels(self) -> (std::ops::RangeInclusive<i32>, i32) {
        match self {
            GzipEncoder::Libdeflate => (0..=12, 1),
            // Level 1: in the router, 14% less wall time than level 2 on
            // bench/router's analytics events (5 paired runs) for 0.9% more
            // bytes; 0.83x and 1.00x `gzip -1`'s bytes on its two shapes.
            GzipEncoder::Isal => (0..=3, 1),
        }
    }
}

impl OutputCompression {
    /// File extension of a routed part, after `.json`.
    pub fn extension(self) -> &'static str {
        match self {
            OutputCompression::Gzip => "gz",
            OutputCompression::Zstd => "zst",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub route: RouteConfig,
    pub queue: QueueConfig,
    pub aws: AwsConfig,
    pub load: LoadConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub lambda: LambdaConfig,
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event, coloured on a terminal.
    #[default]
    Text,
    /// One JSON object per line, for a log pipeline (CloudWatch, Loki...).
    Json,
}

impl LogFormat {
    /// The value of `--log-format`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("--log-format {other:?}: write text or json")),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`; `--log-format` overrides it. The level comes from
    /// `RUST_LOG` (default `info`).
    pub format: LogFormat,
}

/// Where the services' counters go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsFormat {
    /// The Prometheus text format on `metrics.addr`'s `/metrics`.
    Prometheus,
    /// CloudWatch Embedded Metric Format: one JSON document per line on
    /// stdout, which CloudWatch Logs turns into metrics (Lambda, and ECS
    /// with the awslogs driver), where nothing scrapes a port.
    Emf,
}

/// The operator's endpoint of `router run` and `loader run`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `IP:PORT` serving `/metrics` (Prometheus), `/healthz` (readiness)
    /// and `/livez`; `--metrics-addr` overrides it. Unset: no endpoint.
    pub addr: Option<String>,
    /// How often readiness checks the queue and the warehouse.
    pub health_check_secs: u32,
    /// `prometheus` or `emf`. Unset: `emf` in Lambda mode (nothing can
    /// scrape a function), else `prometheus` (served only with `addr`).
    pub format: Option<MetricsFormat>,
    /// The CloudWatch namespace of EMF metrics.
    pub namespace: String,
    /// `run` with EMF: how often the counters are written (Lambda writes
    /// them at the end of every invocation).
    pub emf_interval_secs: u32,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            addr: None,
            health_check_secs: 15,
            format: None,
            namespace: "logrouter".to_owned(),
            emf_interval_secs: 60,
        }
    }
}

/// `router lambda` and `loader lambda`: an SQS event source mapping invokes
/// the function with batches of messages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LambdaConfig {
    /// Work stops this long before the invocation's deadline: what is not
    /// done by then is abandoned (no manifest, no commit) and reported as a
    /// batch item failure, and the response still reaches Lambda in time.
    pub deadline_margin_secs: u64,
    /// The time an invocation may take when its deadline is unknown (no
    /// `Lambda-Runtime-Deadline-Ms`, or one already past at arrival, as a
    /// local emulator sends).
    pub fallback_timeout_secs: u64,
    /// The loader on Redshift: how long the files of one invocation's
    /// messages wait for each other to share one batch per table (the
    /// event source's batching window gathered the messages already).
    pub batch_gather_ms: u64,
    /// Register a no-op internal extension, so that Lambda sends the
    /// process SIGTERM before it shuts the sandbox down and the metrics are
    /// flushed.
    pub graceful_shutdown: bool,
}

impl Default for LambdaConfig {
    fn default() -> Self {
        Self {
            deadline_margin_secs: 10,
            fallback_timeout_secs: 900,
            batch_gather_ms: 500,
            graceful_shutdown: true,
        }
    }
}

/// How the loader finds its warehouse, schemas and migrations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadConfig {
    /// `sqlite:PATH` or `postgres://…`; `--warehouse` overrides it.
    pub warehouse: Option<String>,
    /// Database schema holding the event tables and the ledger (PostgreSQL
    /// and Redshift; SQLite has none).
    pub db_schema: String,
    /// Folder of `<event_type>.json` schemas.
    pub schemas_dir: PathBuf,
    /// Folder of `<dialect>/NNNN_name.sql` migrations.
    pub migrations_dir: PathBuf,
    /// Files loaded at once by `loader load` (one connection each; SQLite
    /// always loads one at a time: it has one writer).
    pub files_in_flight: usize,
    /// Redshift: a statement still running after this long is cancelled and
    /// its file reported as failed.
    pub statement_timeout_secs: u64,
    /// Lines of one file that may be rejected (recorded in
    /// `_logrouter_rejects` instead of the table) before the file fails as a
    /// whole, like Redshift COPY's `MAXERROR` (at most 100,000). 0: any bad
    /// line fails its file.
    pub max_rejects_per_file: u64,
    /// Redshift: routed files of one table loaded in one transaction (one
    /// commit), 1 to 13 (what BatchExecuteStatement's 40 statements hold).
    pub redshift_files_per_batch: usize,
    /// Redshift: batches (of different tables) loaded at once, each on a
    /// WLM slot while its COPYs run.
    pub redshift_concurrency: usize,
    /// `loader run` on Redshift: how long a routed file waits for others of
    /// its table to share its batch (its message is deleted after the
    /// batch commits).
    pub batch_window_secs: u64,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            warehouse: None,
            db_schema: "events".to_owned(),
            schemas_dir: PathBuf::from("schemas"),
            migrations_dir: PathBuf::from("migrations"),
            files_in_flight: 2,
            statement_timeout_secs: 3600,
            max_rejects_per_file: 10_000,
            redshift_files_per_batch: 13,
            redshift_concurrency: 4,
            batch_window_secs: 10,
        }
    }
}

/// The line format of source objects (`route.format`, `--format`). The
/// router turns every non-JSON line into one JSON object, so the loader
/// and everything after it only ever see JSON lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LineFormat {
    /// JSON lines, routed byte for byte as read.
    #[default]
    Json,
    /// CloudFront standard logs (W3C: `#Version`/`#Fields` headers, tabs).
    Cloudfront,
    /// S3 server access logs.
    S3Access,
    /// Application Load Balancer access logs.
    Alb,
    /// `cloudfront` when the object starts with `#Version:`, else `json`
    /// (decided per object; a JSON object is routed as read, so
    /// `route.payload` applies to the CloudFront objects only).
    Auto,
}

impl LineFormat {
    /// Every format, by its configured name.
    pub const ALL: [(&'static str, LineFormat); 5] = [
        ("json", LineFormat::Json),
        ("cloudfront", LineFormat::Cloudfront),
        ("s3_access", LineFormat::S3Access),
        ("alb", LineFormat::Alb),
        ("auto", LineFormat::Auto),
    ];

    /// The value of `--format`.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == text)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                format!("--format {text:?}: write json, cloudfront, s3_access, alb or auto")
            })
    }

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map(|(n, _)| *n)
            .expect("every format is listed")
    }
}

/// A payload carried inside one field of each line (`[route.payload]`):
/// a query-string parameter whose value is a delimited list of fields.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PayloadConfig {
    /// JSON pointer to the field holding the request, e.g. `/request_uri`.
    pub field: String,
    /// The query-string parameter holding the payload, e.g. `data`.
    pub query_param: String,
    /// Separator of the payload's values, e.g. `|`.
    pub delimiter: String,
    /// The payload's field names, in order (normalised names).
    pub fields: Vec<String>,
    /// Key under which the line's own fields are kept (default `access_log`).
    #[serde(default = "default_payload_key")]
    pub key: String,
}

fn default_payload_key() -> String {
    "access_log".to_owned()
}

/// `field_N`: the key of a value that no name describes (a payload value
/// past `fields`, a field appended to a format later), so no configured
/// name may take that form.
fn is_extra_key(name: &str) -> bool {
    name.strip_prefix("field_")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// How lines are routed and written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteConfig {
    /// Where routed files go: a local folder or `s3://bucket/prefix`
    /// (`--out` overrides it; `router lambda` reads it from
    /// `LOGROUTER_ROUTE__OUT`).
    pub out: Option<String>,
    /// The sources' line format (default `json`).
    pub format: LineFormat,
    /// JSON pointer to the event type in each line (for non-JSON formats:
    /// in the object the line becomes).
    pub type_field: String,
    /// A regular expression applied to the type field's value: its first
    /// capture group (or the whole match) is the event type; no match is
    /// quarantined as `type_pattern_no_match`.
    pub type_pattern: Option<String>,
    /// One fixed event type for every line (instead of `type_field`).
    #[serde(rename = "type")]
    pub fixed_type: Option<String>,
    /// A payload inside each line, routed as the event.
    pub payload: Option<PayloadConfig>,
    /// Longer lines are quarantined as `line_too_long`. Default 4 MiB,
    /// Redshift's limit for one JSON object.
    pub max_line_bytes: u64,
    /// A routed part rolls over once this many compressed bytes are written.
    pub part_size_bytes: u64,
    pub output_compression: OutputCompression,
    /// What writes gzip parts; unset: `isal` where the router was built
    /// with it, else `libdeflate`.
    pub gzip_encoder: Option<GzipEncoder>,
    /// gzip 0–12 with libdeflate (default 1), 0-3 with ISA-L (default 1),
    /// or zstd 1–19 (default 1:
    /// at level 3 a part's compressor took about 3 MB, 173 MB peak RSS on
    /// 50 types, and ran at 2.1x the `zcat | gzip -1` pipe against 3.0x at
    /// level 1, whose parts are still 0.63-0.96x `gzip -1`'s bytes;
    /// bench/router's table of encoders, issue #26).
    pub compression_level: Option<i32>,
    /// When set, only these (normalised) types are routed; the others are
    /// quarantined as `event_type_not_allowed`.
    pub allowed_types: Option<Vec<String>>,
    /// Distinct types one source may produce; lines of further types are
    /// quarantined as `too_many_event_types` (each open type holds a
    /// compressor, so this bounds memory against hostile input).
    pub max_types_per_source: usize,
    /// zstd: open parts of one source that keep a compressor of their own.
    /// A compressor's window and tables take a few hundred KB, so a source
    /// of 1,000 types needed 400 MB; a part opened while this many are open
    /// compresses each 64 KiB block as a zstd frame of its own instead, and
    /// holds only its block in between. The default, 128, keeps the router
    /// under 200 MB however many types a source holds. gzip parts keep no
    /// compressor at all: every block is a gzip member of its own (RFC 1952
    /// multi-member, which gzip, zcat, Python, Redshift and the loader
    /// read), written by the compressor thread's libdeflate.
    pub max_open_compressors: usize,
    /// Where parts bound for S3 are spooled before upload (default: the
    /// system temporary directory).
    pub spool_dir: Option<PathBuf>,
    /// Parts uploaded concurrently per object.
    pub upload_concurrency: usize,
    /// Parts at least this large go up by multipart upload.
    pub multipart_threshold_bytes: u64,
    /// Patterns that find a source's hour in its key (`%Y %m %d %H`; the
    /// rightmost match wins). Used for output names and backfill windows.
    pub key_time_patterns: Vec<String>,
    /// Size of each multipart chunk (S3 minimum: 5 MiB).
    pub multipart_chunk_bytes: u64,
}

impl Default for RouteConfig {
    fn default() -> Self {
        Self {
            out: None,
            format: LineFormat::Json,
            type_field: "/event_type".to_owned(),
            type_pattern: None,
            fixed_type: None,
            payload: None,
            max_line_bytes: 4 * 1024 * 1024,
            part_size_bytes: 128 * 1024 * 1024,
            output_compression: OutputCompression::Gzip,
            gzip_encoder: None,
            compression_level: None,
            allowed_types: None,
            max_types_per_source: 1000,
            max_open_compressors: 128,
            spool_dir: None,
            upload_concurrency: 4,
            multipart_threshold_bytes: 16 * 1024 * 1024,
            multipart_chunk_bytes: 8 * 1024 * 1024,
            key_time_patterns: crate::layout::DEFAULT_KEY_TIME_PATTERNS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// How the SQS service behaves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Long-poll wait per receive, 1–20 s.
    pub wait_time_secs: u32,
    /// Visibility timeout requested on receive and renewed by the heartbeat.
    pub visibility_timeout_secs: u32,
    /// Heartbeat period; default a third of the visibility timeout.
    pub heartbeat_secs: Option<u32>,
    /// Objects processed at once.
    pub max_objects_in_flight: usize,
    /// After a failure the message becomes visible again after
    /// `failure_backoff_secs * 2^(receives-1)`, capped at 15 minutes.
    pub failure_backoff_secs: u32,
    /// On SIGINT/SIGTERM, in-flight work gets this long to finish before its
    /// messages are released back to the queue.
    pub shutdown_grace_secs: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            wait_time_secs: 20,
            visibility_timeout_secs: 300,
            heartbeat_secs: None,
            max_objects_in_flight: 4,
            failure_backoff_secs: 30,
            shutdown_grace_secs: 30,
        }
    }
}

impl QueueConfig {
    pub fn heartbeat_secs(&self) -> u32 {
        self.heartbeat_secs
            .unwrap_or((self.visibility_timeout_secs / 3).max(1))
    }
}

/// AWS settings beyond the standard chain (env, profile, `AWS_ENDPOINT_URL`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsConfig {
    /// Path-style S3 addressing (`http://host/bucket/key`), for S3-compatible
    /// servers and local stand-ins.
    pub force_path_style: bool,
    /// The longest one request attempt to S3, SQS or the Redshift Data API
    /// may take (an SQS receive gets its 20 s long poll on top), after which
    /// it fails and the SDK retries it. The SDK sets no such bound: a
    /// connection that stalls before its answer would hang a service for
    /// good (a body that stalls midway is the SDK's stalled-stream
    /// protection, 20 s). Large enough for one upload of
    /// `route.upload.multipart_threshold_bytes` on a slow link.
    pub attempt_timeout_secs: u64,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            force_path_style: false,
            attempt_timeout_secs: 300,
        }
    }
}

impl Config {
    /// Reads an optional TOML file, then `LOGROUTER_…` environment overrides.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(file) = file {
            builder = builder.add_source(
                config::File::from(file)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        let env = config::Environment::with_prefix("LOGROUTER")
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("route.allowed_types")
            .with_list_parse_key("route.key_time_patterns");
        let cfg: Config = builder.add_source(env).build()?.try_deserialize()?;
        Ok(cfg)
    }

    /// Checks every value once, so that the rest of the program can trust it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let r = &self.route;
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        if let Err(e) = JsonPointer::parse(&r.type_field) {
            return invalid("route.type_field", e);
        }
        if let Some(p) = &r.type_pattern {
            if let Err(e) = regex::Regex::new(p) {
                return invalid(
                    "route.type_pattern",
                    format!("{p:?} is not a regular expression: {e}"),
                );
            }
        }
        if let Some(t) = &r.fixed_type {
            if let Err(e) = crate::normalize::normalize_event_type(t) {
                return invalid(
                    "route.type",
                    format!("{t:?} {e}: give a name such as \"video_play\""),
                );
            }
            if r.type_pattern.is_some() {
                return invalid(
                    "route.type",
                    "a fixed type leaves nothing for route.type_pattern to match: set one of them"
                        .into(),
                );
            }
        }
        if let Some(p) = &r.payload {
            if r.format == LineFormat::Json {
                return invalid("route.payload", "a payload is read from an access log's field: set route.format (--format) to cloudfront, s3_access, alb or auto".into());
            }
            match JsonPointer::parse(&p.field) {
                Err(e) => return invalid("route.payload.field", e),
                Ok(ptr) if ptr.segments().len() != 1 => {
                    return invalid("route.payload.field", format!("{:?} must name one field of the access-log line, e.g. \"/request_uri\"", p.field));
                }
                Ok(_) => {}
            }
            if p.query_param.is_empty() {
                return invalid(
                    "route.payload.query_param",
                    "must not be empty (the parameter holding the payload, e.g. \"data\")".into(),
                );
            }
            if p.delimiter.is_empty() {
                return invalid(
                    "route.payload.delimiter",
                    "must not be empty (e.g. \"|\")".into(),
                );
            }
            if p.fields.is_empty() {
                return invalid(
                    "route.payload.fields",
                    "name at least one field, in the payload's order".into(),
                );
            }
            if let Err(e) = validate_name(&p.key) {
                return invalid(
                    "route.payload.key",
                    format!(
                        "{:?} {}: write a normalised name such as \"access_log\"",
                        p.key, e.rule
                    ),
                );
            }
            for (i, f) in p.fields.iter().enumerate() {
                if let Err(e) = validate_name(f) {
                    return invalid(
                        "route.payload.fields",
                        format!(
                            "{f:?} {}: write normalised names such as \"event_type\"",
                            e.rule
                        ),
                    );
                }
                if *f == p.key || p.fields[..i].contains(f) {
                    return invalid("route.payload.fields", format!("{f:?} appears twice (or is route.payload.key): each key of the routed object must be unique"));
                }
                if is_extra_key(f) {
                    return invalid("route.payload.fields", format!("{f:?} is how values past the named fields are kept (field_N): choose another name"));
                }
            }
            if is_extra_key(&p.key) {
                return invalid("route.payload.key", format!("{:?} is how values past the named fields are kept (field_N): choose another name, e.g. \"access_log\"", p.key));
            }
        }
        if r.max_line_bytes == 0 {
            return invalid("route.max_line_bytes", "must be at least 1".into());
        }
        if r.part_size_bytes < 1024 {
            return invalid("route.part_size_bytes", "must be at least 1024".into());
        }
        if let Some(encoder) = r.gzip_encoder {
            if !encoder.is_built() {
                return invalid(
                    "route.gzip_encoder",
                    "isal: this router was built without ISA-L; build it with `cargo build --release -p router --features isal` (needs nasm, autoconf, automake and libtool: scripts/lib/isal_deps.sh installs them), or set libdeflate".into(),
                );
            }
        }
        if let Some(level) = r.compression_level {
            let (name, levels) = match r.output_compression {
                OutputCompression::Gzip => {
                    let encoder = self.gzip_encoder();
                    (
                        format!("gzip with {}", encoder.as_str()),
                        encoder.levels().0,
                    )
                }
                OutputCompression::Zstd => ("zstd".to_owned(), 1..=19),
            };
            if !levels.contains(&level) {
                let range = format!("{name}: {}-{}", levels.start(), levels.end());
                return invalid(
                    "route.compression_level",
                    format!("{level} is out of range ({range}; libdeflate takes gzip levels 0-12, ISA-L 0-3)"),
                );
            }
        }
        if let Some(types) = &r.allowed_types {
            for t in types {
                if let Err(e) = validate_name(t) {
                    return invalid(
                        "route.allowed_types",
                        format!("{t:?} is not a normalised event type: it {} (write names as the router normalises them, e.g. \"video_play\")", e.rule),
                    );
                }
            }
        }
        for p in &r.key_time_patterns {
            if let Err(e) = crate::layout::check_pattern(p) {
                return invalid("route.key_time_patterns", format!("{p:?}: {e}"));
            }
        }
        if r.max_types_per_source == 0 {
            return invalid("route.max_types_per_source", "must be at least 1".into());
        }
        if r.max_open_compressors == 0 {
            return invalid("route.max_open_compressors", "must be at least 1".into());
        }
        if r.upload_concurrency == 0 {
            return invalid("route.upload_concurrency", "must be at least 1".into());
        }
        if r.multipart_chunk_bytes < 5 * 1024 * 1024 {
            return invalid(
                "route.multipart_chunk_bytes",
                "must be at least 5242880 (5 MiB, the S3 minimum part size)".into(),
            );
        }
        let q = &self.queue;
        if q.wait_time_secs > 20 {
            return invalid(
                "queue.wait_time_secs",
                "must be 0-20 (the SQS maximum long poll)".into(),
            );
        }
        if !(1..=43_200).contains(&q.visibility_timeout_secs) {
            return invalid(
                "queue.visibility_timeout_secs",
                "must be 1-43200 (the SQS limit of 12 hours)".into(),
            );
        }
        if q.heartbeat_secs() == 0 || q.heartbeat_secs() >= q.visibility_timeout_secs {
            return invalid(
                "queue.heartbeat_secs",
                "must be at least 1 and shorter than queue.visibility_timeout_secs".into(),
            );
        }
        if q.max_objects_in_flight == 0 {
            return invalid("queue.max_objects_in_flight", "must be at least 1".into());
        }
        let l = &self.load;
        if let Err(e) = validate_name(&l.db_schema) {
            return invalid(
                "load.db_schema",
                format!(
                    "{:?} {}: write a lower-case SQL name such as \"events\"",
                    l.db_schema, e.rule
                ),
            );
        }
        if self.aws.attempt_timeout_secs == 0 {
            return invalid("aws.attempt_timeout_secs", "must be at least 1".into());
        }
        if l.statement_timeout_secs == 0 {
            return invalid("load.statement_timeout_secs", "must be at least 1".into());
        }
        if l.files_in_flight == 0 {
            return invalid("load.files_in_flight", "must be at least 1".into());
        }
        if !(1..=13).contains(&l.redshift_files_per_batch) {
            return invalid(
                "load.redshift_files_per_batch",
                format!(
                    "{} is not 1 to 13 (a batch is one BatchExecuteStatement of at most 40 statements: 14, plus 2 per file)",
                    l.redshift_files_per_batch
                ),
            );
        }
        if l.redshift_concurrency == 0 {
            return invalid("load.redshift_concurrency", "must be at least 1".into());
        }
        if l.batch_window_secs > 300 {
            return invalid(
                "load.batch_window_secs",
                format!(
                    "{} s is longer than 300 s: a message waits that long before its files load",
                    l.batch_window_secs
                ),
            );
        }
        if l.max_rejects_per_file > 100_000 {
            return invalid(
                "load.max_rejects_per_file",
                format!(
                    "{} is over 100000 (Redshift's MAXERROR maximum, and what one file's rejects may hold in memory)",
                    l.max_rejects_per_file
                ),
            );
        }
        let m = &self.metrics;
        if let Some(addr) = &m.addr {
            if let Err(e) = addr.parse::<std::net::SocketAddr>() {
                return invalid(
                    "metrics.addr",
                    format!("{addr:?}: {e}; write IP:PORT, e.g. \"0.0.0.0:9100\""),
                );
            }
        }
        if m.health_check_secs == 0 {
            return invalid("metrics.health_check_secs", "must be at least 1".into());
        }
        if m.emf_interval_secs == 0 {
            return invalid("metrics.emf_interval_secs", "must be at least 1".into());
        }
        if m.namespace.is_empty()
            || m.namespace.len() > 255
            || m.namespace.starts_with(':')
            || !m
                .namespace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_/#:".contains(&b))
        {
            return invalid(
                "metrics.namespace",
                format!(
                    "{:?} is not a CloudWatch namespace (1-255 characters of A-Z a-z 0-9 . - _ / # :, not starting with :), e.g. \"logrouter\"",
                    m.namespace
                ),
            );
        }
        let la = &self.lambda;
        if la.fallback_timeout_secs == 0 || la.fallback_timeout_secs > 900 {
            return invalid(
                "lambda.fallback_timeout_secs",
                "must be 1-900 (Lambda's longest timeout is 15 minutes)".into(),
            );
        }
        if la.deadline_margin_secs >= la.fallback_timeout_secs {
            return invalid(
                "lambda.deadline_margin_secs",
                format!(
                    "{} s leaves no time to work within lambda.fallback_timeout_secs ({} s)",
                    la.deadline_margin_secs, la.fallback_timeout_secs
                ),
            );
        }
        if la.batch_gather_ms > 60_000 {
            return invalid(
                "lambda.batch_gather_ms",
                "must be at most 60000: the files of one invocation arrive together".into(),
            );
        }
        Ok(())
    }

    pub fn type_pointer(&self) -> JsonPointer {
        JsonPointer::parse(&self.route.type_field).expect("validated at start-up")
    }

    /// The compression level in force for the chosen output compression.
    pub fn compression_level(&self) -> i32 {
        self.route
            .compression_level
            .unwrap_or(match self.route.output_compression {
                OutputCompression::Gzip => self.gzip_encoder().levels().1,
                OutputCompression::Zstd => 1,
            })
    }

    /// The gzip encoder in force: the one asked for, else ISA-L where this
    /// build has it.
    pub fn gzip_encoder(&self) -> GzipEncoder {
        self.route
            .gzip_encoder
            .unwrap_or(if GzipEncoder::Isal.is_built() {
                GzipEncoder::Isal
            } else {
                GzipEncoder::Libdeflate
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml).unwrap();
        let c = Config::load(Some(&path))?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn example_config_is_valid_and_documents_the_defaults() {
        let example = include_str!("../../logrouter.example.toml");
        let c = load_str(example).unwrap();
        let d = Config::default();
        assert_eq!(c.route.type_field, d.route.type_field);
        assert_eq!(c.route.max_line_bytes, d.route.max_line_bytes);
        assert_eq!(c.route.part_size_bytes, d.route.part_size_bytes);
        assert_eq!(
            c.queue.visibility_timeout_secs,
            d.queue.visibility_timeout_secs
        );
        assert_eq!(c.aws.attempt_timeout_secs, d.aws.attempt_timeout_secs);
        let zero = format!("{example}\n")
            .replace("attempt_timeout_secs = 300", "attempt_timeout_secs = 0");
        let e = load_str(&zero).unwrap_err().to_string();
        assert!(e.contains("aws.attempt_timeout_secs"), "{e}");
    }

    /// The deployment template's queue visibility timeout is the services'
    /// default (their heartbeat renews it every third of it), and the
    /// loader's notifications cover the manifests the router writes.
    #[test]
    fn deploy_template_matches_the_defaults() {
        let template = include_str!("../../deploy/logrouter.yaml");
        let block = template
            .split("VisibilityTimeoutSeconds:")
            .nth(1)
            .expect("the template has VisibilityTimeoutSeconds");
        let default: u32 = block
            .lines()
            .find_map(|l| l.trim().strip_prefix("Default: "))
            .expect("with a default")
            .parse()
            .unwrap();
        assert_eq!(default, QueueConfig::default().visibility_timeout_secs);
        assert!(template.contains(&format!(
            "${{RoutedPrefix}}{}/",
            crate::layout::MANIFESTS_DIR
        )));
    }

    #[test]
    fn issue12_formats_and_payload_load() {
        let c = load_str("[route]\nformat = \"s3_access\"\ntype_field = \"/event_type\"\ntype_pattern = \"^(\\\\w+)$\"\n[route.payload]\nfield = \"/request_uri\"\nquery_param = \"data\"\ndelimiter = \"|\"\nfields = [\"event_timestamp\", \"event_type\"]\n").unwrap();
        assert_eq!(c.route.format, LineFormat::S3Access);
        assert_eq!(c.route.type_pattern.as_deref(), Some("^(\\w+)$"));
        let p = c.route.payload.unwrap();
        assert_eq!(p.fields, ["event_timestamp", "event_type"]);
        assert_eq!(p.key, "access_log");
        assert_eq!(Config::default().route.format, LineFormat::Json);
        for (name, f) in LineFormat::ALL {
            assert_eq!(LineFormat::parse(name), Ok(f));
            assert_eq!(f.as_str(), name);
        }
        assert!(LineFormat::parse("w3c").unwrap_err().contains("cloudfront"));
        let c = load_str("[route]\nformat = \"alb\"\ntype = \"Load Balancer\"\n").unwrap();
        assert_eq!(c.route.fixed_type.as_deref(), Some("Load Balancer"));
    }

    /// The gzip encoder: ISA-L where built (level 1), else libdeflate
    /// (level 1); each encoder's levels are checked, and ISA-L in a build
    /// without it names the feature.
    #[test]
    fn gzip_encoder_and_its_levels() {
        let c = Config::default();
        let built = GzipEncoder::Isal.is_built();
        assert_eq!(built, cfg!(feature = "isal"));
        let (encoder, level) = if built {
            (GzipEncoder::Isal, 1)
        } else {
            (GzipEncoder::Libdeflate, 1)
        };
        assert_eq!((c.gzip_encoder(), c.compression_level()), (encoder, level));
        let c =
            load_str("[route]\ngzip_encoder = \"libdeflate\"\ncompression_level = 12\n").unwrap();
        assert_eq!(
            (c.gzip_encoder(), c.compression_level()),
            (GzipEncoder::Libdeflate, 12)
        );
        let c = load_str("[route]\ngzip_encoder = \"libdeflate\"\n").unwrap();
        assert_eq!(c.compression_level(), 1);
        let isal = load_str("[route]\ngzip_encoder = \"isal\"\ncompression_level = 3\n");
        let too_high = load_str("[route]\ngzip_encoder = \"isal\"\ncompression_level = 4\n");
        if built {
            assert_eq!(isal.unwrap().compression_level(), 3);
            let e = too_high.unwrap_err().to_string();
            assert!(
                e.contains("route.compression_level") && e.contains("isal: 0-3"),
                "{e}"
            );
        } else {
            let e = isal.unwrap_err().to_string();
            assert!(
                e.contains("route.gzip_encoder") && e.contains("--features isal"),
                "{e}"
            );
        }
        let e = load_str("[route]\ngzip_encoder = \"zlib\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("zlib"), "{e}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = load_str("[route]\ntype_feild = \"/type\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("type_feild"), "{e}");
        let e = load_str("[routes]\n").unwrap_err().to_string();
        assert!(e.contains("routes"), "{e}");
    }

    #[test]
    fn bad_values_name_key_and_fix() {
        for (toml, key) in [
            ("[route]\ntype_field = \"type\"\n", "route.type_field"),
            (
                "[route]\nallowed_types = [\"Video Play\"]\n",
                "route.allowed_types",
            ),
            (
                "[route]\ncompression_level = 13\n",
                "route.compression_level",
            ),
            ("[queue]\nwait_time_secs = 30\n", "queue.wait_time_secs"),
            (
                "[route]\nkey_time_patterns = [\"%Y-%m\"]\n",
                "route.key_time_patterns",
            ),
            (
                "[route]\nkey_time_patterns = [\"%Y%m%d%Q\"]\n",
                "route.key_time_patterns",
            ),
            (
                "[queue]\nvisibility_timeout_secs = 10\nheartbeat_secs = 10\n",
                "queue.heartbeat_secs",
            ),
            ("[metrics]\naddr = \"9100\"\n", "metrics.addr"),
            ("[log]\nformat = \"yaml\"\n", "format"),
            ("[route]\nformat = \"w3c\"\n", "format"),
            ("[route]\ntype_pattern = \"(\"\n", "route.type_pattern"),
            ("[route]\ntype = \"42\"\n", "route.type"),
            (
                "[route]\ntype = \"a\"\ntype_pattern = \"a\"\n",
                "route.type",
            ),
            (
                "[route.payload]\nfield = \"/request_uri\"\nquery_param = \"data\"\ndelimiter = \"|\"\nfields = [\"a\"]\n",
                "route.format",
            ),
            (
                "[route]\nformat = \"s3_access\"\n[route.payload]\nfield = \"/a/b\"\nquery_param = \"data\"\ndelimiter = \"|\"\nfields = [\"a\"]\n",
                "route.payload.field",
            ),
            (
                "[route]\nformat = \"s3_access\"\n[route.payload]\nfield = \"/request_uri\"\nquery_param = \"data\"\ndelimiter = \"\"\nfields = [\"a\"]\n",
                "route.payload.delimiter",
            ),
            (
                "[route]\nformat = \"s3_access\"\n[route.payload]\nfield = \"/request_uri\"\nquery_param = \"data\"\ndelimiter = \"|\"\nfields = [\"a\", \"Event Type\"]\n",
                "route.payload.fields",
            ),
            (
                "[route]\nformat = \"s3_access\"\n[route.payload]\nfield = \"/request_uri\"\nquery_param = \"data\"\ndelimiter = \"|\"\nfields = [\"field_3\", \"b\"]\n",
                "route.payload.fields",
            ),
            (
                "[route]\nformat = \"s3_access\"\n[route.payload]\nfield = \"/request_uri\"\nquery_param = \"data\"\ndelimiter = \"|\"\nfields = [\"a\"]\nkey = \"field_4\"\n",
                "route.payload.key",
            ),
            (
                "[route]\nformat = \"s3_access\"\n[route.payload]\nfield = \"/request_uri\"\nquery_param = \"data\"\ndelimiter = \"|\"\nfields = [\"a\", \"access_log\"]\n",
                "route.payload.fields",
            ),
        ] {
            let e = load_str(toml).unwrap_err().to_string();
            assert!(e.contains(key), "{toml} -> {e}");
        }
        let e = load_str("[route]\nmax_line_bytes = \"big\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_line_bytes"), "{e}");
    }
}
