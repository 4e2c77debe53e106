//! The report as CSV: a header of the contract's columns, RFC 4180 quoting,
//! so it opens cleanly in a spreadsheet.

use std::io::{self, Write};

use super::ReportRow;

pub struct CsvReporter<W: Write> {
    out: W,
    header_written: bool,
    scratch: Vec<u8>,
}

impl<W: Write> CsvReporter<W> {
    pub fn new(out: W) -> Self {
        CsvReporter {
            out,
            header_written: false,
            scratch: Vec::new(),
        }
    }

    /// Written by hand (not by serde) so that an empty report still has one.
    fn header(&mut self) -> io::Result<()> {
        if !self.header_written {
            self.header_written = true;
            let mut writer = csv::Writer::from_writer(&mut self.out);
            writer.write_record(super::COLUMNS).map_err(io_err)?;
            writer.flush()?;
        }
        Ok(())
    }
}

fn io_err(e: csv::Error) -> io::Error {
    io::Error::other(e)
}

/// One row as CSV, appended to `out`.
pub fn encode(row: &ReportRow, out: &mut Vec<u8>) -> io::Result<()> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .buffer_capacity(512)
        .from_writer(out);
    writer.serialize(row).map_err(io_err)?;
    writer.flush()
}

impl<W: Write> super::Reporter for CsvReporter<W> {
    fn row(&mut self, row: &ReportRow) -> io::Result<()> {
        self.header()?;
        self.scratch.clear();
        encode(row, &mut self.scratch)?;
        self.out.write_all(&self.scratch)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.header()?;
        self.out.flush()
    }
}
