//! Folding the journal into the `outcomes` table: what each worker wrote
//! (intents and outcomes), aggregated per message, a row per
//! conversation, in one transaction.

use std::collections::HashMap;

use rusqlite::{params, Connection};

use super::journal::{self, Record, Sealed};
use super::outcomes;
use super::schema::{journal_folded, today};
use super::{now, LedgerError};
use crate::model::MessageKey;

/// How many messages ahead of the one being encoded their last records
/// are fetched into the cache: a miss takes about a tenth of a
/// microsecond. Chosen when each message took an upsert of about a
/// microsecond; encoding one into its conversation's row takes less, so
/// the fetch still lands before it is needed.
const PREFETCH_AHEAD: usize = 8;

/// What a killed run left, settled as a ledger is opened: its journal
/// folded, and every message it left in flight `uncertain` from now on
/// (the request may have been stored). Returns how many were in flight.
pub fn settle(conn: &Connection, state: &std::path::Path) -> Result<u64, LedgerError> {
    let leftovers = journal::files(state).map_err(|e| LedgerError::io(state, e))?;
    fold_leftovers(conn, state, &leftovers)?;
    outcomes::recover_in_flight(conn).map_err(|e| LedgerError::sqlite(state, e))
}

/// Fold what a killed run left in its journal (`leftovers`, oldest first),
/// each commit on the disk before its files are removed: were the machine
/// to go down just after, a commit still in the page cache would be lost
/// with the journal that held the same records.
fn fold_leftovers(
    conn: &Connection,
    state: &std::path::Path,
    leftovers: &[Sealed],
) -> Result<(), LedgerError> {
    if leftovers.is_empty() {
        return Ok(());
    }
    let sql = |e| LedgerError::sqlite(state, e);
    let synchronous: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .map_err(sql)?;
    conn.execute_batch("PRAGMA synchronous=FULL").map_err(sql)?;
    for sealed in leftovers {
        fold_journal(conn, sealed)?;
    }
    conn.execute_batch(&format!("PRAGMA synchronous={synchronous}"))
        .map_err(sql)
}

/// Fold a sealed journal file into `outcomes` and delete it. The file's
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
        // Where each message's records are, not the records: a large fold
        // holds hundreds of thousands, and the files hold the rest. Room
        // for the most the files can hold, taken at once: only the pages
        // written become memory, where growing by doubling held the old
        // vector and its copy at once, a fold's worth of memory more at
        // the peak of a long run. The bound is about three times what the
        // files hold: where that much address space cannot be had (a
        // 32-bit build, strict overcommit, a killed run's huge journal),
        // the vector grows as before instead of the process aborting.
        let mut seen: Vec<Seen> = Vec::new();
        let _ = seen.try_reserve_exact(files.iter().map(journal::Mapped::most_messages).sum());
        // Each conversation's id once, numbered as first seen; a worker
        // writes one conversation's records in a row, so most records
        // find theirs without hashing.
        let mut names = Names::default();
        for (i, file) in (0u32..).zip(&files) {
            let run = file.scan(|offset, r| match r {
                Record::Message(m) => {
                    requests += u64::from(m.attempts);
                    // A worker writes a message's outcome right after its
                    // intent, in its own lane: merged here, the sort and
                    // the rows below take each message once.
                    match seen.last_mut() {
                        Some(last) if last.key == m.key && last.file == i => {
                            *last = last.then(Seen::new(i, offset, &m, last.conversation))
                        }
                        _ => {
                            let conversation = names.number(&m.conversation_id);
                            seen.push(Seen::new(i, offset, &m, conversation))
                        }
                    }
                }
                Record::Conversation {
                    external_id,
                    api_id,
                } => conversations.push((external_id, api_id)),
                Record::Requests { count } => requests += u64::from(count),
            });
            run_id = run_id.max(run);
        }
        // Conversations in id order, as the table's index holds them, and
        // in each its messages in key order; then file and offset, the
        // order they were pushed in, so that a message's records stay in
        // the order they were written. An unstable sort: a stable one
        // allocates half the vector again.
        let (rank, names) = names.ranked();
        for s in &mut seen {
            s.conversation = rank[s.conversation as usize];
        }
        seen.sort_unstable_by_key(|s| (s.conversation, s.key, s.file, s.last));
        // A record's file and its offset there, as `Seen` holds them.
        let locate = |file: u32, offset: u64| {
            Some((
                files.get(usize::try_from(file).ok()?)?,
                usize::try_from(offset).ok()?,
            ))
        };
        let message = |file: u32, offset: u64| {
            let (file, at) = locate(file, offset)?;
            match file.at(at) {
                Some(Record::Message(m)) => Some(m),
                _ => None,
            }
        };
        let tx = conn.unchecked_transaction().map_err(sql)?;
        {
            let stamp = now();
            let mut row = outcomes::Row::new();
            let mut start = 0;
            // One row per conversation, each of its messages once: its
            // last state, its id if any record has one, the requests of
            // all its records.
            for conversation in seen.chunk_by(|a, b| a.conversation == b.conversation) {
                row.clear();
                for records in conversation.chunk_by(|a, b| a.key == b.key) {
                    // The records are read back in key order, all over the
                    // files: each a cache miss, which took a tenth of the
                    // ledger thread's time. Asked for a few messages
                    // ahead, each is there by the time the one before is
                    // encoded.
                    if let Some((file, at)) = seen
                        .get(start + PREFETCH_AHEAD)
                        .and_then(|ahead| locate(ahead.file, ahead.last))
                    {
                        file.prefetch(at);
                    }
                    start += records.len();
                    let Some(s) = records.iter().copied().reduce(Seen::then) else {
                        continue;
                    };
                    let Some(last) = message(s.file, s.last) else {
                        continue;
                    };
                    let message_id = match s.id() {
                        Some(at) if at == (s.file, s.last) => last.message_id.clone(),
                        Some((file, offset)) => message(file, offset).and_then(|m| m.message_id),
                        None => None,
                    };
                    row.push(s.key, last.state, s.attempts, run_id, message_id.as_deref());
                }
                let name = names.get(conversation[0].conversation as usize);
                if let Some(name) = name.filter(|_| !row.is_empty()) {
                    row.insert(&tx, name, sealed.seq).map_err(sql)?;
                }
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

/// A message's records in one fold, merged: where its last record is (its
/// state and conversation), where the last one with the API's id is, and
/// the requests they account for, and its conversation. 56 bytes, not the
/// 72 of `usize` indices and an `Option` of a pair: a fold holds one per
/// message, and a large ledger's fold hundreds of thousands (see
/// `FOLD_SHARE`).
#[derive(Clone, Copy)]
struct Seen {
    key: MessageKey,
    /// Its conversation: while scanning, its number in [`Names`]; then
    /// its rank in id order.
    conversation: u32,
    attempts: u32,
    /// The last record's file, as an index into the fold's files, and
    /// its offset there.
    file: u32,
    last: u64,
    /// The same for the last record with the API's id; `offset` is
    /// [`NO_ID`] when none has one.
    id_file: u32,
    id_offset: u64,
}

const _: () = assert!(std::mem::size_of::<Seen>() == 56);

/// `Seen::id_offset` of a message none of whose records has the API's id.
const NO_ID: u64 = u64::MAX;

impl Seen {
    fn new(file: u32, offset: usize, m: &journal::Message<'_>, conversation: u32) -> Seen {
        let offset = offset as u64;
        Seen {
            key: m.key,
            conversation,
            attempts: m.attempts,
            file,
            last: offset,
            id_file: file,
            id_offset: if m.message_id.is_some() {
                offset
            } else {
                NO_ID
            },
        }
    }

    /// This message's records, then `later`'s (later in the same file, or
    /// in another).
    fn then(self, later: Seen) -> Seen {
        let (id_file, id_offset) = if later.id_offset == NO_ID {
            (self.id_file, self.id_offset)
        } else {
            (later.id_file, later.id_offset)
        };
        Seen {
            key: self.key,
            conversation: self.conversation,
            attempts: self.attempts.saturating_add(later.attempts),
            file: later.file,
            last: later.last,
            id_file,
            id_offset,
        }
    }

    /// Where the last record with the API's id is, if any.
    fn id(&self) -> Option<(u32, u64)> {
        (self.id_offset != NO_ID).then_some((self.id_file, self.id_offset))
    }
}

/// A fold's conversation ids, each numbered once.
#[derive(Default)]
struct Names {
    numbers: HashMap<String, u32>,
    names: Vec<String>,
    /// The last one numbered: the next record's, most of the time.
    last: Option<u32>,
}

impl Names {
    fn number(&mut self, id: &str) -> u32 {
        if let Some(last) = self.last {
            if self.names[last as usize] == id {
                return last;
            }
        }
        let n = match self.numbers.get(id) {
            Some(&n) => n,
            None => {
                let n = self.names.len() as u32;
                self.numbers.insert(id.to_owned(), n);
                self.names.push(id.to_owned());
                n
            }
        };
        self.last = Some(n);
        n
    }

    /// Each number's rank in id order, and the ids in that order (indexed
    /// by rank), from one sort.
    fn ranked(mut self) -> (Vec<u32>, Vec<String>) {
        let mut order: Vec<u32> = (0..self.names.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| self.names[a as usize].cmp(&self.names[b as usize]));
        let mut rank = vec![0; order.len()];
        let mut sorted = Vec::with_capacity(order.len());
        for (r, n) in order.into_iter().enumerate() {
            rank[n as usize] = r as u32;
            sorted.push(std::mem::take(&mut self.names[n as usize]));
        }
        (rank, sorted)
    }
}
