//! The `router` binary: exit codes, configuration errors, environment
//! overrides, the JSON summary.

use std::process::{Command, Output};

use serde_json::Value;

fn router(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_router"));
    cmd.args(args).env("RUST_LOG", "warn");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let good = dir.path().join("good.jsonl");
    std::fs::write(&good, "{\"event_type\":\"a\"}\nnot json\n").unwrap();
    let good = good.to_str().unwrap();

    let o = router(&["route", "--out", out, good], &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "quarantined lines are not a failure: {}",
        stderr(&o)
    );

    let o = router(&["route", "--out", out, "/nonexistent/x.gz"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent/x.gz"), "{}", stderr(&o));

    let damaged = dir.path().join("damaged.gz");
    let mut gz = crate::support::gzip(&b"{\"event_type\":\"a\"}\n".repeat(1000));
    gz.truncate(gz.len() - 10);
    std::fs::write(&damaged, gz).unwrap();
    let o = router(&["route", "--out", out, damaged.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1), "a damaged source exits 1");
    assert!(String::from_utf8_lossy(&o.stdout).contains("DAMAGED"));

    let o = router(&["route", "--out", out], &[]);
    assert_eq!(o.status.code(), Some(2), "usage error");

    let o = router(&["route", "--type-field", "type", "--out", out, good], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("route.type_field"), "{}", stderr(&o));
}

#[test]
fn config_file_unknown_key_and_env_override() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[route]\nmax_line_byte = 10\n").unwrap();
    let src = dir.path().join("gh.jsonl");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/logs/gharchive-2015-01-01-15-sample.jsonl"
        ),
        &src,
    )
    .unwrap();
    let out = dir.path().join("out");
    let (cfg, src, out) = (
        cfg.to_str().unwrap(),
        src.to_str().unwrap(),
        out.to_str().unwrap(),
    );

    let o = router(&["route", "--config", cfg, "--out", out, src], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("max_line_byte"),
        "names the unknown key: {}",
        stderr(&o)
    );

    let o = router(
        &["route", "--json", "--out", out, src],
        &[("LOGROUTER_ROUTE__TYPE_FIELD", "/type")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    let s = &summary["sources"][0];
    assert_eq!(s["lines_read"], 3);
    assert_eq!(s["routed"]["push_event"], 1);
    assert_eq!(s["status"], "routed");

    let o = router(
        &["route", "--out", out, src],
        &[("LOGROUTER_ROUTE__NO_SUCH", "1")],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no_such"), "{}", stderr(&o));
}

#[test]
fn stdin_source() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_router"))
        .args(["route", "--json", "--out", out.to_str().unwrap(), "-"])
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&crate::support::gzip(
            b"{\"event_type\":\"x\"}\n{\"event_type\":\"y\"}\n",
        ))
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["sources"][0]["lines_routed"], 2);
    assert!(crate::support::files_under(&out)
        .iter()
        .any(|f| f.starts_with("x/undated/")));
}

/// Issue #5: `--log-format json` (or `log.format`, here through its
/// environment override) writes one JSON object per line; per-line events
/// (a quarantined line) appear only at DEBUG; a damaged source is an ERROR.
#[test]
fn issue5_json_logs_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let src = dir.path().join("damaged.gz");
    let mut gz = crate::support::gzip(&b"{\"event_type\":\"a\"}\nnot json\n".repeat(500));
    gz.truncate(gz.len() - 10);
    std::fs::write(&src, gz).unwrap();
    let args = [
        "route",
        "--out",
        out.to_str().unwrap(),
        src.to_str().unwrap(),
    ];
    let events = |o: &Output| -> Vec<Value> {
        stderr(o)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    let flag = router(
        &[&args[..], &["--log-format", "json"]].concat(),
        &[("RUST_LOG", "info")],
    );
    let env = router(
        &args,
        &[("RUST_LOG", "info"), ("LOGROUTER_LOG__FORMAT", "json")],
    );
    for o in [&flag, &env] {
        let events = events(o);
        let damaged = events
            .iter()
            .find(|e| e["message"] == "source is damaged; routed what came before the damage")
            .unwrap_or_else(|| panic!("{events:?}"));
        assert_eq!(damaged["level"], "ERROR");
        assert!(damaged["source"].as_str().unwrap().ends_with("damaged.gz"));
        assert!(
            !events.iter().any(|e| e["message"] == "line quarantined"),
            "per-line events only at DEBUG"
        );
    }
    let debug = router(
        &[&args[..], &["--log-format", "json"]].concat(),
        &[("RUST_LOG", "debug")],
    );
    assert!(events(&debug)
        .iter()
        .any(|e| e["message"] == "line quarantined" && e["level"] == "DEBUG"));

    let o = router(&[&args[..], &["--log-format", "yaml"]].concat(), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// Issue #12: `--format`, `--type-field`, `--type-pattern` and `--type` on
/// the command line; a bad value is a usage error naming the fix.
#[test]
fn issue12_format_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let src = dir.path().join("s3-access.log");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/logs/s3-access-2019-02-06-00-01-57-EXAMPLE"
        ),
        &src,
    )
    .unwrap();
    let src = src.to_str().unwrap();
    let routed = |args: &[&str]| -> Value {
        let mut all = vec!["route", "--json", "--out", out];
        all.extend_from_slice(args);
        all.push(src);
        let o = router(&all, &[]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
        doc["sources"][0].clone()
    };
    let types = |doc: &Value| {
        doc["routed"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    let doc = routed(&["--format", "s3_access", "--type-field", "/operation"]);
    assert_eq!(types(&doc), ["rest_put_object"], "{doc}");
    let doc = routed(&[
        "--format",
        "s3_access",
        "--type-field",
        "/request_uri",
        "--type-pattern",
        "^PUT /[^/]+/[^.]+\\.(\\w+)",
    ]);
    assert_eq!(types(&doc), ["pdf"], "{doc}");
    let doc = routed(&["--format", "s3_access", "--type", "s3_log"]);
    assert_eq!(types(&doc), ["s3_log"], "{doc}");
    // A flag replaces the config file's way of typing instead of
    // conflicting with it: --type over a file's type_pattern, and back.
    let cfg = dir.path().join("typed.toml");
    std::fs::write(
        &cfg,
        "[route]\nformat = \"s3_access\"\ntype_field = \"/request_uri\"\ntype_pattern = \"^PUT /[^/]+/[^.]+\\\\.(\\\\w+)\"\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    assert_eq!(types(&routed(&["--config", cfg])), ["pdf"]);
    assert_eq!(
        types(&routed(&["--config", cfg, "--type", "s3_log"])),
        ["s3_log"]
    );
    let fixed = dir.path().join("fixed.toml");
    std::fs::write(
        &fixed,
        "[route]\nformat = \"s3_access\"\ntype = \"s3_log\"\n",
    )
    .unwrap();
    let doc = routed(&[
        "--config",
        fixed.to_str().unwrap(),
        "--type-field",
        "/request_uri",
        "--type-pattern",
        "^PUT /[^/]+/[^.]+\\.(\\w+)",
    ]);
    assert_eq!(types(&doc), ["pdf"], "{doc}");
    // JSON is still the default: the access log is not JSON.
    let doc = routed(&[]);
    assert!(types(&doc).is_empty(), "{doc}");

    let o = router(&["route", "--format", "w3c", "--out", out, src], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cloudfront"), "{}", stderr(&o));
    let o = router(
        &[
            "route",
            "--format",
            "alb",
            "--type-pattern",
            "(",
            "--out",
            out,
            src,
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("route.type_pattern"), "{}", stderr(&o));
}

/// Issue #13: a source of 1,000 event types (the default
/// `max_types_per_source`), every type with more than a 64 KiB block of
/// lines, interleaved, is routed within 200 MB (it took 415 MB when every
/// open part kept a compressor), and every line lands once in its type's
/// part.
#[test]
fn issue13_a_thousand_types_in_one_source_stay_under_200_mb() {
    use std::io::Write;
    const TYPES: usize = 1000;
    const LINES: usize = 240_000;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("many-types.jsonl.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&source).unwrap(),
        flate2::Compression::fast(),
    );
    // ~300 bytes a line, 240 lines a type: about 70 KB of each type.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..LINES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        writeln!(
            gz,
            r#"{{"event_type":"type_{}","n":{i},"pad":"{:064x}{:064x}{:064x}{:064x}"}}"#,
            i % TYPES,
            x,
            x.rotate_left(17),
            x.rotate_left(31),
            x.rotate_left(47)
        )
        .unwrap();
    }
    gz.finish().unwrap();
    let out = dir.path().join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_router"))
        .args([
            "route",
            "--out",
            out.to_str().unwrap(),
            source.to_str().unwrap(),
        ])
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The high-water mark of the resident set, read until the process ends.
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    let exit = loop {
        if let Ok(text) = std::fs::read_to_string(&status) {
            if let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            {
                peak_kb = peak_kb.max(kb);
            }
        }
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(exit.success(), "{err}");
    assert!(peak_kb > 0, "the peak was read");
    assert!(
        peak_kb < 200 * 1024,
        "peak RSS {} MB with {TYPES} types",
        peak_kb / 1024
    );
    // Every line once, in its type's part (a part is one or more gzip members).
    let mut lines = 0;
    let mut types = std::collections::BTreeSet::new();
    for path in support_files(&out) {
        if path.contains("_manifests") {
            continue;
        }
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).unwrap()),
            &mut text,
        )
        .unwrap();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let t = v["event_type"].as_str().unwrap().to_owned();
            assert!(path.contains(&format!("/{t}/")), "{t} in {path}");
            types.insert(t);
            lines += 1;
        }
    }
    assert_eq!((lines, types.len()), (LINES, TYPES));
    eprintln!("{TYPES} types: peak RSS {} MB", peak_kb / 1024);
}

/// Issue #26: gzip parts are a member per 64 KiB block, by libdeflate or,
/// in a router built with the `isal` feature, by ISA-L. With each encoder,
/// routed twice (GitHub-archive-like events: nested, long non-ASCII
/// strings; small parts, so that every busy type rolls over), the two runs
/// write the same parts byte for byte; every part decodes with `gzip -dc`,
/// Python's `gzip` and flate2's multi-member decoder alike; and each type's
/// parts, in order, hold exactly the input's lines of that type, byte for
/// byte. ISA-L is checked where scripts/test built it (TEST_ROUTER_ISAL=1)
/// and under CI, where a router without it fails the test.
#[test]
fn issue26_gzip_parts_decode_everywhere_byte_identical_and_deterministic() {
    let mut encoders = vec!["libdeflate"];
    let env_is = |k: &str, v: &str| std::env::var(k).is_ok_and(|x| x == v);
    if env_is("TEST_ROUTER_ISAL", "1") || env_is("CI", "true") {
        encoders.push("isal");
    } else {
        eprintln!("TEST_ROUTER_ISAL is not 1: ISA-L's parts are not checked (scripts/test builds the router with them)");
    }
    let sizes: Vec<u64> = encoders
        .iter()
        .map(|e| gzip_parts_decode_everywhere(e))
        .collect();
    // Each encoder wrote parts of its own (not the same bytes twice).
    if let [libdeflate, isal] = sizes[..] {
        assert_ne!(libdeflate, isal, "ISA-L's parts are libdeflate's");
    }
}

/// Routes and checks as above with `encoder`; returns the parts' bytes.
fn gzip_parts_decode_everywhere(encoder: &str) -> u64 {
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("github.jsonl");
    gen_events::output([
        "--format",
        "github",
        "--types",
        "50",
        "--lines",
        "6000",
        "--out",
        source.to_str().unwrap(),
    ])
    .unwrap();
    let input = std::fs::read_to_string(&source).unwrap();
    let mut want: BTreeMap<String, String> = BTreeMap::new();
    for line in input.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let t = v["type"].as_str().unwrap().to_owned();
        let lines = want.entry(t).or_default();
        lines.push_str(line);
        lines.push('\n');
    }
    let route = |name: &str| {
        let out = dir.path().join(format!("{encoder}-{name}"));
        let o = router(
            &[
                "route",
                "--out",
                out.to_str().unwrap(),
                "--type-field",
                "/type",
                source.to_str().unwrap(),
            ],
            &[
                ("LOGROUTER_ROUTE__PART_SIZE_BYTES", "100000"),
                ("LOGROUTER_ROUTE__GZIP_ENCODER", encoder),
            ],
        );
        assert!(o.status.success(), "{encoder}: {}", stderr(&o));
        out
    };
    let (a, b) = (route("a"), route("b"));
    let parts = |root: &std::path::Path| -> Vec<String> {
        let mut keys: Vec<String> = crate::support::files_under(root)
            .into_iter()
            .filter(|f| !f.contains("_manifests"))
            .collect();
        keys.sort();
        keys
    };
    let keys = parts(&a);
    assert_eq!(keys, parts(&b), "the same parts on every run");
    let mut got: BTreeMap<String, String> = BTreeMap::new();
    let mut rolled = 0;
    let mut total = 0;
    for key in &keys {
        let (pa, pb) = (a.join(key), b.join(key));
        let bytes = std::fs::read(&pa).unwrap();
        total += bytes.len() as u64;
        assert_eq!(
            bytes,
            std::fs::read(&pb).unwrap(),
            "{encoder} {key}: the same bytes"
        );
        let gzip = Command::new("gzip").arg("-dc").arg(&pa).output().unwrap();
        assert!(gzip.status.success(), "gzip -dc {key}: {}", stderr(&gzip));
        let python = Command::new("python3")
            .args([
                "-c",
                "import gzip, sys; sys.stdout.buffer.write(gzip.open(sys.argv[1]).read())",
            ])
            .arg(&pa)
            .output()
            .unwrap();
        assert!(python.status.success(), "python {key}: {}", stderr(&python));
        let flate = crate::support::gunzip(&bytes);
        assert_eq!(gzip.stdout, python.stdout, "{key}");
        assert_eq!(gzip.stdout, flate, "{key}");
        let t = key.split('/').next().unwrap().to_owned();
        rolled += usize::from(!key.contains("part-00000"));
        got.entry(t)
            .or_default()
            .push_str(&String::from_utf8(flate).unwrap());
    }
    assert!(
        rolled > 0,
        "some type rolled over to a second part: {keys:?}"
    );
    // Types are folders named by the normalised type: compare by content.
    assert_eq!(got.len(), want.len());
    let mut want: Vec<&String> = want.values().collect();
    let mut got: Vec<&String> = got.values().collect();
    want.sort();
    got.sort();
    assert!(
        got == want,
        "{encoder}: each type's parts hold its lines, in order, byte for byte"
    );
    total
}

fn support_files(root: &std::path::Path) -> Vec<String> {
    crate::support::files_under(root)
        .into_iter()
        .map(|f| root.join(f).to_string_lossy().into_owned())
        .collect()
}

/// Noted in #14 (the soak had no stall fault): the AWS SDK bounds no
/// request attempt, so a connection that accepts a request and never
/// answers hung the router for good. `aws.attempt_timeout_secs` bounds
/// each attempt; after the SDK's retries the source fails, naming it.
#[test]
fn issue14_a_stalled_s3_connection_fails_the_source_instead_of_hanging() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    // Accepts every connection and holds it open, reading, never answering.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let started = std::time::Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_router"))
        .args([
            "route",
            "--out",
            out.to_str().unwrap(),
            "s3://archive/logs/x.json.gz",
        ])
        .env("RUST_LOG", "warn")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("LOGROUTER_AWS__FORCE_PATH_STYLE", "true")
        .env("LOGROUTER_AWS__ATTEMPT_TIMEOUT_SECS", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if started.elapsed() > std::time::Duration::from_secs(90) {
            let _ = child.kill();
            panic!("the router still hangs on a stalled connection after 90 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(exit.code(), Some(1), "{err}");
    assert!(err.contains("s3://archive/logs/x.json.gz"), "{err}");
    assert!(
        err.to_lowercase().contains("timeout") || err.contains("timed out"),
        "{err}"
    );
}
