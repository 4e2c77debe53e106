//! The report as CSV: a header of the contract's columns, RFC 4180 quoting,
//! so it opens cleanly in a spreadsheet.
//!
//! Control characters other than tab and line breaks (a NUL, a terminal
//! escape, DEL, C1 controls) are written escaped, as `\0` or `\u{1b}`:
//! values like a conversation id come from the input, and a raw NUL or
//! escape sequence in a CSV file truncates fields in C tools, breaks
//! spreadsheet imports and rewrites a terminal that `cat`s the report. Tabs
//! and line breaks stay as they are (line breaks inside RFC 4180 quotes;
//! a tab is plain data between commas): every CSV reader gives them back
//! exactly, so a conversation id read from the report still matches the
//! input. (JSONL escapes everything itself.)
//!
//! A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return
//! gets a single quote (`'`) in front, as OWASP's rule against CSV
//! injection says: a spreadsheet would take such a cell for a formula
//! (`=HYPERLINK(...)`, `@SUM(...)`) and run it. Values come from the input
//! and from the API's answers, neither of which the analyst opening the
//! report controls. A conversation id like `-17` reads `'-17` in the file
//! (and shows as `-17` in a spreadsheet). A cell that is `-` alone, the
//! name of standard input in `source`, has nothing after its sign to
//! compute and stays as it is.

use std::borrow::Cow;
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
    match safe_row(row) {
        Some(escaped) => writer.serialize(&escaped),
        None => writer.serialize(row),
    }
    .map_err(io_err)?;
    writer.flush()
}

/// A rendered row (ending in a line break) with one more cell, `text`,
/// made safe as every other cell.
pub fn with_text(row: &[u8], text: &str, out: &mut impl io::Write) -> io::Result<()> {
    let mut cell = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::with_capacity(text.len() + 3));
    cell.write_record([safe(text).as_ref()]).map_err(io_err)?;
    let cell = cell.into_inner().map_err(|e| e.into_error())?;
    out.write_all(row.strip_suffix(b"\n").unwrap_or(row))?;
    out.write_all(b",")?;
    out.write_all(&cell)
}

/// A control character that is escaped in the CSV report.
fn hidden(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// A first character that makes a spreadsheet take a cell for a formula
/// (OWASP, "CSV Injection"); `-` alone (standard input) is no formula.
pub fn formula_start(s: &str) -> bool {
    s.starts_with(['=', '+', '-', '@', '\t', '\r']) && s != "-"
}

/// Whether a cell needs [`safe`]'s work.
fn unsafe_cell(s: &str) -> bool {
    formula_start(s) || s.chars().any(hidden)
}

/// `s` with its hidden control characters escaped, and a `'` in front if
/// it starts like a formula.
pub fn safe(s: &str) -> Cow<'_, str> {
    if !unsafe_cell(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    if formula_start(s) {
        out.push('\'');
    }
    for c in s.chars() {
        if hidden(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The row with every text column made safe, or `None` when nothing
/// needs it (the common case: no copy).
fn safe_row(row: &ReportRow) -> Option<ReportRow> {
    let texts = [
        &row.source,
        &row.conversation_id,
        &row.api_conversation_id,
        &row.timestamp,
        &row.message_id,
        &row.error_code,
        &row.error_message,
        &row.request_id,
    ];
    if !texts.iter().any(|s| unsafe_cell(s)) {
        return None;
    }
    let v = |s: &String| safe(s).into_owned();
    Some(ReportRow {
        source: v(&row.source),
        conversation_id: v(&row.conversation_id),
        api_conversation_id: v(&row.api_conversation_id),
        timestamp: v(&row.timestamp),
        message_id: v(&row.message_id),
        error_code: v(&row.error_code),
        error_message: v(&row.error_message),
        request_id: v(&row.request_id),
        ..row.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;

    fn row(conversation_id: &str, error_message: &str) -> ReportRow {
        ReportRow {
            source: "in.csv".into(),
            record: 1,
            line: 2,
            conversation_id: conversation_id.into(),
            api_conversation_id: String::new(),
            timestamp: String::new(),
            status: Status::Invalid,
            message_id: String::new(),
            http_status: None,
            error_code: String::new(),
            error_message: error_message.into(),
            request_id: String::new(),
            attempts: 0,
        }
    }

    fn encoded(r: &ReportRow) -> String {
        let mut out = Vec::new();
        encode(r, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn control_characters_are_escaped_visibly() {
        let got = encoded(&row("AB\0C\u{1b}[2J\u{7f}\u{9b}", "bell\u{7}"));
        assert_eq!(
            got,
            "in.csv,1,2,AB\\0C\\u{1b}[2J\\u{7f}\\u{9b},,,invalid,,,,bell\\u{7},,0\n"
        );
        assert!(!got.chars().any(|c| c.is_control() && c != '\n'));
    }

    #[test]
    fn cells_that_start_like_a_formula_get_a_quote() {
        for start in ["=", "+", "-", "@", "\t", "\r"] {
            let mut r = row(&format!("{start}CONV"), &format!("{start}HYPERLINK(\"x\")"));
            r.message_id = format!("{start}1+1");
            r.api_conversation_id = r.conversation_id.clone();
            let got = encoded(&r);
            let back: Vec<csv::StringRecord> = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(got.as_bytes())
                .records()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(back[0][3], format!("'{start}CONV"), "{got:?}");
            assert_eq!(back[0][4], format!("'{start}CONV"), "{got:?}");
            assert_eq!(back[0][7], format!("'{start}1+1"), "{got:?}");
            assert_eq!(back[0][10], format!("'{start}HYPERLINK(\"x\")"), "{got:?}");
            // Numbers are numbers: never quoted.
            assert_eq!(&back[0][1], "1");
        }
        // Standard input's name is no formula.
        assert_eq!(safe("-"), "-");
        // Inside a cell they are harmless.
        assert_eq!(
            encoded(&row("A-B=C", "x@y")),
            "in.csv,1,2,A-B=C,,,invalid,,,,x@y,,0\n"
        );
        // A control character and a formula start at once.
        assert_eq!(
            encoded(&row("=\u{1b}x", "")),
            "in.csv,1,2,'=\\u{1b}x,,,invalid,,,,,,0\n"
        );
    }

    #[test]
    fn tabs_and_line_breaks_stay_inside_quotes() {
        let got = encoded(&row("A\tB", "two\r\nlines"));
        assert_eq!(got, "in.csv,1,2,A\tB,,,invalid,,,,\"two\r\nlines\",,0\n");
        let back: Vec<csv::StringRecord> = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(got.as_bytes())
            .records()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(&back[0][3], "A\tB");
        assert_eq!(&back[0][10], "two\r\nlines");
    }

    #[test]
    fn clean_rows_are_not_copied() {
        assert!(safe_row(&row("ABC", "text: empty")).is_none());
        assert_eq!(
            encoded(&row("ABC", "")),
            "in.csv,1,2,ABC,,,invalid,,,,,,0\n"
        );
    }
}
