//! The report as JSON Lines: one object per row, keys in contract order.

use std::io;

use super::ReportRow;

/// One row as a JSON line, appended to `out`.
pub fn encode(row: &ReportRow, out: &mut Vec<u8>) -> io::Result<()> {
    serde_json::to_writer(&mut *out, row)?;
    out.push(b'\n');
    Ok(())
}
