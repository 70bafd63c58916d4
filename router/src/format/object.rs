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
/// escaped; everything else (UTF-8 included) is copied in runs, found eight
/// bytes at a time (most values have nothing to escape, and this is the
/// converted formats' hottest loop).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        let rest = b.len() - i;
        let word = if rest >= 8 {
            u64::from_le_bytes(b[i..i + 8].try_into().expect("eight bytes"))
        } else {
            // The tail, padded with a byte that needs no escape.
            let mut tail = [b'a'; 8];
            tail[..rest].copy_from_slice(&b[i..]);
            u64::from_le_bytes(tail)
        };
        if !needs_escape(word) {
            i += rest.min(8);
            continue;
        }
        let c = b[i];
        let short: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&b[start..i]);
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(c >> 4) as usize]);
            out.push(HEX[(c & 0xf) as usize]);
        } else {
            out.extend_from_slice(short);
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

/// Whether any of the eight bytes of `word` is a control character, `"` or
/// `\` (the classic "has a zero byte" test on `word`, `word ^ '"'` and
/// `word ^ '\'`; bytes of 0x80 and over never match, so UTF-8 passes).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = (word ^ (ONES * b'"' as u64)).wrapping_sub(ONES) & !(word ^ (ONES * b'"' as u64));
    let backslash =
        (word ^ (ONES * b'\\' as u64)).wrapping_sub(ONES) & !(word ^ (ONES * b'\\' as u64));
    (below_space | quote | backslash) & HIGH != 0
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
            for at in 0..20 {
                let s: String = "abcdefghijklmnopqrstuvwxyz"
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
