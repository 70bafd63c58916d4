//! A payload carried inside one field of an access-log line
//! (`[route.payload]`): some producers log an event by requesting a URL
//! whose query string holds the whole event, e.g. an S3 access log's
//!
//! ```text
//! GET /tick?data=|2014-01-15T19:33:23|xxxxxxxx-…|1234567|Registered|…|120| HTTP/1.1
//! ```
//!
//! The parameter's value is percent-decoded (`+` is a space, as a browser
//! or form encodes it) and split at the delimiter; one leading and one
//! trailing delimiter are allowed and dropped. Values are named by
//! `fields` in order; values past them are kept as `field_N` (N counted
//! from 1 over all values: producers only append); named fields missing at
//! the end, and empty values (a removed field keeps its delimiters), are
//! `null`. The routed object is the payload's fields followed by the whole
//! access-log object under `key` (default `access_log`), so the request's
//! time, remote IP and user agent travel with the event. A line without the
//! field or the parameter is quarantined as `payload_missing`.

use std::borrow::Cow;

use logrouter::config::PayloadConfig;

use super::{find, object, Field, Reject};
use crate::reason::Reason;

#[derive(Debug, Clone)]
pub struct Payload {
    /// The access-log key holding the request (config validated: one segment).
    field: String,
    param: String,
    delimiter: String,
    keys: Vec<String>,
    nest: String,
}

impl Payload {
    pub fn new(c: &PayloadConfig) -> Self {
        let field = logrouter::pointer::JsonPointer::parse(&c.field)
            .ok()
            .and_then(|p| p.segments().first().cloned())
            .unwrap_or_default();
        Self {
            field,
            param: c.query_param.clone(),
            delimiter: c.delimiter.clone(),
            keys: c.fields.clone(),
            nest: c.key.clone(),
        }
    }

    /// Writes the routed object for the access-log `fields` into `out` and
    /// returns the raw type at `type_path` in it.
    pub fn write<'l>(
        &self,
        fields: &[Field<'_, 'l>],
        type_path: &[String],
        out: &mut Vec<u8>,
    ) -> Result<Option<Cow<'l, str>>, Reject> {
        let missing = |what: String| {
            (
                Reason::PayloadMissing,
                format!("{what}, so the line carries no payload (route.payload names /{} and its parameter {:?}; lines without one need another route)", self.field, self.param),
            )
        };
        let holder = find(fields, &self.field)
            .ok_or_else(|| missing(format!("the line has no {} (absent or -)", self.field)))?;
        let raw = query_value(&holder, &self.param).ok_or_else(|| {
            missing(format!(
                "{} has no query parameter {:?}",
                self.field, self.param
            ))
        })?;
        let decoded = logrouter::percent::decode(raw, true).ok_or_else(|| {
            (
                Reason::MalformedRecord,
                format!(
                    "the payload in {:?} is not UTF-8 once percent-decoded",
                    self.param
                ),
            )
        })?;
        let body = decoded
            .strip_prefix(self.delimiter.as_str())
            .unwrap_or(&decoded);
        let body = body.strip_suffix(self.delimiter.as_str()).unwrap_or(body);
        let mut payload: Vec<Field<'_, '_>> = Vec::with_capacity(self.keys.len() + 1);
        if !body.is_empty() {
            for (i, v) in body.split(self.delimiter.as_str()).enumerate() {
                let key = match self.keys.get(i) {
                    Some(k) => Cow::Borrowed(k.as_str()),
                    None => super::extra_key(i + 1),
                };
                payload.push((key, (!v.is_empty()).then_some(Cow::Borrowed(v))));
            }
        }
        for k in self.keys.iter().skip(payload.len()) {
            payload.push((Cow::Borrowed(k.as_str()), None));
        }
        out.push(b'{');
        object::write_members(out, &payload);
        out.push(b',');
        object::write_key(out, &self.nest);
        object::write_object(out, fields);
        out.push(b'}');
        Ok(match type_path {
            [k] => find(&payload, k).map(|v| Cow::Owned(v.into_owned())),
            [nest, k] if *nest == self.nest => find(fields, k),
            _ => None,
        })
    }
}

/// The raw value of `param` in the query string of `text`: a request line
/// (`GET /path?query HTTP/1.1`), a URL, or a query string alone.
fn query_value<'t>(text: &'t str, param: &str) -> Option<&'t str> {
    let query = match text.find('?') {
        Some(i) => &text[i + 1..],
        None => text,
    };
    let query = query.split([' ', '#']).next().unwrap_or("");
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == param).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> Payload {
        Payload::new(&PayloadConfig {
            field: "/request_uri".into(),
            query_param: "data".into(),
            delimiter: "|".into(),
            fields: ["a", "b", "c"].map(String::from).to_vec(),
            key: "access_log".into(),
        })
    }

    fn route(
        request: &str,
        type_path: &[&str],
    ) -> Result<(serde_json::Value, Option<String>), Reason> {
        let fields = vec![
            (Cow::Borrowed("time"), Some(Cow::Borrowed("t"))),
            (Cow::Borrowed("request_uri"), Some(Cow::Borrowed(request))),
        ];
        let path: Vec<String> = type_path.iter().map(|s| s.to_string()).collect();
        let mut out = Vec::new();
        let found = payload()
            .write(&fields, &path, &mut out)
            .map_err(|(r, _)| r)?;
        Ok((
            serde_json::from_slice(&out).unwrap(),
            found.map(Cow::into_owned),
        ))
    }

    #[test]
    fn values_named_kept_and_nulled() {
        let (v, t) = route("GET /tick?x=1&data=|1|two+2%7C|3|4| HTTP/1.1", &["b"]).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": "1", "b": "two 2", "c": null, "field_4": "3", "field_5": "4", "access_log": {"time": "t", "request_uri": "GET /tick?x=1&data=|1|two+2%7C|3|4| HTTP/1.1"}})
        );
        // `%7C` decodes to a delimiter, which splits: decoding comes first,
        // as the producer encoded the whole value.
        assert_eq!(t.as_deref(), Some("two 2"));
        let (v, t) = route("GET /tick?data=x|y HTTP/1.1", &["access_log", "time"]).unwrap();
        assert_eq!(v["a"], "x");
        assert_eq!(v["c"], serde_json::Value::Null);
        assert_eq!(t.as_deref(), Some("t"));
        let (v, _) = route("GET /tick?data=|| HTTP/1.1", &["a"]).unwrap();
        assert_eq!(v["a"], serde_json::Value::Null);
        assert_eq!(v["b"], serde_json::Value::Null);
    }

    #[test]
    fn missing_payloads() {
        assert_eq!(
            route("GET /tick?other=1 HTTP/1.1", &["a"]).unwrap_err(),
            Reason::PayloadMissing
        );
        assert_eq!(
            route("GET /favicon.ico HTTP/1.1", &["a"]).unwrap_err(),
            Reason::PayloadMissing
        );
        assert_eq!(
            route("GET /t?data=%FF HTTP/1.1", &["a"]).unwrap_err(),
            Reason::MalformedRecord
        );
    }
}
