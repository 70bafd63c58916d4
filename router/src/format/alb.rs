//! `alb`: Application Load Balancer access logs.
//!
//! Space-separated, in the documented order (AWS, "Access logs for your
//! Application Load Balancer"), quoted fields (`request`, `user_agent`,
//! `trace_id`, ...) split as in [`super::spaced`], `-` or `"-"` for no
//! value; values are kept as written (ALB encodes nothing). Fields that AWS
//! appends after this list are kept as `field_31`, ...; lines of older
//! load balancers that end early (after `trace_id` at the earliest) have
//! the later keys as `null`. Each value is checked against its field's
//! [`Shape`] first, and `request` and `user_agent` must be in quotes, as
//! ALB always writes them: a line whose values have shifted is
//! quarantined, never routed (see [`super::shape`]). `timestamp` is `time`,
//! which is RFC 3339 in UTC already.
//!
//! Keys: type, time, elb, client_port, target_port,
//! request_processing_time, target_processing_time,
//! response_processing_time, elb_status_code, target_status_code,
//! received_bytes, sent_bytes, request, user_agent, ssl_cipher,
//! ssl_protocol, target_group_arn, trace_id, domain_name, chosen_cert_arn,
//! matched_rule_priority, request_creation_time, actions_executed,
//! redirect_url, error_reason, target_port_list, target_status_code_list,
//! classification, classification_reason, conn_trace_id.

use super::shape::{Shape, TimeField};
use super::spaced::Documented;
use super::{Field, Format, Reject};

/// The documented fields, in order, as AWS names them.
pub const FIELDS: [&str; 30] = [
    "type",
    "time",
    "elb",
    "client:port",
    "target:port",
    "request_processing_time",
    "target_processing_time",
    "response_processing_time",
    "elb_status_code",
    "target_status_code",
    "received_bytes",
    "sent_bytes",
    "request",
    "user_agent",
    "ssl_cipher",
    "ssl_protocol",
    "target_group_arn",
    "trace_id",
    "domain_name",
    "chosen_cert_arn",
    "matched_rule_priority",
    "request_creation_time",
    "actions_executed",
    "redirect_url",
    "error_reason",
    "target:port_list",
    "target_status_code_list",
    "classification",
    "classification_reason",
    "conn_trace_id",
];

/// Positions of the fields ALB writes in quotes: request, user_agent,
/// trace_id, domain_name, chosen_cert_arn, then actions_executed to the
/// end (conn_trace_id too, which some writers quote).
const QUOTED: [usize; 13] = [12, 13, 17, 18, 19, 22, 23, 24, 25, 26, 27, 28, 29];

/// What each documented field can be (see [`super::shape`]).
const SHAPES: [Shape; 30] = {
    use Shape::*;
    [
        Word,             // type
        Rfc3339Utc,       // time
        Any,              // elb
        IpPort,           // client:port
        IpPort,           // target:port
        Seconds,          // request_processing_time
        Seconds,          // target_processing_time
        Seconds,          // response_processing_time
        Status,           // elb_status_code
        Status,           // target_status_code
        Count,            // received_bytes
        Count,            // sent_bytes
        Request,          // request
        Any,              // user_agent
        Word,             // ssl_cipher
        Word,             // ssl_protocol
        Word,             // target_group_arn
        Any,              // trace_id
        Any,              // domain_name
        Any,              // chosen_cert_arn
        Integer,          // matched_rule_priority
        Rfc3339UtcOrNone, // request_creation_time
        Any,              // actions_executed
        Any,              // redirect_url
        Any,              // error_reason
        Any,              // target:port_list
        Any,              // target_status_code_list
        Any,              // classification
        Any,              // classification_reason
        Any,              // conn_trace_id
    ]
};

/// `request` and `user_agent`, which every ALB line has in quotes.
const ALWAYS_QUOTED: [usize; 2] = [12, 13];

pub struct Alb(Documented);

impl Alb {
    pub fn new() -> Self {
        Self(Documented {
            name: "an ALB access log line",
            keys: super::keys(&FIELDS),
            // ALB has written at least the 18 fields up to trace_id since
            // its launch (2016). A line that ends earlier is cut, or a
            // quoted field ran to its end: a value missing after the user
            // agent leaves no plausible close for its quote (see
            // `super::spaced`), and it would swallow the rest of the line.
            min: 18,
            decoded: &[],
            quoted: &QUOTED,
            always_quoted: &ALWAYS_QUOTED,
            shapes: &SHAPES,
            time: TimeField::Rfc3339Utc(1),
        })
    }
}

impl Default for Alb {
    fn default() -> Self {
        Self::new()
    }
}

impl Format for Alb {
    fn record<'f, 'l>(&'f self, line: &'l str, out: &mut Vec<Field<'f, 'l>>) -> Result<(), Reject> {
        self.0.record(line, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../tests/data/logs/alb-example.log");

    #[test]
    fn quoted_positions() {
        let names: Vec<&str> = QUOTED.iter().map(|&i| FIELDS[i]).collect();
        assert_eq!(
            names,
            [
                "request",
                "user_agent",
                "trace_id",
                "domain_name",
                "chosen_cert_arn",
                "actions_executed",
                "redirect_url",
                "error_reason",
                "target:port_list",
                "target_status_code_list",
                "classification",
                "classification_reason",
                "conn_trace_id"
            ]
        );
    }

    #[test]
    fn the_documented_example() {
        let f = Alb::new();
        let mut fields = Vec::new();
        f.record(EXAMPLE.trim_end(), &mut fields).unwrap();
        let mut out = Vec::new();
        super::super::object::write_object(&mut out, &fields);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["type"], "http");
        assert_eq!(v["client_port"], "192.168.131.39:2817");
        assert_eq!(v["request"], "GET http://www.example.com:80/ HTTP/1.1");
        assert_eq!(v["user_agent"], "curl/7.46.0");
        assert_eq!(v["ssl_cipher"], serde_json::Value::Null);
        assert_eq!(v["domain_name"], serde_json::Value::Null);
        assert_eq!(v["actions_executed"], "forward");
        assert_eq!(v["target_port_list"], "10.0.0.1:80");
        assert_eq!(v["classification_reason"], serde_json::Value::Null);
        // The example predates conn_trace_id.
        assert_eq!(v["conn_trace_id"], serde_json::Value::Null);
        // The time, RFC 3339 in UTC already, as the timestamp.
        assert_eq!(v["timestamp"], v["time"]);
        assert_eq!(v.as_object().unwrap().len(), 31);
    }
}
