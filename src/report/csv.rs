//! The report as CSV: a header of the contract's columns, RFC 4180 quoting,
//! so it opens cleanly in a spreadsheet.

use std::io;

use super::ReportRow;

fn io_err(e: csv::Error) -> io::Error {
    io::Error::other(e)
}

/// The header line, written by hand (not by serde) so that an empty report
/// still has one.
pub fn header(out: &mut Vec<u8>) -> io::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(super::COLUMNS).map_err(io_err)?;
    writer.flush()
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
