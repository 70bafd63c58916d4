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

use super::{Field, Format, Reject};
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
}

/// The state of one file: the columns of its latest `#Fields:` header.
#[derive(Debug, Default)]
pub struct Cloudfront {
    columns: Vec<Column>,
    header_line: u64,
}

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
                Column {
                    key,
                    decode: DECODED.contains(&name),
                    raw_key,
                }
            })
            .collect();
        self.header_line = line_no;
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
            return Err((
                Reason::NoFieldsHeader,
                "no #Fields: header before this record, so its fields are unknown: route CloudFront log files whole, as CloudFront writes them (#Version, #Fields, then records), or choose another --format".into(),
            ));
        }
        let mut values = Tabs(Some(line));
        for (i, c) in self.columns.iter().enumerate() {
            let Some(text) = values.next() else {
                return Err(self.miscounted(i));
            };
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
        let more = values.count();
        if more > 0 {
            return Err(self.miscounted(self.columns.len() + more));
        }
        Ok(())
    }
}

impl Cloudfront {
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
            let mut fields = Vec::new();
            got.push(match f.record(line, &mut fields) {
                Ok(()) => {
                    let mut out = Vec::new();
                    super::super::object::write_object(&mut out, &fields);
                    Ok(serde_json::from_slice(&out).unwrap())
                }
                Err((reason, _)) => Err(reason),
            });
        }
        got
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
        // 33 fields plus the raw query.
        assert_eq!(v.as_object().unwrap().len(), 34);
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
            &serde_json::json!({"date": "2019-12-05", "sc_status": "200", "cs_uri_stem": "/c", "x_new": "v"})
        );
        assert_eq!(got[2], Err(Reason::MalformedRecord));
    }

    #[test]
    fn records_before_fields_and_odd_headers() {
        assert_eq!(objects("a\tb\n"), [Err(Reason::NoFieldsHeader)]);
        // Undecodable bytes keep the value as written; duplicate names are
        // made unique by position.
        let got = objects("#Fields: cs(User-Agent) date date\n%FF%20x\td1\td2\n");
        assert_eq!(
            got[0].as_ref().unwrap(),
            &serde_json::json!({"cs_user_agent": "%FF%20x", "date": "d1", "field_3": "d2"})
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
            assert_eq!(object.len(), names, "{header}: {object:?}");
        }
    }
}
