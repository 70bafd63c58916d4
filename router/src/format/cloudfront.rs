//! `cloudfront`: CloudFront standard logs (W3C extended log format).
//!
//! Each file says what its fields are: a `#Version:` line, then a
//! `#Fields:` line naming the tab-separated columns of the records that
//! follow. Real archives hold files of 24, 26, 33 and 34 fields (CloudFront
//! has appended fields over the years), and a file may name its fields
//! again with a different list, so the list is read from each file's own
//! header and replaced whenever a new `#Fields:` line comes; keys are those
//! names through the one normalisation (`cs(User-Agent)` → `cs_user_agent`,
//! `x-edge-location` → `x_edge_location`). A record before any `#Fields:`
//! is quarantined as `no_fields_header`; one whose value count is not the
//! header's as `malformed_record`. Header lines are counted as blank (see
//! [`super::Format::is_header`]).
//!
//! CloudFront URL-encodes the request's own text: `cs-uri-stem`,
//! `cs-uri-query`, `cs(Referer)`, `cs(User-Agent)` and `cs(Cookie)` are
//! percent-decoded (`%20` → space; `+` stays `+`: this is not form
//! encoding). Decoding is lossless for a path, a user agent or a cookie
//! when the result is UTF-8 (otherwise the value is kept as written), but
//! not for a query string: a decoded `%26` or `%3D` can no longer be told
//! from the `&` and `=` that separate parameters. So `cs_uri_query` is
//! decoded for reading, and `cs_uri_query_raw` keeps it as written (point
//! a payload at `/cs_uri_query_raw`). `-` is `null` (both keys).

use std::borrow::Cow;

use logrouter::scan::Stops;

use super::shape::{self, shown, TIMESTAMP};
use super::{object, Field, Format, Reject};
use crate::reason::Reason;

/// Fields CloudFront percent-encodes.
const DECODED: [&str; 5] = [
    "cs-uri-stem",
    "cs-uri-query",
    "cs(Referer)",
    "cs(User-Agent)",
    "cs(Cookie)",
];
/// Of those, fields whose decoding loses information: their value as
/// written is kept too, under `<key>_raw`.
const KEEP_RAW: [&str; 1] = ["cs-uri-query"];

/// The fields of CloudFront's standard log since 2019-12, in order (what
/// `gen-events --format cloudfront` writes; real files announce their own
/// in `#Fields:`, and the router reads those).
pub const STANDARD_FIELDS: [&str; 33] = [
    "date",
    "time",
    "x-edge-location",
    "sc-bytes",
    "c-ip",
    "cs-method",
    "cs(Host)",
    "cs-uri-stem",
    "sc-status",
    "cs(Referer)",
    "cs(User-Agent)",
    "cs-uri-query",
    "cs(Cookie)",
    "x-edge-result-type",
    "x-edge-request-id",
    "x-host-header",
    "cs-protocol",
    "cs-bytes",
    "time-taken",
    "x-forwarded-for",
    "ssl-protocol",
    "ssl-cipher",
    "x-edge-response-result-type",
    "cs-protocol-version",
    "fle-status",
    "fle-encrypted-fields",
    "c-port",
    "time-to-first-byte",
    "x-edge-detailed-result-type",
    "sc-content-type",
    "sc-content-len",
    "sc-range-start",
    "sc-range-end",
];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    key: String,
    decode: bool,
    raw_key: Option<String>,
    /// `,"key":`, as [`object::write_members`] writes it (`{"key":` for
    /// the first column).
    prefix: object::Padded,
    /// `,"key_raw":` for a `raw_key`.
    raw_prefix: object::Padded,
}

/// The state of one file: the columns of its latest `#Fields:` header.
#[derive(Debug, Default)]
pub struct Cloudfront {
    columns: Vec<Column>,
    /// The columns of `date` and `time` (`usize::MAX`: none), whose
    /// values make the record's `timestamp`.
    date_col: usize,
    time_col: usize,
    /// `,"timestamp":`, unless the header names a `timestamp` of its own
    /// (that column is then kept as written, and no other is made).
    stamp_prefix: Option<object::Padded>,
    header_line: u64,
    /// The bytes of all the columns' prefixes: what every object holds
    /// besides its values.
    prefixes: usize,
    /// The type key last asked for and its column (see
    /// [`Cloudfront::typed_column`]), until the next `#Fields:`.
    typed: std::cell::RefCell<Option<(String, TypedColumn)>>,
}

/// The column of a type key, and whether the type is its value as written
/// (the column's `_raw` key).
type TypedColumn = Option<(usize, bool)>;

/// What the one-pass writer stops at in a record: its separators (a tab is
/// a control character), what JSON escapes, and `%` for the decoded fields.
const STOPS: Stops = Stops::new(0x20, [b'"', b'\\', b'%', b'%']);

impl Cloudfront {
    fn set_fields(&mut self, names: &str, line_no: u64) {
        // A set: a hostile header may name a million fields.
        let mut used: std::collections::HashSet<String> = Default::default();
        let mut unique = |key: Option<String>, position: usize| -> String {
            let mut key = key
                .filter(|k| !used.contains(k))
                .unwrap_or_else(|| super::extra_key(position).into_owned());
            // `field_N` may itself be a name the header used.
            let mut n = 2;
            while used.contains(&key) {
                key = format!("field_{position}_{n}");
                n += 1;
            }
            used.insert(key.clone());
            key
        };
        self.columns = names
            .split_ascii_whitespace()
            .enumerate()
            .map(|(i, name)| {
                let key = unique(logrouter::normalize::normalize_key(name).ok(), i + 1);
                let raw_key = KEEP_RAW
                    .contains(&name)
                    .then(|| unique(Some(format!("{key}_raw")), i + 1));
                let prefix = |first: bool, key: &str| {
                    let mut p = vec![if first { b'{' } else { b',' }];
                    object::write_key(&mut p, key);
                    object::Padded::new(&p)
                };
                Column {
                    prefix: prefix(i == 0, &key),
                    raw_prefix: raw_key
                        .as_deref()
                        .map(|k| prefix(false, k))
                        .unwrap_or_default(),
                    key,
                    decode: DECODED.contains(&name),
                    raw_key,
                }
            })
            .collect();
        let col = |name: &str| {
            self.columns
                .iter()
                .position(|c| c.key == name)
                .unwrap_or(usize::MAX)
        };
        (self.date_col, self.time_col) = (col("date"), col("time"));
        self.stamp_prefix = (col(TIMESTAMP) == usize::MAX).then(|| {
            let mut p = vec![b','];
            object::write_key(&mut p, TIMESTAMP);
            object::Padded::new(&p)
        });
        self.prefixes = self
            .columns
            .iter()
            .map(|c| c.prefix.len() + c.raw_prefix.len() + 16)
            .sum::<usize>()
            + 40;
        self.header_line = line_no;
        *self.typed.get_mut() = None;
    }

    /// The column whose value is the type at `key`, and whether it is that
    /// column's value as written (its `_raw` key). Every line of a source
    /// asks with the same key, so the answer is kept.
    fn typed_column(&self, key: &str) -> TypedColumn {
        if let Some((k, t)) = &*self.typed.borrow() {
            if k == key {
                return *t;
            }
        }
        let t = self.columns.iter().enumerate().find_map(|(i, c)| {
            (c.key == key)
                .then_some((i, false))
                .or_else(|| (c.raw_key.as_deref() == Some(key)).then_some((i, true)))
        });
        *self.typed.borrow_mut() = Some((key.to_owned(), t));
        t
    }

    fn no_fields_header() -> Reject {
        (
            Reason::NoFieldsHeader,
            "no #Fields: header before this record, so its fields are unknown: route CloudFront log files whole, as CloudFront writes them (#Version, #Fields, then records), or choose another --format".into(),
        )
    }
}

impl Format for Cloudfront {
    fn is_header(&self, line: &[u8]) -> bool {
        line.first() == Some(&b'#')
    }

    /// `#Fields:` replaces the columns; `#Version:` and any other comment
    /// line carry nothing to keep.
    fn header(&mut self, line: &str, line_no: u64) -> Result<(), Reject> {
        if let Some(names) = line.strip_prefix("#Fields:") {
            self.set_fields(names, line_no);
        }
        Ok(())
    }

    fn record<'f, 'l>(&'f self, line: &'l str, out: &mut Vec<Field<'f, 'l>>) -> Result<(), Reject> {
        if self.columns.is_empty() {
            return Err(Self::no_fields_header());
        }
        let mut values = Tabs(Some(line));
        let mut when = ["-"; 2];
        for (i, c) in self.columns.iter().enumerate() {
            let Some(text) = values.next() else {
                return Err(self.miscounted(i));
            };
            if i == self.date_col {
                when[0] = text;
            } else if i == self.time_col {
                when[1] = text;
            }
            let value = super::value(text);
            let decoded = match (&value, c.decode) {
                (Some(_), true) => logrouter::percent::decode(text, false).or(value.clone()),
                _ => value.clone(),
            };
            out.push((Cow::Borrowed(c.key.as_str()), decoded));
            if let Some(raw) = &c.raw_key {
                out.push((Cow::Borrowed(raw.as_str()), value));
            }
        }
        // One empty value after the last named field (a trailing tab) is
        // tolerated: every named field is there.
        if values.0 != Some("") {
            let more = values.count();
            if more > 0 {
                return Err(self.miscounted(self.columns.len() + more));
            }
        }
        if self.stamp_prefix.is_some() {
            let stamp = match self.timestamp(when[0], when[1])? {
                true => Some(Cow::Owned(format!("{}T{}Z", when[0], when[1]))),
                false => None,
            };
            out.push((Cow::Borrowed(TIMESTAMP), stamp));
        }
        Ok(())
    }

    /// [`super::fields_object`] in one pass over the line: each value is
    /// copied into `out` in runs between the stops of one scan of the
    /// whole record ([`STOPS`]), escaped and percent-decoded on the way,
    /// behind its column's ready-made `,"key":`; no fields' vector, no
    /// decoded copies. A decoded value that is not UTF-8 is written again
    /// as read, as [`logrouter::percent::decode`]'s callers do.
    fn write_record<'f, 'l>(
        &'f self,
        line: &'l str,
        type_key: Option<&str>,
        _fields: &mut Vec<Field<'f, 'l>>,
        out: &mut Vec<u8>,
    ) -> Result<Option<Cow<'l, str>>, Reject> {
        let cols = &self.columns[..];
        if cols.is_empty() {
            return Err(Self::no_fields_header());
        }
        let b = line.as_bytes();
        out.reserve(self.prefixes + b.len() + b.len() / 2 + 2);
        // The column of the type, and whether it is the value as written.
        let typed = type_key.and_then(|k| self.typed_column(k));
        let mut typed_text = None;
        // Where the date's and the time's texts are.
        let mut when = [(0, 0); 2];
        let mut ended = false;
        let mut field = Open::new(cols, 0, b, 0, out);
        for p in STOPS.positions(b) {
            let c = b[p];
            match c {
                b'\t' => {
                    field.close(line, p, out);
                    if typed.is_some_and(|(i, _)| i == field.column) {
                        typed_text = Some(&line[field.start..p]);
                    }
                    field.note_when(self, p, &mut when);
                    let next = field.column + 1;
                    if next == cols.len() {
                        // A trailing tab: one empty value after the last
                        // named field, tolerated.
                        if p + 1 == b.len() {
                            ended = true;
                            break;
                        }
                        let more = memchr::memchr_iter(b'\t', &b[p + 1..]).count() + 1;
                        return Err(self.miscounted(cols.len() + more));
                    }
                    field = Open::new(cols, next, b, p + 1, out);
                }
                b'%' => {
                    if !field.col.decode || field.null {
                        continue;
                    }
                    let Some(d) = logrouter::percent::escaped_byte(b, p) else {
                        continue;
                    };
                    object::put(out, b, field.run, p - field.run);
                    field.wide |= d >= 0x80;
                    object::escape(out, d);
                    field.run = p + 3;
                }
                // `"`, `\` or another control character; never in a `-`
                // field, which ends at the next byte.
                _ => {
                    object::put(out, b, field.run, p - field.run);
                    object::escape(out, c);
                    field.run = p + 1;
                }
            }
        }
        if !ended {
            field.close(line, b.len(), out);
            if typed.is_some_and(|(i, _)| i == field.column) {
                typed_text = Some(&line[field.start..]);
            }
            field.note_when(self, b.len(), &mut when);
        }
        if field.column + 1 < cols.len() {
            return Err(self.miscounted(field.column + 1));
        }
        if let Some(prefix) = &self.stamp_prefix {
            let [(d0, d1), (t0, t1)] = when;
            let (d, t) = (&line[d0..d1], &line[t0..t1]);
            object::put_padded(out, prefix);
            if self.timestamp(d, t)? {
                out.push(b'"');
                out.extend_from_slice(d.as_bytes());
                out.push(b'T');
                out.extend_from_slice(t.as_bytes());
                out.extend_from_slice(b"Z\"");
            } else {
                out.extend_from_slice(b"null");
            }
        }
        out.push(b'}');
        Ok(typed.zip(typed_text).and_then(|((i, raw), text)| {
            let value = super::value(text)?;
            Some(if cols[i].decode && !raw {
                logrouter::percent::decode(text, false).unwrap_or(value)
            } else {
                value
            })
        }))
    }
}

/// The field [`Cloudfront::write_record`] is writing.
struct Open<'c> {
    column: usize,
    col: &'c Column,
    /// Where its text starts in the line.
    start: usize,
    /// The first byte of its text not yet copied out.
    run: usize,
    /// Where its value starts in the object, after the opening quote.
    value_at: usize,
    /// It is `-`: written as `null`.
    null: bool,
    /// A `%XX` decoded to a byte of 0x80 or more: the value must be
    /// checked for UTF-8 at its end.
    wide: bool,
}

impl<'c> Open<'c> {
    /// Notes where the text of this field ends (`end`) if it is the date
    /// or the time.
    #[inline(always)]
    fn note_when(&self, f: &Cloudfront, end: usize, when: &mut [(usize, usize); 2]) {
        if self.column == f.date_col {
            when[0] = (self.start, end);
        } else if self.column == f.time_col {
            when[1] = (self.start, end);
        }
    }

    /// Writes the key of column `column`, whose text starts at `start`, and
    /// either `null` or the opening quote.
    #[inline(always)]
    fn new(cols: &'c [Column], column: usize, b: &[u8], start: usize, out: &mut Vec<u8>) -> Self {
        let col = &cols[column];
        object::put_padded(out, &col.prefix);
        let null = b.get(start) == Some(&b'-') && matches!(b.get(start + 1), None | Some(b'\t'));
        if null {
            out.extend_from_slice(b"null");
        } else {
            out.push(b'"');
        }
        Self {
            column,
            col,
            start,
            run: start,
            value_at: out.len(),
            null,
            wide: false,
        }
    }

    /// Ends the field at `end` (its tab, or the line's end): the rest of
    /// its text, the closing quote, and its raw copy if the column keeps
    /// one.
    #[inline(always)]
    fn close(&self, line: &str, end: usize, out: &mut Vec<u8>) {
        if !self.null {
            object::put(out, line.as_bytes(), self.run, end - self.run);
            if self.wide && std::str::from_utf8(&out[self.value_at..]).is_err() {
                out.truncate(self.value_at);
                object::write_str_body(out, &line[self.start..end]);
            }
            out.push(b'"');
        }
        if self.col.raw_key.is_some() {
            object::put_padded(out, &self.col.raw_prefix);
            if self.null {
                out.extend_from_slice(b"null");
            } else {
                object::write_str(out, &line[self.start..end]);
            }
        }
    }
}

impl Cloudfront {
    /// Whether a record of this header has a timestamp (`false`: the header
    /// names no date or no time column), once its `date` and `time` texts
    /// are checked: one that cannot be what CloudFront writes there is a
    /// malformed record, named.
    fn timestamp(&self, date: &str, time: &str) -> Result<bool, Reject> {
        if self.date_col == usize::MAX || self.time_col == usize::MAX {
            return Ok(false);
        }
        shape::date_and_time(date, time).map_err(|(field, what)| {
            let text = if field == "date" { date } else { time };
            (
                Reason::MalformedRecord,
                format!(
                    "{field} is {}, which is not {what} (UTC, as CloudFront writes it); the #Fields: header on line {} names the columns, so the record was edited or is not a CloudFront log (check the line, and --format / route.format)",
                    shown(text),
                    self.header_line
                ),
            )
        })?;
        Ok(true)
    }

    fn miscounted(&self, values: usize) -> Reject {
        (
            Reason::MalformedRecord,
            format!(
                "{values} tab-separated values, but the #Fields: header on line {} names {}: the record is cut or the file was edited (CloudFront writes one value per field, - when empty)",
                self.header_line,
                self.columns.len()
            ),
        )
    }
}

/// The tab-separated values of a record, found with memchr (faster than
/// `str::split` on a char, which shows in profiles of this format).
struct Tabs<'l>(Option<&'l str>);

impl<'l> Iterator for Tabs<'l> {
    type Item = &'l str;

    fn next(&mut self) -> Option<&'l str> {
        let rest = self.0?;
        Some(match memchr::memchr(b'\t', rest.as_bytes()) {
            // A tab is ASCII, so both sides are on character boundaries.
            Some(i) => {
                self.0 = Some(&rest[i + 1..]);
                &rest[..i]
            }
            None => {
                self.0 = None;
                rest
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str =
        include_str!("../../../tests/data/logs/cloudfront-EMLARXS9EXAMPLE.2019-12-04-21.example");

    fn objects(text: &str) -> Vec<Result<serde_json::Value, Reason>> {
        let mut f = Cloudfront::default();
        let mut got = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if f.is_header(line.as_bytes()) {
                f.header(line, n as u64 + 1).unwrap();
                continue;
            }
            let mut out = Vec::new();
            got.push(match one_pass(&f, line, None, &mut out) {
                Ok(_) => Ok(serde_json::from_slice(&out).unwrap()),
                Err((reason, _)) => Err(reason),
            });
        }
        got
    }

    /// The one-pass writer's object and type, asserted to be what the
    /// record's fields make, byte for byte (and the same error).
    fn one_pass(
        f: &Cloudfront,
        line: &str,
        type_key: Option<&str>,
        out: &mut Vec<u8>,
    ) -> Result<Option<String>, Reject> {
        let got = f
            .write_record(line, type_key, &mut Vec::new(), out)
            .map(|t| t.map(|t| t.into_owned()));
        let mut by_fields = Vec::new();
        let want = super::super::fields_object(f, line, type_key, &mut Vec::new(), &mut by_fields)
            .map(|t| t.map(|t| t.into_owned()));
        assert_eq!(got, want, "{line:?}, type {type_key:?}");
        if got.is_ok() {
            assert_eq!(
                String::from_utf8_lossy(out),
                String::from_utf8_lossy(&by_fields),
                "{line:?}"
            );
        }
        got
    }

    /// Lines of every kind of value, through headers of every kind of
    /// column and a type at each key: the one-pass writer and the fields
    /// agree on all of them (the generator is a fixed xorshift, so this is
    /// the same run every time).
    #[test]
    fn the_one_pass_writer_is_the_fields_object_byte_for_byte() {
        const PIECES: [&str; 24] = [
            "-",
            "a",
            "abc",
            "%20",
            "%2",
            "%",
            "%%41",
            "%zz",
            "%22",
            "%5C",
            "%5c",
            "%0A",
            "%00",
            "%7F",
            "%C3%A9",
            "%FF",
            "%C3",
            "\"",
            "\\",
            "\u{1}",
            "\r",
            "é☃",
            "+",
            "0123456789abcdefghij",
        ];
        let headers = [
            "#Fields: cs-uri-query cs(User-Agent) date",
            "#Fields: date cs-uri-stem cs-uri-query sc-status cs(Cookie)",
            "#Fields: cs-uri-query",
            "#Fields: x",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut ok = 0;
        for header in headers {
            let mut f = Cloudfront::default();
            f.header(header, 1).unwrap();
            let keys: Vec<Option<String>> = f
                .columns
                .iter()
                .flat_map(|c| [Some(c.key.clone()), c.raw_key.clone()])
                .flatten()
                .map(Some)
                .chain([None, Some("nope".into())])
                .collect();
            for _ in 0..3000 {
                // Mostly the header's count of values, sometimes one more
                // or fewer.
                let values = (f.columns.len() + next(5)).saturating_sub(2).max(1);
                let line: Vec<String> = (0..values)
                    .map(|_| (0..next(4)).map(|_| PIECES[next(PIECES.len())]).collect())
                    .collect();
                let line = line.join("\t");
                let key = &keys[next(keys.len())];
                let mut out = Vec::new();
                if one_pass(&f, &line, key.as_deref(), &mut out).is_ok() {
                    ok += 1;
                }
            }
        }
        // Most lines had the right count and were written.
        assert!(ok > 4000, "{ok}");
    }

    #[test]
    fn the_documented_example() {
        let got = objects(EXAMPLE);
        assert_eq!(got.len(), 1);
        let v = got[0].as_ref().unwrap();
        assert_eq!(v["date"], "2019-12-04");
        assert_eq!(v["x_edge_location"], "LAX1");
        assert_eq!(v["cs_host"], "d111111abcdef8.cloudfront.net");
        assert_eq!(
            v["cs_user_agent"],
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/78.0.3904.108 Safari/537.36"
        );
        assert_eq!(v["cs_referer"], serde_json::Value::Null);
        assert_eq!(v["cs_uri_query"], serde_json::Value::Null);
        assert_eq!(v["cs_uri_query_raw"], serde_json::Value::Null);
        assert_eq!(v["sc_content_len"], "78");
        assert_eq!(v["timestamp"], "2019-12-04T21:02:31Z");
        // 33 fields, the raw query and the timestamp.
        assert_eq!(v.as_object().unwrap().len(), 35);
    }

    #[test]
    fn fields_change_mid_file_and_counts_must_match() {
        let text = "#Version: 1.0\n#Fields: date cs-uri-stem cs-uri-query\n2019-12-04\t/a%20b\ta=1%26b%3D2\n#Fields: date sc-status cs-uri-stem x-new\n2019-12-05\t200\t/c\tv\n2019-12-05\t200\n";
        let got = objects(text);
        let first = got[0].as_ref().unwrap();
        assert_eq!(first["cs_uri_stem"], "/a b");
        assert_eq!(first["cs_uri_query"], "a=1&b=2");
        assert_eq!(first["cs_uri_query_raw"], "a=1%26b%3D2");
        let second = got[1].as_ref().unwrap();
        assert_eq!(
            second,
            &serde_json::json!({"date": "2019-12-05", "sc_status": "200", "cs_uri_stem": "/c", "x_new": "v", "timestamp": null})
        );
        assert_eq!(got[2], Err(Reason::MalformedRecord));
    }

    /// The timestamp and the trailing tab, through both writers (`objects`
    /// asserts they agree byte for byte, errors included).
    #[test]
    fn timestamps_and_a_trailing_tab_through_both_writers() {
        let got = objects("#Fields: date time cs-uri-query\n2019-12-04\t21:02:31\ta%26b\t\n2019-12-04\t21:02:31\t-\n2019-12-04\tbad\t-\t\n2019-12-04\t21:02:31\t-\t\t\n");
        assert_eq!(
            got[0].as_ref().unwrap()["timestamp"],
            "2019-12-04T21:02:31Z"
        );
        assert_eq!(got[0].as_ref().unwrap()["cs_uri_query_raw"], "a%26b");
        assert_eq!(
            got[1].as_ref().unwrap()["timestamp"],
            "2019-12-04T21:02:31Z"
        );
        assert_eq!(got[2], Err(Reason::MalformedRecord));
        assert_eq!(got[3], Err(Reason::MalformedRecord));
    }

    #[test]
    fn records_before_fields_and_odd_headers() {
        assert_eq!(objects("a\tb\n"), [Err(Reason::NoFieldsHeader)]);
        // Undecodable bytes keep the value as written; duplicate names are
        // made unique by position.
        let got = objects("#Fields: cs(User-Agent) date date\n%FF%20x\td1\td2\n");
        assert_eq!(
            got[0].as_ref().unwrap(),
            &serde_json::json!({"cs_user_agent": "%FF%20x", "date": "d1", "field_3": "d2", "timestamp": null})
        );
        // A header that names the position key of another field: every key
        // of the object is still unique (serde_json would keep the last of
        // two, so the object's length says).
        for header in [
            "field_2 field_2",
            "field_2 field_2 field_2_2",
            "a a field_2",
        ] {
            let names = header.split(' ').count();
            let line = vec!["v"; names].join("\t");
            let got = objects(&format!("#Fields: {header}\n{line}\n"));
            let object = got[0].as_ref().unwrap().as_object().unwrap().clone();
            // Plus the timestamp (null: no date or time column).
            assert_eq!(object.len(), names + 1, "{header}: {object:?}");
        }
    }
}
