//! The loader: loads the router's per-type files into one warehouse table
//! per event type, exactly once.
//!
//! - [`source`]: which files to load, found through the router's manifests;
//! - [`schema`]: `schemas/<event_type>.json` → columns → `CREATE TABLE`
//!   ([`schema::parse`]), and schema changes → migrations
//!   ([`schema::diff`], `loader schema diff`);
//! - [`rows`]: one routed line → the cells of its row;
//! - [`warehouse`]: the warehouse interface and its ledger, one file per
//!   backend: [`warehouse::sqlite`], [`warehouse::postgres`] and
//!   [`warehouse::redshift`] (Data API);
//! - [`load`]: `loader load`, many files at once;
//! - [`migrate`]: `loader migrate` over `migrations/<dialect>/`;
//! - [`verify`]: `loader verify`, rows against manifests;
//! - [`service`]: `loader run`, on the shared SQS worker;
//! - [`cli`]: the command line.

pub mod cli;
pub mod drift;
pub mod gather;
pub mod load;
pub mod migrate;
pub mod read;
pub mod reject;
pub mod rows;
pub mod schema;
pub mod service;
pub mod source;
pub mod verify;
pub mod warehouse;
