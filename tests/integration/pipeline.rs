//! Integration tests: the whole pipeline. The real binary imports into the
//! real emulator over 127.0.0.1; the report, the emulator's stored messages
//! and its counters say what happened.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use transcript_import::emulator::{Config, Emulator, StoredMessage};

use crate::util::{self, Dir, ReportRow, Row};

const HEADER: &str = "source,record,line,conversation_id,api_conversation_id,timestamp,status,message_id,http_status,error_code,error_message,request_id,attempts";

fn emulator(config: Config) -> Emulator {
    Emulator::start(config).expect("emulator starts")
}

fn instant(ts: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(ts)
        .unwrap_or_else(|e| panic!("{ts}: {e}"))
        .with_timezone(&Utc)
}

/// Every input row has exactly one report row, records 1..=N in order, all
/// from `source`.
fn assert_one_row_each(report: &[ReportRow], rows: usize, source: &str) {
    assert_eq!(report.len(), rows, "one report row per input row");
    for (i, r) in report.iter().enumerate() {
        assert_eq!(r.record, i as u64 + 1, "records 1..=N, each once, in order");
        assert_eq!(r.source, source);
    }
}

/// Every `created` row's id is stored with that row's conversation, sender
/// and text; nothing else is stored; each conversation arrived in timestamp
/// order, exactly the order of its valid rows sorted by time.
fn assert_stored_as_sent(rows: &[Row], report: &[ReportRow], stored: &[StoredMessage]) {
    let by_id: HashMap<&str, &StoredMessage> = stored.iter().map(|m| (m.id.as_str(), m)).collect();
    assert_eq!(by_id.len(), stored.len(), "message ids are unique");
    let mut created = 0;
    for (row, r) in rows.iter().zip(report) {
        if r.status != "created" {
            continue;
        }
        created += 1;
        let m = by_id
            .get(r.message_id.as_str())
            .unwrap_or_else(|| panic!("record {}: id {:?} not stored", r.record, r.message_id));
        assert_eq!(
            m.conversation_id, row.conversation_id,
            "record {}",
            r.record
        );
        assert_eq!(m.text, row.text, "record {}", r.record);
        assert_eq!(m.sender.external_id, row.sender_id, "record {}", r.record);
        assert_eq!(instant(&m.timestamp), instant(&row.timestamp));
        assert_eq!(
            r.timestamp, m.timestamp,
            "the report shows the instant sent"
        );
    }
    assert_eq!(stored.len(), created, "only created rows are stored");

    // Arrival order per conversation against the input's timestamps.
    let mut expected: HashMap<&str, Vec<(DateTime<Utc>, &str)>> = HashMap::new();
    for row in rows.iter().filter(|r| r.invalid.is_none()) {
        expected
            .entry(row.conversation_id.as_str())
            .or_default()
            .push((instant(&row.timestamp), row.text.as_str()));
    }
    let mut arrived: HashMap<&str, Vec<(DateTime<Utc>, &str)>> = HashMap::new();
    for m in stored {
        arrived
            .entry(m.conversation_id.as_str())
            .or_default()
            .push((instant(&m.timestamp), m.text.as_str()));
    }
    assert_eq!(arrived.len(), expected.len(), "every conversation arrived");
    for (id, mut want) in expected {
        want.sort();
        let got = &arrived[id];
        assert!(
            got.windows(2).all(|w| w[0].0 < w[1].0),
            "{id}: stored out of timestamp order"
        );
        assert_eq!(got, &want, "{id}: arrival order is timestamp order");
    }
}

/// 20,000 shuffled rows of 2,000 conversations, 1% invalid, 16 workers:
/// every row reported once with the right status, every created message
/// stored once, in order, one request at a time per conversation; exit 1.
/// Then a clean input exits 0.
#[test]
fn end_to_end_twenty_thousand_rows() {
    const ROWS: usize = 20_000;
    const INVALID: usize = 200;
    let started = Instant::now();
    let dir = Dir::new();
    let rows = util::transcripts(42, 2_000, ROWS, INVALID);
    let input = dir.write("big.csv", util::csv(&rows));
    let emu = emulator(Config::default());

    let ran = util::import(
        &emu.url(),
        &dir,
        "report.csv",
        &["--concurrency", "16", &input],
    );
    assert_eq!(ran.code, 1, "invalid rows make exit 1: {ran:?}");
    let sent = started.elapsed();

    let report = util::report(&dir.path("report.csv"));
    assert_one_row_each(&report, ROWS, &input);
    for (row, r) in rows.iter().zip(&report) {
        match row.invalid {
            Some(why) => {
                assert_eq!(r.status, "invalid", "record {} ({why})", r.record);
                assert!(!r.error_message.is_empty(), "record {}: a reason", r.record);
                assert!(r.message_id.is_empty() && r.attempts == 0);
            }
            None => {
                assert_eq!(r.status, "created", "record {}: {r:?}", r.record);
                assert_eq!(r.http_status, Some(200));
                assert_eq!(r.attempts, 1);
            }
        }
        assert_eq!(
            r.conversation_id, row.conversation_id,
            "record {}",
            r.record
        );
    }
    // Each way of breaking a row is reported with a reason naming its field.
    for (why, field) in util::BREAKS {
        let r = rows
            .iter()
            .zip(&report)
            .find(|(row, _)| row.invalid == Some(why))
            .map(|(_, r)| r)
            .unwrap_or_else(|| panic!("no {why} row"));
        assert!(
            r.error_message.starts_with(field),
            "{why}: {}",
            r.error_message
        );
    }

    let stored = emu.messages();
    assert_eq!(stored.len(), ROWS - INVALID, "no invalid row was sent");
    assert_stored_as_sent(&rows, &report, &stored);
    let stats = emu.stats();
    assert_eq!(stats.order_violations, 0, "{stats:?}");
    assert_eq!(stats.duplicates, 0, "{stats:?}");
    assert!(stats.max_in_flight_per_conversation <= 1, "{stats:?}");
    assert_eq!(stats.requests_total, (ROWS - INVALID) as u64, "{stats:?}");
    assert_eq!(stats.stored, (ROWS - INVALID) as u64);

    // A clean input: exit 0, every row created.
    let clean_dir = Dir::new();
    let clean = util::transcripts(43, 50, 400, 0);
    let input = clean_dir.write("clean.csv", util::csv(&clean));
    let before = emu.stats().stored;
    let ran = util::import(
        &emu.url(),
        &clean_dir,
        "report.csv",
        &["--concurrency", "16", &input],
    );
    assert_eq!(ran.code, 0, "{ran:?}");
    let report = util::report(&clean_dir.path("report.csv"));
    assert_one_row_each(&report, clean.len(), &input);
    assert!(report.iter().all(|r| r.status == "created"));
    assert_eq!(emu.stats().stored, before + clean.len() as u64);
    eprintln!(
        "20,000 rows: sent and checked in {:.1}s (import {:.1}s)",
        started.elapsed().as_secs_f64(),
        sent.as_secs_f64()
    );
}

/// A small clean input of `n` rows in `conversations` conversations.
fn clean_input(dir: &Dir, conversations: usize, n: usize) -> (Vec<Row>, String) {
    let rows = util::transcripts(7, conversations, n, 0);
    let input = dir.write("in.csv", util::csv(&rows));
    (rows, input)
}

#[test]
fn exit_0_when_every_row_is_created_and_1_on_invalid_rows() {
    let emu = emulator(Config::default());
    let dir = Dir::new();
    let (rows, input) = clean_input(&dir, 5, 30);
    let ran = util::import(&emu.url(), &dir, "r.csv", &[&input]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(emu.stats().stored, rows.len() as u64);

    let dir = Dir::new();
    let rows = util::transcripts(8, 5, 30, 3);
    let input = dir.write("in.csv", util::csv(&rows));
    let ran = util::import(&emu.url(), &dir, "r.csv", &[&input]);
    assert_eq!(ran.code, 1, "{ran:?}");
    let s = util::statuses(&util::report(&dir.path("r.csv")));
    assert_eq!((s["created"], s["invalid"]), (27, 3));
}

#[test]
fn exit_2_on_a_bad_flag_sends_nothing() {
    let emu = emulator(Config::default());
    let dir = Dir::new();
    let (_, input) = clean_input(&dir, 2, 4);
    for bad in [
        &["--concurrency", "0"][..],
        &["--no-such-flag"][..],
        &["--conversations", "maybe"][..],
    ] {
        let mut extra = bad.to_vec();
        extra.push(&input);
        let ran = util::import(&emu.url(), &dir, "r.csv", &extra);
        assert_eq!(ran.code, 2, "{bad:?}: {ran:?}");
        assert!(
            ran.stderr.contains(bad[0]),
            "{bad:?}: names the flag: {}",
            ran.stderr
        );
    }
    assert_eq!(emu.stats().requests_total, 0);
}

#[test]
fn exit_2_on_an_unreadable_file_sends_nothing() {
    let emu = emulator(Config::default());
    let dir = Dir::new();
    let (_, good) = clean_input(&dir, 2, 4);
    let missing = dir.path("no-such-file.csv");
    let missing = missing.to_str().unwrap();
    // The good file comes first: still nothing may be sent.
    let ran = util::import(&emu.url(), &dir, "r.csv", &[&good, missing]);
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr.contains(missing),
        "names the file: {}",
        ran.stderr
    );
    assert_eq!(emu.stats().requests_total, 0);
}

#[test]
fn exit_2_on_a_missing_column_names_file_and_column_and_sends_nothing() {
    let emu = emulator(Config::default());
    let dir = Dir::new();
    let (_, good) = clean_input(&dir, 2, 4);
    let bad = dir.write(
        "no-timestamp.csv",
        "conversation_id,sender_role,sender_id,text\n01HABC,agent,a-1,Hello\n",
    );
    let ran = util::import(&emu.url(), &dir, "r.csv", &[&good, &bad]);
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(ran.stderr.contains(&bad), "names the file: {}", ran.stderr);
    assert!(
        ran.stderr.contains("`timestamp`"),
        "names the column: {}",
        ran.stderr
    );
    assert_eq!(emu.stats().requests_total, 0);
}

/// The emulator refuses the credentials: exit 3, at most the requests in
/// flight were made, nothing stored, every row `not_attempted`.
#[test]
fn exit_3_when_credentials_are_refused() {
    let emu = emulator(Config {
        credentials: Some(("id".into(), "secret".into())),
        ..Config::default()
    });
    let dir = Dir::new();
    let (rows, input) = clean_input(&dir, 20, 100);
    let ran = util::import(&emu.url(), &dir, "r.csv", &["--concurrency", "4", &input]);
    assert_eq!(ran.code, 3, "{ran:?}");
    assert!(ran.stderr.contains("credentials"), "{}", ran.stderr);
    let stats = emu.stats();
    assert!(
        stats.requests_total >= 1 && stats.requests_total <= 4,
        "{stats:?}"
    );
    assert_eq!(
        stats.requests_by_status.get("401"),
        Some(&stats.requests_total)
    );
    assert_eq!(stats.stored, 0);
    let report = util::report(&dir.path("r.csv"));
    assert_one_row_each(&report, rows.len(), &input);
    assert!(
        report.iter().all(|r| r.status == "not_attempted"),
        "{:?}",
        util::statuses(&report)
    );
}

/// `--daily-quota 5` on 20 rows: exit 4 after at most 5 requests, the rest
/// `not_attempted`; the same day, the same ledger sends nothing more.
#[test]
fn exit_4_at_the_daily_quota_flag_and_again_the_same_day() {
    let emu = emulator(Config::default());
    let dir = Dir::new();
    let (rows, input) = clean_input(&dir, 4, 20);
    let ran = util::import(&emu.url(), &dir, "r.csv", &["--daily-quota", "5", &input]);
    assert_eq!(ran.code, 4, "{ran:?}");
    let stats = emu.stats();
    assert!(
        stats.requests_total <= 5 && stats.requests_total > 0,
        "{stats:?}"
    );
    let report = util::report(&dir.path("r.csv"));
    assert_one_row_each(&report, rows.len(), &input);
    let s = util::statuses(&report);
    assert_eq!(s.get("created").copied().unwrap_or(0) as u64, stats.stored);
    assert_eq!(
        s.get("not_attempted").copied().unwrap_or(0),
        rows.len() - stats.stored as usize,
        "{s:?}"
    );

    let again = util::import(&emu.url(), &dir, "r2.csv", &["--daily-quota", "5", &input]);
    assert_eq!(again.code, 4, "{again:?}");
    assert_eq!(
        emu.stats().requests_total,
        stats.requests_total,
        "nothing sent"
    );
    let s2 = util::statuses(&util::report(&dir.path("r2.csv")));
    assert_eq!(s2.get("already_imported"), s.get("created"), "{s2:?}");

    // Without the limit, the rest is sent and nothing twice.
    let ran = util::import(&emu.url(), &dir, "r3.csv", &[&input]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let s3 = util::statuses(&util::report(&dir.path("r3.csv")));
    assert_eq!(s3.get("already_imported"), s.get("created"), "{s3:?}");
    let stats = emu.stats();
    assert_eq!(
        (stats.stored, stats.duplicates),
        (rows.len() as u64, 0),
        "{stats:?}"
    );
}

/// The API's quota answers 429 to every call: once the retries are spent
/// the run pauses with exit 4, the rest `not_attempted`, nothing lost.
#[test]
fn exit_4_when_429s_persist() {
    let emu = emulator(Config::quota_at_midday(3));
    let dir = Dir::new();
    let (rows, input) = clean_input(&dir, 4, 20);
    let ran = util::import(
        &emu.url(),
        &dir,
        "r.csv",
        &["--backoff-scale", "0.001", "--concurrency", "2", &input],
    );
    assert_eq!(ran.code, 4, "{ran:?}");
    let stats = emu.stats();
    assert_eq!(stats.stored, 3, "{stats:?}");
    let report = util::report(&dir.path("r.csv"));
    assert_one_row_each(&report, rows.len(), &input);
    let s = util::statuses(&report);
    assert_eq!(s.get("created"), Some(&3), "{s:?}");
    assert_eq!(s.get("not_attempted"), Some(&(rows.len() - 3)), "{s:?}");
    assert_eq!(stats.duplicates, 0);

    // The next day (the quota reset), the same ledger goes on where it stopped.
    emu.reset_quota();
    let ran = util::import(
        &emu.url(),
        &dir,
        "r2.csv",
        &["--backoff-scale", "0.001", "--concurrency", "2", &input],
    );
    assert_eq!(ran.code, 4, "{ran:?}");
    let s = util::statuses(&util::report(&dir.path("r2.csv")));
    assert_eq!(s.get("already_imported"), Some(&3), "{s:?}");
    assert_eq!(s.get("created"), Some(&3), "{s:?}");
    let stats = emu.stats();
    assert_eq!((stats.stored, stats.duplicates), (6, 0), "{stats:?}");
}

/// A conversation whose second message is refused (413) stops there: the
/// first `created`, the second `failed` with its status, the rest
/// `skipped`; a conversation on the unknown list fails at its first message
/// (404); the others are unaffected; exit 1.
#[test]
fn a_refused_message_skips_the_rest_of_its_conversation() {
    let emu = emulator(Config {
        max_body: 2_000,
        unknown: vec!["01JUNKNOWN0000000000000000".into()],
        ..Config::default()
    });
    let dir = Dir::new();
    let mut rows = util::transcripts(9, 6, 40, 0);
    let row = |c: &str, t: &str, text: &str| Row {
        conversation_id: c.into(),
        timestamp: t.into(),
        role: "agent".into(),
        sender_id: "a-1".into(),
        text: text.into(),
        invalid: None,
    };
    let long = "x".repeat(3_000);
    let refused = "01JREFUSED0000000000000000";
    let unknown = "01JUNKNOWN0000000000000000";
    // Input order is not time order: the plan sorts them.
    rows.push(row(refused, "2024-01-01T10:00:03Z", "third"));
    rows.push(row(refused, "2024-01-01T10:00:02Z", &long));
    rows.push(row(refused, "2024-01-01T10:00:01Z", "first"));
    rows.push(row(refused, "2024-01-01T10:00:04Z", "fourth"));
    rows.push(row(unknown, "2024-01-01T10:00:01Z", "hello"));
    rows.push(row(unknown, "2024-01-01T10:00:02Z", "anyone?"));
    let input = dir.write("in.csv", util::csv(&rows));
    let ran = util::import(&emu.url(), &dir, "r.csv", &[&input]);
    assert_eq!(ran.code, 1, "{ran:?}");
    let report = util::report(&dir.path("r.csv"));
    assert_one_row_each(&report, rows.len(), &input);
    let by_text = |c: &str, text: &str| {
        let i = rows
            .iter()
            .position(|r| r.conversation_id == c && r.text == text)
            .unwrap();
        report[i].clone()
    };
    assert_eq!(by_text(refused, "first").status, "created");
    let second = by_text(refused, &long);
    assert_eq!(second.status, "failed");
    assert_eq!(second.http_status, Some(413));
    assert_eq!(second.error_code, "413-01");
    assert!(!second.request_id.is_empty());
    for text in ["third", "fourth"] {
        let r = by_text(refused, text);
        assert_eq!(r.status, "skipped", "{r:?}");
        assert!(
            r.error_message.contains(&second.record.to_string()),
            "{r:?}"
        );
        assert_eq!(r.attempts, 0);
    }
    let hello = by_text(unknown, "hello");
    assert_eq!(
        (hello.status.as_str(), hello.http_status),
        ("failed", Some(404))
    );
    assert_eq!(by_text(unknown, "anyone?").status, "skipped");
    // Everyone else: created, stored, in order.
    for (row, r) in rows.iter().zip(&report) {
        if row.conversation_id != refused && row.conversation_id != unknown {
            assert_eq!(r.status, "created", "{r:?}");
        }
    }
    let stats = emu.stats();
    assert_eq!(stats.stored, 41, "{stats:?}");
    assert_eq!(stats.order_violations, 0);
    assert_eq!(
        stats.requests_total, 43,
        "refused rows were sent once, skipped ones never"
    );
}

/// The JSONL report has the same rows as the CSV one; the CSV header is the
/// contract's; `line` points at the first line of a multi-line record.
#[test]
fn reports_csv_and_jsonl_agree_and_lines_count_physical_lines() {
    let input_text = "conversation_id,timestamp,sender_role,sender_id,text\n\
        01JAAA,2024-01-01T10:00:00Z,customer,c-1,\"Hi, I have\n\"\"two\"\" questions\n\nabout billing\"\n\
        01JAAA,2024-01-01T10:00:05Z,agent,a-1,Sure\n\
        \n\
        01JBBB,2024-01-01T10:00:00Z,bot,b-1,invalid role\n\
        01JBBB,2024-01-01T10:00:01Z,customer,c-2,\"one\r\ntwo\"\n\
        01JAAA,2024-01-01T10:00:09Z,customer,c-1,Thanks\n";
    let mut runs = Vec::new();
    for report in ["r.csv", "r.jsonl"] {
        let emu = emulator(Config::default());
        let dir = Dir::new();
        let input = dir.write("in.csv", input_text);
        let ran = util::import(&emu.url(), &dir, report, &[&input]);
        assert_eq!(ran.code, 1, "{ran:?}");
        let bytes = std::fs::read(dir.path(report)).unwrap();
        if report.ends_with(".csv") {
            let text = String::from_utf8(bytes).unwrap();
            assert_eq!(text.lines().next(), Some(HEADER));
        } else {
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let v: serde_json::Value = serde_json::from_slice(line).unwrap();
                let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
                let mut want: Vec<&str> = HEADER.split(',').collect();
                want.sort();
                let mut keys = keys;
                keys.sort();
                assert_eq!(keys, want);
            }
        }
        let rows = util::report(&dir.path(report));
        // Ids and request ids differ between runs; the rest must not.
        for r in &rows {
            assert_eq!(r.status == "created", !r.message_id.is_empty(), "{r:?}");
        }
        let rows: Vec<ReportRow> = rows
            .into_iter()
            .map(|r| ReportRow {
                source: String::new(),
                message_id: String::new(),
                request_id: String::new(),
                ..r
            })
            .collect();
        runs.push(rows);
    }
    assert_eq!(
        runs[0], runs[1],
        "the JSONL report has the CSV report's rows"
    );
    let lines: Vec<(u64, u64, &str)> = runs[0]
        .iter()
        .map(|r| (r.record, r.line, r.status.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            (1, 2, "created"),
            (2, 6, "created"),
            (3, 8, "invalid"),
            (4, 9, "created"),
            (5, 11, "created"),
        ]
    );
    assert_eq!(runs[0][0].timestamp, "2024-01-01T10:00:00Z");
    assert_eq!(runs[0][0].api_conversation_id, "01JAAA");
}

const SECRET: &str = "s3cr3t-VALUE";
/// A proxy's password, and the `Proxy-Authorization` it makes
/// (base64 of `alice:pr0xy-S3CRET`).
const PROXY_SECRET: &str = "pr0xy-S3CRET";
const PROXY_SECRET_B64: &str = "YWxpY2U6cHIweHktUzNDUkVU";

/// The secrets appear nowhere: not on stdout or stderr, not in any byte of
/// any file the run leaves (report, ledger, journal, spools, temporary
/// files: `TMPDIR` is the run's directory), whether the API accepts the
/// credentials or refuses them, whether the run ends or panics, whether
/// they come from the environment or a file others may read, over HTTPS
/// through a proxy whose URL carries a password.
#[test]
fn the_secret_never_appears() {
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Case {
        Accepted,
        Refused,
        Panic,
        FileAndProxy,
    }
    for case in [
        Case::Accepted,
        Case::Refused,
        Case::Panic,
        Case::FileAndProxy,
    ] {
        let dir = Dir::new();
        let mut config = Config {
            credentials: Some((
                "id".into(),
                if case == Case::Refused {
                    "other"
                } else {
                    SECRET
                }
                .into(),
            )),
            ..Config::default()
        };
        let outside = Dir::new();
        let mut proxy = None;
        if case == Case::FileAndProxy {
            config.tls = Some(transcript_import::emulator::Tls::default());
            proxy = Some(crate::network::ConnectProxy::start(
                crate::network::Behaviour::Relay,
            ));
        }
        let emu = emulator(config);
        let (rows, input) = clean_input(&dir, 3, 12);
        let (url, state, report) = (emu.url(), dir.path("state.db"), dir.path("report.csv"));
        let mut args = vec![
            "run".to_string(),
            "--api-url".into(),
            url,
            "--state".into(),
            state.to_str().unwrap().into(),
            "--report".into(),
            report.to_str().unwrap().into(),
            input,
        ];
        let mut cmd = std::process::Command::new(util::bin());
        cmd.env_remove("ASAPP_API_ID")
            .env_remove("ASAPP_API_SECRET")
            .env("TMPDIR", dir.root());
        for var in crate::network::PROXY_VARS {
            cmd.env_remove(var);
        }
        match case {
            Case::FileAndProxy => {
                // The file and the CA live outside the searched directory.
                let creds = outside.write(
                    "creds.env",
                    format!("ASAPP_API_ID=id\nASAPP_API_SECRET={SECRET}\n"),
                );
                // Readable by the group: used, with a warning (whatever the umask).
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o640))
                        .unwrap();
                }
                let ca = outside.write("ca.pem", emu.ca_pem().unwrap());
                let proxy_url = proxy
                    .as_ref()
                    .unwrap()
                    .url()
                    .replace("http://", &format!("http://alice:{PROXY_SECRET}@"));
                args.extend([
                    "--credentials-file".into(),
                    creds,
                    "--ca-cert".into(),
                    ca,
                    "--proxy".into(),
                    proxy_url,
                ]);
            }
            _ => {
                cmd.env("ASAPP_API_ID", "id")
                    .env("ASAPP_API_SECRET", SECRET);
            }
        }
        if case == Case::Panic {
            cmd.env("TRANSCRIPT_IMPORT_PANIC_AFTER", "5");
        }
        let ran: util::Ran = cmd.args(&args).output().unwrap().into();
        let want = match case {
            Case::Accepted | Case::FileAndProxy => 0,
            Case::Refused | Case::Panic => 3,
        };
        assert_eq!(ran.code, want, "{case:?}: {ran:?}");
        for secret in [SECRET, PROXY_SECRET, PROXY_SECRET_B64] {
            assert!(
                !ran.stdout.contains(secret) && !ran.stderr.contains(secret),
                "{case:?}: {ran:?}"
            );
        }
        if case == Case::FileAndProxy {
            assert!(
                ran.stderr
                    .lines()
                    .any(|l| l.starts_with("warning: --credentials-file ")
                        && l.contains("readable by group (mode 640)")),
                "{case:?}: {ran:?}"
            );
            assert!(
                ran.stderr.contains("proxy: http://***@127.0.0.1:"),
                "{ran:?}"
            );
            assert!(!proxy.unwrap().seen().is_empty(), "the proxy was used");
        }
        assert!(state.exists(), "{case:?}: the ledger exists");
        if case != Case::Panic {
            assert!(report.exists(), "{case:?}: the report exists");
            assert_eq!(util::report(&report).len(), rows.len());
        }
        let mut searched = 0;
        for secret in [SECRET, PROXY_SECRET, PROXY_SECRET_B64] {
            searched = util::files_written_contain_no_secret(dir.root(), secret);
        }
        assert!(searched >= 2, "{case:?}: {searched} files");
    }
}

#[test]
fn check_counts_invalid_rows_by_reason_with_row_numbers() {
    let dir = Dir::new();
    let input = dir.write(
        "in.csv",
        "conversation_id,timestamp,sender_role,sender_id,text\n\
         01JAAA,2024-01-01T10:00:00Z,customer,c-1,Hello\n\
         01JAAA,2024-01-01T10:00:01Z,bot,b-1,Beep\n\
         01JAAA,2024-01-01T10:00:02Z,agent,a-1,\n\
         01jaaa,2024-01-01T10:00:03Z,agent,a-1,lowercase\n\
         01JBBB,2024-01-01T10:00:04Z,robot,r-1,Beep beep\n\
         01JBBB,2024-01-01T10:00:05Z,agent,a-1,\"Hi,\nthere\"\n\
         01JBBB,next tuesday,agent,a-1,when\n",
    );
    let ran = util::run(&["check", &input]);
    assert_eq!(ran.code, 1, "{ran:?}");
    let out = &ran.stdout;
    for line in [
        "rows:          7",
        "valid:         2",
        "invalid:       5",
        "conversations: 2",
    ] {
        assert!(out.lines().any(|l| l == line), "{line:?} in:\n{out}");
    }
    let reason = |start: &str| {
        let i = out
            .lines()
            .position(|l| l.trim_start().starts_with(start) || l.contains(&format!("  {start}")))
            .unwrap_or_else(|| panic!("{start} in:\n{out}"));
        let lines: Vec<&str> = out.lines().collect();
        (lines[i].to_string(), lines[i + 1].to_string())
    };
    let (count, eg) = reason("2  sender_role: unknown role");
    assert!(count.trim_start().starts_with('2'), "{count}");
    assert!(
        eg.contains(&format!("{input}:2 (line 3)")) && eg.contains(&format!("{input}:5 (line 6)")),
        "{eg}"
    );
    let (_, eg) = reason("1  text: empty");
    assert!(eg.contains(&format!("{input}:3 (line 4)")), "{eg}");
    let (_, eg) = reason("1  conversation_id");
    assert!(eg.contains(&format!("{input}:4 (line 5)")), "{eg}");
    let (_, eg) = reason("1  timestamp");
    assert!(
        eg.contains(&format!("{input}:7 (line 9)")),
        "after a 2-line record: {eg}"
    );

    let clean = dir.write("clean.jsonl", util::jsonl(&util::transcripts(3, 4, 20, 0)));
    let ran = util::run(&["check", &clean]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(ran.stdout.contains("invalid:       0"), "{}", ran.stdout);
    assert!(ran.stdout.contains("valid:         20"), "{}", ran.stdout);

    let bad = dir.write(
        "no-text.csv",
        "conversation_id,timestamp,sender_role,sender_id\n",
    );
    let ran = util::run(&["check", &bad]);
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr.contains(&bad) && ran.stderr.contains("`text`"),
        "{}",
        ran.stderr
    );
}

#[test]
fn help_for_each_subcommand_and_every_run_flag_has_text() {
    for sub in ["run", "check", "emulator"] {
        for flag in ["--help", "-h"] {
            let ran = util::run(&[sub, flag]);
            assert_eq!(ran.code, 0, "{sub} {flag}: {ran:?}");
            assert!(
                ran.stdout
                    .contains(&format!("Usage: transcript-import {sub}")),
                "{sub} {flag}:\n{}",
                ran.stdout
            );
            let flags = flags_and_help(&ran.stdout);
            assert!(flags.len() >= 3, "{sub} {flag}: {flags:?}");
            for (name, help) in &flags {
                assert!(
                    !help.trim().is_empty(),
                    "{sub} {flag}: {name} has no help text"
                );
            }
        }
    }
    let ran = util::run(&["run", "--help"]);
    let flags: Vec<String> = flags_and_help(&ran.stdout)
        .into_iter()
        .map(|f| f.0)
        .collect();
    for name in [
        "--api-url",
        "--emulator",
        "--report",
        "--state",
        "--concurrency",
        "--rate",
        "--conversations",
        "--daily-quota",
        "--format",
        "--map",
        "--timezone",
        "--credentials-file",
        "--help",
    ] {
        assert!(
            flags.iter().any(|f| f == name),
            "{name} in run --help: {flags:?}"
        );
    }
    assert!(!flags.iter().any(|f| f == "--backoff-scale"), "hidden");
    let ran = util::run(&["--help"]);
    assert_eq!(ran.code, 0);
    for sub in ["run", "check", "emulator"] {
        assert!(ran.stdout.contains(&format!("  {sub} ")), "{}", ran.stdout);
    }
}

/// The `Options:` of a help text: each flag's long name and its help text
/// (on its line, or on the indented lines under it).
fn flags_and_help(help: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = help.lines().collect();
    let start = lines
        .iter()
        .position(|l| *l == "Options:")
        .expect("an Options: section");
    let mut flags: Vec<(String, String)> = Vec::new();
    for line in &lines[start + 1..] {
        if line.is_empty() || !line.starts_with(' ') {
            continue;
        }
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.starts_with('-') && indent <= 6 {
            // `-q, --quiet  text` or `--state <PATH>  text` or `--state <PATH>`.
            let spec_end = trimmed.find("  ").unwrap_or(trimmed.len());
            let spec = &trimmed[..spec_end];
            let name = spec
                .split([',', ' ', '='])
                .find(|w| w.starts_with("--"))
                .unwrap_or(spec)
                .to_string();
            flags.push((name, trimmed[spec_end..].trim().to_string()));
        } else if let Some(last) = flags.last_mut() {
            last.1.push(' ');
            last.1.push_str(trimmed);
        }
    }
    flags
}
