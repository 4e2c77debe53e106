//! The report as JSON Lines: one object per row, keys in contract order.

use std::io;

use super::ReportRow;

/// A rendered row (`{...}` and a line break) with one more key, `text`.
pub fn with_text(row: &[u8], text: &str, out: &mut impl io::Write) -> io::Result<()> {
    let row = row.strip_suffix(b"\n").unwrap_or(row);
    out.write_all(row.strip_suffix(b"}").unwrap_or(row))?;
    out.write_all(b",\"text\":")?;
    serde_json::to_writer(&mut *out, text)?;
    out.write_all(b"}\n")
}

/// One row as a JSON line, appended to `out`.
pub fn encode(row: &ReportRow, out: &mut Vec<u8>) -> io::Result<()> {
    serde_json::to_writer(&mut *out, row)?;
    out.push(b'\n');
    Ok(())
}
