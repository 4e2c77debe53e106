//! Folding the journal into the `messages` table: what each worker wrote
//! (intents and outcomes), aggregated per message, in one transaction.

use rusqlite::{params, Connection};

use super::journal::{self, Record, Sealed};
use super::schema::{journal_folded, today};
use super::{now, LedgerError};
use crate::model::MessageKey;

/// Fold a sealed journal file into `messages` and delete it. The file's
/// number is stored in the same commit, so a file folded before a crash
/// (and not yet deleted) is never counted twice.
pub fn fold_journal(conn: &Connection, sealed: &Sealed) -> Result<(), LedgerError> {
    let first = &sealed.paths[0];
    let sql = |e| LedgerError::sqlite(first, e);
    let folded = journal_folded(conn).map_err(sql)?;
    if sealed.seq > folded {
        let files = sealed
            .paths
            .iter()
            .map(|path| journal::Mapped::open(path).map_err(|e| LedgerError::io(path, e)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut run_id = 0;
        let mut requests = 0u64;
        let mut conversations = Vec::new();
        // Where each message record is, not the record: a large fold holds
        // hundreds of thousands, and the files hold the rest.
        let mut at: Vec<(MessageKey, usize, usize)> = Vec::new();
        for (i, file) in files.iter().enumerate() {
            let run = file.scan(|offset, r| match r {
                Record::Message(m) => {
                    requests += u64::from(m.attempts);
                    at.push((m.key, i, offset));
                }
                Record::Conversation {
                    external_id,
                    api_id,
                } => conversations.push((external_id, api_id)),
                Record::Requests { count } => requests += u64::from(count),
            });
            run_id = run_id.max(run);
        }
        // Key order, so the upserts walk the table's B-tree instead of
        // jumping; a stable sort keeps each message's records in file order.
        at.sort_by_key(|&(key, ..)| key);
        let message = |&(_, file, offset): &(MessageKey, usize, usize)| match files[file].at(offset)
        {
            Some(Record::Message(m)) => Some(m),
            _ => None,
        };
        let tx = conn.unchecked_transaction().map_err(sql)?;
        {
            let stamp = now();
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO messages (key, occurrence, conversation_id, state, message_id, attempts, run_id, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (key, occurrence) DO UPDATE SET
                        conversation_id = excluded.conversation_id,
                        state = excluded.state,
                        message_id = coalesce(excluded.message_id, messages.message_id),
                        attempts = messages.attempts + excluded.attempts,
                        run_id = excluded.run_id,
                        updated_at = excluded.updated_at",
                )
                .map_err(sql)?;
            // One row per message: its last state and conversation, its id
            // if any record has one, the requests of all its records.
            for records in at.chunk_by(|a, b| a.0 == b.0) {
                let Some(m) = records
                    .iter()
                    .filter_map(message)
                    .reduce(|mut kept, later| {
                        kept.conversation_id = later.conversation_id;
                        kept.state = later.state;
                        kept.message_id = later.message_id.or(kept.message_id);
                        kept.attempts += later.attempts;
                        kept
                    })
                else {
                    continue;
                };
                upsert
                    .execute(params![
                        &m.key.content.0[..],
                        m.key.occurrence,
                        m.conversation_id,
                        m.state.as_str(),
                        m.message_id,
                        m.attempts,
                        run_id,
                        stamp
                    ])
                    .map_err(sql)?;
            }
            let mut conversation = tx
                .prepare_cached(
                    "INSERT INTO conversations (external_id, api_id, run_id, created_at)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (external_id) DO UPDATE SET api_id = excluded.api_id",
                )
                .map_err(sql)?;
            for (external_id, api_id) in &conversations {
                conversation
                    .execute(params![external_id, api_id, run_id, stamp])
                    .map_err(sql)?;
            }
            if requests > 0 {
                tx.execute(
                    "INSERT INTO requests_per_day (day, count) VALUES (?1, ?2)
                     ON CONFLICT (day) DO UPDATE SET count = count + excluded.count",
                    params![today(), requests],
                )
                .map_err(sql)?;
            }
            tx.execute(
                "INSERT INTO meta (name, value) VALUES ('journal_folded', ?1)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![sealed.seq.to_string()],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
    }
    for path in &sealed.paths {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(LedgerError::io(path, e))
            }
            _ => {}
        }
    }
    Ok(())
}
