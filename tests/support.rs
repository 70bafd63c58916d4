//! Test support shared by both integration test binaries (router and
//! loader): the moto endpoint and AWS clients, the PostgreSQL server, unique
//! names, reading outputs.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use logrouter::config::Config;

/// The moto server started by `scripts/test`. A test that needs it fails,
/// never skips, when it is missing.
pub fn moto() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let url = std::env::var("TEST_MOTO_URL").unwrap_or_else(|_| {
            panic!("TEST_MOTO_URL is not set: run the tests with scripts/test, which installs and starts moto server")
        });
        // The library builds its clients the standard AWS way, so the
        // endpoint and credentials go through the environment, once, before
        // any client exists.
        std::env::set_var("AWS_ENDPOINT_URL", &url);
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        url
    })
}

pub async fn s3() -> aws_sdk_s3::Client {
    moto();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    )
}

pub async fn sqs() -> aws_sdk_sqs::Client {
    moto();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    aws_sdk_sqs::Client::new(&sdk)
}

/// A name no other test (or earlier run against the same moto) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_micros()
    )
}

/// Configuration for tests: path-style S3, short long polls.
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.aws.force_path_style = true;
    c.queue.wait_time_secs = 1;
    c.queue.visibility_timeout_secs = 30;
    c.queue.shutdown_grace_secs = 5;
    c.validate().unwrap();
    c
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Every file under `root`, relative, sorted.
pub fn files_under(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out.sort();
    out
}

pub async fn list_keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut pages = s3.list_objects_v2().bucket(bucket).into_paginator().send();
    while let Some(page) = pages.next().await {
        for o in page.unwrap().contents() {
            keys.push(o.key().unwrap().to_owned());
        }
    }
    keys.sort();
    keys
}

pub async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let r = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    r.body.collect().await.unwrap().to_vec()
}

/// Visible + in-flight messages on a queue.
pub async fn messages_on_queue(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let a = attrs.attributes().unwrap();
    let n = |k: A| a.get(&k).map_or(0, |v| v.parse::<u64>().unwrap());
    n(A::ApproximateNumberOfMessages) + n(A::ApproximateNumberOfMessagesNotVisible)
}

/// A fresh queue named `<prefix>-…`; returns its URL.
pub async fn create_queue(sqs: &aws_sdk_sqs::Client, prefix: &str) -> String {
    sqs.create_queue()
        .queue_name(unique(prefix))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

/// The PostgreSQL server `scripts/test` started (or `DATABASE_URL`). A test
/// that needs it fails, never skips, when it is missing.
#[allow(dead_code)]
pub fn database_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!("TEST_DATABASE_URL is not set: run the tests with scripts/test, which starts a throwaway PostgreSQL cluster (or set DATABASE_URL)")
    })
}

/// A database schema name of our own (lower case, `_`, no dashes).
#[allow(dead_code)]
pub fn unique_schema(prefix: &str) -> String {
    unique(prefix).replace('-', "_")
}

/// The ARN of a queue (for bucket notification configurations).
#[allow(dead_code)]
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone()
}

/// The Redshift Data API test server `scripts/test` started. A test that
/// needs it fails, never skips, when it is missing.
#[allow(dead_code)]
pub fn redshift_data() -> String {
    std::env::var("TEST_REDSHIFT_DATA_URL").unwrap_or_else(|_| {
        panic!("TEST_REDSHIFT_DATA_URL is not set: run the tests with scripts/test, which starts the Redshift Data API test server")
    })
}

/// A localhost port nobody listens on right now.
#[allow(dead_code)]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on `127.0.0.1:port`: (status, body), or `None` when nothing
/// answers. HTTP/1.0, so the server closes the connection after the body.
#[allow(dead_code)]
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// The value of one series (`name` or `name{label="v"}`) in a Prometheus
/// text exposition.
#[allow(dead_code)]
pub fn series(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Polls `check` every 200 ms until it returns something or `secs` pass.
#[allow(dead_code)]
pub fn wait_for<T>(secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A child process killed when the test ends, however it ends; its stderr
/// goes to a file, printed by [`Service::stderr`].
#[allow(dead_code)]
pub struct Service {
    pub child: std::process::Child,
    log: tempfile::NamedTempFile,
    out: Option<tempfile::NamedTempFile>,
}

#[allow(dead_code)]
impl Service {
    pub fn start(cmd: &mut std::process::Command) -> Self {
        Self::spawn(cmd, false)
    }

    /// Like [`Service::start`], keeping stdout too ([`Service::stdout`]).
    pub fn start_keeping_stdout(cmd: &mut std::process::Command) -> Self {
        Self::spawn(cmd, true)
    }

    fn spawn(cmd: &mut std::process::Command, keep_stdout: bool) -> Self {
        let log = tempfile::NamedTempFile::new().unwrap();
        let out = keep_stdout.then(|| tempfile::NamedTempFile::new().unwrap());
        let stdout = match &out {
            Some(f) => std::process::Stdio::from(f.reopen().unwrap()),
            None => std::process::Stdio::null(),
        };
        let child = cmd
            .stdout(stdout)
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Service { child, log, out }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        let out = self.out.as_ref().expect("started keeping stdout");
        std::fs::read_to_string(out.path()).unwrap_or_default()
    }

    /// SIGTERM, then the exit code; what it wrote can still be read.
    pub fn terminate(&mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        self.child.wait().unwrap().code()
    }

    /// SIGTERM, then the exit code.
    pub fn stop(mut self) -> Option<i32> {
        self.terminate()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A moto server of the test's own (for a test that stops it), from the
/// install `scripts/test` made; answering once this returns.
#[allow(dead_code)]
pub fn own_moto() -> (Service, String) {
    let bin = std::env::var("TEST_MOTO_SERVER").unwrap_or_else(|_| {
        panic!("TEST_MOTO_SERVER is not set: run the tests with scripts/test, which installs moto server")
    });
    let port = free_port();
    let moto = Service::start(std::process::Command::new(bin).args([
        "-H",
        "127.0.0.1",
        "-p",
        &port.to_string(),
    ]));
    wait_for(30, "the test's own moto server", || {
        http_get(port, "/moto-api/").filter(|(s, _)| *s == 200)
    });
    (moto, format!("http://127.0.0.1:{port}"))
}

/// The `[route.payload]` of issue #12's tick pipeline: S3 access logs of
/// signed GETs carrying the event as `?data=|…|`, 11 fields in a fixed order.
pub fn tick_payload() -> logrouter::config::PayloadConfig {
    logrouter::config::PayloadConfig {
        field: "/request_uri".into(),
        query_param: "data".into(),
        delimiter: "|".into(),
        fields: [
            "event_timestamp",
            "event_guid",
            "user_id",
            "user_type",
            "consumer",
            "country",
            "event_type",
            "video_type",
            "content_id",
            "start",
            "end",
        ]
        .map(String::from)
        .to_vec(),
        key: "access_log".into(),
    }
}

/// cargo-lambda's Runtime API emulator, `cargo lambda watch
/// --only-lambda-apis` (PyPI's cargo-lambda, installed by `scripts/test`:
/// `TEST_CARGO_LAMBDA`), on a port of its own. A test that needs it fails,
/// never skips, when it is missing.
#[allow(dead_code)]
pub struct LambdaEmulator {
    _service: Service,
    _dir: tempfile::TempDir,
    bin: String,
    pub port: u16,
}

#[allow(dead_code)]
impl LambdaEmulator {
    pub fn start() -> Self {
        let bin = std::env::var("TEST_CARGO_LAMBDA").unwrap_or_else(|_| {
            panic!("TEST_CARGO_LAMBDA is not set: run the tests with scripts/test, which installs cargo-lambda")
        });
        // It runs `cargo metadata` where it starts: a package of nothing.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[package]\nname = \"emulated\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n[workspace]\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/main.rs"), "fn main() {}\n").unwrap();
        let port = free_port();
        let service = Service::start(
            std::process::Command::new(&bin)
                .current_dir(dir.path())
                .env_remove("AWS_ENDPOINT_URL")
                .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1"])
                .args(["-P", &port.to_string()]),
        );
        wait_for(60, "cargo lambda watch to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        LambdaEmulator {
            _service: service,
            _dir: dir,
            bin,
            port,
        }
    }

    /// What a function under it gets as `AWS_LAMBDA_RUNTIME_API`.
    pub fn runtime_api(&self) -> String {
        format!("http://127.0.0.1:{}/.rt", self.port)
    }

    /// `cargo lambda invoke --data-file`: the function's answer.
    pub fn invoke(&self, event: &serde_json::Value) -> serde_json::Value {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), serde_json::to_vec(event).unwrap()).unwrap();
        let out = std::process::Command::new(&self.bin)
            .env_remove("AWS_ENDPOINT_URL")
            .args(["lambda", "invoke", "-A", "127.0.0.1"])
            .args(["-P", &self.port.to_string(), "-o", "json", "--data-file"])
            .arg(file.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "cargo lambda invoke failed: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("the answer is not JSON ({e}): {stdout}"))
    }
}

/// The SQS event an event source mapping sends: one record per
/// `(message id, body)`.
#[allow(dead_code)]
pub fn sqs_event(records: &[(&str, &str)]) -> serde_json::Value {
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|(id, body)| {
            serde_json::json!({
                "messageId": id,
                "receiptHandle": format!("receipt-{id}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764000000000"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:logrouter",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}

/// An S3 `ObjectCreated` notification body naming `bucket/key`.
#[allow(dead_code)]
pub fn s3_created(bucket: &str, key: &str) -> String {
    serde_json::json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key}}
    }]})
    .to_string()
}

/// The message ids of a batch response's `batchItemFailures`, sorted.
#[allow(dead_code)]
pub fn failed_ids(response: &serde_json::Value) -> Vec<String> {
    let mut ids: Vec<String> = response["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("not a batch response: {response}"))
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Sums of every EMF metric in `stdout` (CloudWatch Embedded Metric Format
/// lines), keyed `name` or `name{label=value,...}` (labels sorted, the
/// `service` dimension left out) - what CloudWatch would add up.
#[allow(dead_code)]
pub fn emf_sums(stdout: &str) -> std::collections::BTreeMap<String, f64> {
    let mut sums = std::collections::BTreeMap::new();
    for line in stdout.lines().filter(|l| l.contains("\"_aws\"")) {
        let doc: serde_json::Value = serde_json::from_str(line).unwrap();
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        let dims: Vec<String> = directive["Dimensions"][0]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_owned())
            .filter(|d| d != "service")
            .collect();
        let labels: Vec<String> = dims
            .iter()
            .map(|d| format!("{d}={}", doc[d].as_str().unwrap()))
            .collect();
        for m in directive["Metrics"].as_array().unwrap() {
            let name = m["Name"].as_str().unwrap();
            let key = if labels.is_empty() {
                name.to_owned()
            } else {
                format!("{name}{{{}}}", labels.join(","))
            };
            let value = match &doc[name] {
                serde_json::Value::Number(n) => n.as_f64().unwrap(),
                v => v["Values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .zip(v["Counts"].as_array().unwrap())
                    .map(|(v, c)| v.as_f64().unwrap() * c.as_f64().unwrap())
                    .sum(),
            };
            *sums.entry(key).or_insert(0.0) += value;
        }
    }
    sums
}

/// A binary started as Lambda starts a zip's `bootstrap`: no arguments,
/// `AWS_LAMBDA_RUNTIME_API` set, its settings (`env`) from the environment,
/// AWS at moto; stdout kept (its EMF lines). `override_var` names another
/// binary to run instead (a packaged bootstrap).
#[allow(dead_code)]
pub fn start_lambda_function(
    default_bin: &str,
    override_var: &str,
    runtime_api: &str,
    env: &[(&str, &str)],
) -> Service {
    let bin = std::env::var(override_var).unwrap_or_else(|_| default_bin.to_owned());
    let mut cmd = std::process::Command::new(bin);
    cmd.env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_ENDPOINT_URL", moto())
        .env("RUST_LOG", "info")
        .env("LOGROUTER_AWS__FORCE_PATH_STYLE", "true");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Service::start_keeping_stdout(&mut cmd)
}

/// Receives (and leaves in flight) messages of `queue` until `enough` says
/// so: (message id, body) pairs; fails after 30 s.
#[allow(dead_code)]
pub async fn receive_until(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    enough: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let mut got: Vec<(String, String)> = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !enough(&got) {
        assert!(
            std::time::Instant::now() < deadline,
            "only {got:?} arrived on {queue}"
        );
        let out = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in out.messages() {
            got.push((
                m.message_id().unwrap().to_owned(),
                m.body().unwrap().to_owned(),
            ));
        }
    }
    got
}
