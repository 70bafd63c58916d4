//! `--format cloudfront|s3_access|alb`: AWS access logs instead of JSON
//! lines, with the field lists and quoting AWS documents (and its example
//! lines show, see `../shared/fixtures/logs/`):
//!
//! - CloudFront standard logs (W3C): `#Version: 1.0` and `#Fields: …` header
//!   lines, then one tab-separated record per request, `-` for empty. The
//!   values of `cs-uri-stem`, `cs-uri-query`, `cs(Referer)`,
//!   `cs(User-Agent)` and `cs(Cookie)` are percent-encoded per RFC 1738
//!   (bytes 0–32 and 127–255, and `<>"#%{}|\^~[]` and the backquote), so a
//!   user agent that was sent with a `%20` in it is logged `%2520`, as in
//!   real archives. `--fields` 24, 26 or 33 (default): the field lists of
//!   2017, of field-level encryption, and of since 2019-12.
//! - S3 server access logs: space-separated, no header; `Time` in brackets
//!   (`[06/Feb/2019:00:01:57 +0000]`); `Request-URI`, `Referer` and
//!   `User-Agent` in double quotes with any `"` inside them left as it is
//!   (that is how S3 writes them), `"-"` when empty; `-` for other empty
//!   fields. `--fields` 18 (the 2014 list) to 26 (to `aclRequired`, the
//!   default). `--payload`: every request is a signed GET of the 0-byte
//!   object `tick` carrying one event as the pipe-delimited `data` query
//!   value (`|event_timestamp|event_guid|user_id|user_type|consumer|country|
//!   event_type|video_type|content_id|start|end|`).
//! - ALB access logs: space-separated; `request`, `user_agent`, `trace_id`,
//!   `domain_name`, `chosen_cert_arn`, `actions_executed`, `redirect_url`,
//!   `error_reason`, `target:port_list`, `target_status_code_list`,
//!   `classification` and `classification_reason` always in double quotes
//!   (`"-"` when empty); processing times `-1` and target `-` when the
//!   request was not dispatched. IPv6 clients are written as ALB does,
//!   without brackets (`2001:db8::7:51234`: the port is after the last `:`).
//!   `--fields` 18 to 30 (default, to `conn_trace_id`). The user agents
//!   here never contain `"` (how ALB would write one is not documented).
//!
//! Every value comes from the generator's seeded PRNG: the same arguments
//! give the same bytes. One record at a time is built in a reused buffer.

use std::io::Write;

use super::{hex_into, mix64, uuid, Rng, Start};

/// The output format of `gen-events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// JSON lines (analytics events).
    Json,
    /// CloudFront standard logs (W3C, tab-separated, `#Fields` header).
    Cloudfront,
    /// S3 server access logs.
    #[value(name = "s3_access")]
    S3Access,
    /// Application Load Balancer access logs.
    Alb,
    /// JSON lines shaped like the GitHub archive's events (type in `type`;
    /// see `github.rs`).
    Github,
}

/// CloudFront's fields, in the order of its standard log since 2019-12.
pub use router::format::cloudfront::STANDARD_FIELDS as CLOUDFRONT_FIELDS;

/// S3 server access log fields, in their documented order.
pub use router::format::s3_access::FIELDS as S3_ACCESS_FIELDS;

/// ALB access log fields, in their documented order.
pub use router::format::alb::FIELDS as ALB_FIELDS;

/// Positions (0-based) of the ALB fields written in double quotes.
#[cfg(test)]
pub const ALB_QUOTED: [usize; 12] = [12, 13, 17, 18, 19, 22, 23, 24, 25, 26, 27, 28];

/// Positions of the S3 access log fields written in double quotes.
#[cfg(test)]
pub const S3_QUOTED: [usize; 3] = [8, 15, 16];

/// The payload's field names (`--payload`), in their order.
#[cfg(test)]
pub const PAYLOAD_FIELDS: [&str; 11] = [
    "event_timestamp",
    "event_guid",
    "user_id",
    "user_type",
    "consumer",
    "country",
    "event_type",
    "video_type",
    "content_id",
    "start",
    "end",
];

/// The payload's event types, most frequent first.
pub const PAYLOAD_TYPES: [&str; 5] = ["watch", "pause", "share", "stop", "seek"];

impl Format {
    /// The documented field names, in their order.
    pub fn documented(self) -> &'static [&'static str] {
        match self {
            Format::Json | Format::Github => &[],
            Format::Cloudfront => &CLOUDFRONT_FIELDS,
            Format::S3Access => &S3_ACCESS_FIELDS,
            Format::Alb => &ALB_FIELDS,
        }
    }

    /// The field counts `--fields` accepts, and the default.
    fn field_counts(self) -> (&'static [usize], usize) {
        const S3: [usize; 9] = [18, 19, 20, 21, 22, 23, 24, 25, 26];
        // ALB has written at least the 18 fields to trace_id since 2016.
        const ALB: [usize; 13] = [18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30];
        match self {
            Format::Json | Format::Github => (&[], 0),
            Format::Cloudfront => (&[24, 26, 33], CLOUDFRONT_FIELDS.len()),
            Format::S3Access => (&S3, S3_ACCESS_FIELDS.len()),
            Format::Alb => (&ALB, ALB_FIELDS.len()),
        }
    }
}

/// User agents as sent (decoded): spaces, parentheses, quotes, a literal
/// `%20` (logged double-encoded by CloudFront), non-ASCII.
const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.6045.163 Mobile Safari/537.36",
    "curl/7.46.0",
    "aws-cli/2.15.0 Python/3.11.6 Linux/6.1.0-13-amd64 exe/x86_64.debian.12 prompt/off command/s3.cp",
    "Roku/DVP-12.5 (12.5.0.4178-AE)",
    "VLC/3.0.18 LibVLC/3.0.18",
    "Lavf/58.76.100",
    "python-requests/2.31.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Player%20App/3.2 CFNetwork/1410.0.3 Darwin/22.6.0",
    "Dalvik/2.1.0 (Linux; U; Android 9; \"Galaxy S9\" Build/PPR1.180610.011)",
    "SmartTV/1.4 (Tizen 6.5; \"Living room\") Player",
    "Lecteur vidéo/2.0 (Linux; Android 12; Téléviseur)",
];

const REFERERS: &[&str] = &[
    "https://www.example.com/",
    "https://www.example.com/watch?v=42&list=PL1",
    "https://www.example.com/search?q=caf%C3%A9 au lait",
    "https://www.google.com/",
    "android-app://com.google.android.gm/",
];

const EDGES: &[&str] = &[
    "LAX1", "IAD89-C1", "FRA56-P3", "LHR61-C2", "NRT57-P2", "SIN2-C1", "GRU3-C1", "DUB2-C1",
];

const QUERIES: &[&str] = &[
    "utm_source=newsletter&utm_medium=email",
    "autoplay=1&t=30",
    "q=caf%C3%A9%20au%20lait",
    "token=abc%2Bdef%3D%3D&expires=1421762400",
    "lang=fr&v=2",
];

const CONTENT_TYPES: &[(&str, &str)] = &[
    ("/index.html", "text/html"),
    ("/favicon.ico", "image/x-icon"),
    ("/fonts/Café.woff2", "font/woff2"),
];

/// Generates access-log records.
pub struct AccessGen {
    format: Format,
    fields: usize,
    payload: bool,
    rng: Rng,
    /// `YYYY`, `MM`, `DD`, `HH` of `--start`.
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
}

fn digits(b: &[u8]) -> u32 {
    b.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'))
}

impl AccessGen {
    /// `fields`: the first N documented fields (`None`: the format's
    /// default). The error is a usage error.
    pub fn new(
        format: Format,
        fields: Option<usize>,
        payload: bool,
        seed: u64,
        start: Start,
    ) -> Result<Self, String> {
        let (allowed, default) = format.field_counts();
        let fields = fields.unwrap_or(default);
        if !allowed.contains(&fields) {
            let name = clap::ValueEnum::to_possible_value(&format)
                .map_or_else(String::new, |v| v.get_name().to_owned());
            return Err(format!(
                "--fields {fields}: {name} logs have {}",
                allowed
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if payload && format != Format::S3Access {
            return Err("--payload is for --format s3_access".into());
        }
        let s = &start.0;
        Ok(Self {
            format,
            fields,
            payload,
            rng: Rng(mix64(seed ^ 0x00A1_1CE5_5106)),
            year: digits(&s[0..4]),
            month: digits(&s[5..7]),
            day: digits(&s[8..10]),
            hour: digits(&s[11..13]),
        })
    }

    /// The lines before the first record (CloudFront's two), each with its `\n`.
    pub fn header(&self, out: &mut Vec<u8>) {
        if self.format == Format::Cloudfront {
            out.extend_from_slice(b"#Version: 1.0\n#Fields:");
            for f in &CLOUDFRONT_FIELDS[..self.fields] {
                out.push(b' ');
                out.extend_from_slice(f.as_bytes());
            }
            out.push(b'\n');
        }
    }

    /// Appends one record (without its `\n`) for a request at `ts_ms`
    /// milliseconds into the hour.
    pub fn record(&mut self, out: &mut Vec<u8>, ts_ms: u64) {
        let mut fields: Vec<Vec<u8>> = Vec::with_capacity(33);
        match self.format {
            Format::Json | Format::Github => unreachable!("JSON lines are not access logs"),
            Format::Cloudfront => self.cloudfront(&mut fields, ts_ms),
            Format::S3Access => self.s3_access(&mut fields, ts_ms),
            Format::Alb => self.alb(&mut fields, ts_ms),
        }
        debug_assert_eq!(fields.len(), self.format.documented().len());
        let sep = if self.format == Format::Cloudfront {
            b'\t'
        } else {
            b' '
        };
        for (i, f) in fields.iter().take(self.fields).enumerate() {
            if i > 0 {
                out.push(sep);
            }
            out.extend_from_slice(f);
        }
    }

    fn ip(&mut self) -> String {
        let r = &mut self.rng;
        match r.below(10) {
            0..=5 => {
                let first = r.pick(&[24u64, 52, 73, 81, 86, 109, 151, 176, 185, 213]);
                format!(
                    "{first}.{}.{}.{}",
                    r.below(256),
                    r.below(256),
                    1 + r.below(254)
                )
            }
            6 => format!(
                "{}.{}",
                r.pick(&["192.0.2", "198.51.100", "203.0.113"]),
                1 + r.below(254)
            ),
            7 | 8 => format!(
                "2001:db8:{:x}:{:x}::{:x}",
                r.below(0x10000),
                r.below(0x10000),
                1 + r.below(0xfff)
            ),
            _ => format!(
                "2a02:c7f:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}",
                r.below(0x10000),
                r.below(0x10000),
                r.below(0x10000),
                r.below(0x10000),
                r.below(0x10000),
                r.below(0x10000)
            ),
        }
    }

    /// A user agent as sent, or `None` (absent) now and then.
    fn user_agent(&mut self, allow_quotes: bool) -> Option<&'static str> {
        if self.rng.pct(2) {
            return None;
        }
        // The first three (browsers) are much more frequent.
        let n = USER_AGENTS.len() as u64;
        loop {
            let i = if self.rng.pct(40) {
                self.rng.below(3)
            } else {
                self.rng.below(n)
            } as usize;
            let ua = USER_AGENTS[i];
            if allow_quotes || !ua.contains('"') {
                return Some(ua);
            }
        }
    }

    /// A path (decoded) and its content type.
    fn path(&mut self) -> (String, &'static str) {
        let r = &mut self.rng;
        let id = r.range(100_000, 999_999);
        match r.below(10) {
            0 => (format!("/embed/{id}"), "text/html"),
            1 => (format!("/share/{id}"), "text/html"),
            2 => (format!("/download/{id}.mp4"), "video/mp4"),
            3 | 4 => (
                format!("/videos/{id}/master.m3u8"),
                "application/vnd.apple.mpegurl",
            ),
            5 | 6 => (
                format!("/videos/{id}/seg-{}.ts", r.below(900)),
                "video/MP2T",
            ),
            7 => (format!("/images/poster {id}.jpg"), "image/jpeg"),
            _ => {
                let (p, t) = r.pick(CONTENT_TYPES);
                (p.to_owned(), t)
            }
        }
    }

    /// The minute, second and microsecond of `ts_ms` into the hour, with a
    /// few microseconds of jitter.
    fn clock(&mut self, ts_ms: u64) -> (u64, u64, u64) {
        (
            ts_ms / 60_000 % 60,
            ts_ms / 1000 % 60,
            ts_ms % 1000 * 1000 + self.rng.below(1000),
        )
    }

    fn request_id(&mut self, len: usize) -> String {
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
        (0..len)
            .map(|_| B64[self.rng.below(64) as usize] as char)
            .collect()
    }

    fn hex(&mut self, len: usize, upper: bool) -> String {
        let mut out = String::with_capacity(len);
        while out.len() < len {
            let mut b = [0u8; 16];
            hex_into(&mut b, self.rng.next_u64());
            out.push_str(std::str::from_utf8(&b).expect("hex"));
        }
        out.truncate(len);
        if upper {
            out.make_ascii_uppercase();
        }
        out
    }

    fn cloudfront(&mut self, f: &mut Vec<Vec<u8>>, ts_ms: u64) {
        let (min, sec, _) = self.clock(ts_ms);
        let ip = self.ip();
        let (path, content_type) = self.path();
        let r = &mut self.rng;
        let method = match r.below(20) {
            0 => "HEAD",
            1 => "POST",
            2 => "OPTIONS",
            _ => "GET",
        };
        let status = match r.below(40) {
            0 => 403,
            1 | 2 => 404,
            3 => 502,
            4..=6 => 304,
            7..=10 if content_type.starts_with("video/") => 206,
            _ => 200,
        };
        let result = match (status, r.below(10)) {
            (403 | 404 | 502, _) => "Error",
            (_, 0..=5) => "Hit",
            (_, 6..=7) => "Miss",
            (_, 8) => "RefreshHit",
            _ => "Hit",
        };
        let https = !r.pct(8);
        let query = if r.pct(60) {
            None
        } else {
            Some(r.pick(QUERIES))
        };
        let referer = if r.pct(40) {
            None
        } else {
            Some(r.pick(REFERERS))
        };
        let cookie = if r.pct(85) {
            None
        } else {
            Some(format!("session-id={}; theme=dark", r.below(1 << 40)))
        };
        let len = 200 + r.below(5_000_000);
        let ranged = status == 206;
        let range_start = r.below(len / 2);
        let sc_bytes = if method == "HEAD" || status == 304 {
            200 + r.below(400)
        } else if ranged {
            len / 2 + 400
        } else {
            len + 400
        };
        let taken = 1 + r.below(2500);
        let ttfb = 1 + r.below(taken);
        let (host, edge) = ("d111111abcdef8.cloudfront.net", r.pick(EDGES));
        let x_host = if r.pct(70) { "www.example.com" } else { host };
        let forwarded = if r.pct(90) {
            None
        } else {
            Some(format!("{ip}, 10.0.0.1"))
        };
        let version = r.pick(&["HTTP/1.1", "HTTP/2.0", "HTTP/2.0", "HTTP/3.0"]);
        let port = 1024 + r.below(64_000);
        let ua = self.user_agent(true);
        let request_id = format!("{}==", self.request_id(54));
        let s = |v: &str| v.as_bytes().to_vec();
        let n = |v: u64| v.to_string().into_bytes();
        let enc = |v: Option<&str>| match v {
            None => b"-".to_vec(),
            Some(v) => rfc1738(v),
        };
        f.push(format!("{:04}-{:02}-{:02}", self.year, self.month, self.day).into_bytes());
        f.push(format!("{:02}:{min:02}:{sec:02}", self.hour).into_bytes());
        f.push(s(edge));
        f.push(n(sc_bytes));
        f.push(s(&ip));
        f.push(s(method));
        f.push(s(host));
        f.push(rfc1738(&path));
        f.push(n(status));
        f.push(enc(referer));
        f.push(enc(ua));
        f.push(enc(query));
        f.push(enc(cookie.as_deref()));
        f.push(s(result));
        f.push(s(&request_id));
        f.push(s(x_host));
        f.push(s(if https { "https" } else { "http" }));
        f.push(n(100 + self.rng.below(900)));
        f.push(format!("{}.{:03}", taken / 1000, taken % 1000).into_bytes());
        f.push(enc(forwarded.as_deref()));
        f.push(s(if https {
            self.rng.pick(&["TLSv1.2", "TLSv1.3", "TLSv1.3"])
        } else {
            "-"
        }));
        f.push(s(if https {
            self.rng
                .pick(&["ECDHE-RSA-AES128-GCM-SHA256", "TLS_AES_128_GCM_SHA256"])
        } else {
            "-"
        }));
        f.push(s(result));
        f.push(s(version));
        f.push(s("-"));
        f.push(s("-"));
        f.push(n(port));
        f.push(format!("{}.{:03}", ttfb / 1000, ttfb % 1000).into_bytes());
        f.push(s(result));
        f.push(s(if status == 304 { "-" } else { content_type }));
        f.push(if status == 304 { s("-") } else { n(len) });
        if ranged {
            f.push(n(range_start));
            f.push(n(range_start + len / 2 - 1));
        } else {
            f.push(s("-"));
            f.push(s("-"));
        }
    }

    fn month_name(&self) -> &'static str {
        [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ][self.month as usize - 1]
    }

    fn s3_access(&mut self, f: &mut Vec<Vec<u8>>, ts_ms: u64) {
        let (min, sec, _) = self.clock(ts_ms);
        let ip = self.ip();
        let owner = self.hex(64, false);
        let requester = match self.rng.below(4) {
            0 => "-".to_owned(),
            1 => "arn:aws:iam::123456789012:user/video-uploader".to_owned(),
            _ => owner.clone(),
        };
        let request_id = self.hex(16, true);
        let host_id = format!("{}=", self.request_id(75));
        let ua = self.user_agent(true);
        let referer = if self.rng.pct(60) {
            None
        } else {
            Some(self.rng.pick(REFERERS))
        };
        let time = format!(
            "[{:02}/{}/{:04}:{:02}:{min:02}:{sec:02} +0000]",
            self.day,
            self.month_name(),
            self.year,
            self.hour
        );
        let (bucket, operation, key, uri, status, error, sent, size) = if self.payload {
            let payload = self.payload_value(ts_ms);
            let status = if self.rng.pct(3) { 304 } else { 200 };
            (
                "tick-events".to_owned(),
                "REST.GET.OBJECT",
                "tick".to_owned(),
                format!("GET /tick?data={payload} HTTP/1.1"),
                status,
                "-",
                None,
                Some(0),
            )
        } else {
            let (path, _) = self.path();
            let key = path.trim_start_matches('/').to_owned();
            let r = &mut self.rng;
            let size = r.below(50_000_000);
            match r.below(20) {
                0..=11 => {
                    let status = if r.pct(5) { 404 } else { 200 };
                    (
                        "media-example".to_owned(),
                        "REST.GET.OBJECT",
                        key.clone(),
                        format!("GET /media-example/{} HTTP/1.1", uri_path(&key)),
                        status,
                        if status == 404 { "NoSuchKey" } else { "-" },
                        (status == 200).then_some(size),
                        (status == 200).then_some(size),
                    )
                }
                12..=14 => (
                    "media-example".to_owned(),
                    "REST.PUT.OBJECT",
                    key.clone(),
                    format!("PUT /media-example/{} HTTP/1.1", uri_path(&key)),
                    200,
                    "-",
                    None,
                    Some(size),
                ),
                15 | 16 => (
                    "media-example".to_owned(),
                    "REST.HEAD.OBJECT",
                    key.clone(),
                    format!("HEAD /media-example/{} HTTP/1.1", uri_path(&key)),
                    200,
                    "-",
                    None,
                    Some(size),
                ),
                17 => (
                    "media-example".to_owned(),
                    "REST.GET.BUCKET",
                    "-".to_owned(),
                    "GET /media-example?list-type=2&prefix=videos%2F&max-keys=1000 HTTP/1.1"
                        .to_owned(),
                    200,
                    "-",
                    Some(1_000 + r.below(300_000)),
                    None,
                ),
                18 => (
                    "media-example".to_owned(),
                    "REST.GET.OBJECT",
                    key.clone(),
                    format!("GET /media-example/{} HTTP/1.1", uri_path(&key)),
                    403,
                    "AccessDenied",
                    Some(243),
                    None,
                ),
                _ => (
                    "media-example".to_owned(),
                    "WEBSITE.GET.OBJECT",
                    key.clone(),
                    format!("GET /{} HTTP/1.1", uri_path(&key)),
                    200,
                    "-",
                    Some(size),
                    Some(size),
                ),
            }
        };
        let r = &mut self.rng;
        let total = 1 + r.below(900);
        let turnaround = r.below(total);
        let sigv4 = !r.pct(5);
        let tls = !r.pct(10);
        let s = |v: &str| v.as_bytes().to_vec();
        let n = |v: Option<u64>| v.map_or_else(|| b"-".to_vec(), |v| v.to_string().into_bytes());
        let quoted = |v: Option<&str>| format!("\"{}\"", v.unwrap_or("-")).into_bytes();
        f.push(s(&owner));
        f.push(s(&bucket));
        f.push(s(&time));
        f.push(s(&ip));
        f.push(s(&requester));
        f.push(s(&request_id));
        f.push(s(operation));
        f.push(if key == "-" {
            s("-")
        } else {
            s(&uri_path(&key))
        });
        f.push(quoted(Some(&uri)));
        f.push(n(Some(status)));
        f.push(s(error));
        f.push(n(sent));
        f.push(n(size));
        f.push(n(Some(total)));
        f.push(n(Some(turnaround)));
        f.push(quoted(referer));
        f.push(quoted(ua));
        f.push(s("-"));
        f.push(s(&host_id));
        f.push(s(if sigv4 { "SigV4" } else { "SigV2" }));
        f.push(s(if tls {
            "ECDHE-RSA-AES128-GCM-SHA256"
        } else {
            "-"
        }));
        f.push(s(if self.payload {
            "QueryString"
        } else {
            "AuthHeader"
        }));
        f.push(format!("{bucket}.s3.us-west-1.amazonaws.com").into_bytes());
        f.push(s(if tls { "TLSv1.2" } else { "-" }));
        f.push(s("-"));
        f.push(s(if self.rng.pct(10) { "Yes" } else { "-" }));
    }

    /// `|event_timestamp|event_guid|…|end|` for the hour of `--start`.
    fn payload_value(&mut self, ts_ms: u64) -> String {
        let (min, sec, _) = self.clock(ts_ms);
        let guid = uuid(&mut self.rng);
        let r = &mut self.rng;
        // Mostly watch, then pause, share, stop, seek.
        let t = PAYLOAD_TYPES[[0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 4][r.below(13) as usize]];
        let start = r.below(3_600);
        let end = start + 1 + r.below(600);
        let values = [
            format!(
                "{:04}-{:02}-{:02}T{:02}:{min:02}:{sec:02}",
                self.year, self.month, self.day, self.hour
            ),
            std::str::from_utf8(&guid).expect("uuid").to_owned(),
            r.range(1_000_000, 9_999_999).to_string(),
            r.pick(&["Registered", "Registered", "Anonymous", "Subscriber"])
                .to_owned(),
            r.pick(&[
                "InternalCodeForConsumerType",
                "iplayer-web",
                "iplayer-android",
                "smarttv",
            ])
            .to_owned(),
            r.pick(&["Wales", "England", "Scotland", "Northern%20Ireland"])
                .to_owned(),
            t.to_owned(),
            r.pick(&["video", "video", "episode", "trailer", "live"])
                .to_owned(),
            r.range(1, 99_999).to_string(),
            start.to_string(),
            end.to_string(),
        ];
        let mut out = String::from("|");
        for v in values {
            out.push_str(&v);
            out.push('|');
        }
        out
    }

    fn alb(&mut self, f: &mut Vec<Vec<u8>>, ts_ms: u64) {
        let (min, sec, micros) = self.clock(ts_ms);
        let ip = self.ip();
        let (path, _) = self.path();
        let ua = self.user_agent(false);
        let trace = format!("Root=1-{}-{}", self.hex(8, false), self.hex(24, false));
        let conn = format!("TID_{}", self.hex(32, false));
        let cert = format!(
            "arn:aws:acm:us-east-2:123456789012:certificate/{}",
            std::str::from_utf8(&uuid(&mut self.rng)).expect("uuid")
        );
        let r = &mut self.rng;
        let kind = r.pick(&["https", "https", "h2", "http"]);
        let tls = kind != "http";
        let port = 1024 + r.below(64_000);
        let target = format!("10.0.{}.{}:80", r.below(4), 1 + r.below(50));
        let redirect = tls && r.pct(3);
        let not_dispatched = !redirect && r.pct(2);
        let status = match (redirect, not_dispatched) {
            (true, _) => 301,
            (_, true) => r.pick(&[502, 503, 504]),
            _ => r.pick(&[200, 200, 200, 200, 200, 206, 304, 404]),
        };
        let query = if r.pct(70) {
            String::new()
        } else {
            format!("?{}", r.pick(QUERIES))
        };
        let scheme = if tls { "https" } else { "http" };
        let host = "www.example.com";
        let dport = if tls { 443 } else { 80 };
        let version = if kind == "h2" { "HTTP/2.0" } else { "HTTP/1.1" };
        let method = if r.pct(90) { "GET" } else { "POST" };
        let request = format!(
            "{method} {scheme}://{host}:{dport}{}{query} {version}",
            uri_path(&path)
        );
        let received = 100 + r.below(2_000);
        let sent = if status == 304 || redirect {
            150 + r.below(300)
        } else {
            200 + r.below(5_000_000)
        };
        let times = |r: &mut Rng| format!("{}.{:03}", r.below(2), r.below(1000));
        let (t1, t2, t3) = if not_dispatched || redirect {
            ("-1".to_owned(), "-1".to_owned(), "-1".to_owned())
        } else {
            (times(r), times(r), times(r))
        };
        let created_ms = ts_ms.saturating_sub(r.below(2_000));
        let (cmin, csec, cmicros) = (
            created_ms / 60_000 % 60,
            created_ms / 1000 % 60,
            created_ms % 1000 * 1000 + r.below(1000),
        );
        let rule = if r.pct(60) { 0 } else { 1 + r.below(10) };
        let waf = r.pct(20);
        let date = format!(
            "{:04}-{:02}-{:02}T{:02}",
            self.year, self.month, self.day, self.hour
        );
        let s = |v: &str| v.as_bytes().to_vec();
        let q = |v: &str| format!("\"{v}\"").into_bytes();
        let dispatched = !(not_dispatched || redirect);
        f.push(s(kind));
        f.push(format!("{date}:{min:02}:{sec:02}.{micros:06}Z").into_bytes());
        f.push(s("app/my-loadbalancer/50dc6c495c0c9188"));
        f.push(format!("{ip}:{port}").into_bytes());
        f.push(s(if dispatched { &target } else { "-" }));
        f.push(s(&t1));
        f.push(s(&t2));
        f.push(s(&t3));
        f.push(status.to_string().into_bytes());
        f.push(if dispatched {
            status.to_string().into_bytes()
        } else {
            s("-")
        });
        f.push(received.to_string().into_bytes());
        f.push(sent.to_string().into_bytes());
        f.push(q(&request));
        f.push(q(ua.unwrap_or("-")));
        f.push(s(if tls {
            "ECDHE-RSA-AES128-GCM-SHA256"
        } else {
            "-"
        }));
        f.push(s(if tls { "TLSv1.2" } else { "-" }));
        f.push(s("arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067"));
        f.push(q(&trace));
        f.push(q(if tls { host } else { "-" }));
        f.push(q(if tls { &cert } else { "-" }));
        f.push(rule.to_string().into_bytes());
        f.push(format!("{date}:{cmin:02}:{csec:02}.{cmicros:06}Z").into_bytes());
        f.push(q(match (redirect, waf) {
            (true, _) => "redirect",
            (false, true) => "waf,forward",
            (false, false) => "forward",
        }));
        f.push(if redirect {
            q(&format!("https://{host}:443{}{query}", uri_path(&path)))
        } else {
            q("-")
        });
        f.push(q(if not_dispatched {
            "TargetConnectionError"
        } else {
            "-"
        }));
        f.push(q(if dispatched { &target } else { "-" }));
        f.push(if dispatched {
            q(&status.to_string())
        } else {
            q("-")
        });
        f.push(q("-"));
        f.push(q("-"));
        f.push(s(&conn));
    }
}

/// Percent-encodes per RFC 1738, as CloudFront writes its logs: bytes 0–32
/// and 127–255, and the unsafe characters `<>"#%{}|\^~[]` and the backquote.
pub fn rfc1738(v: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() + 16);
    for &b in v.as_bytes() {
        if b <= 0x20 || b >= 0x7f || b"<>\"#%{}|\\^~[]`".contains(&b) {
            write!(out, "%{b:02X}").expect("write to a Vec");
        } else {
            out.push(b);
        }
    }
    out
}

/// A path as a client sends it in a request line: spaces and non-ASCII
/// percent-encoded (UTF-8), the rest as it is.
fn uri_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 8);
    for &b in path.as_bytes() {
        if b <= 0x20 || b >= 0x7f || b == b'"' || b == b'%' {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{args, output};

    fn text(extra: &[&str]) -> String {
        String::from_utf8(output(extra)).expect("UTF-8")
    }

    fn percent_decode(v: &str) -> String {
        logrouter::percent::decode(v, false)
            .expect("UTF-8 once decoded")
            .into_owned()
    }

    /// S3 access log fields, by the documented layout: `[Time]`, quoted
    /// Request-URI and Referer (never a `"` inside, here), a quoted
    /// User-Agent that may hold `"` (it is the only field that can), then
    /// fields without spaces.
    fn s3_fields(line: &str, n: usize) -> Vec<String> {
        let pattern: Vec<&str> = (0..n)
            .map(|i| match i {
                2 => r"\[([^\]]*)\]",
                16 => r#""(.*)""#,
                i if S3_QUOTED.contains(&i) => r#""([^"]*)""#,
                _ => r"(\S+)",
            })
            .collect();
        let re = regex::Regex::new(&format!("^{}$", pattern.join(" "))).unwrap();
        let caps = re
            .captures(line)
            .unwrap_or_else(|| panic!("not an S3 access log record: {line}"));
        (1..=n).map(|i| caps[i].to_owned()).collect()
    }

    /// ALB tokens: quoted (no `"` inside) or up to the next space; returns
    /// each token and whether it was quoted.
    fn alb_tokens(line: &str) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        let mut rest = line;
        while !rest.is_empty() {
            if let Some(q) = rest.strip_prefix('"') {
                let end = q.find('"').expect("closing quote");
                out.push((q[..end].to_owned(), true));
                rest = &q[end + 1..];
            } else {
                let end = rest.find(' ').unwrap_or(rest.len());
                out.push((rest[..end].to_owned(), false));
                rest = &rest[end..];
            }
            if let Some(r) = rest.strip_prefix(' ') {
                rest = r;
                assert!(!rest.is_empty(), "trailing space: {line}");
            } else {
                assert!(
                    rest.is_empty(),
                    "fields must be separated by a space: {line}"
                );
            }
        }
        out
    }

    #[test]
    fn cloudfront_records_have_the_header_fields_and_rfc1738_encoding() {
        for (extra, n) in [
            (&[][..], 33),
            (&["--fields", "24"][..], 24),
            (&["--fields", "26"], 26),
        ] {
            let mut a = vec!["--format", "cloudfront", "--lines", "3000"];
            a.extend_from_slice(extra);
            let out = text(&a);
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(lines.len(), 3002);
            assert_eq!(lines[0], "#Version: 1.0");
            let names: Vec<&str> = lines[1]
                .strip_prefix("#Fields: ")
                .unwrap()
                .split(' ')
                .collect();
            assert_eq!(names, CLOUDFRONT_FIELDS[..n]);
            let col = |name: &str| names.iter().position(|f| *f == name).unwrap();
            let (mut spaced, mut quoted, mut double, mut ipv6) = (0, 0, 0, 0);
            for record in &lines[2..] {
                let f: Vec<&str> = record.split('\t').collect();
                assert_eq!(f.len(), n, "{record}");
                for v in &f {
                    assert!(
                        !v.is_empty() && v.bytes().all(|b| b > 0x20 && b < 0x7f && b != b'"'),
                        "{v:?} in {record}"
                    );
                }
                assert_eq!(f[0], "2015-01-20");
                assert!(f[1].starts_with("13:") && f[1].len() == 8, "{}", f[1]);
                let ua = f[col("cs(User-Agent)")];
                if ua != "-" {
                    let decoded = percent_decode(ua);
                    assert!(USER_AGENTS.contains(&decoded.as_str()), "{decoded}");
                    spaced += usize::from(decoded.contains(' '));
                    quoted += usize::from(decoded.contains('"'));
                    double += usize::from(ua.contains("%2520"));
                }
                ipv6 += usize::from(f[col("c-ip")].contains(':'));
                let stem = percent_decode(f[col("cs-uri-stem")]);
                assert!(stem.starts_with('/') && !stem.contains('?'), "{stem}");
                f[col("sc-bytes")].parse::<u64>().unwrap();
                f[col("time-taken")].parse::<f64>().unwrap();
            }
            assert!(
                spaced > 1000 && quoted > 10 && double > 5 && ipv6 > 300,
                "{spaced} {quoted} {double} {ipv6}"
            );
        }
    }

    #[test]
    fn s3_access_records_parse_by_the_documented_layout() {
        for (extra, n) in [(&[][..], 26), (&["--fields", "18"][..], 18)] {
            let mut a = vec!["--format", "s3_access", "--lines", "3000"];
            a.extend_from_slice(extra);
            let (mut quotes, mut ipv6, mut absent) = (0, 0, 0);
            for line in text(&a).lines() {
                let f = s3_fields(line, n);
                assert!(
                    f[2].starts_with("20/Jan/2015:13:") && f[2].ends_with(" +0000"),
                    "{}",
                    f[2]
                );
                assert!(
                    f[8].ends_with(" HTTP/1.1") && !f[8].contains('"'),
                    "{}",
                    f[8]
                );
                assert!(
                    f[15] == "-" || REFERERS.contains(&f[15].as_str()),
                    "{}",
                    f[15]
                );
                assert!(
                    f[16] == "-" || USER_AGENTS.contains(&f[16].as_str()),
                    "{}",
                    f[16]
                );
                quotes += usize::from(f[16].contains('"'));
                absent += usize::from(f[16] == "-");
                ipv6 += usize::from(f[3].contains(':'));
                f[9].parse::<u16>().unwrap();
                assert!(f[11] == "-" || f[11].parse::<u64>().is_ok());
            }
            assert!(
                quotes > 10 && ipv6 > 300 && absent > 5,
                "{quotes} {ipv6} {absent}"
            );
        }
    }

    #[test]
    fn s3_access_payload_carries_the_pipe_delimited_event() {
        let mut types = std::collections::BTreeSet::new();
        for line in text(&["--format", "s3_access", "--payload", "--lines", "2000"]).lines() {
            let f = s3_fields(line, 26);
            assert_eq!((f[6].as_str(), f[7].as_str()), ("REST.GET.OBJECT", "tick"));
            let data = f[8]
                .strip_prefix("GET /tick?data=|")
                .and_then(|d| d.strip_suffix("| HTTP/1.1"))
                .unwrap_or_else(|| panic!("{}", f[8]));
            let v: Vec<&str> = data.split('|').collect();
            assert_eq!(v.len(), PAYLOAD_FIELDS.len(), "{data}");
            assert!(
                v[0].starts_with("2015-01-20T13:") && v[0].len() == 19,
                "{}",
                v[0]
            );
            assert_eq!(v[1].len(), 36);
            v[2].parse::<u64>().unwrap();
            assert!(PAYLOAD_TYPES.contains(&v[6]), "{}", v[6]);
            let (start, end) = (v[9].parse::<u64>().unwrap(), v[10].parse::<u64>().unwrap());
            assert!(start < end);
            types.insert(v[6].to_owned());
        }
        assert_eq!(types.len(), PAYLOAD_TYPES.len(), "{types:?}");
    }

    #[test]
    fn alb_records_have_their_fields_quoted_as_documented() {
        for (extra, n) in [(&[][..], 30), (&["--fields", "29"][..], 29)] {
            let mut a = vec!["--format", "alb", "--lines", "3000"];
            a.extend_from_slice(extra);
            let (mut ipv6, mut undispatched) = (0, 0);
            for line in text(&a).lines() {
                let t = alb_tokens(line);
                assert_eq!(t.len(), n, "{line}");
                let quoted: Vec<usize> = (0..n).filter(|i| t[*i].1).collect();
                let want: Vec<usize> = ALB_QUOTED.iter().copied().filter(|i| *i < n).collect();
                assert_eq!(quoted, want, "{line}");
                assert!(t[1].0.starts_with("2015-01-20T13:") && t[1].0.ends_with('Z'));
                let (ip, port) = t[3].0.rsplit_once(':').unwrap();
                port.parse::<u16>().unwrap();
                ipv6 += usize::from(ip.contains(':'));
                assert!(t[13].0 == "-" || USER_AGENTS.contains(&t[13].0.as_str()));
                if t[5].0 == "-1" {
                    undispatched += 1;
                } else {
                    t[5].0.parse::<f64>().unwrap();
                }
            }
            assert!(ipv6 > 300 && undispatched > 10, "{ipv6} {undispatched}");
        }
    }

    #[test]
    fn same_seed_gives_same_access_log_bytes() {
        for format in [
            &["--format", "cloudfront"][..],
            &["--format", "s3_access"],
            &["--format", "s3_access", "--payload"],
            &["--format", "alb"],
        ] {
            let mut a = format.to_vec();
            a.extend_from_slice(&["--lines", "2000"]);
            let first = output(&a);
            assert_eq!(first, output(&a), "{format:?}");
            let mut other = a.clone();
            other.extend_from_slice(&["--seed", "7"]);
            assert_ne!(first, output(&other), "{format:?}");
            let mut gz = a.clone();
            gz.push("--gzip");
            assert_eq!(output(&gz), output(&gz), "{format:?} gzipped");
        }
    }

    #[test]
    fn bytes_limit_and_usage_errors() {
        let out = output(&["--format", "alb", "--bytes", "64K"]);
        assert!(out.len() >= 65536 && out.len() < 65536 + 4000);
        assert!(out.ends_with(b"\n"));
        for bad in [
            &["--format", "cloudfront", "--fields", "25"][..],
            &["--format", "alb", "--payload"],
            &["--fields", "24"],
            &["--format", "s3_access", "--dirty"],
        ] {
            let mut sink = Vec::new();
            assert!(
                crate::write_output(&args(bad), &mut sink).is_err(),
                "{bad:?}"
            );
        }
    }
}
