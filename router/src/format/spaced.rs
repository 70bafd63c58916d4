//! Splitting space-separated access-log lines (S3 server access logs, ALB):
//! bare fields run to the next space, `[...]` and `"..."` fields may hold
//! spaces. One space separates fields; a space ending the line ends the
//! last field (it does not start an empty one).
//!
//! Quoted fields are not escaped reliably: S3 writes a Request-URI, a
//! Referer or a User-Agent holding `"` as is. A bare field (one not opening
//! with `"` or `[`) never holds a `"` (no documented bare field of S3 or
//! ALB can: keys are URL-encoded; a line with one is an `Err`). A quoted
//! field is therefore closed by the *first* `"` that is followed by a space
//! or the end of the line **and** after which, up to the next `"`, there
//! are only whole bare fields, that next `"` opening a field; with a
//! documented layout ([`split_as`]) that field must also be at a position
//! the format may quote (not HTTP status, not Version Id, ...).
//!
//! `"Mozilla/5.0 "x" (a; b)" -` splits as `Mozilla/5.0 "x" (a; b)` then
//! `-` (closing after `x"` would leave `b)"`, a bare field with a `"`); the
//! S3 line `... "-" "curl "x" - host ...` keeps `curl "x` as its
//! User-Agent and every later field in place; `"GET /a" b HTTP/1.1" 200`
//! keeps the whole request. When no `"` closes a quoted field that way,
//! the line is an `Err` (quarantined as `malformed_record`), never a record
//! with its fields shifted. What is left ambiguous is a line that splits
//! plausibly in more than one way: two adjacent quoted fields (S3's Referer
//! and User-Agent) holding `" "`, or a Request-URI crafted to hold a whole
//! forged run of fields (`" 200 … "-" "x`); the first plausible close
//! wins, as a strict parser's would.
//!
//! Cost: linear in the line. Checking a candidate close reads the line
//! only up to the next `"`, which the scan for the next candidate starts
//! from anyway, so every byte is read a bounded number of times: a hostile
//! 4 MiB line of `"a" "a" ... "x` is an `Err` in tens of milliseconds (the
//! former rule, which counted the quotes left after every candidate, took
//! 8 s at 128 KB and hours at 4 MiB).

use super::shape::{shown, Shape, TimeField, TIMESTAMP};

/// Splits `line`, handing each field (as written, without its quotes or
/// brackets) to `out` in order (no allocation: this runs once per line),
/// with no documented layout: only the bare-field rule picks a quoted
/// field's closing quote. `Err` names what is wrong.
pub fn split<'l>(line: &'l str, mut out: impl FnMut(&'l str)) -> Result<(), String> {
    split_as(line, 0, &[], |t, _| out(t))
}

/// [`split`] for a format whose first `documented` fields are known:
/// those at positions (from 0) in `quoted` may be written in quotes, the
/// others never are, which rules out a close after which the next quoted
/// field would fall at one of them. Fields past `documented` may be
/// anything. `out` is also told how each field was written (bare, in
/// quotes or in brackets), so that a format can check that too.
pub fn split_as<'l>(
    line: &'l str,
    documented: usize,
    quoted: &[usize],
    mut out: impl FnMut(&'l str, Written),
) -> Result<(), String> {
    let b = line.as_bytes();
    let never_quoted = |pos: usize| pos < documented && !quoted.contains(&pos);
    let mut pos = 0;
    let mut i = 0;
    loop {
        // The field at `i` is field `pos`; `end` is where it stops (a
        // space or the end of the line), `from`..`to` its text.
        let (from, to, end) = match b.get(i) {
            Some(b'"') => {
                let mut j = i + 1;
                let mut passed_over = false;
                let close = loop {
                    let Some(k) = memchr::memchr(b'"', &b[j..]) else {
                        return Err(format!(
                            "the quoted field at byte {} is never closed by a '\"' before a space or the end of the line{}",
                            i + 1,
                            if passed_over {
                                " that leaves a well-formed next field"
                            } else {
                                ""
                            }
                        ));
                    };
                    let at = j + k;
                    j = at + 1;
                    match b.get(at + 1) {
                        None => break at,
                        Some(b' ') => {}
                        Some(_) => continue,
                    }
                    // What follows the close up to the next '"' must be
                    // whole bare fields, and that '"' must open a field at
                    // a position that may be quoted.
                    let next = at + 2;
                    let plausible = match memchr::memchr(b'"', b.get(next..).unwrap_or(&[])) {
                        None => true,
                        Some(k) => {
                            let q = next + k;
                            let between = &b[next..q];
                            (k == 0 || b[q - 1] == b' ')
                                && (memchr::memchr(b'[', between).is_some() || {
                                    let fields = memchr::memchr_iter(b' ', between).count();
                                    !never_quoted(pos + 1 + fields)
                                })
                        }
                    };
                    if plausible {
                        break at;
                    }
                    passed_over = true;
                };
                (i + 1, close, close + 1)
            }
            Some(b'[') => {
                let close = memchr::memmem::find(&b[i..], b"] ")
                    .map(|k| i + k)
                    .or_else(|| b.ends_with(b"]").then_some(b.len() - 1))
                    .filter(|&e| e > i)
                    .ok_or_else(|| {
                        format!(
                            "the bracketed field at byte {} is never closed by ']'",
                            i + 1
                        )
                    })?;
                (i + 1, close, close + 1)
            }
            _ => {
                let end = memchr::memchr2(b' ', b'"', &b[i..]).map_or(b.len(), |k| i + k);
                if b.get(end) == Some(&b'"') {
                    return Err(format!(
                        "the bare field at byte {} holds a '\"' (quoted fields open with one)",
                        i + 1
                    ));
                }
                (i, end, end)
            }
        };
        let written = match b.get(i) {
            _ if from == i => Written::Bare,
            Some(b'"') => Written::Quoted,
            _ => Written::Bracketed,
        };
        out(&line[from..to], written);
        pos += 1;
        // `end` is a space or the end of the line; a space that ends the
        // line ends this field too.
        if end + 1 >= b.len() {
            return Ok(());
        }
        i = end + 1;
    }
}

/// How a field was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Bare,
    Quoted,
    Bracketed,
}

/// A space-separated format with a documented field order: fields past
/// the documented ones are kept as `field_N`; documented fields missing
/// at the end of a shorter (older) line are `null`, so every line of a
/// format has the same keys; fewer than `min` fields is a malformed record.
/// Every field is checked against its documented [`Shape`] before the line
/// is routed (see [`super::shape`]), and the record ends with its
/// `timestamp`.
pub struct Documented {
    /// What the format is called in messages.
    pub name: &'static str,
    pub keys: Vec<String>,
    pub min: usize,
    /// Positions (from 0) of the documented fields that may be written in
    /// quotes; the other documented ones never are (see [`split_as`]).
    pub quoted: &'static [usize],
    /// Positions of the fields the format always writes in quotes (`"-"`
    /// when empty): one written bare is another field's value, moved.
    pub always_quoted: &'static [usize],
    /// Positions of fields the format percent-encodes: decoded when the
    /// result is UTF-8 (decoding once is then lossless), else kept as
    /// written.
    pub decoded: &'static [usize],
    /// The documented fields' shapes, in order (one per key).
    pub shapes: &'static [Shape],
    /// The field that becomes `timestamp` (required in every line).
    pub time: TimeField,
}

impl Documented {
    pub fn record<'f, 'l>(
        &'f self,
        line: &'l str,
        out: &mut Vec<super::Field<'f, 'l>>,
    ) -> Result<(), super::Reject> {
        let malformed = |why: String| {
            (
                crate::reason::Reason::MalformedRecord,
                format!(
                    "the line does not split as {}: {why} (check --format / route.format)",
                    self.name
                ),
            )
        };
        let start = out.len();
        let mut misfit: Option<String> = None;
        let mut stamp = None;
        let mut last = ("", Written::Bare);
        split_as(line, self.keys.len(), self.quoted, |t, written| {
            let i = out.len() - start;
            last = (t, written);
            let key = match self.keys.get(i) {
                Some(k) => std::borrow::Cow::Borrowed(k.as_str()),
                None => super::extra_key(i + 1),
            };
            if misfit.is_none() {
                misfit = self.misfit(i, &key, t, written);
                if i == self.time.position() && misfit.is_none() {
                    stamp = self.time.timestamp(t);
                }
            }
            let mut value = super::value(t);
            if self.decoded.contains(&i) {
                value = value.map(|v| logrouter::percent::decode(t, false).unwrap_or(v));
            }
            out.push((key, value));
        })
        .map_err(malformed)?;
        let n = out.len() - start;
        if misfit.is_none() && n < self.min {
            // A quoted field holding a '"' that runs to the end of a short
            // line: no quote in it closed a field that left the rest of
            // the line well-formed (see `split_as`), because a value after
            // it is missing or extra.
            let (text, written) = last;
            if written == Written::Quoted && text.contains('"') {
                misfit = Some(format!(
                    "{} runs to the end of the line, {}, and leaves {n} fields where every such line has {}: no quote in it closes a field that leaves the rest of the line well-formed",
                    out[out.len() - 1].0,
                    shown(text),
                    self.min
                ));
            } else {
                return Err(malformed(format!(
                    "{n} fields, fewer than the {} every such line has",
                    self.min
                )));
            }
        }
        if let Some(why) = misfit {
            return Err((
                crate::reason::Reason::MalformedRecord,
                format!(
                    "the line does not read as {}: {why}; its fields have shifted (a value missing, split or added mid-line) or it was edited, and it is not routed with values under the wrong names (check the line, and --format / route.format)",
                    self.name
                ),
            ));
        }
        for k in self.keys.iter().skip(n) {
            out.push((std::borrow::Cow::Borrowed(k.as_str()), None));
        }
        out.push((std::borrow::Cow::Borrowed(TIMESTAMP), stamp));
        Ok(())
    }

    /// Why field `i` (`key`), written as `text`, cannot be what the format
    /// documents there; `None` if it can.
    fn misfit(&self, i: usize, key: &str, text: &str, written: Written) -> Option<String> {
        if text.is_empty() && written == Written::Bare {
            return Some(format!(
                "field {} ({key}) is empty, where the format writes - for no value: a run of spaces split one separator in two",
                i + 1
            ));
        }
        let shape = *self.shapes.get(i)?;
        if written != Written::Quoted && self.always_quoted.contains(&i) {
            return Some(format!(
                "{key} is {}, written without the quotes it always has",
                shown(text)
            ));
        }
        if written == Written::Quoted && !self.quoted.contains(&i) {
            return Some(format!(
                "{key} is {}, written in quotes, which it never is",
                shown(text)
            ));
        }
        (!shape.fits(text)).then(|| {
            format!(
                "{key} is {}, which is not {}",
                shown(text),
                shape.describe()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &str) -> Vec<String> {
        let mut out = Vec::new();
        split(line, |t| out.push(t.to_owned())).unwrap();
        out
    }

    #[test]
    fn fields() {
        assert_eq!(texts("a b c"), ["a", "b", "c"]);
        assert_eq!(
            texts("a [06/Feb/2019:00:01:57 +0000] \"GET / HTTP/1.1\" -"),
            ["a", "06/Feb/2019:00:01:57 +0000", "GET / HTTP/1.1", "-"]
        );
        assert_eq!(texts("\"-\" \"\""), ["-", ""]);
        assert_eq!(texts("a \"b c\""), ["a", "b c"]);
    }

    #[test]
    fn unescaped_quotes_inside_quoted_fields() {
        assert_eq!(
            texts("\"GET /a HTTP/1.1\" \"-\" \"Mozilla \"x\" y\" - id"),
            ["GET /a HTTP/1.1", "-", "Mozilla \"x\" y", "-", "id"]
        );
        assert_eq!(texts("\"say \"hi\"\" \"ua\" z"), ["say \"hi\"", "ua", "z"]);
        assert_eq!(texts("\"a \"b\" c\" d"), ["a \"b\" c", "d"]);
        // `x" y"z`: the only close leaves a bare field holding a '"'.
        assert!(split("\"x\" y\"z", |_| {}).is_err());
    }

    #[test]
    fn unclosed_fields_are_errors() {
        assert!(split("a \"b c", |_| {}).is_err());
        assert!(split("a [b c", |_| {}).is_err());
        assert!(split("a b\"c d", |_| {}).is_err());
        assert!(split("\"a\" \"b", |_| {}).is_err());
    }

    #[test]
    fn a_trailing_space_ends_the_line() {
        assert_eq!(texts("a b "), ["a", "b"]);
        assert_eq!(texts("a \"b c\" "), ["a", "b c"]);
        assert_eq!(texts("[t u] "), ["t u"]);
        // Two spaces still hold an empty field between them.
        assert_eq!(texts("a  b"), ["a", "", "b"]);
        assert_eq!(texts("a  "), ["a", ""]);
    }

    const S3: &str = "owner bucket [06/Feb/2019:00:01:57 +0000] 192.0.2.3 - REQ REST.GET.OBJECT a.txt \"GET /tick?data=|1|2| HTTP/1.1\" 200 - 10 10 1 1 \"-\" \"UA\" - hostid SigV4 ECDHE AuthHeader bucket.s3.amazonaws.com TLSv1.2 - Yes";

    fn s3_fields(user_agent: &str) -> Result<Vec<String>, String> {
        let line = S3.replace("\"UA\"", &format!("\"{user_agent}\""));
        let f = crate::format::s3_access::S3Access::new();
        let mut out = Vec::new();
        split_as(&line, f.layout().0, f.layout().1, |t, _| {
            out.push(t.to_owned())
        })?;
        Ok(out)
    }

    /// The review's first repro: one stray '"' in the User-Agent (written
    /// raw, or after a backslash) must not shift the record.
    #[test]
    fn a_stray_quote_does_not_shift_the_record() {
        for ua in [
            "curl \"x",
            "curl \\\"x",
            "Mozilla \"x\" y",
            "a\" \"b",
            "\"",
            "x\" \"y\" z",
        ] {
            let f = s3_fields(ua).unwrap();
            assert_eq!(f.len(), 26, "{ua}: {f:?}");
            assert_eq!(f[8], "GET /tick?data=|1|2| HTTP/1.1", "{ua}");
            assert_eq!(f[9], "200", "{ua}");
            assert_eq!(f[15], "-", "{ua}");
            assert_eq!(f[16], ua);
            assert_eq!(f[17], "-", "{ua}");
            assert_eq!(f[25], "Yes", "{ua}");
        }
        // The same in the Request-URI, followed by a space or not (the
        // last one needs the layout: HTTP status is never quoted).
        let f = crate::format::s3_access::S3Access::new();
        let (documented, quoted) = f.layout();
        for uri in ["|2\"3|", "|2\" 3|", "|2\" \"3|"] {
            let line = S3.replace("|2|", uri);
            let mut out = Vec::new();
            split_as(&line, documented, quoted, |t, _| out.push(t)).unwrap();
            assert_eq!(out[8], format!("GET /tick?data=|1{uri} HTTP/1.1"));
            assert_eq!((out.len(), out[9]), (26, "200"), "{uri}");
        }
        // Through the format: the User-Agent as sent, http_status kept.
        let f = crate::format::s3_access::S3Access::new();
        let mut fields = Vec::new();
        use crate::format::Format;
        let line = S3.replace("\"UA\"", "\"curl \"x\"");
        f.record(&line, &mut fields).unwrap();
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(get("http_status").as_deref(), Some("200"));
        assert_eq!(get("user_agent").as_deref(), Some("curl \"x"));
        assert_eq!(get("host_id").as_deref(), Some("hostid"));
        assert_eq!(fields.len(), 27);
    }

    /// A documented bare position after a quoted field does not open with
    /// '"': without the layout, `"x" "y" z"` would split in two.
    #[test]
    fn the_layout_rules_out_a_quote_at_a_bare_position() {
        let ua = "x\" \"y\" z";
        assert_eq!(s3_fields(ua).unwrap()[16], ua);
        assert_eq!(texts("\"x\" \"y\" z\" -"), ["x", "y\" z", "-"]);
        assert_eq!(
            split_as("\"x\" \"y\" z\" -", 2, &[0], |_, _| {}).map(|_| ()),
            Ok(())
        );
        let mut out = Vec::new();
        split_as("\"x\" \"y\" z\" -", 2, &[0], |t, _| out.push(t)).unwrap();
        assert_eq!(out, ["x\" \"y\" z", "-"]);
        // No close fits: an error, not a guess.
        assert!(split_as("\"x\" \"y", 2, &[0], |_, _| {}).is_err());
    }

    /// Every line of up to 7 of `a "[]` and space splits or errs, never
    /// panics, and a split never yields more fields than spaces + 1.
    #[test]
    fn short_lines_never_panic() {
        let alphabet = [b'a', b' ', b'"', b'[', b']'];
        for len in 0..=7u32 {
            for mut n in 0..5usize.pow(len) {
                let mut line = String::new();
                for _ in 0..len {
                    line.push(alphabet[n % 5] as char);
                    n /= 5;
                }
                let spaces = line.matches(' ').count();
                for (documented, quoted) in [(0, &[][..]), (3, &[1][..])] {
                    let mut count = 0;
                    if split_as(&line, documented, quoted, |_, _| count += 1).is_ok() {
                        assert!(count <= spaces + 1, "{line:?}");
                    }
                }
            }
        }
    }

    /// The review's second repro: `"a" ` m times then `"x` took 8 s at
    /// 128 KB (quadratic); it is one pass now.
    #[test]
    fn hostile_quotes_take_linear_time() {
        let size = if cfg!(debug_assertions) {
            1 << 20
        } else {
            4 << 20
        };
        let mut line = "\"a\" ".repeat(size / 4);
        line.push_str("\"x");
        let t = std::time::Instant::now();
        assert!(split(&line, |_| {}).is_err());
        let layout = crate::format::s3_access::S3Access::new();
        assert!(split_as(&line, layout.layout().0, layout.layout().1, |_, _| {}).is_err());
        // Candidates that are all passed over, in one quoted field.
        let mut line = String::from("\"");
        line.push_str(&"a\" b\"".repeat(size / 6));
        assert!(split(&line, |_| {}).is_ok());
        line.push_str(" x\"y");
        assert!(split(&line, |_| {}).is_err());
        let took = t.elapsed();
        let limit = if cfg!(debug_assertions) { 5.0 } else { 1.0 };
        assert!(took.as_secs_f64() < limit, "{took:?}");
    }
}
