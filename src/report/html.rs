//! The HTML report (`--html PATH`, and `report --out PATH.html`): one
//! self-contained file for analysts. Everything is inline (styles, charts
//! as SVG drawn here); no script, no font, no image, nothing fetched: it
//! opens the same from a mail attachment, a share or an air-gapped laptop.
//!
//! What it shows, top to bottom: the verdict (how many rows are in the API,
//! what the exit code means, why the run stopped), rows by status, the key
//! figures, the reasons rows did not make it with their first rows, the
//! throughput over time, the latency distribution, the slowest and the
//! most failed conversations, and the run's settings (never credentials).
//! Every value from the input or the API is escaped.

use std::fmt::Write as _;
use std::time::Duration;

use super::stats::{ConversationLine, Reason, Second, Summary};
use super::summary::{RunInfo, REASONS};
use crate::model::Status;

/// `s` with HTML's special characters escaped, for text and attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(out, "{}", c.escape_debug());
            }
            c => out.push(c),
        }
    }
    out
}

fn color(status: Status) -> &'static str {
    match status {
        Status::Created => "#2e7d32",
        Status::AlreadyImported => "#66bb6a",
        Status::Exists => "#9ccc65",
        Status::Invalid => "#8e24aa",
        Status::Failed => "#c62828",
        Status::Skipped => "#ef6c00",
        Status::Uncertain => "#f9a825",
        Status::NotAttempted => "#9e9e9e",
    }
}

fn meaning(status: Status) -> &'static str {
    match status {
        Status::Created => "the API stored it",
        Status::AlreadyImported => "an earlier run stored it",
        Status::Exists => "the API already had it (409)",
        Status::Invalid => "rejected before sending",
        Status::Failed => "the API refused it, or retries ran out",
        Status::Skipped => "not sent: an earlier message of its conversation failed",
        Status::Uncertain => "sent, no answer: may or may not be stored",
        Status::NotAttempted => "the run stopped before it",
    }
}

/// What an exit code says, in a few words.
fn exit_meaning(code: i32) -> &'static str {
    match code {
        0 => "every row is in the API",
        1 => "the run finished; some rows are not in the API",
        2 => "nothing was sent",
        3 => "aborted: credentials refused, or the API kept failing",
        4 => "paused at the daily quota: run again after 00:00 UTC",
        130 => "interrupted; run again with the same ledger to continue",
        _ => "",
    }
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0%".into();
    }
    let p = part as f64 * 100.0 / whole as f64;
    if part == whole {
        "100%".into()
    } else if p >= 99.95 {
        "99.9%".into()
    } else if p < 0.1 && part > 0 {
        "&lt;0.1%".into()
    } else {
        format!("{p:.1}%")
    }
}

/// `1.2 ms`, `35 ms`, `1.50 s`.
fn ms_text(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

fn duration_text(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else if secs < 3600.0 {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    } else {
        format!("{}h{:02}m", d.as_secs() / 3600, (d.as_secs() % 3600) / 60)
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

const STYLE: &str = r#"
:root { --ink:#1c2430; --muted:#5b6675; --line:#e3e7ec; --bg:#f6f8fa; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
header h1 { font-size: 22px; margin: 0; }
header .sub { color: var(--muted); font-size: 13px; margin-top: 2px; }
section { background:#fff; border:1px solid var(--line); border-radius:10px; padding:18px 22px; margin-top:18px; }
h2 { font-size: 16px; margin: 0 0 12px; }
.verdict { display:flex; align-items:center; gap:28px; border-left: 10px solid var(--tone); }
.verdict .big { font-size: 54px; font-weight: 700; color: var(--tone); line-height: 1; font-variant-numeric: tabular-nums; }
.verdict .what { font-size: 19px; font-weight: 600; }
.verdict .why { color: var(--muted); margin-top: 4px; }
.verdict .note { margin-top: 6px; font-size: 13px; background:#fff8e1; border:1px solid #ffe082; border-radius:6px; padding:4px 8px; display:inline-block; }
.ok { --tone:#2e7d32; } .warn { --tone:#e65100; } .bad { --tone:#c62828; }
.bar { display:flex; height: 30px; border-radius: 6px; overflow:hidden; border:1px solid var(--line); }
.bar div { min-width: 3px; }
.legend { display:grid; grid-template-columns: repeat(4, 1fr); gap: 10px 18px; margin-top: 14px; }
@media (max-width: 900px) { .legend { grid-template-columns: repeat(2, 1fr); } }
.legend .item { display:grid; grid-template-columns: 14px 1fr; column-gap: 8px; align-items: baseline; }
.swatch { width:12px; height:12px; border-radius:3px; display:inline-block; flex:none; }
.legend .n { font-weight:700; font-size: 17px; font-variant-numeric: tabular-nums; }
.legend .status { font-weight:600; }
.legend .share { color: var(--muted); font-size: 13px; }
.legend .zero { color: #a0a8b3; }
.legend .zero .n { font-weight: 400; }
.legend small { grid-column: 2; color: var(--muted); font-size: 12px; line-height: 1.3; }
.legend .zero small { color: #b8bec6; }
.cards { display:grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); gap: 12px; }
.card { border:1px solid var(--line); border-radius:8px; padding:10px 14px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 22px; font-weight: 700; font-variant-numeric: tabular-nums; }
.card .detail { color: var(--muted); font-size: 13px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th { text-align:left; color: var(--muted); font-weight:600; font-size: 12px; text-transform: uppercase; letter-spacing:.04em; border-bottom: 2px solid var(--line); padding: 6px 8px; }
td { border-bottom: 1px solid var(--line); padding: 6px 8px; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.reason { word-break: break-word; }
td.made { white-space: nowrap; }
th[scope=row] { text-transform: none; letter-spacing: 0; font-size: 13px; color: var(--muted); border-bottom: 1px solid var(--line); width: 22%; }
.pill { display:inline-block; padding: 1px 8px; border-radius: 10px; color:#fff; font-size: 12px; font-weight:600; white-space: nowrap; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
.rows { color: var(--muted); font-size: 13px; }
.rows .mono { color: var(--ink); }
.empty { color: var(--muted); font-style: italic; }
.two { display:grid; grid-template-columns: 1fr 1fr; gap: 18px; }
.two section { margin-top: 0; }
@media (max-width: 900px) { .two { grid-template-columns: 1fr; } }
svg text { font: 11px system-ui, sans-serif; fill: var(--muted); }
.keys { display:flex; flex-wrap:wrap; gap:4px 16px; color: var(--muted); font-size: 13px; margin-bottom: 6px; }
.keys span { white-space: nowrap; }
footer { color: var(--muted); font-size: 12px; margin-top: 18px; text-align:center; }
"#;

/// The whole page.
pub fn render(summary: &Summary, info: &RunInfo) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let total = summary.total();
    let imported = summary.imported();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    // Nothing may be fetched, even by mistake.
    h.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n");
    let _ = writeln!(
        h,
        "<title>Import report: {} of {} rows in the API</title>",
        imported, total
    );
    let _ = writeln!(h, "<style>{STYLE}</style>\n</head>\n<body>\n<main>");

    // Header.
    let _ = writeln!(
        h,
        "<header><h1>Import report</h1><div class=\"sub\">transcript-import {} · <code>{}</code> · started {} · took {}</div></header>",
        env!("CARGO_PKG_VERSION"),
        info.command,
        info.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        duration_text(info.duration)
    );

    verdict(&mut h, summary, info);
    statuses(&mut h, summary);
    figures(&mut h, summary, info);
    reasons(&mut h, summary);
    h.push_str("<div class=\"two\">\n");
    throughput(&mut h, summary, info);
    latency(&mut h, summary, info);
    h.push_str("</div>\n");
    conversations(&mut h, summary);
    settings(&mut h, info);
    let _ = writeln!(
        h,
        "<footer>Written {} by transcript-import {}. Self-contained: no script, nothing fetched.</footer>",
        info.finished_at.format("%Y-%m-%d %H:%M:%S UTC"),
        env!("CARGO_PKG_VERSION")
    );
    h.push_str("</main>\n</body>\n</html>\n");
    h
}

fn verdict(h: &mut String, summary: &Summary, info: &RunInfo) {
    let total = summary.total();
    let imported = summary.imported();
    let tone = if info.exit_code == 0 {
        "ok"
    } else if imported * 10 >= total * 9 && matches!(info.exit_code, 1 | 4 | 130) {
        "warn"
    } else {
        "bad"
    };
    let not = total - imported;
    let _ = writeln!(
        h,
        "<section class=\"verdict {tone}\" id=\"verdict\">\n<div class=\"big\" id=\"imported-share\">{}</div>\n<div>",
        percent(imported, total)
    );
    let _ = writeln!(
        h,
        "<div class=\"what\"><span id=\"imported\">{}</span> of <span id=\"total\">{}</span> rows are in the API{}</div>",
        thousands(imported),
        thousands(total),
        if not > 0 {
            format!("; <span id=\"not-imported\">{}</span> are not", thousands(not))
        } else {
            String::new()
        }
    );
    let missing: Vec<String> = summary
        .by_status
        .iter()
        .filter(|(s, n)| !s.is_success() && *n > 0)
        .map(|(s, n)| format!("{} {s}", thousands(*n)))
        .collect();
    if !missing.is_empty() {
        let _ = writeln!(
            h,
            "<div class=\"why\" id=\"missing\">Not in the API: {}.</div>",
            missing.join(" · ")
        );
    }
    if info.command == "run" {
        let _ = writeln!(
            h,
            "<div class=\"why\">Exit code <b id=\"exit-code\">{}</b>: {}.</div>",
            info.exit_code,
            exit_meaning(info.exit_code)
        );
    }
    if let Some(stopped) = &info.stopped {
        let _ = writeln!(
            h,
            "<div class=\"why\" id=\"stopped\">{}</div>",
            escape(&stopped.message)
        );
    }
    for note in &info.notes {
        let _ = writeln!(h, "<div class=\"note\">{}</div>", escape(note));
    }
    h.push_str("</div>\n</section>\n");
}

fn statuses(h: &mut String, summary: &Summary) {
    let total = summary.total();
    h.push_str("<section id=\"statuses\">\n<h2>Rows by status</h2>\n<div class=\"bar\">");
    for (status, n) in &summary.by_status {
        let _ = write!(
            h,
            "<div style=\"width:{:.3}%;background:{}\" title=\"{}: {}\"></div>",
            *n as f64 * 100.0 / total.max(1) as f64,
            color(*status),
            status,
            n
        );
    }
    h.push_str("</div>\n<div class=\"legend\">\n");
    for status in Status::ALL {
        let n = summary.count(*status);
        let _ = writeln!(
            h,
            "<div class=\"item{}\" id=\"status-{}\"><span class=\"swatch\" style=\"background:{}\"></span><span><span class=\"n\" id=\"count-{}\">{}</span> <span class=\"status\">{}</span> <span class=\"share\">{}</span></span><small>{}</small></div>",
            if n == 0 { " zero" } else { "" },
            status,
            color(*status),
            status,
            thousands(n),
            status,
            percent(n, total),
            meaning(*status)
        );
    }
    h.push_str("</div>\n</section>\n");
}

fn card(h: &mut String, id: &str, label: &str, value: &str, detail: &str) {
    let _ = writeln!(
        h,
        "<div class=\"card\" id=\"{id}\"><div class=\"label\">{label}</div><div class=\"value\">{value}</div><div class=\"detail\">{detail}</div></div>"
    );
}

fn figures(h: &mut String, summary: &Summary, info: &RunInfo) {
    h.push_str("<section id=\"figures\">\n<h2>Key figures</h2>\n<div class=\"cards\">\n");
    let c = &summary.conversations;
    card(
        h,
        "card-conversations",
        "Conversations complete",
        &format!("{} / {}", thousands(c.complete), thousands(c.total)),
        &format!(
            "{} partly imported · {} untouched",
            thousands(c.partly),
            thousands(c.untouched)
        ),
    );
    match (info.sending, info.per_second(summary)) {
        (Some(sending), Some(rate)) => card(
            h,
            "card-rate",
            "Messages per second",
            &format!("{rate:.1}"),
            &format!(
                "{} sending, {} in all",
                duration_text(sending),
                duration_text(info.duration)
            ),
        ),
        _ => card(
            h,
            "card-rate",
            "Messages per second",
            "–",
            "no timings in this report",
        ),
    }
    let l = &summary.latency;
    match (l.quantile(0.5), l.quantile(0.95), l.quantile(0.99)) {
        (Some(p50), Some(p95), Some(p99)) => card(
            h,
            "card-latency",
            "Latency p50",
            &ms_text(p50),
            &format!("p95 {} · p99 {}", ms_text(p95), ms_text(p99)),
        ),
        _ => card(h, "card-latency", "Latency p50", "–", "no requests timed"),
    }
    let r = &summary.requests;
    card(
        h,
        "card-requests",
        "Requests",
        &thousands(r.made),
        &format!(
            "{}{} retries · {} × 429 · {} × 5xx · {} unanswered",
            info.fewest_requests
                .map(|f| format!("fewest possible {} · ", thousands(f)))
                .unwrap_or_default(),
            thousands(r.retries),
            thousands(r.throttled),
            thousands(r.server_errors),
            thousands(r.no_answer)
        ),
    );
    h.push_str("</div>\n</section>\n");
}

fn pill(status: Status) -> String {
    format!(
        "<span class=\"pill\" style=\"background:{}\">{}</span>",
        color(status),
        status
    )
}

fn reasons(h: &mut String, summary: &Summary) {
    h.push_str("<section id=\"reasons\">\n<h2>Why rows did not make it</h2>\n");
    if summary.reasons.is_empty() {
        h.push_str("<p class=\"empty\">No row is invalid, failed or uncertain.</p>\n");
    } else {
        h.push_str("<table>\n<thead><tr><th class=\"num\">Rows</th><th>Status</th><th class=\"num\">HTTP</th><th>Reason</th><th>First rows (file:record, line, conversation)</th></tr></thead>\n<tbody>\n");
        for r in summary.reasons.iter().take(REASONS) {
            reason_row(h, r);
        }
        h.push_str("</tbody>\n</table>\n");
        if summary.reasons.len() > REASONS {
            let _ = writeln!(
                h,
                "<p class=\"empty\">and {} less frequent reasons: the report (CSV or JSONL) has every row.</p>",
                summary.reasons.len() - REASONS
            );
        }
    }
    let (skipped, not_attempted) = (
        summary.count(Status::Skipped),
        summary.count(Status::NotAttempted),
    );
    let also: Vec<String> = [
        (
            skipped,
            "skipped (after a failed or uncertain message of their conversation)",
        ),
        (not_attempted, "not attempted (the run stopped before them)"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{} {what}", thousands(*n)))
    .collect();
    if !also.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"rows\">Also {}: the next run with the same ledger sends them.</p>",
            also.join(" and ")
        );
    }
    h.push_str("</section>\n");
}

fn reason_row(h: &mut String, r: &Reason) {
    let rows: Vec<String> = r
        .examples
        .iter()
        .map(|e| {
            format!(
                "<span class=\"mono\">{}</span> line {}{}",
                escape(&e.to_string()),
                e.line,
                if e.conversation_id.is_empty() {
                    String::new()
                } else {
                    format!(
                        " · <span class=\"mono\">{}</span>",
                        escape(&e.conversation_id)
                    )
                }
            )
        })
        .collect();
    let more = r.count.saturating_sub(r.examples.len() as u64);
    let _ = writeln!(
        h,
        "<tr class=\"reason\"><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"reason\">{}</td><td class=\"rows\">{}{}</td></tr>",
        thousands(r.count),
        pill(r.status),
        r.http_status.map(|s| s.to_string()).unwrap_or_default(),
        escape(&r.text),
        rows.join("<br>"),
        if more > 0 {
            format!("<br>and {} more", thousands(more))
        } else {
            String::new()
        }
    );
}

/// Group `timeline` into at most `bars` buckets of whole seconds.
fn buckets(timeline: &[Second], bars: usize) -> (usize, Vec<Second>) {
    let per = timeline.len().div_ceil(bars.max(1)).max(1);
    let grouped = timeline
        .chunks(per)
        .map(|c| {
            c.iter().fold(Second::default(), |a, s| Second {
                requests: a.requests + s.requests,
                imported: a.imported + s.imported,
                failed: a.failed + s.failed,
            })
        })
        .collect();
    (per, grouped)
}

/// A round number at or above `x` (1, 2, 5 × 10^n).
fn nice(x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= x {
            return m * p;
        }
    }
    10.0 * p
}

fn axis_number(x: f64) -> String {
    if x >= 1000.0 {
        format!("{}k", x / 1000.0)
    } else if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

const W: f64 = 540.0;
const H: f64 = 220.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 8.0;

/// Where a chart of timings would be, why there is none, and the section's end.
fn no_timings(h: &mut String, info: &RunInfo) {
    let _ = writeln!(
        h,
        "<p class=\"empty\">{}</p>\n</section>",
        if info.sending.is_none() {
            "Not in this report: it was re-rendered from the ledger, which keeps no timings. The run's own --html report has them."
        } else {
            "No request was made."
        }
    );
}

fn throughput(h: &mut String, summary: &Summary, info: &RunInfo) {
    h.push_str("<section id=\"throughput\">\n<h2>Throughput over time</h2>\n");
    let active = summary
        .timeline
        .iter()
        .any(|s| s.requests + s.imported + s.failed > 0);
    if info.sending.is_none() || !active {
        no_timings(h, info);
        return;
    }
    let (per, grouped) = buckets(&summary.timeline, 120);
    let per_f = per as f64;
    let peak = grouped
        .iter()
        .map(|s| f64::from(s.imported.max(s.requests) + s.failed) / per_f)
        .fold(0.0, f64::max);
    let top = nice(peak);
    let plot_w = W - LEFT - 8.0;
    let plot_h = H - BOTTOM - TOP;
    let bw = plot_w / grouped.len() as f64;
    let y = |v: f64| TOP + plot_h - v / top * plot_h;
    h.push_str("<div class=\"keys\"><span><span class=\"swatch\" style=\"background:#2e7d32\"></span> messages stored / s</span><span><span class=\"swatch\" style=\"background:#c62828\"></span> failed or uncertain / s</span><span><span class=\"swatch\" style=\"background:#1565c0\"></span> requests / s</span></div>\n");
    let _ = writeln!(
        h,
        "<svg viewBox=\"0 0 {W} {H}\" width=\"100%\" role=\"img\" aria-label=\"messages per second over the run\">"
    );
    for k in 0..=4 {
        let v = top * f64::from(k) / 4.0;
        let _ = writeln!(
            h,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e3e7ec\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - 8.0,
            LEFT - 4.0,
            y(v) + 4.0,
            axis_number(v),
            y = y(v)
        );
    }
    for (i, s) in grouped.iter().enumerate() {
        let x = LEFT + i as f64 * bw;
        let ok = f64::from(s.imported) / per_f;
        let bad = f64::from(s.failed) / per_f;
        if ok > 0.0 {
            let _ = write!(
                h,
                "<rect x=\"{x:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{:.2}\" fill=\"#2e7d32\"/>",
                y(ok),
                (bw - 0.6).max(0.6),
                y(0.0) - y(ok)
            );
        }
        if bad > 0.0 {
            let _ = write!(
                h,
                "<rect x=\"{x:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{:.2}\" fill=\"#c62828\"/>",
                y(ok + bad),
                (bw - 0.6).max(0.6),
                y(ok) - y(ok + bad)
            );
        }
    }
    let points: Vec<String> = grouped
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "{:.1},{:.1}",
                LEFT + (i as f64 + 0.5) * bw,
                y(f64::from(s.requests) / per_f)
            )
        })
        .collect();
    let _ = writeln!(
        h,
        "\n<polyline points=\"{}\" fill=\"none\" stroke=\"#1565c0\" stroke-width=\"1.5\"/>",
        points.join(" ")
    );
    let seconds = summary.timeline.len();
    for k in 0..=4 {
        let at = seconds as f64 * f64::from(k) / 4.0;
        let _ = writeln!(
            h,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"{}\">{}</text>",
            LEFT + plot_w * f64::from(k) / 4.0,
            H - 6.0,
            match k {
                0 => "start",
                4 => "end",
                _ => "middle",
            },
            duration_text(Duration::from_secs_f64(at))
        );
    }
    h.push_str("</svg>\n");
    let _ = writeln!(
        h,
        "<p class=\"rows\">Each bar is {} of the run, from its start (reading and planning included).</p>\n</section>",
        if per == 1 {
            "one second".to_string()
        } else {
            format!("{per} seconds")
        }
    );
}

fn latency(h: &mut String, summary: &Summary, info: &RunInfo) {
    h.push_str("<section id=\"latency\">\n<h2>Latency distribution</h2>\n");
    let l = &summary.latency;
    let (Some(p50), Some(p95), Some(p99), Some(max)) =
        (l.quantile(0.5), l.quantile(0.95), l.quantile(0.99), l.max())
    else {
        no_timings(h, info);
        return;
    };
    // Adjacent log buckets merged to at most 40 bars.
    let raw = l.buckets();
    let per = raw.len().div_ceil(40).max(1);
    let bars: Vec<(Duration, Duration, u64)> = raw
        .chunks(per)
        .map(|c| (c[0].0, c[c.len() - 1].1, c.iter().map(|(_, _, n)| n).sum()))
        .collect();
    let most = bars.iter().map(|b| b.2).max().unwrap_or(1) as f64;
    let plot_w = W - LEFT - 8.0;
    let plot_h = H - BOTTOM - TOP - 14.0;
    let bw = plot_w / bars.len() as f64;
    let base = TOP + 14.0 + plot_h;
    let _ = writeln!(
        h,
        "<div class=\"keys\"><span>requests by time to answer (log scale)</span><span>p50 <b>{}</b></span><span>p95 <b>{}</b></span><span>p99 <b>{}</b></span><span>max <b>{}</b></span></div>",
        ms_text(p50),
        ms_text(p95),
        ms_text(p99),
        ms_text(max)
    );
    let _ = writeln!(
        h,
        "<svg viewBox=\"0 0 {W} {H}\" width=\"100%\" role=\"img\" aria-label=\"latency histogram\">"
    );
    let _ = writeln!(
        h,
        "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">0</text>",
        LEFT - 4.0,
        TOP + 18.0,
        most,
        LEFT - 4.0,
        base
    );
    let position = |d: Duration| -> f64 {
        let i = bars
            .iter()
            .position(|(_, high, _)| d < *high)
            .unwrap_or(bars.len().saturating_sub(1));
        let (low, high, _) = bars[i];
        let span = (high - low).as_secs_f64().max(1e-9);
        let within = ((d.saturating_sub(low)).as_secs_f64() / span).clamp(0.0, 1.0);
        LEFT + (i as f64 + within) * bw
    };
    for (i, (low, high, n)) in bars.iter().enumerate() {
        let bh = *n as f64 / most * plot_h;
        let _ = write!(
            h,
            "<rect x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{:.2}\" fill=\"#5c6bc0\"><title>{} – {}: {}</title></rect>",
            LEFT + i as f64 * bw,
            base - bh,
            (bw - 1.0).max(0.6),
            bh,
            ms_text(*low),
            ms_text(*high),
            n
        );
    }
    h.push('\n');
    for (label, d, stroke) in [
        ("p50", p50, "#2e7d32"),
        ("p95", p95, "#ef6c00"),
        ("p99", p99, "#c62828"),
    ] {
        let x = position(d);
        let _ = writeln!(
            h,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{}\" y2=\"{base:.1}\" stroke=\"{stroke}\" stroke-dasharray=\"3 2\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\" style=\"fill:{stroke}\">{label}</text>",
            TOP + 12.0,
            TOP + 9.0
        );
    }
    let ticks = 4.min(bars.len());
    for k in 0..=ticks {
        let i = (bars.len() * k / ticks.max(1)).min(bars.len());
        let (d, x) = if i == bars.len() {
            (bars[bars.len() - 1].1, LEFT + plot_w)
        } else {
            (bars[i].0, LEFT + i as f64 * bw)
        };
        // The first and last labels stay inside the chart.
        let anchor = match k {
            0 => "start",
            k if k == ticks => "end",
            _ => "middle",
        };
        let _ = writeln!(
            h,
            "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text>",
            H - 6.0,
            ms_text(d)
        );
    }
    h.push_str("</svg>\n");
    let _ = writeln!(
        h,
        "<p class=\"rows\">{} requests timed from sending to the answer (the rate limiter's wait not included); mean {}.</p>\n</section>",
        thousands(l.count()),
        l.mean().map(ms_text).unwrap_or_default()
    );
}

fn conversation_table(h: &mut String, lines: &[ConversationLine], slow: bool) {
    if lines.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"empty\">{}</p>",
            if slow {
                "No request was made."
            } else {
                "Every conversation is complete."
            }
        );
        return;
    }
    if slow {
        h.push_str("<table>\n<thead><tr><th>Conversation</th><th class=\"num\">Rows</th><th class=\"num\">Requests</th><th class=\"num\">Time waiting</th><th class=\"num\">In the API</th></tr></thead>\n<tbody>\n");
        for c in lines {
            let _ = writeln!(
                h,
                "<tr><td class=\"mono\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape(&c.id),
                c.rows,
                c.requests,
                ms_text(c.waited),
                percent(u64::from(c.imported), u64::from(c.rows))
            );
        }
    } else {
        h.push_str("<table>\n<thead><tr><th>Conversation</th><th class=\"num\">Rows</th><th class=\"num\">Not in the API</th><th>Made of</th><th>First trouble</th></tr></thead>\n<tbody>\n");
        for c in lines {
            let parts: Vec<String> = [
                (c.failed, Status::Failed),
                (c.uncertain, Status::Uncertain),
                (c.skipped, Status::Skipped),
                (c.invalid, Status::Invalid),
                (c.not_attempted, Status::NotAttempted),
            ]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, s)| format!("{n} {}", pill(*s)))
            .collect();
            let trouble = c
                .first_trouble
                .as_ref()
                .map(|(row, why)| {
                    format!(
                        "<span class=\"mono\">{}</span>: {}",
                        escape(&row.to_string()),
                        escape(why)
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                h,
                "<tr><td class=\"mono\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"made\">{}</td><td class=\"reason rows\">{}</td></tr>",
                escape(&c.id),
                c.rows,
                c.rows - c.imported,
                parts.join(" "),
                trouble
            );
        }
    }
    h.push_str("</tbody>\n</table>\n");
}

fn conversations(h: &mut String, summary: &Summary) {
    h.push_str(
        "<section id=\"most-failed\">\n<h2>Conversations with the most rows not in the API</h2>\n",
    );
    conversation_table(h, &summary.most_failed, false);
    h.push_str("</section>\n<section id=\"slowest\">\n<h2>Slowest conversations (time spent waiting on the API)</h2>\n");
    conversation_table(h, &summary.slowest, true);
    h.push_str("</section>\n");
}

fn settings(h: &mut String, info: &RunInfo) {
    h.push_str("<section id=\"settings\">\n<h2>Settings</h2>\n<table>\n<tbody>\n");
    for (name, value) in &info.settings {
        let _ = writeln!(
            h,
            "<tr><th scope=\"row\">{}</th><td class=\"mono\">{}</td></tr>",
            escape(name),
            escape(value)
        );
    }
    h.push_str(
        "</tbody>\n</table>\n<p class=\"rows\">Credentials are never shown.</p>\n</section>\n",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Exchange, Outcome, RowRef, SourceId};
    use crate::report::Stats;

    fn info() -> RunInfo {
        RunInfo {
            proxy: None,
            command: "run",
            started_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            finished_at: chrono::DateTime::from_timestamp(1_700_000_002, 0).unwrap(),
            duration: Duration::from_secs(2),
            sending: Some(Duration::from_secs(1)),
            exit_code: 1,
            stopped: None,
            fewest_requests: Some(1),
            settings: vec![("inputs".into(), "<in>.csv".into())],
            notes: vec![],
            outputs: vec![],
        }
    }

    #[test]
    fn values_are_escaped_and_nothing_is_fetched() {
        let stats = Stats::new(vec!["a<b>.csv".into()]);
        {
            let mut lane = stats.lane();
            let pos = RowRef {
                source: SourceId(0),
                record: 3,
                line: 4,
                offset: 0,
            };
            lane.outcome(
                &Outcome::bare(pos, "<script>x</script>", Status::Failed)
                    .because("\"><img src=x onerror=alert(1)>"),
            );
            lane.exchange(
                "<script>x</script>",
                Exchange {
                    latency: Duration::from_millis(5),
                    http_status: Some(422),
                    retry: false,
                },
            );
        }
        let page = render(&stats.summary(), &info());
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(page.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(page.contains("a&lt;b&gt;.csv:3"));
        assert!(page.contains("id=\"count-failed\">1<"));
    }

    #[test]
    fn an_empty_run_renders() {
        let stats = Stats::new(vec![]);
        let mut i = info();
        i.sending = None;
        let page = render(&stats.summary(), &i);
        for fetching in [
            "src=", "href=", "url(", "@import", "http://", "https://", "<script",
        ] {
            assert!(!page.contains(fetching), "{fetching} in the page");
        }
        assert!(page.contains("No row is invalid"));
        assert!(page.contains("re-rendered from the ledger"));
    }

    #[test]
    fn round_numbers_for_axes() {
        assert_eq!(nice(0.0), 1.0);
        assert_eq!(nice(7.0), 10.0);
        assert_eq!(nice(120.0), 200.0);
        assert_eq!(nice(0.3), 0.5);
        assert_eq!(thousands(1234567), "1\u{202f}234\u{202f}567");
        assert_eq!(percent(153, 158), "96.8%");
        assert_eq!(percent(0, 0), "0%");
    }
}
