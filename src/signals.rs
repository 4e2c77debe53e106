//! Stop signals. SIGTERM is always handled; SIGINT and SIGHUP too, unless
//! the process was started with them ignored, and that choice is kept:
//! - a shell starts a script's background job (`cmd &`, cron wrappers) with
//!   SIGINT ignored; SIGTERM still stops the run cleanly (it used to be
//!   lost in that case, issue "Hardening", item 5);
//! - `nohup` starts a command with SIGHUP ignored so that it outlives the
//!   terminal: a backfill started that way goes on when the session that
//!   started it ends (it used to stop with exit 130 at the hangup).
//!
//! The first signal calls the handler; a second one exits at once with 130.

use std::sync::{Mutex, Once};

use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

type Handler = Box<dyn Fn() + Send>;

static HANDLER: Mutex<Option<Handler>> = Mutex::new(None);
static INSTALL: Once = Once::new();

/// Call `handler` on the first stop signal from now on (replacing an
/// earlier handler of this process); exit with 130 on the second.
pub fn on_stop(handler: impl Fn() + Send + 'static) -> std::io::Result<()> {
    *HANDLER.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(handler));
    let mut installed = Ok(());
    INSTALL.call_once(|| installed = install());
    installed
}

fn install() -> std::io::Result<()> {
    let mut wanted = vec![SIGTERM];
    wanted.extend([SIGINT, SIGHUP].into_iter().filter(|&s| !ignored(s)));
    let mut signals = Signals::new(&wanted)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut seen = 0u32;
            for _ in signals.forever() {
                seen += 1;
                if seen > 1 {
                    std::process::exit(crate::exit::ExitCode::Interrupted.code());
                }
                if let Some(handler) = &*HANDLER.lock().unwrap_or_else(|e| e.into_inner()) {
                    handler();
                }
            }
        })?;
    Ok(())
}

/// Whether the process inherited `signal` as ignored.
fn ignored(signal: libc::c_int) -> bool {
    // SAFETY: sigaction with a null new action only reads the current
    // disposition into `old`, which is a plain C struct we own.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}
