//! The sending phase: one thread owns the SQLite connection and folds the
//! journal as it grows (see [`FOLD_SHARE`]) and at the end; each worker
//! holds a [`Recorder`] that appends to its own journal lane.

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use super::fold::fold_journal;
use super::journal::{self, Journal, Message, Record, State};
use super::schema::CACHE;
use super::{Ledger, LedgerError};
use crate::model::{MessageKey, Outcome, Status};

/// How often the journal may be folded into `outcomes` during a run.
/// Each fold costs a commit and a checkpoint, and gives every
/// conversation it saw one more row, which later lookups read. Measured
/// when the ledger still kept a row per message, and each fold rewrote
/// most of a small ledger's pages: 100,000 messages at zero latency took
/// the ledger thread 223 ms (mean of five) folding every second, 195 ms
/// every two, 187 ms every four; the time after the last answer was the
/// same at two (the last fold's size is set by [`Writer::fold_soon`]) and
/// 18 ms longer at four.
pub(super) const FOLD_EVERY: Duration = Duration::from_secs(2);

/// Fold once the journal holds records worth half the ledger's bytes: the
/// number of folds, so of rows per conversation, then grows with the log
/// of the ledger's size, not with the run's length, and the fold's memory
/// (56 bytes a message, see `fold::Seen`) stays a small share of the
/// ledger's size. It was chosen when a fold rewrote every table page its
/// random keys landed on, so that folding often into a large ledger
/// rewrote most of it each time: an eighth rewrote twice the pages of a
/// quarter (3.3 KB written per message late in a 2,000,000-message run);
/// a quarter took 5.4–6.0 s of the ledger thread's time over that run,
/// half 4.0–4.3 s. A fold now appends its rows, and only the index of
/// conversations takes random inserts.
pub(super) const FOLD_SHARE: u64 = 2;

/// The longest the journal goes unfolded while records come in, so that
/// the ledger file never lags far behind a slow run.
pub(super) const FOLD_AT_LEAST: Duration = Duration::from_secs(30);

/// SQLite's page cache while the ledger, with what the journal is about
/// to add, fits in it: a fold then finds the pages the fold before wrote
/// instead of reading them back. The last fold of a run (what came after
/// the one asked for near its end) lands on nearly every page of the
/// ledger, and the run waits for it: at 100,000 messages it took 25 ms of
/// the ledger thread's CPU time against 39 ms with the 4 MB cache (median
/// of five alternating runs, all five lower). A larger ledger goes back to
/// the 4 MB set on open: its folds' random keys land on more pages than
/// any cache of a few megabytes holds, and memory stays as it was where
/// it is tightest, late in a long run.
pub(super) const WHOLE_LEDGER_CACHE: u64 = 16 << 20;

/// A fold's SQLite work allocates with glibc's malloc (Rust's allocations
/// go to jemalloc, which returns freed memory by itself); without this,
/// glibc keeps those pages, scattered among live ones, and a long run's
/// resident memory creeps up by a fold's worth per arena.
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// What the ledger thread is told.
enum Signal {
    /// Fold what the journal holds now: see [`Writer::fold_soon`].
    Fold,
    /// Sent once, by `Writer::closing`: fold what is left, and stop.
    Close,
}

/// The sending side of the ledger thread. Take a [`Recorder`] per worker.
pub struct Writer {
    signals: mpsc::Sender<Signal>,
    journal: Option<Arc<Journal>>,
    path: String,
    handle: thread::JoinHandle<(Ledger, Result<(), LedgerError>)>,
}

impl Ledger {
    /// Hand the connection to a writer thread for the sending phase.
    pub fn into_writer(self) -> Result<Writer, LedgerError> {
        let (signals, rx) = mpsc::channel();
        let journal = self.journal.clone();
        let path = self.path.display().to_string();
        let handle = thread::Builder::new()
            .name("ledger".into())
            .spawn(move || {
                let mut ledger = self;
                let result = ledger.serve(rx);
                (ledger, result)
            })
            .map_err(|source| LedgerError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(Writer {
            signals,
            journal,
            path,
            handle,
        })
    }

    fn serve(&mut self, signals: mpsc::Receiver<Signal>) -> Result<(), LedgerError> {
        let mut last_fold = Instant::now();
        loop {
            let now = match signals.recv_timeout(FOLD_EVERY) {
                Ok(Signal::Fold) => self.fold_asked(),
                Err(mpsc::RecvTimeoutError::Timeout) => self.fold_due(last_fold.elapsed()),
                Ok(Signal::Close) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            if now {
                // A fold that fails stops folding; the journal keeps what
                // was sent for the next run, and closing says why.
                self.fold(self.journal.as_ref().and_then(|j| j.rotate()))?;
                give_back_freed_memory();
                last_fold = Instant::now();
            }
        }
        self.fold(self.journal.as_ref().and_then(|j| j.close()))
    }

    /// Fold journal files the workers no longer append to (none: nothing
    /// was journaled since the last fold), and checkpoint what that wrote.
    fn fold(&self, sealed: Option<journal::Sealed>) -> Result<(), LedgerError> {
        if let Some(sealed) = sealed {
            self.size_cache(sealed.bytes);
            fold_journal(&self.conn, &sealed)?;
            self.checkpoint();
        }
        Ok(())
    }

    /// The page cache for a fold of `incoming` journal bytes: the whole
    /// ledger while it fits (see [`WHOLE_LEDGER_CACHE`]). The journal's
    /// bytes overstate what they add to the ledger (an intent and an
    /// outcome per message, each with more than its row holds), so the
    /// ledger never outgrows the cache during the fold. A shrunk cache
    /// frees what it no longer holds. One that cannot be set leaves the
    /// cache as it was: slower, never wrong.
    pub(super) fn size_cache(&self, incoming: u64) {
        let ledger = self.bytes().unwrap_or(u64::MAX);
        let cache = if ledger.saturating_add(incoming) <= WHOLE_LEDGER_CACHE {
            WHOLE_LEDGER_CACHE
        } else {
            CACHE
        };
        // Negative: in KiB, whatever the page size. The same size again
        // changes nothing.
        let _ = self
            .conn
            .execute_batch(&format!("PRAGMA cache_size=-{}", cache / 1024));
    }

    /// Copy what a fold wrote to the write-ahead log into the ledger's
    /// file, here on the ledger thread, while the workers send (or the
    /// report is written). Left to the connection's close, it came after
    /// everything else, and the log then held every fold since the last
    /// automatic checkpoint: up to 32 MB to copy and fsync while the user
    /// waited (46–55 ms of 40,960 messages at 20 ms). Passive: it never
    /// waits for a reader. One that fails leaves its work to the close;
    /// nothing is lost.
    fn checkpoint(&self) {
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }

    /// Whether the journal is worth folding now (see [`FOLD_SHARE`]).
    pub(super) fn fold_due(&self, since_last: Duration) -> bool {
        if since_last < FOLD_EVERY {
            return false;
        }
        since_last >= FOLD_AT_LEAST || self.journal_holds(FOLD_SHARE)
    }

    /// Whether a fold asked for as the run nears its end (see
    /// [`Writer::fold_soon`]) is worth it: once the journal holds half of
    /// what [`fold_due`](Self::fold_due) waits for. It moves work from
    /// after the last answer to before it; with less, it would cost a
    /// commit, a checkpoint and a row per conversation for little (with a
    /// row per message, it rewrote a large ledger's pages once more: two
    /// asked-for folds in the last tenth of a 2,000,000-message run).
    pub(super) fn fold_asked(&self) -> bool {
        self.journal_holds(2 * FOLD_SHARE)
    }

    /// Whether the journal holds records worth a `share`th of the ledger's
    /// bytes. A size that cannot be read counts as none.
    fn journal_holds(&self, share: u64) -> bool {
        let Some(journal) = &self.journal else {
            return false;
        };
        journal.pending() >= self.bytes().unwrap_or(0) / share
    }

    /// The ledger's size in SQLite's pages, whether they are in its file
    /// yet or only in the write-ahead log.
    pub(super) fn bytes(&self) -> rusqlite::Result<u64> {
        self.conn
            .query_row(
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|b| b.max(0) as u64)
    }
}

impl Writer {
    pub fn recorder(&self) -> Recorder {
        Recorder {
            lane: self.journal.as_ref().map_or(0, |j| j.lane()),
            journal: self.journal.clone(),
            path: self.path.clone(),
            unwritten: Vec::new(),
        }
    }

    /// Fold what the journal holds now, unless that is little beside the
    /// ledger (see [`Ledger::fold_asked`]): the run nears its end (see
    /// [`Sink::nearing_end`](crate::send::Sink::nearing_end)). The folds
    /// then run while the last messages are sent, and what is
    /// left for after the last answer, where nothing overlaps it but the
    /// report, is small: a run shorter than [`FOLD_EVERY`] otherwise
    /// folded all of itself there (50,000 messages at zero latency: 75 ms
    /// after the last answer, against 40 ms for the eighth left now).
    pub fn fold_soon(&self) {
        let _ = self.signals.send(Signal::Fold);
    }

    /// Wait for everything sent so far to be stored and folded, and get the
    /// ledger back.
    pub fn close(self) -> Result<Ledger, LedgerError> {
        self.closing().wait()
    }

    /// Start folding what is left and go on: the run writes its report
    /// while the ledger thread folds the last of the journal.
    pub fn closing(self) -> Closing {
        let _ = self.signals.send(Signal::Close);
        Closing {
            handle: self.handle,
            path: self.path,
        }
    }
}

/// A ledger thread folding the last of the journal: see [`Writer::closing`].
pub struct Closing {
    handle: thread::JoinHandle<(Ledger, Result<(), LedgerError>)>,
    path: String,
}

impl Closing {
    /// Wait for the fold, and get the ledger back.
    pub fn wait(self) -> Result<Ledger, LedgerError> {
        match self.handle.join() {
            Ok((ledger, result)) => result.map(|()| ledger),
            Err(_) => Err(LedgerError::Gone { path: self.path }),
        }
    }
}

/// One worker's handle on the ledger. A request's outcome is journaled
/// with the same worker's next intent (or on sync or drop): one append
/// per request.
pub struct Recorder {
    journal: Option<Arc<Journal>>,
    /// This recorder's file in the journal.
    lane: usize,
    path: String,
    /// Journal records not yet written.
    unwritten: Vec<u8>,
}

impl Recorder {
    /// Record that this message is about to be sent, together with the
    /// outcomes before it; returns once the journal holds it.
    pub fn intent(&mut self, key: MessageKey, conversation_id: &str) -> Result<(), LedgerError> {
        if self.journal.is_none() {
            return Ok(());
        }
        journal::encode(
            &mut self.unwritten,
            &Record::Message(Message {
                key,
                conversation_id: conversation_id.into(),
                state: State::InFlight,
                attempts: 0,
                message_id: None,
            }),
        );
        self.write_journal()
    }

    /// Record what came of a sent message (outcomes of rows never sent have
    /// nothing to record). It reaches the journal no later than this
    /// worker's next intent; its attempts count against the daily quota.
    pub fn outcome(&mut self, outcome: &Outcome<'_>) {
        let (Some(key), Some(_)) = (outcome.sent, &self.journal) else {
            return;
        };
        let state = match outcome.status {
            Status::Created => State::Created,
            Status::Exists => State::Exists,
            Status::Uncertain => State::Uncertain,
            _ => State::Failed,
        };
        journal::encode(
            &mut self.unwritten,
            &Record::Message(Message {
                key,
                conversation_id: outcome.conversation_id.into(),
                state,
                attempts: outcome.requests,
                message_id: outcome.message_id.as_deref().map(Into::into),
            }),
        );
    }

    /// The API's id of a conversation created (or found) by its external
    /// id. Creating is keyed by the external id, so one lost with a crash
    /// is found again by the next run, never created twice.
    pub fn conversation(&mut self, external_id: &str, api_id: &str) {
        if self.journal.is_some() {
            journal::encode(
                &mut self.unwritten,
                &Record::Conversation {
                    external_id: external_id.into(),
                    api_id: api_id.into(),
                },
            );
        }
    }

    /// Requests that belong to no one row, for the daily quota.
    pub fn requests(&mut self, count: u32) {
        if count > 0 && self.journal.is_some() {
            journal::encode(&mut self.unwritten, &Record::Requests { count });
        }
    }

    /// Write what was recorded so far to the journal, which survives the
    /// process being killed; the ledger thread folds it in its time.
    pub fn sync(&mut self) -> Result<(), LedgerError> {
        self.write_journal()
    }

    fn write_journal(&mut self) -> Result<(), LedgerError> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let written = journal.append(self.lane, &self.unwritten);
        self.unwritten.clear();
        written.map_err(|source| LedgerError::Journal {
            path: self.path.clone(),
            source,
        })
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
