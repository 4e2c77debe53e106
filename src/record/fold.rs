//! Folding the journal into the `messages` table: what each worker wrote
//! (intents and outcomes), aggregated per message, in one transaction.

use rusqlite::{params, Connection};

use std::borrow::Cow;

use super::journal::{self, Record, Sealed, State};
use super::schema::{journal_folded, today};
use super::{now, LedgerError};
use crate::model::MessageKey;

/// How many messages ahead of the upserts their last records are fetched
/// into the cache: an upsert takes about a microsecond, a miss a tenth.
const PREFETCH_AHEAD: usize = 8;

/// Fold what a killed run left in its journal (`leftovers`, oldest first),
/// each commit on the disk before its files are removed: were the machine
/// to go down just after, a commit still in the page cache would be lost
/// with the journal that held the same records.
pub fn fold_leftovers(
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
        for (i, file) in (0u32..).zip(&files) {
            let run = file.scan(|offset, r| match r {
                Record::Message(m) => {
                    requests += u64::from(m.attempts);
                    // A worker writes a message's outcome right after its
                    // intent, in its own lane: merged here, the sort and
                    // the upserts below take each message once.
                    match seen.last_mut() {
                        Some(last) if last.key == m.key && last.file == i => {
                            *last = last.then(Seen::new(i, offset, &m))
                        }
                        _ => seen.push(Seen::new(i, offset, &m)),
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
        // Key order, so the upserts walk the table's B-tree instead of
        // jumping; then file and offset, the order they were pushed in, so
        // that a message's records stay in the order they were written. An
        // unstable sort: a stable one allocates half the vector again.
        seen.sort_unstable_by_key(|s| (s.key, s.file, s.last));
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
            let mut upserts = Upserts::new(&tx, run_id).map_err(sql)?;
            // One row per message: its last state and conversation, its id
            // if any record has one, the requests of all its records.
            let mut start = 0;
            for records in seen.chunk_by(|a, b| a.key == b.key) {
                // The records are read back in key order, all over the
                // files: each a cache miss, which took a tenth of the
                // ledger thread's time. Asked for a few messages ahead,
                // each is there by the time SQLite is done with the ones
                // before.
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
                upserts
                    .push(Row {
                        key: s.key,
                        attempts: s.attempts,
                        conversation_id: last.conversation_id,
                        state: last.state,
                        message_id,
                    })
                    .map_err(sql)?;
            }
            upserts.flush().map_err(sql)?;
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

/// Messages upserted by one statement. A tenth of the ledger thread's
/// time went to starting and ending statements (one per message): 100,000
/// upserts in four folds took 0.36-0.41 s of CPU one row at a time,
/// 0.33-0.37 s in statements of 8 to 32 rows.
pub(super) const ROWS_PER_UPSERT: usize = 16;

/// The parameters of each row after the one the fold's rows share.
const PER_ROW: usize = 6;

/// The first of row `r`'s parameters in a statement.
fn first_param(r: usize) -> usize {
    2 + r * PER_ROW
}

/// The upsert of `rows` messages, in one statement. ?1 is the run, the
/// same for every row.
///
/// `updated_at` is written empty: nothing reads it, and when a row was
/// stored is its run's (`runs.started_at` to `finished_at`). Its 24 bytes
/// of time were a fifth of a row, and every fold writes each page its rows
/// land on twice (the write-ahead log, then the checkpoint): folding
/// 100,000 messages in two folds took 139 ms of CPU without them against
/// 171 ms with. Programs before this one wrote the time there, and read it
/// no more than this one does.
fn upsert_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let own: Vec<String> = (first_param(r)..first_param(r + 1))
                .map(|p| format!("?{p}"))
                .collect();
            format!("({}, ?1, '')", own.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO messages (key, occurrence, conversation_id, state, message_id, attempts, run_id, updated_at)
         VALUES {}
         ON CONFLICT (key, occurrence) DO UPDATE SET
            conversation_id = excluded.conversation_id,
            state = excluded.state,
            message_id = coalesce(excluded.message_id, messages.message_id),
            attempts = messages.attempts + excluded.attempts,
            run_id = excluded.run_id,
            updated_at = excluded.updated_at",
        values.join(", ")
    )
}

/// One message's row, as the fold upserts it.
struct Row<'a> {
    key: MessageKey,
    attempts: u32,
    conversation_id: Cow<'a, str>,
    state: State,
    message_id: Option<Cow<'a, str>>,
}

/// Rows gathered until a statement's worth, then upserted together. Each
/// key comes once per fold (`Seen` merges a message's records), so no
/// statement holds two rows for one key.
struct Upserts<'conn, 'a> {
    conn: &'conn Connection,
    full: rusqlite::CachedStatement<'conn>,
    run_id: i64,
    rows: Vec<Row<'a>>,
}

impl<'conn, 'a> Upserts<'conn, 'a> {
    fn new(conn: &'conn Connection, run_id: i64) -> rusqlite::Result<Self> {
        let mut full = conn.prepare_cached(&upsert_sql(ROWS_PER_UPSERT))?;
        full.raw_bind_parameter(1, run_id)?;
        Ok(Upserts {
            conn,
            full,
            run_id,
            rows: Vec::with_capacity(ROWS_PER_UPSERT),
        })
    }

    fn push(&mut self, row: Row<'a>) -> rusqlite::Result<()> {
        self.rows.push(row);
        if self.rows.len() == ROWS_PER_UPSERT {
            Self::execute(&mut self.full, &self.rows)?;
            self.rows.clear();
        }
        Ok(())
    }

    /// Upsert the rows left, fewer than a statement's worth.
    fn flush(&mut self) -> rusqlite::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let mut stmt = self.conn.prepare(&upsert_sql(self.rows.len()))?;
        // The run is bound once per statement: a reset keeps its bindings.
        stmt.raw_bind_parameter(1, self.run_id)?;
        Self::execute(&mut stmt, &self.rows)?;
        self.rows.clear();
        Ok(())
    }

    fn execute(stmt: &mut rusqlite::Statement<'_>, rows: &[Row<'_>]) -> rusqlite::Result<()> {
        for (r, row) in rows.iter().enumerate() {
            let p = first_param(r);
            stmt.raw_bind_parameter(p, &row.key.content.0[..])?;
            stmt.raw_bind_parameter(p + 1, row.key.occurrence)?;
            stmt.raw_bind_parameter(p + 2, &*row.conversation_id)?;
            stmt.raw_bind_parameter(p + 3, row.state.as_str())?;
            stmt.raw_bind_parameter(p + 4, row.message_id.as_deref())?;
            stmt.raw_bind_parameter(p + 5, row.attempts)?;
        }
        stmt.raw_execute().map(|_| ())
    }
}

/// A message's records in one fold, merged: where its last record is (its
/// state and conversation), where the last one with the API's id is, and
/// the requests they account for. 48 bytes, not the 64 of `usize` indices
/// and an `Option` of a pair: a fold holds one per message, and a large
/// ledger's fold hundreds of thousands (see `FOLD_SHARE`).
#[derive(Clone, Copy)]
struct Seen {
    key: MessageKey,
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

const _: () = assert!(std::mem::size_of::<Seen>() == 48);

/// `Seen::id_offset` of a message none of whose records has the API's id.
const NO_ID: u64 = u64::MAX;

impl Seen {
    fn new(file: u32, offset: usize, m: &journal::Message<'_>) -> Seen {
        let offset = offset as u64;
        Seen {
            key: m.key,
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
