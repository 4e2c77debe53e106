//! Lines for the person or the script watching: progress, warnings, the
//! summary, errors, all on stderr.
//!
//! `eprintln!` panics when stderr cannot be written: a pipe whose reader
//! has exited (`2>&1 | head`, a logger that died), a terminal that went
//! away. A run is not to stop for that, let alone abort half way through
//! its sending: what it did is in the ledger and the report, and the exit
//! code says how it went. So a line that cannot be written is dropped.

use std::io::Write;

/// Write one line to stderr, dropping it if stderr is gone.
pub fn line(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

/// `eprintln!` that never panics: see [`line`].
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::console::line(format_args!($($arg)*))
    };
}
