//! Integration tests: every flag of `run` (and `check`'s own) taken end
//! to end through the real binary, each shown to take effect.
//!
//! Where each flag is tested:
//!
//! | flag | test |
//! | --- | --- |
//! | `--emulator` | `emulator_needs_no_credentials_and_reports_every_row` (here); golden `sample_reports_and_summary` |
//! | `--shard K/N`, `index/N` | `three_shards_import_everything_once` (here) |
//! | `-` (stdin) | `stdin_csv_and_jsonl` (here) |
//! | `--credentials-file` | `credentials_file_*` (here); golden `run_level_errors` |
//! | 409 → `exists` | `a_409_is_exists_and_nothing_is_stored_twice` (here) |
//! | `--timeout` | `timeout_leaves_the_row_uncertain` (here); range: regression `item_10_flags_pairs_and_a_closed_stdout` |
//! | `--format` | `format_overrides_the_extension` (here) |
//! | `--delimiter` | `delimiter_overrides_detection` (here) |
//! | `--map` | `map_names_the_columns` (here) |
//! | `--role-map` | `role_map_maps_role_names` (here) |
//! | `--timezone` | `timezone_places_zoneless_times` (here); golden `run_level_errors` |
//! | `--quiet` | `quiet_keeps_only_the_summary` (here) |
//! | `check --latency-ms` | `check_latency_changes_the_estimate` (here) |
//! | `--resend-uncertain` | delivery `resend_uncertain_sends_it_again_and_only_when_asked` |
//! | `--daily-quota` | pipeline `exit_4_at_the_daily_quota_flag_and_again_the_same_day` |
//! | `--progress-every` | regression `item_10_log_progress_has_time_of_day_and_eta` |
//! | `--allow-duplicate-input` | regression `item_4_the_same_input_twice_is_refused_unless_meant` |
//! | `--rate` | delivery `rate_flag_caps_the_request_rate`; range: regression `item_10_flags_pairs_and_a_closed_stdout` |
//! | `--concurrency` | delivery `refused_credentials_abort_after_the_first_requests` (one request per worker); range: pipeline `exit_2_on_a_bad_flag_sends_nothing` |
//! | `--conversations` | pipeline `exit_2_on_a_bad_flag_sends_nothing`; golden `run_level_errors` (`create`) |
//! | `--report` (`.csv`, `.jsonl`) | pipeline `reports_csv_and_jsonl_agree_and_lines_count_physical_lines`; regression `item_2_*` |
//! | `--state` | delivery (every resume test); regression `item_10_loopback_is_one_target_and_ledger_files_are_private` |
//! | `--api-url` | every test against the emulator; regression `item_10_flags_pairs_and_a_closed_stdout` (with `--emulator`) |
//! | `--backoff-scale` (hidden) | delivery `retry_after_is_honoured` and the fault tests |

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use transcript_import::emulator::Config;
use transcript_import::model::Role;

use crate::delivery::{assert_sent_soundly, corpus, http, importer, start};
use crate::util::{self, Dir, ReportRow, Row};

/// `run` with credentials `x` / `y`, `--state` and `--report` in `dir`,
/// `--quiet`, then `extra`; the report read back.
fn import(url: &str, dir: &Dir, extra: &[&str]) -> (util::Ran, Vec<ReportRow>) {
    let ran = util::import(url, dir, "report.csv", extra);
    let report = if dir.path("report.csv").exists() {
        util::report(&dir.path("report.csv"))
    } else {
        Vec::new()
    };
    (ran, report)
}

/// Status of each report row, in order.
fn status_list(report: &[ReportRow]) -> Vec<&str> {
    report.iter().map(|r| r.status.as_str()).collect()
}

/// Each row `created` if valid, `invalid` if not, in input order, one
/// report row per input row.
fn assert_created_or_invalid(rows: &[Row], report: &[ReportRow]) {
    assert_eq!(report.len(), rows.len(), "one report row per input row");
    for (i, (row, r)) in rows.iter().zip(report).enumerate() {
        assert_eq!(r.record, i as u64 + 1, "input order");
        let want = if row.invalid.is_some() {
            "invalid"
        } else {
            "created"
        };
        assert_eq!(r.status, want, "record {}: {r:?}", r.record);
    }
}

// ---------------------------------------------------------------- --emulator

/// `run --emulator` with no credentials anywhere: the whole pipeline runs
/// against the built-in emulator; every row is reported; a rerun on the
/// same ledger knows what was sent.
#[test]
fn emulator_needs_no_credentials_and_reports_every_row() {
    let dir = Dir::new();
    let rows = util::transcripts(61, 8, 60, 4);
    let input = dir.write("in.csv", util::csv(&rows));
    let state = dir.path("state.db");
    let report = dir.path("report.csv");
    let args = [
        "run",
        "--emulator",
        "--quiet",
        "--state",
        state.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        &input,
    ];
    let ran = util::run_with(&args, None);
    assert_eq!(ran.code, 1, "{ran:?}");
    let first = util::report(&report);
    assert_created_or_invalid(&rows, &first);
    let mut ids = std::collections::HashSet::new();
    for r in first.iter().filter(|r| r.status == "created") {
        assert_eq!(r.http_status, Some(200), "{r:?}");
        assert!(ids.insert(r.message_id.clone()), "an id twice: {r:?}");
    }
    for (row, r) in rows.iter().zip(&first) {
        if row.invalid.is_none() {
            assert_eq!(r.timestamp, row.timestamp, "the instant sent");
        }
    }

    let ran = util::run_with(&args, None);
    assert_eq!(ran.code, 1, "{ran:?}");
    let second = util::report(&report);
    for (a, b) in first.iter().zip(&second) {
        match a.status.as_str() {
            "created" => {
                assert_eq!(b.status, "already_imported", "{b:?}");
                assert_eq!(b.message_id, a.message_id, "{b:?}");
            }
            _ => assert_eq!(b.status, "invalid", "{b:?}"),
        }
    }
}

// ---------------------------------------------------------------- --shard

/// FNV-1a 64, as the README documents the shard hash.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The shard (1-based, of `n`) a row belongs to, by the README's rule: its
/// conversation id (trimmed) hashed, or shard 1 when it has none.
fn shard_of(conversation_id: Option<&str>, n: u64) -> u64 {
    match conversation_id.map(str::trim).filter(|id| !id.is_empty()) {
        Some(id) => fnv1a64(id.as_bytes()) % n + 1,
        None => 1,
    }
}

/// Three shards run one after another against one emulator, each with its
/// own ledger and report: together they import every conversation exactly
/// once, and their reports hold every input row exactly once, invalid
/// rows included (by their conversation id, or in shard 1 without one).
/// `--shard index/3` with `JOB_COMPLETION_INDEX` 0..2 splits the same way.
#[test]
fn three_shards_import_everything_once() {
    let mut rows = util::transcripts(62, 40, 300, 15);
    // Rows with no readable conversation id: empty, or only spaces.
    for (i, id) in ["", "   "].into_iter().enumerate() {
        rows.push(Row {
            conversation_id: id.into(),
            timestamp: "2024-03-01T10:00:00Z".into(),
            role: "agent".into(),
            sender_id: "a-1".into(),
            text: format!("no conversation {i}"),
            invalid: Some("no conversation id"),
        });
    }
    // A valid row whose id has surrounding spaces: it joins its
    // conversation, and its shard, once trimmed.
    let joined = rows.iter().find(|r| r.invalid.is_none()).unwrap().clone();
    rows.push(Row {
        conversation_id: format!("  {}  ", joined.conversation_id),
        timestamp: "2030-01-01T00:00:00Z".into(),
        text: "a padded id".into(),
        ..joined
    });
    // What the shard of each record is: `Some(id)` read from the row, or
    // `None` for the ragged row added last (its fields cannot be read).
    let mut ids: Vec<Option<&str>> = rows
        .iter()
        .map(|r| Some(r.conversation_id.as_str()))
        .collect();
    ids.push(None);
    let mut bytes = util::csv(&rows);
    bytes.extend_from_slice(b"a ragged row with one field\n");
    let valid = rows.iter().filter(|r| r.invalid.is_none()).count();
    let total = ids.len();
    let input_dir = Dir::new();
    let input = input_dir.write("all.csv", &bytes);

    // Every shard has rows, and invalid rows go to shards other than 1
    // too (by their id): the data must show the rule, else pick another seed.
    let want: Vec<u64> = ids.iter().map(|id| shard_of(*id, 3)).collect();
    for k in 1..=3 {
        assert!(want.contains(&k), "shard {k} is empty");
    }
    assert!(
        rows.iter()
            .zip(&want)
            .any(|(r, &k)| r.invalid.is_some() && k != 1),
        "no invalid row outside shard 1"
    );

    let emu = start(Config::default());
    let mut split: Vec<Vec<u64>> = Vec::new();
    for k in 1..=3u64 {
        let dir = Dir::new();
        let shard = format!("{k}/3");
        let (ran, report) = import(&emu.url(), &dir, &["--shard", &shard, &input]);
        assert!([0, 1].contains(&ran.code), "shard {k}: {ran:?}");
        for r in &report {
            let i = r.record as usize - 1;
            assert_eq!(want[i], k, "record {} in shard {k}: {r:?}", r.record);
            let status = if i >= rows.len() || rows[i].invalid.is_some() {
                "invalid"
            } else {
                "created"
            };
            assert_eq!(r.status, status, "{r:?}");
        }
        split.push(report.iter().map(|r| r.record).collect());
    }
    // The union: every record exactly once.
    let mut all: Vec<u64> = split.iter().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(all, (1..=total as u64).collect::<Vec<_>>());
    // Every conversation imported once, by one shard.
    let stats = emu.stats();
    assert_sent_soundly(&stats);
    assert_eq!(stats.stored as usize, valid, "{stats:?}");
    assert_eq!(stats.requests_total as usize, valid, "{stats:?}");
    let mut stored: HashMap<String, usize> = HashMap::new();
    for m in emu.messages() {
        *stored.entry(m.conversation_id).or_default() += 1;
    }
    let mut expected: HashMap<String, usize> = HashMap::new();
    for r in rows.iter().filter(|r| r.invalid.is_none()) {
        *expected
            .entry(r.conversation_id.trim().to_string())
            .or_default() += 1;
    }
    assert_eq!(stored, expected);

    // The same split from a Kubernetes Indexed Job's index.
    let emu = start(Config::default());
    for (index, want) in split.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let out = importer(
            &emu.url(),
            dir.path(),
            &[std::path::Path::new(&input)],
            &["--shard", "index/3"],
        )
        .env("JOB_COMPLETION_INDEX", index.to_string())
        .output()
        .unwrap();
        let code = out.status.code();
        assert!(
            [Some(0), Some(1)].contains(&code),
            "index {index}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report = crate::delivery::report(dir.path());
        let records: Vec<u64> = report.iter().map(|r| r.record).collect();
        assert_eq!(&records, want, "JOB_COMPLETION_INDEX={index}");
    }
    assert_eq!(emu.stats().stored as usize, valid);
}

// ---------------------------------------------------------------- stdin

/// `cat file | transcript-import run --emulator -`, for CSV and for
/// JSONL (sniffed): every row reported under the source `-`. The same
/// into an emulator the test sees: every text stored exactly as written,
/// line breaks and quotes included (stdin is spooled, then read back).
#[test]
fn stdin_csv_and_jsonl() {
    for (name, bytes_of) in [
        ("csv", util::csv as fn(&[Row]) -> Vec<u8>),
        ("jsonl", util::jsonl),
    ] {
        let rows = util::transcripts(63, 6, 50, 3);
        let bytes = bytes_of(&rows);
        let emu = start(Config::default());
        for target in [vec!["--emulator"], vec!["--api-url", &emu.url()]] {
            let dir = Dir::new();
            let state = dir.path("state.db");
            let report = dir.path("report.csv");
            let mut child = Command::new(util::bin())
                .args(["run", "--quiet", "--state", state.to_str().unwrap()])
                .args(["--report", report.to_str().unwrap()])
                .args(&target)
                .arg("-")
                .env("ASAPP_API_ID", "x")
                .env("ASAPP_API_SECRET", "y")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(&bytes).unwrap();
            let ran: util::Ran = child.wait_with_output().unwrap().into();
            assert_eq!(ran.code, 1, "{name} {target:?}: {ran:?}");
            let report = util::report(&report);
            assert_created_or_invalid(&rows, &report);
            assert!(report.iter().all(|r| r.source == "-"), "{name}");
        }
        // What the emulator stored: each valid row's text, once.
        let mut want: Vec<(String, String)> = rows
            .iter()
            .filter(|r| r.invalid.is_none())
            .map(|r| (r.conversation_id.clone(), r.text.clone()))
            .collect();
        let mut got: Vec<(String, String)> = emu
            .messages()
            .into_iter()
            .map(|m| (m.conversation_id, m.text))
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{name}");
        assert_sent_soundly(&emu.stats());
    }
}

// ---------------------------------------------------------------- credentials

/// An emulator that accepts only these credentials.
fn guarded() -> transcript_import::emulator::Emulator {
    start(Config {
        credentials: Some(("my-id".into(), "s3 cr=t".into())),
        ..Config::default()
    })
}

/// A credentials file as shell env files are written (a comment, a blank
/// line, `export `, both kinds of quotes, CRLF) is read instead of the
/// environment, whose credentials the emulator would refuse.
#[test]
fn credentials_file_is_read_as_env_files_are_written() {
    let emu = guarded();
    let dir = Dir::new();
    let rows = corpus("CF", 3, 4);
    let input = dir.write("in.csv", util::csv(&rows));
    let creds = dir.write(
        "creds.env",
        "# the sandbox\r\n\r\nexport ASAPP_API_ID=\"my-id\"\r\n  export ASAPP_API_SECRET='s3 cr=t'\r\n",
    );
    let state = dir.path("state.db");
    let report = dir.path("report.csv");
    let args = [
        "run",
        "--quiet",
        "--api-url",
        &emu.url(),
        "--state",
        state.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--credentials-file",
        &creds,
        &input,
    ];
    let ran = util::run_with(&args, Some(("wrong-id", "wrong-secret")));
    assert_eq!(ran.code, 0, "{ran:?}");
    let report = util::report(&report);
    assert!(report.iter().all(|r| r.status == "created"), "{report:?}");
    let stats = emu.stats();
    assert_eq!(stats.stored as usize, rows.len(), "{stats:?}");
    assert_eq!(http(&stats, "401"), 0, "{stats:?}");
}

/// A credentials file without one of the keys, with an unknown key, or
/// with a line that is not `KEY=VALUE`: exit 2 before anything is sent,
/// naming the key or the line, never echoing a value.
#[test]
fn credentials_file_errors_name_the_key_and_never_a_value() {
    let emu = guarded();
    let dir = Dir::new();
    let input = dir.write("in.csv", util::csv(&corpus("CE", 2, 2)));
    for (text, names, secret) in [
        (
            "ASAPP_API_ID=my-id-7c1f\n",
            "ASAPP_API_SECRET",
            "my-id-7c1f",
        ),
        (
            "ASAPP_API_SECRET=s3cr3t-9d2e\r\n",
            "ASAPP_API_ID",
            "s3cr3t-9d2e",
        ),
        (
            "ASAPP_API_ID=my-id\nASAPP_API_SECRET=\"\"\n",
            "ASAPP_API_SECRET",
            "my-id",
        ),
        (
            "ASAPP_API_ID=my-id\nAPI_TOKEN=t0k3n-55aa\n",
            "API_TOKEN",
            "t0k3n-55aa",
        ),
        ("ASAPP_API_ID=my-id\nhunter2-b7\n", "line 2", "hunter2-b7"),
        // A carriage return kept by the quotes: no header may carry it.
        (
            "ASAPP_API_ID=my-id\nASAPP_API_SECRET=\"s3cr3t-cr\r\"\n",
            "ASAPP_API_SECRET holds a control character",
            "s3cr3t-cr",
        ),
    ] {
        let creds = dir.write("creds.env", text);
        let (ran, _) = import(&emu.url(), &dir, &["--credentials-file", &creds, &input]);
        assert_eq!(ran.code, 2, "{text:?}: {ran:?}");
        assert!(
            ran.stderr.contains(names) && ran.stderr.contains("creds.env"),
            "{text:?}: {}",
            ran.stderr
        );
        assert!(
            !ran.stderr.contains(secret) && !ran.stdout.contains(secret),
            "{text:?} echoed: {}",
            ran.stderr
        );
    }
    // A file that is not there is named too.
    let missing = dir.path("nowhere.env");
    let (ran, _) = import(
        &emu.url(),
        &dir,
        &["--credentials-file", missing.to_str().unwrap(), &input],
    );
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(ran.stderr.contains("nowhere.env"), "{}", ran.stderr);
    assert_eq!(emu.stats().requests_total, 0);
}

// ---------------------------------------------------------------- 409

/// An API that answers 409 ("already persisted") to a message it holds:
/// the same rows imported again under a fresh ledger are all `exists`,
/// exit 0, and nothing is stored twice; a rerun on that ledger sends
/// nothing and reports them `already_imported`.
#[test]
fn a_409_is_exists_and_nothing_is_stored_twice() {
    let emu = start(Config {
        conflict_on_duplicate: true,
        ..Config::default()
    });
    let rows = corpus("EX", 6, 5);
    let first = Dir::new();
    let input = first.write("in.csv", util::csv(&rows));
    let (ran, report) = import(&emu.url(), &first, &[&input]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(report.iter().all(|r| r.status == "created"), "{report:?}");
    assert_eq!(emu.stats().stored as usize, rows.len());

    let second = Dir::new();
    let (ran, report) = import(&emu.url(), &second, &[&input]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(report.len(), rows.len());
    for r in &report {
        assert_eq!(r.status, "exists", "{r:?}");
        assert_eq!(r.http_status, Some(409), "{r:?}");
    }
    let stats = emu.stats();
    assert_eq!(stats.stored as usize, rows.len(), "{stats:?}");
    assert_eq!(http(&stats, "409") as usize, rows.len(), "{stats:?}");
    assert_eq!(stats.duplicates, 0, "{stats:?}");

    let requests = stats.requests_total;
    let (ran, report) = import(&emu.url(), &second, &[&input]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(report.len(), rows.len());
    // The ledger holds them as stored by the API (without an id: a 409
    // carries none in `existing` mode).
    for r in &report {
        assert_eq!(r.status, "already_imported", "{r:?}");
        assert_eq!(r.message_id, "", "{r:?}");
    }
    assert_eq!(emu.stats().requests_total, requests, "nothing sent again");
}

// ---------------------------------------------------------------- --timeout

/// `--timeout 1` against answers that take 5 s (the emulator's latency, a
/// floor whatever the load): the request went out and no answer came, so
/// the row is `uncertain` and the rest of its conversation `skipped`.
#[test]
fn timeout_leaves_the_row_uncertain() {
    let emu = start(Config {
        latency: Duration::from_secs(5),
        ..Config::default()
    });
    let dir = Dir::new();
    let input = dir.write("in.csv", util::csv(&corpus("TO", 1, 3)));
    let (ran, report) = import(&emu.url(), &dir, &["--timeout", "1", &input]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert_eq!(status_list(&report), ["uncertain", "skipped", "skipped"]);
    assert_eq!(report[0].attempts, 1, "{report:?}");
}

// ---------------------------------------------------------------- input flags

/// A JSONL export named `.txt` is read as CSV (and has no header); with
/// `--format jsonl` it imports.
#[test]
fn format_overrides_the_extension() {
    let emu = start(Config::default());
    let dir = Dir::new();
    let rows = corpus("FM", 3, 3);
    let input = dir.write("export.txt", util::jsonl(&rows));
    let (ran, _) = import(&emu.url(), &dir, &[&input]);
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(ran.stderr.contains("missing required column"), "{ran:?}");
    let (ran, report) = import(&emu.url(), &dir, &["--format", "jsonl", &input]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_created_or_invalid(&rows, &report);
    assert_eq!(emu.stats().stored as usize, rows.len());
}

/// A `;` file whose header has more commas than semicolons is detected as
/// comma-separated (missing columns); `--delimiter ';'` reads it.
#[test]
fn delimiter_overrides_detection() {
    let emu = start(Config::default());
    let dir = Dir::new();
    let input = dir.write(
        "excel.csv",
        "conversation_id;timestamp;sender_role;sender_id;text;tags,a,b,c,d,e,f\n\
         01JDLM;2024-01-01T10:00:00Z;customer;c-1;Hello, is anyone there?;x\n\
         01JDLM;2024-01-01T10:00:05Z;agent;a-1;Yes, hello;y\n",
    );
    let (ran, _) = import(&emu.url(), &dir, &[&input]);
    assert_eq!(ran.code, 2, "{ran:?}");
    let (ran, report) = import(&emu.url(), &dir, &["--delimiter", ";", &input]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(status_list(&report), ["created", "created"]);
    let texts: Vec<String> = emu.messages().into_iter().map(|m| m.text).collect();
    assert_eq!(texts, ["Hello, is anyone there?", "Yes, hello"]);
}

/// Columns of other names, named with `--map` (repeated, and with pairs
/// separated by commas): without it the file misses columns.
#[test]
fn map_names_the_columns() {
    let emu = start(Config::default());
    let dir = Dir::new();
    let input = dir.write(
        "tickets.csv",
        "ticket,when,who,author,msg_body,user_id\n\
         01JMAP,2024-01-01T10:00:00Z,customer,c-1,Where is my order?,u-9\n\
         01JMAP,2024-01-01T10:01:00Z,agent,a-1,On its way,u-9\n",
    );
    let (ran, _) = import(&emu.url(), &dir, &[&input]);
    assert_eq!(ran.code, 2, "{ran:?}");
    let (ran, report) = import(
        &emu.url(),
        &dir,
        &[
            "--map",
            "conversation_id=ticket,timestamp=when",
            "--map",
            "sender_role=who,sender_id=author",
            "--map",
            "text=msg_body",
            &input,
        ],
    );
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(status_list(&report), ["created", "created"]);
    let stored: Vec<(String, String, String)> = emu
        .messages()
        .into_iter()
        .map(|m| (m.conversation_id, m.sender.external_id, m.text))
        .collect();
    assert_eq!(
        stored,
        [
            ("01JMAP".into(), "c-1".into(), "Where is my order?".into()),
            ("01JMAP".into(), "a-1".into(), "On its way".into()),
        ]
    );
}

/// Role names of another vocabulary are invalid, unless `--role-map`
/// maps them; then they are sent with the mapped role.
#[test]
fn role_map_maps_role_names() {
    let emu = start(Config::default());
    let dir = Dir::new();
    let input = dir.write(
        "roles.csv",
        "conversation_id,timestamp,sender_role,sender_id,text\n\
         01JROL,2024-01-01T10:00:00Z,User,u-1,Hi\n\
         01JROL,2024-01-01T10:00:01Z,BOT,b-1,Routing you\n\
         01JROL,2024-01-01T10:00:02Z,rep,r-1,Hello\n",
    );
    let (ran, report) = import(&emu.url(), &dir, &[&input]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert_eq!(status_list(&report), ["invalid", "invalid", "invalid"]);
    assert_eq!(emu.stats().requests_total, 0);
    let dir = Dir::new();
    let input = dir.write("roles.csv", std::fs::read(&input).unwrap());
    let (ran, report) = import(
        &emu.url(),
        &dir,
        &[
            "--role-map",
            "bot=system,user=customer",
            "--role-map",
            "REP=agent",
            &input,
        ],
    );
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(status_list(&report), ["created", "created", "created"]);
    let roles: Vec<Role> = emu.messages().into_iter().map(|m| m.sender.role).collect();
    assert_eq!(roles, [Role::Customer, Role::System, Role::Agent]);
}

/// Zoneless times are UTC by default and in `--timezone` when given
/// (daylight saving time per timestamp); a time in the spring-forward gap
/// is invalid there, never guessed; times with an offset ignore the flag.
#[test]
fn timezone_places_zoneless_times() {
    let input_text = "conversation_id,timestamp,sender_role,sender_id,text\n\
        01JTZA,2024-01-15 09:00:00,customer,c-1,winter\n\
        01JTZA,2024-03-10 02:30:00,customer,c-1,in the gap\n\
        01JTZB,2024-07-15 09:00:00,customer,c-2,summer\n\
        01JTZB,2024-07-15T09:00:00+02:00,agent,a-1,with an offset\n";
    let mut by_zone: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    for zone in ["UTC", "America/New_York"] {
        let emu = start(Config::default());
        let dir = Dir::new();
        let input = dir.write("in.csv", input_text);
        let (ran, report) = import(&emu.url(), &dir, &["--timezone", zone, &input]);
        assert!([0, 1].contains(&ran.code), "{zone}: {ran:?}");
        by_zone.insert(
            zone,
            report
                .iter()
                .map(|r| {
                    let shown = if r.status == "invalid" {
                        r.error_message.clone()
                    } else {
                        r.timestamp.clone()
                    };
                    (r.status.clone(), shown)
                })
                .collect(),
        );
    }
    let pair = |s: &str, t: &str| (s.to_string(), t.to_string());
    assert_eq!(
        by_zone["UTC"],
        [
            pair("created", "2024-01-15T09:00:00Z"),
            pair("created", "2024-03-10T02:30:00Z"),
            pair("created", "2024-07-15T09:00:00Z"),
            pair("created", "2024-07-15T07:00:00Z"),
        ]
    );
    let ny = &by_zone["America/New_York"];
    assert_eq!(ny[0], pair("created", "2024-01-15T14:00:00Z"), "EST");
    assert_eq!(ny[1].0, "invalid");
    assert!(
        ny[1].1.contains("does not exist in America/New_York"),
        "{ny:?}"
    );
    assert_eq!(ny[2], pair("created", "2024-07-15T13:00:00Z"), "EDT");
    assert_eq!(ny[3], pair("created", "2024-07-15T07:00:00Z"), "offset");
}

// ---------------------------------------------------------------- output flags

/// Without `--quiet` stderr has the plan line and the report line; with
/// it, only the summary.
#[test]
fn quiet_keeps_only_the_summary() {
    let emu = start(Config::default());
    let dir = Dir::new();
    let input = dir.write("in.csv", util::csv(&corpus("QU", 2, 3)));
    let report = dir.path("report.csv");
    let state = dir.path("state.db");
    let url = emu.url();
    let mut args = vec![
        "run",
        "--api-url",
        &url,
        "--state",
        state.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--progress-every",
        "3600",
        &input,
    ];
    let loud = util::run(&args);
    assert_eq!(loud.code, 0, "{loud:?}");
    assert!(
        loud.stderr.contains("6 rows in 2 conversations"),
        "{loud:?}"
    );
    assert!(loud.stderr.contains("report: "), "{loud:?}");
    assert!(loud.stderr.contains("done in "), "{loud:?}");
    args.push("--quiet");
    let quiet = util::run(&args);
    assert_eq!(quiet.code, 0, "{quiet:?}");
    // The summary alone: no plan line, no progress, no "report:" line.
    let lines: Vec<&str> = quiet.stderr.lines().collect();
    assert!(
        lines[0].starts_with("done in ") && lines[0].ends_with("6 rows: 6 already_imported"),
        "{quiet:?}"
    );
    assert_eq!(
        lines[1..],
        ["conversations: 2 complete, 0 partly imported, 0 untouched (of 2)"],
        "{quiet:?}"
    );
}

/// `check --latency-ms` is the latency the estimate assumes.
#[test]
fn check_latency_changes_the_estimate() {
    let dir = Dir::new();
    let input = dir.write("in.csv", util::csv(&corpus("CL", 1, 40)));
    let estimate = |extra: &[&str]| {
        let mut args = vec!["check", input.as_str()];
        args.extend_from_slice(extra);
        let ran = util::run(&args);
        assert_eq!(ran.code, 0, "{ran:?}");
        ran.stdout
            .lines()
            .find(|l| l.starts_with("estimate:"))
            .unwrap_or_else(|| panic!("{ran:?}"))
            .to_string()
    };
    // One conversation of 40 messages, one after another.
    assert!(
        estimate(&[]).contains("with 150 ms latency"),
        "{}",
        estimate(&[])
    );
    let slow = estimate(&["--latency-ms", "1500"]);
    assert!(
        slow.starts_with("estimate:      1m") && slow.contains("with 1500 ms latency"),
        "{slow}"
    );
}
