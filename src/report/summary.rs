//! How a run went, beside its statistics ([`RunInfo`]), and the summary
//! JSON (`--summary-json PATH`) for monitoring: the same figures as the
//! summary on stderr, with stable keys. The schema is in the README
//! ("Summary JSON"); a change to it bumps `schema_version`.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::stats::{Reason, Summary};
use crate::model::Status;

/// The summary JSON's schema version.
pub const SCHEMA_VERSION: u32 = 1;
/// Reasons listed in the summary JSON (and on stderr), the most frequent first.
pub const REASONS: usize = 20;

/// Why a run stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// `interrupted`, `unauthorized`, `api_down`, `quota`, `input_changed`, `output`.
    pub kind: &'static str,
    /// The line the summary prints.
    pub message: String,
}

/// How a command went, beside the statistics of its rows.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// `run`, or `report` (re-rendered from a ledger).
    pub command: &'static str,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration: Duration,
    /// The sending phase, when there was one.
    pub sending: Option<Duration>,
    pub exit_code: i32,
    pub stopped: Option<Stopped>,
    /// The fewest requests the plan could take.
    pub fewest_requests: Option<u64>,
    /// The settings, as `(name, value)`: never credentials.
    pub settings: Vec<(String, String)>,
    /// What a reader should know first (a re-rendered report says so).
    pub notes: Vec<String>,
    /// Which proxy requests went through, or why none did when one was set
    /// (never its credentials): a line of the summary.
    pub proxy: Option<String>,
    /// The files asked for besides the summary JSON, in the order they
    /// were (or would have been) written.
    pub outputs: Vec<OutputFile>,
}

/// An output a command was asked for (`--report`, `--rejects`, `--html`;
/// `report --out`), and whether it was written. One that was not leaves
/// whatever was at its path before, which a monitor must not read as this
/// run's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub kind: Output,
    pub path: String,
    pub written: bool,
    /// The rows written (a report's, the rejects'); `None` for the page,
    /// and for a file not written.
    pub rows: Option<u64>,
}

crate::model::string_enum! {
    /// What an output file is, as the summary JSON names it.
    pub enum Output {
        Report = "report",
        Rejects = "rejects",
        Html = "html",
    }
}

impl OutputFile {
    /// `path`, asked for as `kind`, not (or not yet) written.
    pub fn asked(kind: Output, path: &Path) -> OutputFile {
        OutputFile {
            kind,
            path: path.display().to_string(),
            written: false,
            rows: None,
        }
    }
}

/// The output of `kind` in `outputs` was written, with `rows` rows if it
/// has rows.
pub fn wrote(outputs: &mut [OutputFile], kind: Output, rows: Option<u64>) {
    if let Some(o) = outputs.iter_mut().find(|o| o.kind == kind && !o.written) {
        o.written = true;
        o.rows = rows;
    }
}

impl RunInfo {
    /// Messages the API stored in this run, per second of sending.
    pub fn per_second(&self, summary: &Summary) -> Option<f64> {
        let secs = self.sending?.as_secs_f64();
        let stored = summary.count(Status::Created) + summary.count(Status::Exists);
        (secs > 0.0).then(|| stored as f64 / secs)
    }
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn reason_json(r: &Reason) -> Value {
    json!({
        "status": r.status,
        "http_status": r.http_status,
        "reason": r.text,
        "count": r.count,
        "rows": r.examples.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

/// The summary as JSON (see the README); objects come out with their keys sorted.
pub fn json(summary: &Summary, info: &RunInfo) -> Value {
    let mut rows = Map::new();
    rows.insert("total".into(), json!(summary.total()));
    for status in Status::ALL {
        rows.insert(status.as_str().into(), json!(summary.count(*status)));
    }
    let latency = match (
        summary.latency.quantile(0.5),
        summary.latency.quantile(0.95),
        summary.latency.quantile(0.99),
        summary.latency.max(),
        summary.latency.mean(),
    ) {
        (Some(p50), Some(p95), Some(p99), Some(max), Some(mean)) => json!({
            "p50": millis(p50),
            "p95": millis(p95),
            "p99": millis(p99),
            "max": millis(max),
            "mean": millis(mean),
        }),
        _ => Value::Null,
    };
    let r = &summary.requests;
    json!({
        "schema_version": SCHEMA_VERSION,
        "command": info.command,
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": rfc3339(&info.started_at),
        "finished_at": rfc3339(&info.finished_at),
        "duration_seconds": round3(info.duration.as_secs_f64()),
        "sending_seconds": info.sending.map(|d| round3(d.as_secs_f64())),
        "exit_code": info.exit_code,
        "stopped": info.stopped.as_ref().map(|s| json!({"reason": s.kind, "message": s.message})),
        "rows": Value::Object(rows),
        "reasons": summary.reasons.iter().take(REASONS).map(reason_json).collect::<Vec<_>>(),
        "conversations": summary.conversations,
        "messages_per_second": info.per_second(summary).map(round3),
        "latency_ms": latency,
        "outputs": info.outputs.iter().map(|o| json!({
            "kind": o.kind,
            "path": o.path,
            "written": o.written,
            "rows": o.rows,
        })).collect::<Vec<_>>(),
        "requests": {
            "made": r.made,
            "fewest": info.fewest_requests,
            "retries": r.retries,
            "http_429": r.throttled,
            "http_5xx": r.server_errors,
            "no_answer": r.no_answer,
        },
    })
}

/// Write `bytes` to `path` atomically (a temporary file beside it, renamed
/// when complete; see [`super::output`]), readable by its owner only.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let output = super::output::Output::create(path)?;
    let mut file = output.file();
    file.write_all(bytes)?;
    file.flush()?;
    output.finish()
}

/// Write the summary JSON to `path` (one object, pretty-printed).
pub fn write_json(path: &Path, summary: &Summary, info: &RunInfo) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(&json(summary, info)).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write_atomically(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Exchange, Outcome, RowRef, SourceId};
    use crate::report::Stats;

    #[test]
    fn every_key_is_there_even_when_zero() {
        let stats = Stats::new(vec!["in.csv".into()]);
        {
            let mut lane = stats.lane();
            let pos = |record| RowRef {
                source: SourceId(0),
                record,
                line: record + 1,
                offset: 0,
            };
            lane.outcome(&Outcome::bare(pos(1), "C", Status::Created));
            lane.outcome(&Outcome::bare(pos(2), "C", Status::Failed).because("nope"));
            lane.exchange(
                "C",
                Exchange {
                    latency: Duration::from_millis(12),
                    http_status: Some(200),
                    retry: false,
                },
            );
        }
        let mut info = RunInfo {
            proxy: None,
            command: "run",
            started_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            finished_at: DateTime::from_timestamp(1_700_000_002, 0).unwrap(),
            duration: Duration::from_secs(2),
            sending: Some(Duration::from_secs(1)),
            exit_code: 1,
            stopped: None,
            fewest_requests: Some(2),
            settings: vec![],
            notes: vec![],
            outputs: vec![
                OutputFile::asked(Output::Report, Path::new("r.csv")),
                OutputFile::asked(Output::Html, Path::new("r.html")),
            ],
        };
        wrote(&mut info.outputs, Output::Report, Some(2));
        let v = json(&stats.summary(), &info);
        // The exact set of top-level keys is pinned, as the README lists
        // them, by the integration test of the summary JSON.
        assert_eq!(v["rows"]["total"], 2);
        assert_eq!(v["rows"]["not_attempted"], 0);
        assert_eq!(v["rows"].as_object().unwrap().len(), 1 + Status::ALL.len());
        assert_eq!(v["reasons"][0]["rows"][0], "in.csv:2");
        assert_eq!(v["reasons"][0]["status"], "failed");
        assert_eq!(v["messages_per_second"], 1.0);
        assert_eq!(v["started_at"], "2023-11-14T22:13:20.000Z");
        assert_eq!(v["conversations"]["partly"], 1);
        assert!(v["latency_ms"]["p50"].as_f64().unwrap() > 10.0);
        assert_eq!(v["requests"]["made"], 1);
        assert_eq!(v["stopped"], Value::Null);
        assert_eq!(
            v["outputs"],
            json!([
                {"kind": "report", "path": "r.csv", "written": true, "rows": 2},
                {"kind": "html", "path": "r.html", "written": false, "rows": null},
            ])
        );
    }
}
