//! What can go wrong with the ledger; every error names the file.

/// A ledger problem. Before sending it stops the run with exit 2; once
/// requests were made, with exit 3 (what was sent is in the journal, which
/// the next run folds).
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{path}: another run holds this ledger ({holder}); wait for it to finish, or use another --state")]
    Locked { path: String, holder: String },
    #[error("{path}: a running import holds this ledger ({holder}); a report now would show its messages in flight as not sent\n  hint: run `report` once that import has ended")]
    InUse { path: String, holder: String },
    #[error("{path}: cannot create the ledger: there is no directory {dir}\n  hint: create it first, or name another --state")]
    NoDirectory { path: String, dir: String },
    #[error("{path}: no ledger here\n  hint: --state names the ledger of the run to report on")]
    Missing { path: String },
    /// A device, a FIFO or a directory: SQLite said "disk I/O error" and
    /// left its side files beside it.
    #[error("{path}: not a file: the ledger is a SQLite database file\n  hint: name a file (new or an earlier run's) with --state")]
    NotAFile { path: String },
    #[error("{path}: this ledger records imports into {recorded}, not {requested}: its ids mean nothing there\n  hint: use another --state for {requested}")]
    OtherApi {
        path: String,
        recorded: String,
        requested: String,
    },
    #[error("{path}: this ledger was written by a newer transcript-import (ledger format {found}; this version knows up to {known}), whose record this version would misread\n  hint: use that version, or a later one, with this ledger")]
    Newer {
        path: String,
        found: String,
        known: u32,
    },
    /// SQLite's word is in the message, not a source: a cause printed
    /// after the message would land on its hint line.
    #[error("{path}: the ledger is damaged ({cause})\n  hint: restore it from a backup if there is one; a new ledger (another --state) forgets what earlier runs sent, so a run with it sends every message again")]
    Corrupt {
        path: String,
        cause: rusqlite::Error,
    },
    #[error("{path}: the ledger")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot write the ledger's journal")]
    Journal {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The ledger thread is gone.
    #[error("{path}: the ledger stopped recording: its thread ended")]
    Gone { path: String },
}

impl LedgerError {
    /// A SQLite error of the file at `path`, told apart when it says the
    /// file is damaged.
    pub(crate) fn sqlite(path: &std::path::Path, source: rusqlite::Error) -> LedgerError {
        use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
        let path = path.display().to_string();
        match source.sqlite_error_code() {
            Some(DatabaseCorrupt | NotADatabase) => LedgerError::Corrupt {
                path,
                cause: source,
            },
            _ => LedgerError::Sqlite { path, source },
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> LedgerError {
        LedgerError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
