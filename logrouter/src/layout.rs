//! Names of everything the router writes under its destination.
//!
//! ```text
//! DEST/<event_type>/dt=YYYY-MM-DD/hour=HH/<stem>-<hash>.part-00000.json.gz   routed lines
//! DEST/_rejected/dt=YYYY-MM-DD/hour=HH/<stem>-<hash>.part-00000.json.gz      quarantine records
//! DEST/_manifests/dt=YYYY-MM-DD/hour=HH/<stem>-<hash>.json                    one per source
//! ```
//!
//! `<stem>` is the source's file name without its extensions, `<hash>` the
//! first 12 hex digits of the SHA-256 of the source URI (two sources with the
//! same file name in different folders never collide), and the partition is
//! the hour found in the source's key, or `undated` when its key has none.
//! Every name is a pure function of the source's URI, so routing a source
//! again writes the same keys. (LastModified is recorded in the manifest but
//! never used in names: it changes when an object is copied in place, and the
//! same source would then get a second manifest.)

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::OutputCompression;
use crate::normalize::MAX_NAME_LEN;

pub const REJECTED_DIR: &str = "_rejected";
/// Selective replays live apart: `DEST/_replays/<tag>/…`, the same layout
/// below, so type folders only ever hold full routes.
pub const REPLAYS_DIR: &str = "_replays";
pub const MANIFESTS_DIR: &str = "_manifests";

/// S3's limit on the length of a key, in bytes of UTF-8.
pub const S3_MAX_KEY_BYTES: usize = 1024;

/// The longest key, relative to DEST, that the router can write, whatever
/// the source's key: a replay's root (`_replays/replay-` + 8 hex + `/`, 25),
/// the longest type name (63), `/`, a partition (`dt=…/hour=…`, 21), `/`, the
/// longest slug (a stem cut at 80 + `-` + 12 hex, 93), the longest part
/// suffix (`.part-` + u32 digits + `.json.zst`, 25). Every name is bounded
/// so that a destination prefix can be checked once at start-up: one of at
/// most `S3_MAX_KEY_BYTES - MAX_RELATIVE_KEY_BYTES` bytes never yields a key
/// S3 refuses (a test builds the longest name and checks this figure).
pub const MAX_RELATIVE_KEY_BYTES: usize = 25 + MAX_NAME_LEN + 1 + 21 + 1 + 93 + 25;

/// Refuses an S3 destination prefix under which some key could pass S3's
/// limit; the message names the limit and the longest prefix allowed.
pub fn check_dest_prefix(prefix: &str) -> Result<(), String> {
    let longest = prefix.len() + MAX_RELATIVE_KEY_BYTES;
    if longest > S3_MAX_KEY_BYTES {
        return Err(format!(
            "the destination prefix is {} bytes, and the router's keys under it can reach {longest} bytes, over S3's limit of {S3_MAX_KEY_BYTES} bytes per key: use a prefix of at most {} bytes",
            prefix.len(),
            S3_MAX_KEY_BYTES - MAX_RELATIVE_KEY_BYTES
        ));
    }
    Ok(())
}

/// Key-time patterns recognised by default: `%Y %m %d %H` are 4/2/2/2 digits.
pub const DEFAULT_KEY_TIME_PATTERNS: [&str; 4] = [
    "dt=%Y-%m-%d/hour=%H",
    "%Y-%m-%d_%H",
    "%Y-%m-%d-%H",
    "%Y/%m/%d/%H",
];

/// Where a source's time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeFrom {
    Key,
    LastModified,
    /// Standard input: no time at all.
    None,
}

/// The identity of a source in output names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceName {
    /// The hour the source covers: from its key, else LastModified.
    pub time: Option<DateTime<Utc>>,
    pub time_from: TimeFrom,
    /// The hour in the key, which alone names the partition.
    key_time: Option<DateTime<Utc>>,
    /// `""`, or `_replays/<tag>/` for a selective replay.
    root: String,
    /// `<stem>-<hash>`.
    pub slug: String,
}

impl SourceName {
    /// `uri` identifies the source (`s3://b/k`, an absolute path, or `-`);
    /// `file_name` is its last path segment.
    pub fn new(
        uri: &str,
        key_time: Option<DateTime<Utc>>,
        fallback: Option<DateTime<Utc>>,
    ) -> Self {
        let (time, time_from) = match (key_time, fallback) {
            (Some(t), _) => (Some(t), TimeFrom::Key),
            (None, Some(t)) => (Some(hour_floor(t)), TimeFrom::LastModified),
            (None, None) => (None, TimeFrom::None),
        };
        let file_name = uri.rsplit('/').next().unwrap_or(uri);
        let hash = hex::encode_prefix(&Sha256::digest(uri.as_bytes()), 6);
        SourceName {
            time,
            time_from,
            key_time,
            root: String::new(),
            slug: format!("{}-{hash}", stem(file_name)),
        }
    }

    fn partition(&self) -> String {
        match self.key_time {
            Some(t) => format!(
                "dt={:04}-{:02}-{:02}/hour={:02}",
                t.year(),
                t.month(),
                t.day(),
                t.hour()
            ),
            None => "undated".to_owned(),
        }
    }

    /// Key (relative to DEST) of part `part` of `event_type`.
    pub fn part_key(&self, event_type: &str, part: u32, compression: OutputCompression) -> String {
        format!(
            "{}{event_type}/{}/{}.part-{part:05}.json.{}",
            self.root,
            self.partition(),
            self.slug,
            compression.extension()
        )
    }

    /// Key of quarantine part `part` (always gzip: quarantine is small and
    /// must open with zcat).
    pub fn rejected_key(&self, part: u32) -> String {
        format!(
            "{}{REJECTED_DIR}/{}/{}.part-{part:05}.json.gz",
            self.root,
            self.partition(),
            self.slug
        )
    }

    pub fn manifest_key(&self) -> String {
        format!(
            "{}{MANIFESTS_DIR}/{}/{}.json",
            self.root,
            self.partition(),
            self.slug
        )
    }

    /// Key of the record a re-route keeps while it runs: the outputs that
    /// earlier routes of this source wrote (a JSON list of keys), written
    /// before their manifest is withdrawn and removed once those the new
    /// manifest does not name are gone, so a re-route that fails or is
    /// killed midway still knows which stale parts to remove when it is
    /// retried. A hidden file beside the manifest: consumers ignore it.
    pub fn withdrawn_key(&self) -> String {
        format!(
            "{}{MANIFESTS_DIR}/{}/.{}.json.withdrawn",
            self.root,
            self.partition(),
            self.slug
        )
    }
}

impl SourceName {
    /// The same source under `_replays/<tag>/`, for a selective replay: its
    /// parts and manifest never overwrite, stand in for, or mix with the full
    /// route's.
    pub fn variant(mut self, tag: &str) -> Self {
        if !tag.is_empty() {
            self.root = format!("{REPLAYS_DIR}/{tag}/");
        }
        self
    }
}

/// Checks a key-time pattern: `%Y`, `%m` and `%d` are required, `%H`
/// optional (hour 0), no other `%` code.
pub fn check_pattern(p: &str) -> Result<(), String> {
    let b = p.as_bytes();
    let mut seen = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            match b.get(i + 1) {
                Some(c @ (b'Y' | b'm' | b'd' | b'H')) => seen.push(*c),
                _ => return Err("only %Y, %m, %d and %H are understood".into()),
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    for need in [b'Y', b'm', b'd'] {
        if !seen.contains(&need) {
            return Err(format!("needs %{}", need as char));
        }
    }
    Ok(())
}

fn hour_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(t.year(), t.month(), t.day(), t.hour(), 0, 0)
        .single()
        .unwrap_or(t)
}

/// The file name without compression/format extensions, reduced to
/// `[A-Za-z0-9._-]` (other runs become `_`), at most 80 characters.
fn stem(file_name: &str) -> String {
    let mut s = file_name;
    loop {
        let lower = s.to_ascii_lowercase();
        let cut = [
            ".gz", ".gzip", ".zst", ".zstd", ".json", ".jsonl", ".ndjson", ".log", ".txt",
        ]
        .iter()
        .find(|ext| lower.ends_with(*ext) && lower.len() > ext.len());
        match cut {
            Some(ext) => s = &s[..s.len() - ext.len()],
            None => break,
        }
    }
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
        if out.len() >= 80 {
            break;
        }
    }
    let out = out.trim_matches(['_', '.']).to_owned();
    if out.is_empty() {
        "source".to_owned()
    } else {
        out
    }
}

/// Parses `2015-01-20T13`, `2015-01-20` or RFC 3339 as a UTC time.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) =
        chrono::NaiveDateTime::parse_from_str(&format!("{text}:00:00"), "%Y-%m-%dT%H:%M:%S")
    {
        return Ok(Utc.from_utc_datetime(&t));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight")));
    }
    Err(format!(
        "{text:?} is not a time: write 2015-01-20T13 (an hour, UTC), 2015-01-20, or RFC 3339"
    ))
}

/// Finds the hour of a source in its key, trying each pattern at every
/// position; the match furthest right wins (file names are more specific than
/// folders). A match must be a real date and not be part of a longer number.
pub fn key_time(key: &str, patterns: &[String]) -> Option<DateTime<Utc>> {
    let b = key.as_bytes();
    let mut best: Option<(usize, DateTime<Utc>)> = None;
    for pattern in patterns {
        for start in 0..b.len() {
            if let Some(t) = match_at(b, start, pattern.as_bytes()) {
                if best.is_none_or(|(pos, _)| start >= pos) {
                    best = Some((start, t));
                }
            }
        }
    }
    best.map(|(_, t)| t)
}

fn match_at(b: &[u8], start: usize, pattern: &[u8]) -> Option<DateTime<Utc>> {
    if start > 0 && b[start - 1].is_ascii_digit() {
        return None;
    }
    let (mut y, mut m, mut d, mut h) = (None, None, None, None);
    let mut i = start;
    let mut p = 0;
    while p < pattern.len() {
        if pattern[p] == b'%' && p + 1 < pattern.len() {
            let width = if pattern[p + 1] == b'Y' { 4 } else { 2 };
            let digits = b.get(i..i + width)?;
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let n: u32 = std::str::from_utf8(digits).ok()?.parse().ok()?;
            match pattern[p + 1] {
                b'Y' => y = Some(n as i32),
                b'm' => m = Some(n),
                b'd' => d = Some(n),
                b'H' => h = Some(n),
                _ => return None,
            }
            i += width;
            p += 2;
        } else {
            if b.get(i) != Some(&pattern[p]) {
                return None;
            }
            i += 1;
            p += 1;
        }
    }
    if b.get(i).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(y?, m?, d?)?;
    let t = date.and_hms_opt(h.unwrap_or(0), 0, 0)?;
    Some(Utc.from_utc_datetime(&t))
}

mod hex {
    pub fn encode_prefix(bytes: &[u8], n: usize) -> String {
        bytes.iter().take(n).map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<String> {
        DEFAULT_KEY_TIME_PATTERNS
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn check(key: &str, expected: Option<&str>) {
        let got = key_time(key, &defaults()).map(|t| t.format("%Y-%m-%dT%H").to_string());
        assert_eq!(got.as_deref(), expected, "{key}");
    }

    #[test]
    fn key_times() {
        check(
            "logs/2015/01/20/events 2015-01-20_13.log.gz",
            Some("2015-01-20T13"),
        );
        check(
            "logs/dt=2015-01-20/hour=13/c++ players.json.gz",
            Some("2015-01-20T13"),
        );
        check("2015-01-01-15.json.gz", Some("2015-01-01T15"));
        check("archive/2015/02/24/07/part.gz", Some("2015-02-24T07"));
        check("logs/2015/01/20/a.log.gz", None);
        check("logs/2015-13-01-10.gz", None);
        check("logs/12015-01-01-10.gz", None);
        check("logs/2015-01-01-105.gz", None);
        check("no-time-here.gz", None);
    }

    #[test]
    fn names_are_descriptive_and_deterministic() {
        let t = key_time("logs/2015-01-20-13.json.gz", &defaults());
        let a = SourceName::new("s3://b/logs/2015-01-20-13.json.gz", t, None);
        let b = SourceName::new("s3://b/logs/2015-01-20-13.json.gz", t, None);
        assert_eq!(a, b);
        let key = a.part_key("video_play", 3, OutputCompression::Gzip);
        assert!(
            key.starts_with("video_play/dt=2015-01-20/hour=13/2015-01-20-13-"),
            "{key}"
        );
        assert!(key.ends_with(".part-00003.json.gz"), "{key}");
        let other = SourceName::new("s3://b/other/2015-01-20-13.json.gz", t, None);
        assert_ne!(a.slug, other.slug);
        assert_eq!(
            a.manifest_key(),
            format!("_manifests/dt=2015-01-20/hour=13/{}.json", a.slug)
        );
        let replay = a.clone().variant("replay-0a1b2c3d");
        assert_eq!(
            replay.manifest_key(),
            format!("_replays/replay-0a1b2c3d/{}", a.manifest_key())
        );
        assert!(replay
            .rejected_key(0)
            .starts_with("_replays/replay-0a1b2c3d/_rejected/"));
        let stdin = SourceName::new("-", None, None);
        assert!(stdin.rejected_key(0).starts_with("_rejected/undated/"));
        // LastModified is recorded but never names anything: a copy in place
        // must not give the same source a second manifest.
        let lm = chrono::Utc::now();
        let a = SourceName::new("s3://b/logs/a.log.gz", None, Some(lm));
        let b = SourceName::new(
            "s3://b/logs/a.log.gz",
            None,
            Some(lm - chrono::Duration::hours(5)),
        );
        assert_eq!(a.manifest_key(), b.manifest_key());
        assert!(a.manifest_key().starts_with("_manifests/undated/"));
        assert_eq!(a.time_from, TimeFrom::LastModified);
    }

    /// The longest name the router can make is exactly
    /// `MAX_RELATIVE_KEY_BYTES`, however long the source's key.
    #[test]
    fn issue13_the_longest_key_is_bounded_whatever_the_source() {
        let long_key = format!(
            "s3://b/logs/dt=2015-01-20/hour=13/{}.log.gz",
            "k".repeat(1000)
        );
        let t = key_time(&long_key, &defaults());
        let name = SourceName::new(&long_key, t, None).variant("replay-0a1b2c3d");
        let longest_type = "t".repeat(MAX_NAME_LEN);
        let key = name.part_key(&longest_type, u32::MAX, OutputCompression::Zstd);
        assert_eq!(key.len(), MAX_RELATIVE_KEY_BYTES, "{key}");
        for k in [
            name.part_key(&longest_type, u32::MAX, OutputCompression::Gzip),
            name.rejected_key(u32::MAX),
            name.manifest_key(),
            name.withdrawn_key(),
        ] {
            assert!(k.len() <= MAX_RELATIVE_KEY_BYTES, "{k}");
        }
        let fits = "p".repeat(S3_MAX_KEY_BYTES - MAX_RELATIVE_KEY_BYTES);
        assert!(check_dest_prefix(&fits).is_ok());
        let e = check_dest_prefix(&format!("{fits}/")).unwrap_err();
        assert!(
            e.contains("1024 bytes per key")
                && e.contains(&format!("at most {} bytes", fits.len())),
            "{e}"
        );
    }

    #[test]
    fn stems() {
        assert_eq!(stem("events 2015-01-20_13.log.gz"), "events_2015-01-20_13");
        assert_eq!(stem("c++ players.json.gz"), "c_players");
        assert_eq!(stem("(copy 1).log"), "copy_1");
        assert_eq!(stem(".gz"), "gz");
        assert_eq!(stem("../.."), "source");
    }
}
