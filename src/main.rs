//! transcript-import: parse the command line, run the command, and map its
//! result to an exit code (DESIGN.md, "Exit codes").

use clap::Parser;

use transcript_import::cli::{Cli, Command};
use transcript_import::exit::ExitCode;
use transcript_import::{check, config, docs, emulator, failure, run};

fn main() -> std::process::ExitCode {
    failure::install();
    tune_allocators();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors.
            return if e.use_stderr() {
                ExitCode::Usage.into()
            } else {
                ExitCode::Success.into()
            };
        }
    };
    let result = match cli.command {
        Command::Run(args) => config::run_config(&args).and_then(run::run),
        Command::Check(args) => config::check_config(&args)
            .and_then(|cfg| check::check(cfg, &mut std::io::stdout().lock())),
        Command::Report(args) => config::report_config(&args).and_then(run::rerender::report),
        Command::Emulator(args) => emulator::emulator_config(&args)
            .and_then(emulator::run)
            .map(|()| ExitCode::Success),
        Command::Completions(args) => docs::print_completions(args.shell),
        Command::Man(args) => docs::man(args.dir.as_deref()),
    };
    match result {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("error: {}", e_chain(&e));
            if let Some(hint) = e.hint() {
                eprintln!("  hint: {hint}");
            }
            e.exit_code().into()
        }
    }
}

/// Rust's allocations go to mimalloc: a heap per thread, no lock on the
/// hot path. With glibc's allocator sixteen workers shared two arenas (more
/// arenas held megabytes of idle heap each) and waited on their locks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's places in `mi_option_e` (mimalloc.h, v3 as libmimalloc-sys
/// 0.1.49 builds it; Cargo.toml holds that version exactly).
const MI_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const MI_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// Memory goes back to the system as soon as it is free: flat memory over a
/// long run is worth more than the little speed mimalloc's defaults buy
/// (measured on a 360,000-message run: 65 MB of anonymous memory instead
/// of 207 MB). Arenas are committed when they are made (where the system
/// overcommits, as Linux does by default), without transparent huge pages
/// (which would fill a whole committed arena): committed page by page
/// instead, each new thread's first allocations made one `mprotect` per
/// size class, and with hundreds of workers starting at once those queued
/// on the process's memory map lock (the last of 256 workers began sending
/// a fifth of a second late; with this, within 50 ms; same peak memory).
/// An arena takes the options in force when it is made, and Rust's runtime
/// makes the first one before `main`: so this runs as the program is
/// loaded, before any Rust code allocates.
extern "C" fn tune_mimalloc() {
    // SAFETY: setting an option has no precondition.
    unsafe {
        // 2: only where the system overcommits (Linux by default); where
        // it does not, a committed arena would be charged whole.
        libmimalloc_sys::mi_option_set(MI_ARENA_EAGER_COMMIT, 2);
        libmimalloc_sys::mi_option_set(MI_ALLOW_THP, 0);
        libmimalloc_sys::mi_option_set(MI_PURGE_DELAY, 0);
    }
}

#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static TUNE_MIMALLOC: extern "C" fn() = tune_mimalloc;

/// SQLite allocates with glibc's malloc: two arenas are enough for it
/// (glibc gives each thread that allocates its own, up to eight per core).
fn tune_allocators() {
    #[cfg(not(target_os = "linux"))]
    tune_mimalloc();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a setting of the allocator; it is called
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// The error with its causes, as one line (`a: b: c`).
fn e_chain(e: &transcript_import::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let c_text = c.to_string();
        // Transparent wrappers repeat their cause's text.
        if !text.ends_with(&c_text) {
            text.push_str(": ");
            text.push_str(&c_text);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The options are set as the program loads (the test harness is this
    /// program too), and the list is laid out as the places named assume:
    /// their neighbours hold their documented defaults (`os_tag` 100 at
    /// 18, `max_errors` 32 at 19, the old `eager_commit` 1 at 3,
    /// `page_max_reclaim` -1 at 41, `minimal_purge_size` 0 at 44).
    #[cfg(target_os = "linux")]
    #[test]
    fn mimalloc_options_are_set_before_main_by_their_places() {
        if std::env::vars().any(|(k, _)| k.starts_with("MIMALLOC_")) {
            return;
        }
        // SAFETY: reading an option has no precondition.
        let get = |o| unsafe { libmimalloc_sys::mi_option_get(o) };
        assert_eq!(
            (
                get(MI_ARENA_EAGER_COMMIT),
                get(MI_PURGE_DELAY),
                get(MI_ALLOW_THP)
            ),
            (2, 0, 0)
        );
        assert_eq!((get(3), get(18), get(19)), (1, 100, 32));
        assert_eq!((get(41), get(44)), (-1, 0));
    }
}
