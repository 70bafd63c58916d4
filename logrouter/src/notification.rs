//! Understanding SQS message bodies that announce new S3 objects.
//!
//! S3 reaches a queue in several envelopes: a direct S3 event notification
//! (`{"Records":[…]}`), the same wrapped by SNS (the event is a JSON *string*
//! in `Message`), an EventBridge "Object Created" event, and the
//! `s3:TestEvent` that S3 sends when a bucket's notification configuration
//! is set. [`parse_body`] turns any of them into a [`Notification`]; anything
//! else is [`Notification::Unknown`], which the queue worker must leave on
//! the queue for its redrive policy instead of deleting it.

use std::borrow::Cow;

use serde_json::Value;

/// One S3 object named by a notification.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub bucket: String,
    /// The decoded key, as S3 stores it.
    pub key: String,
    /// ETag from the notification, when it carried one (without quotes).
    pub etag: Option<String>,
    pub size: Option<u64>,
    /// Route again even if already routed with this ETag: set by
    /// `router backfill --enqueue --force` in the record's `logrouter`
    /// member (S3 itself never sends it).
    pub force: bool,
}

impl ObjectRef {
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// What a message body asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// Objects to process (in body order, duplicates removed).
    Objects(Vec<ObjectRef>),
    /// A recognised notification that asks for nothing: a test event, or only
    /// records of other event kinds (`ObjectRemoved:*`, …). The message is
    /// consumed.
    Nothing { why: String },
    /// Not a notification of any known shape. Never deleted: it stays on the
    /// queue until the redrive policy moves it to the dead-letter queue.
    Unknown { why: String, excerpt: String },
}

/// Maximum number of characters of an unknown body quoted in logs.
pub const EXCERPT_CHARS: usize = 200;

/// Parses one SQS message body.
pub fn parse_body(body: &str) -> Notification {
    let unknown = |why: &str| Notification::Unknown {
        why: why.to_owned(),
        excerpt: excerpt(body),
    };
    let value: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => return unknown(&format!("body is not JSON ({e})")),
    };
    match parse_value(&value, 0) {
        Some(n) => n,
        None => unknown("JSON of no known notification shape (expected S3 \"Records\", SNS \"Message\", EventBridge \"detail\" or s3:TestEvent)"),
    }
}

fn parse_value(v: &Value, depth: u8) -> Option<Notification> {
    let obj = v.as_object()?;
    // SNS envelope: the S3 event is a JSON string in "Message".
    if obj.get("Type").and_then(Value::as_str) == Some("Notification") {
        let inner = obj.get("Message")?.as_str()?;
        if depth > 0 {
            return None;
        }
        let inner: Value = serde_json::from_str(inner).ok()?;
        return parse_value(&inner, depth + 1);
    }
    if obj.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Some(Notification::Nothing {
            why: "s3:TestEvent".to_owned(),
        });
    }
    if let Some(records) = obj.get("Records") {
        return parse_records(records.as_array()?);
    }
    if obj.get("source").and_then(Value::as_str) == Some("aws.s3") {
        return parse_eventbridge(obj);
    }
    None
}

fn parse_records(records: &[Value]) -> Option<Notification> {
    let mut objects = Vec::new();
    let mut skipped = Vec::new();
    for r in records {
        let name = r.get("eventName")?.as_str()?;
        if !name.starts_with("ObjectCreated:") {
            skipped.push(name.to_owned());
            continue;
        }
        let s3 = r.get("s3")?;
        let bucket = s3.get("bucket")?.get("name")?.as_str()?;
        let object = s3.get("object")?;
        let key = decode_key(object.get("key")?.as_str()?)?;
        objects.push(ObjectRef {
            bucket: bucket.to_owned(),
            key,
            etag: object
                .get("eTag")
                .and_then(Value::as_str)
                .map(|e| e.trim_matches('"').to_owned()),
            size: object.get("size").and_then(Value::as_u64),
            force: r
                .pointer("/logrouter/force")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        });
    }
    Some(finish(objects, skipped))
}

/// EventBridge events carry the key as stored: not URL-encoded.
fn parse_eventbridge(obj: &serde_json::Map<String, Value>) -> Option<Notification> {
    let detail_type = obj.get("detail-type")?.as_str()?;
    if detail_type != "Object Created" {
        return Some(Notification::Nothing {
            why: format!("EventBridge {detail_type:?}"),
        });
    }
    let detail = obj.get("detail")?;
    let object = detail.get("object")?;
    let found = ObjectRef {
        bucket: detail.get("bucket")?.get("name")?.as_str()?.to_owned(),
        key: object.get("key")?.as_str()?.to_owned(),
        etag: object
            .get("etag")
            .and_then(Value::as_str)
            .map(|e| e.trim_matches('"').to_owned()),
        size: object.get("size").and_then(Value::as_u64),
        force: false,
    };
    Some(finish(vec![found], Vec::new()))
}

fn finish(mut objects: Vec<ObjectRef>, skipped: Vec<String>) -> Notification {
    // A body naming the same object twice asks for it once.
    let mut seen = std::collections::HashSet::new();
    objects.retain(|o| seen.insert((o.bucket.clone(), o.key.clone())));
    if objects.is_empty() {
        Notification::Nothing {
            why: if skipped.is_empty() {
                "no records".to_owned()
            } else {
                format!("only records of other kinds: {}", skipped.join(", "))
            },
        }
    } else {
        Notification::Objects(objects)
    }
}

/// Decodes a key from an S3 event notification: `+` means space, then
/// `%XX` escapes are decoded as UTF-8. AWS keeps `/` as is and moto sends
/// `%2F`; both decode to `/`. Returns `None` for a malformed escape or bytes
/// that are not UTF-8.
pub fn decode_key(raw: &str) -> Option<String> {
    if !crate::percent::escapes_are_well_formed(raw) {
        return None;
    }
    crate::percent::decode(raw, true).map(Cow::into_owned)
}

/// The first [`EXCERPT_CHARS`] characters of a body, on one line, for logs.
pub fn excerpt(body: &str) -> String {
    let mut s: String = body
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.chars().count() > EXCERPT_CHARS {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_decoding() {
        for (raw, want) in [
            ("a+b", Some("a b")),
            ("c%2B%2B", Some("c++")),
            ("dt%3D2015-01-20", Some("dt=2015-01-20")),
            ("logs%2F2015", Some("logs/2015")),
            ("caf%C3%A9", Some("café")),
            ("plain/key.gz", Some("plain/key.gz")),
            ("bad%2", None),
            ("bad%zz", None),
            ("bad%FF", None),
        ] {
            assert_eq!(decode_key(raw).as_deref(), want, "{raw}");
        }
    }

    /// Found by the `notification` fuzz target: `%+3` decoded to `\u{3}`
    /// (`u8::from_str_radix` accepts a leading `+`), though the key
    /// holds no escape.
    #[test]
    fn issue13_fuzz_key_escape_with_a_sign_is_malformed() {
        for raw in ["%+3", "a%+F", "%+", "%-1", "% 1"] {
            assert_eq!(decode_key(raw), None, "{raw}");
        }
        assert_eq!(decode_key("%2B3").as_deref(), Some("+3"));
    }

    #[test]
    fn backfill_force_flag() {
        let body = r#"{"Records":[{"eventName":"ObjectCreated:Put","logrouter":{"force":true},
            "s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}"#;
        match parse_body(body) {
            Notification::Objects(o) => assert!(o[0].force),
            other => panic!("{other:?}"),
        }
        match parse_body(&body.replace("true", "false")) {
            Notification::Objects(o) => assert!(!o[0].force),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_shapes_keep_an_excerpt() {
        match parse_body("this is not a notification") {
            Notification::Unknown { excerpt, .. } => {
                assert_eq!(excerpt, "this is not a notification")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_body(r#"{"hello":"world"}"#),
            Notification::Unknown { .. }
        ));
        assert!(matches!(
            parse_body(r#"{"Records":"nope"}"#),
            Notification::Unknown { .. }
        ));
        assert!(matches!(
            parse_body(r#"{"Records":[{"eventName":"ObjectCreated:Put"}]}"#),
            Notification::Unknown { .. }
        ));
        let long = "x".repeat(1000);
        match parse_body(&long) {
            Notification::Unknown { excerpt, .. } => {
                assert_eq!(excerpt.chars().count(), EXCERPT_CHARS + 1)
            }
            other => panic!("{other:?}"),
        }
    }
}

/// Every body in `tests/data/notifications` (copied from the shared fixtures)
/// against `expected.json`: the `[bucket, decoded key]` pairs each must yield.
#[cfg(test)]
mod fixtures {
    use super::*;
    use std::path::PathBuf;

    fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/notifications")
    }

    fn check(file: &str, expected: &[(String, String)]) {
        let body = std::fs::read_to_string(dir().join(file)).unwrap();
        let got: Vec<(String, String)> = match parse_body(&body) {
            Notification::Objects(objs) => objs.into_iter().map(|o| (o.bucket, o.key)).collect(),
            Notification::Nothing { .. } => Vec::new(),
            Notification::Unknown { why, .. } => panic!("{file}: unknown shape: {why}"),
        };
        assert_eq!(got, expected, "{file}");
    }

    #[test]
    fn every_fixture_yields_its_expected_objects() {
        let expected: std::collections::BTreeMap<String, Vec<(String, String)>> =
            serde_json::from_str(&std::fs::read_to_string(dir().join("expected.json")).unwrap())
                .unwrap();
        assert!(expected.len() >= 8);
        for (file, pairs) in &expected {
            check(file, pairs);
        }
    }

    #[test]
    fn bodies_of_no_known_shape_are_unknown() {
        for file in ["garbage-body.txt", "unknown-shape.json"] {
            let body = std::fs::read_to_string(dir().join(file)).unwrap();
            assert!(
                matches!(parse_body(&body), Notification::Unknown { .. }),
                "{file}"
            );
        }
    }
}
