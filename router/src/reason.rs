//! Why a line was quarantined: stable identifiers, used in quarantine
//! records, manifests, summaries and (later) metrics labels. Never rename one.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Not valid JSON.
    InvalidJson,
    /// Valid JSON, but not an object.
    NotAnObject,
    /// The type field is absent or null.
    MissingEventType,
    /// The type field is not a string, appears twice, or normalises to no
    /// valid name.
    InvalidEventType,
    /// A valid type that the configured allow-list does not name.
    EventTypeNotAllowed,
    /// The source already produced `max_types_per_source` distinct types.
    TooManyEventTypes,
    /// The line's bytes are not UTF-8.
    InvalidUtf8,
    /// Longer than `max_line_bytes`.
    LineTooLong,
    /// The partial last line cut off by damage in the source's compression.
    TruncatedLine,
    /// Nested deeper than `logrouter::json::MAX_JSON_DEPTH` levels: the
    /// loader's JSON parser (serde_json's `Value`) refuses it, so routing it
    /// would only move the failure to the load.
    TooDeep,
    /// A non-JSON format's line that does not split into its fields (an
    /// unclosed quote, too few fields, a value count that is not the
    /// header's).
    MalformedRecord,
    /// A CloudFront record before any `#Fields:` header: its fields are
    /// unknown.
    NoFieldsHeader,
    /// `route.payload` is set and the line lacks its field or parameter.
    PayloadMissing,
    /// `route.type_pattern` does not match the type field's value.
    TypePatternNoMatch,
}

impl Reason {
    /// Every reason, in a fixed order: new ones are added at the end.
    pub const ALL: [Reason; 14] = [
        Reason::InvalidJson,
        Reason::NotAnObject,
        Reason::MissingEventType,
        Reason::InvalidEventType,
        Reason::EventTypeNotAllowed,
        Reason::TooManyEventTypes,
        Reason::InvalidUtf8,
        Reason::LineTooLong,
        Reason::TruncatedLine,
        Reason::TooDeep,
        Reason::MalformedRecord,
        Reason::NoFieldsHeader,
        Reason::PayloadMissing,
        Reason::TypePatternNoMatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidJson => "invalid_json",
            Reason::NotAnObject => "not_an_object",
            Reason::MissingEventType => "missing_event_type",
            Reason::InvalidEventType => "invalid_event_type",
            Reason::EventTypeNotAllowed => "event_type_not_allowed",
            Reason::TooManyEventTypes => "too_many_event_types",
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::LineTooLong => "line_too_long",
            Reason::TruncatedLine => "truncated_line",
            Reason::TooDeep => "too_deep",
            Reason::MalformedRecord => "malformed_record",
            Reason::NoFieldsHeader => "no_fields_header",
            Reason::PayloadMissing => "payload_missing",
            Reason::TypePatternNoMatch => "type_pattern_no_match",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
