//! Report: the results report, one line per input row in input order,
//! rendered from the ledger. Each format is a [`Reporter`] over any writer,
//! so each is tested without a file.

mod csv;
mod jsonl;
pub mod progress;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use self::csv::CsvReporter;
pub use self::jsonl::JsonlReporter;
use crate::record::{Ledger, ReportRow};

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

pub trait Reporter {
    fn row(&mut self, row: &ReportRow) -> io::Result<()>;
    fn finish(&mut self) -> io::Result<()>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Csv,
    Jsonl,
}

impl ReportFormat {
    /// By the report path's extension.
    pub fn from_path(path: &Path) -> Result<ReportFormat, String> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => Ok(ReportFormat::Csv),
            Some("jsonl") | Some("ndjson") => Ok(ReportFormat::Jsonl),
            _ => Err(format!(
                "{}: the report must end in .csv or .jsonl",
                path.display()
            )),
        }
    }

    pub fn reporter<'w, W: Write + 'w>(self, out: W) -> Box<dyn Reporter + 'w> {
        match self {
            ReportFormat::Csv => Box::new(CsvReporter::new(out)),
            ReportFormat::Jsonl => Box::new(JsonlReporter::new(out)),
        }
    }
}

/// Write this run's report from the ledger to `path`, atomically: the rows
/// go to a temporary file beside it, renamed into place when complete, so
/// nobody ever reads a half-written report.
pub fn write(ledger: &Ledger, path: &Path) -> anyhow::Result<u64> {
    use anyhow::Context;
    let format = ReportFormat::from_path(path).map_err(anyhow::Error::msg)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("{}: cannot write the report here", dir.display()))?;
    let mut count = 0u64;
    {
        let mut reporter = format.reporter(io::BufWriter::new(tmp.as_file()));
        ledger
            .report_rows(|row| {
                count += 1;
                reporter.row(&row)
            })
            .with_context(|| format!("{}: writing the report", path.display()))?;
        reporter
            .finish()
            .with_context(|| format!("{}: writing the report", path.display()))?;
    }
    tmp.persist(path)
        .with_context(|| format!("{}: cannot write the report", path.display()))?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;

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
        let mut out = Vec::new();
        {
            let mut r = format.reporter(&mut out);
            for row in sample() {
                r.row(&row).unwrap();
            }
            r.finish().unwrap();
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
            ReportFormat::from_path(Path::new("r.CSV")),
            Ok(ReportFormat::Csv)
        );
        assert_eq!(
            ReportFormat::from_path(Path::new("r.jsonl")),
            Ok(ReportFormat::Jsonl)
        );
        assert!(ReportFormat::from_path(Path::new("r.txt")).is_err());
    }
}
