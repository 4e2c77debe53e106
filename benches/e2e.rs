//! End to end against the emulator at zero latency, in one process, the
//! three alternating so that they share the machine's noise:
//! - the whole importer (read, validate, plan, ledger, send, report);
//! - the same importer with the ledger's bookkeeping off (no journal, no
//!   `messages`): the difference is what the bookkeeping costs;
//! - bare HTTP sends of the same messages with the same client and
//!   concurrency: the difference is what the whole tool costs.
//!
//! `cargo bench --bench e2e` (rows: E2E_ROWS, default 20000; rounds: E2E_ROUNDS, default 5).

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

/// The importer, as `transcript-import run --emulator` runs it.
fn importer(
    input: &std::path::Path,
    dir: &std::path::Path,
    round: usize,
    bookkeeping: bool,
) -> Duration {
    let state = dir.join(format!("state-{round}-{bookkeeping}.db"));
    let report = dir.join(format!("report-{round}-{bookkeeping}.csv"));
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
    elapsed
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

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would too. Run only for bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rows: usize = std::env::var("E2E_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("e2e.csv");
    common::write_csv(&input, rows);

    let rounds: usize = std::env::var("E2E_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let (mut full, mut unbooked, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        bare.push(bare_sends(&input));
        unbooked.push(importer(&input, dir.path(), round, false));
        full.push(importer(&input, dir.path(), round, true));
    }
    let (f, u, b) = (median(full), median(unbooked), median(bare));
    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    println!(
        "e2e: {rows} messages, concurrency {CONCURRENCY}, emulator at zero latency, median of {rounds}"
    );
    for (what, d) in [
        ("importer", f),
        ("importer, bookkeeping off", u),
        ("bare HTTP sends", b),
    ] {
        println!("  {what:<28} {:>8.0} msg/s  ({d:.2?})", rate(d));
    }
    println!(
        "  bookkeeping keeps    {:>5.1}% of the throughput without it",
        100.0 * rate(f) / rate(u)
    );
    println!(
        "  the importer reaches {:>5.1}% of bare sends",
        100.0 * rate(f) / rate(b)
    );
}
