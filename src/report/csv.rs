//! The report as CSV: a header of the contract's columns, RFC 4180 quoting,
//! so it opens cleanly in a spreadsheet.

use std::io::{self, Write};

use super::Reporter;
use crate::record::ReportRow;

pub struct CsvReporter<W: Write> {
    writer: csv::Writer<W>,
    header_written: bool,
}

impl<W: Write> CsvReporter<W> {
    pub fn new(out: W) -> Self {
        CsvReporter {
            // The header is written by hand so that an empty report still has one.
            writer: csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(out),
            header_written: false,
        }
    }

    fn header(&mut self) -> io::Result<()> {
        if !self.header_written {
            self.header_written = true;
            self.writer.write_record(super::COLUMNS).map_err(io_err)?;
        }
        Ok(())
    }
}

fn io_err(e: csv::Error) -> io::Error {
    io::Error::other(e)
}

impl<W: Write> Reporter for CsvReporter<W> {
    fn row(&mut self, row: &ReportRow) -> io::Result<()> {
        self.header()?;
        self.writer.serialize(row).map_err(io_err)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.header()?;
        self.writer.flush()
    }
}
