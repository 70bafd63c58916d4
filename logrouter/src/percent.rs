//! Percent-decoding, the one decoder of the workspace: S3 event keys
//! (`+` is a space, a malformed escape makes the key unusable), the access
//! logs' encoded fields (kept as written where they do not decode), and the
//! parameters of a warehouse URL.

use std::borrow::Cow;

/// Percent-decodes `text` (`%41` → `A`; with `plus_is_space`, `+` → space,
/// as in an HTML form's query string). A `%` not followed by two hex
/// digits is kept as written. `None` when the decoded bytes are not UTF-8:
/// the caller then keeps the value as written, so nothing is lost.
pub fn decode(text: &str, plus_is_space: bool) -> Option<Cow<'_, str>> {
    let b = text.as_bytes();
    let special = |rest: &[u8]| {
        if plus_is_space {
            memchr::memchr2(b'%', b'+', rest)
        } else {
            memchr::memchr(b'%', rest)
        }
    };
    let Some(first) = special(b) else {
        return Some(Cow::Borrowed(text));
    };
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..first]);
    let mut i = first;
    while i < b.len() {
        match b[i] {
            b'%' if escaped_byte(b, i).is_some() => {
                out.extend(escaped_byte(b, i));
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
        // Copy the run up to the next `%` (or `+`) at once.
        let run = special(&b[i..]).unwrap_or(b.len() - i);
        out.extend_from_slice(&b[i..i + run]);
        i += run;
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// The byte the escape at `b[i]` stands for, when `b[i]` is a `%`
/// followed by two hex digits (what [`decode`] decodes).
#[inline]
pub fn escaped_byte(b: &[u8], i: usize) -> Option<u8> {
    if b.get(i) != Some(&b'%') {
        return None;
    }
    Some(hex(*b.get(i + 1)?)? << 4 | hex(*b.get(i + 2)?)?)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Whether every `%` in `text` starts an escape of two hex digits.
pub fn escapes_are_well_formed(text: &str) -> bool {
    let b = text.as_bytes();
    memchr::memchr_iter(b'%', b).all(|i| escaped_byte(b, i).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(decode("a%20b", false).unwrap(), "a b");
        assert_eq!(decode("a+b", false).unwrap(), "a+b");
        assert_eq!(decode("a+b%2Bc", true).unwrap(), "a b+c");
        assert_eq!(decode("100%", false).unwrap(), "100%");
        assert_eq!(decode("%zz%4", false).unwrap(), "%zz%4");
        assert_eq!(decode("%C3%A9", false).unwrap(), "é");
        assert!(decode("%FF", false).is_none());
        assert!(matches!(
            decode("plain", true),
            Some(Cow::Borrowed("plain"))
        ));
    }

    #[test]
    fn well_formed_escapes() {
        for (text, want) in [
            ("a%20b", true),
            ("plain", true),
            ("100%", false),
            ("%2", false),
            ("%zz", false),
            ("%41%42", true),
        ] {
            assert_eq!(escapes_are_well_formed(text), want, "{text}");
        }
    }
}
