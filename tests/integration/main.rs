//! One integration-test binary (links once): the real binary and the real
//! emulator over loopback.

mod delivery;
mod emulator;
mod fixtures;
mod flags;
mod formats;
mod generated;
mod golden;
mod hardening;
mod hostile;
mod input;
mod migration;
mod network;
mod pipeline;
mod recipes;
mod regression;
mod reports;
mod util;
