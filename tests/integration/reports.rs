//! What a run tells people and scripts besides the report: progress lines
//! in a log, the summary JSON, the HTML report (rendered by a real
//! browser), `report` from a ledger a SIGKILLed run left, the rejects file
//! fed back, the CSV report against spreadsheet formulas, the message text
//! only when asked, and no secret in anything written. The real binary,
//! against the emulator on loopback (or, where the emulator cannot answer
//! what a test needs, a few lines of HTTP on loopback).

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use transcript_import::emulator::Config;

use crate::delivery::{code, importer, run, start, stderr, wait_for, written};
use crate::util;

fn bin() -> Command {
    let mut cmd = Command::new(util::bin());
    cmd.env_remove("ASAPP_API_ID")
        .env_remove("ASAPP_API_SECRET")
        .stdin(std::process::Stdio::null());
    cmd
}

fn sample(name: &str) -> String {
    format!("{}/samples/{name}", env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------- progress

/// Without a terminal, one plain line every `--progress-every` seconds:
/// UTC time of day, messages and conversations done of the plan's, the
/// rate, failures, an estimate of the end. `--quiet`: none.
#[test]
fn progress_lines_in_a_log() {
    let (dir, _, input) = written("PG", 20, 10, "p.csv");
    // 200 messages, 25 ms each, 2 at a time: about 2.5 s.
    let emu = start(Config {
        latency: Duration::from_millis(25),
        ..Config::default()
    });
    let mut cmd = importer(&emu.url(), dir.path(), &[&input], &["--concurrency", "2"]);
    // `importer` is quiet; this one is not.
    let args: Vec<_> = cmd
        .get_args()
        .filter(|a| *a != "--quiet")
        .map(|a| a.to_owned())
        .collect();
    let out = Command::new(cmd.get_program())
        .args(&args)
        .args(["--progress-every", "1"])
        .env("ASAPP_API_ID", "x")
        .env("ASAPP_API_SECRET", "y")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    let progress: Vec<&str> = err.lines().filter(|l| l.contains("progress:")).collect();
    assert!(!progress.is_empty(), "no progress line in:\n{err}");
    for l in &progress {
        assert!(progress_line(l), "not a progress line: {l:?}\n{err}");
    }
    // The summary follows the progress lines.
    assert!(err.contains("done in "), "{err}");

    let (dir, _, input) = written("PQ", 20, 10, "q.csv");
    cmd = importer(&emu.url(), dir.path(), &[&input], &["--concurrency", "2"]);
    let out = cmd.args(["--progress-every", "1"]).output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!stderr(&out).contains("progress:"), "{}", stderr(&out));
}

/// `12:03:04Z progress: 120/200 messages (60%), 11/20 conversations,
/// 85 msg/s, 0 failed, eta 1s`
fn progress_line(l: &str) -> bool {
    let number = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let rate = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.');
    let Some((clock, rest)) = l.split_once("Z progress: ") else {
        return false;
    };
    let clock: Vec<&str> = clock.split(':').collect();
    if clock.len() != 3 || !clock.iter().all(|p| p.len() == 2 && number(p)) {
        return false;
    }
    let parts: Vec<&str> = rest.split(", ").collect();
    let [messages, conversations, per_second, failed, eta] = parts[..] else {
        return false;
    };
    let fraction = |s: &str, total: &str| {
        s.split_once('/')
            .is_some_and(|(a, b)| number(a) && b == total)
    };
    let Some((done, share)) = messages.split_once(" messages (") else {
        return false;
    };
    let eta = eta.strip_prefix("eta ").unwrap_or("?");
    fraction(done, "200")
        && share.strip_suffix("%)").is_some_and(number)
        && conversations
            .strip_suffix(" conversations")
            .is_some_and(|c| fraction(c, "20"))
        && per_second.strip_suffix(" msg/s").is_some_and(rate)
        && failed.strip_suffix(" failed").is_some_and(number)
        && (["now", "unknown"].contains(&eta)
            || eta
                .strip_suffix('s')
                .is_some_and(|e| e.split('m').all(number) && e.split('m').count() <= 2))
}

// ---------------------------------------------------------------- summary JSON and HTML

/// The samples, with one conversation the API does not know (404): the
/// summary JSON has every documented key, and the HTML report, rendered
/// by headless Chromium, shows the status counts and a reason with its
/// rows.
#[test]
fn summary_json_and_html_report() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let emu = start(Config {
        unknown: vec!["01HR7SHQ50EYM94ZJ6SWNZ4ZYQ".into()],
        ..Config::default()
    });
    let out = run(
        &emu.url(),
        d,
        &[Path::new(&sample("transcripts.csv"))],
        &[
            "--summary-json",
            d.join("summary.json").to_str().unwrap(),
            "--html",
            d.join("report.html").to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let rows = util::report(&d.join("report.csv"));
    let failed = rows.iter().filter(|r| r.status == "failed").count();
    let skipped = rows.iter().filter(|r| r.status == "skipped").count();
    assert!(failed >= 1, "{rows:?}");

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("summary.json")).unwrap()).unwrap();
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut documented = [
        "schema_version",
        "command",
        "version",
        "started_at",
        "finished_at",
        "duration_seconds",
        "sending_seconds",
        "exit_code",
        "stopped",
        "rows",
        "reasons",
        "conversations",
        "messages_per_second",
        "latency_ms",
        "requests",
        "outputs",
    ];
    documented.sort_unstable();
    assert_eq!(keys, documented);
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["exit_code"], 1);
    assert_eq!(json["rows"]["total"], 158);
    assert_eq!(json["rows"]["invalid"], 5);
    assert_eq!(json["rows"]["failed"], failed);
    assert_eq!(json["rows"]["skipped"], skipped);
    assert_eq!(json["conversations"]["total"], 22);
    let reasons = json["reasons"].as_array().unwrap();
    let http_404 = reasons
        .iter()
        .find(|r| r["http_status"] == 404)
        .unwrap_or_else(|| panic!("{json:#}"));
    assert_eq!(http_404["status"], "failed");
    assert!(http_404["rows"][0]
        .as_str()
        .unwrap()
        .contains("transcripts.csv:"));
    let empty_text = reasons
        .iter()
        .find(|r| r["reason"] == "text: empty")
        .unwrap_or_else(|| panic!("{json:#}"));
    assert_eq!(empty_text["count"], 1);
    assert!(empty_text["rows"][0]
        .as_str()
        .unwrap()
        .ends_with("transcripts.csv:18"));
    for key in ["p50", "p95", "p99", "max", "mean"] {
        assert!(json["latency_ms"][key].as_f64().unwrap() > 0.0, "{json:#}");
    }
    let made = json["requests"]["made"].as_u64().unwrap();
    assert_eq!(made, emu.stats().requests_total, "{json:#}");
    assert_eq!(json["requests"]["retries"], 0);
    assert_eq!(json["requests"]["http_429"], 0);
    assert_eq!(
        json["outputs"],
        serde_json::json!([
            {"kind": "report", "path": d.join("report.csv").to_str().unwrap(), "written": true, "rows": 158},
            {"kind": "html", "path": d.join("report.html").to_str().unwrap(), "written": true, "rows": null},
        ]),
        "{json:#}"
    );

    let Some(dom) = rendered(&d.join("report.html")) else {
        return;
    };
    let created = 158 - 5 - failed - skipped;
    for want in [
        format!("id=\"count-created\">{created}<"),
        "id=\"count-invalid\">5<".to_string(),
        format!("id=\"count-failed\">{failed}<"),
        "text: empty".to_string(),
        "transcripts.csv:18".to_string(),
        "conversation not found".to_string(),
        "01HR7SHQ50EYM94ZJ6SWNZ4ZYQ".to_string(),
    ] {
        assert!(dom.contains(&want), "{want} not in the rendered page");
    }
}

/// The DOM headless Chromium renders from `page`, or `None` (said loudly)
/// when there is no Chromium here; in CI (`CI=true`) that is a failure.
fn rendered(page: &Path) -> Option<String> {
    let chromium = util::tool(
        &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
        "chromium",
        "the HTML report is not rendered",
    )?;
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let dom = String::from_utf8(out.stdout).unwrap();
    assert!(dom.contains("<section"), "nothing rendered: {dom}");
    Some(dom)
}

// ---------------------------------------------------------------- report from a ledger

/// A run SIGKILLed mid-way: `report` renders every row from its ledger,
/// reading the inputs the ledger names, or the inputs given again; every
/// message the emulator stored is `created` (with the id the emulator
/// gave) or `uncertain`, and nothing it did not store is `created`.
#[test]
fn report_from_the_ledger_of_a_sigkilled_run() {
    let (dir, rows, input) = written("RK", 100, 5, "k.csv");
    let d = dir.path();
    let emu = start(Config {
        latency: Duration::from_millis(10),
        ..Config::default()
    });
    let mut child = importer(&emu.url(), d, &[&input], &["--concurrency", "4"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(30), || emu.stats().stored >= 100));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !d.join("report.csv").exists(),
        "the killed run wrote no report"
    );
    let stored: HashSet<String> = emu.messages().into_iter().map(|m| m.id).collect();
    assert!(stored.len() < rows.len(), "killed too late");

    let out = bin()
        .current_dir(d)
        .args(["report", "--state", "state.db", "--out", "again.csv"])
        .args(["--out", "again.html", "--summary-json", "again.json"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let again = util::report(&d.join("again.csv"));
    assert_eq!(again.len(), rows.len(), "one line per row");
    let mut created_or_uncertain = 0;
    for r in &again {
        match r.status.as_str() {
            "created" => {
                assert!(stored.contains(&r.message_id), "{r:?}");
                created_or_uncertain += 1;
            }
            "uncertain" => created_or_uncertain += 1,
            "not_attempted" | "skipped" => {}
            other => panic!("{other}: {r:?}"),
        }
    }
    assert!(created_or_uncertain >= stored.len());
    let html = std::fs::read_to_string(d.join("again.html")).unwrap();
    assert!(
        html.contains("never finished"),
        "the page says the run was killed"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("again.json")).unwrap()).unwrap();
    assert_eq!(json["command"], "report");
    assert_eq!(json["rows"]["total"], rows.len());
    assert_eq!(
        json["outputs"],
        serde_json::json!([
            {"kind": "report", "path": "again.csv", "written": true, "rows": rows.len()},
            {"kind": "html", "path": "again.html", "written": true, "rows": null},
        ])
    );

    // The inputs given again: the same rows.
    let out = bin()
        .current_dir(d)
        .args(["report", "--state", "state.db", "--out", "given.csv"])
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(
        std::fs::read(d.join("given.csv")).unwrap(),
        std::fs::read(d.join("again.csv")).unwrap()
    );

    // A run to the end, then the report from its ledger is the run's own
    // (but for what the ledger does not keep: HTTP status, request id).
    let out = run(&emu.url(), d, &[&input], &[]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let out = bin()
        .current_dir(d)
        .args([
            "report",
            "--state",
            "state.db",
            "--out",
            "after.csv",
            "--quiet",
        ])
        .output()
        .unwrap();
    let after = util::report(&d.join("after.csv"));
    let own = util::report(&d.join("report.csv"));
    assert_eq!(after.len(), own.len());
    for (a, b) in after.iter().zip(&own) {
        assert_eq!(
            (&a.status, &a.message_id, a.record),
            (&b.status, &b.message_id, b.record),
            "{}",
            stderr(&out)
        );
    }
}

// ---------------------------------------------------------------- rejects

/// The rows that did not make it, byte for byte, with status and reason;
/// fixed and fed back with the same ledger, exactly the fixed rows go.
#[test]
fn rejects_fixed_and_fed_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = "conversation_id,timestamp,sender_role,sender_id,text\r\n\
        CONVA,2024-01-01T00:00:00Z,customer,c1,hello\r\n\
        CONVB,2024-01-01T00:00:00Z,customer,c2,\r\n\
        CONVA,2024-01-01T00:00:01Z,agent,a1,\"hi, there\"\r\n\
        CONVC,2024-01-01T00:00:00Z,customer,c3,\"first\r\nline two\"\r\n\
        CONVC,2024-01-01T00:00:01Z,agent,a3,second\r\n\
        CONVD,2024-01-01T00:00:00Z,robot,d1,\"=1+1, said \"\"the robot\"\"\"\r\n";
    std::fs::write(d.join("in.csv"), input).unwrap();
    let emu = start(Config {
        unknown: vec!["CONVC".into()],
        ..Config::default()
    });
    let rejects = d.join("rejects.csv");
    let out = run(
        &emu.url(),
        d,
        &[&d.join("in.csv")],
        &["--rejects", rejects.to_str().unwrap()],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(emu.stats().stored, 2);
    let got = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(
        got,
        "conversation_id,timestamp,sender_role,sender_id,text,status,reason\r\n\
         CONVB,2024-01-01T00:00:00Z,customer,c2,,invalid,text: empty\r\n\
         CONVC,2024-01-01T00:00:00Z,customer,c3,\"first\r\nline two\",failed,conversation not found\r\n\
         CONVC,2024-01-01T00:00:01Z,agent,a3,second,skipped,not sent: an earlier message of this conversation (record 4) is failed\r\n\
         CONVD,2024-01-01T00:00:00Z,robot,d1,\"=1+1, said \"\"the robot\"\"\",invalid,\"sender_role: unknown role (expected agent, customer or system; see --role-map): \"\"robot\"\"\"\r\n",
        "{}",
        stderr(&out)
    );

    // Fix the two invalid rows; CONVC's stay as they are (still unknown).
    let fixed = got
        .replace("customer,c2,,invalid", "customer,c2,now with text,invalid")
        .replace(",robot,d1,", ",agent,d1,");
    std::fs::write(&rejects, fixed).unwrap();
    let out = run(
        &emu.url(),
        d,
        &[&rejects],
        &["--rejects", d.join("rejects2.csv").to_str().unwrap()],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let second = util::report(&d.join("report.csv"));
    let statuses: Vec<&str> = second.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["created", "failed", "skipped", "created"]);
    let stats = emu.stats();
    assert_eq!(stats.stored, 4);
    assert_eq!(stats.duplicates, 0);
    // Conversations go in parallel: the two new ones in either order.
    let mut texts: Vec<String> = emu.messages().into_iter().map(|m| m.text).collect();
    texts[2..].sort_unstable();
    assert_eq!(
        texts[2..],
        ["=1+1, said \"the robot\"", "now with text"],
        "exactly the fixed rows"
    );
    // Still not in: CONVC's two rows, again.
    let still = std::fs::read_to_string(d.join("rejects2.csv")).unwrap();
    assert_eq!(still.lines().filter(|l| l.contains(",failed,")).count(), 1);
    // The earlier status and reason are replaced, not added to.
    assert!(
        still.starts_with("conversation_id,timestamp,sender_role,sender_id,text,status,reason\r\n")
    );
    assert_eq!(still.matches(",failed,").count(), 1, "{still}");
    assert_eq!(still.matches(",skipped,").count(), 1, "{still}");
}

// ---------------------------------------------------------------- CSV injection

/// A loopback server that answers every message with what a hostile or
/// broken API could: an id that is a formula (conversation `EVIL`), else
/// a 422 whose code, message and request id start like formulas. (The
/// emulator's answers are the API's, none of them a formula.)
fn hostile_api() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let (status, answer) = if head.contains("/conversations/EVIL/") {
                (
                    "200 OK",
                    r#"{"id":"=HYPERLINK(\"http://x\",\"y\")"}"#.to_string(),
                )
            } else {
                (
                    "422 Unprocessable Entity",
                    r#"{"error":{"requestId":"+r1","code":"@SUM(1)","message":"-2+3 is not a message"}}"#
                        .to_string(),
                )
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    url
}

/// Cells that start with `=`, `+`, `-`, `@`, a tab or a carriage return
/// get a `'` in front in the CSV report: a message id and an error from
/// the API, a conversation id from the input.
#[test]
fn csv_report_cells_are_no_formulas() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("in.csv"),
        "conversation_id,timestamp,sender_role,sender_id,text\n\
         EVIL,2024-01-01T00:00:00Z,customer,c1,hello\n\
         PLAIN,2024-01-01T00:00:00Z,customer,c1,hello\n\
         =SUM(A1),2024-01-01T00:00:00Z,customer,c1,hello\n\
         -17,2024-01-01T00:00:00Z,customer,c1,hello\n\
         @x,2024-01-01T00:00:00Z,customer,c1,hello\n",
    )
    .unwrap();
    let url = hostile_api();
    let out = run(&url, d, &[&d.join("in.csv")], &[]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let rows = util::report(&d.join("report.csv"));
    assert_eq!(rows[0].message_id, "'=HYPERLINK(\"http://x\",\"y\")");
    assert_eq!(rows[1].status, "failed");
    assert_eq!(rows[1].error_message, "'-2+3 is not a message");
    assert_eq!(rows[1].error_code, "'@SUM(1)");
    assert_eq!(rows[1].request_id, "'+r1");
    assert_eq!(rows[2].conversation_id, "'=SUM(A1)");
    assert_eq!(rows[3].conversation_id, "'-17");
    assert_eq!(rows[4].conversation_id, "'@x");
    for r in &rows {
        for cell in [
            &r.source,
            &r.conversation_id,
            &r.api_conversation_id,
            &r.message_id,
            &r.error_code,
            &r.error_message,
            &r.request_id,
        ] {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?} in {r:?}"
            );
        }
    }
}

// ---------------------------------------------------------------- text

/// The report holds no message text, unless `--report-text` asks for it:
/// then a last column `text`, read back from the input.
#[test]
fn message_text_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let emu = start(Config::default());
    let csv = sample("transcripts.csv");
    let mut reader = csv::Reader::from_path(&csv).unwrap();
    let texts: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[4].to_string())
        .collect();
    let out = run(&emu.url(), d, &[Path::new(&csv)], &[]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let plain = std::fs::read_to_string(d.join("report.csv")).unwrap();
    for t in texts.iter().filter(|t| t.len() > 12) {
        assert!(!plain.contains(t.as_str()), "{t:?} in the report");
    }

    for (name, jsonl) in [("text.csv", false), ("text.jsonl", true)] {
        let out = bin()
            .args(["run", "--emulator", "--quiet", "--report-text"])
            .arg("--state")
            .arg(d.join(format!("{name}.db")))
            .arg("--report")
            .arg(d.join(name))
            .arg(&csv)
            .output()
            .unwrap();
        assert_eq!(code(&out), 1, "{}", stderr(&out));
        let got: Vec<String> = if jsonl {
            std::fs::read_to_string(d.join(name))
                .unwrap()
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v["text"].as_str().unwrap().to_string()
                })
                .collect()
        } else {
            let mut r = csv::Reader::from_path(d.join(name)).unwrap();
            let headers = r.headers().unwrap().clone();
            assert_eq!(headers.len(), 14);
            assert_eq!(&headers[13], "text");
            assert_eq!(&headers[12], "attempts");
            r.records().map(|r| r.unwrap()[13].to_string()).collect()
        };
        assert_eq!(got, texts, "{name}");
    }
}

// ---------------------------------------------------------------- secrets

/// A known secret, through a run that succeeds, one with wrong
/// credentials, one that panics, and the reports of each: it is in no
/// byte written (stdout, stderr, report, HTML, summary JSON, rejects,
/// the ledger and its side files).
#[test]
fn no_secret_in_anything_written() {
    const ID: &str = "id-4e7a1c";
    const SECRET: &str = "S3cret-9d2f7b01-knownvalue";
    const WRONG: &str = "Wr0ng-5b8e44c2-knownvalue";
    let (dir, _, input) = written("SC", 6, 4, "s.csv");
    let d = dir.path();
    std::fs::write(
        d.join("creds.env"),
        format!("ASAPP_API_ID={ID}\nASAPP_API_SECRET={WRONG}\n"),
    )
    .unwrap();
    let emu = start(Config {
        credentials: Some((ID.into(), SECRET.into())),
        ..Config::default()
    });
    let mut written: Vec<(String, Vec<u8>)> = Vec::new();
    let outputs = |tag: &str| -> Vec<String> {
        vec![
            "--report".into(),
            d.join(format!("{tag}.csv")).display().to_string(),
            "--html".into(),
            d.join(format!("{tag}.html")).display().to_string(),
            "--summary-json".into(),
            d.join(format!("{tag}.json")).display().to_string(),
            "--rejects".into(),
            d.join(format!("{tag}.rejects.csv")).display().to_string(),
            "--progress-every".into(),
            "1".into(),
        ]
    };
    let mut go = |tag: &str, creds: &[(&str, &str)], extra: &[&str], env: &[(&str, &str)]| {
        let mut cmd = bin();
        cmd.args(["run", "--api-url", &emu.url(), "--state"])
            .arg(d.join("state.db"))
            .args(outputs(tag))
            .args(extra)
            .arg(&input);
        for (k, v) in creds.iter().chain(env) {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        written.push((format!("{tag} stdout"), out.stdout.clone()));
        written.push((format!("{tag} stderr"), out.stderr.clone()));
        code(&out)
    };
    let good = [("ASAPP_API_ID", ID), ("ASAPP_API_SECRET", SECRET)];
    // Refused (401): exit 3; from the file.
    let file = d.join("creds.env");
    assert_eq!(
        go(
            "wrong",
            &[],
            &["--credentials-file", file.to_str().unwrap()],
            &[]
        ),
        3
    );
    // A panic once sending started: exit 3.
    assert_eq!(
        go(
            "panic",
            &good,
            &[],
            &[("TRANSCRIPT_IMPORT_PANIC_AFTER", "5")]
        ),
        3
    );
    // Then the rest. Each conversation whose message was in flight at the
    // panic is `uncertain` from there on, and that is often every one of
    // them: the messages it left uncertain are sent again,
    // as asked, so that this run makes requests whatever the timing.
    assert!(matches!(
        go("good", &good, &["--resend-uncertain"], &[]),
        0 | 1
    ));
    assert!(emu.stats().stored > 5, "{:?}", emu.stats());
    let out = bin()
        .args(["report", "--state"])
        .arg(d.join("state.db"))
        .arg("--out")
        .arg(d.join("again.html"))
        .arg("--summary-json")
        .arg(d.join("again.json"))
        .output()
        .unwrap();
    assert!(matches!(code(&out), 0 | 1), "{}", stderr(&out));
    written.push(("report stdout".into(), out.stdout));
    written.push(("report stderr".into(), out.stderr));
    for entry in std::fs::read_dir(d).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && path != file {
            written.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    let names: Vec<&str> = written.iter().map(|(n, _)| n.as_str()).collect();
    for must in [
        "good.html",
        "good.json",
        "state.db",
        "again.html",
        "wrong.json",
    ] {
        assert!(names.iter().any(|n| n.ends_with(must)), "{must}: {names:?}");
    }
    for (name, bytes) in &written {
        for secret in [SECRET, WRONG] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in {name}"
            );
        }
    }
}

/// Outputs named by what scripts pass: a symbolic link keeps being one
/// (its target holds the output; each used to be replaced by a file of its
/// own), and what is not a file is written in place: a FIFO a monitor
/// reads, and standard output, appended to as `>>` says. As root, the old
/// rename would have put a regular file over `/dev/null` or `/dev/stdout`.
#[cfg(unix)]
#[test]
fn outputs_through_links_fifos_and_standard_output() {
    use std::os::unix::fs::{symlink, FileTypeExt};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("runs")).unwrap();
    let links = ["latest.csv", "latest-rejects.csv"];
    for name in links {
        symlink(d.join("runs").join(name), d.join(name)).unwrap();
    }
    let fifo = d.join("monitor.html");
    util::mkfifo(&fifo);
    let monitor = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let emu = start(Config::default());
    let log = d.join("runs.log");
    std::fs::write(&log, "{\"earlier\":true}\n").unwrap();
    let out = Command::new(util::bin())
        .args(["run", "--quiet", "--api-url", &emu.url(), "--state"])
        .arg(d.join("state.db"))
        .arg("--report")
        .arg(d.join("latest.csv"))
        .arg("--rejects")
        .arg(d.join("latest-rejects.csv"))
        .arg("--html")
        .arg(&fifo)
        .args(["--summary-json", "/dev/stdout"])
        .arg(sample("transcripts.csv"))
        .env("ASAPP_API_ID", "x")
        .env("ASAPP_API_SECRET", "y")
        .stdout(std::fs::OpenOptions::new().append(true).open(&log).unwrap())
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    for name in links {
        let meta = std::fs::symlink_metadata(d.join(name)).unwrap();
        assert!(meta.file_type().is_symlink(), "{name} is no longer a link");
    }
    assert_eq!(util::report(&d.join("runs/latest.csv")).len(), 158);
    let rejects = std::fs::read_to_string(d.join("runs/latest-rejects.csv")).unwrap();
    assert_eq!(rejects.lines().count(), 1 + 5, "{rejects}");
    let page = String::from_utf8(monitor.join().unwrap()).unwrap();
    assert!(page.contains("</html>"), "{page}");
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    // The log: what was there, then the summary.
    let log = std::fs::read_to_string(&log).unwrap();
    let (earlier, summary) = log.split_once('\n').unwrap();
    assert_eq!(earlier, "{\"earlier\":true}");
    let summary: serde_json::Value = serde_json::from_str(summary).unwrap();
    assert_eq!(summary["rows"]["created"], 153, "{summary}");
}

/// An output that cannot be written is refused before anything is sent
/// (exit 2, naming the flag and the directory): it used to be found once
/// every message was sent, and the run ended with exit 3.
#[test]
fn an_output_in_a_missing_directory_is_refused_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = d.join("no-such-dir");
    let emu = start(Config::default());
    for (flag, name) in [
        ("--html", "page.html"),
        ("--summary-json", "summary.json"),
        ("--rejects", "rejects.csv"),
    ] {
        let out = run(
            &emu.url(),
            d,
            &[Path::new(&sample("transcripts.csv"))],
            &[flag, missing.join(name).to_str().unwrap()],
        );
        assert_eq!(code(&out), 2, "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{flag} ")) && err.contains("cannot write in"),
            "{err}"
        );
        assert_eq!(emu.stats().stored, 0, "{flag}: sent before refusing");
    }
}

/// An output that cannot be written once everything was sent (its
/// directory gone during the run) stops the run with exit 3; the summary
/// JSON still says what was sent. It used to be written over with an
/// empty one: no row, no request, for a run that had created every
/// message.
#[test]
fn the_summary_json_of_a_run_that_fails_after_sending_says_what_was_sent() {
    let (dir, rows, input) = written("SF", 40, 20, "in.csv");
    let d = dir.path();
    let gone = d.join("gone");
    std::fs::create_dir(&gone).unwrap();
    let summary = d.join("summary.json");
    let emu = start(Config {
        latency: Duration::from_millis(10),
        ..Config::default()
    });
    // 800 rows, 2 at a time, 10 ms each: 4 s at least, so the directory
    // is gone (once 20 are stored) long before the end, however loaded
    // the machine.
    let mut child = crate::delivery::spawn(
        &emu.url(),
        d,
        &[&input],
        &[
            "--concurrency",
            "2",
            "--html",
            gone.join("page.html").to_str().unwrap(),
            "--summary-json",
            summary.to_str().unwrap(),
        ],
    );
    assert!(wait_for(Duration::from_secs(60), || emu.stats().stored >= 20));
    std::fs::remove_dir(&gone).unwrap();
    let out = crate::delivery::wait_child(&mut child, Duration::from_secs(120));
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("page.html"), "{}", stderr(&out));
    let stored = emu.stats().stored;
    assert_eq!(stored as usize, rows.len());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(json["exit_code"], 3, "{json}");
    assert_eq!(json["stopped"]["reason"], "output", "{json}");
    assert_eq!(json["rows"]["total"], rows.len(), "{json}");
    assert_eq!(json["rows"]["created"], stored, "{json}");
    assert_eq!(json["requests"]["made"], stored, "{json}");
}

/// The report's rows kept beside it on a disk that fills up during the
/// run (here a limit on file sizes): the run stops (exit 3); the summary
/// still counts every row, and no report of the rows that were kept is
/// written to pass for the whole. It used to write one (376 of 5,000
/// rows), announce it, and count 4,204 rows in the summary. An earlier
/// report at the path is left as it was, and the error and the summary
/// JSON say that it is not this run's.
#[test]
fn a_report_whose_rows_could_not_all_be_kept_is_not_written() {
    let (dir, rows, input) = written("FZ", 500, 10, "in.csv");
    let d = dir.path();
    let summary = d.join("summary.json");
    // Yesterday's report, which must not pass for this run's.
    let earlier = "source,record,status\nin.csv,1,created\n";
    std::fs::write(d.join("report.csv"), earlier).unwrap();
    let emu = start(Config::default());
    // A quota too small for any conversation: every row is reported
    // `not_attempted` and nothing is sent, so only the report's rows
    // grow past the limit.
    let mut cmd = importer(
        &emu.url(),
        d,
        &[&input],
        &[
            "--daily-quota",
            "5",
            "--summary-json",
            summary.to_str().unwrap(),
        ],
    );
    util::with_file_size_limit(&mut cmd, 100 << 10);
    let out = cmd.output().unwrap();
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("renders it from the ledger"), "{err}");
    assert!(
        err.contains("left as it was, from before this run"),
        "{err}"
    );
    let report = std::fs::read_to_string(d.join("report.csv")).unwrap();
    assert_eq!(report, earlier, "{err}");
    assert_eq!(emu.stats().requests_total, 0);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(json["exit_code"], 3, "{json}");
    assert_eq!(json["rows"]["total"], rows.len(), "{json}");
    assert_eq!(json["rows"]["not_attempted"], rows.len(), "{json}");
    assert_eq!(json["outputs"][0]["kind"], "report", "{json}");
    assert_eq!(json["outputs"][0]["written"], false, "{json}");
}
