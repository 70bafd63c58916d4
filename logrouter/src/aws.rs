//! AWS clients, built once and only when an S3 or SQS location is used, so a
//! purely local run never looks for credentials.

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

    async fn sdk(&self) -> &aws_config::SdkConfig {
        self.sdk
            .get_or_init(|| async {
                aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .load()
                    .await
            })
            .await
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

    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        self.sqs
            .get_or_init(|| async { aws_sdk_sqs::Client::new(self.sdk().await) })
            .await
            .clone()
    }
}

/// An SDK error with its whole chain of causes, for messages and logs.
pub fn describe<E: std::error::Error>(e: &E) -> String {
    aws_sdk_s3::error::DisplayErrorContext(e).to_string()
}
