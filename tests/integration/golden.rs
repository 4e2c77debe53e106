//! Golden tests: what people and scripts read, through the real binary.
//! `--help` of every command, the reports and the end-of-run summary of
//! the samples imported into the built-in emulator, `check` on the
//! samples, and the text of the run-level errors, each an insta snapshot
//! under `snapshots/`.
//!
//! What varies from run to run is redacted first (message and request
//! ids, durations, pids, clock times, ports, temporary paths), so a
//! snapshot changes exactly when what a user sees changes. Commands run in
//! a scratch directory holding a copy of `samples/`, with relative paths,
//! a fixed terminal width and no colours. To accept an intended change:
//! `cargo insta review`, or `INSTA_UPDATE=always cargo test golden` and
//! read the diff.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use transcript_import::emulator::{Config, Emulator};

use crate::delivery::wait_for;
use crate::util::{self, ReportRow};

/// A scratch directory with `samples/transcripts.csv` and
/// `samples/transcripts.jsonl` in it; commands run there.
struct Scratch {
    dir: util::Dir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = util::Dir::new();
        std::fs::create_dir(dir.path("samples")).unwrap();
        for name in ["transcripts.csv", "transcripts.jsonl"] {
            let from = format!("{}/samples/{name}", env!("CARGO_MANIFEST_DIR"));
            std::fs::copy(&from, dir.path("samples").join(name)).unwrap();
        }
        Scratch { dir }
    }

    /// The binary with `args`, in the scratch directory, with nothing of
    /// the caller's environment that could change its output.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(util::bin());
        cmd.current_dir(self.dir.root())
            .args(args)
            .env_remove("ASAPP_API_ID")
            .env_remove("ASAPP_API_SECRET")
            .env_remove("HOSTNAME")
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("CLICOLOR_FORCE")
            .env("NO_COLOR", "1")
            .env("COLUMNS", "100")
            .env("LINES", "50")
            .stdin(Stdio::null());
        cmd
    }

    fn output(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run the binary")
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path(name)).unwrap()
    }

    /// As [`Scratch::settings`], with the command in the snapshot's
    /// header, for snapshots whose body does not show it.
    fn described(&self, args: &[&str]) -> insta::Settings {
        let mut s = self.settings();
        s.set_description(format!("transcript-import {}", args.join(" ")));
        s
    }

    /// Redactions for everything that varies between runs.
    fn settings(&self) -> insta::Settings {
        let mut s = insta::Settings::clone_current();
        s.set_omit_expression(true);
        s.add_filter(
            &regex_escape(&self.dir.root().display().to_string()),
            "[TMP]",
        );
        s.add_filter(r"done in \d+\.\ds", "done in [DURATION]");
        s.add_filter(
            r"speed: [\d.]+s sending, [\d.]+ messages/s; latency p50 [\d.]+ ms, p95 [\d.]+ ms, p99 [\d.]+ ms",
            "speed: [SPEED]",
        );
        s.add_filter(r"pid \d+", "pid [PID]");
        s.add_filter(
            r"started \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z",
            "started [TIME]",
        );
        s.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]");
        s
    }
}

/// `text` as a regular expression that matches exactly it.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A run as a user sees it: the command, its exit code, stdout, stderr.
fn shown(args: &[&str], out: &Output) -> String {
    let mut text = format!(
        "$ transcript-import {}\nexit: {}\n",
        args.join(" "),
        out.status.code().expect("exited, not killed")
    );
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        if !bytes.is_empty() {
            text.push_str(&format!("--- {name}\n{}", String::from_utf8_lossy(bytes)));
        }
    }
    text
}

/// The report's text with every message id and request id replaced by a
/// placeholder, after checking they are what they should be: one id per
/// created row, all different, 26 characters.
fn redact_ids(text: &str, rows: &[ReportRow]) -> String {
    let mut ids = std::collections::HashSet::new();
    let mut out = text.to_string();
    for r in rows {
        assert_eq!(r.status == "created", !r.message_id.is_empty(), "{r:?}");
        for (id, placeholder) in [
            (&r.message_id, "[message_id]"),
            (&r.request_id, "[request_id]"),
        ] {
            if id.is_empty() {
                continue;
            }
            assert_eq!(id.len(), 26, "{r:?}");
            assert!(ids.insert(id.clone()), "an id twice: {r:?}");
            out = out.replace(id.as_str(), placeholder);
        }
    }
    out
}

// ---------------------------------------------------------------- help

#[test]
fn help_of_every_command() {
    let s = Scratch::new();
    for (name, args) in [
        ("help", &["--help"][..]),
        ("help_run", &["run", "--help"][..]),
        ("help_check", &["check", "--help"][..]),
        ("help_emulator", &["emulator", "--help"][..]),
        ("help_report", &["report", "--help"][..]),
    ] {
        let out = s.output(args);
        assert_eq!(out.status.code(), Some(0), "{}", shown(args, &out));
        assert!(out.stderr.is_empty(), "{}", shown(args, &out));
        let help = String::from_utf8(out.stdout).unwrap();
        s.described(args)
            .bind(|| insta::assert_snapshot!(name, help));
    }
}

// ---------------------------------------------------------------- samples

/// Each sample imported into the built-in emulator, once with a CSV
/// report and once with a JSONL one: the reports, and the summary a user
/// reads on stderr.
#[test]
fn sample_reports_and_summary() {
    for (sample, name) in [
        ("samples/transcripts.csv", "csv"),
        ("samples/transcripts.jsonl", "jsonl"),
    ] {
        let s = Scratch::new();
        // Not --quiet: the plan line and the summary are what is shown.
        // No progress line can come within the hour.
        let args = [
            "run",
            "--emulator",
            "--state",
            "state.db",
            "--report",
            "report.csv",
            "--progress-every",
            "3600",
            sample,
        ];
        let out = s.output(&args);
        assert_eq!(out.status.code(), Some(1), "{}", shown(&args, &out));
        s.settings()
            .bind(|| insta::assert_snapshot!(format!("summary_{name}"), shown(&args, &out)));
        let text = s.read("report.csv");
        let report = redact_ids(&text, &util::report(&s.dir.path("report.csv")));
        s.described(&args)
            .bind(|| insta::assert_snapshot!(format!("report_{name}_csv"), report));

        let args = [
            "run",
            "--emulator",
            "--quiet",
            "--state",
            "state2.db",
            "--report",
            "report.jsonl",
            sample,
        ];
        let out = s.output(&args);
        assert_eq!(out.status.code(), Some(1), "{}", shown(&args, &out));
        let text = s.read("report.jsonl");
        let report = redact_ids(&text, &util::report(&s.dir.path("report.jsonl")));
        s.described(&args)
            .bind(|| insta::assert_snapshot!(format!("report_{name}_jsonl"), report));
    }
}

#[test]
fn check_on_the_samples() {
    let s = Scratch::new();
    for (sample, name) in [
        ("samples/transcripts.csv", "check_csv"),
        ("samples/transcripts.jsonl", "check_jsonl"),
    ] {
        let args = ["check", sample];
        let out = s.output(&args);
        assert_eq!(out.status.code(), Some(1), "{}", shown(&args, &out));
        s.settings()
            .bind(|| insta::assert_snapshot!(name, shown(&args, &out)));
    }
}

// ---------------------------------------------------------------- errors

/// Run-level errors: what the user reads when a run refuses to start
/// (exit 2, nothing sent). No credentials in the environment.
#[test]
fn run_level_errors() {
    let s = Scratch::new();
    s.dir.write(
        "no-timestamp.csv",
        "conversation_id,sender_role,sender_id,text\n01HABC,agent,a-1,Hello\n",
    );
    std::fs::copy(
        s.dir.path("samples/transcripts.csv"),
        s.dir.path("copy.csv"),
    )
    .unwrap();
    s.dir.write(
        "creds.env",
        "# the sandbox\nASAPP_API_ID=id-7f3a\nthe-secret-line\n",
    );
    s.dir.write("only-id.env", "ASAPP_API_ID=id-7f3a\n");
    s.dir.write("damaged.db", vec![0x42u8; 16384]);
    let csv = "samples/transcripts.csv";
    let loopback = "http://127.0.0.1:9";
    let cases: [(&str, Vec<&str>); 16] = [
        (
            "error_missing_input_file",
            vec!["run", "--emulator", "no-such-file.csv"],
        ),
        (
            "error_missing_column",
            vec!["run", "--emulator", "no-timestamp.csv"],
        ),
        (
            "error_bad_rate",
            vec!["run", "--emulator", "--rate", "-1", csv],
        ),
        (
            "error_bad_concurrency",
            vec!["run", "--emulator", "--concurrency", "0", csv],
        ),
        (
            "error_bad_timezone",
            vec!["run", "--emulator", "--timezone", "Mars/Olympus", csv],
        ),
        (
            "error_bad_shard",
            vec!["run", "--emulator", "--shard", "4/3", csv],
        ),
        (
            "error_bad_batch",
            vec!["run", "--emulator", "--batch", "1", csv],
        ),
        (
            "error_emulator_and_api_url",
            vec!["run", "--emulator", "--api-url", loopback, csv],
        ),
        (
            "error_report_is_the_input",
            vec!["run", "--emulator", "--report", csv, csv],
        ),
        (
            "error_report_extension",
            vec!["run", "--emulator", "--report", "report.txt", csv],
        ),
        (
            "error_input_named_twice",
            vec!["run", "--emulator", csv, csv],
        ),
        (
            "error_input_copied",
            vec!["run", "--emulator", csv, "copy.csv"],
        ),
        (
            "error_no_credentials",
            vec!["run", "--api-url", loopback, csv],
        ),
        (
            "error_credentials_file_bad_line",
            vec![
                "run",
                "--api-url",
                loopback,
                "--credentials-file",
                "creds.env",
                csv,
            ],
        ),
        (
            "error_credentials_file_missing_key",
            vec![
                "run",
                "--api-url",
                loopback,
                "--credentials-file",
                "only-id.env",
                csv,
            ],
        ),
        (
            "error_damaged_ledger",
            vec!["run", "--emulator", "--state", "damaged.db", csv],
        ),
    ];
    for (name, args) in cases {
        let out = s.output(&args);
        let text = shown(&args, &out);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(!text.contains("the-secret-line"), "{text}");
        s.settings().bind(|| insta::assert_snapshot!(name, text));
    }
}

/// A second run on a ledger that a running import holds. The first run
/// waits ten minutes for its first answer, so it surely holds the ledger
/// while the second one starts, however slow the machine is.
#[test]
fn error_ledger_held_by_another_run() {
    let s = Scratch::new();
    let emu = Emulator::start(Config {
        latency: Duration::from_secs(600),
        ..Config::default()
    })
    .unwrap();
    let url = emu.url();
    let csv = "samples/transcripts.csv";
    let mut first = s
        .cmd(&["run", "--api-url", &url, "--timeout", "3600", "--quiet"])
        .args(["--state", "state.db", csv])
        .env("ASAPP_API_ID", "x")
        .env("ASAPP_API_SECRET", "y")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The lock is taken before anything is sent.
    let sending = wait_for(Duration::from_secs(300), || emu.stats().requests_total > 0);
    let args = ["run", "--api-url", &url, "--state", "state.db", csv];
    let out = s
        .cmd(&args)
        .env("ASAPP_API_ID", "x")
        .env("ASAPP_API_SECRET", "y")
        .output()
        .unwrap();
    let still_running = first.try_wait().unwrap().is_none();
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(
        sending && still_running,
        "the first run did not hold the ledger"
    );
    let text = shown(&args, &out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains(&format!("pid {}", first.id())), "{text}");
    s.settings()
        .bind(|| insta::assert_snapshot!("error_ledger_held", text));
}
