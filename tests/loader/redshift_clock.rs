//! Issue #27: the Data API test server's simulated clock (its cost model,
//! used by `bench/redshift`) comes from the model alone. Each scenario runs
//! twice on a server of the test's own: once as fast as the stand-ins go,
//! once with every transaction held 300 ms of real time (`delay_ms`: 300
//! simulated seconds at time scale 1/1000, as if PostgreSQL were that
//! slow). The simulated figures are the model's arithmetic both times; only
//! the real ones grow.

use std::collections::BTreeMap;

use aws_sdk_s3::primitives::ByteStream;
use logrouter::location::Location;
use serde_json::{json, Value};

use crate::support::*;

/// A Data API test server of the test's own, cost model on.
struct Server {
    _service: Service,
    port: u16,
}

impl Server {
    fn start() -> Self {
        let port = free_port();
        let service = own_redshift_data(port, &["--cost-model", "--time-scale", "0.001"]);
        Server {
            _service: service,
            port,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn post(&self, path: &str, target: Option<&str>, body: &Value) -> Value {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-fsS", "-X", "POST", "-d", &body.to_string()]);
        if let Some(t) = target {
            cmd.args(["-H", &format!("X-Amz-Target: RedshiftData.{t}")]);
        }
        let out = cmd.arg(format!("{}{path}", self.url())).output().unwrap();
        assert!(
            out.status.success(),
            "{path} {target:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn rules(&self, rules: Value) {
        self.post("/_test/rules", None, &rules);
    }

    fn stats(&self) -> Value {
        let (status, body) = http_get(self.port, "/_test/stats").expect("stats");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Submits a transaction (its statements as one batch): its id.
    fn submit(&self, sqls: &[String]) -> String {
        let d = self.post(
            "/",
            Some("BatchExecuteStatement"),
            &json!({"ClusterIdentifier": "test", "Database": "dev", "Sqls": sqls}),
        );
        d["Id"].as_str().unwrap().to_owned()
    }

    /// Long-polls DescribeStatement until the statement ends, as the loader.
    fn wait(&self, id: &str) {
        loop {
            let d = self.post(
                "/",
                Some("DescribeStatement"),
                &json!({"Id": id, "WaitTimeSeconds": 20}),
            );
            match d["Status"].as_str().unwrap() {
                "FINISHED" => return,
                "FAILED" | "ABORTED" => panic!("{d}"),
                _ => {}
            }
        }
    }
}

fn close(got: &Value, want: f64, what: &str) {
    let got = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {got} is not a number"));
    assert!(
        (got - want).abs() < 1e-6,
        "{what}: {got} simulated seconds, the model says {want}"
    );
}

/// The model's arithmetic, defaults: every call 0.02 s (api_latency_s),
/// a transaction's session 0.3 s (call_s), a statement 0.1 s, a commit
/// 0.6 s; a client sees an end one call after it. Write locks are held to
/// the commit; commits take turns cluster-wide.
#[test]
fn issue27_the_simulated_clock_is_the_models_however_slow_the_stand_ins() {
    let server = Server::start();
    let schema = unique_schema("clock");
    let t = |name: &str| format!("\"{schema}\".{name}");
    server.rules(json!({"reset_stats": true}));
    let mut setup = vec![format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")];
    setup.extend(
        ["l", "c1", "c2", "c3"].map(|n| format!("CREATE TABLE IF NOT EXISTS {} (a INTEGER)", t(n))),
    );
    let id = server.submit(&setup);
    server.wait(&id);

    let mut real = Vec::new();
    for delay_ms in [0, 300] {
        // One client, one transaction after the other: the second starts
        // when the client has seen the first end (0.02 + 0.3 + 0.1 + 0.6,
        // seen 0.02 later: 1.04 s each).
        server.rules(json!({"delay_ms": delay_ms, "reset_stats": true}));
        for _ in 0..2 {
            let id = server.submit(&[format!("INSERT INTO {} VALUES (0)", t("l"))]);
            server.wait(&id);
        }
        let s = server.stats();
        let sim = &s["simulated"];
        assert_eq!(sim["model_only"], json!(true), "{s}");
        close(&sim["wall_s"], 2.08, "one client, two transactions");
        close(&sim["busy_s"], 2.0 * 0.7, "time with a transaction running");
        close(&sim["work"]["commit_s"], 1.2, "commits");
        close(&sim["waits"]["table_lock_s"], 0.0, "lock waits");
        assert_eq!(sim["clients"], json!(1), "{s}");
        real.push(sim["real_wall_h"].as_f64().unwrap() * 3600.0);

        // Three clients at once, each LOCKing one table (as the loader's
        // batches LOCK its ledger): each holds it from its LOCK to its
        // commit (0.1 + 0.1 + 0.6), the others wait in turn. All three
        // start at 0.32; the last releases at 0.32 + 3 × 0.8.
        server.rules(json!({"delay_ms": delay_ms, "reset_stats": true}));
        let ids: Vec<String> = (1..=3)
            .map(|i| {
                server.submit(&[
                    format!("LOCK {}", t("l")),
                    format!("INSERT INTO {} VALUES ({i})", t("l")),
                ])
            })
            .collect();
        ids.iter().for_each(|id| server.wait(id));
        let s = server.stats();
        let sim = &s["simulated"];
        close(
            &sim["wall_s"],
            0.32 + 3.0 * 0.8 + 0.02,
            "three LOCKs of one table",
        );
        close(&sim["waits"]["table_lock_s"], 0.8 + 1.6, "the lock's waits");
        close(
            &sim["waits"]["commit_queue_s"],
            0.0,
            "commits, under the lock",
        );
        close(&sim["busy_s"], 3.0 * 0.8, "time with a transaction running");
        assert_eq!(sim["clients"], json!(3), "{s}");
        assert_eq!(
            s["tables"][format!("{schema}.l")]["lock_waits"],
            json!(2),
            "{s}"
        );

        // Three clients at once, each writing a table of its own: no lock
        // waits, but one commit at a time (ready at 0.42 each).
        server.rules(json!({"delay_ms": delay_ms, "reset_stats": true}));
        let ids: Vec<String> = (1..=3)
            .map(|i| server.submit(&[format!("INSERT INTO {} VALUES ({i})", t(&format!("c{i}")))]))
            .collect();
        ids.iter().for_each(|id| server.wait(id));
        let s = server.stats();
        let sim = &s["simulated"];
        close(&sim["wall_s"], 0.42 + 3.0 * 0.6 + 0.02, "three commits");
        close(
            &sim["waits"]["commit_queue_s"],
            0.6 + 1.2,
            "the commit queue's waits",
        );
        close(&sim["waits"]["table_lock_s"], 0.0, "no lock shared");
    }
    // The real clock did see the delays (the old simulated clock, real time
    // / time scale, said 600 simulated seconds or more; the model says 2.08).
    assert!(real[1] >= 600.0, "{real:?}");
}

/// The loader's own calls (batches of two files, two at once, long
/// polling, ledger reads between): the simulated hours of a load are the
/// same whether the stand-ins are fast or every transaction is held 300
/// simulated seconds longer in real time; with one batch at a time (one
/// client) to the microsecond.
const SLOW_MS: u64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue27_a_loads_simulated_hours_do_not_depend_on_the_stand_ins_speed() {
    let bucket = unique("rsclock");
    let s3 = s3().await;
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    for h in 0..8u64 {
        let key = format!("logs/app-2015-01-20-{h:02}.log.gz");
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .body(ByteStream::from(gzip(events(40, h).as_bytes())))
            .send()
            .await
            .unwrap();
        let at = |key: String| Location::S3 {
            bucket: bucket.clone(),
            key,
        };
        route(&at(key), &at("routed".into()), true).await;
    }
    let root = format!("s3://{bucket}/routed");
    let server = Server::start();
    let endpoint = server.url();
    let url = "redshift://test-cluster/dev?db_user=loader&iam_role=arn:aws:iam::123456789012:role/logrouter-copy";
    let mut figures: BTreeMap<(usize, u64), (f64, Value)> = BTreeMap::new();
    for concurrency in [1usize, 2] {
        for delay_ms in [0u64, SLOW_MS] {
            server.rules(json!({"delay_ms": delay_ms, "reset_stats": true,
                "cost_model": {"enabled": true, "time_scale": 0.01, "pending_wait_s": 1.0}}));
            let schema = unique_schema("rsclock");
            let out = run(
                loader_at_moto()
                    .env("AWS_ENDPOINT_URL_REDSHIFT_DATA", &endpoint)
                    .env("LOGROUTER_LOAD__DB_SCHEMA", &schema)
                    .env("LOGROUTER_LOAD__REDSHIFT_FILES_PER_BATCH", "2")
                    .env(
                        "LOGROUTER_LOAD__REDSHIFT_CONCURRENCY",
                        concurrency.to_string(),
                    ),
                &["load", "--warehouse", url, &root],
            );
            assert!(out.status.success(), "{}", text(&out));
            assert!(text(&out).contains("loaded 16 files"), "{}", text(&out));
            let s = server.stats();
            let sim = &s["simulated"];
            assert_eq!(s["copies"], json!(16), "{s}");
            figures.insert(
                (concurrency, delay_ms),
                (sim["wall_s"].as_f64().unwrap(), s.clone()),
            );
        }
    }
    let wall = |k: (usize, u64)| figures[&k].0;
    // One client: every step and wait is the model's, in one order.
    assert!(
        (wall((1, 0)) - wall((1, SLOW_MS))).abs() < 1e-6,
        "one batch at a time: {} vs {} simulated s",
        wall((1, 0)),
        wall((1, SLOW_MS))
    );
    // Two at once (two tables): which client takes which unit, and who is
    // in flight when a lock is taken, is real; the times are the model's.
    let (fast, slow) = (wall((2, 0)), wall((2, SLOW_MS)));
    eprintln!(
        "simulated s: one at a time {} / {}, two at once {fast} / {slow}",
        wall((1, 0)),
        wall((1, SLOW_MS))
    );
    assert!(
        (fast - slow).abs() <= 0.05 * fast,
        "two batches at once: {fast} vs {slow} simulated s"
    );
    // Concurrency counts (16 files: 8 batches; one at a time is slower).
    assert!(wall((2, 0)) < 0.8 * wall((1, 0)), "{figures:?}");
    // The real time, which the delays stretched, is not the figure.
    let real_h = figures[&(2, SLOW_MS)].1["simulated"]["real_wall_h"]
        .as_f64()
        .unwrap();
    assert!(real_h * 3600.0 > 2.0 * slow, "{real_h} h real vs {slow} s");
}
