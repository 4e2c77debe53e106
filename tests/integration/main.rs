//! One integration-test binary (links once): the real binary and the real
//! emulator over loopback.

mod delivery;
mod emulator;
mod hostile;
mod input;
mod pipeline;
mod util;
