//! A panic is a bug, never the input's doing; when one happens anyway, the
//! user gets one line that says what failed and what the ledger holds, and
//! the exit code says whether anything was sent: 3 once sending started
//! (the ledger's journal keeps what was sent; the next run resumes), 2
//! before. Never Rust's 101 and a backtrace.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::exit::ExitCode;

/// The ledger of a run that has started sending.
static SENDING: OnceLock<PathBuf> = OnceLock::new();

/// Replace the default panic message with ours; call once, first thing.
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let (state, code) = match SENDING.get() {
            Some(ledger) => (
                format!(
                    "the ledger {} keeps what was sent: run again with the same --state to resume",
                    ledger.display()
                ),
                ExitCode::Aborted,
            ),
            None => ("nothing was sent".to_string(), ExitCode::Usage),
        };
        say!("error: internal failure ({what}{at}); {state}");
        std::process::exit(code.code());
    }));
}

/// From now on a panic means requests may have been made.
pub fn sending(ledger: &std::path::Path) {
    let _ = SENDING.set(ledger.to_path_buf());
}
