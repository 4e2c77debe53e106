//! What is generated from the command line's own definitions (`cli`):
//! shell completion scripts (`completions <shell>`) and manual pages
//! (`man`). Nothing here is written by hand, so a new flag shows in both.

use std::io::{self, Write};
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::error::Error;
use crate::exit::ExitCode;

const BIN: &str = "transcript-import";

/// `completions <shell>`: the script on stdout.
pub fn print_completions(shell: Shell) -> Result<ExitCode, Error> {
    Error::output(io::stdout().lock().write_all(&completions(shell))).map(|()| ExitCode::Success)
}

/// `man`: the main page on stdout, or every page in `dir`.
pub fn man(dir: Option<&Path>) -> Result<ExitCode, Error> {
    Error::output(match dir {
        None => man_page(&mut io::stdout().lock()),
        Some(dir) => man_pages(dir),
    })
    .map(|()| ExitCode::Success)
}

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN, &mut script);
    if shell == Shell::Bash {
        // clap_complete's bash script spells a hyphenated binary's state
        // two ways (`transcript__import__subcmd__run` when it walks the
        // words, `transcript__subcmd__import__subcmd__run` in the case
        // arms), so no subcommand's flags ever complete
        // (clap-rs/clap#6421). One spelling, the walk's.
        let wrong = BIN.replace('-', "__subcmd__");
        let right = BIN.replace('-', "__");
        let text = String::from_utf8_lossy(&script).replace(&wrong, &right);
        script = text.into_bytes();
    }
    script
}

/// The main page (`transcript-import.1`) to `out`.
pub fn man_page(out: &mut dyn Write) -> io::Result<()> {
    clap_mangen::Man::new(Cli::command()).render(out)
}

/// `transcript-import.1` and one page per command
/// (`transcript-import-run.1`, ...) in `dir`.
pub fn man_pages(dir: &Path) -> io::Result<()> {
    clap_mangen::generate_to(Cli::command(), dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_names_each_state_one_way() {
        let script = String::from_utf8(completions(Shell::Bash)).unwrap();
        assert!(!script.contains("__subcmd__import"), "{script}");
        assert!(script.contains("cmd=\"transcript__import__subcmd__run\""));
        assert!(script.contains("        transcript__import__subcmd__run)"));
    }
}
