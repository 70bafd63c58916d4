//! The router's line loop (`router::lines::LineRouter`: the streaming
//! splitter, classification, conversion of access-log formats, quarantine
//! records, streaming of over-long lines) over arbitrary bytes, read in
//! small pieces of varying size so every boundary falls everywhere.
//!
//! Checked: lines read = the lines of a plain split on `\n`; read = routed
//! + quarantined + blank + filtered, per type and per reason too; every
//! routed line (in the parts, or on the pipe) is one valid JSON object; every
//! quarantine record is valid JSON and holds its line byte for byte (as
//! text or base64), long lines included.
//!
//! Input: four bytes of rules (format and type pointer, flags, line limit,
//! read sizes), then the source's decoded bytes.
#![no_main]

use std::collections::BTreeMap;
use std::io::{BufReader, Read};

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use logrouter::config::{LineFormat, OutputCompression, PayloadConfig};
use logrouter::layout::SourceName;
use logrouter::pointer::JsonPointer;
use logrouter::store::OutputStore;
use router::lines::{LineMatcher, LineRouter, LinesResult, RouteRules};
use serde_json::Value;

const POINTERS: [&str; 8] = [
    "/event_type",
    "/type",
    "/a/0/t",
    "/operation",
    "/cs_method",
    "/event_type",
    "/access_log/operation",
    "/elb_status_code",
];

/// Reads of 1 to `max` bytes, sizes from a tiny deterministic generator.
struct Chunky<'a> {
    data: &'a [u8],
    state: u32,
    max: u32,
}

impl Read for Chunky<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.state = self.state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = (1 + (self.state >> 16) % self.max) as usize;
        let n = n.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn rules(head: &[u8]) -> RouteRules {
    let format = match head[0] & 7 {
        3 => LineFormat::Auto,
        4 => LineFormat::Cloudfront,
        5 => LineFormat::S3Access,
        6 => LineFormat::Alb,
        _ => LineFormat::Json,
    };
    let flags = head[1];
    // As `Config::validate` allows: a payload only for access logs, a
    // fixed type or a pattern, not both.
    let payload = (flags & 2 != 0 && format != LineFormat::Json).then(|| PayloadConfig {
        field: match format {
            LineFormat::S3Access => "/request_uri",
            LineFormat::Alb => "/request",
            _ => "/cs_uri_query_raw",
        }
        .into(),
        query_param: "data".into(),
        delimiter: "|".into(),
        fields: vec!["event_type".into(), "b".into()],
        key: "access_log".into(),
    });
    let fixed_type = (flags & 8 != 0).then(|| "fixed".to_owned());
    let type_pattern = (flags & 4 != 0 && fixed_type.is_none())
        .then(|| regex::Regex::new("^([A-Za-z]+)").unwrap());
    let names = |list: &[&str]| Some(list.iter().map(|s| s.to_string()).collect());
    RouteRules {
        matcher: (flags & 32 != 0)
            .then(|| LineMatcher::Text(Box::new(memchr::memmem::Finder::new(b"a").into_owned()))),
        only_types: if flags & 64 != 0 {
            names(&["a", "fixed", "get", "video_play"])
        } else {
            None
        },
        pointer: JsonPointer::parse(POINTERS[usize::from(head[0] >> 3) % POINTERS.len()]).unwrap(),
        format,
        payload,
        type_pattern,
        fixed_type,
        max_line_bytes: 8 + usize::from(head[2]) * 4,
        allowed_types: if flags & 16 != 0 {
            names(&["a", "b", "fixed", "get", "put", "video_play", "push_event"])
        } else {
            None
        },
        max_types_per_source: if flags & 128 != 0 { 2 } else { 1000 },
        max_open_compressors: 1 + usize::from(head[3] & 1),
        compression: OutputCompression::Gzip,
        level: 1,
        part_size: 1024,
    }
}

fn check_counts(r: &LinesResult, lines: usize, replay: bool) {
    let c = r.counts;
    assert_eq!(c.read as usize, lines, "lines read: {c:?}");
    assert_eq!(
        c.read,
        c.routed + c.quarantined + c.blank + c.filtered,
        "{c:?}"
    );
    if !replay {
        assert_eq!(c.filtered, 0, "{c:?}");
    }
    let by_type: u64 = r.types.values().map(|t| t.lines).sum();
    assert_eq!(by_type, c.routed, "{c:?} {:?}", r.types);
    let by_reason: u64 = r.quarantine.by_reason.values().sum();
    assert_eq!(by_reason, c.quarantined, "{c:?} {:?}", r.quarantine);
    for reason in r.first_errors.keys() {
        assert!(r.quarantine.by_reason.contains_key(reason), "{reason}");
    }
}

fn routed_line(line: &[u8]) {
    match serde_json::from_slice::<Value>(line) {
        Ok(v) => assert!(v.is_object(), "routed {:?}", String::from_utf8_lossy(line)),
        Err(e) => panic!("routed {:?}: {e}", String::from_utf8_lossy(line)),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (head, input) = data.split_at(4);
    let rules = rules(head);
    let parts_mode = head[1] & 1 != 0;
    let name = SourceName::new("s3://bucket/case.json", None, None);
    let reader = BufReader::with_capacity(
        1 + usize::from(head[3] >> 2),
        Chunky {
            data: input,
            state: u32::from(head[3]),
            max: 1 + u32::from(head[2] & 63),
        },
    );
    let mut lines: Vec<&[u8]> = input.split(|b| *b == b'\n').collect();
    if input.ends_with(b"\n") || input.is_empty() {
        lines.pop();
    }

    if !parts_mode {
        let mut piped = Vec::new();
        let result = LineRouter::to_pipe(&rules, &name, "case", &mut piped)
            .run(reader)
            .expect("an in-memory source never fails");
        check_counts(&result, lines.len(), rules.is_replay());
        let mut n = 0;
        for line in piped.split(|b| *b == b'\n') {
            if n as u64 == result.counts.routed {
                assert!(line.is_empty(), "piped line after the routed ones");
                break;
            }
            routed_line(line);
            n += 1;
        }
        assert_eq!(n as u64, result.counts.routed);
        assert!(result.types.values().all(|t| t.parts.is_empty()));
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let out = OutputStore::local(dir.path().to_path_buf());
    let spool = dir.path().to_path_buf();
    let (tx, mut rx) = tokio::sync::mpsc::channel(1 << 16);
    let result = LineRouter::new(&rules, &name, "case", &out, &spool, tx)
        .run(reader)
        .expect("a local source never fails");
    check_counts(&result, lines.len(), rules.is_replay());
    let mut parts = Vec::new();
    while let Ok(p) = rx.try_recv() {
        parts.push(p);
    }
    let listed =
        result.types.values().map(|t| t.parts.len()).sum::<usize>() + result.quarantine.parts.len();
    assert_eq!(parts.len(), listed, "parts sent vs parts recorded");
    let mut quarantined = BTreeMap::new();
    for p in &parts {
        let mut text = Vec::new();
        flate2::read::MultiGzDecoder::new(&std::fs::read(&p.temp).unwrap()[..])
            .read_to_end(&mut text)
            .expect("a part is gzip");
        assert!(text.is_empty() || text.ends_with(b"\n"));
        let rows: Vec<&[u8]> = text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(rows.len() as u64, p.output.lines, "{:?}", p.output);
        if !p.output.key.starts_with("_rejected/") {
            rows.iter().for_each(|l| routed_line(l));
            continue;
        }
        for row in rows {
            let v: Value = serde_json::from_slice(row).unwrap_or_else(|e| {
                panic!("quarantine record {:?}: {e}", String::from_utf8_lossy(row))
            });
            let line = v["line"].as_u64().expect("a record has its line") as usize;
            let held = match (v["text"].as_str(), v["base64"].as_str()) {
                (Some(t), None) => t.as_bytes().to_vec(),
                (None, Some(b)) => base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .expect("base64"),
                _ => panic!("record holds neither text nor base64: {v}"),
            };
            assert_eq!(
                held,
                lines[line - 1],
                "record of line {line} does not hold it: {v}"
            );
            *quarantined
                .entry(v["reason"].as_str().unwrap().to_owned())
                .or_insert(0u64) += 1;
        }
    }
    assert_eq!(quarantined, result.quarantine.by_reason);
});
