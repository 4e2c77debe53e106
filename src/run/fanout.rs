//! The one place outcomes go: each worker's handle feeds the ledger's
//! journal, the report's spool, the statistics (summary, summary JSON,
//! HTML report), the rejects file and the progress counters. A new
//! consumer of outcomes is one more field here; no worker code changes.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::{ConversationId, Exchange, MessageKey, Outcome};
use crate::record::{Recorder, Writer};
use crate::report::progress::{Counters, ProgressLane};
use crate::report::rejects::{Rejects, RejectsLane};
use crate::report::{Spool, SpoolWriter, Stats, StatsLane};
use crate::send::{BoxError, Sink, SinkHandle};

pub struct Fanout<'a> {
    /// `None` when re-rendering a report from the ledger: nothing is sent,
    /// nothing is recorded.
    pub ledger: Option<&'a Writer>,
    pub report: &'a Spool,
    pub stats: &'a Stats,
    /// `--rejects`.
    pub rejects: Option<&'a Rejects>,
    pub counters: &'a Counters,
    /// See `RunConfig::panic_after`.
    pub panic_after: Option<u64>,
    pub outcomes: AtomicU64,
}

impl Sink for Fanout<'_> {
    fn handle(&self) -> Box<dyn SinkHandle + '_> {
        Box::new(self.lane())
    }

    fn nearing_end(&self) {
        if let Some(ledger) = self.ledger {
            ledger.fold_soon();
        }
    }
}

impl Fanout<'_> {
    /// A handle of its own, for one worker or for the reading thread.
    pub fn lane(&self) -> Lane<'_> {
        Lane {
            ledger: self.ledger.map(Writer::recorder),
            report: self.report.writer(),
            stats: self.stats.lane(),
            rejects: self.rejects.map(Rejects::lane),
            progress: self.counters.lane(),
            panic_after: self.panic_after.map(|n| (n, &self.outcomes)),
        }
    }
}

pub struct Lane<'a> {
    ledger: Option<Recorder>,
    report: SpoolWriter<'a>,
    stats: StatsLane<'a>,
    rejects: Option<RejectsLane<'a>>,
    progress: ProgressLane<'a>,
    panic_after: Option<(u64, &'a AtomicU64)>,
}

impl SinkHandle for Lane<'_> {
    fn intent(&mut self, key: MessageKey, conversation_id: &str) -> Result<(), BoxError> {
        match &mut self.ledger {
            Some(ledger) => Ok(ledger.intent(key, conversation_id)?),
            None => Ok(()),
        }
    }

    fn outcome(&mut self, outcome: Outcome<'_>) -> Result<(), BoxError> {
        if let Some(ledger) = &mut self.ledger {
            ledger.outcome(&outcome);
        }
        self.progress.outcome(&outcome);
        self.stats.outcome(&outcome);
        if let Some(rejects) = &mut self.rejects {
            rejects.outcome(&outcome);
        }
        if let Some((n, seen)) = self.panic_after {
            if seen.fetch_add(1, Ordering::SeqCst) + 1 == n {
                panic!("injected failure after {n} outcomes (TRANSCRIPT_IMPORT_PANIC_AFTER)");
            }
        }
        Ok(self.report.outcome(&outcome)?)
    }

    fn conversation(&mut self, external_id: &str, api: &ConversationId) -> Result<(), BoxError> {
        if let Some(ledger) = &mut self.ledger {
            ledger.conversation(external_id, api.as_str());
        }
        Ok(())
    }

    fn requests(&mut self, count: u32) {
        if let Some(ledger) = &mut self.ledger {
            ledger.requests(count);
        }
        self.progress.requests(count);
    }

    fn exchange(&mut self, conversation_id: &str, exchange: Exchange) {
        self.stats.exchange(conversation_id, exchange);
    }

    /// Every part flushed, whichever fails: the summary counts what the
    /// journal or the report could not take. The first error stops the run.
    fn flush(&mut self) -> Result<(), BoxError> {
        self.stats.flush();
        if let Some(rejects) = &mut self.rejects {
            rejects.flush();
        }
        let synced = match &mut self.ledger {
            Some(ledger) => ledger.sync(),
            None => Ok(()),
        };
        let flushed = self.report.flush();
        synced?;
        Ok(flushed?)
    }
}
