//! Hostile input through the real binary: every way a real file, shell or
//! export broke the tool, run with `check` and with `run --emulator
//! --report`. For each case: no panic, the exit code DESIGN.md gives (0 or
//! 1 for data problems, 2 for input that cannot be read), every input row
//! in the report exactly once and in `check`'s count, and each invalid
//! row's reason naming its field and, where there is a value, an excerpt.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::util::{bin, report, Dir, Ran, ReportRow};

fn data(path: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// How the input reaches the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    /// A regular file.
    File,
    /// Standard input, named `-`.
    Stdin,
    /// A FIFO made with `mkfifo`, written by another thread.
    Fifo,
}

/// What one input row must become.
#[derive(Debug, Clone)]
struct Want {
    status: &'static str,
    /// Pieces the reason must contain (for `invalid`).
    reason: &'static [&'static str],
    /// The report's `conversation_id`, when the case says.
    conversation_id: Option<&'static str>,
}

const OK: Want = Want {
    status: "created",
    reason: &[],
    conversation_id: None,
};

fn invalid(reason: &'static [&'static str]) -> Want {
    Want {
        status: "invalid",
        reason,
        conversation_id: None,
    }
}

fn with_id(want: Want, id: &'static str) -> Want {
    Want {
        conversation_id: Some(id),
        ..want
    }
}

/// What a case expects.
#[derive(Debug, Clone)]
enum Expect {
    /// Exit 0 or 1 (from the rows), one report row per entry.
    Rows(Vec<Want>),
    /// Unreadable input: exit 2, no report; stderr says this.
    Refused(&'static str),
    /// Rows counted by an independent reader; every reason non-empty.
    Count(usize),
}

struct Case {
    name: &'static str,
    /// The input's name in the temporary directory (its extension picks the format).
    file: &'static str,
    bytes: Vec<u8>,
    feed: Feed,
    expect: Expect,
    /// What `check` must say (`no rows (...)` and the like), if anything.
    check_says: Option<&'static str>,
    /// More flags for both commands.
    extra: &'static [&'static str],
}

fn case(name: &'static str, file: &'static str, bytes: impl Into<Vec<u8>>, expect: Expect) -> Case {
    Case {
        name,
        file,
        bytes: bytes.into(),
        feed: Feed::File,
        expect,
        check_says: None,
        extra: &[],
    }
}

const HEADER: &str = "conversation_id,timestamp,sender_role,sender_id,text\n";

fn csv(rows: &[&str]) -> Vec<u8> {
    let mut out = HEADER.as_bytes().to_vec();
    for r in rows {
        out.extend_from_slice(r.as_bytes());
        out.push(b'\n');
    }
    out
}

fn jsonl_row(id: &str, timestamp: &str, text: &str) -> String {
    serde_json::json!({
        "conversation_id": id,
        "timestamp": timestamp,
        "sender_role": "agent",
        "sender_id": "a1",
        "text": text,
    })
    .to_string()
}

fn lines(rows: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in rows {
        out.extend_from_slice(r.as_bytes());
        out.push(b'\n');
    }
    out
}

/// Deterministic bytes that are anything but text.
fn garbage(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (s >> 56) as u8
        })
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Run the binary on the case's input, fed as the case says.
fn feed(dir: &Dir, c: &Case, args: &[&str]) -> Ran {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("ASAPP_API_ID")
        .env_remove("ASAPP_API_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match c.feed {
        Feed::File => {
            let path = dir.write(c.file, &c.bytes);
            cmd.arg(path).stdin(Stdio::null());
            cmd.output().expect("run the binary").into()
        }
        Feed::Stdin => {
            cmd.arg("-").stdin(Stdio::piped());
            let mut child = cmd.spawn().expect("spawn the binary");
            let mut stdin = child.stdin.take().expect("stdin");
            let bytes = c.bytes.clone();
            let writer = std::thread::spawn(move || {
                // The binary may stop reading early (a refused input): not our failure.
                let _ = stdin.write_all(&bytes);
            });
            let out = child.wait_with_output().expect("wait for the binary");
            writer.join().expect("writer thread");
            out.into()
        }
        Feed::Fifo => {
            let path = dir.path(c.file);
            let _ = std::fs::remove_file(&path);
            crate::util::mkfifo(&path);
            let writer = {
                let (path, bytes) = (path.clone(), c.bytes.clone());
                // Opening a FIFO to write waits for a reader: the binary.
                std::thread::spawn(move || {
                    if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&path) {
                        let _ = f.write_all(&bytes);
                    }
                })
            };
            cmd.arg(&path).stdin(Stdio::null());
            let out = cmd.output().expect("run the binary");
            // If the binary never opened the FIFO, the writer still waits:
            // open the reading end ourselves (without blocking) to free it.
            if !writer.is_finished() {
                use std::os::unix::fs::OpenOptionsExt;
                let _unblock = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&path);
                writer.join().expect("writer thread");
            }
            std::fs::remove_file(&path).expect("remove the FIFO");
            out.into()
        }
    }
}

fn no_panic(c: &Case, what: &str, ran: &Ran) {
    assert_ne!(
        ran.code, 101,
        "{}: {what} panicked:\n{}",
        c.name, ran.stderr
    );
    assert!(
        !ran.stderr.contains("panicked"),
        "{}: {what}:\n{}",
        c.name,
        ran.stderr
    );
}

/// `check`'s `rows:` count.
fn rows_line(c: &Case, out: &str) -> usize {
    out.lines()
        .find_map(|l| l.strip_prefix("rows:"))
        .unwrap_or_else(|| panic!("{}: no rows line in\n{out}", c.name))
        .trim()
        .parse()
        .expect("a number of rows")
}

fn exit_for(wants: &[Want]) -> i32 {
    if wants.iter().all(|w| w.status == "created") {
        0
    } else {
        1
    }
}

fn check_reason(c: &Case, row: &ReportRow) {
    let reason = &row.error_message;
    assert!(
        !reason.is_empty(),
        "{}: row {} has no reason",
        c.name,
        row.record
    );
    assert!(
        !reason.chars().any(char::is_control),
        "{}: row {}: a control character in {reason:?}",
        c.name,
        row.record
    );
}

fn run_case(c: &Case) {
    let dir = Dir::new();
    let state = dir.path("state.db");
    let report_path = dir.path("report.csv");

    let mut check_args = vec!["check"];
    check_args.extend_from_slice(c.extra);
    let checked = feed(&dir, c, &check_args);
    no_panic(c, "check", &checked);
    let mut run_args = vec![
        "run",
        "--emulator",
        "--quiet",
        "--state",
        state.to_str().unwrap(),
        "--report",
        report_path.to_str().unwrap(),
    ];
    run_args.extend_from_slice(c.extra);
    let ran = feed(&dir, c, &run_args);
    no_panic(c, "run", &ran);
    if let Some(says) = c.check_says {
        assert!(
            checked.stdout.contains(says),
            "{}: check does not say {says:?}:\n{}",
            c.name,
            checked.stdout
        );
        assert!(
            ran.stderr.contains(says),
            "{}: run does not say {says:?}:\n{}",
            c.name,
            ran.stderr
        );
    }

    let want_rows = match &c.expect {
        Expect::Refused(says) => {
            for (what, r) in [("check", &checked), ("run", &ran)] {
                assert_eq!(r.code, 2, "{}: {what}:\n{}{}", c.name, r.stdout, r.stderr);
                assert!(
                    r.stderr.contains(says) && r.stderr.contains(c.file),
                    "{}: {what} should name the input and say {says:?}:\n{}",
                    c.name,
                    r.stderr
                );
            }
            assert!(!report_path.exists(), "{}: a report for nothing", c.name);
            return;
        }
        Expect::Rows(wants) => wants.len(),
        Expect::Count(n) => *n,
    };
    assert!(
        report_path.exists(),
        "{}: no report; run exited {}:\n{}",
        c.name,
        ran.code,
        ran.stderr
    );
    let rows = report(&report_path);
    assert_eq!(
        rows_line(c, &checked.stdout),
        want_rows,
        "{}: check's count:\n{}",
        c.name,
        checked.stdout
    );
    let records: Vec<u64> = rows.iter().map(|r| r.record).collect();
    let expected: Vec<u64> = (1..=want_rows as u64).collect();
    assert_eq!(records, expected, "{}: every row once, in order", c.name);
    let source = if c.feed == Feed::Stdin {
        "-".to_string()
    } else {
        dir.path(c.file).to_str().unwrap().to_string()
    };
    for row in &rows {
        assert_eq!(row.source, source, "{}", c.name);
        if row.status != "created" {
            check_reason(c, row);
        }
    }
    let bytes = std::fs::read(&report_path).unwrap();
    assert!(
        !bytes.iter().any(|b| *b == 0 || *b == 0x1b),
        "{}: a raw control byte in the report",
        c.name
    );
    match &c.expect {
        Expect::Rows(wants) => {
            let code = exit_for(wants);
            assert_eq!(
                checked.code, code,
                "{}: check:\n{}{}",
                c.name, checked.stdout, checked.stderr
            );
            assert_eq!(ran.code, code, "{}: run:\n{}", c.name, ran.stderr);
            for (row, want) in rows.iter().zip(wants) {
                assert_eq!(
                    row.status, want.status,
                    "{}: record {}: {}",
                    c.name, row.record, row.error_message
                );
                for piece in want.reason {
                    assert!(
                        row.error_message.contains(piece),
                        "{}: record {}: {:?} should contain {piece:?}",
                        c.name,
                        row.record,
                        row.error_message
                    );
                }
                if let Some(id) = want.conversation_id {
                    assert_eq!(row.conversation_id, id, "{}: record {}", c.name, row.record);
                }
            }
        }
        Expect::Count(_) => {
            let code = if rows.iter().all(|r| r.status == "created") {
                0
            } else {
                1
            };
            assert_eq!(checked.code, code, "{}: check:\n{}", c.name, checked.stderr);
            assert_eq!(ran.code, code, "{}: run:\n{}", c.name, ran.stderr);
        }
        Expect::Refused(_) => unreachable!(),
    }
}

/// Records an independent CSV reader finds after the header.
fn csv_records(bytes: &[u8]) -> usize {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes)
        .byte_records()
        .count()
}

/// Non-blank lines.
fn jsonl_records(bytes: &[u8]) -> usize {
    bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(i, l)| {
            let l = if *i == 0 {
                l.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(l)
            } else {
                l
            };
            !l.iter().all(u8::is_ascii_whitespace)
        })
        .count()
}

fn cases() -> Vec<Case> {
    let ts = "2021-11-23T12:13:14Z";
    let mut cases = Vec::new();

    // 1. A quote that never closes: one record, invalid, naming the line;
    // the three rows it swallowed are not sent as its text.
    cases.push(case(
        "unclosed quote",
        "unclosed.csv",
        data("malformed/unclosed_quote_swallows_rows.csv"),
        Expect::Rows(vec![with_id(
            invalid(&[
                "text: quoted field opened on line 2 never closes",
                "lines 3\u{2013}5",
                "3 of those lines look like records",
            ]),
            "ABC1",
        )]),
    ));
    // The same stray quote in JSONL is one bad line, no more.
    cases.push(case(
        "unclosed string, JSONL",
        "unclosed.jsonl",
        lines(&[
            format!(r#"{{"conversation_id":"ABC1","timestamp":"{ts}","sender_role":"agent","sender_id":"a1","text":"hello"#),
            jsonl_row("ABC1", "2021-11-23T12:13:15Z", "hi"),
        ]),
        Expect::Rows(vec![invalid(&["not a JSON object", "EOF while parsing a string"]), OK]),
    ));

    // 3. Input from a pipe: read once, every row.
    let piped = data("malformed/through_a_pipe.csv");
    for (name, feed, bytes) in [
        ("stdin", Feed::Stdin, piped.clone()),
        ("FIFO", Feed::Fifo, piped.clone()),
        ("gzip through stdin", Feed::Stdin, gzip(&piped)),
        ("gzip through a FIFO", Feed::Fifo, gzip(&piped)),
    ] {
        cases.push(Case {
            feed,
            ..case(name, "pipe.csv", bytes, Expect::Rows(vec![OK; 6]))
        });
    }
    cases.push(Case {
        feed: Feed::Stdin,
        check_says: Some("-: no rows (standard input delivered nothing)"),
        ..case("empty stdin", "-", Vec::new(), Expect::Rows(vec![]))
    });
    cases.push(Case {
        feed: Feed::Fifo,
        check_says: Some("no rows (the pipe delivered nothing)"),
        ..case("empty FIFO", "pipe.csv", Vec::new(), Expect::Rows(vec![]))
    });

    // Empty and header-only inputs: no rows, said so, exit 0.
    cases.push(Case {
        check_says: Some("no rows (the file is empty)"),
        ..case("empty CSV", "empty.csv", Vec::new(), Expect::Rows(vec![]))
    });
    cases.push(Case {
        check_says: Some("no rows (the file is empty)"),
        ..case(
            "empty JSONL",
            "empty.jsonl",
            Vec::new(),
            Expect::Rows(vec![]),
        )
    });
    cases.push(Case {
        check_says: Some("no rows (53 bytes in the file: a header and no rows)"),
        ..case("header only", "header.csv", HEADER, Expect::Rows(vec![]))
    });
    cases.push(Case {
        check_says: Some("no rows (4 bytes in the file: only blank lines)"),
        ..case(
            "blank lines only, JSONL",
            "blank.jsonl",
            "\n \n\n",
            Expect::Rows(vec![]),
        )
    });

    // Binary garbage: no header to read (exit 2); after a header, every
    // record accounted for.
    cases.push(case(
        "binary garbage",
        "garbage.csv",
        garbage(7, 4096),
        Expect::Refused("missing required column"),
    ));
    let mut after_header = HEADER.as_bytes().to_vec();
    after_header.extend(garbage(11, 4096));
    let n = csv_records(&after_header);
    cases.push(case(
        "binary garbage after a header",
        "garbage2.csv",
        after_header,
        Expect::Count(n),
    ));
    let g = garbage(13, 4096);
    let n = jsonl_records(&g);
    cases.push(case(
        "binary garbage, JSONL",
        "garbage.jsonl",
        g,
        Expect::Count(n),
    ));

    // A 1,000-column CSV: the five columns anywhere among 995 others.
    let width = 1000;
    let at = [0usize, 249, 499, 749, 999];
    let names = [
        "conversation_id",
        "timestamp",
        "sender_role",
        "sender_id",
        "text",
    ];
    let wide_row = |values: [&str; 5], width: usize| {
        let mut cells: Vec<String> = (0..width).map(|i| format!("x{i}")).collect();
        for (k, v) in at.iter().zip(values) {
            if let Some(cell) = cells.get_mut(*k) {
                *cell = v.to_string();
            }
        }
        cells.join(",")
    };
    let mut header: Vec<String> = (0..width).map(|i| format!("extra_{i}")).collect();
    for (k, n) in at.iter().zip(names) {
        header[*k] = n.to_string();
    }
    let wide = [
        header.join(","),
        wide_row(["WIDE1", ts, "agent", "a1", "hello"], width),
        wide_row(["WIDE1", "2021-11-23T12:13:15Z", "bot", "a1", "hi"], width),
        wide_row(
            ["WIDE1", "2021-11-23T12:13:16Z", "agent", "a1", "bye"],
            width - 1,
        ),
        wide_row(
            ["WIDE2", "2021-11-23T12:13:17Z", "customer", "c1", "ok"],
            width,
        ),
    ]
    .join("\n");
    cases.push(case(
        "1,000 columns",
        "wide.csv",
        wide,
        Expect::Rows(vec![
            OK,
            invalid(&["sender_role: unknown role", "\"bot\""]),
            invalid(&["row has 999 fields, header has 1000"]),
            OK,
        ]),
    ));

    // 10,000-deep JSON nesting: serde_json's recursion limit, one row's problem.
    let deep = format!(
        r#"{{"conversation_id":"DEEP1","timestamp":"{ts}","sender_role":"agent","sender_id":"a1","text":"x","meta":{}{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    cases.push(case(
        "10,000-deep JSON",
        "deep.jsonl",
        lines(&[deep, jsonl_row("DEEP1", "2021-11-23T12:13:15Z", "after")]),
        Expect::Rows(vec![
            invalid(&["not a JSON object", "recursion limit exceeded"]),
            OK,
        ]),
    ));
    cases.push(case(
        "10,000 brackets in a CSV text",
        "deep.csv",
        csv(&[&format!(
            "DEEP1,{ts},agent,a1,{}{}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        )]),
        Expect::Rows(vec![OK]),
    ));

    // Duplicate JSON keys: the last one wins.
    cases.push(case(
        "duplicate JSON keys",
        "dup.jsonl",
        lines(&[format!(
            r#"{{"conversation_id":"FIRST1","conversation_id":"LAST1","timestamp":"{ts}","sender_role":"agent","sender_id":"a1","text":"a","text":"b"}}"#
        )]),
        Expect::Rows(vec![with_id(OK, "LAST1")]),
    ));

    // Latin-1 bytes: the row is invalid, naming the field; its id is kept.
    cases.push(case(
        "Latin-1 text, CSV",
        "latin1.csv",
        [
            HEADER.as_bytes(),
            format!("LAT1,{ts},agent,a1,caf").as_bytes(),
            b"\xe9\n",
            format!("LAT1,{ts},agent,a1,ok\n").as_bytes(),
        ]
        .concat(),
        Expect::Rows(vec![
            with_id(
                invalid(&["text: invalid UTF-8 at byte 4 of column `text`"]),
                "LAT1",
            ),
            OK,
        ]),
    ));
    cases.push(case(
        "Latin-1 id, CSV",
        "latin1id.csv",
        [
            HEADER.as_bytes(),
            b"LAT\xc91,",
            ts.as_bytes(),
            b",agent,a1,x\n",
        ]
        .concat(),
        Expect::Rows(vec![with_id(
            invalid(&["conversation_id: invalid UTF-8 at byte 4 of column `conversation_id`"]),
            "",
        )]),
    ));
    cases.push(case(
        "Latin-1 text, JSONL",
        "latin1.jsonl",
        [
            format!(r#"{{"conversation_id":"LAT1","timestamp":"{ts}","sender_role":"agent","sender_id":"a1","text":"caf"#).as_bytes(),
            b"\xe9\"}\n",
        ]
        .concat(),
        Expect::Rows(vec![with_id(invalid(&["text: invalid UTF-8 at byte"]), "LAT1")]),
    ));

    // NUL bytes: never raw in a reason or the report.
    cases.push(case(
        "NUL in an id, CSV",
        "nul.csv",
        csv(&[
            &format!("AB\0C,{ts},agent,a1,x"),
            &format!("NUL1,{ts},agent,a1,te\0xt"),
        ]),
        Expect::Rows(vec![
            with_id(
                invalid(&["conversation_id: not an API conversation id", r#""AB\0C""#]),
                r"AB\0C",
            ),
            OK,
        ]),
    ));
    cases.push(case(
        "NUL in an id, JSONL",
        "nul.jsonl",
        lines(&[
            jsonl_row("AB\0C", ts, "x"),
            format!(r#"{{"conversation_id":"NUL1","timestamp":"{ts}","sender_role":"agent","sender_id":"a1","text":"raw "#) + "\0\"}",
        ]),
        Expect::Rows(vec![
            invalid(&["conversation_id: not an API conversation id", r#""AB\0C""#]),
            invalid(&["not a JSON object", "control character"]),
        ]),
    ));
    cases.push(case(
        "terminal escape in an id",
        "esc.csv",
        csv(&[&format!("AB\x1b[2J,{ts},agent,a1,x")]),
        Expect::Rows(vec![with_id(
            invalid(&[
                "conversation_id: not an API conversation id",
                r#""AB\u{1b}[2J""#,
            ]),
            r"AB\u{1b}[2J",
        )]),
    ));

    // Timestamps that are no instant.
    let bad_times: [(&str, &'static [&'static str]); 4] = [
        (
            "2021-02-30T10:00:00Z",
            &["timestamp: no such date", "\"2021-02-30T10:00:00Z\""],
        ),
        (
            "2016-12-31T23:59:60Z",
            &["timestamp: a leap second", "\"2016-12-31T23:59:60Z\""],
        ),
        (
            "0000-01-01T00:00:00Z",
            &["timestamp: out of range", "\"0000-01-01T00:00:00Z\""],
        ),
        (
            "10000-01-01T00:00:00Z",
            &["timestamp: ", "\"10000-01-01T00:00:00Z\""],
        ),
    ];
    let csv_rows: Vec<String> = bad_times
        .iter()
        .map(|(t, _)| format!("TIME1,{t},agent,a1,x"))
        .collect();
    let csv_refs: Vec<&str> = csv_rows.iter().map(String::as_str).collect();
    let mut wants: Vec<Want> = bad_times
        .iter()
        .map(|(_, r)| with_id(invalid(r), "TIME1"))
        .collect();
    wants.push(OK);
    let mut with_good = csv_refs.clone();
    let good = format!("TIME1,{ts},agent,a1,x");
    with_good.push(&good);
    cases.push(case(
        "impossible timestamps, CSV",
        "times.csv",
        csv(&with_good),
        Expect::Rows(wants.clone()),
    ));
    let mut json_rows: Vec<String> = bad_times
        .iter()
        .map(|(t, _)| jsonl_row("TIME1", t, "x"))
        .collect();
    json_rows.push(jsonl_row("TIME1", ts, "x"));
    cases.push(case(
        "impossible timestamps, JSONL",
        "times.jsonl",
        lines(&json_rows),
        Expect::Rows(wants),
    ));
    cases
}

#[test]
fn hostile_inputs_through_the_binary() {
    let cases = cases();
    for c in &cases {
        run_case(c);
    }
}

/// An invalid row belongs to the shard of its conversation id, read even
/// when another field of the row cannot be; a row without a readable id
/// belongs to shard 1. The shards' reports hold every row exactly once.
#[test]
fn invalid_rows_follow_their_conversation_to_its_shard() {
    use transcript_import::plan::Shard;
    let dir = Dir::new();
    let mut bytes = HEADER.as_bytes().to_vec();
    let mut ids = Vec::new();
    for i in 0..12 {
        let id = format!("SHARD{i}");
        // Valid, then Latin-1 text, then a wrong role: all of id's shard.
        bytes.extend(format!("{id},2021-11-23T12:13:14Z,agent,a1,ok\n").as_bytes());
        bytes.extend(format!("{id},2021-11-23T12:13:15Z,agent,a1,caf").as_bytes());
        bytes.extend(b"\xe9\n");
        bytes.extend(format!("{id},2021-11-23T12:13:16Z,bot,a1,ok\n").as_bytes());
        ids.extend([Some(id.clone()), Some(id.clone()), Some(id)]);
    }
    // No readable id: shard 1.
    bytes.extend(b"SH\xffX,2021-11-23T12:13:14Z,agent,a1,ok\n");
    bytes.extend(b"SHARDX,2021-11-23T12:13:14Z,agent\n");
    ids.extend([None, None]);
    let input = dir.write("sharded.csv", &bytes);
    let mut seen = vec![0u32; ids.len()];
    for k in 1..=3u32 {
        let report_path = dir.path(&format!("report{k}.jsonl"));
        let state = dir.path(&format!("state{k}.db"));
        let shard = format!("{k}/3");
        let ran = crate::util::run(&[
            "run",
            "--emulator",
            "--quiet",
            "--shard",
            &shard,
            "--state",
            state.to_str().unwrap(),
            "--report",
            report_path.to_str().unwrap(),
            &input,
        ]);
        assert!(ran.code == 0 || ran.code == 1, "{}", ran.stderr);
        let s = Shard::new(k, 3).unwrap();
        for row in report(&report_path) {
            let i = (row.record - 1) as usize;
            seen[i] += 1;
            match &ids[i] {
                Some(id) => {
                    assert_eq!(&row.conversation_id, id, "record {}", row.record);
                    assert!(s.contains(id), "record {} ({id}) in shard {k}", row.record);
                }
                None => assert_eq!(k, 1, "record {} without an id in shard {k}", row.record),
            }
        }
    }
    assert!(
        seen.iter().all(|n| *n == 1),
        "every row in exactly one shard: {seen:?}"
    );
}

/// A record longer than any message can be is not held in memory (it
/// took twice its size). A JSON array given as JSON Lines, one line of
/// 65 MiB, is one invalid row, and the lines after it are read. A CSV
/// quote that never closes, in a file with no other quote after it,
/// stops the reading at 64 MiB, naming the line where that record
/// starts: exit 2, nothing sent.
#[test]
fn a_record_over_64_mib_is_refused_not_held() {
    let dir = Dir::new();
    let big = 65 << 20;

    let mut jsonl = lines(&[jsonl_row("BIG1", "2021-11-23T12:13:14Z", "before")]);
    jsonl.push(b'[');
    while jsonl.len() < big {
        jsonl.extend_from_slice(br#"{"conversation_id":"BIG1","text":"x"},"#);
    }
    jsonl.extend_from_slice(b"{}]\n");
    jsonl.extend(lines(&[jsonl_row("BIG1", "2021-11-23T12:13:15Z", "after")]));
    let input = dir.write("array.jsonl", &jsonl);
    let report_path = dir.path("array.csv");
    let state = dir.path("array.db");
    let ran: Ran = Command::new(bin())
        .args([
            "run",
            "--emulator",
            "--quiet",
            "--state",
            state.to_str().unwrap(),
        ])
        .args(["--report", report_path.to_str().unwrap(), &input])
        .output()
        .unwrap()
        .into();
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let rows = report(&report_path);
    let statuses: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["created", "invalid", "created"], "{rows:?}");
    assert_eq!(rows[1].line, 2);
    assert!(
        rows[1].error_message.contains("over the 64 MiB")
            && rows[1].error_message.contains("JSON array"),
        "{}",
        rows[1].error_message
    );

    let mut csv = format!("{HEADER}BIG2,2021-11-23T12:13:14Z,agent,a1,before\n").into_bytes();
    csv.extend_from_slice(b"BIG2,2021-11-23T12:13:15Z,agent,a1,\"a quote left open\n");
    let mut i = 0;
    while csv.len() < big {
        i += 1;
        csv.extend(
            format!(
                "BIG2,2021-11-23T12:{:02}:{:02}Z,agent,a1,text {i}\n",
                i / 60 % 60,
                i % 60
            )
            .as_bytes(),
        );
    }
    let input = dir.write("quote.csv", &csv);
    let ran: Ran = Command::new(bin())
        .args(["check", &input])
        .output()
        .unwrap()
        .into();
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("quote.csv: line 3: a record starts here and runs on past 64 MiB"),
        "{}",
        ran.stderr
    );
}
