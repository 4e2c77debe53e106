//! `check`: read, validate and plan as `run` would, send nothing, and say
//! what a run would do: rows, conversations, invalid rows by reason, and how
//! long and how many requests it would take.

use std::collections::BTreeMap;
use std::io::Write;

use crate::config::CheckConfig;
use crate::error::Error;
use crate::exit::ExitCode;
use crate::lint::Linter;
use crate::model::{ConversationMode, RowRef};
use crate::plan::{self, inputs::same_content};

/// Row numbers shown per reason.
const EXAMPLES: usize = 5;

pub fn check(mut cfg: CheckConfig, out: &mut impl Write) -> Result<ExitCode, Error> {
    // `check` says what `run` would refuse, and goes on.
    let duplicates = !cfg.input.allow_duplicates;
    cfg.input.allow_duplicates = true;
    let inputs = cfg.input.inputs.clone();
    let name = |pos: &RowRef| {
        let name = inputs
            .get(pos.source.0 as usize)
            .map(String::as_str)
            .unwrap_or("?");
        format!("{name}:{} (line {})", pos.record, pos.line)
    };
    let mut reasons: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
    let mut linter = Linter::new(chrono::Utc::now());
    let read = plan::read_all::<Error>(
        &cfg.input,
        |row| linter.row(row),
        |row| {
            let e = reasons.entry(row.reason.kind()).or_default();
            e.0 += 1;
            if e.1.len() < EXAMPLES {
                e.1.push(name(&row.pos));
            }
            Ok(())
        },
    )?;
    let mut warnings = Vec::new();
    if duplicates {
        if let Err(e) = crate::config::paths::check_inputs(&inputs, false) {
            warnings.push(e.to_string());
        } else if let Some(d) = same_content(&read.sources)? {
            warnings.push(d.to_string().lines().next().unwrap_or_default().to_string());
        }
    }
    warnings.extend(read.empty_sources());
    if let Some(w) = swallowing(&read.swallowing, &name) {
        warnings.push(w);
    }
    Error::output(report(&cfg, &read, reasons, linter, &warnings, &name, out))?;
    Ok(if read.invalid > 0 {
        ExitCode::RowsNotCreated
    } else {
        ExitCode::Success
    })
}

fn report(
    cfg: &CheckConfig,
    read: &plan::Inputs,
    reasons: BTreeMap<String, (u64, Vec<String>)>,
    linter: Linter,
    warnings: &[String],
    name: &dyn Fn(&RowRef) -> String,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let valid = read.valid();
    writeln!(out, "inputs:")?;
    for source in &read.sources {
        writeln!(out, "  {}: {}", source.name, source.reading)?;
    }
    writeln!(out, "timestamps:    {}", timestamps(&cfg.input.validate))?;
    writeln!(out, "rows:          {}", read.rows)?;
    writeln!(out, "valid:         {valid}")?;
    writeln!(out, "invalid:       {}", read.invalid)?;
    if read.other_shards > 0 {
        writeln!(out, "other shards:  {}", read.other_shards)?;
    }
    writeln!(out, "conversations: {}", read.conversations.len())?;
    if let Some(longest) = read.conversations.first() {
        writeln!(
            out,
            "longest:       {} ({} messages)",
            longest.id,
            longest.entries.len()
        )?;
    }
    if !reasons.is_empty() {
        let mut by_count: Vec<_> = reasons.into_iter().collect();
        by_count.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then_with(|| a.0.cmp(&b.0)));
        writeln!(out, "invalid rows by reason:")?;
        for (reason, (n, examples)) in by_count {
            writeln!(out, "  {n:>8}  {reason}")?;
            writeln!(out, "            e.g. {}", examples.join(", "))?;
        }
    }
    if !warnings.is_empty() {
        writeln!(out, "input warnings:")?;
        for w in warnings {
            writeln!(out, "  {w}")?;
        }
    }
    let lints = linter.finish(&read.conversations);
    if !lints.is_empty() {
        writeln!(
            out,
            "warnings (valid rows that look suspicious; they do not block a run):"
        )?;
        for w in &lints {
            writeln!(out, "  {:>8}  {}", w.count, w.message)?;
            if !w.examples.is_empty() {
                let examples: Vec<String> = w.examples.iter().map(name).collect();
                writeln!(out, "            e.g. {}", examples.join(", "))?;
            }
        }
    }

    // Requests: per conversation, as a run with a fresh ledger makes them.
    let (mode, batch) = (cfg.input.validate.mode, cfg.pace.batch);
    let per_conversation: Vec<u64> = read
        .conversations
        .iter()
        .map(|c| c.fewest_requests(mode, batch))
        .collect();
    let requests: u64 = per_conversation.iter().sum();
    writeln!(
        out,
        "requests:      {requests} ({})",
        requests_made_of(read, mode, batch)
    )?;

    // Estimate: a conversation is a chain of round trips; the run takes at
    // least its longest chain, at least the total spread over the workers,
    // and at least the total at the rate.
    let latency = cfg.latency.as_secs_f64();
    let longest = per_conversation.iter().copied().max().unwrap_or(0) as f64;
    let concurrency = cfg.pace.concurrency as f64;
    let rate = cfg.pace.rate.map_or(f64::INFINITY, |r| r.per_second());
    let secs = (longest * latency)
        .max(requests as f64 * latency / concurrency)
        .max(requests as f64 / rate);
    writeln!(
        out,
        "estimate:      {} at --concurrency {} --rate {} with {} ms latency",
        human(secs),
        cfg.pace.concurrency,
        cfg.pace.rate.map_or("none".to_string(), |r| r.to_string()),
        cfg.latency.as_millis()
    )?;
    if let Some(quota) = cfg.pace.daily_quota {
        let days = requests.div_ceil(quota);
        writeln!(
            out,
            "quota:         {days} day(s) at {quota} requests a day"
        )?;
    }
    out.flush()
}

/// How timestamps are read: the formats tried, and the zone of those
/// without one.
fn timestamps(opts: &crate::validate::ValidateOptions) -> String {
    let formats: Vec<String> = opts
        .timestamp_formats
        .iter()
        .map(|f| format!("--timestamp-format '{f}'"))
        .collect();
    let tried = if formats.is_empty() {
        "RFC 3339 or epoch".to_string()
    } else {
        format!("{}, then RFC 3339 or epoch", formats.join(", "))
    };
    format!("{tried}; without a zone, in {}", opts.timezone.name())
}

/// What the requests are, for the mode and batch size given.
fn requests_made_of(read: &plan::Inputs, mode: ConversationMode, batch: Option<usize>) -> String {
    let conversations = read.conversations.len();
    let valid = read.valid();
    match (mode, batch) {
        (ConversationMode::Existing, None) => "one per valid row".to_string(),
        (ConversationMode::Existing, Some(n)) => {
            format!("batches of up to {n}; message ids are not given back in this mode")
        }
        (ConversationMode::Create, None) => {
            format!("{conversations} creates + {valid} messages")
        }
        (ConversationMode::Create, Some(n)) => {
            let batches: u64 = read
                .conversations
                .iter()
                .map(|c| (c.entries.len() as u64).div_ceil(n as u64))
                .sum();
            format!(
                "{conversations} creates + {batches} batches of up to {n} + {conversations} read-backs for the ids"
            )
        }
    }
}

/// The warning for quoted fields that hold lines looking like records: the
/// classic stray quote that swallows the rows after it.
fn swallowing(s: &plan::Swallowing, name: &dyn Fn(&RowRef) -> String) -> Option<String> {
    if s.records == 0 {
        return None;
    }
    let examples: Vec<String> = s
        .examples
        .iter()
        .map(|(pos, lines)| format!("{} holds {lines}", name(pos)))
        .collect();
    Some(format!(
        "{} record(s) have quoted fields holding {} line(s) that look like records of their own \
         (the header's number of columns, a conversation id and a timestamp): a stray or \
         unclosed quote may have swallowed rows; e.g. {}",
        s.records,
        s.lines,
        examples.join(", ")
    ))
}

fn human(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_durations() {
        assert_eq!(super::human(5.2), "5s");
        assert_eq!(super::human(125.0), "2m05s");
        assert_eq!(super::human(7322.0), "2h02m");
    }
}
