//! The report as JSON Lines: one object per row, keys in contract order.

use std::io::{self, Write};

use super::Reporter;
use crate::record::ReportRow;

pub struct JsonlReporter<W: Write> {
    out: W,
}

impl<W: Write> JsonlReporter<W> {
    pub fn new(out: W) -> Self {
        JsonlReporter { out }
    }
}

impl<W: Write> Reporter for JsonlReporter<W> {
    fn row(&mut self, row: &ReportRow) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, row)?;
        self.out.write_all(b"\n")
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
