//! Record: the ledger, a SQLite file that makes every run resumable.
//!
//! What it promises:
//! - an *intent* is stored before each request and the *outcome* after it,
//!   so a process killed at any instant (SIGKILL included) leaves a ledger
//!   that says exactly which messages were in flight;
//! - messages are keyed by content (`ContentKey`) and occurrence, never by
//!   row number, so a changed, reordered or overlapping input is recognised;
//! - one run per ledger at a time (an OS file lock beside the database).
//!
//! Workers write intents and outcomes to the [`journal`] themselves, a copy
//! into a mapped file per request and no waiting on another thread; the
//! outcome of a request travels with the same worker's next intent. One
//! thread owns the SQLite connection ([`Writer`]): it folds the journal into
//! `messages` every second, whenever a worker flushes, and at the end.
//! Report rows are not kept here (see `report::Spool`): a killed run writes
//! no report, and the next run reports every row from `messages`.

pub mod journal;

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};

use crate::model::{RowRef, Status};
use crate::plan::ContentKey;
use journal::{Journal, Record, Sealed, State};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{path}: another run holds this ledger ({holder}); wait for it to finish, or use another --state")]
    Locked { path: String, holder: String },
    #[error("{path}: this ledger records imports into {recorded}, not {requested}: its ids mean nothing there\n  hint: use another --state for {requested}")]
    OtherApi {
        path: String,
        recorded: String,
        requested: String,
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
}

/// What an earlier run left for a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prior {
    /// Stored by the API (200 or 409) in an earlier run.
    Stored { message_id: Option<String> },
    /// Sent, and no answer came back: it may or may not be stored.
    Uncertain { attempts: u32 },
    /// Refused for good, or never got through: may be sent again.
    Failed,
}

/// The outcome of one input row in this run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub pos: RowRef,
    pub conversation_id: String,
    pub api_conversation_id: String,
    pub timestamp: String,
    pub status: Status,
    pub message_id: Option<String>,
    pub http_status: Option<u16>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub request_id: Option<String>,
    pub attempts: u32,
    /// Set when a request was made: the message's ledger entry to settle.
    pub sent: Option<(ContentKey, u32)>,
}

impl Outcome {
    /// An outcome with nothing sent and nothing to say but its status.
    pub fn bare(pos: RowRef, conversation_id: &str, timestamp: String, status: Status) -> Self {
        Outcome {
            pos,
            conversation_id: conversation_id.to_string(),
            api_conversation_id: conversation_id.to_string(),
            timestamp,
            status,
            message_id: None,
            http_status: None,
            error_code: None,
            error_message: None,
            request_id: None,
            attempts: 0,
            sent: None,
        }
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    pid INTEGER NOT NULL,
    exit_code INTEGER
);
-- One row per message ever sent, keyed by content and occurrence.
-- state: in_flight | created | exists | failed | uncertain
CREATE TABLE IF NOT EXISTS messages (
    key BLOB NOT NULL,
    occurrence INTEGER NOT NULL,
    conversation_id TEXT NOT NULL,
    state TEXT NOT NULL,
    message_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    run_id INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (key, occurrence)
) WITHOUT ROWID;
-- Written by earlier versions; folded into `messages` on open, then empty.
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    key BLOB NOT NULL,
    occurrence INTEGER NOT NULL,
    conversation_id TEXT NOT NULL,
    state TEXT NOT NULL,
    message_id TEXT,
    attempts INTEGER NOT NULL,
    run_id INTEGER NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (
    run_id INTEGER NOT NULL,
    source INTEGER NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (run_id, source)
);
-- Which API this ledger's ids belong to.
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- Requests made per UTC day, across runs, for the daily quota.
CREATE TABLE IF NOT EXISTS requests_per_day (
    day TEXT PRIMARY KEY,
    count INTEGER NOT NULL
);
";

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
    _lock: File,
}

/// How often the journal is folded into `messages` during a run. Each fold
/// rewrites the table pages its keys land on (random keys: most of them,
/// in a small ledger), so not too often; the end stays small anyway, as
/// every worker's last flush folds what it wrote.
const FOLD_EVERY: Duration = Duration::from_secs(1);

/// An error and its causes on one line, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Ledger {
    /// Open (or create) the ledger at `path` for imports into `target` (the
    /// API's base URL, or `emulator`), take its lock and start a run. A
    /// ledger is bound to one target: what it knows about another API's ids
    /// would wrongly mark messages as already imported.
    pub fn open(path: &Path, target: &str) -> Result<Ledger, LedgerError> {
        let display = path.display().to_string();
        let lock = take_lock(path)?;
        let sql = |source| LedgerError::Sqlite {
            path: display.clone(),
            source,
        };
        let conn = Connection::open(path).map_err(sql)?;
        // WAL with synchronous=NORMAL: a commit survives the process being
        // killed (it is in the WAL before commit returns), at no fsync cost.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;
             PRAGMA cache_size=-65536;",
        )
        .map_err(sql)?;
        conn.execute_batch(SCHEMA).map_err(sql)?;
        let recorded: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE name = 'target'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql)?;
        match recorded {
            Some(recorded) if recorded != target => {
                return Err(LedgerError::OtherApi {
                    path: display,
                    recorded,
                    requested: target.to_string(),
                })
            }
            Some(_) => {}
            None => {
                conn.execute(
                    "INSERT INTO meta (name, value) VALUES ('target', ?1)",
                    params![target],
                )
                .map_err(sql)?;
            }
        }
        fold(&conn).map_err(sql)?;
        // What a killed run left in its journal, oldest first.
        let leftovers = journal::files(path).map_err(|source| LedgerError::Io {
            path: display.clone(),
            source,
        })?;
        for sealed in &leftovers {
            fold_journal(&conn, sealed)?;
        }
        // A message still in flight belongs to a run that died mid-request:
        // the request may have been stored, so it is uncertain from now on.
        let recovered = conn
            .execute(
                "UPDATE messages SET state = 'uncertain' WHERE state = 'in_flight'",
                [],
            )
            .map_err(sql)? as u64;
        conn.execute(
            "INSERT INTO runs (started_at, pid) VALUES (?1, ?2)",
            params![now(), std::process::id()],
        )
        .map_err(sql)?;
        let run_id = conn.last_insert_rowid();
        // Past every number used so far: each leftover is folded or stale now.
        let seq = journal_folded(&conn).map_err(sql)? + 1;
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

    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    fn err(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError::Sqlite {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// A second, read-only view of the ledger for planning while the writer
    /// thread owns the main connection (WAL lets both work at once).
    pub fn lookup(&self) -> Result<Lookup, LedgerError> {
        let conn = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| self.err(e))?;
        let empty = conn
            .query_row("SELECT NOT EXISTS (SELECT 1 FROM messages)", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))?;
        Ok(Lookup {
            conn,
            path: self.path.clone(),
            empty,
        })
    }

    /// What earlier runs did with this message, if anything.
    pub fn prior(&self, key: &ContentKey, occurrence: u32) -> Result<Option<Prior>, LedgerError> {
        prior(&self.conn, key, occurrence).map_err(|e| self.err(e))
    }

    /// Requests already made today (UTC), across runs.
    pub fn requests_today(&self) -> Result<u64, LedgerError> {
        let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
        self.conn
            .query_row(
                "SELECT count FROM requests_per_day WHERE day = ?1",
                params![day],
                |r| r.get::<_, u64>(0),
            )
            .optional()
            .map(|c| c.unwrap_or(0))
            .map_err(|e| self.err(e))
    }

    pub fn add_sources(&mut self, names: &[String]) -> Result<(), LedgerError> {
        let tx = self.conn.transaction().map_err(|e| LedgerError::Sqlite {
            path: self.path.display().to_string(),
            source: e,
        })?;
        for (i, name) in names.iter().enumerate() {
            tx.execute(
                "INSERT INTO sources (run_id, source, name) VALUES (?1, ?2, ?3)",
                params![self.run_id, i as i64, name],
            )
            .map_err(|e| LedgerError::Sqlite {
                path: self.path.display().to_string(),
                source: e,
            })?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Switch off the journal: messages sent are not remembered, so a later
    /// run would send them again. Only for measuring what the bookkeeping
    /// costs (`cargo bench --bench e2e`); the command line cannot reach it.
    pub fn without_bookkeeping(&mut self) {
        self.journal = None;
    }

    /// Hand the connection to a writer thread for the sending phase.
    pub fn into_writer(self) -> Writer {
        let (tx, rx) = mpsc::channel::<Msg>();
        let journal = self.journal.clone();
        let handle = thread::Builder::new()
            .name("ledger".into())
            .spawn(move || {
                let mut ledger = self;
                let result = ledger.serve(rx);
                (ledger, result)
            })
            .expect("spawn ledger thread");
        Writer {
            tx: Some(tx),
            journal,
            handle: Some(handle),
        }
    }

    fn serve(&mut self, rx: mpsc::Receiver<Msg>) -> Result<(), LedgerError> {
        let mut first_error: Option<LedgerError> = None;
        let mut last_fold = Instant::now();
        loop {
            let ack = match rx.recv_timeout(FOLD_EVERY) {
                Ok(Msg::Close) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Ok(Msg::Flush { ack }) => Some(ack),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
            };
            if first_error.is_none() && (ack.is_some() || last_fold.elapsed() >= FOLD_EVERY) {
                if let Err(e) = self.fold_rotated() {
                    first_error = Some(e);
                }
                last_fold = Instant::now();
            }
            if let Some(ack) = ack {
                // A worker that gave up waiting is not an error here.
                let _ = ack.send(first_error.as_ref().map_or(Ok(()), |e| Err(chain(e))));
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        match self.journal.as_ref().and_then(|j| j.close()) {
            Some(sealed) => fold_journal(&self.conn, &sealed),
            None => Ok(()),
        }
    }

    /// Seal the journal files the workers are appending to and fold them.
    fn fold_rotated(&mut self) -> Result<(), LedgerError> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        match journal.rotate() {
            Some(sealed) => fold_journal(&self.conn, &sealed),
            None => Ok(()),
        }
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
}

/// Read-only lookups of earlier runs' messages.
pub struct Lookup {
    conn: Connection,
    path: PathBuf,
    /// No earlier run recorded a message: a fresh ledger answers every
    /// lookup at once, without a query per planned message.
    empty: bool,
}

impl Lookup {
    pub fn prior(&self, key: &ContentKey, occurrence: u32) -> Result<Option<Prior>, LedgerError> {
        if self.empty {
            return Ok(None);
        }
        prior(&self.conn, key, occurrence).map_err(|source| LedgerError::Sqlite {
            path: self.path.display().to_string(),
            source,
        })
    }
}

fn prior(conn: &Connection, key: &ContentKey, occurrence: u32) -> rusqlite::Result<Option<Prior>> {
    let mut stmt = conn.prepare_cached(
        "SELECT state, message_id, attempts FROM messages WHERE key = ?1 AND occurrence = ?2",
    )?;
    let found = stmt
        .query_row(params![&key.0[..], occurrence], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, u32>(2)?,
            ))
        })
        .optional()?;
    Ok(
        found.map(|(state, message_id, attempts)| match state.as_str() {
            "created" | "exists" => Prior::Stored { message_id },
            "uncertain" | "in_flight" => Prior::Uncertain { attempts },
            _ => Prior::Failed,
        }),
    )
}

enum Msg {
    /// Answer once the journal so far is folded into the ledger.
    Flush {
        ack: mpsc::SyncSender<Result<(), String>>,
    },
    /// Sent by `Writer::close`: fold what came before, and stop, even if
    /// some recorder is still alive.
    Close,
}

/// The journal sequence number folded last (0: none yet).
fn journal_folded(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT value FROM meta WHERE name = 'journal_folded'",
        [],
        |r| r.get::<_, String>(0),
    )
    .optional()
    .map(|v| v.and_then(|v| v.parse().ok()).unwrap_or(0))
}

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
fn fold_journal(conn: &Connection, sealed: &Sealed) -> Result<(), LedgerError> {
    let io = |path: &Path, source| LedgerError::Io {
        path: path.display().to_string(),
        source,
    };
    let folded = journal_folded(conn).map_err(|source| LedgerError::Sqlite {
        path: sealed.paths[0].display().to_string(),
        source,
    })?;
    if sealed.seq > folded {
        let mut run_id = 0;
        let mut records = Vec::new();
        for path in &sealed.paths {
            let (run, mut more) = journal::read(path).map_err(|e| io(path, e))?;
            run_id = run_id.max(run);
            records.append(&mut more);
        }
        let requests: u64 = records.iter().map(|r| u64::from(r.attempts)).sum();
        // Key order, so the upserts walk the table's B-tree instead of
        // jumping; a stable sort keeps each message's records in file order.
        records.sort_by_key(|r| (r.key, r.occurrence));
        let mut messages: Vec<((ContentKey, u32), Folded)> = Vec::with_capacity(records.len());
        for r in records {
            let id = (r.key, r.occurrence);
            match messages.last_mut() {
                Some((last, m)) if *last == id => {
                    m.conversation_id = r.conversation_id.into_owned();
                    m.state = r.state;
                    m.message_id = r.message_id.map(Cow::into_owned).or(m.message_id.take());
                    m.attempts += r.attempts;
                }
                _ => messages.push((
                    id,
                    Folded {
                        conversation_id: r.conversation_id.into_owned(),
                        state: r.state,
                        message_id: r.message_id.map(Cow::into_owned),
                        attempts: r.attempts,
                    },
                )),
            }
        }
        let sql = |source| LedgerError::Sqlite {
            path: sealed.paths[0].display().to_string(),
            source,
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
            for ((key, occurrence), m) in &messages {
                upsert
                    .execute(params![
                        &key.0[..],
                        occurrence,
                        m.conversation_id,
                        m.state.as_str(),
                        m.message_id,
                        m.attempts,
                        run_id,
                        stamp
                    ])
                    .map_err(sql)?;
            }
            if requests > 0 {
                let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
                tx.execute(
                    "INSERT INTO requests_per_day (day, count) VALUES (?1, ?2)
                     ON CONFLICT (day) DO UPDATE SET count = count + excluded.count",
                    params![day, requests],
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
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(path, e)),
            _ => {}
        }
    }
    Ok(())
}

/// Fold the event log into `messages`, oldest first so the latest event of
/// each message wins, and empty it. One sorted bulk write instead of a
/// random B-tree write per request.
fn fold(conn: &Connection) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    tx.execute(
        "INSERT INTO messages (key, occurrence, conversation_id, state, message_id, attempts, run_id, updated_at)
         SELECT key, occurrence, conversation_id, state, message_id, attempts, run_id, at
         FROM events WHERE true ORDER BY seq
         ON CONFLICT (key, occurrence) DO UPDATE SET
            state = excluded.state,
            message_id = coalesce(excluded.message_id, messages.message_id),
            attempts = messages.attempts + excluded.attempts,
            run_id = excluded.run_id,
            updated_at = excluded.updated_at",
        [],
    )?;
    tx.execute("DELETE FROM events", [])?;
    tx.commit()
}

/// The sending side of the ledger thread. Clone a [`Recorder`] per worker.
pub struct Writer {
    tx: Option<mpsc::Sender<Msg>>,
    journal: Option<Arc<Journal>>,
    handle: Option<thread::JoinHandle<(Ledger, Result<(), LedgerError>)>>,
}

impl Writer {
    pub fn recorder(&self) -> Recorder {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        Recorder {
            tx: self.tx.clone().expect("writer open"),
            lane: self.journal.as_ref().map_or(0, |j| j.lane()),
            journal: self.journal.clone(),
            ack_tx,
            ack_rx,
            unwritten: Vec::new(),
        }
    }

    /// Wait for everything sent so far to be stored and folded, and get the
    /// ledger back.
    pub fn close(mut self) -> Result<Ledger, LedgerError> {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Msg::Close);
        }
        let (ledger, result) = self
            .handle
            .take()
            .expect("writer open")
            .join()
            .expect("ledger thread panicked");
        result.map(|()| ledger)
    }
}

/// One worker's handle on the ledger. A request's outcome is journaled
/// with the same worker's next intent (or on flush or drop): one append
/// per request.
pub struct Recorder {
    tx: mpsc::Sender<Msg>,
    journal: Option<Arc<Journal>>,
    /// This recorder's file in the journal.
    lane: usize,
    ack_tx: mpsc::SyncSender<Result<(), String>>,
    ack_rx: mpsc::Receiver<Result<(), String>>,
    /// Journal records not yet written.
    unwritten: Vec<u8>,
}

fn stopped<T>(_: T) -> String {
    "the ledger thread stopped".to_string()
}

impl Recorder {
    /// Record that this message is about to be sent, together with the
    /// outcomes before it; returns once the journal holds it.
    pub fn intent(
        &mut self,
        key: ContentKey,
        occurrence: u32,
        conversation_id: &str,
    ) -> Result<(), String> {
        if self.journal.is_none() {
            return Ok(());
        }
        journal::encode(
            &mut self.unwritten,
            &Record {
                key,
                occurrence,
                conversation_id: conversation_id.into(),
                state: State::InFlight,
                attempts: 0,
                message_id: None,
            },
        );
        self.write_journal()
    }

    /// Record what came of a sent message (outcomes of rows never sent have
    /// nothing to record). It reaches the journal no later than this
    /// worker's next intent; its attempts count against the daily quota.
    pub fn outcome(&mut self, outcome: &Outcome) {
        if let (Some((key, occurrence)), Some(_)) = (outcome.sent, &self.journal) {
            let state = match outcome.status {
                Status::Created => State::Created,
                Status::Exists => State::Exists,
                Status::Uncertain => State::Uncertain,
                _ => State::Failed,
            };
            journal::encode(
                &mut self.unwritten,
                &Record {
                    key,
                    occurrence,
                    conversation_id: outcome.conversation_id.as_str().into(),
                    state,
                    attempts: outcome.attempts,
                    message_id: outcome.message_id.as_deref().map(Into::into),
                },
            );
        }
    }

    /// Wait until everything recorded so far is in the ledger.
    pub fn flush(&mut self) -> Result<(), String> {
        self.write_journal()?;
        self.tx
            .send(Msg::Flush {
                ack: self.ack_tx.clone(),
            })
            .map_err(stopped)?;
        self.ack_rx.recv().map_err(stopped)?
    }

    fn write_journal(&mut self) -> Result<(), String> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let written = journal.append(self.lane, &self.unwritten);
        self.unwritten.clear();
        written.map_err(|e| format!("cannot write the ledger's journal: {e}"))
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // Nobody is left to hear an error here; the ledger thread reports
        // its own failures when it is closed, and an outcome that did not
        // reach the journal leaves its message `uncertain`, never resent.
        let _ = self.write_journal();
    }
}

/// Lock `<state>.lock` for this process; the OS releases it when the
/// process dies, however it dies, so a crash never leaves a stale lock.
fn take_lock(path: &Path) -> Result<File, LedgerError> {
    let lock_path = {
        let mut p = path.as_os_str().to_owned();
        p.push(".lock");
        PathBuf::from(p)
    };
    let io = |source| LedgerError::Io {
        path: lock_path.display().to_string(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(LedgerError::Locked {
                path: path.display().to_string(),
                holder: if holder.is_empty() {
                    "a run that is starting".to_string()
                } else {
                    holder.to_string()
                },
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    write!(
        file,
        "pid {}{}{}, started {}",
        std::process::id(),
        if host.is_empty() { "" } else { " on " },
        host,
        now()
    )
    .map_err(io)?;
    file.flush().map_err(io)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SourceId;

    fn pos(record: u64) -> RowRef {
        RowRef {
            source: SourceId(0),
            record,
            line: record + 1,
            offset: 0,
        }
    }

    #[test]
    fn second_open_is_refused_while_the_first_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let first = Ledger::open(&path, "emulator").unwrap();
        match Ledger::open(&path, "emulator") {
            Err(LedgerError::Locked { holder, .. }) => {
                assert!(
                    holder.contains(&format!("pid {}", std::process::id())),
                    "{holder}"
                )
            }
            other => panic!("expected Locked, got {:?}", other.map(|_| ())),
        }
        drop(first);
        Ledger::open(&path, "emulator").unwrap();
    }

    #[test]
    fn in_flight_becomes_uncertain_and_created_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let key = ContentKey([7; 16]);
        let other = ContentKey([8; 16]);
        {
            let mut ledger = Ledger::open(&path, "emulator").unwrap();
            ledger.add_sources(&["a.csv".into()]).unwrap();
            let writer = ledger.into_writer();
            let mut rec = writer.recorder();
            rec.intent(key, 0, "C1").unwrap();
            rec.intent(other, 0, "C1").unwrap();
            let mut o = Outcome::bare(pos(1), "C1", "t".into(), Status::Created);
            o.message_id = Some("M1".into());
            o.sent = Some((key, 0));
            rec.outcome(&o);
            rec.flush().unwrap();
            // `other` stays in flight: as if the process died mid-request.
            drop(rec); // close() waits for every recorder to be gone
            let ledger = writer.close().unwrap();
            assert_eq!(
                ledger.prior(&key, 0).unwrap(),
                Some(Prior::Stored {
                    message_id: Some("M1".into())
                })
            );
        }
        let ledger = Ledger::open(&path, "emulator").unwrap();
        assert_eq!(ledger.recovered_in_flight, 1);
        assert_eq!(
            ledger.prior(&other, 0).unwrap(),
            Some(Prior::Uncertain { attempts: 0 })
        );
        assert_eq!(ledger.prior(&key, 1).unwrap(), None);
    }

    #[test]
    fn a_killed_runs_journal_is_folded_on_open_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        drop(Ledger::open(&path, "emulator").unwrap());
        let record = |n: u8, state, message_id: Option<&'static str>| Record {
            key: ContentKey([n; 16]),
            occurrence: 0,
            conversation_id: "C1".into(),
            state,
            attempts: u32::from(state != State::InFlight),
            message_id: message_id.map(Into::into),
        };
        // What a run killed mid-request leaves: one message answered, one in flight.
        let mut bytes = Vec::new();
        journal::encode(&mut bytes, &record(1, State::InFlight, None));
        journal::encode(&mut bytes, &record(1, State::Created, Some("M1")));
        journal::encode(&mut bytes, &record(2, State::InFlight, None));
        let killed = Journal::new(&path, 1, 5);
        killed.append(killed.lane(), &bytes).unwrap();
        drop(killed);

        let ledger = Ledger::open(&path, "emulator").unwrap();
        assert_eq!(ledger.recovered_in_flight, 1);
        assert_eq!(
            ledger.prior(&ContentKey([1; 16]), 0).unwrap(),
            Some(Prior::Stored {
                message_id: Some("M1".into())
            })
        );
        assert_eq!(
            ledger.prior(&ContentKey([2; 16]), 0).unwrap(),
            Some(Prior::Uncertain { attempts: 0 })
        );
        assert_eq!(ledger.requests_today().unwrap(), 1);
        drop(ledger);

        // A file folded before a crash that kept it from being deleted.
        let stale = Journal::new(&path, 1, 5);
        let mut bytes = Vec::new();
        journal::encode(&mut bytes, &record(3, State::Created, Some("M3")));
        stale.append(stale.lane(), &bytes).unwrap();
        drop(stale);
        let ledger = Ledger::open(&path, "emulator").unwrap();
        assert_eq!(ledger.prior(&ContentKey([3; 16]), 0).unwrap(), None);
        assert_eq!(ledger.requests_today().unwrap(), 1, "not counted twice");
        drop(ledger);
        let left: Vec<_> = journal::files(&path).unwrap();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_ledger_is_bound_to_one_api() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        drop(Ledger::open(&path, "emulator").unwrap());
        match Ledger::open(&path, "https://api.sandbox.asapp.com") {
            Err(LedgerError::OtherApi { recorded, .. }) => assert_eq!(recorded, "emulator"),
            other => panic!("expected OtherApi, got {:?}", other.map(|_| ())),
        }
        drop(Ledger::open(&path, "emulator").unwrap());
    }
}
