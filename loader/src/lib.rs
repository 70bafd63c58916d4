//! The loader: loads the router's per-type files into one warehouse table
//! per event type, exactly once.
//!
//! - [`source`]: which files to load, found through the router's manifests;
//! - [`schema`]: `schemas/<event_type>.json` → columns → `CREATE TABLE`;
//! - [`rows`]: one routed line → the cells of its row;
//! - [`warehouse`]: the warehouse interface and its ledger, with the
//!   [`sqlite`], [`postgres`] and [`redshift`] (Data API) backends;
//! - [`load`]: `loader load`, many files at once;
//! - [`migrate`]: `loader migrate` over `migrations/<dialect>/`;
//! - [`schema_diff`]: `loader schema diff`, schema changes → migrations;
//! - [`verify`]: `loader verify`, rows against manifests;
//! - [`service`]: `loader run`, on the shared SQS worker;
//! - [`cli`]: the command line.

pub mod cli;
pub mod load;
pub mod migrate;
pub mod postgres;
pub mod redshift;
pub mod rows;
pub mod schema;
pub mod schema_diff;
pub mod service;
pub mod source;
pub mod sqlite;
pub mod verify;
pub mod warehouse;
