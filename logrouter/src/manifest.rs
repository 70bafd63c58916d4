//! The manifest: one JSON document per routed source, written last.
//!
//! It is the source's commit marker. Until it exists, nothing downstream may
//! trust the source's parts; once it exists, it says exactly which parts hold
//! which lines, so the loader can load them and check its row counts against
//! it. [`Manifest::check_counts`] is the "nothing is lost" invariant in code:
//! the router refuses to write a manifest whose numbers do not add up.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::layout::TimeFrom;
use crate::store::SourceInfo;

pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub source: ManifestSource,
    /// The destination root the keys below are relative to.
    pub dest: String,
    /// JSON pointer the event type was read at.
    pub type_field: String,
    pub router_version: String,
    pub routed_at: DateTime<Utc>,
    pub lines: LineCounts,
    /// Routed output per normalised event type.
    pub types: BTreeMap<String, TypeOutput>,
    pub quarantine: QuarantineOutput,
    /// Set when the source's bytes were damaged (truncated or corrupt
    /// compression): everything before the damage was routed.
    pub damage: Option<Damage>,
    /// Set for a selective replay: only lines passing it were written. Such a
    /// manifest never stands for a full route of the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<RouteFilter>,
}

/// A selective replay: only these types, only lines containing this text or
/// matching this regex.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_regex: Option<String>,
}

impl RouteFilter {
    /// A short stable tag naming this filter in output keys (`replay-<hash>`).
    pub fn tag(&self) -> String {
        use sha2::{Digest, Sha256};
        let text = serde_json::to_string(self).expect("filter serialises");
        let digest = Sha256::digest(text.as_bytes());
        let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        format!("replay-{hex}")
    }
}

/// The source: what was known of it when it was opened, and its hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestSource {
    #[serde(flatten)]
    pub object: SourceInfo,
    /// The hour the source covers (from its key, else LastModified).
    pub time: Option<DateTime<Utc>>,
    pub time_from: TimeFrom,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineCounts {
    pub read: u64,
    pub routed: u64,
    pub quarantined: u64,
    pub blank: u64,
    /// Lines a replay filter passed over (counted, not written).
    #[serde(default)]
    pub filtered: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeOutput {
    pub lines: u64,
    pub parts: Vec<PartOutput>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineOutput {
    pub by_reason: BTreeMap<String, u64>,
    pub parts: Vec<PartOutput>,
}

/// One committed output file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartOutput {
    /// Key relative to the manifest's `dest`.
    pub key: String,
    pub lines: u64,
    /// Source line numbers (1-based) of the first and last line in the part.
    pub first_line: u64,
    pub last_line: u64,
    /// Size of the file as stored (compressed).
    pub bytes: u64,
    pub uncompressed_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Damage {
    /// Offset in the stored (compressed) object where reading failed.
    pub raw_offset: u64,
    /// Decompressed bytes read before the failure.
    pub decoded_offset: u64,
    /// The line being read when the damage surfaced.
    pub line: u64,
    pub error: String,
}

impl Damage {
    /// `damaged at line N: error`, for summaries.
    pub fn describe(&self) -> String {
        format!("damaged at line {}: {}", self.line, self.error)
    }
}

impl Manifest {
    /// Checks that every line read is accounted for exactly once:
    /// read = routed + quarantined + blank + filtered, and each total equals
    /// the sum of its parts. For a manifest the router wrote, a failure is
    /// a bug in the router; the loader checks every manifest it reads, so
    /// the sums are taken in `u128`: counts near `u64::MAX` cannot wrap
    /// around to agree (or panic in a debug build).
    pub fn check_counts(&self) -> Result<(), String> {
        fn sum(counts: impl IntoIterator<Item = u64>) -> u128 {
            counts.into_iter().map(u128::from).sum()
        }
        let l = self.lines;
        if u128::from(l.read) != sum([l.routed, l.quarantined, l.blank, l.filtered]) {
            return Err(format!(
                "lines read {} != routed {} + quarantined {} + blank {} + filtered {}",
                l.read, l.routed, l.quarantined, l.blank, l.filtered
            ));
        }
        if self.filter.is_none() && l.filtered != 0 {
            return Err(format!("{} lines filtered without a filter", l.filtered));
        }
        let by_type = sum(self.types.values().map(|t| t.lines));
        if by_type != u128::from(l.routed) {
            return Err(format!("routed {} != sum over types {by_type}", l.routed));
        }
        for (name, t) in &self.types {
            let in_parts = sum(t.parts.iter().map(|p| p.lines));
            if in_parts != u128::from(t.lines) {
                return Err(format!(
                    "{name}: {} lines != {in_parts} in its parts",
                    t.lines
                ));
            }
        }
        let by_reason = sum(self.quarantine.by_reason.values().copied());
        let in_parts = sum(self.quarantine.parts.iter().map(|p| p.lines));
        let quarantined = u128::from(l.quarantined);
        if by_reason != quarantined || in_parts != quarantined {
            return Err(format!(
                "quarantined {} != by reason {by_reason} or in parts {in_parts}",
                l.quarantined
            ));
        }
        Ok(())
    }

    /// Every output key the manifest names (routed and quarantine).
    pub fn output_keys(&self) -> impl Iterator<Item = &str> {
        self.types
            .values()
            .flat_map(|t| t.parts.iter())
            .chain(self.quarantine.parts.iter())
            .map(|p| p.key.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest with these `[read, routed, quarantined, blank]` counts,
    /// one type `a` of `type_lines` in parts of `type_parts` lines, and
    /// quarantine parts of `quarantine_parts` lines.
    fn manifest(
        lines: [u64; 4],
        type_lines: u64,
        type_parts: &[u64],
        quarantine_parts: &[u64],
    ) -> Manifest {
        let parts = |counts: &[u64]| -> Vec<serde_json::Value> {
            counts
                .iter()
                .map(|n| serde_json::json!({"key": "k", "lines": n, "first_line": 1, "last_line": 1, "bytes": 1, "uncompressed_bytes": 1}))
                .collect()
        };
        serde_json::from_value(serde_json::json!({
            "format": 1,
            "source": {"uri": "-", "bucket": null, "key": null, "etag": null, "size": null,
                       "last_modified": null, "time": null, "time_from": "none"},
            "dest": "out", "type_field": "/event_type", "router_version": "0",
            "routed_at": "2015-01-20T14:00:00Z",
            "lines": {"read": lines[0], "routed": lines[1], "quarantined": lines[2], "blank": lines[3]},
            "types": {"a": {"lines": type_lines, "parts": parts(type_parts)}},
            "quarantine": {"by_reason": {"invalid_json": lines[2]}, "parts": parts(quarantine_parts)},
            "damage": null,
        }))
        .unwrap()
    }

    /// Counts whose sum passes `u64::MAX` panicked in a debug build
    /// (`attempt to add with overflow`) and wrapped around in a release
    /// one, where `read = 0` then passed for `routed = u64::MAX` plus
    /// `quarantined = 1`. The loader checks every manifest it reads from
    /// storage. (Seen reading the code for the `manifest` fuzz target,
    /// whose input `overflow.json` reproduces it.)
    #[test]
    fn issue13_fuzz_counts_that_overflow_u64_are_refused() {
        let max = u64::MAX;
        assert_eq!(manifest([3, 1, 1, 1], 1, &[1], &[1]).check_counts(), Ok(()));
        for m in [
            // read = routed + quarantined, modulo 2^64.
            manifest([0, max, 1, 0], max, &[max], &[1]),
            // A type's parts, modulo 2^64.
            manifest([2, 1, 1, 0], 1, &[max, 2], &[1]),
            // Quarantine parts, modulo 2^64.
            manifest([2, 1, 1, 0], 1, &[1], &[max, 2]),
        ] {
            assert!(m.check_counts().is_err(), "{:?}", m.lines);
        }
    }
}
