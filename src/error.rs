//! What ends a command early, and the exit code each failure means
//! (DESIGN.md, "Exit codes"). Bad rows are not errors: they are report
//! lines. Every message names the flag, file, line or column to fix.

use crate::exit::ExitCode;

/// A failure that ends a command. `main` prints it and exits with
/// [`Error::exit_code`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag's value, a credentials file or an output path is unusable.
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
    #[error(transparent)]
    Read(#[from] crate::read::ReadError),
    #[error(transparent)]
    Duplicate(#[from] crate::plan::inputs::Duplicate),
    #[error(transparent)]
    Ledger(#[from] crate::record::LedgerError),
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    #[error(transparent)]
    Rejects(#[from] crate::report::rejects::RejectsError),
    #[error(transparent)]
    Send(#[from] crate::send::SendError),
    #[error("cannot start the built-in emulator")]
    Emulator(#[source] std::io::Error),
    #[error("cannot write the output")]
    Output(#[source] std::io::Error),
    /// Any of the above once requests were made: the ledger keeps what was
    /// sent, and the next run with it resumes.
    #[error(transparent)]
    AfterSending(Box<Error>),
}

impl Error {
    /// A usage error, with the flag or file named in `message`.
    pub fn usage(message: impl Into<String>) -> Error {
        Error::Usage {
            message: message.into(),
            hint: None,
        }
    }

    /// What writing a command's output (`check`, `man`, `completions`)
    /// came to. A reader that stopped reading (`| head`) is no failure.
    pub fn output(written: std::io::Result<()>) -> Result<(), Error> {
        match written {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Output(e)),
            _ => Ok(()),
        }
    }

    /// A usage error with something the user can do about it.
    pub fn usage_with_hint(message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Usage {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// What the process exits with: 2 when nothing was sent, 3 once
    /// requests were made.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::AfterSending(_) => ExitCode::Aborted,
            Error::Usage { .. }
            | Error::Read(_)
            | Error::Duplicate(_)
            | Error::Ledger(_)
            | Error::Report(_)
            | Error::Rejects(_)
            | Error::Send(_)
            | Error::Emulator(_)
            | Error::Output(_) => ExitCode::Usage,
        }
    }

    /// A line the user can act on, printed after the error.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::Usage { hint, .. } => hint.as_deref(),
            Error::AfterSending(inner) => inner.hint(),
            _ => None,
        }
    }
}

/// An error with its causes, as one line (`a: b: c`).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
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

    #[test]
    fn each_error_knows_its_exit_code() {
        let before = Error::usage("--rate 0: must be positive");
        assert_eq!(before.exit_code(), ExitCode::Usage);
        let after = Error::AfterSending(Box::new(Error::Output(std::io::Error::other("x"))));
        assert_eq!(after.exit_code(), ExitCode::Aborted);
        // Its causes are printed too (a full disk says so).
        let cause = std::error::Error::source(&after).map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("x"));
        let hinted = Error::usage_with_hint("no credentials", "use --emulator");
        assert_eq!(hinted.hint(), Some("use --emulator"));
        assert_eq!(
            Error::AfterSending(Box::new(hinted)).hint(),
            Some("use --emulator")
        );
    }
}
