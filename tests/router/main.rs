//! The router's integration tests: one test binary (cargo builds the
//! `router` binary for it). Tests that need S3/SQS use the moto server that
//! `scripts/test` starts; they fail, never skip, without it.

mod backfill;
mod cli;
mod lambda;
mod ops;
mod peer_logs;
mod queue;
mod route;
mod s3_sqs;
mod schemas;
mod splitter;
mod support;
