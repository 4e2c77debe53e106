//! What earlier runs left for a message, read while the run plans.

use std::path::PathBuf;

use rusqlite::{params, Connection, OptionalExtension};

use super::outcomes::{Conversations, Recorded};
use super::{LedgerError, State};
use crate::model::{MessageKey, Prior};

/// Read-only lookups of earlier runs' messages, on a connection of its
/// own so that planning does not wait for the writer (WAL lets both work).
pub struct Lookup {
    conn: Connection,
    path: PathBuf,
    /// No earlier run recorded a message: a fresh ledger answers every
    /// lookup at once, without a query per planned conversation.
    empty: bool,
    conversations: Conversations,
}

impl Lookup {
    pub(super) fn open(path: PathBuf) -> Result<Lookup, LedgerError> {
        let conn = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| LedgerError::sqlite(&path, e))?;
        let empty = conn
            .query_row("SELECT NOT EXISTS (SELECT 1 FROM outcomes)", [], |r| {
                r.get(0)
            })
            .map_err(|e| LedgerError::sqlite(&path, e))?;
        Ok(Lookup {
            conn,
            path,
            empty,
            conversations: Conversations::default(),
        })
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

    /// What earlier runs did with this message of this conversation, if
    /// anything.
    pub fn prior(
        &self,
        conversation_id: &str,
        key: &MessageKey,
    ) -> Result<Option<Prior>, LedgerError> {
        if self.empty {
            return Ok(None);
        }
        self.conversations
            .get(&self.conn, conversation_id, key)
            .map(|found| found.map(prior_of))
            .map_err(|e| LedgerError::sqlite(&self.path, e))
    }
}

/// What planning makes of a message the ledger holds.
pub(super) fn prior_of(recorded: Recorded) -> Prior {
    match recorded.state {
        State::Created | State::Exists => Prior::Stored {
            message_id: recorded.message_id.map(Into::into),
        },
        State::Failed => Prior::Failed,
        State::Uncertain | State::InFlight => Prior::Uncertain,
    }
}
