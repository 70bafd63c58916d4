//! SQS message bodies (`logrouter::notification::parse_body`: S3 records,
//! SNS-wrapped, EventBridge, test events) and S3 key decoding
//! (`decode_key`), checked against a plain reference decoder.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use logrouter::notification::{decode_key, parse_body, Notification, EXCERPT_CHARS};

/// `decode_key` as its doc comment defines it: `+` is a space, `%XX` (two
/// hex digits) is that byte, any other `%` is malformed (`None`), and the
/// bytes must be UTF-8.
fn reference_decode(raw: &str) -> Option<String> {
    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let b = raw.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex(*b.get(i + 1)?)?;
                let lo = hex(*b.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    assert_eq!(
        decode_key(body),
        reference_decode(body),
        "decode_key({body:?})"
    );
    match parse_body(body) {
        Notification::Objects(objects) => {
            assert!(!objects.is_empty(), "Objects with no object");
            let mut seen = HashSet::new();
            for o in &objects {
                assert!(
                    seen.insert((o.bucket.as_str(), o.key.as_str())),
                    "object named twice: {o:?}"
                );
                assert_eq!(o.uri(), format!("s3://{}/{}", o.bucket, o.key));
                if let Some(etag) = &o.etag {
                    assert!(!etag.starts_with('"') && !etag.ends_with('"'), "{etag:?}");
                }
            }
        }
        Notification::Nothing { why } => assert!(!why.is_empty()),
        Notification::Unknown { why, excerpt } => {
            assert!(!why.is_empty());
            assert!(excerpt.chars().count() <= EXCERPT_CHARS + 1, "{excerpt:?}");
            assert!(!excerpt.chars().any(char::is_control), "{excerpt:?}");
        }
    }
});
