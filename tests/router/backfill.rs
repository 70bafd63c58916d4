//! `router backfill` against moto: an archive of 48 hourly objects over
//! three days under realistic keys (plus one with no time in its key).

use std::path::Path;
use std::process::Output;

use aws_sdk_s3::primitives::ByteStream;
use chrono::{Duration, TimeZone, Utc};
use serde_json::Value;

use crate::support::{files_under, gzip, s3, sqs, test_config, unique};

/// Keys in three styles, one object per hour from 2015-01-19T12 to
/// 2015-01-21T11, and `logs/misc/latest.json.gz` with no time.
fn archive_keys() -> Vec<String> {
    let start = Utc.with_ymd_and_hms(2015, 1, 19, 12, 0, 0).unwrap();
    (0..48)
        .map(|i| {
            let t = start + Duration::hours(i);
            match i % 3 {
                0 => t.format("logs/dt=%Y-%m-%d/hour=%H/web.json.gz").to_string(),
                1 => t.format("logs/%Y/%m/%d/%H/app.json.gz").to_string(),
                _ => t.format("logs/events %Y-%m-%d_%H.log.gz").to_string(),
            }
        })
        .collect()
}

fn content(key: &str) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..200 {
        s.push_str(&format!(
            "{{\"event_type\":\"video_play\",\"i\":{i},\"k\":\"{key}\"}}\n"
        ));
        s.push_str(&format!("{{\"event_type\":\"page_view\",\"i\":{i}}}\n"));
    }
    s.push_str("{\"event_type\":\"video_play\",\"tag\":\"needle\"}\n{\"event_type\":\"page_view\",\"tag\":\"needle\"}\n");
    gzip(s.as_bytes())
}

async fn archive() -> (aws_sdk_s3::Client, String) {
    let s3 = s3().await;
    let bucket = unique("archive");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let mut keys = archive_keys();
    keys.push("logs/misc/latest.json.gz".into());
    for k in keys {
        let body = content(&k);
        s3.put_object()
            .bucket(&bucket)
            .key(&k)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
    }
    (s3, bucket)
}

fn config_file(dir: &Path) -> String {
    let p = dir.join("c.toml");
    std::fs::write(
        &p,
        "[aws]\nforce_path_style = true\n[queue]\nwait_time_secs = 1\n",
    )
    .unwrap();
    p.to_str().unwrap().to_owned()
}

fn backfill(cfg: &str, bucket: &str, args: &[&str]) -> (Output, Value) {
    let o = crate::support::router_at_moto()
        .args([
            "backfill",
            "--json",
            "--config",
            cfg,
            "--source",
            &format!("s3://{bucket}/logs/"),
        ])
        .args(args)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o, v)
}

/// Committed manifests of full routes only: a killed run may leave its
/// hidden temporary file (`.<name>.<pid>-….tmp`) beside them, which is never
/// a manifest.
fn manifests(out: &Path) -> Vec<String> {
    committed(out, "_manifests/")
}

fn committed(out: &Path, prefix: &str) -> Vec<String> {
    files_under(out)
        .into_iter()
        .filter(|f| f.starts_with(prefix) && f.ends_with(".json"))
        .filter(|f| !f.rsplit('/').next().unwrap_or("").starts_with('.'))
        .collect()
}

const DAY: [&str; 4] = ["--from", "2015-01-20T00", "--to", "2015-01-21T00"];

#[tokio::test]
async fn window_routes_exactly_its_objects_and_a_rerun_skips_them() {
    let (_s3, bucket) = archive().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path());
    let out = dir.path().join("out");
    let out_s = out.to_str().unwrap();

    let (o, dry) = backfill(&cfg, &bucket, &[&DAY[..], &["--dry-run"]].concat());
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(dry["summary"]["selected"], 24);
    assert_eq!(dry["summary"]["listed"], 49);
    assert_eq!(
        dry["objects"][0]["key"],
        "logs/dt=2015-01-20/hour=00/web.json.gz"
    );
    assert_eq!(
        dry["objects"][23]["key"],
        "logs/events 2015-01-20_23.log.gz"
    );
    assert!(!out.exists(), "a dry run writes nothing");

    let (o, s) = backfill(
        &cfg,
        &bucket,
        &[&DAY[..], &["--out", out_s, "--concurrency", "3"]].concat(),
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        (s["routed"].as_u64(), s["skipped"].as_u64()),
        (Some(24), Some(0))
    );
    assert_eq!(s["time_from_last_modified"], 0);
    assert_eq!(s["lines_by_type"]["video_play"], 24 * 201);
    let m = manifests(&out);
    assert_eq!(m.len(), 24);
    assert!(
        m.iter().all(|k| k.starts_with("_manifests/dt=2015-01-20/")),
        "{m:?}"
    );

    let files = files_under(&out);
    let (o, s) = backfill(&cfg, &bucket, &[&DAY[..], &["--out", out_s]].concat());
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        (s["routed"].as_u64(), s["skipped"].as_u64()),
        (Some(0), Some(24))
    );
    assert_eq!(files_under(&out), files, "a rerun adds nothing");

    // The object with no time in its key is dated by LastModified (now).
    let (_, dry) = backfill(
        &cfg,
        &bucket,
        &["--from", "2020-01-01", "--to", "2200-01-01", "--dry-run"],
    );
    assert_eq!(dry["summary"]["selected"], 1);
    assert_eq!(dry["summary"]["time_from_last_modified"], 1);
}

#[tokio::test]
async fn failed_object_makes_exit_1_and_a_rerun_finishes_the_job() {
    let (s3, bucket) = archive().await;
    let bad = "logs/2015/01/20/07/app.json.gz";
    s3.put_object()
        .bucket(&bucket)
        .key(bad)
        .body(ByteStream::from_static(b"BZh91AY&SY not gzip"))
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path());
    let out = dir.path().join("out");
    let out_s = out.to_str().unwrap();

    let (o, s) = backfill(&cfg, &bucket, &[&DAY[..], &["--out", out_s]].concat());
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(s["routed"], 23);
    assert_eq!(s["failed"][0]["key"], bad);
    assert!(s["failed"][0]["error"].as_str().unwrap().contains("bzip2"));

    s3.put_object()
        .bucket(&bucket)
        .key(bad)
        .body(ByteStream::from(content(bad)))
        .send()
        .await
        .unwrap();
    let (o, s) = backfill(&cfg, &bucket, &[&DAY[..], &["--out", out_s]].concat());
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        (s["routed"].as_u64(), s["skipped"].as_u64()),
        (Some(1), Some(23))
    );
    assert_eq!(manifests(&out).len(), 24);
}

#[tokio::test]
async fn killed_backfill_continues_where_it_stopped() {
    let (_s3, bucket) = archive().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path());
    let out = dir.path().join("out");
    let mut child = crate::support::router_at_moto()
        .args([
            "backfill",
            "--config",
            &cfg,
            "--source",
            &format!("s3://{bucket}/logs/"),
        ])
        .args(DAY)
        .args(["--out", out.to_str().unwrap(), "--concurrency", "1"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while out.join("_manifests").exists() && manifests(&out).len() < 3
        || !out.join("_manifests").exists()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "backfill made no progress"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done_before = manifests(&out).len() as u64;

    let (o, s) = backfill(
        &cfg,
        &bucket,
        &[&DAY[..], &["--out", out.to_str().unwrap()]].concat(),
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        s["routed"].as_u64().unwrap() + s["skipped"].as_u64().unwrap(),
        24
    );
    assert!(s["skipped"].as_u64().unwrap() >= done_before);
    assert_eq!(manifests(&out).len(), 24);
    // Every object once: one part per type per object, no extra files.
    let parts = files_under(&out)
        .into_iter()
        .filter(|f| f.ends_with(".json.gz") && !f.rsplit('/').next().unwrap_or("").starts_with('.'))
        .count();
    assert_eq!(parts, 24 * 2, "{:?}", files_under(&out));
}

#[tokio::test]
async fn enqueued_backfill_is_routed_by_router_run_to_the_same_outputs() {
    let (_s3, bucket) = archive().await;
    let sqs = sqs().await;
    let queue_url = crate::support::create_queue(&sqs, "bf").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path());

    let (o, s) = backfill(
        &cfg,
        &bucket,
        &[&DAY[..], &["--enqueue", &queue_url]].concat(),
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(s["messages_sent"], 24);
    assert_eq!(
        crate::support::messages_on_queue(&sqs, &queue_url).await,
        24
    );

    let by_queue = dir.path().join("by-queue");
    let stats = router::service::run(
        &test_config(),
        queue_url.clone(),
        &logrouter::location::Location::Local(by_queue.clone()),
        true,
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(logrouter::queue::RunStats::get(&stats.objects_done), 24);

    let direct = dir.path().join("direct");
    let (o, _) = backfill(
        &cfg,
        &bucket,
        &[&DAY[..], &["--out", direct.to_str().unwrap()]].concat(),
    );
    assert_eq!(o.status.code(), Some(0));
    let files = files_under(&direct);
    assert_eq!(files_under(&by_queue), files);
    for f in files.iter().filter(|f| f.ends_with(".gz")) {
        assert_eq!(
            std::fs::read(direct.join(f)).unwrap(),
            std::fs::read(by_queue.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[tokio::test]
async fn selective_replay_writes_only_its_lines_and_never_blocks_a_full_route() {
    let (_s3, bucket) = archive().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path());
    let out = dir.path().join("out");
    let out_s = out.to_str().unwrap();

    let (o, s) = backfill(
        &cfg,
        &bucket,
        &[
            &DAY[..],
            &["--out", out_s, "--types", "video_play", "--match", "needle"],
        ]
        .concat(),
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(s["lines_by_type"], serde_json::json!({"video_play": 24}));
    assert_eq!(s["lines_filtered"], 24 * 401);
    assert!(
        manifests(&out).is_empty(),
        "a replay writes no full-route manifest"
    );
    let m = committed(&out, "_replays/replay-");
    assert_eq!(m.len(), 24, "{:?}", files_under(&out));
    assert!(
        files_under(&out).iter().all(|f| f.starts_with("_replays/")),
        "replays stay apart"
    );
    let one: Value = serde_json::from_slice(&std::fs::read(out.join(&m[0])).unwrap()).unwrap();
    assert_eq!(one["filter"]["types"], serde_json::json!(["video_play"]));
    assert_eq!(one["filter"]["match_text"], "needle");

    let (o, s) = backfill(&cfg, &bucket, &[&DAY[..], &["--out", out_s]].concat());
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        (s["routed"].as_u64(), s["skipped"].as_u64()),
        (Some(24), Some(0)),
        "a replay is not a full route"
    );
    assert_eq!(manifests(&out).len(), 24);
    assert_eq!(committed(&out, "_replays/").len(), 24);

    // The same selection given in another order is the same replay: skipped.
    let (_, s) = backfill(
        &cfg,
        &bucket,
        &[
            &DAY[..],
            &[
                "--out",
                out_s,
                "--types",
                "video_play,video_play",
                "--match",
                "needle",
            ],
        ]
        .concat(),
    );
    assert_eq!(s["skipped"], 24);

    let (o, _) = backfill(
        &cfg,
        &bucket,
        &[&DAY[..], &["--out", out_s, "--match-regex", "("]].concat(),
    );
    assert_eq!(o.status.code(), Some(2), "a bad regex is a usage error");
    let (o, _) = backfill(
        &cfg,
        &bucket,
        &[&DAY[..], &["--enqueue", "http://q", "--types", "a"]].concat(),
    );
    assert_eq!(o.status.code(), Some(2));
}

/// Review finding: a rerun must not turn a damaged object into a success.
#[tokio::test]
async fn damaged_object_is_reported_again_on_a_rerun() {
    let (s3, bucket) = archive().await;
    let key = "logs/2015/01/20/04/app.json.gz";
    let mut cut = content(key);
    cut.truncate(cut.len() / 2);
    s3.put_object()
        .bucket(&bucket)
        .key(key)
        .body(ByteStream::from(cut))
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path());
    let out = dir.path().join("out");
    let args = [&DAY[..], &["--out", out.to_str().unwrap()]].concat();
    for (run, skipped) in [(1, 0), (2, 24)] {
        let (o, s) = backfill(&cfg, &bucket, &args);
        assert_eq!(o.status.code(), Some(1), "run {run}: damage means exit 1");
        assert_eq!(s["damaged"][0]["key"], key, "run {run}");
        assert_eq!(s["skipped"], skipped, "run {run}");
    }
}

/// Review finding: `--enqueue --force` makes the fleet route again.
#[tokio::test]
async fn enqueue_force_reroutes_through_the_fleet() {
    let (_s3, bucket) = archive().await;
    let sqs = sqs().await;
    let queue_url = crate::support::create_queue(&sqs, "bff").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path());
    let out = dir.path().join("out");
    let (o, _) = backfill(
        &cfg,
        &bucket,
        &[&DAY[..], &["--out", out.to_str().unwrap()]].concat(),
    );
    assert_eq!(o.status.code(), Some(0));
    let first = manifests(&out)[0].clone();
    let before: Value = serde_json::from_slice(&std::fs::read(out.join(&first)).unwrap()).unwrap();

    let drain = |dest: std::path::PathBuf| {
        let queue_url = queue_url.clone();
        async move {
            router::service::run(
                &test_config(),
                queue_url,
                &logrouter::location::Location::Local(dest),
                true,
                std::future::pending(),
            )
            .await
            .unwrap()
        }
    };
    let (o, _) = backfill(
        &cfg,
        &bucket,
        &[&DAY[..], &["--enqueue", &queue_url]].concat(),
    );
    assert_eq!(o.status.code(), Some(0));
    drain(out.clone()).await;
    let same: Value = serde_json::from_slice(&std::fs::read(out.join(&first)).unwrap()).unwrap();
    assert_eq!(
        same["routed_at"], before["routed_at"],
        "without --force: skipped"
    );

    let (o, _) = backfill(
        &cfg,
        &bucket,
        &[&DAY[..], &["--enqueue", &queue_url, "--force"]].concat(),
    );
    assert_eq!(o.status.code(), Some(0));
    drain(out.clone()).await;
    let after: Value = serde_json::from_slice(&std::fs::read(out.join(&first)).unwrap()).unwrap();
    assert_ne!(
        after["routed_at"], before["routed_at"],
        "--force: routed again"
    );
    assert_eq!(manifests(&out).len(), 24);
}

/// The lines of a `--out DIR` replay, per type, in the order a reader of
/// the parts gets them: objects in key-time order (the manifests' source
/// time, then key), each object's parts in order.
fn replay_lines_by_type(out: &Path) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut objects: Vec<Value> = committed(out, "_replays/replay-")
        .iter()
        .map(|m| serde_json::from_slice(&std::fs::read(out.join(m)).unwrap()).unwrap())
        .collect();
    objects.sort_by_key(|m| {
        (
            m["source"]["time"].as_str().unwrap().to_owned(),
            m["source"]["key"].as_str().unwrap().to_owned(),
        )
    });
    let mut by_type: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for m in &objects {
        for (t, o) in m["types"].as_object().unwrap() {
            for p in o["parts"].as_array().unwrap() {
                let bytes = crate::support::gunzip(
                    &std::fs::read(out.join(p["key"].as_str().unwrap())).unwrap(),
                );
                let text = String::from_utf8(bytes).unwrap();
                by_type
                    .entry(t.clone())
                    .or_default()
                    .extend(text.lines().map(str::to_owned));
            }
        }
    }
    by_type
}

/// Issue #12: `router backfill … --match … --out -` piped into a consumer
/// process gives exactly the selected lines in key-time order (hour from the
/// key, then key; three key styles interleave, two objects share an hour),
/// nothing else on stdout; per type, the same lines in the same order as the
/// parts of a `--out DIR` replay. A failed object makes exit 1 and is named
/// on stderr with the summary; a quarantined line is counted there only. A
/// reader that stops early (`| head`) makes a quiet exit 0.
#[tokio::test]
async fn issue12_replay_to_stdout_is_the_dir_replay_in_key_time_order() {
    use std::process::Stdio;
    let (s3, bucket) = archive().await;
    let bad = "logs/2015/01/20/07/app.json.gz";
    s3.put_object()
        .bucket(&bucket)
        .key(bad)
        .body(ByteStream::from_static(b"BZh91AY&SY not gzip"))
        .send()
        .await
        .unwrap();
    // Same hour as `logs/events 2015-01-20_08.log.gz`, and before it by key.
    let extra_key = "logs/2015/01/20/08/zz.json";
    let extra = "{\"event_type\":\"page_view\",\"i\":7,\"x\":1}\n{\"i\":7 not json\n\n{\"event_type\":\"video_play\",\"i\":7,\"k\":\"extra\"}\n";
    s3.put_object()
        .bucket(&bucket)
        .key(extra_key)
        .body(ByteStream::from_static(extra.as_bytes()))
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path());
    let needle = "\"i\":7";

    // What the consumer must get: the archive's own lines, by hand.
    let mut objects: Vec<(chrono::DateTime<Utc>, String)> = archive_keys()
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            let t =
                Utc.with_ymd_and_hms(2015, 1, 19, 12, 0, 0).unwrap() + Duration::hours(i as i64);
            (t, k)
        })
        .filter(|(t, _)| t.format("%Y-%m-%d").to_string() == "2015-01-20")
        .collect();
    objects.push((
        Utc.with_ymd_and_hms(2015, 1, 20, 8, 0, 0).unwrap(),
        extra_key.to_owned(),
    ));
    objects.sort();
    assert_eq!(objects.len(), 25);
    let mut want = String::new();
    for (_, k) in &objects {
        let body = match k.as_str() {
            k if k == bad => continue,
            k if k == extra_key => extra.as_bytes().to_vec(),
            k => crate::support::gunzip(&content(k)),
        };
        for line in String::from_utf8(body).unwrap().lines() {
            if line.contains(needle) && serde_json::from_str::<Value>(line).is_ok() {
                want.push_str(line);
                want.push('\n');
            }
        }
    }
    assert_eq!(want.lines().count(), 23 * 22 + 2);

    let args = |out: &str| {
        let mut a: Vec<String> = [
            "backfill",
            "--config",
            &cfg,
            "--source",
            &format!("s3://{bucket}/logs/"),
            "--match",
            needle,
            "--out",
            out,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(DAY.iter().map(|s| s.to_string()));
        a
    };
    // router … --out - | gzip -1: the consumer's output is all there is.
    let mut router = crate::support::router_at_moto()
        .args(args("-"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let consumer = std::process::Command::new("gzip")
        .arg("-1")
        .stdin(Stdio::from(router.stdout.take().unwrap()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let consumed = consumer.wait_with_output().unwrap();
    let routed = router.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&routed.stderr);
    assert!(consumed.status.success());
    assert_eq!(routed.status.code(), Some(1), "a failed object: {stderr}");
    let got = String::from_utf8(crate::support::gunzip(&consumed.stdout)).unwrap();
    assert_eq!(got, want, "stdout is the selected lines in key-time order");
    assert!(stderr.contains(&format!("FAILED {bad}")), "{stderr}");
    assert!(
        stderr.contains("routed 24, skipped 0 (already routed), damaged 0, failed 1 of 25 objects"),
        "{stderr}"
    );
    assert!(stderr.contains("quarantined: invalid_json 1"), "{stderr}");

    // The same replay into a folder: per type, the same lines in the same order.
    let out = dir.path().join("out");
    let o = crate::support::router_at_moto()
        .args(args(out.to_str().unwrap()))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let mut piped: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for line in got.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        piped
            .entry(v["event_type"].as_str().unwrap().to_owned())
            .or_default()
            .push(line.to_owned());
    }
    assert_eq!(piped, replay_lines_by_type(&out));
    assert_eq!(piped.len(), 2);
    assert!(
        !files_under(dir.path())
            .iter()
            .any(|f| !f.starts_with("out/") && f != "c.toml"),
        "--out - writes no file: {:?}",
        files_under(dir.path())
    );

    // A reader that stops early: the replay stops quietly, exit 0, even
    // though a failed object was still ahead (the whole replay is far more
    // than the pipe's buffer).
    let mut router = crate::support::router_at_moto()
        .args(
            args("-")
                .into_iter()
                .filter(|a| a != "--match" && a != needle),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let head = std::process::Command::new("head")
        .args(["-n", "3"])
        .stdin(Stdio::from(router.stdout.take().unwrap()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .unwrap();
    let routed = router.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&routed.stderr);
    assert_eq!(routed.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("closed by its reader"), "{stderr}");
    let first = String::from_utf8(head.stdout).unwrap();
    assert_eq!(first.lines().count(), 3);
    assert!(first.starts_with("{\"event_type\":\"video_play\",\"i\":0,\"k\":\"logs/dt=2015-01-20/hour=00/web.json.gz\"}\n"), "{first}");
}

/// Issue #12: a replay to stdout of an access log writes what the parts
/// hold, the JSON object each line becomes, not the line as read (the two
/// sinks were built apart and met in one merge).
#[tokio::test]
async fn issue12_replay_to_stdout_of_an_access_log_writes_its_json_objects() {
    let s3 = s3().await;
    let bucket = unique("cfpipe");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/logs/cloudfront-EMLARXS9EXAMPLE.2019-12-04-21.example"),
    )
    .unwrap();
    let key = "cf/EMLARXS9EXAMPLE.2015-01-20-13.a1b2c3d4.gz";
    s3.put_object()
        .bucket(&bucket)
        .key(key)
        .body(ByteStream::from(gzip(example.as_bytes())))
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path());
    let args = |out: &str| -> Vec<String> {
        [
            "backfill",
            "--config",
            &cfg,
            "--format",
            "cloudfront",
            "--type",
            "cloudfront",
            "--source",
            &format!("s3://{bucket}/cf/"),
            "--out",
            out,
        ]
        .iter()
        .chain(DAY.iter())
        .map(|s| s.to_string())
        .collect()
    };
    let piped = crate::support::router_at_moto()
        .args(args("-"))
        .output()
        .unwrap();
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    let stdout = String::from_utf8(piped.stdout).unwrap();
    let records = example.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(stdout.lines().count(), records, "{stdout}");
    for line in stdout.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["x_edge_location"], "LAX1", "{line}");
        assert_eq!(v["cs_uri_stem"], "/index.html", "{line}");
    }
    // The same lines as the part a replay into a folder writes.
    let out = dir.path().join("out");
    let o = crate::support::router_at_moto()
        .args(args(out.to_str().unwrap()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let parts: Vec<String> = files_under(&out)
        .into_iter()
        .filter(|f| f.starts_with("cloudfront/"))
        .collect();
    assert_eq!(parts.len(), 1, "{parts:?}");
    let part = String::from_utf8(crate::support::gunzip(
        &std::fs::read(out.join(&parts[0])).unwrap(),
    ))
    .unwrap();
    assert_eq!(stdout, part);
}
