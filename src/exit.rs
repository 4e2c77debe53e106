//! Exit codes: the contract with cron and scripts (DESIGN.md, "Exit codes").

/// How the process ends. One variant per documented code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Every row `created`, `already_imported` or `exists`.
    Success = 0,
    /// The run finished; some rows are not created (invalid, failed, skipped, uncertain).
    RowsNotCreated = 1,
    /// Nothing was sent: bad usage, unreadable input, missing column, bad credentials file.
    Usage = 2,
    /// Aborted: credentials refused (401/403), or the API kept failing.
    Aborted = 3,
    /// Paused at the daily quota: run again after 00:00 UTC with the same ledger.
    QuotaPaused = 4,
    /// Interrupted (Ctrl-C / SIGTERM) after a clean stop.
    Interrupted = 130,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_contract() {
        assert_eq!(ExitCode::Success.code(), 0);
        assert_eq!(ExitCode::RowsNotCreated.code(), 1);
        assert_eq!(ExitCode::Usage.code(), 2);
        assert_eq!(ExitCode::Aborted.code(), 3);
        assert_eq!(ExitCode::QuotaPaused.code(), 4);
        assert_eq!(ExitCode::Interrupted.code(), 130);
    }
}
