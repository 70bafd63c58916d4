//! Splitting space-separated access-log lines (S3 server access logs, ALB):
//! bare fields run to the next space, `[...]` and `"..."` fields may hold
//! spaces.
//!
//! Quoted fields are not escaped reliably: S3 writes a User-Agent or a
//! Referer holding `"` as is. A `"` therefore closes a quoted field only
//! when it is followed by a space or the end of the line *and* the rest of
//! the line holds an even number of `"` (every later quoted field is then
//! whole). `"Mozilla "x" y" -` splits as `Mozilla "x" y` then `-`. When no
//! closing quote leaves an even rest (two fields both holding odd quotes),
//! the first candidate wins, which is what a strict parser would do.

/// Splits `line`, handing each field (as written, without its quotes or
/// brackets) to `out` in order (no allocation:
/// this runs once per line). `Err` names what is wrong.
pub fn split<'l>(line: &'l str, mut out: impl FnMut(&'l str)) -> Result<(), String> {
    let b = line.as_bytes();
    let mut quotes_left = memchr::memchr_iter(b'"', b).count();
    let mut i = 0;
    while i <= b.len() {
        match b.get(i) {
            Some(b'"') => {
                quotes_left -= 1;
                let start = i + 1;
                let mut first = None;
                let mut chosen = None;
                let mut j = start;
                while let Some(k) = memchr::memchr(b'"', &b[j..]) {
                    let at = j + k;
                    quotes_left -= 1;
                    if matches!(b.get(at + 1), None | Some(b' ')) {
                        first.get_or_insert((at, quotes_left));
                        if quotes_left % 2 == 0 {
                            chosen = Some((at, quotes_left));
                            break;
                        }
                    }
                    j = at + 1;
                }
                let Some((end, left)) = chosen.or(first) else {
                    return Err(format!(
                        "the quoted field at byte {} is never closed by a '\"' before a space or the end of the line",
                        i + 1
                    ));
                };
                quotes_left = left;
                out(&line[start..end]);
                i = end + 2;
            }
            Some(b'[') => {
                let end = memchr::memmem::find(&b[i..], b"] ")
                    .map(|k| i + k)
                    .or_else(|| b.ends_with(b"]").then_some(b.len() - 1))
                    .filter(|&e| e >= i)
                    .ok_or_else(|| {
                        format!(
                            "the bracketed field at byte {} is never closed by ']'",
                            i + 1
                        )
                    })?;
                quotes_left -= memchr::memchr_iter(b'"', &b[i..end]).count();
                out(&line[i + 1..end]);
                i = end + 2;
            }
            _ => {
                let end = memchr::memchr(b' ', &b[i..]).map_or(b.len(), |k| i + k);
                quotes_left -= memchr::memchr_iter(b'"', &b[i..end]).count();
                out(&line[i..end]);
                i = end + 1;
            }
        }
    }
    Ok(())
}

/// A space-separated format with a documented field order: fields past
/// the documented ones are kept as `field_N`; documented fields missing
/// at the end of a shorter (older) line are `null`, so every line of a
/// format has the same keys; fewer than `min` fields is a malformed record.
pub struct Documented {
    /// What the format is called in messages.
    pub name: &'static str,
    pub keys: Vec<String>,
    pub min: usize,
    /// Positions of fields the format percent-encodes: decoded when the
    /// result is UTF-8 (decoding once is then lossless), else kept as
    /// written.
    pub decoded: &'static [usize],
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
        split(line, |t| {
            let i = out.len() - start;
            let key = match self.keys.get(i) {
                Some(k) => std::borrow::Cow::Borrowed(k.as_str()),
                None => super::extra_key(i + 1),
            };
            let mut value = super::value(t);
            if self.decoded.contains(&i) {
                value = value.map(|v| super::percent_decode(t, false).unwrap_or(v));
            }
            out.push((key, value));
        })
        .map_err(malformed)?;
        let n = out.len() - start;
        if n < self.min {
            return Err(malformed(format!(
                "{n} fields, fewer than the {} every such line has",
                self.min
            )));
        }
        for k in self.keys.iter().skip(n) {
            out.push((std::borrow::Cow::Borrowed(k.as_str()), None));
        }
        Ok(())
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
        // No closing quote leaves an even rest: the first candidate.
        assert_eq!(texts("\"x\" y\"z"), ["x", "y\"z"]);
    }

    #[test]
    fn unclosed_fields_are_errors() {
        assert!(split("a \"b c", |_| {}).is_err());
        assert!(split("a [b c", |_| {}).is_err());
    }
}
