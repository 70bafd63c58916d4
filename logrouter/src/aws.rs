//! AWS clients, built once and only when an S3 or SQS location is used, so a
//! purely local run never looks for credentials.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use tokio::sync::OnceCell;

use crate::config::AwsConfig;

/// Lazily built AWS clients shared by everything in one process.
#[derive(Debug, Default)]
pub struct AwsClients {
    settings: AwsConfig,
    sdk: OnceCell<aws_config::SdkConfig>,
    s3: OnceCell<aws_sdk_s3::Client>,
    sqs: OnceCell<aws_sdk_sqs::Client>,
}

impl AwsClients {
    pub fn new(settings: AwsConfig) -> Self {
        Self {
            settings,
            sdk: OnceCell::new(),
            s3: OnceCell::new(),
            sqs: OnceCell::new(),
        }
    }

    /// The shared SDK configuration (region, credentials, endpoints, the
    /// attempt timeout), for clients of other AWS services built outside
    /// this crate.
    pub async fn sdk(&self) -> &aws_config::SdkConfig {
        self.sdk
            .get_or_init(|| async {
                aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .timeout_config(self.timeouts(Duration::ZERO))
                    .load()
                    .await
            })
            .await
    }

    /// The SDK's default timeouts (connect 3.1 s) plus an attempt timeout
    /// of `aws.attempt_timeout_secs` and `extra` (see
    /// [`crate::config::AwsConfig::attempt_timeout_secs`]).
    fn timeouts(&self, extra: Duration) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(3100))
            .operation_attempt_timeout(
                Duration::from_secs(self.settings.attempt_timeout_secs) + extra,
            )
            .build()
    }

    /// The S3 client (one per process: it owns the connection pool).
    pub async fn s3(&self) -> aws_sdk_s3::Client {
        self.s3
            .get_or_init(|| async {
                let conf = aws_sdk_s3::config::Builder::from(self.sdk().await)
                    .force_path_style(self.settings.force_path_style)
                    .build();
                aws_sdk_s3::Client::from_conf(conf)
            })
            .await
            .clone()
    }

    /// The SQS client: a receive's attempt may also wait out its long poll
    /// (at most 20 s, SQS's limit).
    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        self.sqs
            .get_or_init(|| async {
                let conf = aws_sdk_sqs::config::Builder::from(self.sdk().await)
                    .timeout_config(self.timeouts(Duration::from_secs(20)))
                    .build();
                aws_sdk_sqs::Client::from_conf(conf)
            })
            .await
            .clone()
    }
}

/// An SDK error in one line for people: `Code: message` for an error the
/// service answered (not the raw HTTP response), else the chain of causes
/// (timeouts, connection refused, credentials).
pub fn describe<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
    if let SdkError::ServiceError(service) = e {
        let err = service.err();
        return match (err.code(), err.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_owned(),
            _ => DisplayErrorContext(err).to_string(),
        };
    }
    DisplayErrorContext(e).to_string()
}
