//! One integration-test binary (links once): the real binary and the real
//! emulator over loopback.

mod delivery;
mod emulator;
mod input;
mod migration;
mod pipeline;
mod regression;
mod util;
