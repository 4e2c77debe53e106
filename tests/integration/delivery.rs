//! Integration tests: delivery guarantees. Retries under faults, rate
//! control, the run lock, stopping cleanly, resuming after SIGKILL, and
//! never sending a message twice. The real binary against the real emulator
//! on loopback.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use transcript_import::emulator::{Config, Emulator, Stats, StoredMessage};
use transcript_import::model::Status;
use transcript_import::report::ReportRow;

use crate::util::{self, Row};

// ---------------------------------------------------------------- helpers

/// `conversations` conversations of `per` messages each, every text unique,
/// rows interleaved across conversations (so the importer has to group them).
pub(crate) fn corpus(prefix: &str, conversations: usize, per: usize) -> Vec<Row> {
    let mut rows = Vec::with_capacity(conversations * per);
    for m in 0..per {
        for c in 0..conversations {
            rows.push(Row {
                conversation_id: format!("{prefix}{c:05}"),
                timestamp: format!(
                    "2024-03-01T{:02}:{:02}:{:02}Z",
                    m / 3600,
                    (m / 60) % 60,
                    m % 60
                ),
                role: if m % 2 == 0 { "customer" } else { "agent" }.to_string(),
                sender_id: if m % 2 == 0 {
                    format!("cust-{c}")
                } else {
                    format!("agent-{}", c % 7)
                },
                text: format!("{prefix}{c:05} message {m}, hello"),
                invalid: None,
            });
        }
    }
    rows
}

pub(crate) fn write_csv(path: &Path, rows: &[Row]) {
    std::fs::write(path, util::csv(rows)).unwrap();
}

/// A temporary directory holding `corpus(prefix, conversations, per)` as
/// the CSV `name`: the opening of most tests here.
pub(crate) fn written(
    prefix: &str,
    conversations: usize,
    per: usize,
    name: &str,
) -> (TempDir, Vec<Row>, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let rows = corpus(prefix, conversations, per);
    let input = dir.path().join(name);
    write_csv(&input, &rows);
    (dir, rows, input)
}

pub(crate) fn start(config: Config) -> Emulator {
    Emulator::start(config).expect("start the emulator")
}

/// The importer's `run` command, not yet started.
pub(crate) fn importer(url: &str, dir: &Path, inputs: &[&Path], extra: &[&str]) -> Command {
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

pub(crate) fn run(url: &str, dir: &Path, inputs: &[&Path], extra: &[&str]) -> Output {
    importer(url, dir, inputs, extra).output().unwrap()
}

pub(crate) fn spawn(url: &str, dir: &Path, inputs: &[&Path], extra: &[&str]) -> Child {
    importer(url, dir, inputs, extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

pub(crate) fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub(crate) fn report(dir: &Path) -> Vec<ReportRow> {
    let mut r = csv::Reader::from_path(dir.join("report.csv")).unwrap();
    r.deserialize().map(|row| row.unwrap()).collect()
}

/// Every input row of `source` reported exactly once, in order; returns the
/// report rows indexed like the input.
pub(crate) fn one_per_row(report: &[ReportRow], rows: usize) -> Vec<&ReportRow> {
    assert_eq!(report.len(), rows, "one report row per input row");
    let mut seen = HashSet::new();
    for (i, r) in report.iter().enumerate() {
        assert!(seen.insert((&r.source, r.record)), "reported twice: {r:?}");
        assert_eq!(r.record, i as u64 + 1, "input order");
    }
    report.iter().collect()
}

pub(crate) fn count(report: &[ReportRow], status: Status) -> usize {
    report.iter().filter(|r| r.status == status).count()
}

pub(crate) fn statuses(report: &[ReportRow]) -> HashMap<Status, usize> {
    let mut m = HashMap::new();
    for r in report {
        *m.entry(r.status).or_insert(0) += 1;
    }
    m
}

/// What the emulator saw: nothing stored twice, every conversation stored
/// in timestamp order, never two requests of one conversation at once.
pub(crate) fn assert_sent_soundly(stats: &Stats) {
    assert_eq!(stats.duplicates, 0, "{stats:?}");
    assert_eq!(stats.order_violations, 0, "{stats:?}");
    assert!(stats.max_in_flight_per_conversation <= 1, "{stats:?}");
}

pub(crate) fn http(stats: &Stats, status: &str) -> u64 {
    stats.requests_by_status.get(status).copied().unwrap_or(0)
}

/// Stored messages by (conversation, text); panics on a duplicate.
pub(crate) fn stored_by_key(
    messages: &[StoredMessage],
) -> HashMap<(String, String), &StoredMessage> {
    let mut m = HashMap::new();
    for s in messages {
        let old = m.insert((s.conversation_id.clone(), s.text.clone()), s);
        assert!(old.is_none(), "stored twice: {s:?}");
    }
    m
}

/// Rows of each conversation in send order (the corpus is already in
/// timestamp order within a conversation), as indexes into `rows`.
pub(crate) fn by_conversation(rows: &[Row]) -> HashMap<&str, Vec<usize>> {
    let mut m: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        m.entry(r.conversation_id.as_str()).or_default().push(i);
    }
    m
}

/// Within each conversation, every row after the first `uncertain` or
/// `failed` one is `skipped` (or `not_attempted`, once the run stops).
pub(crate) fn skipped_after_first_trouble(rows: &[Row], report: &[&ReportRow]) {
    for (conv, idx) in by_conversation(rows) {
        let mut blocked = None;
        for &i in &idx {
            let s = report[i].status;
            if let Some(at) = blocked {
                assert!(
                    matches!(s, Status::Skipped | Status::NotAttempted),
                    "{conv}: row {} after trouble at row {at} is {s}",
                    i + 1
                );
            } else if matches!(s, Status::Uncertain | Status::Failed) {
                blocked = Some(i + 1);
            }
        }
    }
}

/// Poll `cond` every 10 ms until it holds or `limit` passes.
pub(crate) fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

pub(crate) fn wait_child(child: &mut Child, limit: Duration) -> Output {
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

pub(crate) fn signal(child: &Child, sig: &str) {
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
    let (dir, rows, input) = written("S", 2000, 10, "soak.csv");
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

    assert_sent_soundly(&stats);
    assert_eq!(stats.stored as usize, messages.len());

    // Every stored message is its row's `created` (same id) or `uncertain`.
    let row_of: HashMap<(&str, &str), usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.conversation_id.as_str(), r.text.as_str()), i))
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
            let key = (rows[i].conversation_id.clone(), rows[i].text.clone());
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

// ---------------------------------------------------------------- crash

/// Killed with SIGKILL three times mid-import and restarted on the same
/// ledger each time: in the end every message is stored exactly once or
/// said to be uncertain, and nothing is lost or sent twice.
#[test]
fn sigkill_and_resume_never_sends_twice_nor_loses() {
    killed_and_resumed("K", &[]);
}

/// The same with the journal written to the disk before each request (the
/// default against a remote API).
#[test]
fn sigkill_and_resume_with_the_journal_synced_to_the_disk() {
    killed_and_resumed("KD", &["--journal-sync", "disk"]);
}

fn killed_and_resumed(prefix: &str, extra: &[&str]) {
    let (dir, rows, input) = written(prefix, 300, 10, "crash.csv");
    // At least 10 ms an answer, 8 at a time. Each run is killed once it
    // has stored 200 more; a kill leaves at most 8 conversations (80 rows)
    // uncertain or skipped. So at the third kill some 2,000 rows, at least
    // 2.5 s of answers the emulator has yet to give, are left: every kill
    // lands mid-run, however slowly this test's thread is scheduled.
    let emu = start(Config {
        latency: Duration::from_millis(10),
        jitter: Duration::from_millis(5),
        seed: Some(5),
        ..Config::default()
    });
    let args = [&["--concurrency", "8"], extra].concat();
    for i in 0..3 {
        let mut child = spawn(&emu.url(), dir.path(), &[&input], &args);
        let before = emu.stats().stored;
        let progressed = wait_for(Duration::from_secs(300), || {
            emu.stats().stored >= before + 200
        });
        assert!(progressed, "run {i} did not get going");
        assert!(
            child.try_wait().unwrap().is_none(),
            "run {i} finished before it could be killed"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let stored_before_last = emu.stats().stored;
    let out = run(&emu.url(), dir.path(), &[&input], &args);
    assert!(
        [0, 1].contains(&code(&out)),
        "exit {}: {}",
        code(&out),
        stderr(&out)
    );

    let report = report(dir.path());
    let rep = one_per_row(&report, rows.len());
    let stats = emu.stats();
    let messages = emu.messages();
    let stored = stored_by_key(&messages);
    assert_sent_soundly(&stats);
    for (i, r) in rep.iter().enumerate() {
        let key = (rows[i].conversation_id.clone(), rows[i].text.clone());
        match r.status {
            Status::Created | Status::AlreadyImported => {
                let m = stored
                    .get(&key)
                    .unwrap_or_else(|| panic!("not stored: {r:?}"));
                assert_eq!(m.id, r.message_id, "row {}", i + 1);
            }
            // Maybe stored (killed mid-request), maybe not.
            Status::Uncertain => {}
            Status::Skipped => assert!(!stored.contains_key(&key), "row {}", i + 1),
            other => panic!("row {}: {other}: {r:?}", i + 1),
        }
    }
    // Every stored message is accounted for by its row.
    let row_of: HashMap<(&str, &str), usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.conversation_id.as_str(), r.text.as_str()), i))
        .collect();
    for m in &messages {
        let i = row_of[&(m.conversation_id.as_str(), m.text.as_str())];
        assert!(
            matches!(
                rep[i].status,
                Status::Created | Status::AlreadyImported | Status::Uncertain
            ),
            "stored, yet {:?}",
            rep[i]
        );
    }
    skipped_after_first_trouble(&rows, &rep);
    let by = statuses(&report);
    assert!(count(&report, Status::AlreadyImported) as u64 >= stored_before_last - 3 * 8);
    eprintln!(
        "crash: {} rows, 3 kills, {} stored, statuses {by:?}",
        rows.len(),
        stats.stored
    );
}

/// `--resend-uncertain` sends again what an earlier run left uncertain;
/// without it, a rerun leaves it alone.
#[test]
fn resend_uncertain_sends_it_again_and_only_when_asked() {
    let (dir, rows, input) = written("U", 1, 3, "u.csv");
    // Every answer lost after storing.
    let lossy = start(Config {
        drop_after: 1.0,
        seed: Some(1),
        ..Config::default()
    });
    let addr = lossy.addr();
    let url = lossy.url();
    let out = run(&url, dir.path(), &[&input], &[]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let r = report(dir.path());
    assert_eq!(
        r.iter().map(|r| r.status).collect::<Vec<_>>(),
        [Status::Uncertain, Status::Skipped, Status::Skipped]
    );
    assert_eq!(lossy.stats().stored, 1);
    lossy.shutdown();

    // The same address (the ledger is bound to it), now answering.
    let emu = start(Config {
        addr: Some(addr),
        ..Config::default()
    });
    let out = run(&url, dir.path(), &[&input], &[]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(report(dir.path())[0].status, Status::Uncertain);
    assert_eq!(emu.stats().requests_total, 0, "uncertain is not re-sent");

    let out = run(&url, dir.path(), &[&input], &["--resend-uncertain"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = report(dir.path());
    assert!(r.iter().all(|r| r.status == Status::Created), "{r:?}");
    let texts: Vec<String> = emu.messages().into_iter().map(|m| m.text).collect();
    assert_eq!(
        texts,
        rows.iter().map(|r| r.text.clone()).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------- lock, stop, abort

/// "At once": the second run is refused while the first still holds the
/// ledger, rather than waiting for the lock. The emulator makes the first
/// run last at least 40 s (400 rows, 200 ms an answer, 2 at a time), so a
/// second run that waited for the lock could not be back before it ends.
#[test]
fn a_second_run_on_the_same_state_is_refused_at_once() {
    let (dir, _, input) = written("L", 20, 20, "l.csv");
    let emu = start(Config {
        latency: Duration::from_millis(200),
        ..Config::default()
    });
    let mut first = spawn(&emu.url(), dir.path(), &[&input], &["--concurrency", "2"]);
    // The lock is taken before the first request goes out.
    assert!(wait_for(Duration::from_secs(300), || {
        emu.stats().requests_total > 0
    }));
    let second = run(&emu.url(), dir.path(), &[&input], &[]);
    assert!(
        first.try_wait().unwrap().is_none(),
        "the second run came back only once the first had ended"
    );
    assert_eq!(code(&second), 2, "{}", stderr(&second));
    let err = stderr(&second);
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");
    first.kill().unwrap();
    first.wait().unwrap();
}

/// A link to the ledger (here one directory's `state.db` pointing at
/// another's, as a `current.db` might point at this year's ledger) is the
/// same ledger as the file: a run through the file's own name while one
/// runs through the link is refused, and a run killed (SIGKILL) through
/// the link is resumed through the file's name without sending anything
/// twice. Its lock and journal used to sit beside the link: both runs sent
/// every message.
#[cfg(unix)]
#[test]
fn a_link_to_the_ledger_is_the_same_ledger() {
    let (linked, rows, input) = written("SL", 20, 20, "s.csv");
    let own = tempfile::tempdir().unwrap();
    let (linked, own) = (linked.path(), own.path());
    // Dangling until the first run creates the ledger through it.
    std::os::unix::fs::symlink(own.join("state.db"), linked.join("state.db")).unwrap();
    // 20 ms an answer, 4 at a time: 400 rows take at least 2 s.
    let emu = start(Config {
        latency: Duration::from_millis(20),
        ..Config::default()
    });
    let args = ["--concurrency", "4"];
    let mut first = spawn(&emu.url(), linked, &[&input], &args);
    assert!(wait_for(Duration::from_secs(300), || emu.stats().stored >= 20));
    let second = run(&emu.url(), own, &[&input], &args);
    assert_eq!(code(&second), 2, "{}", stderr(&second));
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run ended before the second was refused"
    );
    assert!(
        stderr(&second).contains(&format!("pid {}", first.id())),
        "{}",
        stderr(&second)
    );
    first.kill().unwrap();
    first.wait().unwrap();
    let killed_stored = emu.stats().stored;
    assert!(own.join("state.db").is_file());
    let third = run(&emu.url(), own, &[&input], &args);
    assert!(matches!(code(&third), 0 | 1), "{}", stderr(&third));
    let stats = emu.stats();
    assert_eq!(stats.duplicates, 0, "{stats:?}");
    let r = report(own);
    one_per_row(&r, rows.len());
    // What the killed run sent is known, not sent again.
    let known = count(&r, Status::AlreadyImported) + count(&r, Status::Uncertain);
    assert!(known as u64 >= killed_stored, "{:?}", statuses(&r));
    // Every stored message is a row created or already imported, or one
    // the kill caught in flight (`uncertain`: the API may have stored it
    // after its intent was journaled and before its answer was).
    let sure = count(&r, Status::AlreadyImported) + count(&r, Status::Created);
    let stored = stats.stored as usize;
    assert!(sure <= stored, "{:?} {stats:?}", statuses(&r));
    assert!(
        stored <= sure + count(&r, Status::Uncertain),
        "{:?} {stats:?}",
        statuses(&r)
    );
}

/// `cmd` started with each signal's disposition set as `dispositions`
/// says, sent `sig` once the emulator holds `stored` messages and while it
/// still runs; what it printed, once it has ended.
fn signalled_midway(
    mut cmd: Command,
    dispositions: &[(libc::c_int, libc::sighandler_t)],
    emu: &Emulator,
    stored: u64,
    sig: &str,
) -> Output {
    let dispositions = dispositions.to_vec();
    // SAFETY: between fork and exec, signal() only sets a disposition.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            for &(signal, handler) in &dispositions {
                libc::signal(signal, handler);
            }
            Ok(())
        });
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(300), || emu.stats().stored >= stored));
    assert!(
        child.try_wait().unwrap().is_none(),
        "ended before the signal"
    );
    signal(&child, sig);
    wait_child(&mut child, Duration::from_secs(300))
}

/// SIGINT or SIGTERM: stop dispatching, finish what is in flight, report
/// every row (the rest `not_attempted`), exit 130; a rerun finishes.
///
/// The signal must land while the run is sending. The emulator makes sure
/// it is: 40 ms an answer, 4 conversations at once, so once 50 rows are
/// stored the other 950 need at least 9.5 s more; the test signals as soon
/// as it sees the 50 (a 1,000-row run once finished in 1.8 s, before a
/// signal sent after a fixed delay on a loaded machine could land).
fn graceful_stop(sig: &str, prefix: &str) {
    let (dir, rows, input) = written(prefix, 40, 25, "g.csv");
    let emu = start(Config {
        latency: Duration::from_millis(40),
        ..Config::default()
    });
    let cmd = importer(&emu.url(), dir.path(), &[&input], &["--concurrency", "4"]);
    // As from a terminal: whoever runs the tests may have started them
    // with SIGINT ignored (a background job does) or SIGHUP ignored
    // (`nohup`), and the tool keeps an ignored signal ignored, as it
    // should (see regression item 5 and `a_run_started_under_nohup_...`).
    let defaults = [(libc::SIGINT, libc::SIG_DFL), (libc::SIGHUP, libc::SIG_DFL)];
    let out = signalled_midway(cmd, &defaults, &emu, 50, sig);
    assert_eq!(code(&out), 130, "{}", stderr(&out));
    let first = report(dir.path());
    one_per_row(&first, rows.len());
    let by = statuses(&first);
    assert!(
        by.keys()
            .all(|s| [Status::Created, Status::NotAttempted].contains(s)),
        "{by:?}"
    );
    assert!(count(&first, Status::NotAttempted) > 0, "{by:?}");
    assert_eq!(count(&first, Status::Created) as u64, emu.stats().stored);

    // All 40 conversations at once: the rest takes about a second.
    let out = run(&emu.url(), dir.path(), &[&input], &["--concurrency", "40"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let second = report(dir.path());
    one_per_row(&second, rows.len());
    for (a, b) in first.iter().zip(&second) {
        match a.status {
            Status::Created => {
                assert_eq!(b.status, Status::AlreadyImported);
                assert_eq!(b.message_id, a.message_id);
            }
            _ => assert_eq!(b.status, Status::Created),
        }
    }
    let stats = emu.stats();
    assert_eq!(stats.stored as usize, rows.len());
    assert_eq!(stats.duplicates, 0);
}

#[test]
fn sigint_stops_cleanly_and_a_rerun_finishes() {
    graceful_stop("INT", "GI");
}

#[test]
fn sigterm_stops_cleanly_and_a_rerun_finishes() {
    graceful_stop("TERM", "GT");
}

/// The terminal a run was started from closing (SSH dropped, tmux killed).
#[test]
fn sighup_stops_cleanly_and_a_rerun_finishes() {
    graceful_stop("HUP", "GH");
}

/// `nohup transcript-import run ... &`, then the session ends: `nohup`
/// starts the run with SIGHUP ignored so that it outlives the terminal,
/// and the tool keeps it ignored. The hangup lands while at least 380
/// rows are left (20 ms an answer, 4 at a time: 1.9 s or more), and the
/// run goes to its end.
#[test]
fn a_run_started_under_nohup_outlives_a_hangup() {
    let (dir, rows, input) = written("NH", 20, 20, "n.csv");
    let emu = start(Config {
        latency: Duration::from_millis(20),
        ..Config::default()
    });
    let cmd = importer(&emu.url(), dir.path(), &[&input], &["--concurrency", "4"]);
    let out = signalled_midway(cmd, &[(libc::SIGHUP, libc::SIG_IGN)], &emu, 20, "HUP");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = report(dir.path());
    one_per_row(&r, rows.len());
    assert_eq!(count(&r, Status::Created), rows.len(), "{:?}", statuses(&r));
    let stats = emu.stats();
    assert_eq!(stats.stored as usize, rows.len());
    assert_eq!(stats.duplicates, 0);
}

#[test]
fn refused_credentials_abort_after_the_first_requests() {
    let (dir, rows, input) = written("A", 50, 10, "a.csv");
    let emu = start(Config {
        credentials: Some(("right-id".into(), "right-secret".into())),
        ..Config::default()
    });
    let out = run(&emu.url(), dir.path(), &[&input], &["--concurrency", "4"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let r = report(dir.path());
    one_per_row(&r, rows.len());
    assert_eq!(
        count(&r, Status::NotAttempted),
        rows.len(),
        "{:?}",
        statuses(&r)
    );
    let stats = emu.stats();
    assert!(stats.requests_total <= 4, "{stats:?}");
    assert_eq!(http(&stats, "401"), stats.requests_total);
    assert!(stderr(&out).contains("credentials"), "{}", stderr(&out));
}

#[test]
fn an_api_that_keeps_failing_stops_the_run_early() {
    let (dir, rows, input) = written("D", 200, 10, "d.csv");
    let emu = start(Config {
        error_500: 1.0,
        seed: Some(3),
        ..Config::default()
    });
    let out = run(
        &emu.url(),
        dir.path(),
        &[&input],
        &["--concurrency", "8", "--backoff-scale", "0.01"],
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let r = report(dir.path());
    let rep = one_per_row(&r, rows.len());
    let stats = emu.stats();
    // 2,000 rows at 5 attempts each would be 10,000 requests.
    assert!(stats.requests_total < 500, "{stats:?}");
    assert_eq!(stats.stored, 0);
    let by = statuses(&r);
    assert!(
        count(&r, Status::NotAttempted) > rows.len() * 3 / 4,
        "{by:?}"
    );
    assert!(
        by.keys()
            .all(|s| [Status::Failed, Status::Skipped, Status::NotAttempted].contains(s)),
        "{by:?}"
    );
    skipped_after_first_trouble(&rows, &rep);
    eprintln!("api down: {} requests, {by:?}", stats.requests_total);
}

// ---------------------------------------------------------------- Retry-After

/// Every 429 is followed by a wait of at least its `Retry-After` (scaled
/// by `--backoff-scale`), in both of the header's forms.
fn retry_after_is_honoured(http_date: bool, prefix: &str) {
    let (dir, rows, input) = written(prefix, 1, 24, "r.csv");
    let emu = start(Config {
        error_429: 0.25,
        seed: Some(11),
        retry_after_http_date: http_date,
        ..Config::default()
    });
    let scale = 0.5;
    let t = Instant::now();
    let out = run(
        &emu.url(),
        dir.path(),
        &[&input],
        &["--concurrency", "1", "--backoff-scale", &scale.to_string()],
    );
    let elapsed = t.elapsed();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let stats = emu.stats();
    let refused = http(&stats, "429");
    assert!(refused >= 2, "{stats:?}");
    // Retry-After says 1 s (the date form: at least 1 s, at most 2 s):
    // a floor the importer must respect whatever the load.
    let least = Duration::from_secs_f64(refused as f64 * scale);
    assert!(elapsed >= least, "{refused} x 429 in {elapsed:?}");
    // And not much more than it says: the waits plus the rest of the run
    // (well under a second unloaded), with room for a tenfold slowdown.
    let most = least * if http_date { 2 } else { 1 } + Duration::from_secs(20);
    assert!(elapsed <= most, "{refused} x 429 in {elapsed:?}");
    // The stored arrival times show the gaps themselves.
    let messages = emu.messages();
    assert_eq!(messages.len(), rows.len());
    let gaps: f64 = messages
        .windows(2)
        .map(|w| (w[1].received_at - w[0].received_at).num_milliseconds() as f64 / 1000.0)
        .sum();
    assert!(gaps >= least.as_secs_f64() * 0.9, "{gaps}");
}

#[test]
fn retry_after_in_seconds_is_honoured() {
    retry_after_is_honoured(false, "RS");
}

#[test]
fn retry_after_as_an_http_date_is_honoured() {
    retry_after_is_honoured(true, "RD");
}

// ---------------------------------------------------------------- overlap

/// Import A (messages 1..100), then B (51..150) on the same ledger: only
/// B's new messages are sent; the overlap is `already_imported` with A's
/// ids. Genuinely repeated messages (same text, same instant) are sent as
/// many times as they occur, and not again on overlap.
#[test]
fn overlapping_exports_send_only_what_is_new() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = corpus("O", 3, 50); // 150 messages, interleaved
                                      // Genuine repeats: a pair only in A, one in the overlap, one only in B.
    for k in [10, 60, 120] {
        all[k + 3] = all[k].clone();
    }
    let a_path = dir.path().join("a.csv");
    let b_path = dir.path().join("b.csv");
    write_csv(&a_path, &all[..100]);
    write_csv(&b_path, &all[50..]);
    let emu = start(Config::default());

    let out = run(&emu.url(), dir.path(), &[&a_path], &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let a = report(dir.path());
    one_per_row(&a, 100);
    assert_eq!(count(&a, Status::Created), 100);
    assert_eq!(emu.stats().stored, 100);
    assert_eq!(emu.stats().duplicates, 2, "the two repeats in A, both sent");

    let out = run(&emu.url(), dir.path(), &[&b_path], &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let b = report(dir.path());
    one_per_row(&b, 100);
    for (i, r) in b.iter().enumerate() {
        if i < 50 {
            assert_eq!(r.status, Status::AlreadyImported, "{r:?}");
            assert_eq!(r.message_id, a[50 + i].message_id, "{r:?}");
        } else {
            assert_eq!(r.status, Status::Created, "{r:?}");
        }
    }
    let stats = emu.stats();
    assert_eq!(stats.stored, 150);
    assert_eq!(stats.duplicates, 3, "plus the repeat only in B: {stats:?}");
    let ids: HashSet<String> = emu.messages().into_iter().map(|m| m.id).collect();
    assert_eq!(ids.len(), 150);
    let reported: HashSet<&str> = a.iter().chain(&b).map(|r| r.message_id.as_str()).collect();
    assert_eq!(reported.len(), 150);
}

// ---------------------------------------------------------------- rate

/// With no `--rate`, the run finds an API rate limit it was never told and
/// settles near it with few 429s.
///
/// Both bounds are counts, not clock readings of this test: the share of
/// 429s among the requests, and the stored arrivals over their span
/// (which the emulator's bucket, one second of burst on top of the limit,
/// caps at limit + limit / span; a busy machine only lowers either).
#[test]
fn rate_control_settles_near_an_unknown_limit() {
    let (dir, rows, input) = written("R", 300, 10, "rate.csv");
    let limit = 200;
    let emu = start(Config {
        rate_limit: Some(limit),
        ..Config::default()
    });
    let t = Instant::now();
    let out = run(&emu.url(), dir.path(), &[&input], &["--concurrency", "16"]);
    let elapsed = t.elapsed();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = report(dir.path());
    one_per_row(&r, rows.len());
    assert_eq!(count(&r, Status::Created), rows.len());
    let stats = emu.stats();
    let refused = http(&stats, "429");
    let share = refused as f64 / stats.requests_total as f64;
    let messages = emu.messages();
    let span = (messages.last().unwrap().received_at - messages[0].received_at).num_milliseconds()
        as f64
        / 1000.0;
    let achieved = messages.len() as f64 / span;
    eprintln!(
        "rate control: limit {limit}/s, achieved {achieved:.0}/s, {refused} x 429 of {} requests ({:.1}%), {:.1}s",
        stats.requests_total,
        share * 100.0,
        elapsed.as_secs_f64()
    );
    assert!(share < 0.15, "{refused} 429s of {}", stats.requests_total);
    // One second of burst on top of the limit, at most.
    assert!(achieved <= f64::from(limit) * 1.15, "{achieved}");
}

/// `--rate N` caps the run: its requests start 1/N s apart, so the run
/// lasts at least (rows - 1) / N, and the arrivals the emulator stored
/// span about that.
///
/// Load only slows a run down, so lower bounds hold on a busy machine;
/// the one upper bound (the cap does not throttle far below N) leaves
/// room for a tenfold slowdown, and at 50/s the request rate, not the
/// machine, sets the pace.
#[test]
fn rate_flag_caps_the_request_rate() {
    let (dir, rows, input) = written("C", 10, 10, "cap.csv");
    let emu = start(Config::default());
    let t = Instant::now();
    let out = run(
        &emu.url(),
        dir.path(),
        &[&input],
        &["--concurrency", "8", "--rate", "50"],
    );
    let elapsed = t.elapsed().as_secs_f64();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let messages = emu.messages();
    assert_eq!(messages.len(), rows.len());
    let least = (rows.len() - 1) as f64 / 50.0;
    assert!(elapsed >= least, "{elapsed} s for {} rows", rows.len());
    // Arrivals: one request may reach the emulator late (scheduling,
    // connecting) and shorten the span; 1 s of slack for that. Without
    // the cap the 100 rows arrive within a fraction of a second.
    let span = (messages.last().unwrap().received_at - messages[0].received_at).num_milliseconds()
        as f64
        / 1000.0;
    assert!(span >= least - 1.0, "{span} s for {} rows", rows.len());
    assert!(
        span <= least * 3.0 + 10.0,
        "{span} s for {} rows",
        rows.len()
    );
}

// ---------------------------------------------------------------- open files

/// A backfill of many inputs (a year of daily exports) under a low limit
/// on open files: each worker used to keep every input it had read open,
/// two handles each, and ran out of files mid-run (exit 3). Here each
/// conversation's 25 rows are spread over 25 of the 100 inputs, so a
/// worker reads from all of them, and 256 files are allowed.
#[test]
fn many_inputs_under_a_low_open_file_limit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rows = corpus("MF", 40, 25);
    let mut files: Vec<Vec<Row>> = vec![Vec::new(); 100];
    for (i, row) in rows.iter().enumerate() {
        files[i % 100].push(row.clone());
    }
    let mut inputs = Vec::new();
    for (i, part) in files.iter().enumerate() {
        let path = d.join(format!("day-{i:03}.csv"));
        write_csv(&path, part);
        inputs.push(path);
    }
    let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let emu = start(Config::default());
    let mut cmd = importer(&emu.url(), d, &inputs, &["--concurrency", "8"]);
    util::with_open_files(&mut cmd, 256, 256);
    let out = cmd.output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let stats = emu.stats();
    assert_eq!(stats.stored as usize, rows.len(), "{stats:?}");
    assert_eq!(stats.duplicates, 0);
}

/// A soft limit below what the workers need is raised to the hard one;
/// a hard limit below it refuses the run before anything is sent, naming
/// both numbers.
#[test]
fn the_open_file_limit_is_raised_or_the_run_refused_before_sending() {
    let (dir, rows, input) = written("OF", 40, 5, "o.csv");
    let emu = start(Config::default());
    // 64 workers need about 32 + 64 + 64 * 3 = 288 files.
    let mut cmd = importer(&emu.url(), dir.path(), &[&input], &["--concurrency", "64"]);
    util::with_open_files(&mut cmd, 100, 100);
    let out = cmd.output().unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--concurrency 64") && err.contains("288") && err.contains("100"),
        "{err}"
    );
    assert_eq!(emu.stats().requests_total, 0);

    let mut cmd = importer(&emu.url(), dir.path(), &[&input], &["--concurrency", "64"]);
    util::with_open_files(&mut cmd, 100, 4096);
    let out = cmd.output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(emu.stats().stored as usize, rows.len());
}

/// Where the limit has room for the workers but not for holding every
/// input open as well, the run goes on opening inputs by name, and says
/// so: an input replaced during such a run stops it.
#[test]
fn a_limit_with_no_room_to_hold_the_inputs_open_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let rows = corpus("HO", 8, 3);
    let mut inputs = Vec::new();
    for (i, part) in rows.chunks(3).enumerate() {
        let path = dir.path().join(format!("day-{i}.csv"));
        write_csv(&path, part);
        inputs.push(path);
    }
    let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let emu = start(Config::default());
    // Two workers need about 32 + 2 + 2 * 9 = 52 files; 56 leaves 4 for
    // the 8 inputs, 256 leaves plenty.
    for (limit, said) in [(56, true), (256, false)] {
        let mut cmd = importer(&emu.url(), dir.path(), &inputs, &["--concurrency", "2"]);
        util::with_open_files(&mut cmd, limit, limit);
        let out = cmd.output().unwrap();
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(
            err.contains("leaves no room to hold 8 inputs open") && err.contains("ulimit -n 60"),
            said && cfg!(target_os = "linux"),
            "limit {limit}: {err}"
        );
    }
    // The first run sent every message; the second found them in the
    // ledger.
    let stats = emu.stats();
    assert_eq!(stats.stored as usize, rows.len(), "{stats:?}");
    assert_eq!(stats.duplicates, 0);
}
