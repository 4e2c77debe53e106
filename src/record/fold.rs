//! Folding the journal into the `messages` table: what each worker wrote
//! (intents and outcomes), aggregated per message, in one transaction.

use std::borrow::Cow;

use rusqlite::{params, Connection};

use super::journal::{self, Message, Record, Sealed, State};
use super::schema::{journal_folded, today};
use super::{now, LedgerError};
use crate::model::MessageKey;

/// What one journal file says about one message, in the file's order.
struct Folded {
    conversation_id: String,
    state: State,
    message_id: Option<String>,
    attempts: u32,
}

/// Fold a sealed journal file into `messages` and delete it. The file's
/// number is stored in the same commit, so a file folded before a crash
/// (and not yet deleted) is never counted twice.
pub fn fold_journal(conn: &Connection, sealed: &Sealed) -> Result<(), LedgerError> {
    let first = &sealed.paths[0];
    let sql = |e| LedgerError::sqlite(first, e);
    let folded = journal_folded(conn).map_err(sql)?;
    if sealed.seq > folded {
        let mut run_id = 0;
        let mut records = Vec::new();
        for path in &sealed.paths {
            let (run, mut more) = journal::read(path).map_err(|e| LedgerError::io(path, e))?;
            run_id = run_id.max(run);
            records.append(&mut more);
        }
        let mut requests = 0u64;
        let mut conversations = Vec::new();
        let mut records: Vec<Message<'static>> = records
            .into_iter()
            .filter_map(|r| match r {
                Record::Message(m) => {
                    requests += u64::from(m.attempts);
                    Some(m)
                }
                Record::Conversation {
                    external_id,
                    api_id,
                } => {
                    conversations.push((external_id, api_id));
                    None
                }
                Record::Requests { count } => {
                    requests += u64::from(count);
                    None
                }
            })
            .collect();
        // Key order, so the upserts walk the table's B-tree instead of
        // jumping; a stable sort keeps each message's records in file order.
        records.sort_by_key(|r| r.key);
        let mut messages: Vec<(MessageKey, Folded)> = Vec::with_capacity(records.len());
        for r in records {
            match messages.last_mut() {
                Some((last, m)) if *last == r.key => {
                    m.conversation_id = r.conversation_id.into_owned();
                    m.state = r.state;
                    m.message_id = r.message_id.map(Cow::into_owned).or(m.message_id.take());
                    m.attempts += r.attempts;
                }
                _ => messages.push((
                    r.key,
                    Folded {
                        conversation_id: r.conversation_id.into_owned(),
                        state: r.state,
                        message_id: r.message_id.map(Cow::into_owned),
                        attempts: r.attempts,
                    },
                )),
            }
        }
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
            for (key, m) in &messages {
                upsert
                    .execute(params![
                        &key.content.0[..],
                        key.occurrence,
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
