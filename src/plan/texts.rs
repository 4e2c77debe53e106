//! Read a planned message back from its input when it is sent, and check
//! that it is still the message that was planned.
//!
//! The plan keeps no text, only where each row is and a hash of its
//! content. An input that changes under a running import (an export job
//! still writing it, a cron overlap rewriting it in place; a file renamed
//! over it is not read where `read::ReadOptions::hold_open` holds the
//! input itself open) would otherwise send other
//! text than was planned while the ledger records the planned content, and
//! a rerun would send the real content again. So the text read back is
//! validated again and its content key compared with the plan's; a
//! mismatch or a short read is [`Changed`], and the run stops.

use crate::model::{Entry, MessageBody};
use crate::read::{RecordReader, Source};
use crate::validate::{self, ValidateOptions};

/// The inputs, shared by the workers.
pub struct Texts<'a> {
    sources: &'a [Source],
    validate: &'a ValidateOptions,
}

/// The input no longer holds the row that was planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: record {record} (line {line}) changed while importing: {why}")]
pub struct Changed {
    pub source_name: String,
    pub record: u64,
    pub line: u64,
    pub why: String,
}

impl<'a> Texts<'a> {
    pub fn new(sources: &'a [Source], validate: &'a ValidateOptions) -> Self {
        Texts { sources, validate }
    }

    /// A reader for one worker: file handles of its own, opened on first use.
    pub fn reader(&self) -> TextReader<'a> {
        TextReader {
            sources: self.sources,
            validate: self.validate,
            readers: self.sources.iter().map(|_| None).collect(),
            open: Vec::with_capacity(OPEN_PER_WORKER),
        }
    }
}

/// Inputs one worker keeps open at once. An open input holds two file
/// handles and a 64 KB buffer; kept open once read, a year of daily
/// exports (365 inputs) came to 730 handles a worker, and 16 workers
/// passed the usual limit of 1,024 open files in the middle of a run
/// (200 inputs: exit 3 after 13,265 of 20,000 messages). A conversation
/// spans a few inputs at most: past this many, the one used least
/// recently is closed, and opened again if it is needed again.
pub const OPEN_PER_WORKER: usize = 4;

/// One worker's reader of message bodies.
pub struct TextReader<'a> {
    sources: &'a [Source],
    validate: &'a ValidateOptions,
    readers: Vec<Option<RecordReader>>,
    /// The inputs open in `readers`, the one used last at the end.
    open: Vec<usize>,
}

impl TextReader<'_> {
    /// The body of a planned message, as it was planned.
    pub fn body(&mut self, entry: &Entry) -> Result<MessageBody, Changed> {
        let pos = entry.pos();
        let i = pos.source.0 as usize;
        let changed = |why: String| Changed {
            source_name: self
                .sources
                .get(i)
                .map_or_else(|| format!("input {i}"), |s| s.name.clone()),
            record: entry.pos().record,
            line: entry.pos().line,
            why,
        };
        let Some(source) = self.sources.get(i).filter(|_| i < self.readers.len()) else {
            return Err(changed("no such input".into()));
        };
        if self.open.last() != Some(&i) {
            self.open.retain(|&o| o != i);
            if self.open.len() == OPEN_PER_WORKER {
                let least = self.open.remove(0);
                self.readers[least] = None;
            }
            self.open.push(i);
        }
        let slot = &mut self.readers[i];
        let reader = match slot {
            Some(reader) => reader,
            None => slot.insert(
                source
                    .reader()
                    .map_err(|e| changed(format!("{:#}", anyhow::Error::from(e))))?,
            ),
        };
        let record = reader
            .read_at(&entry.pos())
            .map_err(|e| changed(format!("{:#}", anyhow::Error::from(e))))?;
        let fields = record.fields.map_err(|e| changed(e.to_string()))?;
        let row = validate::row(entry.pos(), fields, self.validate)
            .map_err(|e| changed(e.to_string()))?;
        if row.key() != entry.key().content {
            return Err(changed("its content is not what was read before".into()));
        }
        Ok(row.into_body())
    }
}
