//! Record: the ledger, a SQLite file that makes every run resumable.
//!
//! What it promises:
//! - an *intent* is committed before each request and the *outcome* after it,
//!   so a process killed at any instant (SIGKILL included) leaves a ledger
//!   that says exactly which messages were in flight;
//! - messages are keyed by content (`ContentKey`) and occurrence, never by
//!   row number, so a changed, reordered or overlapping input is recognised;
//! - one run per ledger at a time (an OS file lock beside the database);
//! - every input row of a run has exactly one report row (primary key).
//!
//! One thread owns the connection ([`Writer`]); workers talk to it over a
//! channel. Intents wait for their commit; outcomes do not, but they are
//! committed no later than the next intent of the same worker.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use rusqlite::{params, Connection, OptionalExtension};

use crate::model::{RowRef, Status};
use crate::plan::ContentKey;

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

/// One line of the results report, as DESIGN.md defines its columns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReportRow {
    pub source: String,
    pub record: u64,
    pub line: u64,
    pub conversation_id: String,
    pub api_conversation_id: String,
    pub timestamp: String,
    pub status: Status,
    pub message_id: String,
    pub http_status: Option<u16>,
    pub error_code: String,
    pub error_message: String,
    pub request_id: String,
    pub attempts: u32,
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
-- The hot path appends here (sequential pages, cheap commits); the log is
-- folded into `messages` when a run opens and closes the ledger.
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
-- The report of each run: exactly one row per input row.
CREATE TABLE IF NOT EXISTS report_rows (
    run_id INTEGER NOT NULL,
    source INTEGER NOT NULL,
    record INTEGER NOT NULL,
    line INTEGER NOT NULL,
    conversation_id TEXT NOT NULL,
    api_conversation_id TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    status TEXT NOT NULL,
    message_id TEXT,
    http_status INTEGER,
    error_code TEXT,
    error_message TEXT,
    request_id TEXT,
    attempts INTEGER NOT NULL,
    PRIMARY KEY (run_id, source, record)
) WITHOUT ROWID;
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
    pending_report: Vec<ReportInsert>,
    pending_requests: u64,
    last_buffer_flush: std::time::Instant,
    _lock: File,
}

/// Report rows are written in chunks of this many, or at least this often.
const REPORT_CHUNK: usize = 8192;
const BUFFER_AGE: std::time::Duration = std::time::Duration::from_secs(2);

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
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
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
        Ok(Ledger {
            conn,
            path: path.to_path_buf(),
            run_id,
            recovered_in_flight: recovered,
            pending_report: Vec::new(),
            pending_requests: 0,
            last_buffer_flush: std::time::Instant::now(),
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
        Ok(Lookup {
            conn,
            path: self.path.clone(),
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

    /// Hand the connection to a writer thread for the sending phase.
    pub fn into_writer(self) -> Writer {
        let (tx, rx) = mpsc::channel::<Msg>();
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
            handle: Some(handle),
        }
    }

    fn serve(&mut self, rx: mpsc::Receiver<Msg>) -> Result<(), LedgerError> {
        let mut first_error: Option<LedgerError> = None;
        let mut batch = Vec::with_capacity(256);
        let mut closing = false;
        while let Ok(msg) = rx.recv() {
            if matches!(msg, Msg::Close) {
                break;
            }
            batch.push(msg);
            // Group commit: take everything already waiting, up to a bound.
            while batch.len() < 4096 {
                match rx.try_recv() {
                    Ok(Msg::Close) => {
                        closing = true;
                        break;
                    }
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let result = if first_error.is_some() {
                Err("the ledger failed earlier".to_string())
            } else {
                let force = batch.iter().any(|m| matches!(m, Msg::Flush { .. }));
                match self.apply(&mut batch, force) {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        let text = chain(&e);
                        first_error = Some(e);
                        Err(text)
                    }
                }
            };
            for msg in batch.drain(..) {
                if let Msg::Intent { ack, .. } | Msg::Flush { ack, .. } = msg {
                    // A worker that gave up waiting is not an error here.
                    let _ = ack.send(result.clone());
                }
            }
            if closing {
                break;
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        self.apply(&mut [], true)?;
        fold(&self.conn).map_err(|e| self.err(e))
    }

    /// Commit one batch. Intents and outcomes of sent messages go to the
    /// event log in this commit (they carry the exactly-once promise);
    /// report rows and request counts are buffered and written in large
    /// chunks, since a report is only read once the run is over.
    fn apply(&mut self, batch: &mut [Msg], force: bool) -> Result<(), LedgerError> {
        let path = self.path.display().to_string();
        let sql = |source| LedgerError::Sqlite {
            path: path.clone(),
            source,
        };
        let run_id = self.run_id;
        let stamp = now();
        for msg in batch.iter_mut() {
            if let Msg::Intent { settled, .. }
            | Msg::Outcomes(settled)
            | Msg::Flush { settled, .. } = msg
            {
                for o in settled.iter_mut() {
                    self.pending_requests += u64::from(o.attempts);
                    self.pending_report.push(std::mem::take(&mut o.report));
                }
            }
        }
        let flush_buffers = force
            || self.pending_report.len() >= REPORT_CHUNK
            || self.last_buffer_flush.elapsed() >= BUFFER_AGE;
        let tx = self.conn.transaction().map_err(sql)?;
        {
            let mut event = tx
                .prepare_cached(
                    "INSERT INTO events (key, occurrence, conversation_id, state, message_id, attempts, run_id, at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(sql)?;
            let settle =
                |event: &mut rusqlite::CachedStatement<'_>, o: &Settled| -> rusqlite::Result<()> {
                    if let Some((key, occurrence)) = &o.sent {
                        event.execute(params![
                            &key.0[..],
                            occurrence,
                            o.conversation_id,
                            o.state,
                            o.message_id,
                            o.attempts,
                            run_id,
                            stamp
                        ])?;
                    }
                    Ok(())
                };
            for msg in batch.iter() {
                match msg {
                    Msg::Intent {
                        key,
                        occurrence,
                        conversation_id,
                        settled,
                        ..
                    } => {
                        // The worker's earlier outcomes first: they happened before.
                        for o in settled {
                            settle(&mut event, o).map_err(sql)?;
                        }
                        event
                            .execute(params![
                                &key.0[..],
                                occurrence,
                                conversation_id,
                                "in_flight",
                                None::<String>,
                                0,
                                run_id,
                                stamp
                            ])
                            .map_err(sql)?;
                    }
                    Msg::Outcomes(settled) | Msg::Flush { settled, .. } => {
                        for o in settled {
                            settle(&mut event, o).map_err(sql)?;
                        }
                    }
                    Msg::Close => {}
                }
            }
            if flush_buffers {
                write_report_rows(&tx, run_id, &mut self.pending_report).map_err(sql)?;
                if self.pending_requests > 0 {
                    let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
                    tx.execute(
                        "INSERT INTO requests_per_day (day, count) VALUES (?1, ?2)
                         ON CONFLICT (day) DO UPDATE SET count = count + excluded.count",
                        params![day, self.pending_requests],
                    )
                    .map_err(sql)?;
                    self.pending_requests = 0;
                }
            }
        }
        tx.commit().map_err(sql)?;
        if flush_buffers {
            self.last_buffer_flush = std::time::Instant::now();
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

    /// Every report row of this run, in input order (source, then record).
    pub fn report_rows(
        &self,
        mut each: impl FnMut(ReportRow) -> std::io::Result<()>,
    ) -> anyhow::Result<()> {
        let mut stmt = self.conn.prepare(
            "SELECT s.name, r.record, r.line, r.conversation_id, r.api_conversation_id, r.timestamp, r.status,
                    r.message_id, r.http_status, r.error_code, r.error_message, r.request_id, r.attempts
             FROM report_rows r JOIN sources s ON s.run_id = r.run_id AND s.source = r.source
             WHERE r.run_id = ?1 ORDER BY r.source, r.record",
        )?;
        let mut rows = stmt.query(params![self.run_id])?;
        while let Some(r) = rows.next()? {
            let status: String = r.get(6)?;
            let status = serde_json::from_value(serde_json::Value::String(status))?;
            each(ReportRow {
                source: r.get(0)?,
                record: r.get(1)?,
                line: r.get(2)?,
                conversation_id: r.get(3)?,
                api_conversation_id: r.get(4)?,
                timestamp: r.get(5)?,
                status,
                message_id: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
                http_status: r.get(8)?,
                error_code: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
                error_message: r.get::<_, Option<String>>(10)?.unwrap_or_default(),
                request_id: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
                attempts: r.get(12)?,
            })?;
        }
        Ok(())
    }

    /// Rows of this run by status, and failure reasons with their counts.
    pub fn summary(&self) -> anyhow::Result<Summary> {
        let mut summary = Summary::default();
        let mut stmt = self.conn.prepare(
            "SELECT status, count(*) FROM report_rows WHERE run_id = ?1 GROUP BY status",
        )?;
        let mut rows = stmt.query(params![self.run_id])?;
        while let Some(r) = rows.next()? {
            let status: String = r.get(0)?;
            let status: Status = serde_json::from_value(serde_json::Value::String(status))?;
            summary.by_status.push((status, r.get(1)?));
        }
        summary.by_status.sort();
        let mut stmt = self.conn.prepare(
            "SELECT status, coalesce(http_status, ''), coalesce(error_message, ''), count(*) AS n
             FROM report_rows WHERE run_id = ?1 AND status IN ('invalid', 'failed', 'uncertain')
             GROUP BY 1, 2, 3 ORDER BY n DESC LIMIT 20",
        )?;
        let mut rows = stmt.query(params![self.run_id])?;
        while let Some(r) = rows.next()? {
            let status: String = r.get(0)?;
            let http: String = r.get::<_, rusqlite::types::Value>(1).map(|v| match v {
                rusqlite::types::Value::Integer(i) => i.to_string(),
                _ => String::new(),
            })?;
            let message: String = r.get(2)?;
            let reason = if http.is_empty() {
                format!("{status}: {message}")
            } else {
                format!("{status}: HTTP {http}: {message}")
            };
            summary.reasons.push((reason, r.get(3)?));
        }
        Ok(summary)
    }
}

/// Read-only lookups of earlier runs' messages.
pub struct Lookup {
    conn: Connection,
    path: PathBuf,
}

impl Lookup {
    pub fn prior(&self, key: &ContentKey, occurrence: u32) -> Result<Option<Prior>, LedgerError> {
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

/// Counts for the end-of-run summary and the exit code.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub by_status: Vec<(Status, u64)>,
    /// The most frequent reasons rows were not created, with counts.
    pub reasons: Vec<(String, u64)>,
}

impl Summary {
    pub fn count(&self, status: Status) -> u64 {
        self.by_status
            .iter()
            .filter(|(s, _)| *s == status)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn total(&self) -> u64 {
        self.by_status.iter().map(|(_, n)| n).sum()
    }

    pub fn all_success(&self) -> bool {
        self.by_status
            .iter()
            .all(|(s, n)| *n == 0 || s.is_success())
    }
}

enum Msg {
    Intent {
        key: ContentKey,
        occurrence: u32,
        conversation_id: String,
        /// This worker's outcomes since its last message to the ledger.
        settled: Vec<Settled>,
        ack: mpsc::SyncSender<Result<(), String>>,
    },
    /// Outcomes a worker collected; requests are counted from their attempts.
    Outcomes(Vec<Settled>),
    Flush {
        settled: Vec<Settled>,
        ack: mpsc::SyncSender<Result<(), String>>,
    },
    /// Sent by `Writer::close`: commit what came before, fold, and stop,
    /// even if some recorder is still alive.
    Close,
}

/// An outcome as the ledger thread stores it.
struct Settled {
    sent: Option<(ContentKey, u32)>,
    conversation_id: String,
    state: &'static str,
    message_id: Option<String>,
    attempts: u32,
    report: ReportInsert,
}

/// One row for `report_rows`.
#[derive(Default)]
struct ReportInsert {
    source: u32,
    record: u64,
    line: u64,
    conversation_id: String,
    api_conversation_id: String,
    timestamp: String,
    status: &'static str,
    message_id: Option<String>,
    http_status: Option<u16>,
    error_code: Option<String>,
    error_message: Option<String>,
    request_id: Option<String>,
    attempts: u32,
}

impl From<Outcome> for Settled {
    fn from(o: Outcome) -> Self {
        let state = match o.status {
            Status::Created => "created",
            Status::Exists => "exists",
            Status::Uncertain => "uncertain",
            _ => "failed",
        };
        Settled {
            sent: o.sent,
            conversation_id: o.conversation_id.clone(),
            state,
            message_id: o.message_id.clone(),
            attempts: o.attempts,
            report: ReportInsert {
                source: o.pos.source.0,
                record: o.pos.record,
                line: o.pos.line,
                conversation_id: o.conversation_id,
                api_conversation_id: o.api_conversation_id,
                timestamp: o.timestamp,
                status: o.status.as_str(),
                message_id: o.message_id,
                http_status: o.http_status,
                error_code: o.error_code,
                error_message: o.error_message,
                request_id: o.request_id,
                attempts: o.attempts,
            },
        }
    }
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

/// Write buffered report rows, sorted so that the inserts walk the table's
/// key order.
fn write_report_rows(
    tx: &rusqlite::Transaction<'_>,
    run_id: i64,
    rows: &mut Vec<ReportInsert>,
) -> rusqlite::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    rows.sort_by_key(|r| (r.source, r.record));
    let mut stmt = tx.prepare_cached(
        "INSERT INTO report_rows (run_id, source, record, line, conversation_id, api_conversation_id,
            timestamp, status, message_id, http_status, error_code, error_message, request_id, attempts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?;
    for r in rows.drain(..) {
        stmt.execute(params![
            run_id,
            r.source,
            r.record,
            r.line,
            r.conversation_id,
            r.api_conversation_id,
            r.timestamp,
            r.status,
            r.message_id,
            r.http_status,
            r.error_code,
            r.error_message,
            r.request_id,
            r.attempts,
        ])?;
    }
    Ok(())
}

/// The sending side of the ledger thread. Clone a [`Recorder`] per worker.
pub struct Writer {
    tx: Option<mpsc::Sender<Msg>>,
    handle: Option<thread::JoinHandle<(Ledger, Result<(), LedgerError>)>>,
}

impl Writer {
    pub fn recorder(&self) -> Recorder {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        Recorder {
            tx: self.tx.clone().expect("writer open"),
            ack_tx,
            ack_rx,
            pending: Vec::new(),
        }
    }

    /// Wait for everything sent so far to be committed, and get the ledger back.
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

/// One worker's handle on the ledger. Outcomes are collected here and
/// travel with the worker's next intent (or every [`OUTCOME_CHUNK`], or on
/// flush or drop): one message, and one wake-up of the ledger thread, per
/// request instead of three.
pub struct Recorder {
    tx: mpsc::Sender<Msg>,
    ack_tx: mpsc::SyncSender<Result<(), String>>,
    ack_rx: mpsc::Receiver<Result<(), String>>,
    pending: Vec<Settled>,
}

/// Outcomes a recorder holds at most before sending them on.
const OUTCOME_CHUNK: usize = 512;

fn stopped<T>(_: T) -> String {
    "the ledger thread stopped".to_string()
}

impl Recorder {
    /// Record that this message is about to be sent, together with the
    /// outcomes before it; returns once committed.
    pub fn intent(
        &mut self,
        key: ContentKey,
        occurrence: u32,
        conversation_id: &str,
    ) -> Result<(), String> {
        self.tx
            .send(Msg::Intent {
                key,
                occurrence,
                conversation_id: conversation_id.to_string(),
                settled: std::mem::take(&mut self.pending),
                ack: self.ack_tx.clone(),
            })
            .map_err(stopped)?;
        self.ack_rx.recv().map_err(stopped)?
    }

    /// Record a row's outcome. A sent message's outcome is committed no
    /// later than this worker's next intent. Requests are counted against
    /// the daily quota from its attempts.
    pub fn outcome(&mut self, outcome: Outcome) -> Result<(), String> {
        self.pending.push(Settled::from(outcome));
        if self.pending.len() >= OUTCOME_CHUNK {
            let settled = std::mem::take(&mut self.pending);
            self.tx.send(Msg::Outcomes(settled)).map_err(stopped)?;
        }
        Ok(())
    }

    /// Wait until everything recorded so far is committed.
    pub fn flush(&mut self) -> Result<(), String> {
        self.tx
            .send(Msg::Flush {
                settled: std::mem::take(&mut self.pending),
                ack: self.ack_tx.clone(),
            })
            .map_err(stopped)?;
        self.ack_rx.recv().map_err(stopped)?
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            // Nobody is left to hear an error here; the ledger thread
            // reports its own failures when it is closed.
            let _ = self
                .tx
                .send(Msg::Outcomes(std::mem::take(&mut self.pending)));
        }
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
            rec.outcome(o).unwrap();
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

    #[test]
    fn a_row_cannot_be_reported_twice() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("s.db"), "emulator").unwrap();
        ledger.add_sources(&["a.csv".into()]).unwrap();
        let writer = ledger.into_writer();
        let mut rec = writer.recorder();
        rec.outcome(Outcome::bare(pos(1), "C", String::new(), Status::Skipped))
            .unwrap();
        rec.outcome(Outcome::bare(pos(1), "C", String::new(), Status::Skipped))
            .unwrap();
        assert!(rec.flush().is_err());
        drop(rec);
        assert!(writer.close().is_err());
    }
}
