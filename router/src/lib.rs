//! The router: splits S3 log objects into per-event-type files.
//!
//! - [`route::Router::route_object`] routes one source to a destination;
//! - [`pipe`] is `router backfill --out -`: the routed lines of a replay
//!   written to standard output instead of parts;
//! - [`lines`] is the per-line hot loop, [`format`] the non-JSON line
//!   formats (CloudFront, S3 access, ALB) it converts to JSON objects,
//!   [`parts`] the compressed outputs,
//!   [`decode`] the compression detection, [`reason`] the quarantine reasons;
//! - [`service`] is `router run`: the SQS worker that routes each notified
//!   object;
//! - [`summary`] is the one line per routed source that `route` prints and
//!   `run` logs;
//! - [`cli`] is the command line, kept here so that tests can drive it.

pub mod backfill;
pub mod cli;
pub mod decode;
pub mod format;
#[cfg(feature = "isal")]
pub mod isal;
pub mod lines;
pub mod parts;
pub mod pipe;
pub mod reason;
pub mod route;
pub mod service;
pub mod summary;
