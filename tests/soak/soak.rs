//! Issue #13's fault soak: the whole pipeline under wire faults and crashes.
//!
//! Source objects (JSON lines of several types, some bad lines, a unique
//! `id` per line) land in moto S3, whose bucket notifications feed the
//! router's queue. `router run` and `loader run` run as real processes whose
//! AWS endpoint and warehouse (PostgreSQL) are the fault proxy
//! (`tests/fault_proxy.py`: resets mid-request and mid-response, delays,
//! outages that refuse connections). While the proxy injects faults, both
//! services (two processes of each) are SIGKILLed and restarted at random
//! moments (a service that exits on its own, say a loader that cannot reach
//! its warehouse at start, is restarted like a supervisor would). Then faults stop, both drain, and
//! the end state is checked against the input:
//! - exactly one manifest per source;
//! - every line routed exactly once: per type, the multiset of lines in the
//!   parts equals the input's; the quarantine records' lines equal the bad
//!   input lines;
//! - no routed or quarantine file outside a manifest;
//! - per table, the rows' ids equal the input's (so rows = the manifests'
//!   lines, none lost, none twice), no rejects, one ledger row per part;
//! - both queues and both dead-letter queues empty;
//! - no service panicked.
//!
//! The router process is this test binary started again with
//! `SOAK_ROUTER_ARGS`, which its `main` (main.rs) hands to the router's
//! CLI (`router::cli`): exactly the router code this test was built with,
//! whichever cargo command built it (a `target/debug/router` next to the
//! loader may be stale: `cargo test -p loader` does not build it, and a
//! test cannot run cargo while cargo holds the build lock). The loader is
//! `CARGO_BIN_EXE_loader`.
//!
//! Scale and replay through the environment: `SOAK_SEED` (else one from
//! the clock, printed first), `SOAK_OBJECTS` (36), `SOAK_LINES` (lines per
//! object, 2500), `SOAK_SECONDS` (of chaos, 25), `SOAK_DRAIN_SECS` (bound on
//! the drain, 120), `SOAK_ROUTERS` and `SOAK_LOADERS` (processes of each
//! at once, 2), `SOAK_WAREHOUSE` (`postgres`, the default, or `redshift`:
//! through the Data API test server, `TEST_REDSHIFT_DATA_URL`, also behind
//! the proxy), `SOAK_PG_RATES` (the proxy's fault rates for PostgreSQL,
//! `reset_response=0.01,…`), `SOAK_LOG_DIR` (keep the services' logs there; on a
//! failure they are kept anyway). A seed replays the same input, the same
//! kill schedule and the same faults per connection; the interleaving of
//! connections is still the scheduler's. `bench/soak` runs this test at
//! scale.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::QueueAttributeName;
use logrouter::manifest::Manifest;

use crate::support::*;

/// splitmix64: the soak's one source of randomness, from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Uniform in `[a, b)` seconds.
    fn secs(&mut self, a: f64, b: f64) -> Duration {
        Duration::from_secs_f64(a + (b - a) * (self.next() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

/// The event types of the input: (type in the line, its table).
const TYPES: [(&str, &str); 4] = [
    ("play", "play"),
    ("Click", "click"),
    ("page.view", "page_view"),
    ("purchase", "purchase"),
];

/// One version of a source object: its key, its lines per table (with
/// their ids), its bad lines.
struct Source {
    key: String,
    body: Vec<u8>,
    good: Vec<(&'static str, u64, String)>,
    bad: Vec<String>,
}

/// Object `o`'s key: `logs/2015/01/DD/HH/app-O.log.gz`.
fn source_key(o: u64) -> String {
    format!(
        "logs/2015/01/{:02}/{:02}/app-{o}.log.gz",
        1 + o / 24 % 28,
        o % 24
    )
}

/// The start of the key of object `o`'s manifest (`<name>-<hash>.json`).
fn manifest_prefix(o: u64) -> String {
    format!(
        "routed/_manifests/dt=2015-01-{:02}/hour={:02}/app-{o}-",
        1 + o / 24 % 28,
        o % 24
    )
}

/// Version 1 of object `o`, or version 2 (the archive corrected): fewer
/// lines, other ids, and no `purchase` lines (that type's parts and rows
/// of version 1 must go).
fn source(o: u64, version: u64, lines: u64, rng: &mut Rng) -> Source {
    let key = source_key(o);
    let lines = if version == 1 {
        lines
    } else {
        lines * (30 + rng.below(60)) / 100
    };
    let (mut good, mut bad, mut text) = (Vec::new(), Vec::new(), String::new());
    for i in 0..lines {
        let id = o * 100_000 + (version - 1) * 50_000 + i;
        let line = match rng.below(40) {
            0 => format!("not json {id}"),
            1 => format!("{{\"id\":{id},\"no_type\":true}}"),
            2 => format!("[{id}]"),
            n => {
                let (ty, table) = TYPES[(n % if version == 1 { 4 } else { 3 }) as usize];
                let line = if ty == "play" {
                    format!(
                        "{{\"event_type\":\"play\",\"id\":{id},\"ts\":\"2015-01-20T13:{:02}:00Z\",\"user\":{{\"name\":\"u{}\",\"tags\":[\"a\"]}}}}",
                        i % 60,
                        rng.below(1000)
                    )
                } else {
                    // Random hex, so that parts do not compress to nothing.
                    let pad: String = (0..rng.below(40))
                        .map(|_| format!("{:016x}", rng.next()))
                        .collect();
                    format!("{{\"event_type\":\"{ty}\",\"id\":{id},\"pad\":\"{pad}\"}}")
                };
                good.push((table, id, line.clone()));
                text.push_str(&line);
                text.push('\n');
                continue;
            }
        };
        bad.push(line.clone());
        text.push_str(&line);
        text.push('\n');
    }
    Source {
        key,
        body: gzip(text.as_bytes()),
        good,
        bad,
    }
}

/// The fault proxy (`tests/fault_proxy.py`), killed when dropped.
struct Proxy {
    child: Child,
    control: u16,
    ports: BTreeMap<String, u16>,
}

impl Proxy {
    fn start(seed: u64, upstreams: &[(&str, &str)]) -> Self {
        let python = std::env::var("TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fault_proxy.py");
        let mut cmd = Command::new(python);
        cmd.arg(script).args(["--seed", &seed.to_string()]);
        // The soak's fault rates (per chunk forwarded; outages per upstream),
        // or SOAK_PROXY_ARGS (the proxy's own flags, space-separated).
        match std::env::var("SOAK_PROXY_ARGS") {
            Ok(args) => cmd.args(args.split_whitespace()),
            Err(_) => cmd.args([
                "--reset-response",
                "0.04",
                "--reset-request",
                "0.02",
                "--delay",
                "0.05",
                "--max-delay",
                "1.0",
                "--outage-every",
                "6",
                "--outage-secs",
                "3",
            ]),
        };
        for (name, addr) in upstreams {
            cmd.args(["--upstream", &format!("{name}={addr}")]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("start tests/fault_proxy.py");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&first)
            .unwrap_or_else(|e| panic!("fault proxy said {first:?}: {e}"));
        Proxy {
            child,
            control: v["control"].as_u64().unwrap() as u16,
            ports: serde_json::from_value(v["ports"].clone()).unwrap(),
        }
    }

    fn call(&self, method: &str, path: &str) -> serde_json::Value {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.control)).unwrap();
        write!(s, "{method} {path} HTTP/1.0\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        serde_json::from_str(body).unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A service the soak keeps running: restarted whenever it exits, killed
/// (SIGKILL) on the schedule. Its stderr is appended to one log.
struct Supervised {
    /// `router` or `loader`.
    kind: &'static str,
    name: String,
    make: std::rc::Rc<dyn Fn() -> Command>,
    log: PathBuf,
    child: Option<Child>,
    kills: u32,
    /// Exits on its own, by exit code.
    exits: BTreeMap<i32, u32>,
    starts: u32,
    /// When the next SIGKILL is due (from the start of the chaos).
    next_kill: Duration,
    /// Not restarted before this (after a kill, or an exit of its own).
    down_until: Option<Instant>,
}

impl Supervised {
    fn new(
        kind: &'static str,
        n: usize,
        logs: &Path,
        make: std::rc::Rc<dyn Fn() -> Command>,
        rng: &mut Rng,
    ) -> Self {
        Supervised {
            kind,
            name: format!("{kind}-{n}"),
            make,
            log: logs.join(format!("{kind}-{n}.log")),
            child: None,
            kills: 0,
            exits: BTreeMap::new(),
            starts: 0,
            next_kill: rng.secs(1.0, 5.0),
            down_until: None,
        }
    }

    fn start(&mut self) {
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.starts += 1;
        writeln!(log, "==== soak: {} start {}", self.name, self.starts).unwrap();
        let child = (self.make)()
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {}: {e}", self.name));
        self.child = Some(child);
    }

    /// Restarts it if it is down (half a second after an exit of its own,
    /// as a supervisor would).
    fn keep_running(&mut self) {
        if let Some(c) = &mut self.child {
            if let Some(status) = c.try_wait().unwrap() {
                *self.exits.entry(status.code().unwrap_or(-1)).or_default() += 1;
                self.child = None;
                self.down_until = Some(Instant::now() + Duration::from_millis(500));
            }
        }
        if self.down_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        self.down_until = None;
        if self.child.is_none() {
            self.start();
        }
    }

    /// One tick of the chaos, `t` into it: killed when due, else kept
    /// running.
    fn chaos(&mut self, t: Duration, rng: &mut Rng) {
        if self.down_until.is_none() && t >= self.next_kill {
            self.kill();
            self.down_until = Some(Instant::now() + rng.secs(0.0, 1.0));
            self.next_kill = t + rng.secs(1.0, 6.0);
        } else {
            self.keep_running();
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            if c.try_wait().unwrap().is_none() {
                self.kills += 1;
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait: the graceful stop at the end.
    fn stop(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s.code();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A queue with a dead-letter queue of its own: (queue URL, DLQ URL).
async fn queue_with_dlq(
    sqs: &aws_sdk_sqs::Client,
    prefix: &str,
    visibility: u32,
) -> (String, String) {
    let dlq = create_queue(sqs, &format!("{prefix}-dlq")).await;
    let policy = serde_json::json!({
        "deadLetterTargetArn": queue_arn(sqs, &dlq).await,
        // A message received this often is stuck: the check fails on it.
        "maxReceiveCount": 50,
    });
    let url = sqs
        .create_queue()
        .queue_name(unique(prefix))
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility.to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (url, dlq)
}

/// `host:port` of a `postgres://user@host:port/db` URL, and the URL with
/// another `host:port`.
fn pg_addr(url: &str) -> (String, impl Fn(&str) -> String + '_) {
    let rest = url.split_once("://").unwrap().1;
    let at = rest.rfind('@').map_or(0, |i| i + 1);
    let end = rest[at..].find('/').map_or(rest.len(), |i| at + i);
    let mut addr = rest[at..end].to_owned();
    if !addr.contains(':') {
        addr.push_str(":5432");
    }
    let scheme_len = url.len() - rest.len();
    (addr, move |to: &str| {
        format!("{}{to}{}", &url[..scheme_len + at], &rest[end..])
    })
}

/// Lost and duplicated entries of `got` against `want` (multisets).
fn diff<K: Ord>(want: &BTreeMap<K, u64>, got: &BTreeMap<K, u64>) -> (u64, u64) {
    let (mut lost, mut dup) = (0, 0);
    for (k, w) in want {
        let g = got.get(k).copied().unwrap_or(0);
        lost += w.saturating_sub(g);
        dup += g.saturating_sub(*w);
    }
    for (k, g) in got {
        if !want.contains_key(k) {
            dup += g;
        }
    }
    (lost, dup)
}

/// Until every queue is empty (visible + in flight) on three checks in a
/// row with every service up, or `bound` passes; whether it got there.
async fn drain(
    services: &mut [Supervised],
    sqs: &aws_sdk_sqs::Client,
    queues: &[&String],
    bound: Duration,
) -> bool {
    let start = Instant::now();
    let mut empty_checks = 0;
    loop {
        for svc in services.iter_mut() {
            svc.keep_running();
        }
        let mut pending = 0;
        for q in queues {
            pending += messages_on_queue(sqs, q).await;
        }
        // Every service up (not between an exit and its restart), so each
        // stops gracefully afterwards.
        let up = services.iter().all(|s| s.child.is_some());
        empty_checks = if pending == 0 && up {
            empty_checks + 1
        } else {
            0
        };
        if empty_checks >= 3 {
            return true;
        }
        if start.elapsed() > bound {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Moves every message of `dlq` back to `queue` (what `aws sqs
/// start-message-move-task` does); how many.
async fn redrive(sqs: &aws_sdk_sqs::Client, dlq: &str, queue: &str) -> u64 {
    let mut moved = 0;
    loop {
        let out = sqs
            .receive_message()
            .queue_url(dlq)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return moved;
        }
        for m in messages {
            sqs.send_message()
                .queue_url(queue)
                .message_body(m.body.unwrap_or_default())
                .send()
                .await
                .unwrap();
            sqs.delete_message()
                .queue_url(dlq)
                .receipt_handle(m.receipt_handle.unwrap_or_default())
                .send()
                .await
                .unwrap();
            moved += 1;
        }
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub async fn issue13_fault_soak_loses_and_duplicates_nothing() {
    let started = Instant::now();
    let seed: u64 = env_or(
        "SOAK_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64
            % 1_000_000_007,
    );
    let objects: u64 = env_or("SOAK_OBJECTS", 36);
    let lines: u64 = env_or("SOAK_LINES", 2500);
    let chaos = Duration::from_secs(env_or("SOAK_SECONDS", 25));
    let drain_bound = Duration::from_secs(env_or("SOAK_DRAIN_SECS", 120));
    let routers: usize = env_or("SOAK_ROUTERS", 2);
    let loaders: usize = env_or("SOAK_LOADERS", 2);
    eprintln!(
        "soak: seed {seed} (replay: SOAK_SEED={seed}), {objects} objects of {lines} lines, {} s of chaos, {routers} routers, {loaders} loaders, into {}",
        chaos.as_secs(),
        std::env::var("SOAK_WAREHOUSE").unwrap_or_else(|_| "postgres".into())
    );
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let logs = match std::env::var_os("SOAK_LOG_DIR") {
        Some(d) => PathBuf::from(d),
        None => dir.path().join("logs"),
    };
    std::fs::create_dir_all(&logs).unwrap();

    // The world: a bucket, two queues with dead-letter queues, notifications.
    let s3 = s3().await;
    let sqs = sqs().await;
    let bucket = unique("soak");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let visibility = 6;
    let (router_q, router_dlq) = queue_with_dlq(&sqs, "soak-router", visibility).await;
    let (loader_q, loader_dlq) = queue_with_dlq(&sqs, "soak-loader", visibility).await;
    notify_on_prefixes(
        &s3,
        &sqs,
        &bucket,
        &[(&router_q, "logs/"), (&loader_q, "routed/_manifests/")],
    )
    .await;
    let v1: Vec<Source> = (0..objects)
        .map(|o| source(o, 1, lines, &mut rng))
        .collect();
    // One object in two of the first half (put early enough to be routed
    // in time) is corrected, put again, once its first version was routed:
    // `rewrites[o]`.
    let mut rewrites: Vec<Option<Source>> = (0..objects)
        .map(|o| (o < objects / 2 && rng.below(2) == 0).then(|| source(o, 2, lines, &mut rng)))
        .collect();

    // The proxy between the services and moto / PostgreSQL.
    let moto_addr = moto().trim_start_matches("http://").to_owned();
    let db = database_url();
    let (pg_upstream, pg_via) = pg_addr(&db);
    // SOAK_WAREHOUSE=redshift: the loader loads through the Redshift Data
    // API test server (behind the proxy; it runs the statements on the same
    // PostgreSQL and reads COPY sources from moto directly).
    let redshift = match std::env::var("SOAK_WAREHOUSE").as_deref() {
        Ok("redshift") => true,
        Ok("postgres") | Err(_) => false,
        Ok(other) => panic!("SOAK_WAREHOUSE={other}: postgres or redshift"),
    };
    // PostgreSQL's own, lower rates: a load is a dozen round trips of
    // small messages, and at the HTTP rates hardly any would get through
    // during the chaos (kills would never catch one in flight).
    let mut upstreams = vec![
        ("moto", moto_addr.clone()),
        (
            "postgres",
            format!(
                "{pg_upstream},{}",
                std::env::var("SOAK_PG_RATES").unwrap_or_else(|_| {
                    "reset_response=0.01,reset_request=0.005,delay=0.02,outage_every=15".into()
                })
            ),
        ),
    ];
    if redshift {
        let rsd = redshift_data();
        upstreams.push((
            "redshift_data",
            rsd.trim_start_matches("http://").to_owned(),
        ));
    }
    let upstreams: Vec<(&str, &str)> = upstreams.iter().map(|(n, a)| (*n, a.as_str())).collect();
    let proxy = Proxy::start(seed, &upstreams);
    let aws_via = format!("http://127.0.0.1:{}", proxy.ports["moto"]);
    let warehouse = if redshift {
        "redshift://test-cluster/dev?db_user=loader&iam_role=arn:aws:iam::123456789012:role/logrouter-copy".to_owned()
    } else {
        pg_via(&format!("127.0.0.1:{}", proxy.ports["postgres"]))
    };
    let data_api_via = proxy
        .ports
        .get("redshift_data")
        .map(|p| format!("http://127.0.0.1:{p}"));
    let schema = unique_schema("soak");
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();

    let common = {
        let aws_via = aws_via.clone();
        move |cmd: &mut Command| {
            cmd.env("AWS_ENDPOINT_URL", &aws_via)
                .env("LOGROUTER_AWS__FORCE_PATH_STYLE", "true")
                .env("LOGROUTER_QUEUE__WAIT_TIME_SECS", "1")
                .env(
                    "LOGROUTER_QUEUE__VISIBILITY_TIMEOUT_SECS",
                    visibility.to_string(),
                )
                .env("LOGROUTER_QUEUE__HEARTBEAT_SECS", "2")
                // Retried at once: the soak's bound is in seconds, and
                // backoffs that double per receive would outlast it.
                .env("LOGROUTER_QUEUE__FAILURE_BACKOFF_SECS", "0")
                .env("LOGROUTER_QUEUE__SHUTDOWN_GRACE_SECS", "5")
                .env("LOGROUTER_METRICS__HEALTH_CHECK_SECS", "1")
                .env("RUST_LOG", "info");
        }
    };
    let router_args = serde_json::to_string(&[
        "run",
        "--queue-url",
        &router_q,
        "--out",
        &format!("s3://{bucket}/routed"),
    ])
    .unwrap();
    let router_cmd: std::rc::Rc<dyn Fn() -> Command> = std::rc::Rc::new({
        let common = common.clone();
        let spool = spool.clone();
        move || {
            let mut cmd = Command::new(std::env::current_exe().unwrap());
            cmd.env("SOAK_ROUTER_ARGS", &router_args)
                .env("LOGROUTER_ROUTE__SPOOL_DIR", &spool)
                // Several parts per type and source, some of them uploaded by
                // multipart upload: more requests for faults to cut.
                .env("LOGROUTER_ROUTE__PART_SIZE_BYTES", "8192")
                .env("LOGROUTER_ROUTE__MULTIPART_THRESHOLD_BYTES", "12288");
            common(&mut cmd);
            cmd
        }
    });
    let loader_cmd: std::rc::Rc<dyn Fn() -> Command> = std::rc::Rc::new({
        let (schema, warehouse, loader_q) = (schema.clone(), warehouse.clone(), loader_q.clone());
        let data_api_via = data_api_via.clone();
        move || {
            let mut cmd = loader();
            cmd.args(["run", "--queue-url", &loader_q, "--warehouse", &warehouse])
                .env("LOGROUTER_LOAD__DB_SCHEMA", &schema)
                .env("LOGROUTER_LOAD__BATCH_WINDOW_SECS", "1");
            if let Some(url) = &data_api_via {
                cmd.env("AWS_ENDPOINT_URL_REDSHIFT_DATA", url);
            }
            common(&mut cmd);
            cmd
        }
    });
    let mut services: Vec<Supervised> = Vec::new();
    for n in 1..=routers {
        services.push(Supervised::new(
            "router",
            n,
            &logs,
            router_cmd.clone(),
            &mut rng,
        ));
    }
    for n in 1..=loaders {
        services.push(Supervised::new(
            "loader",
            n,
            &logs,
            loader_cmd.clone(),
            &mut rng,
        ));
    }

    // Chaos: faults on; first versions arriving over the first 40 %;
    // corrections of the objects drawn for one, each once its first version
    // has had a manifest for longer than a visibility timeout (so no route
    // of the first version is still running: two versions routed at once
    // are a documented limit, ARCHITECTURE.md "Known limit"), until 90 %;
    // kills throughout.
    let put = |s: &Source| {
        s3.put_object()
            .bucket(&bucket)
            .key(&s.key)
            .body(ByteStream::from(s.body.clone()))
            .send()
    };
    proxy.call("POST", "/faults/on");
    for svc in &mut services {
        svc.start();
    }
    let chaos_start = Instant::now();
    let put_window = chaos.mul_f64(0.4);
    let mut next_put = 0usize;
    let mut routed_since: BTreeMap<usize, Instant> = BTreeMap::new();
    let mut rewritten: BTreeSet<usize> = BTreeSet::new();
    let mut last_look = Instant::now();
    while chaos_start.elapsed() < chaos {
        let t = chaos_start.elapsed();
        let due = ((t.as_secs_f64() / put_window.as_secs_f64()).min(1.0) * v1.len() as f64).ceil()
            as usize;
        while next_put < due.min(v1.len()) {
            put(&v1[next_put]).await.unwrap();
            next_put += 1;
        }
        if last_look.elapsed() > Duration::from_secs(1) && t < chaos.mul_f64(0.9) {
            last_look = Instant::now();
            let manifests: Vec<String> = list_keys(&s3, &bucket)
                .await
                .into_iter()
                .filter(|k| k.starts_with("routed/_manifests/"))
                .collect();
            for (o, v2) in rewrites.iter().enumerate() {
                if v2.is_none() || rewritten.contains(&o) || o >= next_put {
                    continue;
                }
                let prefix = manifest_prefix(o as u64);
                if !manifests.iter().any(|k| k.starts_with(&prefix)) {
                    continue;
                }
                let since = *routed_since.entry(o).or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(visibility as u64 + 2) {
                    put(v2.as_ref().unwrap()).await.unwrap();
                    rewritten.insert(o);
                }
            }
        }
        for svc in &mut services {
            svc.chaos(t, &mut rng);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for s in &v1[next_put..] {
        put(s).await.unwrap();
    }
    let drawn = rewrites.iter().filter(|r| r.is_some()).count();
    // What the archive holds in the end.
    let sources: Vec<Source> = v1
        .into_iter()
        .enumerate()
        .map(|(o, s)| match rewrites[o].take() {
            Some(v2) if rewritten.contains(&o) => v2,
            _ => s,
        })
        .collect();

    // Faults off: both drain (queues empty, three checks in a row). Then
    // what the faults pushed into a dead-letter queue (its receives spent
    // on resets, outages and kills: a budget of 50, retried at once) is
    // redriven, as README "Dead-letter queues: read, fix, redrive" says,
    // and both drain again: a message that dead-letters again is stuck.
    let faults = proxy.call("POST", "/faults/off");
    let drain_start = Instant::now();
    let mut drained = drain(&mut services, &sqs, &[&router_q, &loader_q], drain_bound).await;
    let mut dead_lettered = Vec::new();
    for (dlq, q) in [(&router_dlq, &router_q), (&loader_dlq, &loader_q)] {
        dead_lettered.push(redrive(&sqs, dlq, q).await);
    }
    if dead_lettered.iter().any(|n| *n > 0) {
        drained &= drain(&mut services, &sqs, &[&router_q, &loader_q], drain_bound).await;
    }
    let drain_took = drain_start.elapsed();
    let stops: Vec<(String, Option<i32>)> = services
        .iter_mut()
        .map(|svc| (svc.name.clone(), svc.stop()))
        .collect();

    // The end state.
    let mut problems: Vec<String> = Vec::new();
    if !drained {
        problems.push(format!(
            "not drained after {} s: router queue {}, loader queue {}",
            drain_bound.as_secs(),
            messages_on_queue(&sqs, &router_q).await,
            messages_on_queue(&sqs, &loader_q).await
        ));
    }
    for (what, code) in stops {
        if code != Some(0) {
            problems.push(format!(
                "the {what} stopped on SIGTERM with {code:?}, not 0"
            ));
        }
    }
    for (name, q) in [
        ("router queue", &router_q),
        ("router dead-letter queue", &router_dlq),
        ("loader queue", &loader_q),
        ("loader dead-letter queue", &loader_dlq),
    ] {
        let n = messages_on_queue(&sqs, q).await;
        if n != 0 {
            problems.push(format!("{n} messages left on the {name}"));
        }
    }

    let keys = list_keys(&s3, &bucket).await;
    let mut manifests: BTreeMap<String, Vec<Manifest>> = BTreeMap::new();
    for key in keys.iter().filter(|k| k.starts_with("routed/_manifests/")) {
        if !key.ends_with(".json") || key.rsplit('/').next().unwrap().starts_with('.') {
            // A re-route's record of its withdrawn manifest: gone once the
            // re-route and its clean-up are done.
            problems.push(format!("{key}: left under _manifests/"));
            continue;
        }
        let m: Manifest = serde_json::from_slice(&get(&s3, &bucket, key).await)
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        manifests
            .entry(m.source.object.key.clone().unwrap_or_default())
            .or_default()
            .push(m);
    }
    let mut named: BTreeSet<String> = BTreeSet::new();
    let mut want_lines: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut want_bad: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut want_ids: BTreeMap<(String, u64), u64> = BTreeMap::new();
    for s in &sources {
        match manifests.get(&s.key).map(Vec::as_slice) {
            Some([m]) => {
                let etag = s3
                    .head_object()
                    .bucket(&bucket)
                    .key(&s.key)
                    .send()
                    .await
                    .unwrap()
                    .e_tag
                    .map(|e| e.trim_matches('"').to_owned());
                if m.source.object.etag != etag {
                    problems.push(format!(
                        "{}: its manifest is of ETag {:?}, the object's is {etag:?}",
                        s.key, m.source.object.etag
                    ));
                }
            }
            n => problems.push(format!(
                "{}: {} manifests, not 1",
                s.key,
                n.map_or(0, <[Manifest]>::len)
            )),
        }
        for (table, id, line) in &s.good {
            *want_lines
                .entry((table.to_string(), line.clone()))
                .or_default() += 1;
            *want_ids.entry((table.to_string(), *id)).or_default() += 1;
        }
        for line in &s.bad {
            *want_bad
                .entry((format!("s3://{bucket}/{}", s.key), line.clone()))
                .or_default() += 1;
        }
    }
    if manifests.len() != sources.len() {
        problems.push(format!(
            "{} sources have manifests, {} were put",
            manifests.len(),
            sources.len()
        ));
    }
    let (mut got_lines, mut got_bad) = (BTreeMap::new(), BTreeMap::new());
    let mut parts = 0u64;
    let mut manifest_rows: BTreeMap<String, i64> = BTreeMap::new();
    for m in manifests.values().flatten() {
        if m.damage.is_some() {
            problems.push(format!(
                "{:?}: the manifest records damage: {:?}",
                m.source.object.key, m.damage
            ));
        }
        for (table, out) in &m.types {
            *manifest_rows.entry(table.clone()).or_default() += out.lines as i64;
            for p in &out.parts {
                parts += 1;
                let key = format!("routed/{}", p.key);
                named.insert(key.clone());
                let text = gunzip(&get(&s3, &bucket, &key).await);
                let mut n = 0;
                for line in String::from_utf8(text).unwrap().lines() {
                    n += 1;
                    *got_lines
                        .entry((table.clone(), line.to_owned()))
                        .or_default() += 1;
                }
                if n != p.lines {
                    problems.push(format!("{key}: {n} lines, its manifest says {}", p.lines));
                }
            }
        }
        for p in &m.quarantine.parts {
            let key = format!("routed/{}", p.key);
            named.insert(key.clone());
            let text = gunzip(&get(&s3, &bucket, &key).await);
            for line in String::from_utf8(text).unwrap().lines() {
                let r: serde_json::Value = serde_json::from_str(line).unwrap();
                let entry = (
                    r["source"].as_str().unwrap_or_default().to_owned(),
                    r["text"].as_str().unwrap_or_default().to_owned(),
                );
                *got_bad.entry(entry).or_default() += 1;
            }
        }
    }
    for key in &keys {
        // The loader's jsonpaths files for Redshift COPY are its one write
        // under the routed root (ARCHITECTURE.md, "The router never talks
        // to the warehouse"), not parts.
        if !key.starts_with("routed/_manifests/")
            && !key.starts_with("routed/_jsonpaths/")
            && key.starts_with("routed/")
            && !named.contains(key)
        {
            problems.push(format!("{key}: a routed file no manifest names"));
        }
    }
    let (lost_lines, dup_lines) = diff(&want_lines, &got_lines);
    let (lost_bad, dup_bad) = diff(&want_bad, &got_bad);

    // The warehouse, read directly (not through the proxy).
    let pgc = pg().await;
    let mut got_ids: BTreeMap<(String, u64), u64> = BTreeMap::new();
    let mut table_rows: BTreeMap<String, i64> = BTreeMap::new();
    for (_, table) in TYPES {
        let id = if table == "play" {
            "id"
        } else {
            "(event->>'id')::bigint"
        };
        let rows = pgc
            .query(
                &format!("SELECT {id}::bigint FROM \"{schema}\".\"{table}\""),
                &[],
            )
            .await;
        let rows = match rows {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("table {table}: {e}"));
                continue;
            }
        };
        table_rows.insert(table.to_owned(), rows.len() as i64);
        for r in rows {
            let id: i64 = r.get(0);
            *got_ids.entry((table.to_owned(), id as u64)).or_default() += 1;
        }
    }
    if table_rows != manifest_rows {
        problems.push(format!(
            "rows per table {table_rows:?} != the manifests' lines {manifest_rows:?}"
        ));
    }
    let (lost_rows, dup_rows) = diff(&want_ids, &got_ids);
    let one = |sql: String| {
        let pgc = &pgc;
        async move { pgc.query_one(&sql, &[]).await.map(|r| r.get::<_, i64>(0)) }
    };
    let ledger = one(format!(
        "SELECT count(*) FROM \"{schema}\"._logrouter_ledger"
    ))
    .await
    .unwrap_or(-1);
    let ledger_files = one(format!(
        "SELECT count(DISTINCT file) FROM \"{schema}\"._logrouter_ledger"
    ))
    .await
    .unwrap_or(-1);
    let rejects = one(format!(
        "SELECT count(*) FROM \"{schema}\"._logrouter_rejects"
    ))
    .await
    .unwrap_or(-1);
    if ledger != parts as i64 || ledger_files != parts as i64 {
        problems.push(format!(
            "the ledger has {ledger} rows of {ledger_files} files for {parts} parts"
        ));
    }
    if rejects != 0 {
        problems.push(format!("{rejects} rejects, none expected"));
    }
    for svc in &services {
        let text = std::fs::read_to_string(&svc.log).unwrap_or_default();
        let panics = text.matches("panicked").count();
        if panics > 0 {
            problems.push(format!(
                "the {} panicked {panics} times (see its log)",
                svc.name
            ));
        }
    }

    let n = |k: &str| faults["total"][k].as_f64().unwrap_or(0.0);
    let good: u64 = sources.iter().map(|s| s.good.len() as u64).sum();
    let bad: u64 = sources.iter().map(|s| s.bad.len() as u64).sum();
    let lost = lost_lines + lost_bad + lost_rows;
    let duplicated = dup_lines + dup_bad + dup_rows;
    println!("soak figures (seed {seed}):");
    println!(
        "  objects            {objects} ({} of them corrected, put again, during the chaos; {} drawn, {} seen routed in time)",
        rewritten.len(),
        drawn,
        routed_since.len()
    );
    println!(
        "  lines              {} ({good} routable, {bad} bad)",
        good + bad
    );
    println!("  parts              {parts}");
    for kind in ["router", "loader"] {
        let of_kind = || services.iter().filter(|s| s.kind == kind);
        let mut exits: BTreeMap<i32, u32> = BTreeMap::new();
        for (code, n) in of_kind().flat_map(|s| s.exits.iter()) {
            *exits.entry(*code).or_default() += n;
        }
        println!(
            "  {kind} kills       {} ({} processes at once; exits on their own, by code: {exits:?})",
            of_kind().map(|s| s.kills).sum::<u32>(),
            of_kind().count(),
        );
    }
    println!(
        "  dead-lettered      {} router, {} loader messages (receives spent by the faults; redriven, then drained)",
        dead_lettered[0], dead_lettered[1]
    );
    println!(
        "  faults injected    {} connections through the proxy: reset_response {}, reset_request {}, delay {}, outage {} ({:.1} s), cut_by_outage {}",
        n("connections"),
        n("reset_response"),
        n("reset_request"),
        n("delay"),
        n("outage"),
        n("outage_secs"),
        n("cut_by_outage")
    );
    println!("  lost               {lost} (lines {lost_lines}, quarantined {lost_bad}, rows {lost_rows})");
    println!("  duplicated         {duplicated} (lines {dup_lines}, quarantined {dup_bad}, rows {dup_rows})");
    println!(
        "  wall               {:.0} s (chaos {} s, drain {:.1} s)",
        started.elapsed().as_secs_f64(),
        chaos.as_secs(),
        drain_took.as_secs_f64()
    );
    if !problems.is_empty() || lost != 0 || duplicated != 0 {
        let kept = dir.keep();
        for svc in &services {
            eprintln!("---- {} log, last lines ({}):", svc.name, svc.log.display());
            eprintln!("{}", tail(&svc.log, 40));
        }
        panic!(
            "soak seed {seed} failed (replay: SOAK_SEED={seed}; logs in {}):\n  {}",
            if std::env::var_os("SOAK_LOG_DIR").is_some() {
                logs.display().to_string()
            } else {
                kept.join("logs").display().to_string()
            },
            problems.join("\n  ")
        );
    }
}
