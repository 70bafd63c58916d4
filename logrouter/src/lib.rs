//! The shared library of logrouter: what both the `router` and the `loader`
//! binaries stand on.
//!
//! - [`config`]: the TOML/env configuration, validated once at start-up;
//! - [`notification`]: SQS message bodies → S3 objects to process;
//! - [`json`]: what a valid JSON line is, the one definition the router and
//!   the loader share (exactly what `serde_json::Value` accepts);
//! - [`pointer`] and [`normalize`]: finding an event type in a line and
//!   turning it into a safe name; [`ordinary`]: the same lookup and check
//!   in one pass for ordinary lines, serde_json deciding the rest;
//! - [`layout`]: the deterministic names of everything the router writes;
//! - [`manifest`]: the per-source commit record the loader trusts;
//! - [`store`] and [`location`]: reading sources and committing outputs,
//!   locally or in S3;
//! - [`queue`]: the SQS worker loop both services share;
//! - [`aws`]: lazily built AWS clients;
//! - [`scan`]: finding the bytes an escaper acts on, 16 at a time;
//! - [`process`]: logging and signals, the same in both binaries;
//! - [`telemetry`]: Prometheus metrics, readiness and liveness of the
//!   services.

pub mod aws;
pub mod config;
pub mod emf;
pub mod json;
pub mod lambda;
pub mod layout;
pub mod location;
pub mod manifest;
pub mod normalize;
pub mod notification;
pub mod ordinary;
pub mod percent;
pub mod pointer;
pub mod process;
pub mod queue;
pub mod scan;
pub mod store;
pub mod telemetry;
