//! S3 and SQS for real, through the AWS SDK against moto server: bucket
//! notifications, `router run --drain`, idempotent duplicates, failures that
//! leave the message on the queue.

use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
use logrouter::config::Config;
use logrouter::location::Location;
use logrouter::manifest::Manifest;
use logrouter::queue::RunStats;
use serde_json::Value;

use crate::support::{
    get, gunzip, gzip, list_keys, messages_on_queue, s3, sqs, test_config, unique,
};

const LINES: &str = "{\"event_type\":\"video_play\",\"v\":1}\n{\"event_type\":\"page.view\"}\nnot json\n\n{\"event_type\":\"video_play\",\"v\":2}\n";

pub struct Stand {
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub src: String,
    pub out: String,
    pub queue_url: String,
}

/// A source bucket whose ObjectCreated events go to a fresh queue, and an
/// output bucket (created unless `create_out` is false).
pub async fn stand(create_out: bool) -> Stand {
    let s3 = s3().await;
    let sqs = sqs().await;
    let src = unique("src");
    let out = unique("out");
    s3.create_bucket().bucket(&src).send().await.unwrap();
    if create_out {
        s3.create_bucket().bucket(&out).send().await.unwrap();
    }
    let queue_url = crate::support::create_queue(&sqs, "q").await;
    let arn = crate::support::queue_arn(&sqs, &queue_url).await;
    s3.put_bucket_notification_configuration()
        .bucket(&src)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(
                    QueueConfiguration::builder()
                        .queue_arn(arn)
                        .events(Event::S3ObjectCreated)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    Stand {
        s3,
        sqs,
        src,
        out,
        queue_url,
    }
}

async fn run_drain(config: &Config, st: &Stand, dest: &str) -> Arc<RunStats> {
    router::service::run(
        config,
        st.queue_url.clone(),
        &Location::parse(dest).unwrap(),
        true,
        std::future::pending(),
    )
    .await
    .unwrap()
}

pub async fn put(st: &Stand, key: &str, data: Vec<u8>) {
    st.s3
        .put_object()
        .bucket(&st.src)
        .key(key)
        .body(ByteStream::from(data))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn notified_object_is_routed_and_its_message_deleted() {
    let st = stand(true).await;
    let key = "logs/dt=2015-01-20/hour=13/web 1.json.gz";
    put(&st, key, gzip(LINES.as_bytes())).await;
    let stats = run_drain(&test_config(), &st, &format!("s3://{}/routed", st.out)).await;

    assert_eq!(RunStats::get(&stats.objects_done), 1);
    assert_eq!(RunStats::get(&stats.messages_failed), 0);
    assert_eq!(
        messages_on_queue(&st.sqs, &st.queue_url).await,
        0,
        "test event and notification consumed"
    );

    let keys = list_keys(&st.s3, &st.out).await;
    assert_eq!(keys.len(), 4, "{keys:?}");
    let manifest_key = keys
        .iter()
        .find(|k| k.starts_with("routed/_manifests/dt=2015-01-20/hour=13/web_1-"))
        .unwrap();
    let m: Manifest = serde_json::from_slice(&get(&st.s3, &st.out, manifest_key).await).unwrap();
    assert_eq!(m.source.object.key.as_deref(), Some(key));
    assert!(m.source.object.etag.is_some());
    assert_eq!(
        (
            m.lines.read,
            m.lines.routed,
            m.lines.quarantined,
            m.lines.blank
        ),
        (5, 3, 1, 1)
    );
    let play = &m.types["video_play"].parts[0];
    let text = gunzip(&get(&st.s3, &st.out, &format!("routed/{}", play.key)).await);
    assert_eq!(
        text,
        b"{\"event_type\":\"video_play\",\"v\":1}\n{\"event_type\":\"video_play\",\"v\":2}\n"
    );
    let rejected = gunzip(
        &get(
            &st.s3,
            &st.out,
            &format!("routed/{}", m.quarantine.parts[0].key),
        )
        .await,
    );
    let r: Value = serde_json::from_slice(&rejected).unwrap();
    assert_eq!(r["reason"], "invalid_json");
    assert_eq!(r["text"], "not json");
    assert_eq!(r["line"], 3);
}

#[tokio::test]
async fn duplicate_notifications_leave_the_same_keys_and_nothing_more() {
    let st = stand(true).await;
    let key = "logs/2015-01-20-14.json.gz";
    put(&st, key, gzip(LINES.as_bytes())).await;
    let dest = format!("s3://{}/", st.out);
    run_drain(&test_config(), &st, &dest).await;
    let keys_before = list_keys(&st.s3, &st.out).await;
    let manifest_key = keys_before
        .iter()
        .find(|k| k.starts_with("_manifests/"))
        .unwrap()
        .clone();
    let manifest_before = get(&st.s3, &st.out, &manifest_key).await;

    // The same notification twice more, as S3 would redeliver it.
    let body = serde_json::json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": st.src}, "object": {"key": "logs/2015-01-20-14.json.gz"}}}]})
    .to_string();
    for _ in 0..2 {
        st.sqs
            .send_message()
            .queue_url(&st.queue_url)
            .message_body(&body)
            .send()
            .await
            .unwrap();
    }
    let stats = run_drain(&test_config(), &st, &dest).await;
    assert_eq!(RunStats::get(&stats.objects_done), 2);
    assert_eq!(list_keys(&st.s3, &st.out).await, keys_before);
    assert_eq!(
        get(&st.s3, &st.out, &manifest_key).await,
        manifest_before,
        "already routed: not rewritten"
    );
    assert_eq!(messages_on_queue(&st.sqs, &st.queue_url).await, 0);

    // A new version of the object (new ETag) is routed again, same keys.
    put(&st, key, gzip(b"{\"event_type\":\"video_play\",\"v\":9}\n")).await;
    run_drain(&test_config(), &st, &dest).await;
    let keys_after = list_keys(&st.s3, &st.out).await;
    assert!(
        keys_after.iter().all(|k| keys_before.contains(k)),
        "no new keys: {keys_after:?}"
    );
    let m: Manifest = serde_json::from_slice(&get(&st.s3, &st.out, &manifest_key).await).unwrap();
    assert_eq!(m.lines.read, 1);
    assert_eq!(
        keys_after.len(),
        2,
        "stale parts of the first version removed: {keys_after:?}"
    );
}

#[tokio::test]
async fn unreachable_output_bucket_leaves_the_message_on_the_queue() {
    let st = stand(false).await;
    put(&st, "logs/2015-01-20-15.json.gz", gzip(LINES.as_bytes())).await;
    let mut config = test_config();
    config.queue.failure_backoff_secs = 60;
    let stats = run_drain(&config, &st, &format!("s3://{}/routed", st.out)).await;
    assert_eq!(RunStats::get(&stats.objects_failed), 1);
    assert_eq!(RunStats::get(&stats.messages_failed), 1);
    assert_eq!(
        messages_on_queue(&st.sqs, &st.queue_url).await,
        1,
        "the notification stays for a retry"
    );
}

#[tokio::test]
async fn unknown_bodies_are_never_deleted() {
    let st = stand(true).await;
    for body in ["this is not a notification", "{\"hello\": \"world\"}"] {
        st.sqs
            .send_message()
            .queue_url(&st.queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let stats = run_drain(&test_config(), &st, &format!("s3://{}/", st.out)).await;
    assert_eq!(RunStats::get(&stats.messages_unknown), 2);
    assert_eq!(messages_on_queue(&st.sqs, &st.queue_url).await, 2);
}

#[tokio::test]
async fn cli_routes_s3_to_s3_with_multipart_upload() {
    let st = stand(true).await;
    let key = "archive/2015/01/20/13/events.json.gz";
    put(&st, key, gzip(LINES.as_bytes())).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    // Every part goes up by multipart upload (a one-chunk upload is valid).
    std::fs::write(
        &cfg,
        "[route]\nmultipart_threshold_bytes = 1\n[aws]\nforce_path_style = true\n",
    )
    .unwrap();
    let o = crate::support::router_at_moto()
        .args(["route", "--json", "--config", cfg.to_str().unwrap()])
        .args([
            "--out",
            &format!("s3://{}/r", st.out),
            &format!("s3://{}/{key}", st.src),
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    let outputs = summary["sources"][0]["outputs"].as_array().unwrap().clone();
    assert_eq!(outputs.len(), 3);
    for k in outputs {
        let data = get(&st.s3, &st.out, &format!("r/{}", k.as_str().unwrap())).await;
        assert!(!gunzip(&data).is_empty());
    }
    let o = crate::support::router_at_moto()
        .args([
            "route",
            "--out",
            dir.path().to_str().unwrap(),
            &format!("s3://{}/missing.gz", st.src),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.gz"));
}

#[tokio::test]
async fn router_run_drain_binary_routes_a_notified_object() {
    let st = stand(true).await;
    put(&st, "logs/2015-01-20-16.json.gz", gzip(LINES.as_bytes())).await;
    let cfg = tempfile::tempdir().unwrap();
    let cfg_file = cfg.path().join("c.toml");
    std::fs::write(
        &cfg_file,
        "[queue]\nwait_time_secs = 1\n[aws]\nforce_path_style = true\n",
    )
    .unwrap();
    let o = crate::support::router_at_moto()
        .args(["run", "--drain", "--config", cfg_file.to_str().unwrap()])
        .args([
            "--queue-url",
            &st.queue_url,
            "--out",
            &format!("s3://{}/x", st.out),
        ])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{log}");
    assert!(log.contains("object done"), "{log}");
    assert_eq!(list_keys(&st.s3, &st.out).await.len(), 4);
    assert_eq!(messages_on_queue(&st.sqs, &st.queue_url).await, 0);
}

#[tokio::test]
async fn damaged_object_is_recorded_and_its_message_does_not_loop() {
    let st = stand(true).await;
    let mut data = gzip(&LINES.repeat(2000).into_bytes());
    data.truncate(data.len() / 2);
    put(&st, "logs/2015-01-20-17.json.gz", data).await;
    let stats = run_drain(&test_config(), &st, &format!("s3://{}/", st.out)).await;
    assert_eq!(RunStats::get(&stats.objects_done), 1);
    assert_eq!(
        messages_on_queue(&st.sqs, &st.queue_url).await,
        0,
        "damage is terminal: consumed"
    );
    let keys = list_keys(&st.s3, &st.out).await;
    let mk = keys.iter().find(|k| k.starts_with("_manifests/")).unwrap();
    let m: Manifest = serde_json::from_slice(&get(&st.s3, &st.out, mk).await).unwrap();
    let d = m.damage.clone().expect("damage in manifest");
    assert!(
        d.raw_offset > 0 && m.lines.routed > 0,
        "{d:?} {:?}",
        m.lines
    );
    m.check_counts().unwrap();
}

/// The SNS-wrapped and EventBridge fixture bodies, pointed at a real object,
/// go through the queue into routing like a direct notification.
#[tokio::test]
async fn sns_wrapped_and_eventbridge_bodies_are_routed() {
    let st = stand(true).await;
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/notifications/");
    let sns = std::fs::read_to_string(format!("{fixtures}sns-wrapped.json")).unwrap();
    let eb = std::fs::read_to_string(format!("{fixtures}eventbridge-object-created.json")).unwrap();
    // Point the fixtures at this test's bucket and at keys that exist.
    let sns = sns
        .replace("stats-archive", &st.src)
        .replace("events+2015-01-20_14.log.gz", "sns+2015-01-20_14.log.gz");
    let eb = eb
        .replace("stats-archive", &st.src)
        .replace("events-2015-01-20_15.log.gz", "eb-2015-01-20_15.log.gz");
    // Keys of the objects themselves (created after the notification
    // configuration, so moto also notifies them directly).
    put(
        &st,
        "logs/2015/01/20/sns 2015-01-20_14.log.gz",
        gzip(LINES.as_bytes()),
    )
    .await;
    put(
        &st,
        "logs/2015/01/20/eb-2015-01-20_15.log.gz",
        gzip(LINES.as_bytes()),
    )
    .await;
    for body in [sns, eb] {
        st.sqs
            .send_message()
            .queue_url(&st.queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let stats = run_drain(&test_config(), &st, &format!("s3://{}/", st.out)).await;
    // Two direct notifications and two wrapped ones: each object routed once,
    // its duplicate acknowledged as already routed.
    assert_eq!(RunStats::get(&stats.objects_done), 4);
    assert_eq!(RunStats::get(&stats.messages_unknown), 0);
    let manifests: Vec<String> = list_keys(&st.s3, &st.out)
        .await
        .into_iter()
        .filter(|k| k.starts_with("_manifests/"))
        .collect();
    assert_eq!(manifests.len(), 2, "{manifests:?}");
    assert_eq!(messages_on_queue(&st.sqs, &st.queue_url).await, 0);
}

/// moto (like S3 at times) sends two ObjectCreated events for one multipart
/// upload: the second is acknowledged without writing anything new.
#[tokio::test]
async fn multipart_source_upload_is_routed_once() {
    let st = stand(true).await;
    let key = "logs/2015-01-20-18.json.gz";
    let data = gzip(&LINES.repeat(50_000).into_bytes());
    let created = st
        .s3
        .create_multipart_upload()
        .bucket(&st.src)
        .key(key)
        .send()
        .await
        .unwrap();
    let id = created.upload_id().unwrap();
    let mut parts = Vec::new();
    for (i, chunk) in data.chunks(5 * 1024 * 1024).enumerate() {
        let n = i as i32 + 1;
        let done = st
            .s3
            .upload_part()
            .bucket(&st.src)
            .key(key)
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .unwrap();
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .set_e_tag(done.e_tag().map(str::to_owned))
                .build(),
        );
    }
    st.s3
        .complete_multipart_upload()
        .bucket(&st.src)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let stats = run_drain(&test_config(), &st, &format!("s3://{}/", st.out)).await;
    assert!(RunStats::get(&stats.objects_done) >= 1);
    assert_eq!(RunStats::get(&stats.objects_failed), 0);
    let keys = list_keys(&st.s3, &st.out).await;
    assert_eq!(keys.len(), 4, "three parts and one manifest: {keys:?}");
    let mk = keys.iter().find(|k| k.starts_with("_manifests/")).unwrap();
    let m: Manifest = serde_json::from_slice(&get(&st.s3, &st.out, mk).await).unwrap();
    assert_eq!(m.lines.read, 5 * 50_000);
    assert_eq!(messages_on_queue(&st.sqs, &st.queue_url).await, 0);
}

/// An output that cannot be written names its cause (here a missing bucket:
/// moto fails the manifest read first; with real S3 a denied PUT takes the
/// upload path, where the committer's error is now reported ahead of the line
/// loop's "committer stopped").
#[test]
fn failed_upload_reports_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("2015-01-20-19.jsonl");
    std::fs::write(&src, LINES.repeat(1000)).unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[route]\npart_size_bytes = 1024\n[aws]\nforce_path_style = true\n",
    )
    .unwrap();
    let o = crate::support::router_at_moto()
        .args(["route", "--config", cfg.to_str().unwrap()])
        .args([
            "--out",
            &format!("s3://{}/x", unique("missing")),
            src.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("NoSuchBucket"), "{err}");
    assert!(!err.contains("committer stopped"), "{err}");
}

/// Issue 13: a source key of 1,000 bytes (S3 allows 1,024), announced on
/// the queue and routed under a destination prefix as long as the router
/// allows: every key it writes stays within S3's limit. One byte more of
/// prefix is refused at start-up, naming the limit, by `route` and `run`
/// alike, at once (not a retry loop against S3's KeyTooLongError).
#[tokio::test]
async fn issue13_a_1000_byte_source_key_under_the_longest_prefix() {
    let st = stand(true).await;
    let dir = "logs/dt=2015-01-20/hour=13/";
    let key = format!("{dir}{}.json.gz", "k".repeat(1000 - dir.len() - 8));
    assert_eq!(key.len(), 1000);
    let long_type = "t".repeat(logrouter::normalize::MAX_NAME_LEN);
    let lines = format!("{LINES}{{\"event_type\":\"{long_type}\"}}\n");
    put(&st, &key, gzip(lines.as_bytes())).await;
    let cfg = tempfile::tempdir().unwrap();
    let cfg_file = cfg.path().join("c.toml");
    std::fs::write(
        &cfg_file,
        "[queue]\nwait_time_secs = 1\n[aws]\nforce_path_style = true\n",
    )
    .unwrap();
    let longest = logrouter::layout::S3_MAX_KEY_BYTES - logrouter::layout::MAX_RELATIVE_KEY_BYTES;
    let run = |prefix: &str| {
        let started = std::time::Instant::now();
        let o = crate::support::router_at_moto()
            .args(["run", "--drain", "--config", cfg_file.to_str().unwrap()])
            .args(["--queue-url", &st.queue_url])
            .args(["--out", &format!("s3://{}/{prefix}", st.out)])
            .output()
            .unwrap();
        (o, started.elapsed())
    };

    // One byte too long (the trailing `/` counts): refused before any work.
    let too_long = "p".repeat(longest);
    let (o, took) = run(&too_long);
    let said = String::from_utf8_lossy(&o.stderr).to_string();
    assert_ne!(o.status.code(), Some(0), "{said}");
    assert!(
        said.contains("over S3's limit of 1024 bytes per key")
            && said.contains(&format!("at most {longest} bytes")),
        "{said}"
    );
    assert!(took < std::time::Duration::from_secs(20), "{took:?}");
    let o = crate::support::router_at_moto()
        .args(["route", "--config", cfg_file.to_str().unwrap()])
        .args(["--out", &format!("s3://{}/{too_long}", st.out)])
        .arg(format!("s3://{}/{key}", st.src))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&o.stderr).contains("1024 bytes per key"));
    assert!(list_keys(&st.s3, &st.out).await.is_empty());
    assert!(messages_on_queue(&st.sqs, &st.queue_url).await >= 1, "kept");

    // The longest prefix allowed: routed, every key within the limit.
    let prefix = "p".repeat(longest - 1);
    let (o, _) = run(&prefix);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let keys = list_keys(&st.s3, &st.out).await;
    let manifests: Vec<_> = keys.iter().filter(|k| k.contains("/_manifests/")).collect();
    assert_eq!(manifests.len(), 1, "{keys:?}");
    let types: Vec<_> = keys
        .iter()
        .filter(|k| k.contains(".part-"))
        .map(|k| k[prefix.len() + 1..].split('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        ["_rejected", "page_view", long_type.as_str(), "video_play"],
        "{keys:?}"
    );
    let longest_written = keys.iter().map(|k| k.len()).max().unwrap();
    assert!(longest_written <= 1024, "{longest_written}");
    assert!(
        longest_written > 990,
        "the test reaches the limit: {longest_written}"
    );
    let m: Value = serde_json::from_slice(&get(&st.s3, &st.out, manifests[0]).await).unwrap();
    assert_eq!(m["source"]["uri"], format!("s3://{}/{key}", st.src), "{m}");
    assert_eq!(messages_on_queue(&st.sqs, &st.queue_url).await, 0);
}

/// Issue #13 (found by the fault soak): a re-route stopped after it wrote
/// its manifest but before it removed the parts it no longer writes (a
/// failed DeleteObject, a kill, a lost answer to the manifest's PUT) used
/// to leave them for ever: the retry found the manifest of this ETag and
/// skipped. Now the removal is retried until it is done, also by a route
/// that finds the source already routed.
#[tokio::test]
async fn issue13_stale_parts_a_stopped_clean_up_left_are_removed_by_the_next_delivery() {
    use logrouter::aws::AwsClients;
    use router::route::{RouteOutcome, Router};
    let st = stand(true).await;
    let key = "logs/2015-01-20-15.json.gz";
    put(
        &st,
        key,
        gzip(b"{\"event_type\":\"a\"}\n{\"event_type\":\"c\"}\n"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = test_config();
    let router = Router::new(
        &config,
        &Location::Local(out.clone()),
        Arc::new(AwsClients::new(config.aws.clone())),
    )
    .await
    .unwrap();
    let src = Location::S3 {
        bucket: st.src.clone(),
        key: key.into(),
    };
    let RouteOutcome::Routed { manifest: v1, .. } = router.route_object(&src, true).await.unwrap()
    else {
        panic!("not routed")
    };
    let stale = out.join(&v1.types["c"].parts[0].key);

    // The corrected object has no `c`. The stale part cannot be removed (a
    // folder with something in it stands in its place): the route fails
    // after its manifest is written.
    put(&st, key, gzip(b"{\"event_type\":\"a\",\"v\":2}\n")).await;
    std::fs::remove_file(&stale).unwrap();
    std::fs::create_dir_all(stale.join("x")).unwrap();
    let err = router.route_object(&src, true).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("routing it again finishes the clean-up"),
        "{err}"
    );

    // The part is back as it was; the message is delivered again.
    std::fs::remove_dir_all(&stale).unwrap();
    std::fs::write(&stale, "the stale part").unwrap();
    let again = router.route_object(&src, true).await.unwrap();
    assert!(
        matches!(again, RouteOutcome::AlreadyRouted { .. }),
        "{again:?}"
    );
    assert!(!stale.exists(), "the stale part is removed");
    let files = crate::support::files_under(&out);
    assert_eq!(
        files.len(),
        2,
        "one part of `a` and the manifest: {files:?}"
    );
}
