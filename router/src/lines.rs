//! The per-line hot loop: split the decoded stream into lines with bounded
//! memory, classify each line, and send it to its part.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use logrouter::config::{LineFormat, PayloadConfig};
use logrouter::json::MAX_JSON_DEPTH;
use logrouter::layout::SourceName;
use logrouter::manifest::{LineCounts, PartOutput, QuarantineOutput, TypeOutput};
use logrouter::normalize::normalize_event_type;
use logrouter::pointer::{JsonPointer, Lookup};
use logrouter::store::{OutputStore, TransportError};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::format::Converter;
use crate::parts::{Compressor, Encoding, FinishedPart, Keep, PartWriter};
use crate::reason::Reason;

/// The per-line maps: a fast hash, seeded per process (keys are type
/// names from the input, bounded in number by route.max_types_per_source
/// and the type cache's limit).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

const BOM: &[u8] = b"\xEF\xBB\xBF";
/// Raw event types remembered with their normalised form; past this many
/// (hostile input) types are normalised afresh for each line.
const TYPE_CACHE_LIMIT: usize = 10_000;
/// Longer raw types are never cached (bounds the cache to a few MiB).
const TYPE_CACHE_MAX_KEY: usize = 256;
/// Room for a `\r` and, on line 1, a BOM: a line is streamed to quarantine
/// only when even without them it could not fit `max_line_bytes`.
const TERMINATOR_SLACK: usize = 4;

/// Keeps only lines containing a text or matching a regex (selective replay).
#[derive(Debug, Clone)]
pub enum LineMatcher {
    Text(Box<memchr::memmem::Finder<'static>>),
    Regex(regex::bytes::Regex),
}

impl RouteRules {
    /// The rules of `config`'s `[route]`, with no replay filter.
    pub fn new(config: &logrouter::config::Config) -> Self {
        let r = &config.route;
        Self {
            matcher: None,
            only_types: None,
            pointer: config.type_pointer(),
            format: r.format,
            payload: r.payload.clone(),
            type_pattern: r
                .type_pattern
                .as_deref()
                .map(|p| regex::Regex::new(p).expect("validated at start-up")),
            fixed_type: r.fixed_type.clone(),
            max_line_bytes: r.max_line_bytes as usize,
            allowed_types: r.allowed_types.clone(),
            max_types_per_source: r.max_types_per_source,
            max_open_compressors: r.max_open_compressors,
            encoding: Encoding::of(config),
            part_size: r.part_size_bytes,
        }
    }

    /// These rules with a selective replay's filter (`--types`, `--match`,
    /// `--match-regex`); the error is a usage error.
    pub fn filtered(&self, filter: &logrouter::manifest::RouteFilter) -> Result<Self, String> {
        let mut rules = self.clone();
        rules.matcher = match (&filter.match_text, &filter.match_regex) {
            (Some(_), Some(_)) => return Err("give --match or --match-regex, not both".into()),
            (Some(t), None) => Some(LineMatcher::Text(Box::new(
                memchr::memmem::Finder::new(t.as_bytes()).into_owned(),
            ))),
            (None, Some(r)) => Some(LineMatcher::Regex(
                regex::bytes::Regex::new(r).map_err(|e| format!("--match-regex {r:?}: {e}"))?,
            )),
            (None, None) => None,
        };
        if let Some(types) = &filter.types {
            for t in types {
                logrouter::normalize::validate_name(t).map_err(|e| {
                    format!(
                        "--types: {t:?} {} (give normalised names, e.g. video_play)",
                        e.rule
                    )
                })?;
            }
        }
        rules.only_types = filter.types.clone();
        Ok(rules)
    }

    /// A selective replay (`--types`, `--match`) rather than a full route.
    pub fn is_replay(&self) -> bool {
        self.matcher.is_some() || self.only_types.is_some()
    }

    /// The raw event type of a line from what its type field held (`found`):
    /// the fixed type when there is one (a JSON line must still be a valid
    /// JSON object), else the field's value through the type pattern.
    fn type_of<'t>(
        &'t self,
        found: Result<Cow<'t, str>, (Reason, String)>,
        captures: &mut Option<regex::CaptureLocations>,
    ) -> Result<Cow<'t, str>, (Reason, String)> {
        if let Some(fixed) = &self.fixed_type {
            return match found {
                Err((r @ (Reason::InvalidJson | Reason::NotAnObject | Reason::TooDeep), d)) => {
                    Err((r, d))
                }
                _ => Ok(Cow::Borrowed(fixed)),
            };
        }
        let value = found?;
        let Some(re) = &self.type_pattern else {
            return Ok(value);
        };
        let slots = captures.get_or_insert_with(|| re.capture_locations());
        let matched = re
            .captures_read(slots, &value)
            .map(|whole| slots.get(1).map_or(whole.range(), |(s, e)| s..e));
        match (matched, value) {
            (Some(r), Cow::Borrowed(v)) => Ok(Cow::Borrowed(&v[r])),
            (Some(r), Cow::Owned(v)) => Ok(Cow::Owned(v[r].to_owned())),
            (None, v) => Err((
                Reason::TypePatternNoMatch,
                format!(
                    "the type field {} is {:?}, which route.type_pattern {:?} does not match: widen the pattern (--type-pattern), or route these lines with another type field",
                    self.pointer,
                    excerpt(&v),
                    re.as_str()
                ),
            )),
        }
    }
}

/// How a source's lines are read: JSON lines as they are, or converted.
enum Mode {
    Json,
    /// `auto`, until the first line decides.
    Auto,
    Convert(Box<Converter>),
}

impl LineMatcher {
    pub fn is_match(&self, line: &[u8]) -> bool {
        match self {
            LineMatcher::Text(f) => f.find(line).is_some(),
            LineMatcher::Regex(r) => r.is_match(line),
        }
    }
}

/// Routing rules, derived once from the configuration.
#[derive(Debug, Clone)]
pub struct RouteRules {
    /// Replay filter: lines not matching are counted as filtered.
    pub matcher: Option<LineMatcher>,
    /// Replay filter: only these normalised types are written.
    pub only_types: Option<Vec<String>>,
    pub pointer: JsonPointer,
    /// The sources' line format; every non-JSON line becomes a JSON object.
    pub format: LineFormat,
    /// A payload inside each line, routed as the event.
    pub payload: Option<PayloadConfig>,
    /// Applied to the type field's value: the first capture group (or the
    /// whole match) is the type.
    pub type_pattern: Option<regex::Regex>,
    /// One type for every line, instead of the type field.
    pub fixed_type: Option<String>,
    pub max_line_bytes: usize,
    pub allowed_types: Option<Vec<String>>,
    pub max_types_per_source: usize,
    pub max_open_compressors: usize,
    pub encoding: Encoding,
    pub part_size: u64,
}

/// The first quarantined line of each reason, for summaries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FirstError {
    pub line: u64,
    pub error: String,
}

/// Everything the line loop produced for one source.
#[derive(Debug, Default)]
pub struct LinesResult {
    pub counts: LineCounts,
    pub types: BTreeMap<String, TypeOutput>,
    pub quarantine: QuarantineOutput,
    pub first_errors: BTreeMap<String, FirstError>,
    /// Set when the decoded stream failed (damage): decoded offset, the line
    /// being read, and the error.
    pub damage: Option<(u64, u64, String)>,
    pub decoded_bytes: u64,
}

/// One quarantine record: where the line came from, why, and the line
/// itself (as text when it is UTF-8, else base64), so that it can be
/// recovered byte for byte.
#[derive(Serialize)]
struct QuarantineRecord<'a> {
    source: &'a str,
    line: u64,
    reason: &'a str,
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    base64: Option<String>,
}

type CachedType = Result<Arc<str>, String>;

/// Where routed lines go.
enum Sink<'a> {
    /// Part files under `out` (spooled in `spool`), handed to the committer.
    Parts {
        out: &'a OutputStore,
        spool: &'a PathBuf,
        finished: mpsc::Sender<FinishedPart>,
        /// Started with the first part.
        compressor: Option<Compressor>,
    },
    /// One stream (`router backfill --out -`): each routed line is written
    /// to it as it is read; quarantined lines are only counted.
    Pipe(&'a mut dyn Write),
}

/// A write to the pipe of [`LineRouter::to_pipe`] failed: the replay stops
/// (the error is the writer's, kept as the source of this one).
#[derive(Debug, thiserror::Error)]
#[error("writing to the output stream failed: {0}")]
pub struct PipeWriteError(#[source] pub io::Error);

impl PipeWriteError {
    /// The `io::Error` of a line loop, if it came from the pipe.
    pub fn of(e: &io::Error) -> Option<&PipeWriteError> {
        e.get_ref().and_then(|inner| inner.downcast_ref())
    }
}

/// Routes the lines of one source to part files (or to one pipe).
pub struct LineRouter<'a> {
    rules: &'a RouteRules,
    name: &'a SourceName,
    source_uri: &'a str,
    sink: Sink<'a>,
    /// Open parts by type: part number, writer.
    open: FastMap<Arc<str>, (u32, PartWriter)>,
    quarantine: Option<(u32, PartWriter)>,
    type_cache: FastMap<String, CachedType>,
    /// The type pattern's capture slots, reused from line to line.
    captures: Option<regex::CaptureLocations>,
    result: LinesResult,
    line_no: u64,
    scratch: Vec<u8>,
    mode: Mode,
    /// The JSON object a converted line becomes.
    object: Vec<u8>,
}

impl<'a> LineRouter<'a> {
    pub fn new(
        rules: &'a RouteRules,
        name: &'a SourceName,
        source_uri: &'a str,
        out: &'a OutputStore,
        spool: &'a PathBuf,
        finished: mpsc::Sender<FinishedPart>,
    ) -> Self {
        Self::with_sink(
            rules,
            name,
            source_uri,
            Sink::Parts {
                out,
                spool,
                finished,
                compressor: None,
            },
        )
    }

    /// A router that writes every routed line, `\n`-terminated, to `pipe`
    /// in the order read, and writes no part and no quarantine record
    /// (quarantined lines are counted in the result, by reason). The result's
    /// `types` count lines and list no parts.
    pub fn to_pipe(
        rules: &'a RouteRules,
        name: &'a SourceName,
        source_uri: &'a str,
        pipe: &'a mut dyn Write,
    ) -> Self {
        Self::with_sink(rules, name, source_uri, Sink::Pipe(pipe))
    }

    fn with_sink(
        rules: &'a RouteRules,
        name: &'a SourceName,
        source_uri: &'a str,
        sink: Sink<'a>,
    ) -> Self {
        Self {
            rules,
            name,
            source_uri,
            sink,
            open: FastMap::default(),
            quarantine: None,
            type_cache: FastMap::default(),
            captures: rules.type_pattern.as_ref().map(|re| re.capture_locations()),
            result: LinesResult::default(),
            line_no: 0,
            scratch: Vec::new(),
            mode: match rules.format {
                LineFormat::Json => Mode::Json,
                LineFormat::Auto => Mode::Auto,
                f => Mode::Convert(Box::new(
                    Converter::new(f, rules.payload.as_ref()).expect("a non-JSON format"),
                )),
            },
            object: Vec::new(),
        }
    }

    /// Reads `reader` to its end (or to damage) and routes every line.
    /// Returns `Err` only for transport and local I/O errors: the source
    /// must then be retried. Damage is recorded in the result.
    pub fn run(mut self, mut reader: impl BufRead) -> io::Result<LinesResult> {
        let max = self.rules.max_line_bytes;
        let mut pending: Vec<u8> = Vec::new();
        // Streaming a line longer than the limit: its record is open.
        let mut too_long: Option<u64> = None;
        loop {
            let buf = match reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if TransportError::is(&e) => return Err(e),
                Err(e) => {
                    self.result.damage =
                        Some((self.result.decoded_bytes, self.line_no + 1, e.to_string()));
                    break;
                }
            };
            if buf.is_empty() {
                break;
            }
            let (chunk, newline) = match memchr::memchr(b'\n', buf) {
                Some(i) => (&buf[..i], true),
                None => (buf, false),
            };
            let used = chunk.len() + newline as usize;
            if let Some(len) = too_long.as_mut() {
                *len += chunk.len() as u64;
                if !self.rules.is_replay() {
                    self.long_line_chunk(chunk)?;
                }
                if newline {
                    self.long_line_end(*len)?;
                    too_long = None;
                }
            } else if newline && pending.is_empty() {
                self.line(chunk)?;
            } else {
                pending.extend_from_slice(chunk);
                if pending.len() > max + TERMINATOR_SLACK {
                    self.long_line_begin(&pending)?;
                    too_long = Some(pending.len() as u64);
                    pending = Vec::new();
                    if newline {
                        self.long_line_end(too_long.take().unwrap_or(0))?;
                    }
                } else if newline {
                    let line = std::mem::take(&mut pending);
                    self.line(&line)?;
                    pending = line;
                    pending.clear();
                }
            }
            self.result.decoded_bytes += used as u64;
            reader.consume(used);
        }
        if let Some(len) = too_long {
            self.long_line_end(len)?;
        } else if !pending.is_empty() {
            if self.result.damage.is_some() {
                self.line_no += 1;
                let detail = "the line was cut off by damage in the source's compression; the rest of the source is unreadable";
                self.quarantine(Reason::TruncatedLine, detail, &pending)?;
            } else {
                self.line(&pending)?;
            }
        }
        self.finish()
    }

    /// Classifies and writes one complete line (without its `\n`).
    fn line(&mut self, raw: &[u8]) -> io::Result<()> {
        self.line_no += 1;
        let mut line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if self.line_no == 1 {
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        if matches!(self.mode, Mode::Auto) {
            // `auto` looks at the object's first line only (a first line
            // too long to hold is no `#Version:` header).
            let first = if self.line_no == 1 { line } else { b"" };
            self.mode = match Converter::auto(first, self.rules.payload.as_ref()) {
                Some(c) => Mode::Convert(Box::new(c)),
                None => Mode::Json,
            };
        }
        if line.iter().all(|c| *c == b' ' || *c == b'\t') {
            self.result.counts.blank += 1;
            return Ok(());
        }
        if let Mode::Convert(c) = &mut self.mode {
            // Headers before the replay filter: a replay must still learn
            // the fields. Counted as blank (see `format::Format::is_header`).
            if c.is_header(line) {
                let read = match std::str::from_utf8(line) {
                    Ok(text) => c.header(text, self.line_no),
                    Err(e) => Err((
                        Reason::InvalidUtf8,
                        format!(
                            "invalid UTF-8 at byte {} of the header line",
                            e.valid_up_to()
                        ),
                    )),
                };
                return match read {
                    Ok(()) => {
                        self.result.counts.blank += 1;
                        Ok(())
                    }
                    Err((reason, detail)) => self.reject(reason, &detail, raw),
                };
            }
        }
        if let Some(m) = &self.rules.matcher {
            if !m.is_match(line) {
                self.result.counts.filtered += 1;
                return Ok(());
            }
        }
        if line.len() > self.rules.max_line_bytes {
            let detail = format!(
                "{} bytes, over route.max_line_bytes = {}",
                line.len(),
                self.rules.max_line_bytes
            );
            return self.reject(Reason::LineTooLong, &detail, raw);
        }
        // simdutf8's check, several times std's on non-ASCII text (the
        // routing thread is what the router waits on); its `compat` error
        // says where, as std's does.
        let text = match simdutf8::compat::from_utf8(line) {
            Ok(t) => t,
            Err(e) => {
                let detail = format!("invalid UTF-8 at byte {} of the line", e.valid_up_to());
                return self.reject(Reason::InvalidUtf8, &detail, raw);
            }
        };
        let rules = self.rules;
        let (found, converted) = match &mut self.mode {
            Mode::Convert(c) => match c.record(text, rules.pointer.segments(), &mut self.object) {
                Ok(Some(t)) => (Ok(t), true),
                Ok(None) => (Err((
                    Reason::MissingEventType,
                    format!("no event type at {} in the object this {} line becomes (set --type-field to one of its keys, e.g. /operation, or --type NAME for one type per source)", rules.pointer, rules.format.as_str()),
                )), true),
                Err((reason, detail)) => return self.reject(reason, &detail, raw),
            },
            _ => (event_type_of(&rules.pointer, text), false),
        };
        // Escaping and a payload's copy of the fields can make the object
        // longer than its line: the limit is on what is routed (the
        // loader's and Redshift's 4 MiB a record), so it applies again.
        if converted && self.object.len() > rules.max_line_bytes {
            let detail = format!(
                "the object this {} line becomes is {} bytes, over route.max_line_bytes = {}: raise the limit to route it (the line is kept here as read)",
                rules.format.as_str(),
                self.object.len(),
                rules.max_line_bytes
            );
            return self.reject(Reason::LineTooLong, &detail, raw);
        }
        let event_type = match rules.type_of(found, &mut self.captures) {
            Ok(t) => t,
            Err((reason, detail)) => return self.reject(reason, &detail, raw),
        };
        let normalised = match self.type_cache.get(event_type.as_ref()) {
            Some(cached) => cached.clone(),
            None => {
                let fresh: CachedType = match normalize_event_type(&event_type) {
                    Ok(n) => Ok(Arc::from(n)),
                    Err(e) => Err(format!("event type {:?} {e}", excerpt(&event_type))),
                };
                if self.type_cache.len() < TYPE_CACHE_LIMIT
                    && event_type.len() <= TYPE_CACHE_MAX_KEY
                {
                    self.type_cache
                        .insert(event_type.into_owned(), fresh.clone());
                }
                fresh
            }
        };
        let name = match normalised {
            Ok(n) => n,
            Err(detail) => return self.reject(Reason::InvalidEventType, &detail, raw),
        };
        if let Some(only) = &self.rules.only_types {
            if !only.iter().any(|t| **t == *name) {
                self.result.counts.filtered += 1;
                return Ok(());
            }
        }
        if let Some(allowed) = &self.rules.allowed_types {
            if !allowed.iter().any(|a| **a == *name) {
                let detail = format!("{name} is not in route.allowed_types");
                return self.quarantine(Reason::EventTypeNotAllowed, &detail, raw);
            }
        }
        if self.result.types.len() >= self.rules.max_types_per_source
            && !self.result.types.contains_key(&*name)
        {
            let detail = format!(
                "{name} would be type number {} of this source, over route.max_types_per_source = {}",
                self.result.types.len() + 1,
                self.rules.max_types_per_source
            );
            return self.quarantine(Reason::TooManyEventTypes, &detail, raw);
        }
        if let Sink::Pipe(pipe) = &mut self.sink {
            let routed: &[u8] = if converted { &self.object } else { line };
            pipe.write_all(routed)
                .and_then(|()| pipe.write_all(b"\n"))
                .map_err(|e| io::Error::other(PipeWriteError(e)))?;
            self.result.counts.routed += 1;
            match self.result.types.get_mut(&*name) {
                Some(t) => t.lines += 1,
                None => {
                    self.result.types.insert(
                        name.to_string(),
                        TypeOutput {
                            lines: 1,
                            parts: Vec::new(),
                        },
                    );
                }
            }
            return Ok(());
        }
        let line_no = self.line_no;
        if !self.open.contains_key(&name) {
            let next = self
                .result
                .types
                .entry(name.to_string())
                .or_default()
                .parts
                .len() as u32;
            let writer = self.new_part(
                self.name
                    .part_key(&name, next, self.rules.encoding.compression()),
                false,
            )?;
            self.open.insert(name.clone(), (next, writer));
        }
        let (_, writer) = self.open.get_mut(&name).expect("opened above");
        writer.write_line(if converted { &self.object } else { line }, line_no)?;
        let rolled = writer.compressed_len() >= self.rules.part_size;
        self.result.counts.routed += 1;
        if rolled {
            self.close_part(&name)?;
        }
        Ok(())
    }

    /// Finishes the open part of `name` and records it with its type.
    fn close_part(&mut self, name: &str) -> io::Result<()> {
        let (part_no, writer) = self.open.remove(name).expect("an open part");
        let output = self.commit(writer)?;
        let entry = self
            .result
            .types
            .get_mut(name)
            .expect("opened type is recorded");
        entry.lines += output.lines;
        entry.parts.push(output);
        debug_assert_eq!(entry.parts.len() as u32, part_no + 1);
        Ok(())
    }

    fn new_part(&mut self, key: String, quarantine: bool) -> io::Result<PartWriter> {
        let encoding = if quarantine {
            Encoding::Libdeflate(6)
        } else {
            self.rules.encoding
        };
        let Sink::Parts {
            out,
            spool,
            compressor,
            ..
        } = &mut self.sink
        else {
            unreachable!("a pipe has no parts");
        };
        let temp = out.temp_path(&key, spool);
        let compressor = match compressor {
            Some(c) => c,
            None => compressor.insert(Compressor::start()?),
        };
        // Past `route.max_open_compressors` open parts, a new part keeps no
        // compressor between its blocks (see `parts::Keep`): the count of
        // open parts follows the lines, so the choice is the same on every
        // run.
        let open = self.open.len() + usize::from(self.quarantine.is_some());
        let keep = if open < self.rules.max_open_compressors {
            Keep::Compressor
        } else {
            Keep::BlockMembers
        };
        PartWriter::create(compressor, temp, key, encoding, keep)
    }

    /// Hands a finished part to the committer and returns its record.
    fn commit(&mut self, writer: PartWriter) -> io::Result<PartOutput> {
        let finished = writer.finish()?;
        let output = finished.output.clone();
        let Sink::Parts { finished: tx, .. } = &self.sink else {
            unreachable!("a pipe has no parts");
        };
        tx.blocking_send(finished)
            .map_err(|_| io::Error::other("the committer stopped (an upload failed)"))?;
        Ok(output)
    }

    fn quarantine_writer(&mut self) -> io::Result<&mut PartWriter> {
        if self.quarantine.is_none() {
            let n = self.result.quarantine.parts.len() as u32;
            let writer = self.new_part(self.name.rejected_key(n), true)?;
            self.quarantine = Some((n, writer));
        }
        Ok(&mut self.quarantine.as_mut().expect("just opened").1)
    }

    fn note_quarantine(&mut self, reason: Reason, detail: &str) {
        self.result.counts.quarantined += 1;
        *self
            .result
            .quarantine
            .by_reason
            .entry(reason.as_str().to_owned())
            .or_default() += 1;
        self.result
            .first_errors
            .entry(reason.as_str().to_owned())
            .or_insert_with(|| FirstError {
                line: self.line_no,
                error: detail.to_owned(),
            });
        tracing::debug!(source = self.source_uri, line = self.line_no, %reason, detail, "line quarantined");
    }

    /// A line whose type could not be established: quarantined, except in a
    /// `--types` replay, where only lines known to be of a selected type are
    /// part of the selection and the rest is counted as filtered.
    fn reject(&mut self, reason: Reason, detail: &str, raw: &[u8]) -> io::Result<()> {
        if self.rules.only_types.is_some() {
            self.result.counts.filtered += 1;
            return Ok(());
        }
        self.quarantine(reason, detail, raw)
    }

    /// Writes a quarantine record for the line `raw` (as read, minus `\n`).
    fn quarantine(&mut self, reason: Reason, detail: &str, raw: &[u8]) -> io::Result<()> {
        self.note_quarantine(reason, detail);
        if self.is_pipe() {
            return Ok(());
        }
        let (text, b64) = match std::str::from_utf8(raw) {
            Ok(t) => (Some(t), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(raw)),
            ),
        };
        let record = QuarantineRecord {
            source: self.source_uri,
            line: self.line_no,
            reason: reason.as_str(),
            error: detail,
            text,
            base64: b64,
        };
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        serde_json::to_writer(&mut buf, &record).map_err(io::Error::other)?;
        let line_no = self.line_no;
        let w = self.quarantine_writer()?;
        w.write_line(&buf, line_no)?;
        self.scratch = buf;
        self.roll_quarantine_if_full()
    }

    fn roll_quarantine_if_full(&mut self) -> io::Result<()> {
        if self
            .quarantine
            .as_ref()
            .is_some_and(|(_, w)| w.compressed_len() >= self.rules.part_size)
        {
            let (_, w) = self.quarantine.take().expect("checked");
            let output = self.commit(w)?;
            self.result.quarantine.parts.push(output);
        }
        Ok(())
    }

    /// Starts the quarantine record of a line longer than the limit; the
    /// line itself is streamed in base64, never held whole in memory. In a
    /// replay the line is only counted as filtered: its type and text are
    /// unknown without holding it, and the full route quarantines it anyway.
    fn long_line_begin(&mut self, first: &[u8]) -> io::Result<()> {
        self.line_no += 1;
        if self.rules.is_replay() {
            self.result.counts.filtered += 1;
            return Ok(());
        }
        let detail = format!(
            "longer than route.max_line_bytes = {}; the record's base64 holds the line as read",
            self.rules.max_line_bytes
        );
        self.note_quarantine(Reason::LineTooLong, &detail);
        if self.is_pipe() {
            return Ok(());
        }
        let head = serde_json::json!({
            "source": self.source_uri,
            "line": self.line_no,
            "reason": Reason::LineTooLong.as_str(),
            "error": detail,
        })
        .to_string();
        let w = self.quarantine_writer()?.writer();
        // `{...,"error":"…"` then `,"base64":"` + data + `"}`.
        w.write_all(&head.as_bytes()[..head.len() - 1])?;
        w.write_all(b",\"base64\":\"")?;
        self.scratch.clear();
        self.long_line_chunk(first)
    }

    /// Base64 is written in groups of three bytes; a remainder waits in
    /// `scratch` for the next chunk.
    fn long_line_chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        if self.is_pipe() {
            return Ok(());
        }
        let mut carry = std::mem::take(&mut self.scratch);
        carry.extend_from_slice(chunk);
        let whole = carry.len() / 3 * 3;
        let encoded = base64::engine::general_purpose::STANDARD.encode(&carry[..whole]);
        self.quarantine_writer()?
            .writer()
            .write_all(encoded.as_bytes())?;
        carry.drain(..whole);
        self.scratch = carry;
        Ok(())
    }

    fn long_line_end(&mut self, len: u64) -> io::Result<()> {
        if self.rules.is_replay() || self.is_pipe() {
            return Ok(());
        }
        let rest = base64::engine::general_purpose::STANDARD.encode(&self.scratch);
        self.scratch.clear();
        let line_no = self.line_no;
        let w = self.quarantine_writer()?;
        w.writer().write_all(rest.as_bytes())?;
        w.writer().write_all(b"\"}\n")?;
        w.count_line(len, line_no);
        self.roll_quarantine_if_full()
    }

    fn is_pipe(&self) -> bool {
        matches!(self.sink, Sink::Pipe(_))
    }

    /// Closes every open part (flushes the pipe) and returns the result.
    fn finish(mut self) -> io::Result<LinesResult> {
        self.result.counts.read = self.line_no;
        if let Sink::Pipe(pipe) = &mut self.sink {
            pipe.flush()
                .map_err(|e| io::Error::other(PipeWriteError(e)))?;
        }
        // Every last block first, so they are compressed together, then
        // each part closed in name order.
        for (_, w) in self.open.values_mut() {
            w.send_last()?;
        }
        if let Some((_, w)) = &mut self.quarantine {
            w.send_last()?;
        }
        let mut open: Vec<Arc<str>> = self.open.keys().cloned().collect();
        open.sort();
        for name in open {
            self.close_part(&name)?;
        }
        if let Some((_, w)) = self.quarantine.take() {
            let output = self.commit(w)?;
            self.result.quarantine.parts.push(output);
        }
        Ok(std::mem::take(&mut self.result))
    }
}

/// The raw event type of a line, or why the line cannot have one.
fn event_type_of<'a>(
    pointer: &JsonPointer,
    text: &'a str,
) -> Result<std::borrow::Cow<'a, str>, (Reason, String)> {
    Err(match pointer.lookup(text) {
        Lookup::Found(t) => return Ok(t),
        Lookup::Missing => (
            Reason::MissingEventType,
            format!("no event type at {pointer} (set --type-field / route.type_field to the JSON pointer of the type, e.g. /type)"),
        ),
        Lookup::NotAString(kind) => (
            Reason::InvalidEventType,
            format!("the event type at {pointer} is a {kind}, not a string"),
        ),
        Lookup::Duplicate => (
            Reason::InvalidEventType,
            format!("{pointer} appears more than once, so the type is ambiguous"),
        ),
        Lookup::NotAnObject(kind) => (
            Reason::NotAnObject,
            format!("the line is a JSON {kind}; each line must be a JSON object"),
        ),
        Lookup::InvalidJson(e) => (Reason::InvalidJson, e),
        Lookup::TooDeep(e) => (
            Reason::TooDeep,
            format!("nested deeper than {MAX_JSON_DEPTH} levels, which the loader's JSON parser refuses ({e}): flatten the event in the producer"),
        ),
    })
}

fn excerpt(s: &str) -> String {
    let mut e: String = s.chars().take(80).collect();
    if e.len() < s.len() {
        e.push('…');
    }
    e
}
