//! Lines that cannot become a row of their table: rejects.
//!
//! Routed files are an immutable archive, so a line that does not fit its
//! table (a required field missing, a wrong type, a string over its
//! `maxLength`…) can never be "fixed in the data" and must not block the
//! rest of its file. It is recorded in the warehouse's `_logrouter_rejects`
//! table instead, in the same transaction as the file's rows and its ledger
//! row, with a stable reason, the column, a message naming the fix, and an
//! excerpt; the whole line stays recoverable byte for byte from its routed
//! file ([`recover_command`]). A file loads with rows = manifest lines −
//! rejects; past `load.max_rejects_per_file` rejects it fails as a whole,
//! like Redshift COPY past its `MAXERROR`.

use std::fmt;

use logrouter::location::Location;

/// Table of rejected lines: (file, version, line, table_name, column_name,
/// reason, message, excerpt, rejected_at); one row per rejected line of the
/// file's loaded version.
pub const REJECTS_TABLE: &str = "_logrouter_rejects";

/// Characters of the line kept in a reject's excerpt (the whole line is in
/// its routed file).
pub const EXCERPT_CHARS: usize = 256;

/// The most `load.max_rejects_per_file` may be: Redshift's `MAXERROR`
/// maximum, and a bound on what one file's rejects hold in memory
/// (100,000 × an excerpt and a message).
pub const MAX_REJECTS_LIMIT: u64 = 100_000;

/// Why a line was rejected: stable identifiers, stored in the rejects table
/// and used as metric labels. Never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    /// A required field is absent or null.
    MissingRequired,
    /// A value of another JSON kind than its column takes.
    WrongType,
    /// A string longer than its column's `maxLength`.
    TooLong,
    /// An integer outside its column's range.
    OutOfRange,
    /// A `\u0000`, which PostgreSQL and Redshift cannot store.
    NulCharacter,
    /// Nested deeper than the JSON parser's limit.
    TooDeep,
    /// Valid JSON, but not an object.
    NotAnObject,
    /// Not valid JSON.
    InvalidJson,
    /// A string that is not the date, date-time or uuid its column takes.
    InvalidFormat,
    /// Bytes that are not UTF-8.
    InvalidUtf8,
    /// Longer than the loader reads as one line.
    LineTooLong,
}

impl RejectReason {
    pub const ALL: [RejectReason; 11] = [
        RejectReason::MissingRequired,
        RejectReason::WrongType,
        RejectReason::TooLong,
        RejectReason::OutOfRange,
        RejectReason::NulCharacter,
        RejectReason::TooDeep,
        RejectReason::NotAnObject,
        RejectReason::InvalidJson,
        RejectReason::InvalidFormat,
        RejectReason::InvalidUtf8,
        RejectReason::LineTooLong,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::MissingRequired => "missing_required",
            RejectReason::WrongType => "wrong_type",
            RejectReason::TooLong => "too_long",
            RejectReason::OutOfRange => "out_of_range",
            RejectReason::NulCharacter => "nul_character",
            RejectReason::TooDeep => "too_deep",
            RejectReason::NotAnObject => "not_an_object",
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::InvalidFormat => "invalid_format",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::LineTooLong => "line_too_long",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rejected line of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// 1-based line in the routed file.
    pub line: u64,
    /// The column the value was for; `None` when the line as a whole is bad.
    pub column: Option<String>,
    pub reason: RejectReason,
    /// What is wrong and the fix.
    pub message: String,
    /// The first [`EXCERPT_CHARS`] characters of the line (invalid UTF-8
    /// replaced).
    pub excerpt: String,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(c) = &self.column {
            write!(f, " column {c}")?;
        }
        write!(f, ": {} ({})", self.message, self.reason)
    }
}

/// The first [`EXCERPT_CHARS`] characters of `line`.
pub fn excerpt(line: &[u8]) -> String {
    // Never more than 4 bytes a character: decode only what can be kept.
    let head = &line[..line.len().min(EXCERPT_CHARS * 4)];
    let text = String::from_utf8_lossy(head);
    // NUL cannot be stored in PostgreSQL or Redshift text.
    let mut out: String = text
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c == '\0' { '\u{fffd}' } else { c })
        .collect();
    if out.len() < line.len() && out.chars().count() == EXCERPT_CHARS {
        out.push('…');
    }
    out
}

/// A shell command that prints line `line` of the routed file `uri` byte for
/// byte (the line as routed, with its `\n`).
pub fn recover_command(uri: &str, line: u64) -> String {
    let quoted = shell_quote(uri);
    let unpack = if uri.ends_with(".zst") {
        "zstd -dc"
    } else {
        "gzip -dc"
    };
    let pick = format!("sed -n '{line}{{p;q}}'");
    match Location::parse(uri) {
        Ok(Location::S3 { .. }) => format!("aws s3 cp {quoted} - | {unpack} | {pick}"),
        _ => format!("{unpack} < {quoted} | {pick}"),
    }
}

fn shell_quote(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-:=+@%,".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip() {
        for r in RejectReason::ALL {
            assert_eq!(RejectReason::parse(r.as_str()), Some(r));
        }
    }

    #[test]
    fn excerpts_are_bounded() {
        assert_eq!(excerpt(b"{\"a\":1}"), "{\"a\":1}");
        let long = "é".repeat(1000);
        let e = excerpt(long.as_bytes());
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 1);
        assert!(e.ends_with('…'));
        assert_eq!(excerpt(b"a\xffb\0"), "a\u{fffd}b\u{fffd}");
    }

    #[test]
    fn recovery_commands() {
        assert_eq!(
            recover_command("s3://b/routed/play/dt=2015-01-20/hour=13/x.part-00000.json.gz", 12),
            "aws s3 cp s3://b/routed/play/dt=2015-01-20/hour=13/x.part-00000.json.gz - | gzip -dc | sed -n '12{p;q}'"
        );
        assert_eq!(
            recover_command("/tmp/o'brien/play/undated/x.part-00000.json.zst", 3),
            r"zstd -dc < '/tmp/o'\''brien/play/undated/x.part-00000.json.zst' | sed -n '3{p;q}'"
        );
    }
}
