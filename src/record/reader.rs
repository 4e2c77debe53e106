//! The ledger as `report` reads it: what its last run was, and what the
//! ledger holds for each message. Opening takes the run lock (a report of
//! a ledger a running import is writing would show its messages in flight
//! as not sent) and folds what a killed run left in its journal, as the
//! next run would; it registers no run.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use super::outcomes::{Conversations, Recorded};
use super::{fold, lock, schema, LedgerError};
use crate::model::MessageKey;

/// A run as the `runs` and `sources` tables remember it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastRun {
    pub id: i64,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `None`: it never finished (killed, or the machine went down).
    pub exit_code: Option<i32>,
    /// Its command line, when the ledger recorded it (not before this
    /// version).
    pub argv: Option<Vec<String>>,
    /// The directory it ran in: where its relative input paths lead.
    pub cwd: Option<PathBuf>,
    /// Its inputs as named on its command line, in order.
    pub sources: Vec<String>,
}

/// A ledger opened to report on, locked for this process.
pub struct Reader {
    conn: Connection,
    path: PathBuf,
    /// Messages a killed run left in flight, found `uncertain` now.
    pub recovered_in_flight: u64,
    conversations: Conversations,
    _lock: std::fs::File,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader, LedgerError> {
        let path = &super::resolve(path);
        if !path.is_file() {
            return Err(LedgerError::Missing {
                path: path.display().to_string(),
            });
        }
        let lock = lock::take(path).map_err(|e| match e {
            LedgerError::Locked { path, holder } => LedgerError::InUse { path, holder },
            other => other,
        })?;
        let conn = schema::open(path)?;
        let recovered = fold::settle(&conn, path)?;
        Ok(Reader {
            conn,
            path: path.to_path_buf(),
            recovered_in_flight: recovered,
            conversations: Conversations::default(),
            _lock: lock,
        })
    }

    fn err(&self, e: rusqlite::Error) -> LedgerError {
        LedgerError::sqlite(&self.path, e)
    }

    /// The last run that got as far as reading its inputs: the last one
    /// whose exit code is not 2 (nothing sent: a typo in a file name, a bad
    /// flag), a killed one included.
    pub fn last_run(&self) -> Result<Option<LastRun>, LedgerError> {
        let run = self
            .conn
            .query_row(
                "SELECT id, started_at, finished_at, exit_code, argv, cwd FROM runs
                 WHERE exit_code IS NULL OR exit_code != 2 ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<i32>>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, Option<String>>(5)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((id, started_at, finished_at, exit_code, argv, cwd)) = run else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM sources WHERE run_id = ?1 ORDER BY source")
            .map_err(|e| self.err(e))?;
        let sources = stmt
            .query_map(params![id], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(Some(LastRun {
            id,
            started_at,
            finished_at,
            exit_code,
            argv: argv.and_then(|a| serde_json::from_str(&a).ok()),
            cwd: cwd.map(PathBuf::from),
            sources,
        }))
    }

    /// What the ledger holds for this message of this conversation, if
    /// anything.
    pub fn entry(
        &self,
        conversation_id: &str,
        key: &MessageKey,
    ) -> Result<Option<Recorded>, LedgerError> {
        self.conversations
            .get(&self.conn, conversation_id, key)
            .map_err(|e| self.err(e))
    }

    /// The API's id of the conversation created for this external id.
    pub fn conversation(&self, external_id: &str) -> Result<Option<String>, LedgerError> {
        self.conn
            .prepare_cached("SELECT api_id FROM conversations WHERE external_id = ?1")
            .and_then(|mut stmt| {
                stmt.query_row(params![external_id], |r| r.get(0))
                    .optional()
            })
            .map_err(|e| self.err(e))
    }
}
