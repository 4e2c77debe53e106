//! The end of a run on stderr: rows by status, the most frequent reasons
//! with their first rows, conversations complete or not, speed and
//! latency, requests, and why the run stopped, if it did. The summary JSON
//! and the HTML report say the same from the same figures.

use std::time::Duration;

use crate::model::Status;
use crate::report::stats::Reason;
use crate::report::summary::{RunInfo, Stopped, REASONS};
use crate::report::Summary;
use crate::send::StopReason;

/// Row numbers shown per reason on stderr (the JSON and the HTML show more).
const ROWS_SHOWN: usize = 3;

fn seconds(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 1.0 {
        format!("{secs:.2}s")
    } else {
        format!("{secs:.1}s")
    }
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// `  3  failed: HTTP 422: too long (a.csv:12, a.csv:40, a.csv:41, …)`
fn reason_line(r: &Reason) -> String {
    let mut rows: Vec<String> = r
        .examples
        .iter()
        .take(ROWS_SHOWN)
        .map(ToString::to_string)
        .collect();
    if r.count > rows.len() as u64 {
        rows.push("…".into());
    }
    format!("  {:>8}  {r} ({})", r.count, rows.join(", "))
}

/// The summary as lines.
pub fn lines(summary: &Summary, info: &RunInfo, no_report: bool) -> Vec<String> {
    let mut out = Vec::new();
    let counts: Vec<String> = summary
        .by_status
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    out.push(format!(
        "done in {:.1}s: {} rows: {}",
        info.duration.as_secs_f64(),
        summary.total(),
        if counts.is_empty() {
            "none".to_string()
        } else {
            counts.join(", ")
        }
    ));
    for r in summary.reasons.iter().take(REASONS) {
        out.push(reason_line(r));
    }
    let c = &summary.conversations;
    if c.total > 0 {
        out.push(format!(
            "conversations: {} complete, {} partly imported, {} untouched (of {})",
            c.complete, c.partly, c.untouched, c.total
        ));
    }
    let l = &summary.latency;
    if let (Some(sending), Some(rate), Some(p50), Some(p95), Some(p99)) = (
        info.sending,
        info.per_second(summary),
        l.quantile(0.5),
        l.quantile(0.95),
        l.quantile(0.99),
    ) {
        out.push(format!(
            "speed: {} sending, {rate:.1} messages/s; latency p50 {}, p95 {}, p99 {}",
            seconds(sending),
            ms(p50),
            ms(p95),
            ms(p99)
        ));
    }
    let r = &summary.requests;
    let fewest = info.fewest_requests.unwrap_or(0);
    if r.made > 0 || fewest > 0 {
        out.push(format!(
            "requests: {} made ({} retries, {} answered 429); the fewest this plan could take: {}{}",
            r.made,
            r.retries,
            r.throttled,
            fewest,
            match r.made.checked_sub(fewest) {
                Some(0) => String::new(),
                Some(extra) => format!(" ({extra} more: retries and read-backs)"),
                // Rows that failed, were skipped or were not reached.
                None => String::new(),
            }
        ));
    }
    if let Some(proxy) = &info.proxy {
        out.push(proxy.clone());
    }
    if let Some(stopped) = &info.stopped {
        out.push(stopped.message.clone());
    }
    if no_report
        && summary.total() > summary.count(Status::Created) + summary.count(Status::AlreadyImported)
    {
        out.push("hint: --report PATH writes every row's status and reason".into());
    }
    out
}

pub fn print(summary: &Summary, info: &RunInfo, no_report: bool) {
    for line in lines(summary, info, no_report) {
        say!("{line}");
    }
}

/// Why the run stopped, for the summary, its JSON and the HTML report.
pub fn stopped(reason: &StopReason) -> Stopped {
    Stopped {
        kind: match reason {
            StopReason::Interrupted => "interrupted",
            StopReason::Unauthorized { .. } => "unauthorized",
            StopReason::ApiDown { .. } => "api_down",
            StopReason::Quota { .. } => "quota",
            StopReason::InputChanged { .. } => "input_changed",
            StopReason::Sink => "output",
        },
        message: stopped_line(reason),
    }
}

/// An output that could not be written, as why the run ended.
pub fn output_failed(e: &dyn std::fmt::Display) -> Stopped {
    Stopped {
        kind: "output",
        message: format!("error: {e}"),
    }
}

/// One line that says why the run stopped and what to do.
fn stopped_line(reason: &StopReason) -> String {
    match reason {
        StopReason::Interrupted => {
            "stopped: interrupted; run again with the same --state to continue".into()
        }
        StopReason::Unauthorized { status } => format!(
            "stopped: the API refused the credentials (HTTP {status}); check ASAPP_API_ID / ASAPP_API_SECRET"
        ),
        StopReason::ApiDown { cause } => format!(
            "stopped: the API cannot be reached or keeps failing: {cause}. Run again later with the same --state"
        ),
        StopReason::Quota { flag } => {
            let next = next_utc_midnight();
            format!(
                "paused: {}; run again after {} UTC ({} local) with the same --state",
                if *flag {
                    "--daily-quota is reached for today"
                } else {
                    "the API's daily request quota is spent"
                },
                next.format("%Y-%m-%d %H:%M"),
                next.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M %Z")
            )
        }
        StopReason::InputChanged { what } => format!(
            "stopped: {what}; nothing more was sent. Run again once the file is complete"
        ),
        StopReason::Sink => {
            "stopped: the ledger or the report could not record; nothing more was sent".into()
        }
    }
}

fn next_utc_midnight() -> chrono::DateTime<chrono::Utc> {
    let tomorrow = chrono::Utc::now().date_naive() + chrono::Days::new(1);
    tomorrow
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or_else(chrono::Utc::now)
}
