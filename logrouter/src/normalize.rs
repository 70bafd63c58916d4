//! Event-type normalisation.
//!
//! An event type becomes a directory, an S3 key segment and later a SQL table
//! name, so it goes through exactly one function, [`normalize_event_type`],
//! and nothing else in the code base invents names from raw input.

use std::fmt;

/// Longest normalised name: 63 characters, PostgreSQL's identifier limit
/// (Redshift allows 127; the stricter one wins).
pub const MAX_NAME_LEN: usize = 63;

/// Why a raw event type has no valid normalised form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEventType {
    /// The normalised form that was rejected (may be empty).
    pub normalized: String,
    /// Human-readable rule that it breaks.
    pub rule: &'static str,
}

impl fmt::Display for InvalidEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "normalises to {:?}, which {}",
            self.normalized, self.rule
        )
    }
}

impl std::error::Error for InvalidEventType {}

/// Turns a raw event type into ASCII snake_case.
///
/// Rules, in order:
/// - ASCII letters are lower-cased; a word boundary inside camelCase or
///   PascalCase (`pushEvent`, `PushEvent`, `HTTPRequest`) becomes `_`;
/// - every run of other characters (punctuation, spaces, `_`, non-ASCII)
///   becomes one `_`, and leading or trailing `_` are dropped;
/// - the result must match `^[a-z][a-z0-9_]{0,62}$`, otherwise the type is
///   invalid (for example `""`, `"42"`, `"☃"`, or a 100-character name).
///
/// `PushEvent` → `push_event`, `video.play` and `Video Play` → `video_play`.
pub fn normalize_event_type(raw: &str) -> Result<String, InvalidEventType> {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(b.len() + 4);
    let mut boundary = false;
    for (i, &c) in b.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            boundary = true;
            continue;
        }
        if c.is_ascii_uppercase() && i > 0 {
            let prev = b[i - 1];
            let next_is_lower = b.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_is_lower)
            {
                boundary = true;
            }
        }
        if boundary && !out.is_empty() {
            out.push('_');
        }
        boundary = false;
        out.push(c.to_ascii_lowercase() as char);
        if out.len() > MAX_NAME_LEN + 1 {
            // Already too long: stop copying a hostile multi-megabyte type.
            break;
        }
    }
    validate_name(&out).map(|()| out)
}

/// The JSON key of a non-JSON format's documented field name
/// (`cs(User-Agent)` → `cs_user_agent`, `x-edge-location` →
/// `x_edge_location`, `Request-URI` → `request_uri`, `aclRequired` →
/// `acl_required`). Keys become column names, so they follow exactly the
/// rules of [`normalize_event_type`]: one normalisation for every name.
pub fn normalize_key(raw: &str) -> Result<String, InvalidEventType> {
    normalize_event_type(raw)
}

/// Checks that `name` is already a valid normalised name
/// (`^[a-z][a-z0-9_]{0,62}$`). Used for configured allow-lists.
pub fn validate_name(name: &str) -> Result<(), InvalidEventType> {
    let fail = |rule| {
        Err(InvalidEventType {
            normalized: name.chars().take(MAX_NAME_LEN + 1).collect(),
            rule,
        })
    };
    let Some(&first) = name.as_bytes().first() else {
        return fail("is empty: the type has no ASCII letter or digit");
    };
    if !first.is_ascii_lowercase() {
        return fail("does not start with a letter a-z");
    }
    if name.len() > MAX_NAME_LEN {
        return fail("is longer than 63 characters");
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
    {
        return fail("has characters other than a-z, 0-9 and _");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, expected: Option<&str>) {
        let got = normalize_event_type(raw).ok();
        assert_eq!(got.as_deref(), expected, "normalising {raw:?}");
    }

    #[test]
    fn normalisation_table() {
        for (raw, expected) in [
            ("PushEvent", Some("push_event")),
            ("video.play", Some("video_play")),
            ("Video Play", Some("video_play")),
            ("video_play", Some("video_play")),
            ("pushEvent", Some("push_event")),
            ("HTTPRequest", Some("http_request")),
            ("IssueCommentEvent", Some("issue_comment_event")),
            ("page-view", Some("page_view")),
            ("  __Page   View__ ", Some("page_view")),
            ("mp4Start", Some("mp4_start")),
            ("v2", Some("v2")),
            ("café.open", Some("caf_open")),
            ("../../etc/passwd", Some("etc_passwd")),
            ("users; DROP TABLE x", Some("users_drop_table_x")),
            ("", None),
            ("   ", None),
            ("42", None),
            ("1st_event", None),
            ("☃", None),
            ("_", None),
            (&"a".repeat(63), Some(&"a".repeat(63))),
            (&"a".repeat(64), None),
            (&"a".repeat(10_000), None),
        ] {
            check(raw, expected);
        }
    }

    #[test]
    fn normalised_names_are_fixed_points() {
        for raw in [
            "PushEvent",
            "Video Play",
            "HTTPRequest",
            "a_b_c",
            "mp4Start",
        ] {
            let once = normalize_event_type(raw).unwrap();
            assert_eq!(normalize_event_type(&once).unwrap(), once);
            validate_name(&once).unwrap();
        }
    }

    #[test]
    fn validate_name_rejects_unnormalised() {
        assert!(validate_name("VideoPlay").is_err());
        assert!(validate_name("video-play").is_err());
        assert!(validate_name("").is_err());
        assert!(validate_name("video_play").is_ok());
    }
}
