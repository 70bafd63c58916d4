//! `s3_access`: Amazon S3 server access logs.
//!
//! Space-separated, in the documented order (AWS, "Amazon S3 server access
//! log format"): the time as `[06/Feb/2019:00:01:57 +0000]`, Request-URI,
//! Referer and User-Agent in quotes (S3 does not escape a `"` inside them,
//! see [`super::spaced`]), `-` or `"-"` for no value. The time is kept as
//! written, without its brackets. `Key` is URL-encoded by S3 and is decoded
//! (once, which is lossless when the result is UTF-8; otherwise it is kept
//! as written). The Request-URI is the request line as received and is
//! kept as is (a payload inside it is decoded by [`super::payload`]).
//! Fields that S3 appends after this list are kept as `field_27`, ...;
//! older lines that end after User-Agent have the later keys as `null`.
//! Each value is checked against its field's [`Shape`] before the line is
//! routed (a line whose values have shifted is quarantined, see
//! [`super::shape`]); `timestamp` is `Time` converted to UTC.
//!
//! Keys: bucket_owner, bucket, time, remote_ip, requester, request_id,
//! operation, key, request_uri, http_status, error_code, bytes_sent,
//! object_size, total_time, turn_around_time, referer, user_agent,
//! version_id, host_id, signature_version, cipher_suite,
//! authentication_type, host_header, tls_version, access_point_arn,
//! acl_required.

use super::shape::{Shape, TimeField};
use super::spaced::Documented;
use super::{Field, Format, Reject};

/// The documented fields, in order, as AWS names them.
pub const FIELDS: [&str; 26] = [
    "Bucket Owner",
    "Bucket",
    "Time",
    "Remote IP",
    "Requester",
    "Request ID",
    "Operation",
    "Key",
    "Request-URI",
    "HTTP status",
    "Error Code",
    "Bytes Sent",
    "Object Size",
    "Total Time",
    "Turn-Around Time",
    "Referer",
    "User-Agent",
    "Version Id",
    "Host Id",
    "Signature Version",
    "Cipher Suite",
    "Authentication Type",
    "Host Header",
    "TLS version",
    "Access Point ARN",
    "aclRequired",
];

/// Position of `Key`, which S3 URL-encodes.
const KEY: usize = 7;

/// Positions of the quoted fields: Request-URI, Referer, User-Agent.
const QUOTED: [usize; 3] = [8, 15, 16];

/// What each documented field can be (see [`super::shape`]).
const SHAPES: [Shape; 26] = {
    use Shape::*;
    [
        Any,       // Bucket Owner
        Any,       // Bucket
        S3Time,    // Time
        Ip,        // Remote IP
        Any,       // Requester
        Word,      // Request ID
        Operation, // Operation
        Any,       // Key
        Request,   // Request-URI
        Status,    // HTTP status
        Word,      // Error Code
        Count,     // Bytes Sent
        Count,     // Object Size
        Count,     // Total Time
        Count,     // Turn-Around Time
        Any,       // Referer
        Any,       // User-Agent
        Any,       // Version Id
        Any,       // Host Id
        Word,      // Signature Version
        Word,      // Cipher Suite
        Word,      // Authentication Type
        Any,       // Host Header
        Word,      // TLS version
        Any,       // Access Point ARN
        Any,       // aclRequired
    ]
};

pub struct S3Access(Documented);

impl S3Access {
    pub fn new() -> Self {
        Self(Documented {
            name: "an S3 server access log line",
            keys: super::keys(&FIELDS),
            // The oldest logs end with User-Agent.
            min: 17,
            decoded: &[KEY],
            quoted: &QUOTED,
            always_quoted: &[],
            shapes: &SHAPES,
            time: TimeField::S3(2),
        })
    }
}

#[cfg(test)]
impl S3Access {
    /// The documented field count and quoted positions, for tests.
    pub(crate) fn layout(&self) -> (usize, &'static [usize]) {
        (self.0.keys.len(), self.0.quoted)
    }
}

impl Default for S3Access {
    fn default() -> Self {
        Self::new()
    }
}

impl Format for S3Access {
    fn record<'f, 'l>(&'f self, line: &'l str, out: &mut Vec<Field<'f, 'l>>) -> Result<(), Reject> {
        self.0.record(line, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(line: &str) -> serde_json::Value {
        let f = S3Access::new();
        let mut fields = Vec::new();
        f.record(line, &mut fields).unwrap();
        let mut out = Vec::new();
        super::super::object::write_object(&mut out, &fields);
        serde_json::from_slice(&out).unwrap()
    }

    const EXAMPLE: &str =
        include_str!("../../../tests/data/logs/s3-access-2019-02-06-00-01-57-EXAMPLE");

    #[test]
    fn quoted_positions() {
        let names: Vec<&str> = QUOTED.iter().map(|&i| FIELDS[i]).collect();
        assert_eq!(names, ["Request-URI", "Referer", "User-Agent"]);
    }

    #[test]
    fn the_documented_example() {
        let v = object(EXAMPLE.trim_end());
        assert_eq!(v["time"], "06/Feb/2019:00:01:57 +0000");
        assert_eq!(v["operation"], "REST.PUT.OBJECT");
        assert_eq!(
            v["request_uri"],
            "PUT /DOC-EXAMPLE-BUCKET1/s3-dg.pdf HTTP/1.1"
        );
        assert_eq!(v["referer"], serde_json::Value::Null);
        assert_eq!(v["error_code"], serde_json::Value::Null);
        assert_eq!(v["user_agent"], "S3Console/0.4");
        assert_eq!(v["tls_version"], "TLSV1.2");
        assert_eq!(v["acl_required"], "Yes");
        assert_eq!(v["timestamp"], "2019-02-06T00:01:57Z");
        assert_eq!(v.as_object().unwrap().len(), 27);
    }

    #[test]
    fn older_newer_and_odd_lines() {
        let head = "owner bucket [06/Feb/2019:00:01:57 +0000] 192.0.2.3 - REQ REST.GET.OBJECT a%20b.txt \"GET /bucket/a%20b.txt HTTP/1.1\" 200 - 10 10 1 1";
        let old = object(&format!("{head} \"-\" \"Mozilla \"quoted\" ua\""));
        assert_eq!(old["user_agent"], "Mozilla \"quoted\" ua");
        assert_eq!(old["key"], "a b.txt");
        assert_eq!(old["requester"], serde_json::Value::Null);
        assert_eq!(old["acl_required"], serde_json::Value::Null);
        assert_eq!(old.as_object().unwrap().len(), 27);
        let tail = " - host SigV4 c AuthHeader h TLSv1.3 - - extra1 extra2";
        let new = object(&format!("{head} \"-\" \"ua\"{tail}"));
        assert_eq!(new["field_27"], "extra1");
        assert_eq!(new["field_28"], "extra2");
        let f = S3Access::new();
        let mut fields = Vec::new();
        let (reason, detail) = f.record("not an access log", &mut fields).unwrap_err();
        assert_eq!(reason, crate::reason::Reason::MalformedRecord);
        assert!(detail.contains("--format"), "{detail}");
    }
}
