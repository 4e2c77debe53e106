//! What earlier runs left for a message, read while the run plans.

use std::path::PathBuf;

use rusqlite::{params, Connection, OptionalExtension};

use super::{LedgerError, State};
use crate::model::{MessageKey, Prior};

/// Read-only lookups of earlier runs' messages, on a connection of its
/// own so that planning does not wait for the writer (WAL lets both work).
pub struct Lookup {
    conn: Connection,
    path: PathBuf,
    /// No earlier run recorded a message: a fresh ledger answers every
    /// lookup at once, without a query per planned message.
    empty: bool,
}

impl Lookup {
    pub(super) fn open(path: PathBuf) -> Result<Lookup, LedgerError> {
        let conn = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| LedgerError::sqlite(&path, e))?;
        let empty = conn
            .query_row("SELECT NOT EXISTS (SELECT 1 FROM messages)", [], |r| {
                r.get(0)
            })
            .map_err(|e| LedgerError::sqlite(&path, e))?;
        Ok(Lookup { conn, path, empty })
    }

    /// The API's id of the conversation an earlier run created for this
    /// external id, if any.
    pub fn conversation(&self, external_id: &str) -> Result<Option<String>, LedgerError> {
        self.conn
            .prepare_cached("SELECT api_id FROM conversations WHERE external_id = ?1")
            .and_then(|mut stmt| {
                stmt.query_row(params![external_id], |r| r.get(0))
                    .optional()
            })
            .map_err(|e| LedgerError::sqlite(&self.path, e))
    }

    /// What earlier runs did with this message, if anything.
    pub fn prior(&self, key: &MessageKey) -> Result<Option<Prior>, LedgerError> {
        if self.empty {
            return Ok(None);
        }
        prior(&self.conn, key).map_err(|e| LedgerError::sqlite(&self.path, e))
    }
}

pub(super) fn prior(conn: &Connection, key: &MessageKey) -> rusqlite::Result<Option<Prior>> {
    let mut stmt = conn.prepare_cached(
        "SELECT state, message_id FROM messages WHERE key = ?1 AND occurrence = ?2",
    )?;
    let found = stmt
        .query_row(params![&key.content.0[..], key.occurrence], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })
        .optional()?;
    Ok(found.map(|(state, message_id)| match state.parse() {
        Ok(State::Created | State::Exists) => Prior::Stored {
            message_id: message_id.map(Into::into),
        },
        Ok(State::Failed) => Prior::Failed,
        // A state this version does not know may mean stored: never resent
        // without being asked.
        Ok(State::Uncertain | State::InFlight) | Err(_) => Prior::Uncertain,
    }))
}
