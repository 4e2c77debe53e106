//! The report as JSON Lines: one object per row, keys in contract order.

use std::io::{self, Write};

use super::ReportRow;

pub struct JsonlReporter<W: Write> {
    out: W,
    scratch: Vec<u8>,
}

impl<W: Write> JsonlReporter<W> {
    pub fn new(out: W) -> Self {
        JsonlReporter {
            out,
            scratch: Vec::new(),
        }
    }
}

/// One row as a JSON line, appended to `out`.
pub fn encode(row: &ReportRow, out: &mut Vec<u8>) -> io::Result<()> {
    serde_json::to_writer(&mut *out, row)?;
    out.push(b'\n');
    Ok(())
}

impl<W: Write> super::Reporter for JsonlReporter<W> {
    fn row(&mut self, row: &ReportRow) -> io::Result<()> {
        self.scratch.clear();
        encode(row, &mut self.scratch)?;
        self.out.write_all(&self.scratch)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
