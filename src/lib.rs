//! transcript-import: backfill historical chat transcripts into the ASAPP
//! Conversations API.
//!
//! The pipeline runs one way, one stage a module:
//! `read` → `validate` → `plan` → `send` → `record` → `report`, meeting
//! only through the nouns in `model`; `run` wires them.

#[macro_use]
pub mod console;
mod alloc;
pub mod check;
pub mod cli;
pub mod config;
pub mod docs;
pub mod emulator;
pub mod error;
pub mod exit;
pub mod failure;
mod lint;
pub mod model;
pub mod plan;
pub mod read;
mod record;
pub mod report;
pub mod run;
pub mod send;
mod signals;
#[cfg(test)]
mod testing;
pub mod timestamp;
pub mod validate;

/// The ledger's writing side, for `benches/components.rs` only: `run` is
/// the one caller in the tool itself.
#[doc(hidden)]
pub use record::{Ledger, Recorder, Writer};
