//! Where data comes from and goes to: a local path, `s3://bucket/prefix`, or
//! standard input.

use std::fmt;
use std::path::PathBuf;

/// A source or destination named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, key: String },
    Stdin,
}

impl Location {
    /// Parses `-`, `s3://bucket/key-or-prefix`, or a local path.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "-" {
            return Ok(Location::Stdin);
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("{text:?} has no bucket: write s3://bucket/prefix"));
            }
            return Ok(Location::S3 {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            });
        }
        if text.contains("://") {
            return Err(format!(
                "{text:?}: only local paths, s3://bucket/key and - (stdin) are supported"
            ));
        }
        if text.is_empty() {
            return Err("empty path".to_owned());
        }
        Ok(Location::Local(PathBuf::from(text)))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            Location::Stdin => f.write_str("-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert_eq!(Location::parse("-").unwrap(), Location::Stdin);
        assert_eq!(
            Location::parse("s3://b/p/k.gz").unwrap(),
            Location::S3 {
                bucket: "b".into(),
                key: "p/k.gz".into()
            }
        );
        assert_eq!(
            Location::parse("s3://b").unwrap(),
            Location::S3 {
                bucket: "b".into(),
                key: "".into()
            }
        );
        assert!(Location::parse("s3:///k").is_err());
        assert!(Location::parse("gs://b/k").is_err());
        assert_eq!(
            Location::parse("a/b").unwrap(),
            Location::Local("a/b".into())
        );
    }
}
