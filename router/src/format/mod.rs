//! Line formats: how a non-JSON log line becomes one JSON object.
//!
//! The router's output is always JSON lines, so the loader, schemas, infer
//! and replay never learn about access-log formats: each format here only
//! splits a line into named string fields ([`Format::record`]), and
//! [`Converter`] writes them as one JSON object, takes the event type from
//! it, and optionally unpacks a payload carried inside one field
//! ([`payload`]). A format may also write its object itself in one pass
//! ([`Format::write_record`]), the same bytes, faster.
//!
//! `json` is not a [`Format`]: JSON lines are routed byte for byte as read
//! (zero copy), exactly as before formats existed; see
//! [`crate::lines::LineRouter`]. Adding a format is one new file with a
//! [`Format`] implementation and one arm in [`Converter::new`].
//!
//! Keys are the format's documented field names through
//! [`logrouter::normalize::normalize_key`] (the event-type normalisation),
//! values are JSON strings, and a field written as `-` (or `"-"`) is `null`.
//! The object is written straight into a byte buffer ([`json`]): no
//! `serde_json::Value` per line, since this is the hot loop.

use std::borrow::Cow;

use logrouter::config::{LineFormat, PayloadConfig};

use crate::reason::Reason;

pub mod alb;
pub mod cloudfront;
pub mod json;
pub mod object;
pub mod payload;
pub mod s3_access;
pub mod shape;
pub mod spaced;

/// Why a line could not be converted: its quarantine reason and a detail
/// that names the fix.
pub type Reject = (Reason, String);

/// One field of a converted line: its key and its value (`None`: `null`).
/// Keys borrow from the format (or are made for trailing fields), values
/// from the line (or are owned once percent-decoded).
pub type Field<'f, 'l> = (Cow<'f, str>, Option<Cow<'l, str>>);

/// One line format. A format keeps per-object state (CloudFront's current
/// `#Fields` header), so each source gets a fresh one.
pub trait Format: Send {
    /// Whether the line is a header rather than a record. Headers are given
    /// to [`Format::header`] before any replay filter looks at the line, so
    /// a selective replay still knows the fields, and they are counted as
    /// blank lines: they carry no event, and counting them so keeps
    /// `read = routed + quarantined + blank + filtered` and the manifest
    /// unchanged.
    fn is_header(&self, _line: &[u8]) -> bool {
        false
    }

    /// Reads a header line (only called when [`Format::is_header`] says so).
    fn header(&mut self, _line: &str, _line_no: u64) -> Result<(), Reject> {
        Ok(())
    }

    /// Splits one record into its fields, in order, with unique keys.
    fn record<'f, 'l>(&'f self, line: &'l str, out: &mut Vec<Field<'f, 'l>>) -> Result<(), Reject>;

    /// Writes one record as its JSON object into `out` (empty) and returns
    /// the value of its field `type_key`. The default is [`fields_object`]
    /// ([`Format::record`]'s fields, written); a format may do the same in
    /// one pass over the line instead, byte for byte (CloudFront, whose 33
    /// fields a line made the split and the write the router's hottest
    /// loop: its tests compare the two on every kind of value).
    fn write_record<'f, 'l>(
        &'f self,
        line: &'l str,
        type_key: Option<&str>,
        fields: &mut Vec<Field<'f, 'l>>,
        out: &mut Vec<u8>,
    ) -> Result<Option<Cow<'l, str>>, Reject> {
        fields_object(self, line, type_key, fields, out)
    }
}

/// A record's object through its fields: split it into `fields`, write
/// them, find the type.
pub fn fields_object<'f, 'l, F: Format + ?Sized>(
    format: &'f F,
    line: &'l str,
    type_key: Option<&str>,
    fields: &mut Vec<Field<'f, 'l>>,
    out: &mut Vec<u8>,
) -> Result<Option<Cow<'l, str>>, Reject> {
    format.record(line, fields)?;
    object::write_object(out, fields);
    Ok(type_key.and_then(|key| find(fields, key)))
}

/// The key of a field that a format's documentation does not name (a field
/// appended after this code was written): `field_N`, N counted from 1, so
/// it is kept, never dropped, under a name that is stable across re-runs.
pub fn extra_key(position: usize) -> Cow<'static, str> {
    Cow::Owned(format!("field_{position}"))
}

/// `-` is how every access-log format writes "no value".
pub fn value(text: &str) -> Option<Cow<'_, str>> {
    (text != "-").then_some(Cow::Borrowed(text))
}

/// Normalised keys of a documented field list.
pub fn keys(documented: &[&str]) -> Vec<String> {
    documented
        .iter()
        .map(|f| logrouter::normalize::normalize_key(f).expect("documented names normalise"))
        .collect()
}

/// Converts the lines of one source: its format, plus an optional payload.
pub struct Converter {
    format: Box<dyn Format>,
    payload: Option<payload::Payload>,
    /// The fields' vector, kept empty between lines so that a line does not
    /// allocate one (its borrows end with the line: see [`recycle`]).
    spare: Vec<Field<'static, 'static>>,
}

/// An empty vector of any borrows, in the allocation of `v` (the standard
/// library collects in place between element types of one layout; `v` is
/// emptied first, so no element is ever converted).
fn recycle<'a, 'b, 'c, 'd>(mut v: Vec<Field<'a, 'b>>) -> Vec<Field<'c, 'd>> {
    v.clear();
    v.into_iter().map(|_| unreachable!("emptied")).collect()
}

impl Converter {
    /// A converter for `format`; `None` for `json` (routed as read) and for
    /// `auto`, which the line loop resolves on the object's first line.
    pub fn new(format: LineFormat, payload: Option<&PayloadConfig>) -> Option<Self> {
        let format: Box<dyn Format> = match format {
            LineFormat::Json | LineFormat::Auto => return None,
            LineFormat::Cloudfront => Box::new(cloudfront::Cloudfront::default()),
            LineFormat::S3Access => Box::new(s3_access::S3Access::new()),
            LineFormat::Alb => Box::new(alb::Alb::new()),
        };
        Some(Self {
            format,
            payload: payload.map(payload::Payload::new),
            spare: Vec::with_capacity(40),
        })
    }

    /// `auto`: CloudFront standard logs start with `#Version:`; anything
    /// else is taken for JSON lines.
    pub fn auto(first_line: &[u8], payload: Option<&PayloadConfig>) -> Option<Self> {
        Self::new(json::auto_detect(first_line), payload)
    }

    pub fn is_header(&self, line: &[u8]) -> bool {
        self.format.is_header(line)
    }

    pub fn header(&mut self, line: &str, line_no: u64) -> Result<(), Reject> {
        self.format.header(line, line_no)
    }

    /// Converts one record into `out` (cleared first) and looks the type up
    /// at `type_path` (a JSON pointer's segments) in the object it becomes.
    pub fn record<'l>(
        &mut self,
        line: &'l str,
        type_path: &[String],
        out: &mut Vec<u8>,
    ) -> Result<Option<Cow<'l, str>>, Reject> {
        let mut fields: Vec<Field<'_, 'l>> = recycle(std::mem::take(&mut self.spare));
        let found = (|| {
            out.clear();
            match &self.payload {
                None => {
                    let type_key = match type_path {
                        [key] => Some(key.as_str()),
                        _ => None,
                    };
                    self.format.write_record(line, type_key, &mut fields, out)
                }
                Some(p) => {
                    self.format.record(line, &mut fields)?;
                    p.write(&fields, type_path, out)
                }
            }
        })();
        keep(&mut self.spare, fields);
        found
    }
}

/// Keeps the fields' vector for the next line, unless a hostile line of a
/// million fields grew it: later lines must not hold that memory.
fn keep(spare: &mut Vec<Field<'static, 'static>>, fields: Vec<Field<'_, '_>>) {
    if fields.capacity() <= 256 {
        *spare = recycle(fields);
    }
}

/// The value of the field `key`, if present and not null (cloning a
/// borrowed value is free).
pub fn find<'l>(fields: &[Field<'_, 'l>], key: &str) -> Option<Cow<'l, str>> {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Converts each line of `input` as `format` and describes what it
    /// became, one line each: `ok` with the values of `keys` (and the
    /// timestamp), or the quarantine reason and its message.
    fn check(format: LineFormat, keys: &[&str], input: &str, expected: &str) {
        let mut c = Converter::new(format, None).expect("an access-log format");
        let mut got = String::new();
        let mut out = Vec::new();
        for (n, line) in input.lines().enumerate() {
            if c.is_header(line.as_bytes()) {
                c.header(line, n as u64 + 1).unwrap();
                continue;
            }
            match c.record(line, &[], &mut out) {
                Ok(_) => {
                    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
                    got.push_str(&format!("{}: ok timestamp={}", n + 1, v["timestamp"]));
                    for k in keys {
                        got.push_str(&format!(" {k}={}", v[k]));
                    }
                }
                Err((reason, detail)) => {
                    got.push_str(&format!("{}: {reason}: {detail}", n + 1));
                }
            }
            got.push('\n');
        }
        let got = got.replace(SHIFTED, " {shifted}");
        assert_eq!(got.trim(), expected.trim(), "\n--- got ---\n{got}");
    }

    const ALB: &str = include_str!("../../../tests/data/logs/alb-example.log");
    const S3: &str = include_str!("../../../tests/data/logs/s3-access-2019-02-06-00-01-57-EXAMPLE");

    #[test]
    fn alb_fields_that_would_shift_are_named_not_routed() {
        let line = ALB.trim_end();
        let lines = [
            line.to_owned(),
            // A run of spaces after the first field.
            line.replacen("http ", "http   ", 1),
            // The user agent missing mid-line.
            line.replacen("\"curl/7.46.0\" ", "", 1),
            // The load balancer's name missing.
            line.replacen("app/my-loadbalancer/50dc6c495c0c9188 ", "", 1),
            // A time that does not parse.
            line.replacen("2018-07-02T22:23:00.186641Z", "xxx", 1),
            // A request without its protocol.
            line.replacen(" HTTP/1.1\"", "\"", 1),
            // The TLS cipher missing: the trace id lands, quoted, where
            // the target group is never quoted.
            line.replacen(" - - arn:", " - arn:", 1),
            // Rules that could not be evaluated: priority -1, as AWS
            // documents.
            line.replacen("\"-\" 0 2018", "\"-\" -1 2018", 1),
        ];
        check(
            LineFormat::Alb,
            &["time", "elb_status_code", "matched_rule_priority"],
            &lines.join("\n"),
            r#"
1: ok timestamp="2018-07-02T22:23:00.186641Z" time="2018-07-02T22:23:00.186641Z" elb_status_code="200" matched_rule_priority="0"
2: malformed_record: the line does not read as an ALB access log line: field 2 (time) is empty, where the format writes - for no value: a run of spaces split one separator in two; {shifted}
3: malformed_record: the line does not read as an ALB access log line: request is "GET http://www.example.com:80/ HTTP/1.1\" - - arn:aws:elasticloadbalancing:us-eas"…, which is not a request: method, URL and protocol (or -); {shifted}
4: malformed_record: the line does not read as an ALB access log line: target_port is "0.000", which is not ip:port (or -); {shifted}
5: malformed_record: the line does not read as an ALB access log line: time is "xxx", which is not a time such as 2018-07-02T22:23:00.186641Z; {shifted}
6: malformed_record: the line does not read as an ALB access log line: request is "GET http://www.example.com:80/", which is not a request: method, URL and protocol (or -); {shifted}
7: malformed_record: the line does not read as an ALB access log line: user_agent runs to the end of the line, "curl/7.46.0\" - arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/m"…, and leaves 14 fields where every such line has 18: no quote in it closes a field that leaves the rest of the line well-formed; {shifted}
8: ok timestamp="2018-07-02T22:23:00.186641Z" time="2018-07-02T22:23:00.186641Z" elb_status_code="200" matched_rule_priority="-1"
"#,
        );
    }

    /// The end of every message about a field that cannot be its own
    /// (`{shifted}` in the expected texts).
    const SHIFTED: &str = " its fields have shifted (a value missing, split or added mid-line) or it was edited, and it is not routed with values under the wrong names (check the line, and --format / route.format)";

    #[test]
    fn s3_times_become_utc_and_shifted_fields_are_named() {
        let line = S3.trim_end();
        let lines = [
            line.to_owned(),
            line.replacen("+0000", "-0700", 1),
            line.replacen(
                "[06/Feb/2019:00:01:57 +0000]",
                "[31/Dec/2019:20:30:00 -0700]",
                1,
            ),
            line.replacen(
                "[06/Feb/2019:00:01:57 +0000]",
                "[01/Mar/2020:01:00:00 +0530]",
                1,
            ),
            line.replacen("06/Feb/2019", "2019-02-06", 1),
            // The owner missing: every value one field to the left.
            line.split_once(' ').unwrap().1.to_owned(),
            // A run of spaces before the status.
            line.replacen("\" 200 ", "\"  200 ", 1),
            // The oldest lines end after the user agent.
            line.split(" - 10S62").next().unwrap().to_owned(),
        ];
        check(
            LineFormat::S3Access,
            &["time", "http_status", "operation"],
            &lines.join("\n"),
            r#"
1: ok timestamp="2019-02-06T00:01:57Z" time="06/Feb/2019:00:01:57 +0000" http_status="200" operation="REST.PUT.OBJECT"
2: ok timestamp="2019-02-06T07:01:57Z" time="06/Feb/2019:00:01:57 -0700" http_status="200" operation="REST.PUT.OBJECT"
3: ok timestamp="2020-01-01T03:30:00Z" time="31/Dec/2019:20:30:00 -0700" http_status="200" operation="REST.PUT.OBJECT"
4: ok timestamp="2020-02-29T19:30:00Z" time="01/Mar/2020:01:00:00 +0530" http_status="200" operation="REST.PUT.OBJECT"
5: malformed_record: the line does not read as an S3 server access log line: time is "2019-02-06:00:01:57 +0000", which is not a time such as 06/Feb/2019:00:01:57 +0000; {shifted}
6: malformed_record: the line does not read as an S3 server access log line: time is "192.0.2.3", which is not a time such as 06/Feb/2019:00:01:57 +0000; {shifted}
7: malformed_record: the line does not read as an S3 server access log line: field 10 (http_status) is empty, where the format writes - for no value: a run of spaces split one separator in two; {shifted}
8: ok timestamp="2019-02-06T00:01:57Z" time="06/Feb/2019:00:01:57 +0000" http_status="200" operation="REST.PUT.OBJECT"
"#,
        );
    }

    #[test]
    fn cloudfront_timestamps_trailing_tab_and_midnight() {
        let input = "#Version: 1.0\n#Fields: date time x-edge-location sc-status cs-uri-stem\n\
            2019-12-04\t23:59:59\tLAX1\t200\t/a\n\
            2019-12-05\t00:00:00\tLAX1\t200\t/b\n\
            2019-12-05\t00:00:01.5\tLAX1\t200\t/c\t\n\
            2019-12-05\t00:00:02\tLAX1\t200\t/d\t\t\n\
            2019-12-05\t00:00:03\tLAX1\t200\t/e\tx\n\
            2019-12-05\t24:00:00\tLAX1\t200\t/f\n\
            2019-02-29\t00:00:00\tLAX1\t200\t/g\n\
            -\t00:00:00\tLAX1\t200\t/h\n\
            #Fields: x-edge-location sc-status\n\
            LAX1\t200\n\
            #Fields: timestamp date time\n\
            1575500400.123\t2019-12-05\t00:00:00\n";
        check(
            LineFormat::Cloudfront,
            &["date", "time", "cs_uri_stem"],
            input,
            r#"
3: ok timestamp="2019-12-04T23:59:59Z" date="2019-12-04" time="23:59:59" cs_uri_stem="/a"
4: ok timestamp="2019-12-05T00:00:00Z" date="2019-12-05" time="00:00:00" cs_uri_stem="/b"
5: ok timestamp="2019-12-05T00:00:01.5Z" date="2019-12-05" time="00:00:01.5" cs_uri_stem="/c"
6: malformed_record: 7 tab-separated values, but the #Fields: header on line 2 names 5: the record is cut or the file was edited (CloudFront writes one value per field, - when empty)
7: malformed_record: 6 tab-separated values, but the #Fields: header on line 2 names 5: the record is cut or the file was edited (CloudFront writes one value per field, - when empty)
8: malformed_record: time is "24:00:00", which is not a time of day such as 21:02:31 (UTC, as CloudFront writes it); the #Fields: header on line 2 names the columns, so the record was edited or is not a CloudFront log (check the line, and --format / route.format)
9: malformed_record: date is "2019-02-29", which is not a date such as 2019-12-04 (UTC, as CloudFront writes it); the #Fields: header on line 2 names the columns, so the record was edited or is not a CloudFront log (check the line, and --format / route.format)
10: malformed_record: date is "-", which is not a date such as 2019-12-04 (UTC, as CloudFront writes it); the #Fields: header on line 2 names the columns, so the record was edited or is not a CloudFront log (check the line, and --format / route.format)
12: ok timestamp=null date=null time=null cs_uri_stem=null
14: ok timestamp="1575500400.123" date="2019-12-05" time="00:00:00" cs_uri_stem=null
"#,
        );
    }

    /// The fields' vector of one line is the next line's, allocation and
    /// all.
    #[test]
    fn a_recycled_vector_keeps_its_allocation() {
        let line = String::from("a b");
        let mut v: Vec<Field<'_, '_>> = Vec::with_capacity(40);
        v.push((Cow::Borrowed("k"), Some(Cow::Borrowed(&line[..1]))));
        let at = v.as_ptr() as usize;
        let again: Vec<Field<'static, 'static>> = recycle(v);
        assert_eq!((again.len(), again.capacity()), (0, 40));
        assert_eq!(again.as_ptr() as usize, at);
    }

    #[test]
    fn keys_go_through_the_one_normalisation() {
        assert_eq!(
            keys(&[
                "cs(User-Agent)",
                "x-edge-location",
                "Request-URI",
                "aclRequired",
                "client:port"
            ]),
            [
                "cs_user_agent",
                "x_edge_location",
                "request_uri",
                "acl_required",
                "client_port"
            ]
        );
    }
}
