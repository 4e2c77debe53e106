//! End to end against the emulator at zero latency, in one process, the
//! three alternating so that they share the machine's noise:
//! - the whole importer (read, validate, plan, ledger, send, report);
//! - the same importer with the ledger's bookkeeping off (no journal, no
//!   `outcomes`): the difference is what the bookkeeping costs, split
//!   into what it costs while messages are sent and what it adds after the
//!   last answer (the last fold and its checkpoint);
//! - bare HTTP sends of the same messages with the same client and
//!   concurrency: the difference is what the whole tool costs.
//!
//! `cargo bench --bench e2e` (rows: E2E_ROWS, default 50000; rounds:
//! E2E_ROUNDS, default 15; E2E_VERBOSE=1 prints every round).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use transcript_import::cli::{Cli, Command};
use transcript_import::emulator::{Config, Emulator};
use transcript_import::exit::ExitCode;
use transcript_import::model::{MessageBody, Sender, SourceId};
use transcript_import::read::{self, ReadOptions};
use transcript_import::send::client::{Answer, ApiUrl, Client, Credentials};
use transcript_import::validate::{self, ValidateOptions};
use transcript_import::{config, run};

#[path = "common.rs"]
mod common;

const CONCURRENCY: usize = 16;

/// The importer, as `transcript-import run --emulator` runs it: its wall
/// time, and the part of it spent sending (from its summary JSON), so that
/// what the bookkeeping costs while messages are sent is told apart from
/// what it costs around that (its last fold and checkpoint, after the last
/// answer).
fn importer(
    input: &std::path::Path,
    dir: &std::path::Path,
    bookkeeping: bool,
) -> (Duration, Duration) {
    let state = dir.join(format!("state-{bookkeeping}.db"));
    let report = dir.join(format!("report-{bookkeeping}.csv"));
    let summary = dir.join(format!("summary-{bookkeeping}.json"));
    let cli = Cli::parse_from([
        "transcript-import",
        "run",
        "--emulator",
        "--quiet",
        "--concurrency",
        &CONCURRENCY.to_string(),
        "--state",
        state.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--summary-json",
        summary.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    let Command::Run(args) = cli.command else {
        unreachable!()
    };
    let mut cfg = config::run_config(&args).unwrap();
    cfg.bookkeeping = bookkeeping;
    let t = Instant::now();
    let code = run::run(cfg).unwrap();
    let elapsed = t.elapsed();
    assert_eq!(code, ExitCode::Success);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let sending = json["sending_seconds"].as_f64().unwrap();
    (elapsed, Duration::from_secs_f64(sending))
}

/// The same messages, the same client and concurrency, one conversation
/// per worker at a time, and no ledger, no report.
fn bare_sends(input: &std::path::Path) -> Duration {
    let emu = Emulator::start(Config::default()).unwrap();
    let t = Instant::now();
    let source = read::open(
        SourceId(0),
        input.to_str().unwrap(),
        &ReadOptions::default(),
    )
    .unwrap();
    let opts = ValidateOptions::default();
    let mut conversations: std::collections::HashMap<String, Vec<validate::Row>> =
        Default::default();
    for rec in source.records().unwrap() {
        let rec = rec.unwrap();
        let row = validate::row(rec.pos, rec.fields.unwrap(), &opts).unwrap();
        conversations
            .entry(row.conversation_id.clone())
            .or_default()
            .push(row);
    }
    let mut conversations: Vec<Vec<validate::Row>> = conversations.into_values().collect();
    for c in &mut conversations {
        c.sort_by_key(|r| r.timestamp.instant);
    }
    conversations.sort_by_key(|c| std::cmp::Reverse(c.len()));
    let client = Client::new(
        ApiUrl::parse(&emu.url()).unwrap(),
        Credentials {
            id: "bench".into(),
            secret: "bench".into(),
        },
        CONCURRENCY,
        Duration::from_secs(30),
    );
    let cursor = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..CONCURRENCY {
            s.spawn(|| {
                while let Some(conv) = conversations.get(cursor.fetch_add(1, Ordering::SeqCst)) {
                    for row in conv {
                        let body = MessageBody {
                            text: row.text.clone(),
                            sender: Sender {
                                role: row.role,
                                external_id: row.sender_id.clone(),
                            },
                            timestamp: row.timestamp.to_rfc3339(),
                        };
                        let r = client.create_message(&row.conversation_id, &body);
                        assert!(matches!(r.answer, Answer::Created { .. }));
                    }
                }
            });
        }
    });
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// CPU time this process has used, user and system, from /proc (Linux;
/// clock ticks of 1/100 s). Less noisy than wall time on a shared machine,
/// and it counts the in-process emulator too, the same for all three.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// Run `f`, returning what it returns (its wall time, at least) and the
/// CPU time the process spent.
fn measured<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let cpu = cpu_time();
    let out = f();
    (out, cpu_time().saturating_sub(cpu))
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would too. Run only for bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rows: usize = std::env::var("E2E_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("e2e.csv");
    common::write_csv(&input, rows);

    let rounds: usize = std::env::var("E2E_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let mut runs: [(Vec<Duration>, Vec<Duration>); 3] = Default::default();
    // The importers' sending phases: off, then full.
    let mut sending_phase: [Vec<Duration>; 2] = Default::default();
    for round in 0..rounds {
        // This round's ledgers and reports, gone before the next round,
        // whose runs their write-back would otherwise slow down.
        let files = dir.path().join(format!("round-{round}"));
        std::fs::create_dir(&files).unwrap();
        let mut this: [(Duration, Duration); 3] = Default::default();
        this[0] = measured(|| bare_sends(&input));
        // The two importers take turns going first: the second runs while
        // the first's ledger and report are written back to the disk.
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for bookkeeping in order {
            let ((wall, sending), cpu) = measured(|| importer(&input, &files, bookkeeping));
            this[1 + usize::from(bookkeeping)] = (wall, cpu);
            sending_phase[usize::from(bookkeeping)].push(sending);
        }
        for (i, (wall, cpu)) in this.into_iter().enumerate() {
            runs[i].0.push(wall);
            runs[i].1.push(cpu);
        }
        std::fs::remove_dir_all(&files).unwrap();
    }
    if std::env::var("E2E_VERBOSE").is_ok() {
        for r in 0..rounds {
            eprintln!(
                "  round {r}: wall bare {:?} off {:?} full {:?}; cpu bare {:?} off {:?} full {:?}",
                runs[0].0[r], runs[1].0[r], runs[2].0[r], runs[0].1[r], runs[1].1[r], runs[2].1[r]
            );
        }
    }
    // Compared per round (its three runs are adjacent in time, so they
    // share the machine's drift), then the median over rounds.
    let per_round = |a: &[Duration], b: &[Duration], compare: fn(f64, f64) -> f64| {
        let mut r: Vec<f64> = a
            .iter()
            .zip(b)
            .map(|(a, b)| compare(a.as_secs_f64(), b.as_secs_f64()))
            .collect();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    };
    let ratio = |a: &[Duration], b: &[Duration]| 100.0 * per_round(a, b, |a, b| b / a);
    let kept_vs_off = ratio(&runs[2].0, &runs[1].0);
    let kept_sending = ratio(&sending_phase[1], &sending_phase[0]);
    let kept_vs_bare = ratio(&runs[2].0, &runs[0].0);
    let cpu_vs_off = ratio(&runs[1].1, &runs[2].1) - 100.0;
    let cpu_vs_bare = ratio(&runs[0].1, &runs[2].1) - 100.0;
    // What the bookkeeping adds to a run's wall time: in all, and outside
    // sending (reading and planning are the same for both; after the last
    // answer the full importer waits for its last fold and checkpoint).
    let added = |full: &[Duration], off: &[Duration]| per_round(full, off, |full, off| full - off);
    let outside = |importer: usize| -> Vec<Duration> {
        runs[1 + importer]
            .0
            .iter()
            .zip(&sending_phase[importer])
            .map(|(wall, sending)| wall.saturating_sub(*sending))
            .collect()
    };
    let added_total = added(&runs[2].0, &runs[1].0);
    let added_outside = added(&outside(1), &outside(0));
    let [(bare_wall, bare_cpu), (off_wall, off_cpu), (full_wall, full_cpu)] =
        runs.map(|(wall, cpu)| (median(wall), median(cpu)));
    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    let per_message = |d: Duration| d.as_secs_f64() * 1e6 / rows as f64;
    println!(
        "e2e: {rows} messages, concurrency {CONCURRENCY}, emulator at zero latency in-process, median of {rounds}"
    );
    for (what, wall, cpu) in [
        ("importer", full_wall, full_cpu),
        ("importer, bookkeeping off", off_wall, off_cpu),
        ("bare HTTP sends", bare_wall, bare_cpu),
    ] {
        println!(
            "  {what:<26} {:>7.0} msg/s  ({wall:>8.2?})  CPU {:>5.1} us/msg",
            rate(wall),
            per_message(cpu)
        );
    }
    println!("  median over rounds of each round's ratio:");
    println!(
        "  bookkeeping keeps    {kept_vs_off:>5.1}% of the throughput without it (CPU per message {cpu_vs_off:+.1}%)"
    );
    println!(
        "  it adds {:.0} ms to a run, {:.0} ms of them outside sending (the last fold and its checkpoint, after the last answer); while sending it keeps {kept_sending:.1}%",
        added_total * 1e3,
        added_outside * 1e3
    );
    println!(
        "  the importer reaches {kept_vs_bare:>5.1}% of bare sends (CPU per message {cpu_vs_bare:+.1}%)"
    );
}
