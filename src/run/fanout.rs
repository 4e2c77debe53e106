//! The one place outcomes go: each worker's handle feeds the ledger's
//! journal, the report's spool and the progress counters. A new consumer
//! of outcomes (another report, a rejects file) is one more field here;
//! no worker code changes.

use crate::model::{MessageKey, Outcome};
use crate::record::{Recorder, Writer};
use crate::report::progress::Counters;
use crate::report::{Spool, SpoolWriter};
use crate::send::{BoxError, Sink, SinkHandle};

pub struct Fanout<'a> {
    pub ledger: &'a Writer,
    pub report: &'a Spool,
    pub counters: &'a Counters,
}

impl Sink for Fanout<'_> {
    fn handle(&self) -> Box<dyn SinkHandle + '_> {
        Box::new(self.lane())
    }
}

impl<'a> Fanout<'a> {
    /// A handle of its own, for one worker or for the reading thread.
    pub fn lane(&self) -> Lane<'a> {
        Lane {
            ledger: self.ledger.recorder(),
            report: self.report.writer(),
            counters: self.counters,
        }
    }
}

pub struct Lane<'a> {
    ledger: Recorder,
    report: SpoolWriter<'a>,
    counters: &'a Counters,
}

impl SinkHandle for Lane<'_> {
    fn intent(&mut self, key: MessageKey, conversation_id: &str) -> Result<(), BoxError> {
        Ok(self.ledger.intent(key, conversation_id)?)
    }

    fn outcome(&mut self, outcome: Outcome<'_>) -> Result<(), BoxError> {
        self.ledger.outcome(&outcome);
        self.counters.outcome(&outcome);
        Ok(self.report.outcome(&outcome)?)
    }

    fn flush(&mut self) -> Result<(), BoxError> {
        self.ledger.flush()?;
        Ok(self.report.flush()?)
    }
}
