//! The `outcomes` table: what the ledger knows of each message, one row
//! per conversation per fold.
//!
//! A row per message made every fold insert one B-tree cell per message at
//! a random place (the keys are content hashes) and rewrite the pages they
//! landed on: that cost the ledger thread about a microsecond and a half
//! of CPU per message, and the run its last fold and checkpoint. Here a
//! fold appends one row per conversation it saw, holding that
//! conversation's messages as they stood at the fold; rows go to the end
//! of the table (ascending rowids), and only the small index on
//! `(conversation_id, fold)` takes random inserts.
//!
//! A message's state is then its conversation's rows taken in fold order
//! ([`Recorded::then`]), as the per-message upserts merged them before:
//! the last state, the last id any record had, the requests of all.
//! Lookups read a conversation's rows at once: planning and `report` go
//! conversation by conversation, so one range read serves all its
//! messages ([`Conversations`]).
//!
//! A row's `messages` blob: a version byte (1), then per message its
//! 16-byte content key, then as LEB128 its occurrence, its state's code,
//! its attempts, its run, and its id's length plus one (0: no id), then
//! the id. `in_flight` counts the messages the row leaves in flight, so
//! that opening the ledger finds them without reading every row.

use std::collections::HashMap;

use rusqlite::{params, Connection};

use super::journal::State;
use super::schema::has_table;
use crate::model::{ContentKey, MessageKey};

/// The first byte of every `messages` blob this program writes.
const VERSION: u8 = 1;

/// What the ledger holds for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub state: State,
    pub message_id: Option<String>,
    /// Requests made for it, across runs.
    pub attempts: u32,
    /// The run that last recorded it.
    pub run_id: i64,
}

impl Recorded {
    /// This message as an earlier row left it, then as `later` did: what
    /// the per-message upsert did (last state and run, the last id known,
    /// the requests of both).
    fn then(self, later: Recorded) -> Recorded {
        Recorded {
            state: later.state,
            message_id: later.message_id.or(self.message_id),
            attempts: self.attempts.saturating_add(later.attempts),
            run_id: later.run_id,
        }
    }
}

/// One conversation's messages in one fold, encoded as a row holds them.
pub(super) struct Row {
    blob: Vec<u8>,
    in_flight: u32,
}

impl Row {
    pub(super) fn new() -> Row {
        Row {
            blob: vec![VERSION],
            in_flight: 0,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.blob.len() <= 1
    }

    pub(super) fn clear(&mut self) {
        self.blob.truncate(1);
        self.in_flight = 0;
    }

    pub(super) fn push(
        &mut self,
        key: MessageKey,
        state: State,
        attempts: u32,
        run_id: i64,
        message_id: Option<&str>,
    ) {
        let b = &mut self.blob;
        b.extend_from_slice(&key.content.0);
        put(b, u64::from(key.occurrence));
        put(b, u64::from(state.code()));
        put(b, u64::from(attempts));
        put(b, run_id.max(0) as u64);
        match message_id {
            Some(id) => {
                put(b, id.len() as u64 + 1);
                b.extend_from_slice(id.as_bytes());
            }
            None => put(b, 0),
        }
        if state == State::InFlight {
            self.in_flight += 1;
        }
    }

    /// Append this row to `outcomes`.
    pub(super) fn insert(
        &self,
        conn: &Connection,
        conversation_id: &str,
        fold: u64,
    ) -> rusqlite::Result<()> {
        conn.prepare_cached(
            "INSERT INTO outcomes (conversation_id, fold, in_flight, messages)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            conversation_id,
            fold,
            self.in_flight,
            &self.blob[..]
        ])
        .map(|_| ())
    }
}

/// LEB128: most values here (occurrences, states, attempts, runs, ids'
/// lengths) take one byte.
fn put(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

fn get(p: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = p.split_first()?;
        *p = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// The messages of one row's blob, in the order they were written; `None`
/// if it is not one this program wrote.
fn decode(blob: &[u8]) -> Option<Vec<(MessageKey, Recorded)>> {
    let (&version, mut p) = blob.split_first()?;
    if version != VERSION {
        return None;
    }
    let mut out = Vec::new();
    while !p.is_empty() {
        let (content, rest) = p.split_at_checked(16)?;
        p = rest;
        let key = MessageKey {
            content: ContentKey(content.try_into().ok()?),
            occurrence: u32::try_from(get(&mut p)?).ok()?,
        };
        let state = State::from_code(u8::try_from(get(&mut p)?).ok()?)?;
        let attempts = u32::try_from(get(&mut p)?).ok()?;
        let run_id = i64::try_from(get(&mut p)?).ok()?;
        let message_id = match usize::try_from(get(&mut p)?).ok()? {
            0 => None,
            n => {
                let (id, rest) = p.split_at_checked(n - 1)?;
                p = rest;
                Some(std::str::from_utf8(id).ok()?.to_owned())
            }
        };
        out.push((
            key,
            Recorded {
                state,
                message_id,
                attempts,
                run_id,
            },
        ));
    }
    Some(out)
}

/// A blob this program cannot read, as SQLite's error for a bad column.
fn damaged(conversation_id: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        3,
        rusqlite::types::Type::Blob,
        format!("the ledger's record of conversation {conversation_id:?} is damaged, or written by a newer version").into(),
    )
}

/// A conversation's rows in fold order: each row's rowid, what it left in
/// flight (`in_flight`), and its messages.
type Rows = Vec<(i64, u32, Vec<(MessageKey, Recorded)>)>;

fn rows(conn: &Connection, conversation_id: &str) -> rusqlite::Result<Rows> {
    conn.prepare_cached(
        "SELECT rowid, in_flight, messages FROM outcomes
         WHERE conversation_id = ?1 ORDER BY fold",
    )?
    .query_map(params![conversation_id], |r| {
        let blob = r.get_ref(2)?.as_blob()?;
        let messages = decode(blob).ok_or_else(|| damaged(conversation_id))?;
        Ok((r.get(0)?, r.get(1)?, messages))
    })?
    .collect()
}

/// Every message of a conversation the ledger knows, merged over its rows.
pub(super) fn conversation(
    conn: &Connection,
    conversation_id: &str,
) -> rusqlite::Result<HashMap<MessageKey, Recorded>> {
    let mut merged: HashMap<MessageKey, Recorded> = HashMap::new();
    for (_, _, messages) in rows(conn, conversation_id)? {
        for (key, later) in messages {
            match merged.remove(&key) {
                Some(earlier) => merged.insert(key, earlier.then(later)),
                None => merged.insert(key, later),
            };
        }
    }
    Ok(merged)
}

/// Every message the ledger knows, with its conversation, in key order.
#[cfg(test)]
pub(super) fn all(conn: &Connection) -> rusqlite::Result<Vec<(String, MessageKey, Recorded)>> {
    let ids: Vec<String> = conn
        .prepare("SELECT DISTINCT conversation_id FROM outcomes")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for id in ids {
        for (key, recorded) in conversation(conn, &id)? {
            out.push((id.clone(), key, recorded));
        }
    }
    out.sort_by_key(|(_, key, _)| *key);
    Ok(out)
}

/// The one conversation read last, kept for its next message: lookups come
/// conversation by conversation.
#[derive(Default)]
pub(super) struct Conversations {
    last: std::cell::RefCell<Option<(String, HashMap<MessageKey, Recorded>)>>,
}

impl Conversations {
    pub(super) fn get(
        &self,
        conn: &Connection,
        conversation_id: &str,
        key: &MessageKey,
    ) -> rusqlite::Result<Option<Recorded>> {
        let mut last = self.last.borrow_mut();
        if last.as_ref().is_none_or(|(id, _)| id != conversation_id) {
            *last = Some((
                conversation_id.to_owned(),
                conversation(conn, conversation_id)?,
            ));
        }
        Ok(last.as_ref().and_then(|(_, m)| m.get(key)).cloned())
    }
}

/// Messages a run killed mid-request left in flight: each row that left
/// one whose later rows say nothing more of it now says `uncertain`
/// there, and no row is marked as leaving any. Returns how many. The
/// request may have been stored, so such a message is never sent again
/// unless the user asks.
pub(super) fn recover_in_flight(conn: &Connection) -> rusqlite::Result<u64> {
    let conversations: Vec<String> = conn
        .prepare("SELECT DISTINCT conversation_id FROM outcomes WHERE in_flight > 0")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut recovered = 0;
    for conversation_id in conversations {
        let rows = rows(conn, &conversation_id)?;
        // The row each message was last recorded in.
        let mut last: HashMap<MessageKey, usize> = HashMap::new();
        for (i, (_, _, messages)) in rows.iter().enumerate() {
            for (key, _) in messages {
                last.insert(*key, i);
            }
        }
        // Only a marked row can be the last to leave one in flight: rows
        // are marked as written, and unmarked here once settled.
        for (i, (rowid, _, messages)) in rows.iter().enumerate().filter(|(_, r)| r.1 > 0) {
            let mut row = Row::new();
            for (key, r) in messages {
                let state = if r.state == State::InFlight && last.get(key) == Some(&i) {
                    recovered += 1;
                    State::Uncertain
                } else {
                    r.state
                };
                row.push(*key, state, r.attempts, r.run_id, r.message_id.as_deref());
            }
            conn.prepare_cached(
                "UPDATE outcomes SET messages = ?1, in_flight = 0 WHERE rowid = ?2",
            )?
            .execute(params![&row.blob[..], rowid])?;
        }
    }
    Ok(recovered)
}

/// Move a ledger of the programs before this one to `outcomes`, once, in
/// the transaction that opens the ledger's tables: its `messages` rows
/// become one row per conversation (fold 0, before any this program
/// folds), and `messages` becomes a view that nothing can write. Earlier programs, which would know nothing of
/// `outcomes` and send everything again, then fail as they open the
/// ledger (they mark what was in flight with an `UPDATE messages`), before
/// sending anything. Returns whether there was such a table.
pub(super) fn upgrade(conn: &Connection) -> rusqlite::Result<bool> {
    // The `messages` table of the programs before this one.
    let moved = has_table(conn, "messages")?;
    if moved {
        {
            let mut stmt = conn.prepare(
                "SELECT conversation_id, key, occurrence, state, attempts, run_id, message_id
                 FROM messages ORDER BY conversation_id, key, occurrence",
            )?;
            let mut rows = stmt.query([])?;
            let mut current: Option<String> = None;
            let mut row = Row::new();
            while let Some(r) = rows.next()? {
                let conversation_id: String = r.get(0)?;
                if current.as_deref() != Some(conversation_id.as_str()) {
                    if let Some(previous) = current.take() {
                        row.insert(conn, &previous, 0)?;
                    }
                    row.clear();
                    current = Some(conversation_id);
                }
                let content: Vec<u8> = r.get(1)?;
                let Ok(content) = <[u8; 16]>::try_from(content.as_slice()) else {
                    continue;
                };
                // A state this program does not know may mean stored.
                let state = r.get::<_, String>(3)?.parse().unwrap_or(State::Uncertain);
                let message_id: Option<String> = r.get(6)?;
                row.push(
                    MessageKey {
                        content: ContentKey(content),
                        occurrence: r.get(2)?,
                    },
                    state,
                    r.get(4)?,
                    r.get(5)?,
                    message_id.as_deref(),
                );
            }
            if let Some(last) = current {
                row.insert(conn, &last, 0)?;
            }
        }
        conn.execute_batch("DROP TABLE messages")?;
    }
    conn.execute_batch(GUARD)?;
    Ok(moved)
}

/// What stands where earlier programs kept a row per message: a view of
/// no rows, which they cannot write to.
const GUARD: &str = "CREATE VIEW IF NOT EXISTS messages AS
    SELECT NULL AS key, NULL AS occurrence, NULL AS conversation_id, NULL AS state,
           NULL AS message_id, NULL AS attempts, NULL AS run_id, NULL AS updated_at
    WHERE 0";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_reads_back_as_written() {
        let key = |n: u8, occurrence| MessageKey {
            content: ContentKey([n; 16]),
            occurrence,
        };
        let mut row = Row::new();
        row.push(key(1, 0), State::Created, 1, 7, Some("m-1"));
        row.push(key(2, 300), State::InFlight, 0, 1 << 40, None);
        row.push(key(3, 0), State::Failed, 200, 7, Some(""));
        assert_eq!(row.in_flight, 1);
        let back = decode(&row.blob).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[0].0, key(1, 0));
        assert_eq!(back[0].1.message_id.as_deref(), Some("m-1"));
        assert_eq!(back[1].0, key(2, 300));
        assert_eq!(back[1].1.run_id, 1 << 40);
        assert_eq!(back[1].1.state, State::InFlight);
        assert_eq!(back[2].1.attempts, 200);
        assert_eq!(back[2].1.message_id.as_deref(), Some(""));
        // Cut anywhere, it is damaged, never misread.
        for cut in 1..row.blob.len() {
            let read = decode(&row.blob[..cut]);
            assert!(read.is_none() || read.unwrap().len() < 3, "cut at {cut}");
        }
        assert!(decode(&[2]).is_none());
    }

    #[test]
    fn rows_merge_as_the_upserts_did() {
        let first = Recorded {
            state: State::InFlight,
            message_id: Some("m".into()),
            attempts: 1,
            run_id: 1,
        };
        let later = Recorded {
            state: State::Uncertain,
            message_id: None,
            attempts: 2,
            run_id: 2,
        };
        assert_eq!(
            first.then(later),
            Recorded {
                state: State::Uncertain,
                message_id: Some("m".into()),
                attempts: 3,
                run_id: 2,
            }
        );
    }
}
