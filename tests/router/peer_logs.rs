//! Issue #25: other projects' access-log lines, routed through the real
//! router and compared, field by field, with what those projects' tests
//! assert about them.
//!
//! The corpus is not ours and is not in the repository: `shared/peer_logs/`
//! beside the checkout (`../shared/peer_logs/` from its root) holds real
//! lines from the test suites of 13 permissively licensed parsers
//! (`cloudfront/*.log`, `s3_access/*.log`, `alb/*.log`; its README names
//! each source and license) and `expected.json`, the values each peer's
//! tests assert per data line, keyed by AWS's documented field names, in
//! the peer's own conventions. The lines are read in place, never copied.
//!
//! Each file is routed as one source (`route.format` its folder's format,
//! one fixed type), every routed object and quarantine record is collected
//! and matched to its line, and each asserted value is compared with ours
//! under the peer's conventions and ours: `-` is `null`; values are
//! strings, so a peer's typed `200` or `0.001` agrees with our `"200"` or
//! `"0.001"` (numerically); a peer keeping `-` agrees with our `null`; a
//! peer's derived value (`request.method`, `client_port.ip`,
//! `cs(Cookie).parsed`...) is derived here from our field the way the peer
//! describes. Our keys are AWS's names through the router's one
//! normalisation (`cs(User-Agent)` → `cs_user_agent`).
//!
//! Every difference must be deliberate: [`EXPLAINED`] lists each one with
//! its reason, the test fails on any difference not listed there, and on
//! any listed one that no longer occurs, so the table stays true. The same
//! goes for a line's fate: a line a peer parses is routed, or quarantined
//! with an explanation; a line a peer treats as broken (its
//! `_peer_expects_error`, or a `*_malformed.log` file) is quarantined, or
//! its routing is explained.
//!
//! `cargo test --workspace --test router -- peer_logs --nocapture` prints
//! the agreement per file and per format. Without the corpus the test skips
//! with a message, except under CI (`CI=true`), where it fails.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use logrouter::aws::AwsClients;
use logrouter::config::{Config, LineFormat};
use logrouter::location::Location;
use logrouter::normalize::normalize_key;
use router::route::{RouteOutcome, Router};
use serde_json::{Map, Value};

use crate::support::gunzip;

/// The differences between a peer's assertions and our output, each
/// deliberate: (file under the corpus, line number in that file counted
/// from 1 with header lines included — what `sed -n Np` shows and what a
/// quarantine record says —, what differs, why).
///
/// What differs is the peer's field name (its asserted value is not ours),
/// `quarantined: <reason>` (a line the peer parses, which we quarantine
/// for that reason), or `routed` (a line the peer treats as broken, which
/// we route).
const EXPLAINED: &[(&str, u64, &str, &str)] = &[
    (
        "cloudfront/claygregory_web-1-0.log",
        3,
        "cs(User-Agent)",
        "the fixture's user agent is percent-encoded twice (%2520) and the peer decodes until nothing is left to decode; we decode once, as CloudFront encodes once, so the %20 the fixture holds after one decoding is kept",
    ),
    (
        "cloudfront/heynemann_cloudfront-log-parser.log",
        3,
        "cs-uri-stem",
        "the peer keeps cs-uri-stem as written; the fixture's path holds an = and a : encoded twice (%25 then %3D, %3A), and we decode once, as CloudFront encodes once, so one level of encoding is left",
    ),
    (
        "cloudfront/logstash-patterns-core_23fields.log",
        3,
        "cs(User-Agent)",
        "the peer (grok) keeps the user agent as written (%2520); we decode it once, as CloudFront encodes it once, giving %20",
    ),
    (
        "cloudfront/logstash-patterns-core_33fields.log",
        3,
        "cs(User-Agent)",
        "the peer (grok) keeps the user agent as written (%20); we decode it once, as CloudFront encodes it once, giving spaces",
    ),
    (
        "alb/npm-alb-log-parser.log",
        2,
        "quarantined: malformed_record",
        "a synthetic line with a run of spaces after its first field: ALB separates fields with one space, so the line splits with an empty field where the time belongs and every later value one place over; the peer collapses runs of spaces, we quarantine a line whose fields may have shifted rather than guess which space is extra",
    ),
];

/// How one peer writes what it asserts, beyond what every comparison here
/// allows for (`-` as `null`, numbers typed or not): from the file's
/// `conventions` in expected.json, each quoted by [`Conventions::of`].
#[derive(Debug, Default, Clone, Copy)]
struct Conventions {
    /// A number written `-` becomes this (request-log-analyzer: 0).
    dash_number: Option<f64>,
    /// The port of an `ip:port` written `-` becomes this (node's
    /// alb-log-parser: -1).
    dash_port: Option<f64>,
    /// A URL's scheme keeps its colon (`http:`, node's `url.parse`).
    scheme_colon: bool,
}

impl Conventions {
    /// The conventions of `file`, each checked against the text that
    /// states it (a corpus that changes them fails here, not silently).
    fn of(file: &str, text: &Map<String, Value>) -> Result<Self, String> {
        let states = |key: &str, phrase: &str| -> Result<(), String> {
            match text.get(key).and_then(Value::as_str) {
                Some(t) if t.contains(phrase) => Ok(()),
                other => Err(format!(
                    "{file}: conventions.{key} no longer says {phrase:?} (it says {other:?}): update Conventions::of"
                )),
            }
        };
        let mut c = Self::default();
        if file.starts_with("s3_access/request-log-analyzer") && file.ends_with("_spec.log") {
            states("dash", "0 for numbers")?;
            c.dash_number = Some(0.0);
        }
        if file == "alb/npm-alb-log-parser.log" {
            states("dash", "target_port.port -1")?;
            states("request", "url parts")?;
            c.dash_port = Some(-1.0);
            c.scheme_colon = true;
        }
        Ok(c)
    }
}

/// Where the corpus is: `shared/peer_logs` beside the checkout, found from
/// this crate's own folder (`<checkout>/router`), so any working directory
/// and any checkout location work.
fn corpus_dir() -> PathBuf {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the router crate sits in the checkout");
    checkout
        .parent()
        .unwrap_or(checkout)
        .join("shared")
        .join("peer_logs")
}

/// One comparison: the peer's key, what it asserts, and ours.
struct Compared {
    key: String,
    peer: Value,
    ours: Value,
}

/// Counts per format.
#[derive(Default)]
struct Tally {
    files: usize,
    lines: usize,
    routed: usize,
    quarantined: usize,
    quarantined_explained: usize,
    peer_broken: usize,
    peer_broken_quarantined: usize,
    peer_broken_routed_explained: usize,
    compared: usize,
    /// Of those, our `timestamp` against a date and time the peer asserts.
    timestamps: usize,
    agree: usize,
    differ_explained: usize,
    differ_unexplained: usize,
    /// Asserted values not compared, by why.
    not_compared: BTreeMap<String, usize>,
}

/// What became of one source: each data line's routed object or
/// quarantine record, by line number.
struct Routed {
    /// Data lines (not headers, not blank): number and text.
    data: Vec<(u64, String)>,
    objects: BTreeMap<u64, Map<String, Value>>,
    /// Line → (reason, error).
    quarantined: BTreeMap<u64, (String, String)>,
}

async fn route(path: &Path, format: LineFormat, type_name: &str) -> Result<Routed, String> {
    let mut c = Config::default();
    c.route.format = format;
    c.route.fixed_type = Some(type_name.into());
    c.validate().map_err(|e| format!("config: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out = dir.path().join("out");
    let router = Router::new(
        &c,
        &Location::Local(out.clone()),
        Arc::new(AwsClients::default()),
    )
    .await
    .map_err(|e| format!("router: {e}"))?;
    let outcome = router
        .route_object(&Location::Local(path.to_path_buf()), false)
        .await
        .map_err(|e| format!("route: {e}"))?;
    let RouteOutcome::Routed { manifest: m, .. } = outcome else {
        return Err(format!("not routed: {outcome:?}"));
    };
    m.check_counts()?;
    if let Some(d) = &m.damage {
        return Err(format!("damage: {}", d.describe()));
    }

    // The file's lines as the router reads them: split at `\n`, a final
    // `\r` dropped, the last line with or without its newline; CloudFront's
    // `#` lines are headers.
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let text = String::from_utf8(bytes).map_err(|e| e.to_string())?;
    let mut physical: Vec<&str> = text.split('\n').collect();
    if physical.last() == Some(&"") {
        physical.pop();
    }
    let mut data = Vec::new();
    let mut skipped = 0;
    for (i, line) in physical.iter().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || (format == LineFormat::Cloudfront && line.starts_with('#')) {
            skipped += 1;
        } else {
            data.push((i as u64 + 1, line.to_owned()));
        }
    }
    let counts = (m.lines.read, m.lines.blank, m.lines.filtered);
    if counts != (physical.len() as u64, skipped, 0) {
        return Err(format!(
            "the router read (lines, blank or header, filtered) = {counts:?}, the file has ({}, {skipped}, 0)",
            physical.len()
        ));
    }

    let mut quarantined = BTreeMap::new();
    for p in &m.quarantine.parts {
        let bytes = gunzip(&std::fs::read(out.join(&p.key)).map_err(|e| e.to_string())?);
        for record in String::from_utf8(bytes).map_err(|e| e.to_string())?.lines() {
            let r: Value = serde_json::from_str(record).map_err(|e| e.to_string())?;
            let line = r["line"].as_u64().ok_or("a record without its line")?;
            let field = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            let Some((_, text)) = data.iter().find(|(n, _)| *n == line) else {
                return Err(format!(
                    "a quarantine record for line {line}, not a data line"
                ));
            };
            if field("text") != *text {
                return Err(format!(
                    "line {line}'s quarantine record holds another text"
                ));
            }
            quarantined.insert(line, (field("reason"), field("error")));
        }
    }
    let mut objects_in_order = Vec::new();
    for o in m.types.values() {
        for p in &o.parts {
            let bytes = gunzip(&std::fs::read(out.join(&p.key)).map_err(|e| e.to_string())?);
            for line in String::from_utf8(bytes).map_err(|e| e.to_string())?.lines() {
                match serde_json::from_str(line).map_err(|e| e.to_string())? {
                    Value::Object(o) => objects_in_order.push(o),
                    other => return Err(format!("a routed line that is not an object: {other}")),
                }
            }
        }
    }
    // One type, so one part list in line order: the routed objects are the
    // data lines not quarantined, in order.
    let routed_lines: Vec<u64> = data
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !quarantined.contains_key(n))
        .collect();
    if routed_lines.len() != objects_in_order.len()
        || m.lines.routed != objects_in_order.len() as u64
        || m.lines.quarantined != quarantined.len() as u64
    {
        return Err(format!(
            "{} data lines, {} quarantine records, {} routed objects; the manifest says {} routed, {} quarantined",
            data.len(),
            quarantined.len(),
            objects_in_order.len(),
            m.lines.routed,
            m.lines.quarantined
        ));
    }
    let objects = routed_lines.into_iter().zip(objects_in_order).collect();
    Ok(Routed {
        data,
        objects,
        quarantined,
    })
}

/// `-` inside a value split by a derivation is "no value" too.
fn part(s: &str) -> Value {
    if s == "-" {
        Value::Null
    } else {
        Value::String(s.to_owned())
    }
}

/// A request line split as the peers split it: method up to the first
/// space, protocol after the last, the URL between.
fn request_parts(v: &str) -> (Value, Value, Value) {
    match (v.find(' '), v.rfind(' ')) {
        (Some(i), Some(j)) if i < j => (part(&v[..i]), part(&v[i + 1..j]), part(&v[j + 1..])),
        (Some(i), _) => (part(&v[..i]), part(&v[i + 1..]), Value::Null),
        _ => (part(v), Value::Null, Value::Null),
    }
}

/// A URL's parts: scheme, user, host, port, path, query, fragment.
struct UrlParts<'a> {
    scheme: &'a str,
    user: Option<&'a str>,
    host: &'a str,
    port: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

fn url_parts(u: &str) -> Option<UrlParts<'_>> {
    let (scheme, rest) = u.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (host_port, None),
    };
    let (tail, fragment) = match tail.split_once('#') {
        Some((t, f)) => (t, Some(f)),
        None => (tail, None),
    };
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    Some(UrlParts {
        scheme,
        user,
        host,
        port,
        path,
        query,
        fragment,
    })
}

/// A query string as Python's `parse_qs` makes it: name → values, `+` a
/// space, percent-decoded, blank values dropped.
fn parse_qs(q: &str) -> Value {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        logrouter::percent::decode(&s, false).map_or(s.clone(), |d| d.into_owned())
    };
    let mut out: Map<String, Value> = Map::new();
    for pair in q.split(['&', ';']) {
        let Some((k, v)) = pair.split_once('=') else {
            continue;
        };
        if v.is_empty() {
            continue;
        }
        let list = out
            .entry(decode(k))
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(a) = list {
            a.push(Value::String(decode(v)));
        }
    }
    Value::Object(out)
}

/// A Cookie header as a name → value map (pairs without `=` dropped).
fn parse_cookie(c: &str) -> Value {
    let mut out = Map::new();
    for pair in c.split(';') {
        if let Some((k, v)) = pair.split_once('=') {
            out.insert(k.trim().to_owned(), Value::String(v.trim().to_owned()));
        }
    }
    Value::Object(out)
}

/// S3's `06/Feb/2019:00:01:57 +0000`, in UTC.
fn s3_time(v: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(v, "%d/%b/%Y:%H:%M:%S %z")
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The value a peer derives from one of our fields (`request.method`,
/// `client_port.ip`, ...), derived from ours the way that peer describes;
/// `Err` for a derivation this harness does not know.
fn derive(
    field: &str,
    suffix: &str,
    ours: &Value,
    obj: &Map<String, Value>,
    peer: &Value,
    conv: Conventions,
) -> Result<Value, String> {
    let v = ours.as_str();
    let request = || v.map(request_parts);
    let url = || {
        request().and_then(|(_, u, _)| match u {
            Value::String(u) => Some(u),
            _ => None,
        })
    };
    let opt = |s: Option<&str>| s.map_or(Value::Null, part);
    Ok(match (field, suffix) {
        ("request" | "request_uri", "method") => request().map_or(Value::Null, |r| r.0),
        ("request", "url") | ("request_uri", "path") => request().map_or(Value::Null, |r| r.1),
        ("request", "protocol") => request().map_or(Value::Null, |r| r.2),
        ("request_uri", "http_version") => match request().map(|r| r.2) {
            Some(Value::String(p)) => part(p.strip_prefix("HTTP/").unwrap_or(&p)),
            _ => Value::Null,
        },
        ("request", s) if s.starts_with("url.") => {
            let u = url();
            let Some(p) = u.as_deref().and_then(url_parts) else {
                return Ok(Value::Null);
            };
            match &s[4..] {
                "scheme" if conv.scheme_colon => Value::String(format!("{}:", p.scheme)),
                "scheme" => part(p.scheme),
                "user" => opt(p.user),
                "host" => part(p.host),
                "port" => opt(p.port),
                "path" => part(p.path),
                "fragment" => opt(p.fragment),
                // Parsed into a map when the peer parses it, else as written.
                "query" if peer.is_object() => parse_qs(p.query.unwrap_or("")),
                "query" => opt(p.query),
                other => return Err(format!("request.url.{other}")),
            }
        }
        ("client_port" | "target_port", "ip" | "port") => {
            let Some((ip, port)) = v.and_then(|v| v.rsplit_once(':')) else {
                return Ok(Value::Null);
            };
            part(if suffix == "ip" { ip } else { port })
        }
        ("cs_cookie", "parsed") => v.map_or(Value::Null, parse_cookie),
        // Parsed from the query as written: decoding first would turn an
        // encoded `&` or `=` into a separator.
        ("cs_uri_query", "parsed") => match obj.get("cs_uri_query_raw").and_then(Value::as_str) {
            Some(raw) => parse_qs(raw),
            None => Value::Null,
        },
        ("cs_protocol_version", "number") => opt(v.map(|p| p.strip_prefix("HTTP/").unwrap_or(p))),
        ("time", "compact") => match v.and_then(s3_time) {
            Some(t) => Value::String(t.format("%Y%m%d%H%M%S").to_string()),
            None => Value::Null,
        },
        ("time", "iso") => match v.and_then(s3_time) {
            Some(t) => Value::String(t.format("%Y-%m-%dT%H:%M:%S").to_string()),
            None => Value::Null,
        },
        ("total_time" | "turn_around_time", "seconds") => match v.map(str::parse::<f64>) {
            Some(Ok(ms)) => Value::String((ms / 1000.0).to_string()),
            Some(Err(_)) => ours.clone(),
            None => Value::Null,
        },
        (_, "quoted") => Value::String(format!("\"{}\"", v.unwrap_or("-"))),
        // dandi's reduction names a Zarr by its first two segments.
        ("key", "dandi_object") => match v {
            Some(k) if k.starts_with("zarr/") => {
                Value::String(k.splitn(3, '/').take(2).collect::<Vec<_>>().join("/"))
            }
            _ => ours.clone(),
        },
        _ => return Err(format!("{field}.{suffix}")),
    })
}

/// Whether the peer's `peer` and our `ours` say the same, under our
/// conventions and the peer's (`key` is the peer's, for its kind).
fn agrees(key: &str, peer: &Value, ours: &Value, conv: Conventions) -> bool {
    let number = |p: &serde_json::Number, o: &str| match (p.as_f64(), o.parse::<f64>()) {
        (Some(p), Ok(o)) => (p - o).abs() <= 1e-12 * p.abs().max(o.abs()).max(1.0),
        _ => false,
    };
    match (peer, ours) {
        (Value::Null, Value::Null) => true,
        (Value::String(p), Value::Null) => p == "-",
        (Value::String(p), Value::String(o)) => p == o,
        (Value::Number(p), Value::String(o)) => number(p, o),
        (Value::Number(p), Value::Null) => {
            let dash = if key.ends_with(".port") {
                conv.dash_port
            } else {
                conv.dash_number
            };
            dash.is_some_and(|d| p.as_f64() == Some(d))
        }
        // Lists: ALB's actions are comma-separated, its target lists
        // space-separated; `-` is the empty list.
        (Value::Array(p), Value::Null) => p.is_empty(),
        (Value::Array(p), Value::String(o)) => {
            let sep = if key == "actions_executed" { ',' } else { ' ' };
            let items: Vec<&str> = o.split(sep).collect();
            p.len() == items.len()
                && p.iter()
                    .zip(items)
                    .all(|(p, o)| agrees("", p, &part(o), conv))
        }
        (Value::Object(_), Value::Object(_)) => peer == ours,
        _ => false,
    }
}

/// The instant a peer asserts in full for a line (a date and a time), as
/// (what it is, the instant), if it asserts one.
fn peer_instant(format: &str, exp: &Map<String, Value>) -> Option<(String, DateTime<Utc>)> {
    let s = |k: &str| exp.get(k).and_then(Value::as_str);
    let naive = |t: NaiveDateTime| t.and_utc();
    match format {
        "cloudfront" => {
            let (d, t) = (s("date")?, s("time")?);
            let date = NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()?;
            let time = chrono::NaiveTime::parse_from_str(t, "%H:%M:%S").ok()?;
            Some(("date + time".into(), naive(date.and_time(time))))
        }
        "alb" => {
            let t = DateTime::parse_from_rfc3339(s("time")?).ok()?;
            Some(("time".into(), t.with_timezone(&Utc)))
        }
        _ => {
            if let Some(t) = s("time").and_then(s3_time) {
                return Some(("time".into(), t));
            }
            if let Some(t) = s("time.iso") {
                let t = NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S").ok()?;
                return Some(("time.iso".into(), naive(t)));
            }
            let compact = exp.get("time.compact")?.as_u64()?.to_string();
            let t = NaiveDateTime::parse_from_str(&compact, "%Y%m%d%H%M%S").ok()?;
            Some(("time.compact".into(), naive(t)))
        }
    }
}

/// Compares one routed line with what its peer asserts.
fn compare_line(
    format: &str,
    exp: &Map<String, Value>,
    obj: &Map<String, Value>,
    conv: Conventions,
    not_compared: &mut BTreeMap<String, usize>,
) -> Vec<(Compared, bool)> {
    let mut out = Vec::new();
    for (key, peer) in exp {
        if key.starts_with('_') {
            continue;
        }
        let (field, suffix) = match key.split_once('.') {
            Some((f, s)) => (f, Some(s)),
            None => (key.as_str(), None),
        };
        let ours_key = normalize_key(field).expect("AWS field names normalise");
        let base = obj.get(&ours_key).cloned();
        let ours = match (suffix, base) {
            (_, None) => Value::String(format!("<no {ours_key} key>")),
            (None, Some(v)) => v,
            (Some(s), Some(v)) => match derive(&ours_key, s, &v, obj, peer, conv) {
                Ok(d) => d,
                Err(what) => {
                    *not_compared.entry(format!("derived: {what}")).or_default() += 1;
                    continue;
                }
            },
        };
        let ok = agrees(key, peer, &ours, conv);
        out.push((
            Compared {
                key: key.clone(),
                peer: peer.clone(),
                ours,
            },
            ok,
        ));
    }
    // The instant of the line, where the peer asserts one in full: our
    // `timestamp` (RFC 3339, UTC) must be that instant.
    if let Some((from, instant)) = peer_instant(format, exp) {
        let ours = obj
            .get("timestamp")
            .cloned()
            .unwrap_or_else(|| Value::String("<no timestamp key>".into()));
        let ok = ours
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t.with_timezone(&Utc) == instant);
        out.push((
            Compared {
                key: format!("timestamp (the peer's {from})"),
                peer: Value::String(instant.to_rfc3339()),
                ours,
            },
            ok,
        ));
    }
    out
}

/// `s` cut to `n` characters, for a line of output.
fn cut(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn short(v: &Value) -> String {
    cut(&v.to_string(), 90)
}

#[tokio::test]
async fn peer_logs_agree_with_our_formats() {
    let dir = corpus_dir();
    if !dir.join("expected.json").is_file() {
        let message = format!(
            "the peer-log corpus is missing: no {} (issue #25: shared/peer_logs beside the checkout)",
            dir.join("expected.json").display()
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}; under CI a missing test dependency fails");
        }
        println!("SKIPPED peer_logs: {message}");
        return;
    }
    let expected: Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let files = expected["files"].as_object().expect("expected.json: files");

    let mut problems: Vec<String> = Vec::new();
    let mut used: HashSet<usize> = HashSet::new();
    let explained = |file: &str, line: u64, what: &str| {
        EXPLAINED
            .iter()
            .position(|(f, l, w, _)| *f == file && *l == line && *w == what)
    };
    let mut seen_files = HashSet::new();
    let mut summaries = Vec::new();

    println!("peer_logs: {}", dir.display());
    for (format, line_format) in [
        ("cloudfront", LineFormat::Cloudfront),
        ("s3_access", LineFormat::S3Access),
        ("alb", LineFormat::Alb),
    ] {
        let mut tally = Tally::default();
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir.join(format))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join(format).display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        paths.sort();
        println!();
        for path in paths {
            let name = format!("{format}/{}", path.file_name().unwrap().to_string_lossy());
            seen_files.insert(name.clone());
            let Some(spec) = files.get(&name).and_then(Value::as_object) else {
                problems.push(format!("{name}: not in expected.json"));
                continue;
            };
            let conv = match Conventions::of(
                &name,
                spec["conventions"].as_object().unwrap_or(&Map::new()),
            ) {
                Ok(c) => c,
                Err(e) => {
                    problems.push(e);
                    Conventions::default()
                }
            };
            let lines = spec["lines"].as_array().cloned().unwrap_or_default();
            let malformed_file = name.ends_with("_malformed.log");
            let routed = match route(&path, line_format, format).await {
                Ok(r) => r,
                Err(e) => {
                    problems.push(format!("{name}: {e}"));
                    continue;
                }
            };
            if routed.data.len() != lines.len()
                || spec["line_count"].as_u64() != Some(lines.len() as u64)
            {
                problems.push(format!(
                    "{name}: {} data lines, expected.json has {} (line_count {})",
                    routed.data.len(),
                    lines.len(),
                    spec["line_count"]
                ));
                continue;
            }
            tally.files += 1;
            let peer = spec["source"]["peer"].as_str().unwrap_or("?");
            let mut notes: Vec<String> = Vec::new();
            let (mut file_compared, mut file_agree, mut file_asserted) = (0, 0, 0);
            let (mut file_routed, mut file_quarantined) = (0, 0);
            for ((line, _), exp) in routed.data.iter().zip(&lines) {
                let line = *line;
                let exp = exp.as_object().cloned().unwrap_or_default();
                let asserted = exp.keys().filter(|k| !k.starts_with('_')).count();
                file_asserted += asserted;
                let peer_broken = malformed_file || exp.contains_key("_peer_expects_error");
                tally.lines += 1;
                if peer_broken {
                    tally.peer_broken += 1;
                }
                if let Some((reason, error)) = routed.quarantined.get(&line) {
                    tally.quarantined += 1;
                    file_quarantined += 1;
                    if peer_broken {
                        tally.peer_broken_quarantined += 1;
                        notes.push(format!(
                            "line {line}: quarantined, as the peer expects ({reason}: {})",
                            cut(error, 160)
                        ));
                        *tally
                            .not_compared
                            .entry("the line is broken, quarantined as the peer expects".into())
                            .or_default() += asserted;
                        continue;
                    }
                    let what = format!("quarantined: {reason}");
                    match explained(&name, line, &what) {
                        Some(i) => {
                            used.insert(i);
                            tally.quarantined_explained += 1;
                            notes.push(format!(
                                "line {line}: quarantined ({reason}: {}), the peer parses it — {}",
                                cut(error, 160),
                                EXPLAINED[i].3
                            ));
                        }
                        None => {
                            let m = format!(
                                "{name} line {line}: quarantined ({reason}: {error}), but {peer} parses it: explain it in EXPLAINED or fix the router"
                            );
                            notes.push(format!("UNEXPLAINED {m}"));
                            problems.push(m);
                        }
                    }
                    *tally
                        .not_compared
                        .entry("the line is quarantined, the peer parses it".into())
                        .or_default() += asserted;
                    continue;
                }
                let obj = &routed.objects[&line];
                tally.routed += 1;
                file_routed += 1;
                if peer_broken {
                    match explained(&name, line, "routed") {
                        Some(i) => {
                            used.insert(i);
                            tally.peer_broken_routed_explained += 1;
                            notes.push(format!(
                                "line {line}: routed, the peer treats it as broken: {}",
                                EXPLAINED[i].3
                            ));
                        }
                        None => {
                            let m = format!(
                                "{name} line {line}: routed, but {peer} treats it as broken ({}): quarantine it or explain it in EXPLAINED",
                                exp.get("_peer_expects_error")
                                    .or(exp.get("_note"))
                                    .and_then(Value::as_str)
                                    .unwrap_or("a *_malformed.log line")
                            );
                            notes.push(format!("UNEXPLAINED {m}"));
                            problems.push(m);
                        }
                    }
                    *tally
                        .not_compared
                        .entry("the line is broken, routed (explained): the peer's values are not truth".into())
                        .or_default() += asserted;
                    continue;
                }
                for (c, ok) in compare_line(format, &exp, obj, conv, &mut tally.not_compared) {
                    tally.compared += 1;
                    file_compared += 1;
                    if c.key.starts_with("timestamp") {
                        tally.timestamps += 1;
                    }
                    let entry = explained(&name, line, &c.key);
                    if ok {
                        tally.agree += 1;
                        file_agree += 1;
                        continue;
                    }
                    match entry {
                        Some(i) => {
                            used.insert(i);
                            tally.differ_explained += 1;
                            notes.push(format!(
                                "line {line} {}: ours {}, the peer's {} — {}",
                                c.key,
                                short(&c.ours),
                                short(&c.peer),
                                EXPLAINED[i].3
                            ));
                        }
                        None => {
                            tally.differ_unexplained += 1;
                            let m = format!(
                                "{name} line {line} {}: ours {}, {peer} asserts {}",
                                c.key, c.ours, c.peer
                            );
                            notes.push(format!("UNEXPLAINED {m}"));
                            problems.push(m);
                        }
                    }
                }
            }
            let agreement = match (file_asserted, file_compared) {
                (0, _) => "no values asserted (the peer checks that its lines parse)".to_owned(),
                (n, 0) => format!("{n} values asserted, none compared (see below)"),
                (_, c) => format!("{file_agree}/{c} fields agree"),
            };
            println!(
                "{name} ({peer}): {agreement}; lines: {} ({file_routed} routed, {file_quarantined} quarantined)",
                lines.len()
            );
            for n in notes {
                println!("    {n}");
            }
        }
        let t = &tally;
        let differ = t.differ_explained + t.differ_unexplained;
        let summary = format!(
            "{format}: {}/{} fields agree (timestamps among them: {}; {differ} differ: {} explained, {} not), {} lines of {} files: {} routed, {} quarantined; of the {} lines the peer parses, {} quarantined ({} explained); of the {} the peer treats as broken, {} quarantined, {} routed (explained)",
            t.agree,
            t.compared,
            t.timestamps,
            t.differ_explained,
            t.differ_unexplained,
            t.lines,
            t.files,
            t.routed,
            t.quarantined,
            t.lines - t.peer_broken,
            t.quarantined - t.peer_broken_quarantined,
            t.quarantined_explained,
            t.peer_broken,
            t.peer_broken_quarantined,
            t.peer_broken_routed_explained,
        );
        let mut block = vec![summary];
        for (why, n) in &t.not_compared {
            if *n > 0 {
                block.push(format!("    not compared: {n} asserted values ({why})"));
            }
        }
        summaries.push(block.join("\n"));
    }
    println!();
    for s in &summaries {
        println!("{s}");
    }

    for name in files.keys() {
        if !seen_files.contains(name) {
            problems.push(format!("{name}: in expected.json, but no such file"));
        }
    }
    for (i, (file, line, what, _)) in EXPLAINED.iter().enumerate() {
        if !used.contains(&i) {
            problems.push(format!(
                "EXPLAINED lists {file} line {line} {what:?}, which no longer differs: remove the entry"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) with the peer logs:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
