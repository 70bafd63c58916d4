//! The pointer lookup and the validity check for ordinary JSON lines, in one
//! pass over the bytes, with serde_json left the rest.
//!
//! Routing a JSON line means validating all of it exactly as
//! `serde_json::Value` would (issue #10) and finding one string in it.
//! serde's visitor API does that (see [`crate::pointer`]), but it was a
//! fifth of the router's CPU time and the routing thread's largest share,
//! which every other stage waits on (issue #14). Most lines are ordinary:
//! keys without escapes, strings without control characters or `\u`
//! surrogates, numbers far from `f64`'s limits, a few levels deep. This
//! scans such a line once, with [`crate::scan::JSON_STRING`] for the
//! strings.
//!
//! It never decides anything serde_json might decide otherwise. Anything
//! not plainly ordinary, every error included, gives `None`, and the caller
//! asks serde_json, which then also words the error. So it is right if
//! whatever it accepts `Value` accepts too and the result is the one the
//! serde path gives, which the tests below and the `json_pointer` fuzz
//! target (differential, against `Value`) check.

use std::borrow::Cow;

use crate::pointer::{array_index, Lookup};
use crate::scan::JSON_STRING;

/// Levels past which a text is left to serde_json (its limit is
/// [`crate::json::MAX_JSON_DEPTH`]; this stays well inside it).
const DEPTH: usize = 64;
/// Digits before the point or after it, past which a number is left to
/// serde_json: with at most this many and an exponent of at most two
/// digits, a number is within 10^±300, so inside `f64`'s range and never
/// near its edges.
const DIGITS: usize = 200;

/// What [`crate::pointer::JsonPointer::lookup`] would say of `text` for the
/// pointer `path` (its segments, at least one), if `text` is ordinary and
/// valid; `None` otherwise.
pub fn lookup<'a>(text: &'a str, path: &[String]) -> Option<Lookup<'a>> {
    let mut s = Scan::new(text);
    let found = match s.peek()? {
        b'{' => s.object(Some(path))?,
        _ => match s.value(None)? {
            Lookup::NotAString(kind) => Lookup::NotAnObject(kind),
            _ => Lookup::NotAnObject("null"),
        },
    };
    s.end()?;
    Some(found)
}

/// Whether `text` is an ordinary JSON text that `serde_json::Value` accepts
/// (`false`: not ordinary, or not valid; ask serde_json).
pub fn is_valid(text: &str) -> bool {
    let mut s = Scan::new(text);
    s.value(None).is_some() && s.end().is_some()
}

struct Scan<'a> {
    b: &'a [u8],
    text: &'a str,
    i: usize,
    depth: usize,
}

impl<'a> Scan<'a> {
    /// At the text's first value (after any whitespace).
    fn new(text: &'a str) -> Self {
        let mut s = Scan {
            b: text.as_bytes(),
            text,
            i: 0,
            depth: 0,
        };
        s.ws();
        s
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// JSON's whitespace, as serde_json skips it.
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// Only whitespace is left.
    fn end(&mut self) -> Option<()> {
        self.ws();
        (self.i == self.b.len()).then_some(())
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// One value. With `path` (`Some`: the pointer's segments still to
    /// follow), what the lookup finds in it, as the serde path's `Node`
    /// (segments left) and `Leaf` (none left) visitors say; without, the
    /// value is only checked, and its kind comes back as `NotAString`
    /// (`Missing` for `null`).
    fn value(&mut self, path: Option<&[String]>) -> Option<Lookup<'a>> {
        self.ws();
        let kind = match self.peek()? {
            b'{' => {
                if let Some(path @ [_, ..]) = path {
                    return self.object(Some(path));
                }
                self.object(None)?;
                "object"
            }
            b'[' => {
                if let Some(path @ [_, ..]) = path {
                    return self.array(path);
                }
                self.skip_array()?;
                "array"
            }
            b'"' => {
                let (start, escaped) = self.string()?;
                if path.is_some_and(|p| p.is_empty()) {
                    if escaped {
                        return None; // serde_json decodes it
                    }
                    let found = &self.text[start..self.i - 1];
                    return Some(Lookup::Found(Cow::Borrowed(found)));
                }
                "string"
            }
            b't' => {
                self.literal(b"true")?;
                "boolean"
            }
            b'f' => {
                self.literal(b"false")?;
                "boolean"
            }
            b'n' => {
                self.literal(b"null")?;
                return Some(Lookup::Missing);
            }
            _ => {
                self.number()?;
                "number"
            }
        };
        Some(match path {
            // A scalar or container where the pointer goes on: not there.
            Some([_, ..]) => Lookup::Missing,
            _ => Lookup::NotAString(kind),
        })
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        self.i += 1;
        (self.depth <= DEPTH).then_some(())
    }

    /// An object, at `{`. With `path` (at least one segment), the lookup of
    /// `path[0]` and on in it, `Duplicate` if a member on the path appears
    /// twice; keys with escapes are left to serde_json.
    fn object(&mut self, path: Option<&[String]>) -> Option<Lookup<'a>> {
        let mut result = None;
        self.members(b'}', |s, _| {
            s.ws();
            if s.peek()? != b'"' {
                return None;
            }
            let (start, escaped) = s.string()?;
            if escaped {
                return None;
            }
            let key = &s.b[start..s.i - 1];
            s.eat(b':')?;
            match path {
                Some(path) if key == path[0].as_bytes() => {
                    let found = s.value(Some(&path[1..]))?;
                    result = Some(match result {
                        None => found,
                        Some(_) => Lookup::Duplicate,
                    });
                }
                _ => {
                    s.value(None)?;
                }
            }
            Some(())
        })?;
        Some(result.unwrap_or(Lookup::Missing))
    }

    /// An array on the pointer's path, at `[`: what the lookup finds in the
    /// element `path[0]` names, if any.
    fn array(&mut self, path: &[String]) -> Option<Lookup<'a>> {
        let index = array_index(&path[0]);
        let mut result = Lookup::Missing;
        self.members(b']', |s, i| {
            if Some(i) == index {
                result = s.value(Some(&path[1..]))?;
            } else {
                s.value(None)?;
            }
            Some(())
        })?;
        Some(result)
    }

    fn skip_array(&mut self) -> Option<()> {
        self.members(b']', |s, _| s.value(None).map(drop))
    }

    /// The members of an object or the elements of an array, at its `{` or
    /// `[`, up to `close`: each given to `each` with its index.
    fn members(
        &mut self,
        close: u8,
        mut each: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<()> {
        self.enter()?;
        self.ws();
        if self.peek()? == close {
            self.i += 1;
        } else {
            let mut n = 0;
            loop {
                each(self, n)?;
                n += 1;
                self.ws();
                match self.peek()? {
                    b',' => self.i += 1,
                    c if c == close => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    /// A string, at its `"`: where its contents start, and whether it has
    /// escapes. A control character or a `\u` escape of a surrogate is left
    /// to serde_json.
    fn string(&mut self) -> Option<(usize, bool)> {
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        loop {
            self.i += JSON_STRING.find(&self.b[self.i..]);
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some((start, escaped));
                }
                b'\\' => {
                    escaped = true;
                    match *self.b.get(self.i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                        b'u' => {
                            let hex = self.b.get(self.i + 2..self.i + 6)?;
                            let hex = std::str::from_utf8(hex).ok()?;
                            if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                                return None;
                            }
                            let code = u16::from_str_radix(hex, 16).ok()?;
                            if (0xD800..=0xDFFF).contains(&code) {
                                return None;
                            }
                            self.i += 6;
                        }
                        _ => return None,
                    }
                }
                _ => return None, // a control character
            }
        }
    }

    /// A number: `-`, then `0` or digits from 1 to 9, then `.` and digits,
    /// then `e` or `E`, a sign, and digits (RFC 8259); runs of digits longer
    /// than [`DIGITS`] and exponents of more than two digits are left to
    /// serde_json, which checks the range.
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => {
                self.i += 1;
                if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    return None;
                }
            }
            b'1'..=b'9' => self.digits(DIGITS)?,
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.digits(DIGITS)?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.digits(2)?;
        }
        Some(())
    }

    /// One to `most` digits.
    fn digits(&mut self, most: usize) -> Option<()> {
        let n = self.b[self.i..]
            .iter()
            .take(most + 1)
            .take_while(|c| c.is_ascii_digit())
            .count();
        self.i += n;
        (1..=most).contains(&n).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pointer::JsonPointer;

    /// `text` under `pointer`: `Some(expected)` if this path decides it
    /// (and then the serde path must say the same), `None` if it leaves it.
    fn check(pointer: &str, text: &str, expected: Option<Lookup<'_>>) {
        let p = JsonPointer::parse(pointer).unwrap();
        let ours = lookup(text, p.segments());
        assert_eq!(ours, expected, "{pointer} in {text}");
        assert_eq!(
            is_valid(text),
            expected.is_some(),
            "is_valid agrees with the lookup on {text}"
        );
        if let Some(ours) = ours {
            assert_eq!(
                ours,
                p.serde_lookup(text),
                "the serde path agrees on {text}"
            );
            assert!(serde_json::from_str::<serde_json::Value>(text).is_ok());
        }
    }

    fn found(s: &str) -> Option<Lookup<'_>> {
        Some(Lookup::Found(Cow::Borrowed(s)))
    }

    #[test]
    fn ordinary_lines_are_decided_here() {
        check("/t", r#"{"t":"play","n":1}"#, found("play"));
        check(
            "/t",
            " {\t\"a\" : [1, -2.5e+10, true, false, null, {}, []] ,\r\n\"t\":\"x\"} \n",
            found("x"),
        );
        check(
            "/t",
            r#"{"s":"a\"b\\c\/\n\u00e9\uFFFF","t":"é ☃"}"#,
            found("é ☃"),
        );
        check("/t", r#"{"a":1}"#, Some(Lookup::Missing));
        check("/t", r#"{"t":null}"#, Some(Lookup::Missing));
        check("/t", r#"{"t":7}"#, Some(Lookup::NotAString("number")));
        check("/t", r#"{"t":{"a":1}}"#, Some(Lookup::NotAString("object")));
        check("/t", r#"{"t":[1]}"#, Some(Lookup::NotAString("array")));
        check("/t", r#"{"t":false}"#, Some(Lookup::NotAString("boolean")));
        check("/t", r#"{"t":"a","t":"b"}"#, Some(Lookup::Duplicate));
        check("/t", r#"[{"t":"a"}]"#, Some(Lookup::NotAnObject("array")));
        check("/t", r#""t""#, Some(Lookup::NotAnObject("string")));
        check("/t", "null", Some(Lookup::NotAnObject("null")));
        check("/t", "-0.0e0", Some(Lookup::NotAnObject("number")));
        check("/a/1/t", r#"{"a":[{"t":"x"},{"t":"y"}]}"#, found("y"));
        check(
            "/a/01/t",
            r#"{"a":[{"t":"x"},{"t":"y"}]}"#,
            Some(Lookup::Missing),
        );
        check("/a/t", r#"{"a":"s"}"#, Some(Lookup::Missing));
        check(
            "/a/t",
            r#"{"a":{"t":"x"},"a":{"t":"x"}}"#,
            Some(Lookup::Duplicate),
        );
        let digits = "9".repeat(DIGITS);
        check(
            "/t",
            &format!(r#"{{"n":{digits}.{digits}e99,"t":"x"}}"#),
            found("x"),
        );
    }

    /// Whatever is not plainly ordinary (every error among it) is left to
    /// serde_json, which decides it and words the error.
    #[test]
    fn anything_else_is_left_to_serde_json() {
        for text in [
            "",
            " ",
            "{",
            r#"{"t":"x",}"#,
            r#"{"t":"x"} x"#,
            r#"{"t":"x"}{}"#,
            r#"{"t" "x"}"#,
            r#"{t:"x"}"#,
            r#"{"t":"x\"}"#,
            r#"{"t":"a\qb"}"#,
            r#"{"t":"a\u12"}"#,
            r#"{"t":"a\u12G4"}"#,
            "{\"t\":\"a\tb\"}",
            r#"{"t":"\ud800"}"#,
            r#"{"t":"\ud83d\ude00"}"#,
            r#"{"t\u0041":"x"}"#,
            r#"{"n":01,"t":"x"}"#,
            r#"{"n":1.,"t":"x"}"#,
            r#"{"n":.5,"t":"x"}"#,
            r#"{"n":1e,"t":"x"}"#,
            r#"{"n":1e400,"t":"x"}"#,
            r#"{"n":1e-400,"t":"x"}"#,
            r#"{"n":+1,"t":"x"}"#,
            r#"{"n":-,"t":"x"}"#,
            r#"{"n":tru,"t":"x"}"#,
            r#"{"n":[1,],"t":"x"}"#,
            r#"{"n":[1 2],"t":"x"}"#,
        ] {
            check("/t", text, None);
        }
        // A type with escapes is valid, but serde_json decodes it.
        let escaped = r#"{"t":"a\"b"}"#;
        assert_eq!(lookup(escaped, &["t".to_owned()]), None);
        assert!(is_valid(escaped));
        let digits = "9".repeat(DIGITS + 1);
        check("/t", &format!(r#"{{"n":{digits},"t":"x"}}"#), None);
        check("/t", &format!(r#"{{"n":0.{digits},"t":"x"}}"#), None);
        let deep = format!("{}1{}", "[".repeat(DEPTH), "]".repeat(DEPTH));
        check("/t", &format!(r#"{{"n":{deep},"t":"x"}}"#), None);
        let fits = format!("{}1{}", "[".repeat(DEPTH - 1), "]".repeat(DEPTH - 1));
        check("/t", &format!(r#"{{"n":{fits},"t":"x"}}"#), found("x"));
    }
}
