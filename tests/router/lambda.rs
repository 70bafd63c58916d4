//! Issue #23: `router lambda`, the router as a Lambda function behind an
//! SQS event source mapping.
//!
//! End to end under cargo-lambda's Runtime API emulator (`cargo lambda
//! watch --only-lambda-apis`, invoked with `cargo lambda invoke
//! --data-file`), against moto S3: one event of good objects, a damaged
//! gzip, an unreadable object, a body that is no notification, a test event
//! and a duplicate; the output equals `router route`'s, the batch response
//! lists exactly the failures, a second delivery changes nothing, and the
//! EMF lines add up to the manifests.
//!
//! The emulator cannot express a deadline: it sends
//! `Lambda-Runtime-Deadline-Ms: 600000` on every invocation, a fixed number
//! and not a time. So the deadline itself (an object too big for the time
//! left), start-up errors and SIGTERM are tested against a Runtime API
//! server of the test's own ([`OwnRuntime`]), which speaks the same
//! protocol.
//!
//! `TEST_LAMBDA_ROUTER` runs another binary instead of the one cargo built
//! (the `bootstrap` of `scripts/package`'s zip).

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logrouter::manifest::Manifest;

use crate::s3_sqs::{put, stand, Stand};
use crate::support::*;

/// `router` started as Lambda starts a zip's `bootstrap` (or the binary
/// `TEST_LAMBDA_ROUTER` names).
fn start_function(runtime_api: &str, out: &str, env: &[(&str, &str)]) -> Service {
    let mut env = env.to_vec();
    env.push(("LOGROUTER_ROUTE__OUT", out));
    start_lambda_function(
        env!("CARGO_BIN_EXE_router"),
        "TEST_LAMBDA_ROUTER",
        runtime_api,
        &env,
    )
}

/// Every object under `prefix` of the output bucket: key (without the
/// prefix) → bytes.
async fn objects_under(st: &Stand, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for key in list_keys(&st.s3, &st.out).await {
        if let Some(rest) = key.strip_prefix(prefix) {
            out.insert(rest.to_owned(), get(&st.s3, &st.out, &key).await);
        }
    }
    out
}

/// A manifest without what differs between two routes of the same bytes
/// to two places: when, and where.
fn comparable(manifest: &[u8]) -> serde_json::Value {
    let mut m: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    let o = m.as_object_mut().unwrap();
    assert!(o.remove("routed_at").is_some());
    assert!(o.remove("dest").is_some());
    m
}

/// The bodies S3 sent to the queue, by the key each names.
async fn notification_bodies(st: &Stand, keys: usize) -> BTreeMap<String, String> {
    let by_key = |got: &[(String, String)]| -> BTreeMap<String, String> {
        got.iter()
            .filter_map(|(_, body)| {
                let doc: serde_json::Value = serde_json::from_str(body).unwrap();
                // Keys in S3 events are URL-encoded.
                let key = doc["Records"][0]["s3"]["object"]["key"].as_str()?;
                Some((
                    logrouter::notification::decode_key(key).unwrap(),
                    body.clone(),
                ))
            })
            .collect()
    };
    let got = receive_until(&st.sqs, &st.queue_url, |got| by_key(got).len() >= keys).await;
    by_key(&got)
}

fn lines(prefix: &str, hour: u32, n: u32) -> String {
    let mut s = String::new();
    for i in 0..n {
        match i % 4 {
            0 => s.push_str(&format!(
                "{{\"event_type\":\"video.play\",\"i\":{i},\"h\":{hour}}}\n"
            )),
            1 => s.push_str(&format!(
                "{{\"event_type\":\"Page View\",\"i\":{i},\"p\":\"{prefix}\"}}\n"
            )),
            2 => s.push_str(&format!("{{\"event_type\":\"click\",\"i\":{i}}}\n")),
            _ => s.push_str("not json at all\n"),
        }
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue23_router_lambda_under_the_emulator_routes_as_route_does() {
    let st = stand(true).await;
    let good_1 = "logs/2015/01/20/13/web.log.gz";
    let good_2 = "logs/2015/01/20/14/web.log.gz";
    let damaged = "logs/2015/01/20/15/web.log.gz";
    put(&st, good_1, gzip(lines("a", 13, 400).as_bytes())).await;
    put(&st, good_2, gzip(lines("b", 14, 300).as_bytes())).await;
    let whole = gzip(lines("c", 15, 5000).as_bytes());
    put(&st, damaged, whole[..whole.len() * 2 / 3].to_vec()).await;
    let bodies = notification_bodies(&st, 3).await;
    let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2015-01-20T13:00:00.000Z","Bucket":"b","RequestId":"r","HostId":"h"}"#;
    let missing = s3_created(&st.src, "logs/2015/01/20/16/gone.log.gz");
    let event = sqs_event(&[
        ("good-1", &bodies[good_1]),
        ("good-2", &bodies[good_2]),
        ("damaged", &bodies[damaged]),
        ("missing", &missing),
        ("garbage", "this is not a notification"),
        ("test-event", test_event),
        ("duplicate", &bodies[good_1]),
    ]);

    let emulator = LambdaEmulator::start();
    let function = start_function(
        &emulator.runtime_api(),
        &format!("s3://{}/lambda", st.out),
        &[],
    );
    let response = emulator.invoke(&event);
    // Exactly the messages that did not complete: the object that cannot
    // be read and the body of unknown shape. The damaged object is routed
    // up to its damage and consumed, as `run` does; so are the test event
    // and the duplicate.
    assert_eq!(
        failed_ids(&response),
        ["garbage", "missing"],
        "{response}\n{}",
        function.stderr()
    );

    // `router route` of the same objects writes the same keys and bytes,
    // and the same manifests but for when and where.
    let sources: Vec<String> = [good_1, good_2, damaged]
        .iter()
        .map(|k| format!("s3://{}/{k}", st.src))
        .collect();
    let direct = router_at_moto()
        .env("LOGROUTER_AWS__FORCE_PATH_STYLE", "true")
        .args(["route", "--out", &format!("s3://{}/direct", st.out)])
        .args(&sources)
        .output()
        .unwrap();
    assert_eq!(direct.status.code(), Some(1), "the damaged source exits 1");
    let lambda = objects_under(&st, "lambda/").await;
    let route = objects_under(&st, "direct/").await;
    assert_eq!(
        lambda.keys().collect::<Vec<_>>(),
        route.keys().collect::<Vec<_>>()
    );
    let mut manifests = Vec::new();
    for (key, bytes) in &lambda {
        if key.starts_with("_manifests/") {
            assert_eq!(comparable(bytes), comparable(&route[key]), "{key}");
            manifests.push(serde_json::from_slice::<Manifest>(bytes).unwrap());
        } else {
            assert_eq!(gunzip(bytes), gunzip(&route[key]), "{key}");
        }
    }
    assert_eq!(manifests.len(), 3);
    assert_eq!(manifests.iter().filter(|m| m.damage.is_some()).count(), 1);

    // The same event again (a redelivery): the same failures, and not one
    // byte of the output changes.
    let again = emulator.invoke(&event);
    assert_eq!(failed_ids(&again), ["garbage", "missing"]);
    assert_eq!(objects_under(&st, "lambda/").await, lambda);

    // The metrics, as CloudWatch would extract them from the EMF lines on
    // stdout, equal the manifests.
    let sums = emf_sums(&function.stdout());
    let read: u64 = manifests.iter().map(|m| m.lines.read).sum();
    assert_eq!(
        sums["logrouter_router_lines_read_total"], read as f64,
        "{sums:#?}"
    );
    let mut routed: BTreeMap<String, u64> = BTreeMap::new();
    let mut quarantined: BTreeMap<String, u64> = BTreeMap::new();
    for m in &manifests {
        for (t, o) in &m.types {
            *routed.entry(t.clone()).or_default() += o.lines;
        }
        for (r, n) in &m.quarantine.by_reason {
            *quarantined.entry(r.clone()).or_default() += n;
        }
    }
    assert_eq!(routed.len(), 3, "{routed:?}");
    for (t, n) in &routed {
        let key = format!("logrouter_router_lines_routed_total{{type={t}}}");
        assert_eq!(sums.get(&key), Some(&(*n as f64)), "{key}: {sums:#?}");
    }
    for (r, n) in &quarantined {
        let key = format!("logrouter_router_lines_quarantined_total{{reason={r}}}");
        assert_eq!(sums.get(&key), Some(&(*n as f64)), "{key}: {sums:#?}");
    }
    for (outcome, n) in [
        ("routed", 2.0),
        ("damaged", 1.0),
        ("already_routed", 5.0),
        ("failed", 2.0),
    ] {
        let key = format!("logrouter_router_sources_total{{outcome={outcome}}}");
        assert_eq!(sums.get(&key), Some(&n), "{key}: {sums:#?}");
    }
    assert_eq!(sums["logrouter_queue_messages_received_total"], 14.0);
    assert_eq!(sums["logrouter_queue_messages_deleted_total"], 10.0);
    assert_eq!(sums["logrouter_queue_messages_unknown_total"], 2.0);
    assert_eq!(sums["logrouter_queue_messages_retried_total"], 2.0);

    // The emulator's fixed deadline is no deadline: warned about, and the
    // fallback used, never taken as already past.
    let log = function.stderr();
    assert!(log.contains("not in the future"), "{log}");
    if let Some(line) = log.lines().find(|l| l.contains("waiting for invocations")) {
        eprintln!("cold start: {line}");
    }
}

/// One invocation [`OwnRuntime`] serves: its id, how long its deadline is
/// after the moment it is handed out, its event.
struct Queued {
    id: String,
    deadline_in: Duration,
    event: serde_json::Value,
}

/// What the function sent back.
#[derive(Debug, Clone)]
struct Answer {
    path: String,
    body: String,
    at: Instant,
    /// When the invocation was handed out, and its deadline.
    served: Option<(Instant, Instant)>,
}

/// A Lambda Runtime API server of the test's own (HTTP/1, one request per
/// connection): hands out the queued invocations with a real deadline,
/// then holds `next` open; records every answer, extension registration
/// and init error.
struct OwnRuntime {
    port: u16,
    queue: Arc<Mutex<VecDeque<Queued>>>,
    answers: Arc<Mutex<Vec<Answer>>>,
}

impl OwnRuntime {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let queue: Arc<Mutex<VecDeque<Queued>>> = Arc::default();
        let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
        let served: Arc<Mutex<BTreeMap<String, (Instant, Instant)>>> = Arc::default();
        let (q, a) = (queue.clone(), answers.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (q, a, s) = (q.clone(), a.clone(), served.clone());
                std::thread::spawn(move || serve_one(stream, &q, &a, &s));
            }
        });
        OwnRuntime {
            port,
            queue,
            answers,
        }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn push(&self, id: &str, deadline_in: Duration, event: serde_json::Value) {
        self.queue.lock().unwrap().push_back(Queued {
            id: id.into(),
            deadline_in,
            event,
        });
    }

    /// Waits for an answer whose path contains `what`.
    fn wait_answer(&self, what: &str, secs: u64) -> Answer {
        wait_for(secs, what, || {
            self.answers
                .lock()
                .unwrap()
                .iter()
                .find(|a| a.path.contains(what))
                .cloned()
        })
    }
}

fn serve_one(
    stream: TcpStream,
    queue: &Mutex<VecDeque<Queued>>,
    answers: &Mutex<Vec<Answer>>,
    served: &Mutex<BTreeMap<String, (Instant, Instant)>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let mut parts = first.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut stream = stream;
    let reply = |stream: &mut TcpStream, status: &str, headers: &str, body: &str| {
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    };
    match (method, path) {
        ("GET", p) if p.ends_with("/runtime/invocation/next") => {
            let next = loop {
                if let Some(q) = queue.lock().unwrap().pop_front() {
                    break q;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            let now = Instant::now();
            let deadline_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64
                + next.deadline_in.as_millis() as u64;
            served
                .lock()
                .unwrap()
                .insert(next.id.clone(), (now, now + next.deadline_in));
            reply(
                &mut stream,
                "200 OK",
                &format!(
                    "Lambda-Runtime-Aws-Request-Id: {}\r\nLambda-Runtime-Deadline-Ms: {deadline_ms}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:router\r\nContent-Type: application/json\r\n",
                    next.id
                ),
                &next.event.to_string(),
            );
        }
        ("GET", p) if p.ends_with("/extension/event/next") => {
            // Held open: the extension subscribes to nothing.
            std::thread::sleep(Duration::from_secs(3600));
        }
        ("POST", p) => {
            let served = p
                .split('/')
                .skip_while(|s| *s != "invocation")
                .nth(1)
                .and_then(|id| served.lock().unwrap().get(id).copied());
            answers.lock().unwrap().push(Answer {
                path: p.to_owned(),
                body: String::from_utf8_lossy(&body).into_owned(),
                at: Instant::now(),
                served,
            });
            let headers = if p.ends_with("/extension/register") {
                "Lambda-Extension-Identifier: ext-1\r\n"
            } else {
                ""
            };
            reply(&mut stream, "202 Accepted", headers, "{}");
        }
        _ => reply(&mut stream, "404 Not Found", "", "{}"),
    }
}

/// Gzipped JSON lines of one type, `n` of them, compressed fast.
fn big_object(n: u64) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut chunk = String::new();
    for i in 0..n {
        chunk.push_str(&format!(
            "{{\"event_type\":\"tick\",\"i\":{i},\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}}\n"
        ));
        if chunk.len() > 1 << 20 {
            e.write_all(chunk.as_bytes()).unwrap();
            chunk.clear();
        }
    }
    e.write_all(chunk.as_bytes()).unwrap();
    e.finish().unwrap()
}

/// An object too big for the time left: abandoned before the deadline, no
/// manifest, reported as a failure, and the answer reaches Lambda in time;
/// the small object of the same batch completes. The retry routes it whole,
/// once, over the same keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue23_an_object_too_big_for_the_time_left_is_abandoned_cleanly() {
    let st = stand(true).await;
    let big_key = "logs/2015/01/20/13/big.log.gz";
    let small_key = "logs/2015/01/20/13/small.log.gz";
    const BIG_LINES: u64 = 1_500_000;
    put(&st, big_key, big_object(BIG_LINES)).await;
    put(&st, small_key, gzip(lines("s", 13, 100).as_bytes())).await;
    let event = sqs_event(&[
        ("big", &s3_created(&st.src, big_key)),
        ("small", &s3_created(&st.src, small_key)),
    ]);

    let runtime = OwnRuntime::start();
    // Three seconds, less a margin of two: a second to work.
    runtime.push("inv-1", Duration::from_secs(3), event);
    let function = start_function(
        &runtime.address(),
        &format!("s3://{}/lambda", st.out),
        &[("LOGROUTER_LAMBDA__DEADLINE_MARGIN_SECS", "2")],
    );
    let answer = runtime.wait_answer("inv-1/response", 60);
    let (_, deadline) = answer.served.unwrap();
    assert!(
        answer.at < deadline,
        "answered {:?} after the deadline",
        answer.at - deadline
    );
    let response: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(failed_ids(&response), ["big"], "{}", function.stderr());
    let manifests: Vec<String> = objects_under(&st, "lambda/_manifests/")
        .await
        .into_keys()
        .collect();
    assert_eq!(manifests.len(), 1, "only the small object's: {manifests:?}");
    assert!(manifests[0].contains("small"), "{manifests:?}");
    assert!(
        function.stderr().contains("abandoned"),
        "{}",
        function.stderr()
    );

    // The retry, with time enough, routes every line once.
    runtime.push(
        "inv-2",
        Duration::from_secs(600),
        sqs_event(&[("big", &s3_created(&st.src, big_key))]),
    );
    let answer = runtime.wait_answer("inv-2/response", 300);
    let response: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert!(failed_ids(&response).is_empty(), "{}", function.stderr());
    let all = objects_under(&st, "lambda/").await;
    let (_, manifest) = all
        .iter()
        .find(|(k, _)| k.starts_with("_manifests/") && k.contains("big"))
        .expect("the big object's manifest");
    let m: Manifest = serde_json::from_slice(manifest).unwrap();
    assert_eq!(m.lines.read, BIG_LINES);
    assert_eq!(m.types["tick"].lines, BIG_LINES);
    let mut routed = 0;
    for key in m.output_keys() {
        routed += gunzip(&all[key])
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
    }
    assert_eq!(routed as u64, BIG_LINES, "every line once");
    // Nothing of the abandoned attempt is left beside what the manifests
    // name: its parts had the same keys and were written over.
    let small: Manifest = serde_json::from_slice(
        all.iter()
            .find(|(k, _)| k.starts_with("_manifests/") && k.contains("small"))
            .unwrap()
            .1,
    )
    .unwrap();
    let named: std::collections::BTreeSet<&str> =
        m.output_keys().chain(small.output_keys()).collect();
    for key in all.keys().filter(|k| !k.starts_with("_manifests/")) {
        assert!(
            named.contains(key.as_str()),
            "{key} is named by no manifest"
        );
    }
}

/// A configuration error is reported to Lambda as an init error naming the
/// key, and the process exits 2; SIGTERM (which Lambda sends once the
/// shutdown extension is registered) flushes and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue23_lambda_start_up_errors_and_sigterm() {
    let runtime = OwnRuntime::start();
    let mut function = start_function(
        &runtime.address(),
        "s3://bucket/prefix",
        &[("LOGROUTER_QUEUE__MAX_OBJECTS_IN_FLIGHT", "0")],
    );
    let status = function.child.wait().unwrap();
    assert_eq!(status.code(), Some(2), "{}", function.stderr());
    let init = runtime.wait_answer("/runtime/init/error", 10);
    let error: serde_json::Value = serde_json::from_str(&init.body).unwrap();
    assert_eq!(error["errorType"], "InvalidConfig");
    assert!(
        error["errorMessage"]
            .as_str()
            .unwrap()
            .contains("queue.max_objects_in_flight"),
        "{error}"
    );

    let runtime = OwnRuntime::start();
    let st = stand(true).await;
    put(&st, "logs/x.log", b"{\"event_type\":\"a\"}\n".to_vec()).await;
    runtime.push(
        "inv-1",
        Duration::from_secs(60),
        sqs_event(&[("m", &s3_created(&st.src, "logs/x.log"))]),
    );
    let function = start_function(&runtime.address(), &format!("s3://{}/lambda", st.out), &[]);
    let answer = runtime.wait_answer("inv-1/response", 60);
    assert_eq!(answer.body, r#"{"batchItemFailures":[]}"#);
    runtime.wait_answer("/extension/register", 10);
    let metrics_before_stop = emf_sums(&function.stdout());
    assert_eq!(
        metrics_before_stop["logrouter_router_lines_read_total"],
        1.0
    );
    let mut function = function;
    let code = function.terminate();
    let log = function.stderr();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("shutting down: metrics flushed"), "{log}");
}

/// `router backfill --enqueue` fans out to the function: the messages it
/// sends, delivered as an event source mapping delivers them, are routed
/// by the Lambda handler (called in process, a plain async function).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue23_backfill_enqueue_fans_out_to_the_function() {
    use logrouter::lambda::{handle_batch, Budget, OnePerObject, SqsEvent};
    let st = stand(true).await;
    for h in 10..13 {
        put(
            &st,
            &format!("logs/2015/01/20/{h}/app.log.gz"),
            gzip(lines("f", h, 50).as_bytes()),
        )
        .await;
    }
    let queue = create_queue(&st.sqs, "fanout").await;
    let out = router_at_moto()
        .env("LOGROUTER_AWS__FORCE_PATH_STYLE", "true")
        .args(["backfill", "--source", &format!("s3://{}/logs/", st.src)])
        .args(["--from", "2015-01-20T00", "--to", "2015-01-21T00"])
        .args(["--enqueue", &queue])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = receive_until(&st.sqs, &queue, |got| got.len() >= 3).await;
    let pairs: Vec<(&str, &str)> = records
        .iter()
        .map(|(i, b)| (i.as_str(), b.as_str()))
        .collect();
    let event: SqsEvent = serde_json::from_value(sqs_event(&pairs)).unwrap();

    let config = test_config();
    let router = router::route::Router::new(
        &config,
        &logrouter::location::Location::S3 {
            bucket: st.out.clone(),
            key: "fleet".into(),
        },
        Arc::new(logrouter::aws::AwsClients::new(config.aws.clone())),
    )
    .await
    .unwrap();
    let handler = Arc::new(OnePerObject::new(Arc::new(router::service::RouteHandler {
        router,
    })));
    let budget = Budget {
        work_until: tokio::time::Instant::now() + Duration::from_secs(120),
        deadline_known: true,
    };
    let stats = Arc::new(logrouter::queue::RunStats::default());
    let response = handle_batch(&handler, event, budget, 4, &stats).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let manifests = objects_under(&st, "fleet/_manifests/").await;
    assert_eq!(manifests.len(), 3, "{:?}", manifests.keys());
    for bytes in manifests.values() {
        let m: Manifest = serde_json::from_slice(bytes).unwrap();
        assert_eq!(m.lines.read, 50);
    }
}
