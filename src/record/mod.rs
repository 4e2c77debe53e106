//! Record: the ledger, a SQLite file that makes every run resumable.
//!
//! What it promises:
//! - an *intent* is stored before each request and the *outcome* after it,
//!   so a process killed at any instant (SIGKILL included) leaves a ledger
//!   that says exactly which messages were in flight;
//! - messages are keyed by content (`ContentKey`) and occurrence, never by
//!   row number, so a changed, reordered or overlapping input is recognised;
//! - one run per ledger at a time ([`lock`]: an OS lock beside the database);
//! - the ledger, its lock and its journal are readable by their owner only.
//!
//! Workers write intents and outcomes to the [`journal`] themselves, a copy
//! into a mapped file per request and no waiting on another thread; the
//! outcome of a request travels with the same worker's next intent. One
//! thread owns the SQLite connection ([`Writer`]): it folds the journal into
//! `outcomes` ([`fold`], [`outcomes`]) as the journal grows and at the end. Report rows
//! are not kept here (see `report::Spool`): a killed run writes no report,
//! and the next run reports every row from `outcomes`.

mod error;
mod fold;
pub mod journal;
pub mod lock;
mod lookup;
mod outcomes;
mod reader;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};

pub use error::LedgerError;
pub use journal::State;
pub use lookup::Lookup;
pub use reader::{LastRun, Reader};
pub use schema::LOOPBACK;
pub use writer::{Recorder, Writer};

use journal::Journal;

/// An open ledger, locked for this process, with this run registered.
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
    run_id: i64,
    /// Messages an interrupted earlier run left in flight, now `uncertain`.
    pub recovered_in_flight: u64,
    /// Where this run's workers append; `None` only when bookkeeping is
    /// switched off to measure its cost (see [`Ledger::without_bookkeeping`]).
    journal: Option<Arc<Journal>>,
    _lock: std::fs::File,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Files of the ledger are its owner's only: they hold conversation ids
/// and message ids of a company's chats.
fn private_file(options: &mut std::fs::OpenOptions) -> &mut std::fs::OpenOptions {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(options, 0o600);
    options
}

/// The directory a file is in, `.` for a bare file name: the ledger's and
/// its side files', and an output's, where its temporary file goes.
pub(crate) fn directory_of(state: &Path) -> &Path {
    match state.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// The ledger file `state` names, through a symlink to it (`current.db`
/// pointing at `ledger-2026.db`): its lock and its journal go beside the
/// file itself, as SQLite puts its write-ahead log there. Two names for
/// one ledger are then one ledger, locked once, with a killed run's
/// journal found under either name; beside the link, two runs through
/// the two names each took a lock of their own and sent every message
/// twice. A link to a file not there yet names the file it would create.
pub(crate) fn resolve(state: &Path) -> PathBuf {
    let linked = std::fs::symlink_metadata(state).is_ok_and(|m| m.file_type().is_symlink());
    if !linked {
        return state.to_path_buf();
    }
    std::fs::canonicalize(state)
        .or_else(|_| std::fs::read_link(state).map(|target| directory_of(state).join(target)))
        .unwrap_or_else(|_| state.to_path_buf())
}

/// The files that belong to a ledger at `state` besides itself: its lock,
/// SQLite's `-wal`, `-shm` and `-journal`, and the journal's lane files
/// (`<state>.journal.*`). An output path that names one of them would
/// destroy the ledger.
pub fn is_side_file(state: &Path, candidate: &Path) -> bool {
    let (Some(dir), Some(name)) = (state.parent(), state.file_name()) else {
        return false;
    };
    let (Some(cdir), Some(cname)) = (candidate.parent(), candidate.file_name()) else {
        return false;
    };
    if dir != cdir {
        return false;
    }
    let (Some(name), Some(cname)) = (name.to_str(), cname.to_str()) else {
        return false;
    };
    cname.strip_prefix(name).is_some_and(|rest| {
        matches!(rest, ".lock" | "-wal" | "-shm" | "-journal") || rest.starts_with(".journal.")
    })
}

impl Ledger {
    /// Open (or create) the ledger at `path` for imports into `target` (the
    /// API's base URL, or [`LOOPBACK`]), take its lock and start a run. A
    /// ledger is bound to one target: what it knows about another API's ids
    /// would wrongly mark messages as already imported.
    pub fn open(path: &Path, target: &str) -> Result<Ledger, LedgerError> {
        let path = &resolve(path);
        if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
            return Err(LedgerError::NotAFile {
                path: path.display().to_string(),
            });
        }
        let lock = lock::take(path)?;
        let sql = |e| LedgerError::sqlite(path, e);
        let conn = schema::open(path)?;
        schema::bind_target(&conn, path, target)?;
        let recovered = fold::settle(&conn, path)?;
        conn.execute(
            "INSERT INTO runs (started_at, pid) VALUES (?1, ?2)",
            params![now(), std::process::id()],
        )
        .map_err(sql)?;
        let run_id = conn.last_insert_rowid();
        // Past every number used so far: each leftover is folded or stale now.
        let seq = schema::journal_folded(&conn).map_err(sql)? + 1;
        let journal = Journal::new(path, run_id, seq);
        Ok(Ledger {
            conn,
            path: path.to_path_buf(),
            run_id,
            recovered_in_flight: recovered,
            journal: Some(Arc::new(journal)),
            _lock: lock,
        })
    }

    fn err(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError::sqlite(&self.path, source)
    }

    /// A second, read-only view of the ledger for planning while the writer
    /// thread owns the main connection.
    pub fn lookup(&self) -> Result<Lookup, LedgerError> {
        Lookup::open(self.path.clone())
    }

    /// Requests already made today (UTC), across runs.
    pub fn requests_today(&self) -> Result<u64, LedgerError> {
        self.conn
            .query_row(
                "SELECT count FROM requests_per_day WHERE day = ?1",
                params![schema::today()],
                |r| r.get::<_, u64>(0),
            )
            .optional()
            .map(|c| c.unwrap_or(0))
            .map_err(|e| self.err(e))
    }

    /// Name this run's inputs, in command-line order.
    pub fn add_sources(&mut self, names: &[String]) -> Result<(), LedgerError> {
        let tx = self
            .conn
            .transaction()
            .map_err(|e| LedgerError::sqlite(&self.path, e))?;
        for (i, name) in names.iter().enumerate() {
            tx.execute(
                "INSERT INTO sources (run_id, source, name) VALUES (?1, ?2, ?3)",
                params![self.run_id, i as i64, name],
            )
            .map_err(|e| LedgerError::sqlite(&self.path, e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Record how this run was started: its command line (never holding
    /// credentials: they come from the environment or a file) and the
    /// directory it ran in, so that `report` can read its inputs again.
    pub fn describe_run(&self, argv: &[String], cwd: &Path) -> Result<(), LedgerError> {
        let argv = serde_json::to_string(argv).unwrap_or_default();
        self.conn
            .execute(
                "UPDATE runs SET argv = ?1, cwd = ?2 WHERE id = ?3",
                params![argv, cwd.to_string_lossy(), self.run_id],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Switch off the journal: messages sent are not remembered, so a later
    /// run would send them again. Only for measuring what the bookkeeping
    /// costs (`cargo bench --bench e2e`); the command line cannot reach it.
    pub fn without_bookkeeping(&mut self) {
        self.journal = None;
    }

    /// Make what is sent survive the machine going down, not only the
    /// process being killed: each journal append reaches the disk before
    /// its request leaves, and each fold's commit before the journal files
    /// it folded are removed.
    pub fn sync_to_disk(&self) -> Result<(), LedgerError> {
        self.conn
            .execute_batch("PRAGMA synchronous=FULL")
            .map_err(|e| self.err(e))?;
        if let Some(journal) = &self.journal {
            journal.sync_to_disk();
        }
        Ok(())
    }

    /// Close the run with its exit code.
    pub fn finish(&self, exit_code: i32) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "UPDATE runs SET finished_at = ?1, exit_code = ?2 WHERE id = ?3",
                params![now(), exit_code, self.run_id],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    #[cfg(test)]
    fn prior(
        &self,
        conversation_id: &str,
        key: &crate::model::MessageKey,
    ) -> Option<crate::model::Prior> {
        outcomes::conversation(&self.conn, conversation_id)
            .unwrap()
            .remove(key)
            .map(lookup::prior_of)
    }
}

#[cfg(test)]
mod tests;
