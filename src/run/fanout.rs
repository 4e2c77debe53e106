//! The one place outcomes go: each worker's handle feeds the ledger's
//! journal, the report's spool and the progress counters. A new consumer
//! of outcomes (another report, a rejects file) is one more field here;
//! no worker code changes.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::{ConversationId, MessageKey, Outcome};
use crate::record::{Recorder, Writer};
use crate::report::progress::Counters;
use crate::report::{Spool, SpoolWriter};
use crate::send::{BoxError, Sink, SinkHandle};

pub struct Fanout<'a> {
    pub ledger: &'a Writer,
    pub report: &'a Spool,
    pub counters: &'a Counters,
    /// See `RunConfig::panic_after`.
    pub panic_after: Option<u64>,
    pub outcomes: AtomicU64,
}

impl Sink for Fanout<'_> {
    fn handle(&self) -> Box<dyn SinkHandle + '_> {
        Box::new(self.lane())
    }
}

impl Fanout<'_> {
    /// A handle of its own, for one worker or for the reading thread.
    pub fn lane(&self) -> Lane<'_> {
        Lane {
            ledger: self.ledger.recorder(),
            report: self.report.writer(),
            counters: self.counters,
            panic_after: self.panic_after.map(|n| (n, &self.outcomes)),
        }
    }
}

pub struct Lane<'a> {
    ledger: Recorder,
    report: SpoolWriter<'a>,
    counters: &'a Counters,
    panic_after: Option<(u64, &'a AtomicU64)>,
}

impl SinkHandle for Lane<'_> {
    fn intent(&mut self, key: MessageKey, conversation_id: &str) -> Result<(), BoxError> {
        Ok(self.ledger.intent(key, conversation_id)?)
    }

    fn outcome(&mut self, outcome: Outcome<'_>) -> Result<(), BoxError> {
        self.ledger.outcome(&outcome);
        self.counters.outcome(&outcome);
        if let Some((n, seen)) = self.panic_after {
            if seen.fetch_add(1, Ordering::SeqCst) + 1 == n {
                panic!("injected failure after {n} outcomes (TRANSCRIPT_IMPORT_PANIC_AFTER)");
            }
        }
        Ok(self.report.outcome(&outcome)?)
    }

    fn conversation(&mut self, external_id: &str, api: &ConversationId) -> Result<(), BoxError> {
        self.ledger.conversation(external_id, api.as_str());
        Ok(())
    }

    fn requests(&mut self, count: u32) {
        self.ledger.requests(count);
        self.counters.requests(count);
    }

    fn flush(&mut self) -> Result<(), BoxError> {
        self.ledger.flush()?;
        Ok(self.report.flush()?)
    }
}
