//! transcript-import: parse the command line, run the command, and map its
//! result to an exit code (DESIGN.md, "Exit codes").

use clap::Parser;

use transcript_import::cli::{Cli, Command};
use transcript_import::exit::ExitCode;
use transcript_import::{check, config, emulator, run};

fn main() -> std::process::ExitCode {
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
        Command::Check(args) => check::check(&args, &mut std::io::stdout().lock()),
        Command::Emulator(args) => emulator::emulator_config(&args)
            .and_then(emulator::run)
            .map(|()| ExitCode::Success),
    };
    match result {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("error: {e:#}");
            // Errors that reach here happened before anything was sent.
            ExitCode::Usage.into()
        }
    }
}
