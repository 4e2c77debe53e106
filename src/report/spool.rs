//! The spool: report rows as they are decided, in whatever order workers
//! decide them, rendered to the report's format right away (in the
//! workers, in parallel), and put in input order at the end by copying
//! bytes. Memory holds 12 bytes of index per row, never the rows.
//!
//! A killed run writes no report, and the next run reports every row from
//! the ledger, so the spool needs no durability: it is a temporary file,
//! gone with the process.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;

use super::{ReportFormat, ReportRow};
use crate::model::Outcome;
use crate::read::{RawRecord, ReadError, Source};

/// The report could not be gathered or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: cannot write the report{}", super::output::left_as_it_was(*kept))]
    Write {
        path: String,
        /// A file was at `path` before (an earlier run's report): it is
        /// still there, and must not pass for this run's.
        kept: bool,
        #[source]
        source: io::Error,
    },
    /// The rows on their way to the report live in a temporary file in
    /// the report's directory: a full disk shows here first.
    #[error("{dir}: cannot write the report's rows to a temporary file in this directory")]
    Spool {
        dir: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: the report must end in .csv or .jsonl")]
    Extension { path: String },
    /// A bug, never the input's doing: every row is reported exactly once.
    #[error("record {record} of input {source_index} was reported twice")]
    Twice { source_index: u32, record: u64 },
}

impl ReportError {
    /// `path` could not be written: see [`ReportError::Write`].
    pub fn write(path: &Path, source: io::Error) -> ReportError {
        ReportError::Write {
            path: path.display().to_string(),
            kept: super::output::is_there(path),
            source,
        }
    }
}

/// Rows a worker renders before handing them to the spool.
const CHUNK_BYTES: usize = 64 * 1024;
/// Where each row's rendering sits in the spool file, per source, by record.
#[derive(Default)]
struct Index {
    offsets: Vec<Vec<u64>>,
    /// 0: not reported (yet).
    lens: Vec<Vec<u32>>,
}

impl Index {
    /// Room for `rows` records of `source`, so the index does not grow
    /// by doubling (and hold up to twice what it needs) during the run.
    fn reserve(&mut self, source: usize, rows: usize) {
        if self.offsets.len() <= source {
            self.offsets.resize_with(source + 1, Vec::new);
            self.lens.resize_with(source + 1, Vec::new);
        }
        if self.offsets[source].len() < rows {
            self.offsets[source].resize(rows, 0);
            self.lens[source].resize(rows, 0);
            self.offsets[source].shrink_to_fit();
            self.lens[source].shrink_to_fit();
        }
    }

    fn set(&mut self, source: u32, record: u64, offset: u64, len: u32) -> Result<(), ReportError> {
        let s = source as usize;
        if self.offsets.len() <= s {
            self.offsets.resize_with(s + 1, Vec::new);
            self.lens.resize_with(s + 1, Vec::new);
        }
        // Records are numbered from 1 and fit in memory's index.
        let r = record.saturating_sub(1) as usize;
        if self.offsets[s].len() <= r {
            self.offsets[s].resize(r + 1, 0);
            self.lens[s].resize(r + 1, 0);
        }
        if self.lens[s][r] != 0 {
            return Err(ReportError::Twice {
                source_index: source,
                record,
            });
        }
        self.offsets[s][r] = offset;
        self.lens[s][r] = len;
        Ok(())
    }
}

struct Shared {
    file: Option<File>,
    len: u64,
    index: Index,
    /// A write to the file failed (a full disk): rows are missing from it,
    /// and a report of the rest would pass for the whole.
    broken: bool,
}

/// This run's report rows, on their way to the report.
pub struct Spool {
    /// `None`: no report file was asked for; rows are only counted.
    format: Option<ReportFormat>,
    sources: Vec<String>,
    /// The directory of the spool file, for errors (empty without one).
    dir: String,
    shared: Mutex<Shared>,
}

impl Spool {
    /// A spool for a report of rows of `sources` (their names, for the
    /// `source` column), rendered as `format`, in a temporary file in `dir`
    /// (beside the report, which will be about as large).
    pub fn for_report(format: ReportFormat, sources: Vec<String>, dir: &Path) -> io::Result<Spool> {
        let mut spool = Spool::with(Some(format), sources, Some(tempfile::tempfile_in(dir)?));
        spool.dir = dir.display().to_string();
        Ok(spool)
    }

    /// A spool that only counts rows (and checks each is reported once):
    /// for a run without `--report`.
    pub fn counting(sources: Vec<String>) -> Spool {
        Spool::with(None, sources, None)
    }

    fn with(format: Option<ReportFormat>, sources: Vec<String>, file: Option<File>) -> Spool {
        Spool {
            format,
            sources,
            dir: String::new(),
            shared: Mutex::new(Shared {
                file,
                len: 0,
                index: Index::default(),
                broken: false,
            }),
        }
    }

    fn failed(&self, source: io::Error) -> ReportError {
        ReportError::Spool {
            dir: self.dir.clone(),
            source,
        }
    }

    /// A worker's own buffer: rows are rendered there, without a lock.
    /// Expect `rows` records of each source (known once they are read).
    pub fn reserve(&self, rows_per_source: &[u64]) {
        let mut shared = self.lock();
        for (source, rows) in rows_per_source.iter().enumerate() {
            shared.index.reserve(source, *rows as usize);
        }
    }

    pub fn writer(&self) -> SpoolWriter<'_> {
        SpoolWriter {
            spool: self,
            buf: Vec::new(),
            placed: Vec::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether every row decided is kept: after a failed write (a full
    /// disk) rows are missing, and a report of the rest would pass for
    /// the whole. Asked before the report's file is made.
    pub fn whole(&self) -> io::Result<()> {
        if self.lock().broken {
            return Err(io::Error::other(
                "some of this run's rows could not be kept in its temporary file, and a report without them would pass for the whole; `transcript-import report --state DB --out PATH` renders it from the ledger",
            ));
        }
        Ok(())
    }

    /// Write the report header and every row, in input order, to `out`.
    /// With `texts`, the inputs, each row gets its message text as a last
    /// column, read back from its input record by record. Returns the
    /// number of rows. Only through `report::write`, which asks
    /// [`Spool::whole`] before it makes the report's file.
    pub(super) fn write_to(
        &self,
        out: &mut impl Write,
        texts: Option<&[Source]>,
    ) -> io::Result<u64> {
        let Some(format) = self.format else {
            return Ok(0);
        };
        let mut header = format.header();
        if texts.is_some() {
            format.text_header(&mut header);
        }
        out.write_all(&header)?;
        let mut shared = self.lock();
        let Shared {
            file, len, index, ..
        } = &mut *shared;
        let Some(file) = file.as_mut() else {
            return Ok(0);
        };
        if *len == 0 {
            return Ok(0);
        }
        // SAFETY: the spool is an unnamed temporary file of this process
        // (`tempfile_in`: no path, so no other process can open it), and
        // nothing writes to it any more: the lock on `Shared` is held.
        // Mapped, its pages are page cache the kernel may drop and reread,
        // not heap: a large report costs no memory to put in order.
        // Populated: rows are read in input order, scattered over the file,
        // and each page touched would otherwise be a fault of its own.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&*file)? };
        let mut rows = 0u64;
        for (s, (offsets, lens)) in index.offsets.iter().zip(&index.lens).enumerate() {
            let mut records = match texts.and_then(|t| t.get(s)) {
                Some(source) => Some(source.records().map_err(io::Error::other)?.peekable()),
                None => None,
            };
            for (r, (&offset, &n)) in offsets.iter().zip(lens).enumerate() {
                if n == 0 {
                    continue;
                }
                rows += 1;
                let at = offset as usize;
                let row = &map[at..at + n as usize];
                match &mut records {
                    None => out.write_all(row)?,
                    Some(records) => {
                        let text = text_of(records, r as u64 + 1);
                        format.with_text(row, text.as_deref().unwrap_or(""), out)?;
                    }
                }
            }
        }
        Ok(rows)
    }
}

/// The text of `record`, read on from `records` (asked in record order);
/// none when its fields could not be read.
fn text_of(
    records: &mut std::iter::Peekable<impl Iterator<Item = Result<RawRecord, ReadError>>>,
    record: u64,
) -> Option<String> {
    while let Some(next) = records.peek() {
        match next {
            Ok(r) if r.pos.record < record => {}
            Ok(r) if r.pos.record == record => {
                return records.next()?.ok()?.fields.ok()?.text;
            }
            Ok(_) => return None,
            // The input cannot be read on: no more texts.
            Err(_) => return None,
        }
        records.next();
    }
    None
}

/// A worker's end of the spool.
pub struct SpoolWriter<'a> {
    spool: &'a Spool,
    buf: Vec<u8>,
    /// (source, record, offset in `buf`, length) of the rows in `buf`.
    placed: Vec<(u32, u64, usize, u32)>,
}

impl SpoolWriter<'_> {
    /// Add one row. Errors are I/O errors of the spool file, and a row
    /// reported twice (a bug: every row must be reported exactly once).
    pub fn row(&mut self, row: &ReportRow, source: u32, record: u64) -> Result<(), ReportError> {
        if let Some(format) = self.spool.format {
            let start = self.buf.len();
            format
                .encode(row, &mut self.buf)
                .map_err(|e| self.spool.failed(e))?;
            let len = (self.buf.len() - start) as u32;
            self.placed.push((source, record, start, len));
            if self.buf.len() >= CHUNK_BYTES {
                self.flush()?;
            }
        } else {
            // Without a report, rows are still checked to be reported once.
            self.placed.push((source, record, 0, 1));
            if self.placed.len() >= 4096 {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Add the report row of an outcome.
    pub fn outcome(&mut self, outcome: &Outcome<'_>) -> Result<(), ReportError> {
        let (source, record) = (outcome.pos.source.0, outcome.pos.record);
        let name = self
            .spool
            .sources
            .get(source as usize)
            .map_or("", String::as_str);
        let row = ReportRow::new(outcome, name);
        self.row(&row, source, record)
    }

    /// Hand everything buffered to the spool.
    pub fn flush(&mut self) -> Result<(), ReportError> {
        let mut shared = self.spool.lock();
        let shared = &mut *shared;
        if shared.broken {
            // The report will not be written; the run is stopping.
            self.buf.clear();
            self.placed.clear();
            return Ok(());
        }
        let base = shared.len;
        if let Some(file) = shared.file.as_mut() {
            if let Err(e) = file.write_all(&self.buf) {
                shared.broken = true;
                return Err(self.spool.failed(e));
            }
            shared.len += self.buf.len() as u64;
        }
        for (source, record, offset, len) in self.placed.drain(..) {
            shared
                .index
                .set(source, record, base + offset as u64, len)?;
        }
        self.buf.clear();
        Ok(())
    }
}

impl Drop for SpoolWriter<'_> {
    fn drop(&mut self) {
        // Errors surface through an explicit flush; a dropped writer still
        // hands over what it holds so no row goes missing silently.
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;

    fn row(record: u64, status: Status, reason: &str) -> ReportRow {
        ReportRow {
            source: "a.csv".into(),
            record,
            line: record + 1,
            conversation_id: "C1".into(),
            api_conversation_id: "C1".into(),
            timestamp: String::new(),
            status,
            message_id: String::new(),
            http_status: None,
            error_code: String::new(),
            error_message: reason.into(),
            request_id: String::new(),
            attempts: 0,
        }
    }

    #[test]
    fn rows_come_out_in_input_order_whatever_order_they_went_in() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::for_report(ReportFormat::Csv, vec!["a.csv".into()], dir.path()).unwrap();
        let (mut w1, mut w2) = (spool.writer(), spool.writer());
        for r in [5, 3, 1] {
            w1.row(&row(r, Status::Created, ""), 0, r).unwrap();
        }
        for r in [4, 2] {
            w2.row(&row(r, Status::Invalid, "bad"), 0, r).unwrap();
        }
        w2.flush().unwrap();
        w1.flush().unwrap();
        let mut out = Vec::new();
        assert_eq!(spool.write_to(&mut out, None).unwrap(), 5);
        let text = String::from_utf8(out).unwrap();
        let records: Vec<u64> = ::csv::Reader::from_reader(text.as_bytes())
            .deserialize::<ReportRow>()
            .map(|r| r.unwrap().record)
            .collect();
        assert_eq!(records, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_row_cannot_be_reported_twice() {
        let dir = tempfile::tempdir().unwrap();
        let sources = || vec!["a.csv".to_string()];
        for spool in [
            Spool::for_report(ReportFormat::Jsonl, sources(), dir.path()).unwrap(),
            Spool::counting(sources()),
        ] {
            let mut w = spool.writer();
            w.row(&row(1, Status::Skipped, ""), 0, 1).unwrap();
            w.row(&row(1, Status::Skipped, ""), 0, 1).unwrap();
            assert!(matches!(
                w.flush().unwrap_err(),
                ReportError::Twice { record: 1, .. }
            ));
        }
    }
}
