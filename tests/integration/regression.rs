//! Regressions of the issue "Hardening: every way a real file, shell or
//! server broke the tool", one test per item the run stage owns, through
//! the real binary against the emulator on loopback.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use transcript_import::emulator::Config;
use transcript_import::model::Status;

use crate::delivery::{
    assert_sent_soundly, code, count, importer, one_per_row, report, run, spawn, start, statuses,
    stderr, wait_child, wait_for, written,
};
use crate::util;

/// Item 2: an output path that resolves to an input, the ledger or its
/// side files is refused before anything is read, however it is named.
#[test]
fn item_2_an_output_that_is_an_input_or_the_ledger_is_refused() {
    let (dir, _, input) = written("OUT", 3, 2, "t.csv");
    let before = std::fs::read(&input).unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("sub")).unwrap();
    std::os::unix::fs::symlink(&input, d.join("link.csv")).unwrap();
    std::fs::hard_link(&input, d.join("hard.csv")).unwrap();
    let emu = start(Config::default());
    for target in [
        "t.csv",
        "./t.csv",
        "sub/../t.csv",
        "link.csv",
        "hard.csv",
        "state.db",
        "state.db-wal",
        "state.db.lock",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_transcript-import"))
            .current_dir(d)
            .args([
                "run",
                "--api-url",
                &emu.url(),
                "--quiet",
                "--state",
                "state.db",
            ])
            .args(["--report", target, "t.csv"])
            .env("ASAPP_API_ID", "x")
            .env("ASAPP_API_SECRET", "y")
            .output()
            .unwrap();
        assert_eq!(code(&out), 2, "{target}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--report"),
            "{target}: {}",
            stderr(&out)
        );
        assert_eq!(std::fs::read(&input).unwrap(), before, "{target}");
    }
    assert_eq!(emu.stats().requests_total, 0);
    // A JSONL input named as the (JSONL) report, and the ledger on the input.
    let jsonl = d.join("t.jsonl");
    std::fs::write(&jsonl, util::jsonl(&crate::delivery::corpus("OUJ", 2, 2))).unwrap();
    let jsonl_before = std::fs::read(&jsonl).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_transcript-import"))
        .current_dir(d)
        .args(["run", "--api-url", &emu.url(), "--quiet", "--state", "j.db"])
        .args(["--report", "./sub/../t.jsonl", "t.jsonl"])
        .env("ASAPP_API_ID", "x")
        .env("ASAPP_API_SECRET", "y")
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert_eq!(std::fs::read(&jsonl).unwrap(), jsonl_before);
    let out = run(
        &emu.url(),
        d,
        &[&input],
        &["--state", input.to_str().unwrap()],
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert_eq!(std::fs::read(&input).unwrap(), before);
    assert_eq!(emu.stats().requests_total, 0);
}

/// Item 4: the same input twice (by name, by link, or by content) would
/// send every message twice; it is refused unless the user says so.
#[test]
fn item_4_the_same_input_twice_is_refused_unless_meant() {
    let (dir, rows, input) = written("TW", 4, 3, "t.csv");
    let d = dir.path();
    let copy = d.join("copy.csv");
    std::fs::copy(&input, &copy).unwrap();
    let jsonl = d.join("t.jsonl");
    std::fs::write(&jsonl, util::jsonl(&rows)).unwrap();
    let jsonl_copy = d.join("again.jsonl");
    std::fs::copy(&jsonl, &jsonl_copy).unwrap();
    let emu = start(Config::default());
    for pair in [[&input, &input], [&input, &copy], [&jsonl, &jsonl_copy]] {
        let out = run(&emu.url(), d, &[pair[0], pair[1]], &[]);
        assert_eq!(code(&out), 2, "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("sent twice") && err.contains("--allow-duplicate-input"),
            "{err}"
        );
    }
    assert_eq!(emu.stats().requests_total, 0);
    // Said to be meant: every message goes twice, as asked.
    let out = run(
        &emu.url(),
        d,
        &[&input, &copy],
        &["--allow-duplicate-input"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(emu.stats().stored as usize, 2 * rows.len());
}

/// Item 5: a shell script's background job inherits SIGINT as ignored;
/// SIGTERM must still stop it cleanly (exit 130, a full report, no journal
/// left), and SIGINT stays ignored as the shell asked.
#[test]
fn item_5_sigterm_stops_a_background_job_of_a_script() {
    let (dir, rows, input) = written("BG", 20, 50, "bg.csv");
    let d = dir.path();
    // 50 ms an answer, 4 at a time: 1,000 rows take at least 12.5 s, so
    // the run is surely still going when the signals come (they come
    // once 20, then 40 rows are stored), however loaded the machine is.
    let emu = start(Config {
        latency: Duration::from_millis(50),
        ..Config::default()
    });
    let cmd = importer(&emu.url(), d, &[&input], &["--concurrency", "4"]);
    let argv: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_str().unwrap()))
        .collect();
    let script = format!(
        "{} & echo $! > {}/pid; wait $!; echo exit=$?",
        argv.join(" "),
        d.display()
    );
    let mut shell = Command::new("bash")
        .args(["-c", &script])
        .env("ASAPP_API_ID", "x")
        .env("ASAPP_API_SECRET", "y")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(60), || emu.stats().stored >= 20));
    let pid = std::fs::read_to_string(d.join("pid")).unwrap();
    let kill = |sig: &str| {
        assert!(Command::new("kill")
            .args([sig, pid.trim()])
            .status()
            .unwrap()
            .success())
    };
    kill("-INT");
    // Ignored: the run goes on storing.
    let stored = emu.stats().stored;
    assert!(wait_for(Duration::from_secs(60), || emu.stats().stored
        >= stored + 20));
    kill("-TERM");
    let out = wait_child(&mut shell, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("exit=130"), "{stdout} {}", stderr(&out));
    let r = report(d);
    one_per_row(&r, rows.len());
    assert!(count(&r, Status::NotAttempted) > 0, "{:?}", statuses(&r));
    assert_eq!(count(&r, Status::Created) as u64, emu.stats().stored);
    let left: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".journal."))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Item 6: a fifth, or even half, of the answers 503 is not a spent quota:
/// the run goes to its end (exit 0 or 1, never 4) and reports every row.
#[test]
fn item_6_503s_are_never_read_as_a_spent_quota() {
    for (share, prefix) in [(0.2, "FA"), (0.5, "FB")] {
        let faults = Config {
            error_503: share,
            seed: Some(1),
            ..Config::default()
        };
        rides_out(prefix, 200, 10, faults, 16);
    }
}

/// A 429 that comes after 503s, 500s or lost connections is not one of
/// "429s in a row": one worker whose message met three other failures and
/// then a 429 is not out of quota (it used to stop the run with exit 4).
#[test]
fn a_429_after_other_failures_is_not_a_spent_quota() {
    let faults = Config {
        error_503: 0.4,
        error_500: 0.2,
        error_429: 0.1,
        seed: Some(7),
        ..Config::default()
    };
    rides_out("QM", 400, 4, faults, 1);
}

/// `conversations` of `per` rows each sent through `faults`: the run ends
/// with exit 0 or 1, never stopped, every row reported once and attempted,
/// and nothing stored twice or out of order.
fn rides_out(prefix: &str, conversations: usize, per: usize, faults: Config, concurrency: usize) {
    let (dir, rows, input) = written(prefix, conversations, per, "f.csv");
    let emu = start(faults);
    let out = run(
        &emu.url(),
        dir.path(),
        &[&input],
        &[
            "--concurrency",
            &concurrency.to_string(),
            "--backoff-scale",
            "0.01",
        ],
    );
    assert!([0, 1].contains(&code(&out)), "{prefix}: {}", stderr(&out));
    let r = report(dir.path());
    one_per_row(&r, rows.len());
    assert_eq!(
        count(&r, Status::NotAttempted),
        0,
        "{prefix}: {:?}",
        statuses(&r)
    );
    assert_sent_soundly(&emu.stats());
}

/// A server that answers nothing but 503 is down (exit 3, a 5xx), not out
/// of quota and not a row-by-row failure of everything.
#[test]
fn a_server_that_only_answers_503_is_down() {
    let (dir, rows, input) = written("DS", 200, 5, "s.csv");
    let emu = start(Config {
        error_503: 1.0,
        ..Config::default()
    });
    let out = run(
        &emu.url(),
        dir.path(),
        &[&input],
        &["--concurrency", "4", "--backoff-scale", "0.01"],
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.starts_with("stopped:") && l.contains("503")),
        "{err}"
    );
    let r = report(dir.path());
    one_per_row(&r, rows.len());
    assert_eq!(emu.stats().stored, 0);
    assert!(count(&r, Status::NotAttempted) > 0, "{:?}", statuses(&r));
}

/// Item 9: an API that cannot be reached stops the run within a bounded
/// time, even at a low rate, with one line naming the failure.
#[test]
fn item_9_an_unreachable_api_stops_soon_and_says_why() {
    let (dir, rows, input) = written("DN", 10, 5, "d.csv");
    // A loopback port nobody listens on: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let out = run(
        &format!("http://127.0.0.1:{port}"),
        dir.path(),
        &[&input],
        &["--rate", "0.5", "--backoff-scale", "0.1"],
    );
    let took = started.elapsed();
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.starts_with("stopped:"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        line.contains("cannot be reached") && line.contains("refused"),
        "{line}"
    );
    // Down after 1.5 s without a good answer (15 s scaled by 0.1), at a
    // request every 2 s: a few seconds, far from the minutes it used to take.
    assert!(took < Duration::from_secs(60), "{took:?}");
    one_per_row(&report(dir.path()), rows.len());
}

/// Item 9: a spent daily quota (every call 429 until midnight) is
/// recognised within seconds (exit 4), and a run after the reset finishes
/// without sending anything twice.
#[test]
fn item_9_a_spent_quota_is_recognised_at_once_and_resumed() {
    let (dir, rows, input) = written("QT", 50, 10, "q.csv");
    let emu = start(Config::quota_at_midday(300));
    let started = Instant::now();
    let out = run(&emu.url(), dir.path(), &[&input], &["--concurrency", "8"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert!(stderr(&out).contains("run again after"), "{}", stderr(&out));
    let first = report(dir.path());
    one_per_row(&first, rows.len());
    assert_eq!(
        count(&first, Status::Created),
        300,
        "{:?}",
        statuses(&first)
    );
    // The next day: the other 200 go, and only they.
    emu.reset_quota();
    let out = run(&emu.url(), dir.path(), &[&input], &["--concurrency", "8"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(count(&report(dir.path()), Status::AlreadyImported), 300);
    let stats = emu.stats();
    assert_eq!(stats.stored as usize, rows.len());
    assert_sent_soundly(&stats);
}

/// Item 10: flag values out of range are refused for their value, naming
/// the flag, by `run` and `check` alike; `--emulator` with `--api-url` is
/// refused; a closed stdout ends `check` quietly.
#[test]
fn item_10_flags_pairs_and_a_closed_stdout() {
    let dir = util::Dir::new();
    let input = dir.write("t.csv", util::csv(&crate::delivery::corpus("FL", 2, 2)));
    for (cmd, flag, value) in [
        ("run", "--rate", "-1"),
        ("run", "--timeout", "-1"),
        ("run", "--concurrency", "0"),
        ("check", "--rate", "-1"),
        ("check", "--concurrency", "0"),
    ] {
        let mut args = vec![cmd, flag, value, input.as_str()];
        if cmd == "run" {
            args.push("--emulator");
        }
        let out = util::run(&args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(flag) && out.stderr.contains(value),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("unexpected argument"),
            "{}",
            out.stderr
        );
    }
    let out = util::run(&[
        "run",
        "--emulator",
        "--api-url",
        "http://127.0.0.1:9",
        &input,
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--api-url"), "{}", out.stderr);

    let mut check = Command::new(util::bin())
        .args(["check", &input])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end at once, as `| head -0` would.
    drop(check.stdout.take());
    let out = check.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("Broken pipe"), "{err}");
    assert!([0, 1].contains(&out.status.code().unwrap()), "{err}");
}

/// Item 10: a ledger used against a separate emulator is still its ledger
/// after the emulator restarts on another loopback port; never mixed with
/// a remote API. Its files are its owner's only.
#[test]
fn item_10_loopback_is_one_target_and_ledger_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, rows, input) = written("LB", 5, 4, "l.csv");
    let first = start(Config::default());
    let out = run(&first.url(), dir.path(), &[&input], &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    drop(first);
    let second = start(Config::default());
    let out = run(&second.url(), dir.path(), &[&input], &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        count(&report(dir.path()), Status::AlreadyImported),
        rows.len()
    );
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("state.db") || name == "report.csv" {
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
    }
    let out = Command::new(util::bin())
        .args(["run", "--quiet", "--api-url", "https://api.example.invalid"])
        .arg("--state")
        .arg(dir.path().join("state.db"))
        .arg(&input)
        .env("ASAPP_API_ID", "x")
        .env("ASAPP_API_SECRET", "y")
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("another --state"), "{}", stderr(&out));
}

/// Item 10: without a terminal, progress lines carry the time of day and
/// an estimate of the end.
#[test]
fn item_10_log_progress_has_time_of_day_and_eta() {
    let (dir, _, input) = written("PG", 10, 30, "p.csv");
    let emu = start(Config {
        latency: Duration::from_millis(20),
        ..Config::default()
    });
    // Not `importer`: that one is --quiet.
    let out = Command::new(util::bin())
        .args(["run", "--api-url", &emu.url(), "--concurrency", "2"])
        .args(["--progress-every", "1", "--state"])
        .arg(dir.path().join("state2.db"))
        .arg(&input)
        .env("ASAPP_API_ID", "x")
        .env("ASAPP_API_SECRET", "y")
        .output()
        .unwrap();
    assert!([0, 1].contains(&code(&out)), "{}", stderr(&out));
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.contains(" progress: "))
        .unwrap_or_else(|| panic!("no progress line: {err}"));
    let clock = line.split(' ').next().unwrap();
    assert!(
        clock.len() == 9 && clock.ends_with('Z') && clock.as_bytes()[2] == b':',
        "{line}"
    );
    assert!(line.contains(", eta "), "{line}");
}

/// `rows` as a JSONL or a CSV file's bytes.
fn as_file(jsonl: bool, rows: &[util::Row]) -> Vec<u8> {
    if jsonl {
        util::jsonl(rows)
    } else {
        util::csv(rows)
    }
}

/// The same rows with other text, of the same length.
fn other_text(rows: &[util::Row]) -> Vec<util::Row> {
    rows.iter()
        .map(|r| util::Row {
            text: r.text.replace("hello", "HOLA!"),
            ..r.clone()
        })
        .collect()
}

/// Inputs replaced under the run by new files renamed over them (how an
/// export job writes its file atomically), or deleted by a cleanup, are
/// not the planned files changing: the run reads what it planned from the
/// files it opened, sends all of it and ends normally. A worker that
/// opened an input after that used to stop the run with exit 3, `changed
/// while importing`, half sent (a worker opens an input when it first
/// needs it, and again after keeping others open instead).
#[cfg(target_os = "linux")]
#[test]
fn inputs_renamed_over_or_deleted_during_the_run_are_sent_as_planned() {
    for (jsonl, deleted) in [(false, false), (true, false), (false, true)] {
        let dir = tempfile::tempdir().unwrap();
        let rows = crate::delivery::corpus(if jsonl { "NJ" } else { "NC" }, 40, 20);
        let ext = if jsonl { "jsonl" } else { "csv" };
        let bytes = |rows: &[util::Row]| as_file(jsonl, rows);
        // Eight daily exports, five conversations each.
        let day = |r: &util::Row| r.conversation_id[2..].parse::<usize>().unwrap() / 5;
        let inputs: Vec<PathBuf> = (0..8)
            .map(|d| dir.path().join(format!("day{d}.{ext}")))
            .collect();
        let of_day = |rows: &[util::Row], d: usize| -> Vec<util::Row> {
            rows.iter().filter(|r| day(r) == d).cloned().collect()
        };
        for (d, input) in inputs.iter().enumerate() {
            std::fs::write(input, bytes(&of_day(&rows, d))).unwrap();
        }
        let emu = start(Config {
            latency: Duration::from_millis(10),
            ..Config::default()
        });
        // 800 rows, 2 at a time, 10 ms each: 4 s at least, so the files
        // are gone (once 40 are stored) long before the run could end.
        let named: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
        let mut child = spawn(&emu.url(), dir.path(), &named, &["--concurrency", "2"]);
        assert!(wait_for(Duration::from_secs(60), || emu.stats().stored >= 40));
        let newer = other_text(&rows);
        for (d, input) in inputs.iter().enumerate() {
            if deleted {
                std::fs::remove_file(input).unwrap();
            } else {
                let next = dir.path().join("next.tmp");
                std::fs::write(&next, bytes(&of_day(&newer, d))).unwrap();
                std::fs::rename(&next, input).unwrap();
            }
        }
        let out = wait_child(&mut child, Duration::from_secs(120));
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let stats = emu.stats();
        assert_eq!(stats.stored as usize, rows.len());
        assert_sent_soundly(&stats);
        assert!(emu.messages().iter().all(|m| !m.text.contains("HOLA")));
        // Every row of every input once, as created.
        let r = report(dir.path());
        let mut seen: Vec<(String, u64)> = r.iter().map(|r| (r.source.clone(), r.record)).collect();
        seen.sort();
        seen.dedup();
        assert_eq!((seen.len(), r.len()), (rows.len(), rows.len()));
        assert_eq!(count(&r, Status::Created), rows.len());
    }
}

/// Item 11: an input rewritten while it is imported stops the run (exit 3)
/// with one line naming the file and the row; nothing of the new text is
/// sent, the rest is `not_attempted`, and a rerun with the old file sends
/// only what was not sent.
#[test]
fn item_11_an_input_rewritten_during_the_run_stops_it() {
    for jsonl in [false, true] {
        let prefix = if jsonl { "RJ" } else { "RC" };
        let dir = tempfile::tempdir().unwrap();
        let rows = crate::delivery::corpus(prefix, 100, 20);
        let name = if jsonl { "w.jsonl" } else { "w.csv" };
        let input = dir.path().join(name);
        let bytes = |rows: &[util::Row]| as_file(jsonl, rows);
        std::fs::write(&input, bytes(&rows)).unwrap();
        // Same length, other text: what an export still being written, or
        // rewritten in place under the run, looks like.
        let changed = other_text(&rows);
        let emu = start(Config {
            latency: Duration::from_millis(30),
            ..Config::default()
        });
        // 2,000 rows, 4 at a time, 30 ms each: 15 s at least, so the file
        // changes (once 40 are stored) long before the run could end.
        let mut child = spawn(&emu.url(), dir.path(), &[&input], &["--concurrency", "4"]);
        assert!(wait_for(Duration::from_secs(60), || emu.stats().stored >= 40));
        std::fs::write(&input, bytes(&changed)).unwrap();
        let out = wait_child(&mut child, Duration::from_secs(120));
        assert_eq!(code(&out), 3, "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("changed while importing") && err.contains(name),
            "{err}"
        );
        let stored = emu.messages();
        assert!(
            stored.iter().all(|m| !m.text.contains("HOLA")),
            "new text was sent"
        );
        let r = report(dir.path());
        one_per_row(&r, rows.len());
        assert!(count(&r, Status::NotAttempted) > 0, "{:?}", statuses(&r));
        assert_eq!(count(&r, Status::Created), stored.len());
        // The old file again: a rerun sends exactly the rest (all 100
        // conversations at once: about a second).
        std::fs::write(&input, bytes(&rows)).unwrap();
        let out =
            crate::delivery::run(&emu.url(), dir.path(), &[&input], &["--concurrency", "100"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let stats = emu.stats();
        assert_eq!(stats.stored as usize, rows.len());
        assert_sent_soundly(&stats);
    }
}

/// Item 11: a damaged ledger is refused, saying what a new one forgets.
#[test]
fn item_11_a_damaged_ledger_is_refused_with_a_hint() {
    let (dir, _, input) = written("CR", 2, 2, "c.csv");
    std::fs::write(dir.path().join("state.db"), vec![0x42u8; 16384]).unwrap();
    let emu = start(Config::default());
    let out = run(&emu.url(), dir.path(), &[&input], &[]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("damaged") && err.contains("hint:"), "{err}");
    assert_eq!(emu.stats().requests_total, 0);
}

/// A panic anywhere prints one line and exits 3 once sending started, 2
/// before: never Rust's 101.
#[test]
fn a_panic_is_one_line_and_the_exit_code_says_what_was_sent() {
    let (dir, _, input) = written("PN", 10, 10, "p.csv");
    for (after, want) in [("0", 2), ("25", 3)] {
        let emu = start(Config::default());
        let out = importer(&emu.url(), dir.path(), &[&input], &[])
            .env("TRANSCRIPT_IMPORT_PANIC_AFTER", after)
            .output()
            .unwrap();
        assert_eq!(code(&out), want, "{}", stderr(&out));
        let err = stderr(&out);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(lines[0].starts_with("error: internal failure"), "{err}");
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "{err}"
        );
        if want == 3 {
            assert!(err.contains("state.db") && err.contains("resume"), "{err}");
        }
    }
}
