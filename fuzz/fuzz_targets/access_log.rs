//! The access-log formats of `router::format` (CloudFront W3C with its
//! `#Fields:` headers, S3 server access, ALB, each with or without a
//! `[route.payload]`), driven through `Converter` as the line loop drives
//! it: every converted line is one valid JSON object with distinct keys,
//! and the event type the converter reports is the string
//! `Value::pointer` finds in that object (or there is no string there).
//!
//! Input: one byte choosing the format, payload and type pointer, then the
//! lines of a source.
#![no_main]

use std::collections::HashSet;
use std::fmt;

use libfuzzer_sys::fuzz_target;
use logrouter::config::{LineFormat, PayloadConfig};
use logrouter::pointer::JsonPointer;
use router::format::Converter;
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde_json::Value;

/// Checks that the top-level object has no key twice (serde_json's `Value`
/// would silently keep the last), nor the object nested under `nest`.
struct DistinctKeys<'n> {
    nest: Option<&'n str>,
}

impl<'de> DeserializeSeed<'de> for DistinctKeys<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DistinctKeys<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(k) = map.next_key::<String>()? {
            if !seen.insert(k.clone()) {
                return Err(de::Error::custom(format!("key {k:?} twice")));
            }
            if Some(k.as_str()) == self.nest {
                map.next_value_seed(DistinctKeys { nest: None })?;
            } else {
                map.next_value::<de::IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

const POINTERS: [&str; 8] = [
    "/event_type",
    "/operation",
    "/cs_method",
    "/type",
    "/access_log/operation",
    "/access_log/cs_method",
    "/access_log/elb_status_code",
    "/b",
];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let (format, field) = match choice & 3 {
        1 => (LineFormat::S3Access, "/request_uri"),
        2 => (LineFormat::Alb, "/request"),
        _ => (LineFormat::Cloudfront, "/cs_uri_query_raw"),
    };
    let payload = (choice & 4 != 0).then(|| PayloadConfig {
        field: field.into(),
        query_param: "data".into(),
        delimiter: "|".into(),
        fields: vec!["event_type".into(), "b".into(), "c".into()],
        key: "access_log".into(),
    });
    let pointer_text = POINTERS[usize::from(choice >> 3) % POINTERS.len()];
    let pointer = JsonPointer::parse(pointer_text).unwrap();
    let mut converter = Converter::new(format, payload.as_ref()).unwrap();
    let mut out = Vec::new();
    for (n, raw) in rest.split(|b| *b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        // The line loop's own checks come first: blank lines and
        // non-UTF-8 lines never reach a format.
        if raw.iter().all(|c| *c == b' ' || *c == b'\t') {
            continue;
        }
        let Ok(line) = std::str::from_utf8(raw) else {
            continue;
        };
        if converter.is_header(raw) {
            let _ = converter.header(line, n as u64 + 1);
            continue;
        }
        let Ok(found) = converter.record(line, pointer.segments(), &mut out) else {
            continue;
        };
        let value: Value = match serde_json::from_slice(&out) {
            Ok(v) => v,
            Err(e) => panic!(
                "{line:?} became {:?}, not JSON: {e}",
                String::from_utf8_lossy(&out)
            ),
        };
        assert!(value.is_object(), "{line:?} became {value}");
        let mut de = serde_json::Deserializer::from_slice(&out);
        let nest = payload.as_ref().map(|p| p.key.as_str());
        if let Err(e) = (DistinctKeys { nest }).deserialize(&mut de) {
            panic!("{line:?} became {value}: {e}");
        }
        let at = value.pointer(pointer_text).and_then(Value::as_str);
        assert_eq!(
            found.as_deref(),
            at,
            "type at {pointer_text} of {line:?}, which became {value}"
        );
    }
});
