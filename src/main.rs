use clap::Parser;

use transcript_import::cli::{Cli, Command};
use transcript_import::exit::ExitCode;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run(_) | Command::Check(_) | Command::Emulator(_) => {
            eprintln!("error: not implemented yet");
            ExitCode::Usage
        }
    };
    code.into()
}
