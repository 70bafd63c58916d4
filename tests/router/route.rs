//! Routing rules, data-driven: each case routes bytes through the real
//! `Router` into a temporary folder and compares a plain-text description of
//! what landed (counts, each type's lines, each quarantined line's reason).

use std::path::Path;
use std::sync::Arc;

use logrouter::aws::AwsClients;
use logrouter::config::Config;
use logrouter::location::Location;
use logrouter::manifest::Manifest;
use router::route::{RouteOutcome, Router};
use serde_json::Value;

use crate::support::{files_under, gunzip, gzip};

/// A router writing under the local folder `out`.
async fn local_router(config: &Config, out: &Path) -> Router {
    Router::new(
        config,
        &Location::Local(out.to_path_buf()),
        Arc::new(AwsClients::default()),
    )
    .await
    .unwrap()
}

async fn route_file(dir: &Path, name: &str, input: &[u8], config: &Config) -> (Manifest, String) {
    let src = dir.join(name);
    std::fs::write(&src, input).unwrap();
    let out = dir.join("out");
    let router = local_router(config, &out).await;
    match router
        .route_object(&Location::Local(src), false)
        .await
        .unwrap()
    {
        RouteOutcome::Routed {
            manifest,
            manifest_key,
            ..
        } => (*manifest, manifest_key),
        other => panic!("{other:?}"),
    }
}

/// What landed, as text: counts, then each type's lines, then each
/// quarantined line as `line reason`, then damage.
fn describe(out: &Path, m: &Manifest) -> String {
    let mut s = format!(
        "read {}: routed {}, quarantined {}, blank {}\n",
        m.lines.read, m.lines.routed, m.lines.quarantined, m.lines.blank
    );
    for (t, o) in &m.types {
        for p in &o.parts {
            let text =
                String::from_utf8(decompress(&std::fs::read(out.join(&p.key)).unwrap())).unwrap();
            for line in text.lines() {
                s.push_str(&format!("{t}: {line}\n"));
            }
        }
    }
    for p in &m.quarantine.parts {
        let text = String::from_utf8(gunzip(&std::fs::read(out.join(&p.key)).unwrap())).unwrap();
        for line in text.lines() {
            let r: Value = serde_json::from_str(line).unwrap();
            s.push_str(&format!(
                "quarantine: {} {}\n",
                r["line"],
                r["reason"].as_str().unwrap()
            ));
        }
    }
    if let Some(d) = &m.damage {
        s.push_str(&format!("damage at line {}\n", d.line));
    }
    s
}

fn decompress(data: &[u8]) -> Vec<u8> {
    if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd_decode(data)
    } else {
        gunzip(data)
    }
}

fn zstd_decode(data: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(data)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

async fn check_with(config: &Config, input: &[u8], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = route_file(dir.path(), "events-2015-01-20-13.jsonl", input, config).await;
    m.check_counts().unwrap();
    let got = describe(&dir.path().join("out"), &m);
    assert_eq!(got.trim(), expected.trim(), "\n--- got ---\n{got}");
}

async fn check(input: &[u8], expected: &str) {
    check_with(&Config::default(), input, expected).await
}

#[tokio::test]
async fn plain_lines_route_by_type_unchanged() {
    check(
        b"{\"event_type\":\"video_play\",\"v\":1}\n{\"event_type\":\"PageView\", \"x\": [1, {}]}\n{\"event_type\":\"video_play\",\"v\":2}\n",
        r#"
read 3: routed 3, quarantined 0, blank 0
page_view: {"event_type":"PageView", "x": [1, {}]}
video_play: {"event_type":"video_play","v":1}
video_play: {"event_type":"video_play","v":2}"#,
    )
    .await;
}

#[tokio::test]
async fn every_quarantine_reason() {
    let mut config = Config::default();
    config.route.allowed_types = Some(vec!["video_play".into(), "video_pause".into(), "ok".into()]);
    config.route.max_types_per_source = 2;
    let input = [
        &b"{\"event_type\":\"video_play\"}\n"[..], // 1 routed
        b"{\"event_type\":\"video_play\"\n",       // 2 invalid_json
        b"[\"event_type\"]\n",                     // 3 not_an_object
        b"{\"type\":\"video_play\"}\n",            // 4 missing_event_type
        b"{\"event_type\":null}\n",                // 5 missing_event_type
        b"{\"event_type\":12}\n",                  // 6 invalid_event_type
        b"{\"event_type\":\"!!!\"}\n",             // 7 invalid_event_type
        b"{\"event_type\":\"a\",\"event_type\":\"b\"}\n", // 8 invalid_event_type
        b"{\"event_type\":\"page_view\"}\n",       // 9 event_type_not_allowed
        b"{\"event_type\":\"Video Pause\"}\n",     // 10 routed (second type)
        b"{\"event_type\":\"ok\"}\n",              // 11 too_many_event_types
        b"{\"event_type\":\"video_play\",\"s\":\"\xff\"}\n", // 12 invalid_utf8
    ]
    .concat();
    check_with(
        &config,
        &input,
        r#"
read 12: routed 2, quarantined 10, blank 0
video_pause: {"event_type":"Video Pause"}
video_play: {"event_type":"video_play"}
quarantine: 2 invalid_json
quarantine: 3 not_an_object
quarantine: 4 missing_event_type
quarantine: 5 missing_event_type
quarantine: 6 invalid_event_type
quarantine: 7 invalid_event_type
quarantine: 8 invalid_event_type
quarantine: 9 event_type_not_allowed
quarantine: 11 too_many_event_types
quarantine: 12 invalid_utf8"#,
    )
    .await;
}

#[tokio::test]
async fn crlf_bom_and_blank_lines() {
    check(
        b"\xEF\xBB\xBF{\"event_type\":\"a\"}\r\n\r\n   \n\t\n{\"event_type\":\"a\",\"n\":2}\r\n{\"event_type\":\"a\",\"n\":3}",
        r#"
read 6: routed 3, quarantined 0, blank 3
a: {"event_type":"a"}
a: {"event_type":"a","n":2}
a: {"event_type":"a","n":3}"#,
    )
    .await;
}

#[tokio::test]
async fn empty_object() {
    check(b"", "read 0: routed 0, quarantined 0, blank 0").await;
    check(&gzip(b""), "read 0: routed 0, quarantined 0, blank 0").await;
}

#[tokio::test]
async fn multi_member_gzip_is_read_to_the_end() {
    let mut input = gzip(b"{\"event_type\":\"a\",\"m\":1}\n");
    input.extend(gzip(b"{\"event_type\":\"a\",\"m\":2}\n"));
    input.extend(gzip(b"{\"event_type\":\"b\",\"m\":3}\n"));
    check(
        &input,
        r#"
read 3: routed 3, quarantined 0, blank 0
a: {"event_type":"a","m":1}
a: {"event_type":"a","m":2}
b: {"event_type":"b","m":3}"#,
    )
    .await;
}

#[tokio::test]
async fn zstd_input_and_output() {
    let input =
        zstd::encode_all(&b"{\"event_type\":\"a\"}\n{\"event_type\":\"b\"}\n"[..], 3).unwrap();
    let mut config = Config::default();
    config.route.output_compression = logrouter::config::OutputCompression::Zstd;
    check_with(
        &config,
        &input,
        r#"
read 2: routed 2, quarantined 0, blank 0
a: {"event_type":"a"}
b: {"event_type":"b"}"#,
    )
    .await;
}

/// Pseudo-random text that compresses poorly, so truncation lands mid-stream.
fn noisy_lines(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E3779B97F4A7C15;
    let mut out = Vec::new();
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend(
            format!(
                "{{\"event_type\":\"t{}\",\"i\":{i},\"r\":\"{:x}{:x}\"}}\n",
                i % 3,
                x,
                x.rotate_left(7)
            )
            .bytes(),
        );
    }
    out
}

#[tokio::test]
async fn truncated_gzip_routes_what_came_before_and_records_damage() {
    let full = gzip(&noisy_lines(5000));
    let cut = &full[..full.len() / 2];
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = route_file(dir.path(), "cut.gz", cut, &Config::default()).await;
    m.check_counts().unwrap();
    let d = m.damage.as_ref().expect("damage recorded");
    assert!(
        m.lines.routed > 1000 && m.lines.routed < 5000,
        "{:?}",
        m.lines
    );
    assert_eq!(d.raw_offset, cut.len() as u64);
    // The partial last line, if any, is quarantined, never routed.
    assert!(m.quarantine.by_reason.keys().all(|r| r == "truncated_line"));
    assert_eq!(d.line, m.lines.read + 1 - m.lines.quarantined);
}

#[tokio::test]
async fn corrupt_zstd_records_damage() {
    let mut data = zstd::encode_all(&noisy_lines(3000)[..], 3).unwrap();
    let n = data.len();
    data.truncate(n - 100);
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = route_file(dir.path(), "cut.zst", &data, &Config::default()).await;
    m.check_counts().unwrap();
    assert!(
        m.damage.is_some(),
        "truncated zstd must be reported as damage"
    );
}

#[tokio::test]
async fn too_long_line_is_streamed_to_quarantine_byte_for_byte() {
    let mut config = Config::default();
    config.route.max_line_bytes = 1000;
    let long = format!(
        "{{\"event_type\":\"a\",\"pad\":\"{}\"}}",
        "x\u{e9}".repeat(200_000)
    );
    let mut input = b"{\"event_type\":\"a\"}\n".to_vec();
    input.extend(long.as_bytes());
    input.extend(b"\n{\"event_type\":\"a\",\"after\":1}\n");
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = route_file(dir.path(), "long.jsonl", &input, &config).await;
    assert_eq!(m.lines.read, 3);
    assert_eq!(m.lines.routed, 2);
    assert_eq!(m.quarantine.by_reason.get("line_too_long"), Some(&1));
    let q =
        gunzip(&std::fs::read(dir.path().join("out").join(&m.quarantine.parts[0].key)).unwrap());
    let record: Value = serde_json::from_slice(q.strip_suffix(b"\n").unwrap()).unwrap();
    assert_eq!(record["line"], 2);
    use base64::Engine;
    let back = base64::engine::general_purpose::STANDARD
        .decode(record["base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(back, long.as_bytes());
}

#[tokio::test]
async fn non_utf8_line_is_recoverable_from_quarantine() {
    let raw = b"{\"event_type\":\"a\",\"s\":\"\xc3\x28\"}\r";
    let mut input = raw.to_vec();
    input.push(b'\n');
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = route_file(dir.path(), "bad.jsonl", &input, &Config::default()).await;
    let q =
        gunzip(&std::fs::read(dir.path().join("out").join(&m.quarantine.parts[0].key)).unwrap());
    let record: Value = serde_json::from_slice(&q).unwrap();
    assert_eq!(record["reason"], "invalid_utf8");
    use base64::Engine;
    let back = base64::engine::general_purpose::STANDARD
        .decode(record["base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(back, raw);
}

#[tokio::test]
async fn parts_roll_over_and_routing_again_writes_the_same_keys() {
    let mut config = Config::default();
    // Rollover is checked after each line against the compressed bytes that
    // reached the file, which lag the input by the 64 KiB block being
    // gathered and the twelve in flight: about 55 blocks a type, so 4 parts.
    config.route.part_size_bytes = 4096;
    let input = gzip(&noisy_lines(150_000));
    let dir = tempfile::tempdir().unwrap();
    let (m1, key) = route_file(dir.path(), "2015-01-20-13.json.gz", &input, &config).await;
    assert!(m1.types["t0"].parts.len() > 2, "expected several parts");
    let files1 = files_under(&dir.path().join("out"));
    let bytes1: Vec<Vec<u8>> = files1
        .iter()
        .filter(|f| !f.starts_with("_manifests"))
        .map(|f| std::fs::read(dir.path().join("out").join(f)).unwrap())
        .collect();
    assert!(
        key.starts_with("_manifests/dt=2015-01-20/hour=13/2015-01-20-13-"),
        "{key}"
    );

    let (m2, _) = route_file(dir.path(), "2015-01-20-13.json.gz", &input, &config).await;
    let files2 = files_under(&dir.path().join("out"));
    assert_eq!(
        files1, files2,
        "a second route writes the same keys and no others"
    );
    let bytes2: Vec<Vec<u8>> = files2
        .iter()
        .filter(|f| !f.starts_with("_manifests"))
        .map(|f| std::fs::read(dir.path().join("out").join(f)).unwrap())
        .collect();
    assert_eq!(bytes1, bytes2, "outputs are deterministic");
    assert_eq!(m1.types, m2.types);

    // Fewer, larger parts on a re-route: the stale parts are removed.
    config.route.part_size_bytes = 1 << 30;
    let (m3, _) = route_file(dir.path(), "2015-01-20-13.json.gz", &input, &config).await;
    assert_eq!(m3.types["t0"].parts.len(), 1);
    let files3 = files_under(&dir.path().join("out"));
    assert_eq!(
        files3.len(),
        3 + 1,
        "one part per type and the manifest: {files3:?}"
    );
}

#[tokio::test]
async fn github_archive_sample_routes_by_type_pointer() {
    let mut config = Config::default();
    config.route.type_field = "/type".into();
    let input = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/logs/gharchive-2015-01-01-15-sample.jsonl"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (m, key) = route_file(dir.path(), "2015-01-01-15.json", &input, &config).await;
    let types: Vec<&str> = m.types.keys().map(String::as_str).collect();
    assert_eq!(types, ["create_event", "issue_comment_event", "push_event"]);
    assert!(key.contains("dt=2015-01-01/hour=15"));
    // Routed lines are the source lines byte for byte (\r\n escapes inside strings kept).
    let out = dir.path().join("out");
    let mut routed = Vec::new();
    for t in m.types.values() {
        for p in &t.parts {
            routed.extend(
                gunzip(&std::fs::read(out.join(&p.key)).unwrap())
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec),
            );
        }
    }
    let mut source: Vec<Vec<u8>> = input
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    routed.sort();
    source.sort();
    assert_eq!(routed, source);
}

/// Review finding: a re-route that fails midway must not leave the old
/// manifest naming parts that now hold new data.
#[tokio::test]
async fn failed_reroute_withdraws_the_old_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let name = "2015-01-20-13.jsonl";
    let (_, key) = route_file(
        dir.path(),
        name,
        b"{\"event_type\":\"a\"}\n",
        &Config::default(),
    )
    .await;
    let out = dir.path().join("out");
    assert!(out.join(&key).exists());
    // A new type whose folder cannot be created: a file stands in its way.
    std::fs::write(out.join("b"), "in the way").unwrap();
    std::fs::write(
        dir.path().join(name),
        b"{\"event_type\":\"a\",\"v\":2}\n{\"event_type\":\"b\"}\n",
    )
    .unwrap();
    let router = local_router(&Config::default(), &out).await;
    let err = router
        .route_object(&Location::Local(dir.path().join(name)), false)
        .await;
    assert!(err.is_err());
    assert!(
        !out.join(&key).exists(),
        "the old manifest must be withdrawn"
    );
    assert!(
        files_under(&out).iter().all(|f| !f.contains(".tmp")),
        "no temporary files left: {:?}",
        files_under(&out)
    );
}

/// Issue #13 (found by the fault soak): a re-route that failed after it
/// withdrew the old manifest used to forget the old parts; retried, it
/// removed none of those it no longer writes (here: all of type `c`), which
/// stayed in the type folder forever, named by no manifest.
#[tokio::test]
async fn issue13_a_failed_re_route_removes_the_parts_it_no_longer_writes_when_retried() {
    let dir = tempfile::tempdir().unwrap();
    let name = "2015-01-20-13.jsonl";
    route_file(
        dir.path(),
        name,
        b"{\"event_type\":\"a\"}\n{\"event_type\":\"c\"}\n",
        &Config::default(),
    )
    .await;
    let out = dir.path().join("out");
    assert!(files_under(&out).iter().any(|f| f.starts_with("c/")));
    // The corrected source has no `c`; its first re-route fails midway (a
    // file stands where a new type's folder goes), after the withdrawal.
    std::fs::write(out.join("b"), "in the way").unwrap();
    let v2 = b"{\"event_type\":\"a\",\"v\":2}\n{\"event_type\":\"b\"}\n";
    std::fs::write(dir.path().join(name), v2).unwrap();
    let router = local_router(&Config::default(), &out).await;
    let src = Location::Local(dir.path().join(name));
    assert!(router.route_object(&src, false).await.is_err());
    std::fs::remove_file(out.join("b")).unwrap();

    let (m, _) = route_file(dir.path(), name, v2, &Config::default()).await;
    assert_eq!(m.types.keys().collect::<Vec<_>>(), ["a", "b"]);
    let mut named: Vec<String> = m.output_keys().map(str::to_owned).collect();
    named.push(
        files_under(&out)
            .into_iter()
            .find(|f| f.starts_with("_manifests/"))
            .unwrap(),
    );
    named.sort();
    assert_eq!(
        files_under(&out),
        named,
        "only the manifest and what it names (no `c` part, no record of the withdrawal)"
    );
}

/// Review finding: a CRLF line of exactly `max_line_bytes` (plus `\r`) that
/// spans read buffers is routed, not quarantined.
#[tokio::test]
async fn crlf_line_of_exactly_the_limit_is_routed() {
    let mut config = Config::default();
    config.route.max_line_bytes = 300_000;
    let prefix = b"{\"event_type\":\"a\",\"p\":\"";
    let pad = 300_000 - prefix.len() - 2;
    let mut line = prefix.to_vec();
    line.extend(std::iter::repeat_n(b'x', pad));
    line.extend(b"\"}");
    assert_eq!(line.len(), 300_000);
    let mut input = line.clone();
    input.extend(b"\r\n");
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = route_file(dir.path(), "crlf.jsonl", &input, &config).await;
    assert_eq!((m.lines.routed, m.lines.quarantined), (1, 0));
    line.push(b'x');
    let mut input = line.clone();
    input.extend(b"\r\n");
    let (m, _) = route_file(dir.path(), "crlf2.jsonl", &input, &config).await;
    assert_eq!(m.quarantine.by_reason.get("line_too_long"), Some(&1));
}

/// Review finding: a `--types` replay writes only lines of the selected
/// types; broken lines and over-long lines are counted as filtered, never
/// written (the full route quarantines them).
#[tokio::test]
async fn types_replay_writes_only_selected_lines() {
    let mut config = Config::default();
    config.route.max_line_bytes = 100;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("2015-01-20-13.jsonl");
    let long = format!("{{\"event_type\":\"a\",\"p\":\"{}\"}}", "x".repeat(300_000));
    let input = format!(
        "{{\"event_type\":\"a\"}}\nnot json\n{{\"x\":1}}\n{{\"event_type\":\"b\"}}\n{long}\n\n"
    );
    std::fs::write(&src, input).unwrap();
    let out = dir.path().join("out");
    let filter = logrouter::manifest::RouteFilter {
        types: Some(vec!["a".into()]),
        ..Default::default()
    };
    let router = local_router(&config, &out)
        .await
        .with_filter(filter)
        .unwrap();
    let m = match router
        .route_object(&Location::Local(src), false)
        .await
        .unwrap()
    {
        RouteOutcome::Routed { manifest, .. } => manifest,
        other => panic!("{other:?}"),
    };
    m.check_counts().unwrap();
    assert_eq!(
        (
            m.lines.read,
            m.lines.routed,
            m.lines.filtered,
            m.lines.blank
        ),
        (6, 1, 4, 1)
    );
    assert_eq!(m.lines.quarantined, 0);
    assert!(m.quarantine.parts.is_empty());
    let files = files_under(&out);
    assert!(
        files.iter().all(|f| f.starts_with("_replays/")),
        "{files:?}"
    );
    assert_eq!(files.len(), 2, "one part and the manifest: {files:?}");
}

/// `{"event_type":TYPE,"x":[[…1…]]}` with its deepest members on level
/// `levels` (`logrouter::json::MAX_JSON_DEPTH` counts levels: the line itself
/// is level 1, each array or object puts its members one level down).
fn nested_line(event_type: &str, levels: usize) -> String {
    let arrays = levels - 2;
    format!(
        "{{\"event_type\":\"{event_type}\",\"x\":{}1{}}}",
        "[".repeat(arrays),
        "]".repeat(arrays)
    )
}

#[tokio::test]
async fn too_deep_out_of_range_and_lone_surrogate_lines_are_quarantined() {
    use logrouter::json::MAX_JSON_DEPTH;
    let lines = [
        nested_line("deep", MAX_JSON_DEPTH),          // 1 routed
        nested_line("deep", MAX_JSON_DEPTH + 1),      // 2 too_deep
        r#"{"event_type":"a","n":1e400}"#.into(),     // 3 invalid_json
        r#"{"event_type":"a","n":-1e400}"#.into(),    // 4 invalid_json
        r#"{"event_type":"a","s":"\ud800"}"#.into(),  // 5 invalid_json
        r#"{"event_type":"a","s":"\udc00x"}"#.into(), // 6 invalid_json
        r#"{"event_type":"a","s":"\ud83d\ude00","n":1e308}"#.into(), // 7 routed
        r#"{"event_type":"a","n":123456789012345678901234567890}"#.into(), // 8 routed
        format!(r#"{{"x":{},"event_type":"a"}}"#, "[".repeat(200)), // 9 too_deep, type after
        r#"{"\ud800":1,"event_type":"a"}"#.into(),    // 10 invalid_json (a key)
    ];
    let input = lines.join("\n") + "\n";
    check(
        input.as_bytes(),
        &format!(
            r#"
read 10: routed 3, quarantined 7, blank 0
a: {}
a: {}
deep: {}
quarantine: 2 too_deep
quarantine: 3 invalid_json
quarantine: 4 invalid_json
quarantine: 5 invalid_json
quarantine: 6 invalid_json
quarantine: 9 too_deep
quarantine: 10 invalid_json"#,
            lines[6], lines[7], lines[0]
        ),
    )
    .await;
}

/// Issue #10, point 3: the router validated lines with serde's `IgnoredAny`,
/// which serde_json skips far more leniently than it builds a `Value`; a
/// line nested 200,000 deep was routed, then refused by the loader. Every
/// line the router routes must parse as the loader parses it, and what it
/// refuses is quarantined with the reason and the fix.
#[tokio::test]
async fn issue10_router_never_routes_a_line_the_loader_cannot_parse() {
    use logrouter::json::MAX_JSON_DEPTH;
    let deep = 200_000;
    let lines = [
        r#"{"event_type":"a","v":1}"#.to_string(),
        format!(
            r#"{{"event_type":"a","x":{}{}}}"#,
            "[".repeat(deep),
            "]".repeat(deep)
        ),
        r#"{"event_type":"a","x":1e400}"#.into(),
        r#"{"event_type":"a","x":"\ud800"}"#.into(),
        r#"{"event_type":"a","x":"\udc00x"}"#.into(),
        nested_line("a", MAX_JSON_DEPTH),
        nested_line("a", MAX_JSON_DEPTH + 1),
    ];
    let input = lines.join("\n") + "\n";
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = route_file(
        dir.path(),
        "issue10.jsonl",
        input.as_bytes(),
        &Config::default(),
    )
    .await;
    m.check_counts().unwrap();
    assert_eq!(
        (m.lines.read, m.lines.routed, m.lines.quarantined),
        (7, 2, 5)
    );
    let out = dir.path().join("out");
    // What the loader does with each routed line.
    for p in &m.types["a"].parts {
        let text = String::from_utf8(gunzip(&std::fs::read(out.join(&p.key)).unwrap())).unwrap();
        for line in text.lines() {
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|e| panic!("routed a line the loader refuses ({e}): {line:.80}"));
        }
    }
    let mut records = Vec::new();
    for p in &m.quarantine.parts {
        let text = String::from_utf8(gunzip(&std::fs::read(out.join(&p.key)).unwrap())).unwrap();
        for line in text.lines() {
            let r: Value = serde_json::from_str(line).unwrap();
            // The line is kept whole, to be fixed and replayed.
            assert_eq!(
                r["text"].as_str(),
                Some(&*lines[r["line"].as_u64().unwrap() as usize - 1])
            );
            records.push((
                r["line"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_string(),
                r["error"].as_str().unwrap().to_string(),
            ));
        }
    }
    let expected = [
        (2, "too_deep", "nested deeper than 128 levels, which the loader's JSON parser refuses (recursion limit exceeded at line 1 column 149): flatten the event in the producer"),
        (3, "invalid_json", "number out of range at line 1 column 27"),
        (4, "invalid_json", "unexpected end of hex escape at line 1 column 30"),
        (5, "invalid_json", "lone leading surrogate in hex escape at line 1 column 29"),
        (7, "too_deep", "nested deeper than 128 levels, which the loader's JSON parser refuses (recursion limit exceeded at line 1 column 149): flatten the event in the producer"),
    ];
    let got: Vec<(u64, &str, &str)> = records
        .iter()
        .map(|(l, r, e)| (*l, r.as_str(), e.as_str()))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(m.quarantine.by_reason.get("too_deep"), Some(&2));
    assert_eq!(m.quarantine.by_reason.get("invalid_json"), Some(&3));
}

/// Issue #12: access logs (CloudFront, S3 server access, ALB) become JSON
/// objects, one per line, routed by a field of that object.
mod issue12 {
    use logrouter::config::LineFormat;

    use super::*;

    const CLOUDFRONT: &[u8] =
        include_bytes!("../data/logs/cloudfront-EMLARXS9EXAMPLE.2019-12-04-21.example");
    const S3_ACCESS: &[u8] = include_bytes!("../data/logs/s3-access-2019-02-06-00-01-57-EXAMPLE");
    const ALB: &[u8] = include_bytes!("../data/logs/alb-example.log");

    /// CloudFront's current 33 fields; real files hold the first 24 or 26
    /// of them too (and 34 with one more appended).
    use router::format::cloudfront::STANDARD_FIELDS as CF_FIELDS;

    fn config(format: LineFormat, type_field: &str) -> Config {
        let mut c = Config::default();
        c.route.format = format;
        c.route.type_field = type_field.into();
        c.validate().unwrap();
        c
    }

    /// The tick pipeline's payload: an S3 access log's Request-URI carries
    /// the event as `?data=|…|`.
    fn tick_config() -> Config {
        let mut c = config(LineFormat::S3Access, "/event_type");
        c.route.payload = Some(crate::support::tick_payload());
        c.validate().unwrap();
        c
    }

    /// An S3 access log line with this request and user agent.
    fn s3_line(request: &str, user_agent: &str) -> String {
        format!("79a5 bucket1 [15/Jan/2014:19:33:24 +0000] 192.0.2.3 - REQ1 REST.GET.OBJECT tick \"{request}\" 200 - 0 0 12 11 \"-\" \"{user_agent}\" - host1 SigV4 ECDHE-RSA-AES128-SHA QueryString bucket1.s3.amazonaws.com TLSv1.2 - -")
    }

    /// Routes `input` and returns each routed type's lines as JSON values
    /// (for checks on many keys) plus the manifest.
    async fn routed(config: &Config, input: &[u8]) -> (Manifest, Vec<(String, Value)>) {
        let dir = tempfile::tempdir().unwrap();
        let (m, _) = route_file(dir.path(), "access.log", input, config).await;
        m.check_counts().unwrap();
        let mut got = Vec::new();
        for (t, o) in &m.types {
            for p in &o.parts {
                let data = gunzip(&std::fs::read(dir.path().join("out").join(&p.key)).unwrap());
                for line in String::from_utf8(data).unwrap().lines() {
                    got.push((t.clone(), serde_json::from_str(line).unwrap()));
                }
            }
        }
        (m, got)
    }

    #[tokio::test]
    async fn issue12_cloudfront_documented_example() {
        check_with(
            &config(LineFormat::Cloudfront, "/x_edge_result_type"),
            CLOUDFRONT,
            r#"
read 3: routed 1, quarantined 0, blank 2
hit: {"date":"2019-12-04","time":"21:02:31","x_edge_location":"LAX1","sc_bytes":"392","c_ip":"192.0.2.100","cs_method":"GET","cs_host":"d111111abcdef8.cloudfront.net","cs_uri_stem":"/index.html","sc_status":"200","cs_referer":null,"cs_user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/78.0.3904.108 Safari/537.36","cs_uri_query":null,"cs_uri_query_raw":null,"cs_cookie":null,"x_edge_result_type":"Hit","x_edge_request_id":"SOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==","x_host_header":"d111111abcdef8.cloudfront.net","cs_protocol":"https","cs_bytes":"23","time_taken":"0.001","x_forwarded_for":null,"ssl_protocol":"TLSv1.2","ssl_cipher":"ECDHE-RSA-AES128-GCM-SHA256","x_edge_response_result_type":"Hit","cs_protocol_version":"HTTP/2.0","fle_status":null,"fle_encrypted_fields":null,"c_port":"11040","time_to_first_byte":"0.001","x_edge_detailed_result_type":"Hit","sc_content_type":"text/html","sc_content_len":"78","sc_range_start":null,"sc_range_end":null,"timestamp":"2019-12-04T21:02:31Z"}"#,
        )
        .await;
        // The same object gzipped, as CloudFront delivers it, and by `auto`.
        let (m, got) = routed(
            &config(LineFormat::Auto, "/x_edge_result_type"),
            &gzip(CLOUDFRONT),
        )
        .await;
        assert_eq!((m.lines.read, m.lines.routed, m.lines.blank), (3, 1, 2));
        assert_eq!(got[0].1["cs_method"], "GET");
    }

    #[tokio::test]
    async fn issue12_cloudfront_header_changes_mid_file() {
        let input = "#Version: 1.0\n#Fields: date cs-uri-stem cs-uri-query cs(User-Agent)\n2019-12-04\t/embed/a%20b\tx=1%26y%3D2\tcurl/8.0%20(x%22y)\n#Fields: date sc-status cs-uri-stem\n2019-12-05\t200\t/share/c\n2019-12-05\t200\n2019-12-05\t200\t/share/d\textra\n";
        let mut c = config(LineFormat::Cloudfront, "/cs_uri_stem");
        c.route.type_pattern = Some("^/(embed|share|download)/".into());
        check_with(
            &c,
            input.as_bytes(),
            r#"
read 7: routed 2, quarantined 2, blank 3
embed: {"date":"2019-12-04","cs_uri_stem":"/embed/a b","cs_uri_query":"x=1&y=2","cs_uri_query_raw":"x=1%26y%3D2","cs_user_agent":"curl/8.0 (x\"y)","timestamp":null}
share: {"date":"2019-12-05","sc_status":"200","cs_uri_stem":"/share/c","timestamp":null}
quarantine: 6 malformed_record
quarantine: 7 malformed_record"#,
        )
        .await;
    }

    /// Noted in #13's fuzzing: a line within `max_line_bytes` can become a
    /// longer object (keys, escapes), past what the loader and Redshift
    /// take. The limit applies to the object too: such a line is
    /// quarantined, its neighbours routed.
    #[tokio::test]
    async fn issue13_a_converted_object_over_max_line_bytes_is_quarantined() {
        let mut c = config(LineFormat::Cloudfront, "/cs_uri_stem");
        c.route.type_pattern = Some("^/(embed|share|download)/".into());
        c.route.max_line_bytes = 130;
        // The first line is 64 bytes, its object (backslashes escaped, the
        // query twice, a null timestamp: the header names no time) 288;
        // the second line's object is 124.
        let query = format!("q={}", "\\".repeat(40));
        let input = format!("#Fields: date cs-uri-stem cs-uri-query cs(Cookie)\n2019-12-04\t/embed/a\t{query}\t-\n2019-12-05\t/share/b\t-\t-\n");
        check_with(
            &c,
            input.as_bytes(),
            r#"
read 3: routed 1, quarantined 1, blank 1
share: {"date":"2019-12-05","cs_uri_stem":"/share/b","cs_uri_query":null,"cs_uri_query_raw":null,"cs_cookie":null,"timestamp":null}
quarantine: 2 line_too_long"#,
        )
        .await;
    }

    /// Files of 24, 26 and 33 fields (CloudFront's history) and 34 (a field
    /// appended after this code): every value is kept under its own key.
    #[tokio::test]
    async fn issue12_cloudfront_old_and_new_field_counts() {
        let mut input = String::from("#Version: 1.0\n");
        let lists: Vec<Vec<&str>> = vec![
            CF_FIELDS[..24].to_vec(),
            CF_FIELDS[..26].to_vec(),
            CF_FIELDS.to_vec(),
            CF_FIELDS
                .iter()
                .copied()
                .chain(["x-future-field"])
                .collect(),
        ];
        for list in &lists {
            input.push_str(&format!("#Fields: {}\n", list.join(" ")));
            let values: Vec<String> = list
                .iter()
                .map(|f| {
                    if *f == "x-edge-result-type" {
                        "Miss".into()
                    } else if *f == "date" {
                        "2019-12-04".into()
                    } else if *f == "time" {
                        "21:02:31".into()
                    } else {
                        format!("v{}", f.len())
                    }
                })
                .collect();
            input.push_str(&values.join("\t"));
            input.push('\n');
        }
        let (m, got) = routed(
            &config(LineFormat::Cloudfront, "/x_edge_result_type"),
            input.as_bytes(),
        )
        .await;
        assert_eq!((m.lines.read, m.lines.routed, m.lines.blank), (9, 4, 5));
        // Two more keys than fields: cs_uri_query_raw and timestamp.
        let sizes: Vec<usize> = got
            .iter()
            .map(|(_, v)| v.as_object().unwrap().len())
            .collect();
        assert_eq!(sizes, [26, 28, 35, 36]);
        assert!(got
            .iter()
            .all(|(_, v)| v["timestamp"] == "2019-12-04T21:02:31Z"));
        assert!(got.iter().all(|(t, _)| t == "miss"));
        assert_eq!(got[3].1["x_future_field"], "v14");
        assert_eq!(got[3].1["sc_range_end"], "v12");
    }

    #[tokio::test]
    async fn issue12_cloudfront_without_fields_header() {
        let text = std::str::from_utf8(CLOUDFRONT).unwrap();
        let record = text.lines().last().unwrap();
        assert!(!record.starts_with('#'));
        let records = format!("{record}\n{record}\n").into_bytes();
        check_with(
            &config(LineFormat::Cloudfront, "/x_edge_result_type"),
            &records,
            r#"
read 2: routed 0, quarantined 2, blank 0
quarantine: 1 no_fields_header
quarantine: 2 no_fields_header"#,
        )
        .await;
        // `auto` without `#Version:` is JSON, which this is not.
        check_with(
            &config(LineFormat::Auto, "/x_edge_result_type"),
            &records,
            r#"
read 2: routed 0, quarantined 2, blank 0
quarantine: 1 invalid_json
quarantine: 2 invalid_json"#,
        )
        .await;
    }

    #[tokio::test]
    async fn issue12_s3_access_documented_example() {
        check_with(
            &config(LineFormat::S3Access, "/operation"),
            S3_ACCESS,
            r#"
read 1: routed 1, quarantined 0, blank 0
rest_put_object: {"bucket_owner":"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be","bucket":"DOC-EXAMPLE-BUCKET1","time":"06/Feb/2019:00:01:57 +0000","remote_ip":"192.0.2.3","requester":"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be","request_id":"DD6CC733AEXAMPLE","operation":"REST.PUT.OBJECT","key":"s3-dg.pdf","request_uri":"PUT /DOC-EXAMPLE-BUCKET1/s3-dg.pdf HTTP/1.1","http_status":"200","error_code":null,"bytes_sent":null,"object_size":"4406583","total_time":"41754","turn_around_time":"28","referer":null,"user_agent":"S3Console/0.4","version_id":null,"host_id":"10S62Zv81kBW7BB6SX4XJ48o6kpcl6LPwEoizZQQxJd5qDSCTLX0TgS37kYUBKQW3+bPdrg1234=","signature_version":"SigV4","cipher_suite":"ECDHE-RSA-AES128-SHA","authentication_type":"AuthHeader","host_header":"DOC-EXAMPLE-BUCKET1.s3.us-west-1.amazonaws.com","tls_version":"TLSV1.2","access_point_arn":null,"acl_required":"Yes","timestamp":"2019-02-06T00:01:57Z"}"#,
        )
        .await;
    }

    #[tokio::test]
    async fn issue12_s3_access_edge_cases() {
        let base = String::from_utf8(S3_ACCESS.to_vec()).unwrap();
        let base = base.trim_end();
        let lines = [
            // Embedded unescaped quotes in the User-Agent, `-` as `"-"`.
            base.replace("\"S3Console/0.4\"", "\"Mozilla/5.0 \"quoted\" (x; y)\""),
            // Two fields appended after the documented ones.
            format!("{base} future1 \"future two\""),
            // An old line that ends after the User-Agent.
            base[..base.find("\"S3Console/0.4\"").unwrap() + "\"S3Console/0.4\"".len()].to_string(),
            // An URL-encoded key.
            base.replace(" s3-dg.pdf ", " my%20file%2B1.pdf "),
            // Malformed: an unclosed quote, too few fields.
            base.replace("\"-\" \"S3Console/0.4\"", "\"-\" \"S3Console/0.4"),
            "79a5 bucket [06/Feb/2019:00:01:57 +0000] 192.0.2.3".into(),
        ];
        let (m, got) = routed(
            &config(LineFormat::S3Access, "/operation"),
            (lines.join("\n") + "\n").as_bytes(),
        )
        .await;
        assert_eq!(
            (m.lines.read, m.lines.routed, m.lines.quarantined),
            (6, 4, 2)
        );
        assert_eq!(m.quarantine.by_reason.get("malformed_record"), Some(&2));
        assert!(got.iter().all(|(t, _)| t == "rest_put_object"));
        let v: Vec<&Value> = got.iter().map(|(_, v)| v).collect();
        assert_eq!(v[0]["user_agent"], "Mozilla/5.0 \"quoted\" (x; y)");
        assert_eq!(v[0]["referer"], Value::Null);
        assert_eq!(v[0]["version_id"], Value::Null);
        assert_eq!(v[1]["field_27"], "future1");
        assert_eq!(v[1]["field_28"], "future two");
        assert_eq!(v[1]["acl_required"], "Yes");
        assert_eq!(v[2]["user_agent"], "S3Console/0.4");
        assert_eq!(v[2]["host_id"], Value::Null);
        assert_eq!(v[2].as_object().unwrap().len(), 27);
        assert_eq!(v[3]["key"], "my file+1.pdf");
    }

    #[tokio::test]
    async fn issue12_alb_documented_example() {
        check_with(
            &config(LineFormat::Alb, "/type"),
            ALB,
            r#"
read 1: routed 1, quarantined 0, blank 0
http: {"type":"http","time":"2018-07-02T22:23:00.186641Z","elb":"app/my-loadbalancer/50dc6c495c0c9188","client_port":"192.168.131.39:2817","target_port":"10.0.0.1:80","request_processing_time":"0.000","target_processing_time":"0.001","response_processing_time":"0.000","elb_status_code":"200","target_status_code":"200","received_bytes":"34","sent_bytes":"366","request":"GET http://www.example.com:80/ HTTP/1.1","user_agent":"curl/7.46.0","ssl_cipher":null,"ssl_protocol":null,"target_group_arn":"arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067","trace_id":"Root=1-58337262-36d228ad5d99923122bbe354","domain_name":null,"chosen_cert_arn":null,"matched_rule_priority":"0","request_creation_time":"2018-07-02T22:22:48.364000Z","actions_executed":"forward","redirect_url":null,"error_reason":null,"target_port_list":"10.0.0.1:80","target_status_code_list":"200","classification":null,"classification_reason":null,"conn_trace_id":null,"timestamp":"2018-07-02T22:23:00.186641Z"}"#,
        )
        .await;
        // Newer lines with fields appended, and one that is not ALB's.
        let base = String::from_utf8(ALB.to_vec()).unwrap();
        let input = format!(
            "{} \"TID_1\" \"-\" x\nhttp 2018-07-02T22:23:00Z\n",
            base.trim_end()
        );
        let (m, got) = routed(&config(LineFormat::Alb, "/type"), input.as_bytes()).await;
        assert_eq!(m.quarantine.by_reason.get("malformed_record"), Some(&1));
        assert_eq!(got[0].1["conn_trace_id"], "TID_1");
        assert_eq!(got[0].1["field_31"], Value::Null);
        assert_eq!(got[0].1["field_32"], "x");
    }

    /// The tick pipeline end to end through the router: the event in the
    /// query string is the routed object, typed by its own event_type.
    #[tokio::test]
    async fn issue12_payload_in_an_s3_access_log() {
        let tick = "GET /tick?data=|2014-01-15T19:33:23|xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx|1234567|Registered|InternalCodeForConsumerType|Wales|watch|video|4|60|120| HTTP/1.1";
        let input = [
            s3_line(tick, "Mozilla/5.0 (X11)"),
            // Appended and removed fields, a form-encoded value.
            s3_line("GET /tick?x=1&data=|2014-01-15T19:33:24|g2|7|Guest||Wales|pause|video|5|||new HTTP/1.1", "-"),
            s3_line("GET /tick?data=|2014-01-15T19:33:25|g3|8|Guest|c|North+East|stop HTTP/1.1", "-"),
            s3_line("GET /favicon.ico HTTP/1.1", "-"),
            s3_line("GET /tick?data=|2014-01-15T19:33:26|g4|9|Guest|c|Wales|| HTTP/1.1", "-"),
        ]
        .join("\n");
        check_with(
            &tick_config(),
            input.as_bytes(),
            r#"
read 5: routed 3, quarantined 2, blank 0
pause: {"event_timestamp":"2014-01-15T19:33:24","event_guid":"g2","user_id":"7","user_type":"Guest","consumer":null,"country":"Wales","event_type":"pause","video_type":"video","content_id":"5","start":null,"end":null,"field_12":"new","access_log":{"bucket_owner":"79a5","bucket":"bucket1","time":"15/Jan/2014:19:33:24 +0000","remote_ip":"192.0.2.3","requester":null,"request_id":"REQ1","operation":"REST.GET.OBJECT","key":"tick","request_uri":"GET /tick?x=1&data=|2014-01-15T19:33:24|g2|7|Guest||Wales|pause|video|5|||new HTTP/1.1","http_status":"200","error_code":null,"bytes_sent":"0","object_size":"0","total_time":"12","turn_around_time":"11","referer":null,"user_agent":null,"version_id":null,"host_id":"host1","signature_version":"SigV4","cipher_suite":"ECDHE-RSA-AES128-SHA","authentication_type":"QueryString","host_header":"bucket1.s3.amazonaws.com","tls_version":"TLSv1.2","access_point_arn":null,"acl_required":null,"timestamp":"2014-01-15T19:33:24Z"}}
stop: {"event_timestamp":"2014-01-15T19:33:25","event_guid":"g3","user_id":"8","user_type":"Guest","consumer":"c","country":"North East","event_type":"stop","video_type":null,"content_id":null,"start":null,"end":null,"access_log":{"bucket_owner":"79a5","bucket":"bucket1","time":"15/Jan/2014:19:33:24 +0000","remote_ip":"192.0.2.3","requester":null,"request_id":"REQ1","operation":"REST.GET.OBJECT","key":"tick","request_uri":"GET /tick?data=|2014-01-15T19:33:25|g3|8|Guest|c|North+East|stop HTTP/1.1","http_status":"200","error_code":null,"bytes_sent":"0","object_size":"0","total_time":"12","turn_around_time":"11","referer":null,"user_agent":null,"version_id":null,"host_id":"host1","signature_version":"SigV4","cipher_suite":"ECDHE-RSA-AES128-SHA","authentication_type":"QueryString","host_header":"bucket1.s3.amazonaws.com","tls_version":"TLSv1.2","access_point_arn":null,"acl_required":null,"timestamp":"2014-01-15T19:33:24Z"}}
watch: {"event_timestamp":"2014-01-15T19:33:23","event_guid":"xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx","user_id":"1234567","user_type":"Registered","consumer":"InternalCodeForConsumerType","country":"Wales","event_type":"watch","video_type":"video","content_id":"4","start":"60","end":"120","access_log":{"bucket_owner":"79a5","bucket":"bucket1","time":"15/Jan/2014:19:33:24 +0000","remote_ip":"192.0.2.3","requester":null,"request_id":"REQ1","operation":"REST.GET.OBJECT","key":"tick","request_uri":"GET /tick?data=|2014-01-15T19:33:23|xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx|1234567|Registered|InternalCodeForConsumerType|Wales|watch|video|4|60|120| HTTP/1.1","http_status":"200","error_code":null,"bytes_sent":"0","object_size":"0","total_time":"12","turn_around_time":"11","referer":null,"user_agent":"Mozilla/5.0 (X11)","version_id":null,"host_id":"host1","signature_version":"SigV4","cipher_suite":"ECDHE-RSA-AES128-SHA","authentication_type":"QueryString","host_header":"bucket1.s3.amazonaws.com","tls_version":"TLSv1.2","access_point_arn":null,"acl_required":null,"timestamp":"2014-01-15T19:33:24Z"}}
quarantine: 4 payload_missing
quarantine: 5 missing_event_type"#,
        )
        .await;
        // The type may come from the access log too.
        let mut c = tick_config();
        c.route.type_field = "/access_log/operation".into();
        let (_, got) = routed(&c, s3_line(tick, "-").as_bytes()).await;
        assert_eq!(got[0].0, "rest_get_object");
    }

    /// Quarantined access-log lines keep the line byte for byte, and the
    /// error names the fix.
    #[tokio::test]
    async fn issue12_quarantine_reasons_keep_the_line() {
        let lines = [
            s3_line("GET /other?x=1 HTTP/1.1", "ua \"q\""),
            s3_line("GET /tick?data=%FF HTTP/1.1", "-"),
            "79a5 bucket [06/Feb".to_string(),
        ];
        let mut c = tick_config();
        c.route.type_pattern = Some("^(watch|pause)$".into());
        let input = [
            lines[0].as_bytes(),
            b"\r\n",
            lines[1].as_bytes(),
            b"\n",
            lines[2].as_bytes(),
            b"\n",
            s3_line("GET /tick?data=|t|g|1|u|c|x|skip HTTP/1.1", "-").as_bytes(),
        ]
        .concat();
        let dir = tempfile::tempdir().unwrap();
        let (m, _) = route_file(dir.path(), "access.log", &input, &c).await;
        m.check_counts().unwrap();
        let mut records = Vec::new();
        for p in &m.quarantine.parts {
            let text = String::from_utf8(gunzip(
                &std::fs::read(dir.path().join("out").join(&p.key)).unwrap(),
            ))
            .unwrap();
            for line in text.lines() {
                let r: Value = serde_json::from_str(line).unwrap();
                records.push((
                    r["reason"].as_str().unwrap().to_owned(),
                    r["error"].as_str().unwrap().to_owned(),
                    r["text"].as_str().unwrap().to_owned(),
                ));
            }
        }
        assert_eq!(records.len(), 4);
        assert_eq!(records[0].0, "payload_missing");
        assert!(records[0].1.contains("route.payload"), "{}", records[0].1);
        assert_eq!(
            records[0].2,
            format!("{}\r", lines[0]),
            "as read, minus the newline"
        );
        assert_eq!(records[1].0, "malformed_record");
        assert!(records[1].1.contains("UTF-8"), "{}", records[1].1);
        assert_eq!(records[1].2, lines[1]);
        assert_eq!(records[2].0, "malformed_record");
        assert!(records[2].1.contains("--format"), "{}", records[2].1);
        assert_eq!(records[2].2, lines[2]);
        assert_eq!(records[3].0, "type_pattern_no_match");
        assert!(
            records[3].1.contains("\"skip\"") && records[3].1.contains("--type-pattern"),
            "{}",
            records[3].1
        );
        assert_eq!(
            m.quarantine.by_reason.get("type_pattern_no_match"),
            Some(&1)
        );
    }

    /// `--type NAME`: one type for a whole source; a JSON line must still be
    /// a JSON object.
    #[tokio::test]
    async fn issue12_fixed_type() {
        let mut c = config(LineFormat::Alb, "/type");
        c.route.fixed_type = Some("LoadBalancer".into());
        let (_, got) = routed(&c, ALB).await;
        assert_eq!(got[0].0, "load_balancer");
        let mut c = Config::default();
        c.route.fixed_type = Some("all".into());
        check_with(
            &c,
            b"{\"x\":1}\n{\"event_type\":\"b\"}\nnot json\n",
            r#"
read 3: routed 2, quarantined 1, blank 0
all: {"x":1}
all: {"event_type":"b"}
quarantine: 3 invalid_json"#,
        )
        .await;
        // The type pattern applies to JSON lines too.
        let mut c = Config::default();
        c.route.type_pattern = Some("^video\\.(\\w+)".into());
        check_with(
            &c,
            b"{\"event_type\":\"video.play\"}\n{\"event_type\":\"page.view\"}\n",
            r#"
read 2: routed 1, quarantined 1, blank 0
play: {"event_type":"video.play"}
quarantine: 2 type_pattern_no_match"#,
        )
        .await;
    }

    /// A selective replay (`--match`) still reads each file's `#Fields:`
    /// header, which never matches: headers are read before the filter.
    #[tokio::test]
    async fn issue12_replay_of_cloudfront_reads_the_headers() {
        let input = "#Version: 1.0\n#Fields: date cs-uri-stem\n2019-12-04\t/embed/1\n2019-12-04\t/share/2\n#Fields: cs-uri-stem date\n/share/3\t2019-12-05\n";
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("cf.log");
        std::fs::write(&src, input).unwrap();
        let mut c = config(LineFormat::Cloudfront, "/cs_uri_stem");
        c.route.type_pattern = Some("^/(\\w+)/".into());
        let out = dir.path().join("out");
        let router = local_router(&c, &out)
            .await
            .with_filter(logrouter::manifest::RouteFilter {
                match_text: Some("/share/".into()),
                ..Default::default()
            })
            .unwrap();
        let RouteOutcome::Routed { manifest: m, .. } = router
            .route_object(&Location::Local(src), false)
            .await
            .unwrap()
        else {
            panic!("not routed");
        };
        m.check_counts().unwrap();
        assert_eq!(
            (
                m.lines.read,
                m.lines.routed,
                m.lines.blank,
                m.lines.filtered
            ),
            (6, 2, 3, 1)
        );
        let text = String::from_utf8(decompress(
            &std::fs::read(out.join(&m.types["share"].parts[0].key)).unwrap(),
        ))
        .unwrap();
        assert_eq!(
            text,
            "{\"date\":\"2019-12-04\",\"cs_uri_stem\":\"/share/2\",\"timestamp\":null}\n{\"cs_uri_stem\":\"/share/3\",\"date\":\"2019-12-05\",\"timestamp\":null}\n"
        );
    }

    /// Same input, same configuration: the same keys, byte for byte.
    #[tokio::test]
    async fn issue12_routing_is_deterministic() {
        let input = [
            CLOUDFRONT,
            b"#Fields: date cs-method cs-uri-stem\n2019-12-05\tPUT\t/x\n",
        ]
        .concat();
        let c = config(LineFormat::Cloudfront, "/cs_method");
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let snapshot = || -> Vec<(String, Vec<u8>)> {
            files_under(&out)
                .into_iter()
                .filter(|f| !f.contains("manifest"))
                .map(|f| {
                    let data = gunzip(&std::fs::read(out.join(&f)).unwrap());
                    (f, data)
                })
                .collect()
        };
        route_file(dir.path(), "cf.log", &input, &c).await;
        let first = snapshot();
        std::fs::remove_dir_all(&out).unwrap();
        route_file(dir.path(), "cf.log", &input, &c).await;
        assert_eq!(first, snapshot());
        let names: Vec<&str> = first.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(
            names.iter().any(|f| f.contains("get")) && names.iter().any(|f| f.contains("put")),
            "{names:?}"
        );
    }
}
