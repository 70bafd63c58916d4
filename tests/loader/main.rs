//! The loader's integration tests: one test binary (cargo builds the
//! `loader` binary for it). Input is routed with the router's library, in
//! process. Tests that need PostgreSQL or S3/SQS use the servers that
//! `scripts/test` starts; they fail, never skip, without them.

mod access_logs;
mod drift;
mod lambda;
mod load;
mod migrate;
mod ops;
mod pipeline;
mod redshift;
mod redshift_clock;
mod rejects;
mod support;
mod tls;
