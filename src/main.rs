//! transcript-import: parse the command line, run the command, and map its
//! result to an exit code (DESIGN.md, "Exit codes").

use clap::Parser;

use transcript_import::cli::{Cli, Command};
use transcript_import::exit::ExitCode;
use transcript_import::{check, config, docs, emulator, failure, run, say};

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
            say!("error: {}", transcript_import::error::chain(&e));
            if let Some(hint) = e.hint() {
                say!("  hint: {hint}");
            }
            e.exit_code().into()
        }
    }
}

/// SQLite allocates with glibc's malloc: two arenas are enough for it
/// (glibc gives each thread that allocates its own, up to eight per core).
fn tune_allocators() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a setting of the allocator; it is called
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
