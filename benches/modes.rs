//! Requests and wall time per way of sending, against the emulator at a
//! real API's latency: `--conversations existing` (one request per
//! message), `create` (plus one create per conversation), and `create
//! --batch 300` (creates, batches, and one read-back per conversation).
//!
//! `cargo bench --bench modes` (rows: MODES_ROWS, default 20000; latency:
//! MODES_LATENCY_MS, default 20; concurrency 16).

use std::time::{Duration, Instant};

use clap::Parser;
use transcript_import::cli::{Cli, Command};
use transcript_import::emulator::{Config, Emulator};
use transcript_import::exit::ExitCode;
use transcript_import::{config, run};

#[path = "common.rs"]
mod common;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would too. Run only for bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rows: usize = env_or("MODES_ROWS", 20_000);
    let latency = Duration::from_millis(env_or("MODES_LATENCY_MS", 20));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("modes.csv");
    common::write_csv(&input, rows);
    std::env::set_var("ASAPP_API_ID", "bench");
    std::env::set_var("ASAPP_API_SECRET", "bench");
    println!(
        "modes: {rows} messages, concurrency 16, emulator at {} ms latency in-process",
        latency.as_millis()
    );
    for (name, extra) in [
        ("existing", &["--conversations", "existing"][..]),
        ("create", &["--conversations", "create"][..]),
        (
            "create --batch 300",
            &["--conversations", "create", "--batch", "300"][..],
        ),
    ] {
        let emu = Emulator::start(Config {
            latency,
            known_conversations_only: name != "existing",
            ..Config::default()
        })
        .unwrap();
        let state = dir.path().join(format!("{}.db", name.replace(' ', "_")));
        let mut argv = vec![
            "transcript-import".to_string(),
            "run".into(),
            "--quiet".into(),
            "--concurrency".into(),
            "16".into(),
            "--api-url".into(),
            emu.url(),
            "--state".into(),
            state.to_str().unwrap().into(),
        ];
        argv.extend(extra.iter().map(|s| s.to_string()));
        argv.push(input.to_str().unwrap().into());
        let Command::Run(args) = Cli::parse_from(argv).command else {
            unreachable!()
        };
        let cfg = config::run_config(&args).unwrap();
        let t = Instant::now();
        let code = run::run(cfg).unwrap();
        let wall = t.elapsed();
        assert_eq!(code, ExitCode::Success, "{name}");
        let stats = emu.stats();
        assert_eq!(stats.stored as usize, rows, "{name}");
        assert_eq!(stats.duplicates, 0, "{name}");
        println!(
            "  {name:<20} {:>7} requests ({:.3} per message)  {:>8.2?}  {:>6.0} msg/s",
            stats.requests_total,
            stats.requests_total as f64 / rows as f64,
            wall,
            rows as f64 / wall.as_secs_f64()
        );
    }
}
