//! `check`: read, validate and plan as `run` would, send nothing, and say
//! what a run would do: rows, conversations, invalid rows by reason, and how
//! long and how many requests it would take.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use crate::cli::CheckArgs;
use crate::config;
use crate::exit::ExitCode;
use crate::lint::Linter;
use crate::model::RowRef;
use crate::run::read_all;

/// Row numbers shown per reason.
const EXAMPLES: usize = 5;

pub fn check(args: &CheckArgs, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let (read_opts, validate_opts) = config::input_options(&args.input)?;
    let mut reasons: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
    let inputs = &args.input.inputs;
    let mut linter = Linter::new(chrono::Utc::now());
    let read = read_all(
        inputs,
        &read_opts,
        &validate_opts,
        args.shard,
        |row| linter.row(row),
        |o| {
            let reason = o.error_message.clone().unwrap_or_default();
            // Group by the reason without its value excerpt.
            let key = reason.split(": \"").next().unwrap_or(&reason).to_string();
            let e = reasons.entry(key).or_default();
            e.0 += 1;
            if e.1.len() < EXAMPLES {
                let name = inputs
                    .get(o.pos.source.0 as usize)
                    .map(String::as_str)
                    .unwrap_or("?");
                e.1.push(format!("{name}:{} (line {})", o.pos.record, o.pos.line));
            }
            Ok(())
        },
    )?;
    let valid: u64 = read
        .conversations
        .iter()
        .map(|c| c.entries.len() as u64)
        .sum();
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
    let where_ = |pos: &RowRef| {
        let name = inputs
            .get(pos.source.0 as usize)
            .map(String::as_str)
            .unwrap_or("?");
        format!("{name}:{} (line {})", pos.record, pos.line)
    };
    let warnings = linter.finish();
    if !warnings.is_empty() {
        writeln!(
            out,
            "warnings (valid rows that look suspicious; they do not block a run):"
        )?;
        for w in &warnings {
            writeln!(out, "  {:>8}  {}", w.count, w.message)?;
            if !w.examples.is_empty() {
                let examples: Vec<String> = w.examples.iter().map(where_).collect();
                writeln!(out, "            e.g. {}", examples.join(", "))?;
            }
        }
    }

    // Estimate: a conversation is a chain of round trips; the run takes at
    // least its longest chain, at least the total spread over the workers,
    // and at least the total at the rate.
    let latency = Duration::from_millis(args.latency_ms).as_secs_f64();
    let longest = read.conversations.first().map_or(0, |c| c.entries.len()) as f64;
    let concurrency = f64::from(args.concurrency.max(1));
    let secs = (longest * latency)
        .max(valid as f64 * latency / concurrency)
        .max(valid as f64 / args.rate.max(0.001));
    writeln!(out, "requests:      {valid} (one per valid row)")?;
    writeln!(
        out,
        "estimate:      {} at --concurrency {} --rate {} with {} ms latency",
        human(secs),
        args.concurrency,
        args.rate,
        args.latency_ms
    )?;
    if let Some(quota) = args.daily_quota {
        let days = valid.div_ceil(quota.max(1));
        writeln!(
            out,
            "quota:         {days} day(s) at {quota} requests a day"
        )?;
    }
    Ok(if read.invalid > 0 {
        ExitCode::RowsNotCreated
    } else {
        ExitCode::Success
    })
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
