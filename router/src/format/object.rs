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
/// bytes at a time (most values have nothing to escape, and this is the
/// converted formats' hottest loop).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut start = 0;
    loop {
        let i = start + next_escape(&b[start..]);
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

/// The offset of the first byte of `b` that JSON escapes (a control
/// character, `"` or `\`), or `b.len()`. Bytes of 0x80 and over never
/// match, so UTF-8 passes.
fn next_escape(b: &[u8]) -> usize {
    let mut i = 0;
    #[cfg(target_arch = "x86_64")]
    while i + 16 <= b.len() {
        // SSE2 is part of x86_64, so this needs no run-time detection.
        use std::arch::x86_64::*;
        // SAFETY: `i + 16 <= b.len()`, so the unaligned 16-byte load stays
        // inside `b`; the other intrinsics only compute on registers.
        let mask = unsafe {
            let v = _mm_loadu_si128(b.as_ptr().add(i) as *const __m128i);
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            // Unsigned v < 0x20 exactly when min(v, 0x1f) == v.
            let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control))
        };
        if mask != 0 {
            return i + mask.trailing_zeros() as usize;
        }
        i += 16;
    }
    while i + 8 <= b.len() {
        let word = u64::from_le_bytes(b[i..i + 8].try_into().expect("eight bytes"));
        if needs_escape(word) {
            break;
        }
        i += 8;
    }
    i + b[i..]
        .iter()
        .position(|&c| c < 0x20 || c == b'"' || c == b'\\')
        .unwrap_or(b.len() - i)
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
