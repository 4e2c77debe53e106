//! Integration tests: delivery guarantees. Retries under faults, rate
//! control, the run lock, stopping cleanly, resuming after SIGKILL, and
//! never sending a message twice. The real binary against the real emulator
//! on loopback.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use transcript_import::emulator::{Config, Emulator, Stats, StoredMessage};
use transcript_import::model::Status;
use transcript_import::record::ReportRow;

// ---------------------------------------------------------------- helpers

/// One input row.
#[derive(Debug, Clone)]
struct Row {
    conversation: String,
    timestamp: String,
    role: &'static str,
    sender: String,
    text: String,
}

/// `conversations` conversations of `per` messages each, every text unique,
/// rows interleaved across conversations (so the importer has to group them).
fn corpus(prefix: &str, conversations: usize, per: usize) -> Vec<Row> {
    let mut rows = Vec::with_capacity(conversations * per);
    for m in 0..per {
        for c in 0..conversations {
            rows.push(Row {
                conversation: format!("{prefix}{c:05}"),
                timestamp: format!(
                    "2024-03-01T{:02}:{:02}:{:02}Z",
                    m / 3600,
                    (m / 60) % 60,
                    m % 60
                ),
                role: if m % 2 == 0 { "customer" } else { "agent" },
                sender: if m % 2 == 0 {
                    format!("cust-{c}")
                } else {
                    format!("agent-{}", c % 7)
                },
                text: format!("{prefix}{c:05} message {m}, hello"),
            });
        }
    }
    rows
}

fn write_csv(path: &Path, rows: &[Row]) {
    let mut w = csv::Writer::from_path(path).unwrap();
    w.write_record([
        "conversation_id",
        "timestamp",
        "sender_role",
        "sender_id",
        "text",
    ])
    .unwrap();
    for r in rows {
        w.write_record([
            r.conversation.as_str(),
            &r.timestamp,
            r.role,
            &r.sender,
            &r.text,
        ])
        .unwrap();
    }
    w.flush().unwrap();
}

fn start(config: Config) -> Emulator {
    Emulator::start(config).expect("start the emulator")
}

/// The importer's `run` command, not yet started.
fn importer(url: &str, dir: &Path, inputs: &[&Path], extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_transcript-import"));
    cmd.arg("run")
        .arg("--api-url")
        .arg(url)
        .arg("--state")
        .arg(dir.join("state.db"))
        .arg("--report")
        .arg(dir.join("report.csv"))
        .arg("--quiet")
        .args(extra)
        .args(inputs)
        .env("ASAPP_API_ID", "x")
        .env("ASAPP_API_SECRET", "y")
        .stdin(Stdio::null());
    cmd
}

fn run(url: &str, dir: &Path, inputs: &[&Path], extra: &[&str]) -> Output {
    importer(url, dir, inputs, extra).output().unwrap()
}

fn spawn(url: &str, dir: &Path, inputs: &[&Path], extra: &[&str]) -> Child {
    importer(url, dir, inputs, extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn report(dir: &Path) -> Vec<ReportRow> {
    let mut r = csv::Reader::from_path(dir.join("report.csv")).unwrap();
    r.deserialize().map(|row| row.unwrap()).collect()
}

/// Every input row of `source` reported exactly once, in order; returns the
/// report rows indexed like the input.
fn one_per_row(report: &[ReportRow], rows: usize) -> Vec<&ReportRow> {
    assert_eq!(report.len(), rows, "one report row per input row");
    let mut seen = HashSet::new();
    for (i, r) in report.iter().enumerate() {
        assert!(seen.insert((&r.source, r.record)), "reported twice: {r:?}");
        assert_eq!(r.record, i as u64 + 1, "input order");
    }
    report.iter().collect()
}

fn count(report: &[ReportRow], status: Status) -> usize {
    report.iter().filter(|r| r.status == status).count()
}

fn statuses(report: &[ReportRow]) -> HashMap<Status, usize> {
    let mut m = HashMap::new();
    for r in report {
        *m.entry(r.status).or_insert(0) += 1;
    }
    m
}

fn http(stats: &Stats, status: &str) -> u64 {
    stats.requests_by_status.get(status).copied().unwrap_or(0)
}

/// Stored messages by (conversation, text); panics on a duplicate.
fn stored_by_key(messages: &[StoredMessage]) -> HashMap<(String, String), &StoredMessage> {
    let mut m = HashMap::new();
    for s in messages {
        let old = m.insert((s.conversation_id.clone(), s.text.clone()), s);
        assert!(old.is_none(), "stored twice: {s:?}");
    }
    m
}

/// Rows of each conversation in send order (the corpus is already in
/// timestamp order within a conversation), as indexes into `rows`.
fn by_conversation(rows: &[Row]) -> HashMap<&str, Vec<usize>> {
    let mut m: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        m.entry(r.conversation.as_str()).or_default().push(i);
    }
    m
}

/// Within each conversation, every row after the first `uncertain` or
/// `failed` one is `skipped`.
fn skipped_after_first_trouble(rows: &[Row], report: &[&ReportRow]) {
    for (conv, idx) in by_conversation(rows) {
        let mut blocked = None;
        for &i in &idx {
            let s = report[i].status;
            if let Some(at) = blocked {
                assert_eq!(
                    s,
                    Status::Skipped,
                    "{conv}: row {} after trouble at row {at}",
                    i + 1
                );
            } else if matches!(s, Status::Uncertain | Status::Failed) {
                blocked = Some(i + 1);
            }
        }
    }
}

/// Poll `cond` every 10 ms until it holds or `limit` passes.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

fn wait_child(child: &mut Child, limit: Duration) -> Output {
    let until = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("the importer did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Exited: collect what it wrote.
    let out = std::mem::replace(child, Command::new("true").spawn().unwrap());
    out.wait_with_output().unwrap()
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(ok.success());
}

// ---------------------------------------------------------------- soak

/// 20,000 messages through 429s, 503s, 500s and dropped connections: every
/// row reported once, nothing stored twice or out of order, every stored
/// message accounted for, every ambiguous one said to be uncertain.
#[test]
fn fault_soak_every_row_once_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let rows = corpus("S", 2000, 10);
    let input = dir.path().join("soak.csv");
    write_csv(&input, &rows);
    let emu = start(Config {
        error_429: 0.05,
        error_503: 0.05,
        error_500: 0.01,
        drop_before: 0.005,
        drop_after: 0.005,
        seed: Some(20240301),
        ..Config::default()
    });

    let t = Instant::now();
    let out = run(
        &emu.url(),
        dir.path(),
        &[&input],
        &["--concurrency", "16", "--backoff-scale", "0.01"],
    );
    let elapsed = t.elapsed();
    assert_eq!(code(&out), 1, "uncertain rows expected: {}", stderr(&out));

    let report = report(dir.path());
    let report = one_per_row(&report, rows.len());
    let stats = emu.stats();
    let messages = emu.messages();
    let stored = stored_by_key(&messages);

    assert_eq!(stats.order_violations, 0, "{stats:?}");
    assert_eq!(stats.duplicates, 0, "{stats:?}");
    assert!(stats.max_in_flight_per_conversation <= 1, "{stats:?}");
    assert_eq!(stats.stored as usize, messages.len());

    // Every stored message is its row's `created` (same id) or `uncertain`.
    let row_of: HashMap<(&str, &str), usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.conversation.as_str(), r.text.as_str()), i))
        .collect();
    for m in &messages {
        let i = row_of[&(m.conversation_id.as_str(), m.text.as_str())];
        let r = report[i];
        match r.status {
            Status::Created => {
                assert_eq!(r.message_id, m.id, "row {}", i + 1);
                assert!(
                    !m.dropped_answer,
                    "created, yet its answer was dropped: {m:?}"
                );
            }
            Status::Uncertain => {}
            other => panic!("stored, yet reported {other}: row {} {m:?}", i + 1),
        }
    }
    // Every created row is stored, once, with its id.
    for (i, r) in report.iter().enumerate() {
        if r.status == Status::Created {
            let key = (rows[i].conversation.clone(), rows[i].text.clone());
            let m = stored
                .get(&key)
                .unwrap_or_else(|| panic!("created, not stored: {r:?}"));
            assert_eq!(m.id, r.message_id);
        }
    }
    // Every answer dropped after storing is an uncertain row.
    let dropped: Vec<_> = messages.iter().filter(|m| m.dropped_answer).collect();
    assert_eq!(dropped.len() as u64, stats.dropped_after);
    for m in &dropped {
        let i = row_of[&(m.conversation_id.as_str(), m.text.as_str())];
        assert_eq!(report[i].status, Status::Uncertain, "row {}", i + 1);
    }
    skipped_after_first_trouble(&rows, &report);

    let all: Vec<ReportRow> = report.iter().map(|r| (*r).clone()).collect();
    let by = statuses(&all);
    let allowed = [
        Status::Created,
        Status::Uncertain,
        Status::Skipped,
        Status::Failed,
    ];
    assert!(by.keys().all(|s| allowed.contains(s)), "{by:?}");
    // Nearly every injected fault is retried away; only drops are uncertain.
    assert!(count(&all, Status::Created) > rows.len() * 9 / 10, "{by:?}");
    assert!(
        count(&all, Status::Uncertain) as u64 <= stats.dropped_after + stats.dropped_before,
        "{by:?} {stats:?}"
    );
    eprintln!(
        "soak: {} rows, {} requests, {} 429, {} 503, {} 500, {} dropped before, {} dropped after, statuses {by:?}, {:.1}s",
        rows.len(),
        stats.requests_total,
        http(&stats, "429"),
        http(&stats, "503"),
        http(&stats, "500"),
        stats.dropped_before,
        stats.dropped_after,
        elapsed.as_secs_f64()
    );
}
