use clap::Parser;

use transcript_import::cli::{Cli, Command};
use transcript_import::emulator;
use transcript_import::exit::ExitCode;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Emulator(args) => match emulator::emulator_config(&args).and_then(emulator::run) {
            Ok(()) => ExitCode::Success,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::Usage
            }
        },
        Command::Run(_) | Command::Check(_) => {
            eprintln!("error: not implemented yet");
            ExitCode::Usage
        }
    };
    code.into()
}
