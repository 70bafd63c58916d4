//! The loader: loads the router's per-type files into one warehouse table per
//! event type. Built in steps (issue #3); what exists so far:
//!
//! - [`schema`]: `schemas/<event_type>.json` (a JSON Schema subset) → table
//!   columns, and the `CREATE TABLE` statements for SQLite, PostgreSQL and
//!   Redshift.

pub mod schema;
