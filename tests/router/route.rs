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

async fn route_file(dir: &Path, name: &str, input: &[u8], config: &Config) -> (Manifest, String) {
    let src = dir.join(name);
    std::fs::write(&src, input).unwrap();
    let out = dir.join("out");
    let router = Router::new(
        config,
        &Location::Local(out.clone()),
        Arc::new(AwsClients::default()),
    )
    .await
    .unwrap();
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
    // reached the file, which lag the input by the 64 KiB line buffer.
    config.route.part_size_bytes = 4096;
    let input = gzip(&noisy_lines(30_000));
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
    let router = Router::new(
        &Config::default(),
        &Location::Local(out.clone()),
        Arc::new(AwsClients::default()),
    )
    .await
    .unwrap();
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
    let router = Router::new(
        &config,
        &Location::Local(out.clone()),
        Arc::new(AwsClients::default()),
    )
    .await
    .unwrap()
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
