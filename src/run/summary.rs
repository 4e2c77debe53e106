//! The end of a run on stderr: rows by status, the most frequent reasons,
//! and why the run stopped, if it did.

use std::time::Duration;

use crate::model::Status;
use crate::report::Summary;
use crate::send::StopReason;

/// Requests this run made, and the fewest its plan could take (creates,
/// messages or batches, read-backs; no retries).
pub struct Requests {
    pub used: u64,
    pub fewest: u64,
    /// Which proxy they went through, or why none did when one was set
    /// (never its credentials).
    pub proxy: Option<String>,
}

pub fn print(
    summary: &Summary,
    requests: Requests,
    stopped: Option<&StopReason>,
    elapsed: Duration,
    no_report: bool,
) {
    let counts: Vec<String> = summary
        .by_status
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    eprintln!(
        "done in {:.1}s: {} rows: {}",
        elapsed.as_secs_f64(),
        summary.total(),
        if counts.is_empty() {
            "none".to_string()
        } else {
            counts.join(", ")
        }
    );
    for (reason, n) in &summary.reasons {
        eprintln!("  {n:>8}  {reason}");
    }
    if requests.used > 0 || requests.fewest > 0 {
        eprintln!(
            "requests: {} made; the fewest this plan could take: {}{}",
            requests.used,
            requests.fewest,
            match requests.used.checked_sub(requests.fewest) {
                Some(0) => String::new(),
                Some(extra) => format!(" ({extra} more: retries and read-backs)"),
                // Rows that failed, were skipped or were not reached.
                None => String::new(),
            }
        );
    }
    if let Some(proxy) = &requests.proxy {
        eprintln!("{proxy}");
    }
    if let Some(reason) = stopped {
        eprintln!("{}", stopped_line(reason));
    }
    if no_report
        && summary.total() > summary.count(Status::Created) + summary.count(Status::AlreadyImported)
    {
        eprintln!("hint: --report PATH writes every row's status and reason");
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
        StopReason::Untrusted { cause } => format!("stopped: {cause}"),
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
