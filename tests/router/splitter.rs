//! The streaming line splitter against a naive reference, on random inputs
//! read in random small pieces, so every boundary case (a line, a `\r\n`, a
//! BOM or the length limit split across reads) comes up.

use std::collections::BTreeMap;
use std::io::{BufReader, Read};

use logrouter::layout::SourceName;
use logrouter::normalize::normalize_event_type;
use logrouter::pointer::JsonPointer;
use logrouter::store::OutputStore;
use router::lines::{LineRouter, RouteRules};
use router::parts::Encoding;
use serde_json::Value;

use crate::support::gunzip;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Returns reads of 1..=max bytes.
struct Chunky<'a> {
    data: &'a [u8],
    rng: Rng,
    max: u64,
}

impl Read for Chunky<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (1 + self.rng.below(self.max) as usize)
            .min(buf.len())
            .min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn random_line(rng: &mut Rng, max: usize) -> Vec<u8> {
    let types = ["video_play", "PageView", "click.ad", "", "9lives"];
    let mut line = match rng.below(9) {
        0 => Vec::new(),
        1 => b"  \t".to_vec(),
        2 => b"{\"event_type\":\"video_play\"".to_vec(),
        3 => b"[1,2]".to_vec(),
        4 => b"{\"event_type\":\"a\",\"s\":\"\xff\"}".to_vec(),
        5 => {
            // Within three bytes of the limit either side.
            let frame = "{\"event_type\":\"video_play\",\"pad\":\"\"}".len();
            let pad = (max + rng.below(7) as usize).saturating_sub(frame + 3);
            format!(
                "{{\"event_type\":\"video_play\",\"pad\":\"{}\"}}",
                "x".repeat(pad)
            )
            .into_bytes()
        }
        _ => format!(
            "{{\"n\":{},\"event_type\":\"{}\"}}",
            rng.below(1000),
            types[rng.below(types.len() as u64) as usize]
        )
        .into_bytes(),
    };
    if rng.below(4) == 0 {
        line.push(b'\r');
    }
    line
}

/// Naive classification of one line (as split on `\n`): `Some(type)` when
/// routed, `None` when blank; quarantine reasons as `Err`.
fn reference(
    raw: &[u8],
    line_no: usize,
    max: usize,
) -> Result<Option<(String, Vec<u8>)>, &'static str> {
    let mut line = raw.strip_suffix(b"\r").unwrap_or(raw);
    if line_no == 1 {
        line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    }
    if line.iter().all(|c| *c == b' ' || *c == b'\t') {
        return Ok(None);
    }
    if line.len() > max {
        return Err("line_too_long");
    }
    let text = std::str::from_utf8(line).map_err(|_| "invalid_utf8")?;
    let v: Value = serde_json::from_str(text).map_err(|_| "invalid_json")?;
    let obj = v.as_object().ok_or("not_an_object")?;
    let t = obj
        .get("event_type")
        .and_then(Value::as_str)
        .ok_or("missing_event_type")?;
    let name = normalize_event_type(t).map_err(|_| "invalid_event_type")?;
    Ok(Some((name, line.to_vec())))
}

#[test]
fn streaming_splitter_agrees_with_a_naive_reference() {
    let mut rng = Rng(42);
    for case in 0..150 {
        let max = 40 + rng.below(200) as usize;
        let mut input = Vec::new();
        if rng.below(3) == 0 {
            input.extend(b"\xEF\xBB\xBF");
        }
        let n = rng.below(40) as usize;
        for i in 0..n {
            input.extend(random_line(&mut rng, max));
            if i + 1 < n || rng.below(2) == 0 {
                input.push(b'\n');
            }
        }

        // Expected, from the reference over a plain split.
        let mut lines: Vec<&[u8]> = input.split(|b| *b == b'\n').collect();
        if input.ends_with(b"\n") || input.is_empty() {
            lines.pop();
        }
        let mut want_types: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        let mut want_reasons: Vec<(u64, String)> = Vec::new();
        let mut want_blank = 0;
        let mut want_piped: Vec<u8> = Vec::new();
        for (i, raw) in lines.iter().enumerate() {
            match reference(raw, i + 1, max) {
                Ok(Some((t, l))) => {
                    want_piped.extend_from_slice(&l);
                    want_piped.push(b'\n');
                    want_types.entry(t).or_default().push(l)
                }
                Ok(None) => want_blank += 1,
                Err(r) => want_reasons.push((i as u64 + 1, r.to_owned())),
            }
        }

        // Actual, through LineRouter with tiny reads and a tiny buffer.
        let dir = tempfile::tempdir().unwrap();
        let out = OutputStore::local(dir.path().to_path_buf());
        let rules = RouteRules {
            matcher: None,
            only_types: None,
            pointer: JsonPointer::parse("/event_type").unwrap(),
            format: logrouter::config::LineFormat::Json,
            payload: None,
            type_pattern: None,
            fixed_type: None,
            max_line_bytes: max,
            allowed_types: None,
            max_types_per_source: 100,
            // Some cases keep no compressor for their later types (each
            // block then a gzip member of its own).
            max_open_compressors: 1 + rng.below(4) as usize,
            // The build's default gzip encoder (ISA-L with the `isal`
            // feature, as scripts/test builds it).
            encoding: Encoding::of(&logrouter::config::Config::default()),
            part_size: 1 << 30,
        };
        let name = SourceName::new("case", None, None);
        let spool = dir.path().to_path_buf();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1000);
        let reader = BufReader::with_capacity(
            1 + rng.below(64) as usize,
            Chunky {
                data: &input,
                rng: Rng(case),
                max: 1 + rng.below(50),
            },
        );
        let result = LineRouter::new(&rules, &name, "case", &out, &spool, tx)
            .run(reader)
            .unwrap();
        let mut parts = Vec::new();
        while let Ok(p) = rx.try_recv() {
            parts.push(p);
        }

        assert_eq!(
            result.counts.read as usize,
            lines.len(),
            "case {case}: lines read"
        );
        assert_eq!(result.counts.blank, want_blank, "case {case}: blank");
        let mut got_types: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        let mut got_reasons = Vec::new();
        for p in &parts {
            let text = gunzip(&std::fs::read(&p.temp).unwrap());
            let rows = text.split(|b| *b == b'\n').filter(|l| !l.is_empty());
            if p.output.key.starts_with("_rejected/") {
                for r in rows {
                    let v: Value = serde_json::from_slice(r).unwrap();
                    got_reasons.push((
                        v["line"].as_u64().unwrap(),
                        v["reason"].as_str().unwrap().to_owned(),
                    ));
                }
            } else {
                let t = p.output.key.split('/').next().unwrap().to_owned();
                got_types
                    .entry(t)
                    .or_default()
                    .extend(rows.map(<[u8]>::to_vec));
            }
        }
        got_reasons.sort();
        assert_eq!(got_types, want_types, "case {case}: routed lines");
        assert_eq!(got_reasons, want_reasons, "case {case}: quarantine");

        // `--out -`: the same lines, in the order read, to one stream; the
        // quarantined lines only counted.
        let mut piped = Vec::new();
        let files_before = crate::support::files_under(dir.path());
        let reader = BufReader::with_capacity(
            1 + rng.below(64) as usize,
            Chunky {
                data: &input,
                rng: Rng(case ^ 0xfeed),
                max: 1 + rng.below(50),
            },
        );
        let result = LineRouter::to_pipe(&rules, &name, "case", &mut piped)
            .run(reader)
            .unwrap();
        assert_eq!(piped, want_piped, "case {case}: piped lines");
        assert_eq!(
            result.counts.quarantined as usize,
            want_reasons.len(),
            "case {case}: piped quarantine"
        );
        assert!(
            result.types.values().all(|t| t.parts.is_empty()),
            "case {case}: a pipe writes no part"
        );
        assert_eq!(
            crate::support::files_under(dir.path()),
            files_before,
            "case {case}: a pipe spools nothing"
        );
    }
}
