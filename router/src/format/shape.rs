//! Field shapes: what the value of a documented access-log field can be,
//! and the `timestamp` every access-log object carries.
//!
//! A space-separated line whose fields split plausibly can still have them
//! in the wrong places: a run of spaces splits one separator in two, a
//! writer drops a value mid-line, and every later value lands one field
//! over (`elb_status_code` = `0.086`, `request` = `200`). Routing such a
//! line would load wrong values into typed columns, or fail in the loader
//! far from the cause. So each documented field has a [`Shape`], checked
//! before the line is routed; a value that cannot be its field makes the
//! line `malformed_record`, naming the field and the value. The shapes are
//! loose on purpose (what AWS documents, with room for values it may add:
//! any HTTP method, any TLS cipher); their job is to catch shifted fields,
//! not to validate AWS.
//!
//! Times are parsed exactly, because each format's time becomes the
//! object's `timestamp`: RFC 3339 in UTC (`2019-02-06T00:01:57Z`), which
//! every warehouse reads as a timestamp, so that an analyst can write
//! `WHERE timestamp BETWEEN …` whatever the format wrote.

use std::borrow::Cow;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// The key of the derived time of every access-log object.
pub const TIMESTAMP: &str = "timestamp";

/// What a documented field's value may be (`-`, no value, is always
/// allowed except where the shape says it is required).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Anything (names, ids, user agents, URLs).
    Any,
    /// An unsigned integer (byte counts, milliseconds).
    Count,
    /// An integer, possibly negative (ALB's matched_rule_priority, `-1`
    /// when rules could not be evaluated).
    Integer,
    /// A decimal number, possibly negative (ALB's processing times, `-1`
    /// when it could not dispatch).
    Seconds,
    /// An HTTP status: three digits.
    Status,
    /// An IPv4 or IPv6 address.
    Ip,
    /// `ip:port` (an IPv6 address written bare, the port after its last
    /// `:`, as ALB writes it).
    IpPort,
    /// A request line: method, URL and protocol (`GET /a HTTP/1.1`), or
    /// ALB's `- - - ` for a request it could not read.
    Request,
    /// An S3 operation: `REST.GET.OBJECT`, `S3.EXPIRE.OBJECT`, ...
    Operation,
    /// One word of letters, digits and `-_.=/+:`: a protocol, a cipher,
    /// an ALB request type, a target group's ARN.
    Word,
    /// ALB's time, RFC 3339 in UTC (`2018-07-02T22:23:00.186641Z`);
    /// required.
    Rfc3339Utc,
    /// ALB's request_creation_time: the same, or `-`.
    Rfc3339UtcOrNone,
    /// S3's bracketed time, `06/Feb/2019:00:01:57 +0000`; required.
    S3Time,
}

impl Shape {
    /// What the shape is, in words, for a message naming the fix.
    pub fn describe(self) -> &'static str {
        match self {
            Shape::Any => "any value",
            Shape::Count => "a whole number (or -)",
            Shape::Integer => "an integer (or -)",
            Shape::Seconds => "a number of seconds (or -)",
            Shape::Status => "an HTTP status code of 3 digits (or -)",
            Shape::Ip => "an IP address (or -)",
            Shape::IpPort => "ip:port (or -)",
            Shape::Request => "a request: method, URL and protocol (or -)",
            Shape::Operation => "an S3 operation such as REST.GET.OBJECT (or -)",
            Shape::Word => "one word, without quotes or brackets (or -)",
            Shape::Rfc3339Utc => "a time such as 2018-07-02T22:23:00.186641Z",
            Shape::Rfc3339UtcOrNone => "a time such as 2018-07-02T22:23:00.186641Z (or -)",
            Shape::S3Time => "a time such as 06/Feb/2019:00:01:57 +0000",
        }
    }

    /// Whether `text` (as written, `-` included) can be a value of this
    /// shape.
    pub fn fits(self, text: &str) -> bool {
        if text == "-" {
            return !matches!(self, Shape::Rfc3339Utc | Shape::S3Time);
        }
        let b = text.as_bytes();
        match self {
            Shape::Any => true,
            Shape::Count => digits(b),
            Shape::Integer => digits(b.strip_prefix(b"-").unwrap_or(b)),
            Shape::Seconds => {
                let b = b.strip_prefix(b"-").unwrap_or(b);
                match b.iter().position(|&c| c == b'.') {
                    Some(i) => digits(&b[..i]) && digits(&b[i + 1..]),
                    None => digits(b),
                }
            }
            Shape::Status => b.len() == 3 && digits(b),
            Shape::Ip => ip(b),
            Shape::IpPort => match b.iter().rposition(|&c| c == b':') {
                Some(i) => ip(&b[..i]) && digits(&b[i + 1..]),
                None => false,
            },
            Shape::Request => request(text),
            Shape::Operation => {
                b.contains(&b'.')
                    && b.iter().all(|&c| {
                        c.is_ascii_uppercase() || c.is_ascii_digit() || b"._".contains(&c)
                    })
            }
            Shape::Word => b
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || b"-_.=/+:".contains(&c)),
            Shape::Rfc3339Utc | Shape::Rfc3339UtcOrNone => rfc3339_utc(text).is_some(),
            Shape::S3Time => s3_time(text).is_some(),
        }
    }
}

fn digits(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(u8::is_ascii_digit)
}

/// IPv4 or IPv6 characters (the shape of an address, not its validity:
/// enough to tell an address from a shifted time, status or name).
fn ip(b: &[u8]) -> bool {
    !b.is_empty()
        && b.iter().any(|&c| c == b'.' || c == b':')
        && b.iter()
            .all(|&c| c.is_ascii_hexdigit() || c == b'.' || c == b':')
}

/// `METHOD URL PROTOCOL`: a method of capitals, a URL (which may hold
/// spaces if a client sent them), and a protocol word; or ALB's `- - - `.
fn request(text: &str) -> bool {
    if text == "- - - " {
        return true;
    }
    let (Some(first), Some(last)) = (text.find(' '), text.rfind(' ')) else {
        return false;
    };
    let (method, protocol) = (&text[..first], &text[last + 1..]);
    first < last
        && !method.is_empty()
        && method
            .bytes()
            .all(|c| c.is_ascii_uppercase() || c == b'-' || c == b'_')
        && !protocol.is_empty()
        && protocol
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'/' || c == b'.' || c == b'-')
}

/// `HH:MM:SS` with an optional fraction: the time of day, if valid.
fn time_of_day(text: &str) -> Option<NaiveTime> {
    let b = text.as_bytes();
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let two = |i: usize| -> Option<u32> {
        let (h, l) = (b[i], b[i + 1]);
        (h.is_ascii_digit() && l.is_ascii_digit())
            .then(|| u32::from(h - b'0') * 10 + u32::from(l - b'0'))
    };
    let t = NaiveTime::from_hms_opt(two(0)?, two(3)?, two(6)?)?;
    match &b[8..] {
        [] => Some(t),
        [b'.', rest @ ..] if digits(rest) => Some(t),
        _ => None,
    }
}

/// `YYYY-MM-DD`, if a valid date.
fn date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = &b[r];
        digits(s).then(|| s.iter().fold(0, |a, &c| a * 10 + u32::from(c - b'0')))
    };
    NaiveDate::from_ymd_opt(n(0..4)? as i32, n(5..7)?, n(8..10)?)
}

/// ALB's time, `2018-07-02T22:23:00.186641Z`: checked, and already the
/// timestamp as it is.
pub fn rfc3339_utc(text: &str) -> Option<&str> {
    let body = text.strip_suffix('Z')?;
    let (d, t) = body.split_at_checked(10)?;
    date(d)?;
    time_of_day(t.strip_prefix('T')?)?;
    Some(text)
}

/// Checks CloudFront's `date` and `time` (UTC, `2019-12-04` and
/// `21:02:31`), whose timestamp is `{date}T{time}Z`; the error names the
/// field that is not what it should be, and what it should be.
pub fn date_and_time(d: &str, t: &str) -> Result<(), (&'static str, &'static str)> {
    date(d).ok_or(("date", "a date such as 2019-12-04"))?;
    time_of_day(t).ok_or(("time", "a time of day such as 21:02:31"))?;
    Ok(())
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// S3's time, `06/Feb/2019:00:01:57 +0000`, as the timestamp in UTC
/// (`2019-02-06T00:01:57Z`): S3 writes +0000, but the format carries an
/// offset, and a time at another one is converted, not relabelled.
pub fn s3_time(text: &str) -> Option<String> {
    let b = text.as_bytes();
    // dd/Mon/yyyy:hh:mm:ss +hhmm
    if b.len() != 26 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[20] != b' ' {
        return None;
    }
    let month = MONTHS.iter().position(|m| m.as_bytes() == &b[3..6])? as u32 + 1;
    let num = |s: &[u8]| -> Option<u32> {
        digits(s).then(|| s.iter().fold(0, |a, &c| a * 10 + u32::from(c - b'0')))
    };
    let day = NaiveDate::from_ymd_opt(num(&b[7..11])? as i32, month, num(&b[0..2])?)?;
    let at = NaiveDateTime::new(day, time_of_day(&text[12..20])?);
    let sign = match b[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (oh, om) = (num(&b[22..24])?, num(&b[24..26])?);
    if oh > 23 || om > 59 {
        return None;
    }
    let offset = chrono::Duration::minutes(sign * i64::from(oh * 60 + om));
    let utc = at.checked_sub_signed(offset)?;
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        utc.year(),
        utc.month(),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second()
    ))
}

/// How a format's time becomes its `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeField {
    /// The field at this position is RFC 3339 in UTC already (ALB).
    Rfc3339Utc(usize),
    /// The field at this position is S3's bracketed time.
    S3(usize),
}

impl TimeField {
    /// The timestamp of a record whose time field reads `text` (its shape
    /// already checked, so `None` only for a value that passed no check).
    pub fn timestamp<'l>(self, text: &'l str) -> Option<Cow<'l, str>> {
        match self {
            TimeField::Rfc3339Utc(_) => rfc3339_utc(text).map(Cow::Borrowed),
            TimeField::S3(_) => s3_time(text).map(Cow::Owned),
        }
    }

    pub fn position(self) -> usize {
        match self {
            TimeField::Rfc3339Utc(p) | TimeField::S3(p) => p,
        }
    }
}

/// A value as a message shows it: quoted, and cut to 80 characters (a
/// hostile line may hold a field of megabytes).
pub fn shown(value: &str) -> String {
    match value.char_indices().nth(80) {
        Some((i, _)) => format!("{:?}…", &value[..i]),
        None => format!("{value:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        use Shape::*;
        let fits = [
            (Count, "0"),
            (Count, "123"),
            (Count, "-"),
            (Integer, "-1"),
            (Integer, "0"),
            (Seconds, "0.000073"),
            (Seconds, "-1"),
            (Seconds, "12"),
            (Status, "200"),
            (Status, "000"),
            (Ip, "192.0.2.3"),
            (Ip, "2001:db8::1"),
            (IpPort, "192.168.131.39:2817"),
            (IpPort, "2001:db8:85a3:0:0:8a2e:370:7334:2817"),
            (IpPort, "-"),
            (Request, "GET http://www.example.com:80/ HTTP/1.1"),
            (Request, "GET /a b HTTP/1.1"),
            (Request, "- - - "),
            (Request, "-"),
            (Operation, "REST.GET.OBJECT"),
            (Operation, "S3.EXPIRE.OBJECT"),
            (Word, "TLSv1.2"),
            (Word, "ECDHE-RSA-AES128-GCM-SHA256"),
            (Rfc3339Utc, "2018-07-02T22:23:00.186641Z"),
            (Rfc3339Utc, "2018-07-02T22:23:00Z"),
            (Rfc3339UtcOrNone, "-"),
            (S3Time, "06/Feb/2019:00:01:57 +0000"),
            (S3Time, "06/Feb/2019:00:01:57 -0700"),
        ];
        for (shape, text) in fits {
            assert!(shape.fits(text), "{shape:?} {text:?}");
        }
        let misfits = [
            (Count, ""),
            (Count, "1.5"),
            (Count, "-1"),
            (Integer, "--1"),
            (Integer, "1.0"),
            (Count, "\"-\""),
            (Seconds, "0.0.1"),
            (Seconds, "."),
            (Status, "0.086"),
            (Status, "2000"),
            (Ip, "REQ1"),
            (IpPort, "192.168.131.39"),
            (IpPort, "2018-07-02T22:23:00.186641Z"),
            (Request, "200"),
            (Request, "GET /"),
            (Request, "curl/7.46.0"),
            (Operation, "a.txt"),
            (Word, "GET / HTTP/1.1"),
            (Rfc3339Utc, "-"),
            (Rfc3339Utc, "xxx"),
            (Rfc3339Utc, "2018-07-02T22:23:00+01:00"),
            (Rfc3339Utc, "2018-02-30T22:23:00Z"),
            (Rfc3339Utc, "2018-07-02T24:00:00Z"),
            (S3Time, "-"),
            (S3Time, "06/Fev/2019:00:01:57 +0000"),
            (S3Time, "06/Feb/2019 00:01:57 +0000"),
        ];
        for (shape, text) in misfits {
            assert!(!shape.fits(text), "{shape:?} {text:?}");
        }
    }

    #[test]
    fn times_become_utc_timestamps() {
        let check = |text: &str, expected: Option<&str>| {
            assert_eq!(s3_time(text).as_deref(), expected, "{text}");
        };
        check("06/Feb/2019:00:01:57 +0000", Some("2019-02-06T00:01:57Z"));
        // West of UTC: later in UTC, across midnight, month and year.
        check("31/Dec/2019:20:30:00 -0700", Some("2020-01-01T03:30:00Z"));
        // East of UTC: earlier, across a leap day.
        check("01/Mar/2020:01:00:00 +0530", Some("2020-02-29T19:30:00Z"));
        check("29/Feb/2019:00:00:00 +0000", None);
        check("06/Feb/2019:00:01:57 +2400", None);
        assert_eq!(date_and_time("2019-12-04", "23:59:59"), Ok(()));
        assert_eq!(
            date_and_time("2019-12-04", "7:00:00").unwrap_err().0,
            "time"
        );
        assert_eq!(
            date_and_time("04/12/2019", "07:00:00").unwrap_err().0,
            "date"
        );
        assert_eq!(
            rfc3339_utc("2018-07-02T22:23:00.186641Z"),
            Some("2018-07-02T22:23:00.186641Z")
        );
    }

    #[test]
    fn messages_show_values_cut() {
        assert_eq!(shown("0.086"), "\"0.086\"");
        let long = "x".repeat(1000);
        assert_eq!(shown(&long).chars().count(), 80 + 3);
    }
}
