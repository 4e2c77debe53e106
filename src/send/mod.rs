//! Send: a pool of workers takes conversations longest first from one shared
//! cursor; inside a conversation, messages go strictly one after another, the
//! next only after the previous one's outcome is known and recorded.
//!
//! `send` knows the plan's nouns (`model`), its HTTP client, and two
//! traits, nothing else: [`Bodies`] gives a planned message's body when it
//! is sent, and [`Sink`] hears an intent before every request and every
//! row's outcome after it. Whoever runs the pool decides what those are
//! (the ledger, the report, progress); `send` never prints.

pub mod client;
mod conversation;
mod pool;
pub mod rate;
mod readback;
mod request;
pub mod retry;
mod verdict;
mod worker;

use std::sync::OnceLock;
use std::time::Duration;

use crate::model::{
    ConversationId, ConversationMode, Entry, Exchange, MessageBody, MessageKey, Outcome,
};

pub use pool::run;
pub use verdict::Verdict;

/// An error a [`Sink`] or [`BodyReader`] reports; it stops the run.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where planned messages' bodies come from; one reader per worker.
pub trait Bodies: Sync {
    fn reader(&self) -> Box<dyn BodyReader + '_>;
}

pub trait BodyReader {
    /// The body of a planned message, exactly as planned. An error means
    /// the input no longer holds it: nothing more may be sent.
    fn body(&mut self, entry: &Entry) -> Result<MessageBody, BoxError>;
}

/// Where intents and outcomes go; one handle per worker, so that workers
/// do not share a lock per message.
pub trait Sink: Sync {
    fn handle(&self) -> Box<dyn SinkHandle + '_>;
    /// The run nears its end: called when seven eighths of the plan's rows
    /// are in workers' hands or done, and again when every conversation is
    /// (what is left then is the last messages of those in hand).
    fn nearing_end(&self) {}
}

pub trait SinkHandle {
    /// A request for this message is about to leave: returns once that is
    /// recorded where a crash cannot lose it.
    fn intent(&mut self, key: MessageKey, conversation_id: &str) -> Result<(), BoxError>;
    /// What came of a row, sent or not. Every planned row gets exactly one.
    fn outcome(&mut self, outcome: Outcome<'_>) -> Result<(), BoxError>;
    /// The API created (or found) the conversation of this external id.
    fn conversation(&mut self, external_id: &str, api: &ConversationId) -> Result<(), BoxError>;
    /// Requests that belong to no one row: creating or reading back a
    /// conversation, a batch.
    fn requests(&mut self, count: u32);
    /// A request of this conversation was answered (or given up on), and
    /// how long that took. Counted nowhere by `send` itself.
    fn exchange(&mut self, _conversation_id: &str, _exchange: Exchange) {}
    /// Everything handed over so far is recorded.
    fn flush(&mut self) -> Result<(), BoxError>;
}

/// What the pool is to send, and where it goes.
pub struct Job<'a> {
    /// Conversations in the order they are taken.
    pub plan: &'a [crate::model::Conversation],
    pub bodies: &'a dyn Bodies,
    pub sink: &'a dyn Sink,
}

/// How the pool sends.
#[derive(Debug, Clone)]
pub struct Settings {
    pub concurrency: usize,
    pub policy: retry::RetryPolicy,
    /// Stop before today's requests, counted across runs, cross this.
    pub daily_quota: Option<u64>,
    /// Requests already made today (UTC) by earlier runs.
    pub requests_today: u64,
    /// With no good answer for this long while requests keep failing, the
    /// API is taken as down.
    pub down_after: Duration,
    /// `create`: conversations without an API id are created by their
    /// external id, and lost answers are settled by reading back.
    pub mode: ConversationMode,
    /// `--batch N`: messages go N at a time with `createBatchMessages`.
    pub batch: Option<usize>,
    /// The largest request body, in bytes: a batch is split to stay under.
    pub max_body: usize,
}

/// Why a run stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// SIGINT, SIGTERM or SIGHUP.
    Interrupted,
    /// 401 or 403: the credentials are refused.
    Unauthorized { status: u16 },
    /// The API kept failing or could not be reached; `cause` names the
    /// last failure (refused, DNS, TLS, timeout, HTTP 5xx); a refused
    /// certificate's says what to pass (`--ca-cert`).
    ApiDown { cause: String },
    /// The daily quota is spent: `--daily-quota`, or 429s that persist for
    /// every worker.
    Quota { flag: bool },
    /// An input changed under the run: what it says now is not what was planned.
    InputChanged { what: String },
    /// A sink (the ledger, the report) could not record: going on would
    /// break exactly-once, or leave rows out of the report.
    Sink,
}

/// Set once by whoever decides the run must stop; every worker looks
/// before each message. The first reason wins.
#[derive(Debug, Default)]
pub struct Stop(OnceLock<StopReason>);

impl Stop {
    pub fn set(&self, reason: StopReason) {
        let _ = self.0.set(reason);
    }

    pub fn get(&self) -> Option<&StopReason> {
        self.0.get()
    }

    pub fn is_set(&self) -> bool {
        self.0.get().is_some()
    }
}

/// The pool could not run, or a sink failed (the run stopped: the rows it
/// had not reached were not reported).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot start {workers} workers")]
    Start {
        workers: usize,
        #[source]
        source: rayon::ThreadPoolBuildError,
    },
    #[error(transparent)]
    Sink(BoxError),
}
