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
    out.reserve(s.len() + 2);
    out.push(b'"');
    write_str_body(out, s);
    out.push(b'"');
}

/// Appends `src[at..at + len]`. A run of a line (most values of an access
/// log are short) is one 16-byte copy when 16 bytes can be read there,
/// rather than a call to `memcpy`: the bytes past the run land in spare
/// capacity and are not counted.
#[inline(always)]
pub fn put(out: &mut Vec<u8>, src: &[u8], at: usize, len: usize) {
    if len <= 16 && at + 16 <= src.len() {
        out.reserve(16);
        // SAFETY: the 16 bytes at `at` lie inside `src` (checked above);
        // `out` has room for 16 more bytes (reserved), of which only the
        // `len` of the run are then counted as written.
        unsafe {
            let chunk = std::ptr::read_unaligned(src.as_ptr().add(at) as *const [u8; 16]);
            let end = out.as_mut_ptr().add(out.len());
            std::ptr::write_unaligned(end as *mut [u8; 16], chunk);
            out.set_len(out.len() + len);
        }
    } else {
        out.extend_from_slice(&src[at..at + len]);
    }
}

/// Bytes kept for [`put_padded`]: `len` of them, then zeros up to a
/// multiple of 16.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Padded {
    bytes: Vec<u8>,
    len: usize,
}

impl Padded {
    pub fn new(b: &[u8]) -> Self {
        let mut bytes = b.to_vec();
        bytes.resize(b.len().div_ceil(16) * 16, 0);
        Self {
            bytes,
            len: b.len(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Appends `p`'s bytes, 16 at a time (a key a converted object writes on
/// every line: two copies for most keys).
#[inline(always)]
pub fn put_padded(out: &mut Vec<u8>, p: &Padded) {
    out.reserve(p.bytes.len());
    // SAFETY: `out` has room for all of `p.bytes` (reserved), which are
    // whole 16-byte chunks; only the first `p.len` are counted as written.
    unsafe {
        let end = out.as_mut_ptr().add(out.len());
        let from = p.bytes.as_ptr();
        let mut k = 0;
        while k < p.bytes.len() {
            let c = std::ptr::read_unaligned(from.add(k) as *const [u8; 16]);
            std::ptr::write_unaligned(end.add(k) as *mut [u8; 16], c);
            k += 16;
        }
        out.set_len(out.len() + p.len);
    }
}

/// [`write_str`] without the quotes.
pub fn write_str_body(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let mut start = 0;
    loop {
        let i = start + logrouter::scan::JSON_STRING.find(&b[start..]);
        out.extend_from_slice(&b[start..i]);
        let Some(&c) = b.get(i) else { break };
        escape(out, c);
        start = i + 1;
    }
}

/// Appends the byte `c` of a JSON string: escaped if it is `"`, `\` or a
/// control character (as serde_json writes them), as it is otherwise.
#[inline]
pub fn escape(out: &mut Vec<u8>, c: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short: &[u8] = match c {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        b'\n' => b"\\n",
        b'\r' => b"\\r",
        b'\t' => b"\\t",
        0x08 => b"\\b",
        0x0c => b"\\f",
        0x00..=0x1f => {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(c >> 4) as usize]);
            return out.push(HEX[(c & 0xf) as usize]);
        }
        _ => return out.push(c),
    };
    out.extend_from_slice(short);
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
