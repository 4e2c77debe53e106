//! Report: what a run tells people and scripts. The results report, one
//! line per input row in input order: each format renders one row into
//! bytes (`encode`), so each is tested without a file; the [`Spool`]
//! gathers rendered rows during the run and writes them in input order at
//! its end. [`stats`] gathers what the summary, the summary JSON
//! ([`summary`]) and the HTML report ([`html`]) say; [`rejects`] writes
//! the rows that did not make it back in the input's format; [`progress`]
//! draws the run as outcomes arrive.

mod csv;
pub mod html;
mod jsonl;
pub mod output;
pub mod progress;
pub mod rejects;
mod spool;
pub mod stats;
pub mod summary;

use std::io::{self, Write};
use std::path::Path;

pub use self::spool::{ReportError, Spool, SpoolWriter};
pub use self::stats::{Stats, StatsLane, Summary};
use crate::model::{Outcome, Status};

/// One line of the results report, as DESIGN.md defines its columns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReportRow {
    pub source: String,
    pub record: u64,
    pub line: u64,
    pub conversation_id: String,
    pub api_conversation_id: String,
    pub timestamp: String,
    pub status: Status,
    pub message_id: String,
    pub http_status: Option<u16>,
    pub error_code: String,
    pub error_message: String,
    pub request_id: String,
    pub attempts: u32,
}

impl ReportRow {
    /// The report line of an outcome; `source` names its input.
    pub fn new(o: &Outcome<'_>, source: &str) -> ReportRow {
        let text = |s: &Option<String>| s.clone().unwrap_or_default();
        ReportRow {
            source: source.to_string(),
            record: o.pos.record,
            line: o.pos.line,
            conversation_id: o.conversation_id.to_string(),
            api_conversation_id: o.api_conversation_id.unwrap_or_default().to_string(),
            timestamp: o.timestamp.map(|t| t.to_rfc3339()).unwrap_or_default(),
            status: o.status,
            message_id: text(&o.message_id),
            http_status: o.http_status,
            error_code: text(&o.error_code),
            error_message: text(&o.error_message),
            request_id: text(&o.request_id),
            attempts: o.attempts,
        }
    }
}

/// Columns of the report, in their contract order (DESIGN.md).
pub const COLUMNS: [&str; 13] = [
    "source",
    "record",
    "line",
    "conversation_id",
    "api_conversation_id",
    "timestamp",
    "status",
    "message_id",
    "http_status",
    "error_code",
    "error_message",
    "request_id",
    "attempts",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Csv,
    Jsonl,
}

impl ReportFormat {
    /// By the report path's extension.
    pub fn from_path(path: &Path) -> Result<ReportFormat, ReportError> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => Ok(ReportFormat::Csv),
            Some("jsonl") | Some("ndjson") => Ok(ReportFormat::Jsonl),
            _ => Err(ReportError::Extension {
                path: path.display().to_string(),
            }),
        }
    }

    /// What a report holds before its first row (a CSV header).
    pub fn header(self) -> Vec<u8> {
        let mut out = Vec::new();
        if self == ReportFormat::Csv {
            // Writing to memory cannot fail.
            let _ = csv::header(&mut out);
        }
        out
    }

    /// Append one row, rendered, to `out`.
    pub fn encode(self, row: &ReportRow, out: &mut Vec<u8>) -> io::Result<()> {
        match self {
            ReportFormat::Csv => csv::encode(row, out),
            ReportFormat::Jsonl => jsonl::encode(row, out),
        }
    }

    /// The header with one more column, `text` (`--report-text`).
    pub fn text_header(self, header: &mut Vec<u8>) {
        if self == ReportFormat::Csv && header.last() == Some(&b'\n') {
            header.pop();
            header.extend_from_slice(b",text\n");
        }
    }

    /// Write a rendered `row` with `text` as its last column.
    pub fn with_text(self, row: &[u8], text: &str, out: &mut impl Write) -> io::Result<()> {
        match self {
            ReportFormat::Csv => csv::with_text(row, text, out),
            ReportFormat::Jsonl => jsonl::with_text(row, text, out),
        }
    }
}

/// Write this run's report from the spool to `path`, atomically: the rows
/// go to a temporary file beside it, renamed into place when complete, so
/// nobody ever reads a half-written report (see [`output`] for names that
/// are links or not files). The report is its owner's only.
/// With `texts` (`--report-text`), each row's message text is read back
/// from these inputs into a last column, `text`.
pub fn write(
    spool: &Spool,
    path: &Path,
    texts: Option<&[crate::read::Source]>,
) -> Result<u64, ReportError> {
    let err = |source| ReportError::write(path, source);
    spool.whole().map_err(err)?;
    let output = output::Output::create(path).map_err(err)?;
    // Large writes: the rows come from memory at once, and 8 KB a call
    // was a system call per 50 rows on the run's way out.
    let mut out = io::BufWriter::with_capacity(1 << 20, output.file());
    let count = spool
        .write_to(&mut out, texts)
        .and_then(|n| out.flush().map(|()| n))
        .map_err(err)?;
    drop(out);
    output.finish().map_err(err)?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<ReportRow> {
        vec![
            ReportRow {
                source: "a.csv".into(),
                record: 1,
                line: 2,
                conversation_id: "C1".into(),
                api_conversation_id: "C1".into(),
                timestamp: "2021-11-23T12:13:14.555Z".into(),
                status: Status::Created,
                message_id: "01BX5ZZKBKACTAV9WEVGEMMVS1".into(),
                http_status: Some(200),
                error_code: String::new(),
                error_message: String::new(),
                request_id: "r-1".into(),
                attempts: 1,
            },
            ReportRow {
                source: "a.csv".into(),
                record: 2,
                line: 3,
                conversation_id: "bad id".into(),
                api_conversation_id: "bad id".into(),
                timestamp: String::new(),
                status: Status::Invalid,
                message_id: String::new(),
                http_status: None,
                error_code: String::new(),
                error_message: "conversation_id: not ^[A-Z0-9]+$: \"bad id\", \"quoted\"".into(),
                request_id: String::new(),
                attempts: 0,
            },
        ]
    }

    fn render(format: ReportFormat) -> String {
        let mut out = format.header();
        for row in sample() {
            format.encode(&row, &mut out).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_has_the_contract_columns_and_quotes() {
        let text = render(ReportFormat::Csv);
        let mut lines = text.lines();
        assert_eq!(lines.next().unwrap(), COLUMNS.join(","));
        assert_eq!(
            lines.next().unwrap(),
            "a.csv,1,2,C1,C1,2021-11-23T12:13:14.555Z,created,01BX5ZZKBKACTAV9WEVGEMMVS1,200,,,r-1,1"
        );
        assert_eq!(
            lines.next().unwrap(),
            r#"a.csv,2,3,bad id,bad id,,invalid,,,,"conversation_id: not ^[A-Z0-9]+$: ""bad id"", ""quoted""",,0"#
        );
        // Round trip through a CSV reader.
        let mut rdr = ::csv::Reader::from_reader(text.as_bytes());
        let back: Vec<ReportRow> = rdr.deserialize().map(|r| r.unwrap()).collect();
        assert_eq!(back, sample());
    }

    #[test]
    fn jsonl_keys_in_contract_order() {
        let text = render(ReportFormat::Jsonl);
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        let keys: Vec<&str> = first
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut sorted = COLUMNS.to_vec();
        sorted.sort();
        let mut got = keys.clone();
        got.sort();
        assert_eq!(got, sorted);
        assert!(text
            .lines()
            .next()
            .unwrap()
            .starts_with("{\"source\":\"a.csv\",\"record\":1,\"line\":2,"));
        let back: Vec<ReportRow> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(back, sample());
    }

    #[test]
    fn format_by_extension() {
        assert_eq!(
            ReportFormat::from_path(Path::new("r.CSV")).ok(),
            Some(ReportFormat::Csv)
        );
        assert_eq!(
            ReportFormat::from_path(Path::new("r.jsonl")).ok(),
            Some(ReportFormat::Jsonl)
        );
        assert!(ReportFormat::from_path(Path::new("r.txt")).is_err());
    }
}
