//! Writing a converted line as one JSON object, straight into a byte
//! buffer: keys are copied as they are, values with JSON string escaping,
//! nothing else is allocated (the hot loop of every non-JSON format).

use super::Field;

/// Appends `{"key":"value",...}` (a `None` value as `null`).
pub fn write_object(out: &mut Vec<u8>, fields: &[Field<'_, '_>]) {
    out.push(b'{');
    write_members(out, fields);
    out.push(b'}');
}

/// Appends `"key":"value",...` without the braces.
pub fn write_members(out: &mut Vec<u8>, fields: &[Field<'_, '_>]) {
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_key(out, key);
        match value {
            Some(v) => write_str(out, v),
            None => out.extend_from_slice(b"null"),
        }
    }
}

/// Whether `key` is written as it is: every key of a converted object is a
/// normalised name (`a-z`, `0-9`, `_`: the format's documented names through
/// `normalize_key`, `field_N`, or configured names checked by
/// `validate_name`), so nothing in it needs escaping and the escaping scan
/// is skipped for the ~30 keys of every line.
pub fn is_plain_key(key: &str) -> bool {
    key.bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// Appends `"key":` for a plain key (see [`is_plain_key`]: the tests of
/// every format run with this assertion on, hostile headers included).
pub fn write_key(out: &mut Vec<u8>, key: &str) {
    debug_assert!(
        is_plain_key(key),
        "a converted object's key {key:?} is not plain"
    );
    out.reserve(key.len() + 3);
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Appends `s` as a JSON string. `"`, `\` and control characters are
/// escaped; everything else (UTF-8 included) is copied in runs, found 16
/// bytes at a time ([`logrouter::scan`]: most values have nothing to
/// escape, and this is the converted formats' hottest loop).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut start = 0;
    loop {
        let i = start + logrouter::scan::JSON_STRING.find(&b[start..]);
        out.extend_from_slice(&b[start..i]);
        let Some(&c) = b.get(i) else { break };
        let short: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            _ => b"",
        };
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(c >> 4) as usize]);
            out.push(HEX[(c & 0xf) as usize]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    #[test]
    fn escapes_like_serde_json() {
        for s in [
            "plain",
            "",
            "say \"hi\"",
            "back\\slash",
            "tab\tnew\nline\r",
            "\u{1}\u{1f}\u{7f}",
            "é ☃ 𝄞",
            "eight by\"tes and more, a \\ late and \u{1b} later",
            "0123456789abcdef0123456789abcdef\"",
            "\"0123456789abcdef",
            "ÿÿÿÿÿÿÿÿ\u{7f}\u{80}",
        ] {
            let mut out = Vec::new();
            write_str(&mut out, s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(s).unwrap()
            );
        }
    }

    #[test]
    fn every_ascii_character_at_every_offset_escapes_like_serde_json() {
        for c in (0u8..0x80).map(char::from).chain(['é', '☃']) {
            for at in 0..40 {
                let s: String = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                    .chars()
                    .take(at)
                    .chain([c])
                    .chain("0123456789".chars())
                    .collect();
                let mut out = Vec::new();
                write_str(&mut out, &s);
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    serde_json::to_string(&s).unwrap(),
                    "{c:?} at {at}"
                );
            }
        }
    }

    #[test]
    fn objects_parse_back() {
        let fields = vec![
            (Cow::Borrowed("a"), Some(Cow::Borrowed("x\"y"))),
            (Cow::Borrowed("b"), None),
        ];
        let mut out = Vec::new();
        write_object(&mut out, &fields);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, serde_json::json!({"a": "x\"y", "b": null}));
    }
}
