//! `json`, the default format: JSON lines, routed byte for byte as read.
//!
//! There is no conversion: the line loop validates each line while it
//! looks the type up ([`logrouter::pointer::JsonPointer::lookup`]) and
//! writes the very bytes it read, so the JSON path costs what it cost
//! before formats existed (the router bench's JSON ratio is the target for
//! every other format).

use logrouter::config::LineFormat;

/// What `auto` routes an object as, from its first line: CloudFront
/// standard logs always start with their `#Version:` header; anything else
/// is taken for JSON lines (a JSON line starts with `{`). S3 access and ALB
/// logs have no header to recognise them by, so they are never guessed.
pub fn auto_detect(first_line: &[u8]) -> LineFormat {
    if first_line.starts_with(b"#Version:") {
        LineFormat::Cloudfront
    } else {
        LineFormat::Json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_picks_cloudfront_by_its_version_header() {
        assert_eq!(auto_detect(b"#Version: 1.0"), LineFormat::Cloudfront);
        assert_eq!(auto_detect(b"{\"event_type\":\"a\"}"), LineFormat::Json);
        assert_eq!(auto_detect(b"#Fields: date time"), LineFormat::Json);
        assert_eq!(auto_detect(b""), LineFormat::Json);
    }
}
