//! transcript-import: backfill historical chat transcripts into the ASAPP
//! Conversations API.
//!
//! The pipeline runs one way, one stage a module:
//! `read` → `validate` → `plan` → `send` → `record` → `report`.

pub mod check;
pub mod cli;
pub mod config;
pub mod emulator;
pub mod exit;
pub mod lint;
pub mod model;
pub mod plan;
pub mod read;
pub mod record;
pub mod report;
pub mod run;
pub mod send;
pub mod timestamp;
pub mod validate;
