//! The `ectable` commands, one module per command or group of related commands; the binary
//! (`src/bin/ectable.rs`) parses the command line and calls them.
//!
//! Each command takes the I/O engine kind and its parsed arguments and returns the exit code.

pub mod bulk;
pub mod clean;
pub mod common;
pub mod demo;
pub mod docs;
pub mod durability;
pub mod examine;
pub mod format;
pub mod kv;
pub mod model;
pub mod online;
pub mod rebuild;
pub mod reopen;
pub mod status;
pub mod table;
