//! Writing a converted line as one JSON object, straight into a byte
//! buffer: keys and values are copied with JSON string escaping, nothing
//! else is allocated (the hot loop of every non-JSON format).

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
        write_str(out, key);
        out.push(b':');
        match value {
            Some(v) => write_str(out, v),
            None => out.extend_from_slice(b"null"),
        }
    }
}

/// Appends `s` as a JSON string. `"`, `\` and control characters are
/// escaped; everything else (UTF-8 included) is copied in runs.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let short: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(c >> 4) as usize]);
            out.push(HEX[(c & 0xf) as usize]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
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
