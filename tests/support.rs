//! Test support shared by both integration test binaries (router and
//! loader): the moto endpoint and AWS clients, the PostgreSQL server, unique
//! names, reading outputs.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use logrouter::config::Config;

/// The moto server started by `scripts/test`. A test that needs it fails,
/// never skips, when it is missing.
pub fn moto() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let url = std::env::var("TEST_MOTO_URL").unwrap_or_else(|_| {
            panic!("TEST_MOTO_URL is not set: run the tests with scripts/test, which installs and starts moto server")
        });
        // The library builds its clients the standard AWS way, so the
        // endpoint and credentials go through the environment, once, before
        // any client exists.
        std::env::set_var("AWS_ENDPOINT_URL", &url);
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        url
    })
}

pub async fn s3() -> aws_sdk_s3::Client {
    moto();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    )
}

pub async fn sqs() -> aws_sdk_sqs::Client {
    moto();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    aws_sdk_sqs::Client::new(&sdk)
}

/// A name no other test (or earlier run against the same moto) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_micros()
    )
}

/// Configuration for tests: path-style S3, short long polls.
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.aws.force_path_style = true;
    c.queue.wait_time_secs = 1;
    c.queue.visibility_timeout_secs = 30;
    c.queue.shutdown_grace_secs = 5;
    c.validate().unwrap();
    c
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Every file under `root`, relative, sorted.
pub fn files_under(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out.sort();
    out
}

pub async fn list_keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut pages = s3.list_objects_v2().bucket(bucket).into_paginator().send();
    while let Some(page) = pages.next().await {
        for o in page.unwrap().contents() {
            keys.push(o.key().unwrap().to_owned());
        }
    }
    keys.sort();
    keys
}

pub async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let r = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    r.body.collect().await.unwrap().to_vec()
}

/// Visible + in-flight messages on a queue.
pub async fn messages_on_queue(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let a = attrs.attributes().unwrap();
    let n = |k: A| a.get(&k).map_or(0, |v| v.parse::<u64>().unwrap());
    n(A::ApproximateNumberOfMessages) + n(A::ApproximateNumberOfMessagesNotVisible)
}

/// A fresh queue named `<prefix>-…`; returns its URL.
pub async fn create_queue(sqs: &aws_sdk_sqs::Client, prefix: &str) -> String {
    sqs.create_queue()
        .queue_name(unique(prefix))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

/// The PostgreSQL server `scripts/test` started (or `DATABASE_URL`). A test
/// that needs it fails, never skips, when it is missing.
#[allow(dead_code)]
pub fn database_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!("TEST_DATABASE_URL is not set: run the tests with scripts/test, which starts a throwaway PostgreSQL cluster (or set DATABASE_URL)")
    })
}

/// A database schema name of our own (lower case, `_`, no dashes).
#[allow(dead_code)]
pub fn unique_schema(prefix: &str) -> String {
    unique(prefix).replace('-', "_")
}

/// The ARN of a queue (for bucket notification configurations).
#[allow(dead_code)]
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone()
}

/// The Redshift Data API test server `scripts/test` started. A test that
/// needs it fails, never skips, when it is missing.
#[allow(dead_code)]
pub fn redshift_data() -> String {
    std::env::var("TEST_REDSHIFT_DATA_URL").unwrap_or_else(|_| {
        panic!("TEST_REDSHIFT_DATA_URL is not set: run the tests with scripts/test, which starts the Redshift Data API test server")
    })
}
