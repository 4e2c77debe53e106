//! Send: a pool of workers takes conversations longest first from one shared
//! cursor; inside a conversation, messages go strictly one after another, the
//! next only after the previous one's outcome is known and recorded.
//!
//! `send` never prints: it reports outcomes to the ledger and counts them in
//! [`Counters`] for whoever draws progress.

pub mod client;
pub mod pool;
pub mod rate;
pub mod retry;

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// Why a run stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// SIGINT or SIGTERM.
    Interrupted,
    /// 401 or 403: the credentials are refused.
    Unauthorized,
    /// Nearly every recent request failed: the API is down.
    ApiDown,
    /// The daily quota is spent (`--daily-quota`, or 429s that persist).
    Quota,
    /// The ledger (or the report's spool) could not record: going on would
    /// break exactly-once, or leave rows out of the report.
    Ledger,
}

/// A flag every worker checks before each message. The first reason wins.
#[derive(Debug, Default)]
pub struct Stop(AtomicU8);

impl Stop {
    const REASONS: [StopReason; 5] = [
        StopReason::Interrupted,
        StopReason::Unauthorized,
        StopReason::ApiDown,
        StopReason::Quota,
        StopReason::Ledger,
    ];

    pub fn set(&self, reason: StopReason) {
        let code = Self::REASONS.iter().position(|r| *r == reason).unwrap_or(0) as u8 + 1;
        let _ = self
            .0
            .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst);
    }

    pub fn get(&self) -> Option<StopReason> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            n => Self::REASONS.get(usize::from(n - 1)).copied(),
        }
    }
}

/// Live counts for progress display.
#[derive(Debug, Default)]
pub struct Counters {
    /// Rows with an outcome so far (sent or not).
    pub done: AtomicU64,
    pub created: AtomicU64,
    pub failed: AtomicU64,
    pub uncertain: AtomicU64,
    pub requests: AtomicU64,
    pub retries: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
