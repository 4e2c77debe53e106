//! Files as spreadsheets and other tools export them (the fixtures of
//! `fixtures.rs`), imported by the real binary into the emulator on
//! loopback: what the emulator stored (text, role, sender, instant) must be
//! what the file holds, and the report's lines must point back into it.
//! Then what is refused, and how `check` says each input was read.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use transcript_import::emulator::{Config, Emulator};

use crate::fixtures::{self, Expected};
use crate::util::{self, Dir, Ran};

/// One message as the API received it: conversation (the input's id, also
/// in `create` mode), role, sender, text, instant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Received {
    pub conversation: String,
    pub instant: DateTime<Utc>,
    pub role: String,
    pub sender: String,
    pub text: String,
}

fn instant(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

fn expected(messages: &[Expected]) -> Vec<Received> {
    let mut out: Vec<Received> = messages
        .iter()
        .map(|m| Received {
            conversation: m.conversation.to_string(),
            instant: instant(m.instant),
            role: m.role.to_string(),
            sender: m.sender.to_string(),
            text: m.text.to_string(),
        })
        .collect();
    out.sort();
    out
}

/// A GET on the emulator's own endpoints, over loopback.
fn emulator_get(emu: &Emulator, path: &str) -> String {
    let agent = ureq::Agent::config_builder()
        .proxy(None)
        .build()
        .new_agent();
    agent
        .get(&format!("{}{path}", emu.url()))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .body_mut()
        .read_to_string()
        .expect("a body")
}

/// What the emulator stored (`GET /_emulator/messages`), sorted, with the
/// API's conversation ids turned back into the input's through the report
/// (`create` mode gives them apart), after checking `/_emulator/stats`:
/// nothing stored twice, nothing out of order.
pub fn received(emu: &Emulator, report: &[util::ReportRow]) -> Vec<Received> {
    let stats: Value = serde_json::from_str(&emulator_get(emu, "/_emulator/stats")).unwrap();
    assert_eq!(stats["duplicates"], 0, "{stats}");
    assert_eq!(stats["order_violations"], 0, "{stats}");
    let input_id: HashMap<&str, &str> = report
        .iter()
        .map(|r| (r.api_conversation_id.as_str(), r.conversation_id.as_str()))
        .collect();
    let mut out: Vec<Received> = emulator_get(emu, "/_emulator/messages")
        .lines()
        .map(|l| {
            let m: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            let api_id = m["conversationId"].as_str().expect("conversationId");
            Received {
                conversation: input_id.get(api_id).copied().unwrap_or(api_id).to_string(),
                instant: instant(m["timestamp"].as_str().expect("timestamp")),
                role: m["sender"]["role"].as_str().expect("role").to_string(),
                sender: m["sender"]["externalId"]
                    .as_str()
                    .expect("externalId")
                    .to_string(),
                text: m["text"].as_str().expect("text").to_string(),
            }
        })
        .collect();
    out.sort();
    out
}

/// Import `input` with `flags` into a new emulator: the run, its report
/// and what the emulator received.
fn import(input: &str, flags: &[&str]) -> (Ran, Vec<util::ReportRow>, Vec<Received>) {
    let emu = Emulator::start(Config::default()).expect("emulator starts");
    let dir = Dir::new();
    let mut args = flags.to_vec();
    args.push(input);
    let ran = util::import(&emu.url(), &dir, "report.csv", &args);
    // A run refused before sending (exit 2) writes no report.
    let report = if ran.code == 2 {
        Vec::new()
    } else {
        util::report(&dir.path("report.csv"))
    };
    let got = received(&emu, &report);
    (ran, report, got)
}

/// Import a fixture with `flags`: every row created, the emulator holds
/// exactly `messages`, and each report row has the line and instant of
/// its message.
fn imports_as(name: &str, flags: &[&str], messages: &[Expected]) {
    let (ran, report, got) = import(&fixtures::arg(name), flags);
    assert_eq!(ran.code, 0, "{name} {flags:?}: {ran:?}");
    assert_eq!(got, expected(messages), "{name} {flags:?}");
    let lines: Vec<(u64, DateTime<Utc>)> = report
        .iter()
        .map(|r| {
            assert_eq!(r.status, "created", "{name}: {r:?}");
            (r.line, instant(&r.timestamp))
        })
        .collect();
    let want: Vec<(u64, DateTime<Utc>)> = messages
        .iter()
        .map(|m| (m.line, instant(m.instant)))
        .collect();
    assert_eq!(
        lines, want,
        "{name}: report lines and instants, in input order"
    );
}

#[test]
fn excel_unicode_text_utf16le_with_a_byte_order_mark() {
    imports_as(
        fixtures::UNICODE_TEXT,
        &[],
        &fixtures::unicode_text_messages(),
    );
}

#[test]
fn utf16be_with_a_byte_order_mark() {
    imports_as(fixtures::UTF16BE, &[], &fixtures::utf16_messages("CONVBE"));
}

#[test]
fn utf16_without_a_byte_order_mark_is_refused_then_read_with_encoding() {
    let (ran, report, got) = import(&fixtures::arg(fixtures::UTF16LE_NO_BOM), &[]);
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr.contains("looks like UTF-16 (little-endian"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .contains("hint: name its encoding: --encoding utf-16le"),
        "{}",
        ran.stderr
    );
    assert!(report.is_empty() && got.is_empty());
    imports_as(
        fixtures::UTF16LE_NO_BOM,
        &["--encoding", "utf-16le"],
        &fixtures::utf16_messages("CONVLE"),
    );
}

#[test]
fn excel_sep_line() {
    imports_as(fixtures::SEP, &[], &fixtures::sep_messages());
}

#[test]
fn windows_1252_is_refused_by_row_naming_the_encoding_then_read_with_it() {
    let (ran, report, got) = import(&fixtures::arg(fixtures::WINDOWS_1252), &[]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(
        got.is_empty(),
        "nothing sent in the wrong encoding: {got:?}"
    );
    assert_eq!(report.len(), 3);
    for r in &report {
        assert_eq!(r.status, "invalid");
        assert!(
            r.error_message.contains("invalid UTF-8")
                && r.error_message.contains("--encoding windows-1252"),
            "{r:?}"
        );
    }
    imports_as(
        fixtures::WINDOWS_1252,
        &["--encoding", "windows-1252"],
        &fixtures::windows_1252_messages(),
    );
    // `latin1` is the same encoding, by its WHATWG label.
    imports_as(
        fixtures::WINDOWS_1252,
        &["--encoding", "latin1"],
        &fixtures::windows_1252_messages(),
    );
}

#[test]
fn month_first_12_hour_dates_in_a_zone() {
    imports_as(
        fixtures::MONTH_FIRST,
        &[
            "--timestamp-format",
            fixtures::MONTH_FIRST_FORMAT,
            "--timezone",
            "America/New_York",
        ],
        &fixtures::month_first_messages(),
    );
}

#[test]
fn day_first_12_hour_dates_in_a_zone() {
    imports_as(
        fixtures::DAY_FIRST,
        &[
            "--timestamp-format",
            fixtures::DAY_FIRST_FORMAT,
            "--timezone",
            "Europe/London",
        ],
        &fixtures::day_first_messages(),
    );
}

#[test]
fn day_first_dotted_24_hour_dates() {
    imports_as(
        fixtures::DOTTED,
        &["--timestamp-format", fixtures::DOTTED_FORMAT],
        &fixtures::dotted_messages(),
    );
}

/// `03/04/2021` is March or April by the exporter's settings, not by its
/// text: without a format nothing is sent, and every reason shows the
/// flag, with both orders.
#[test]
fn local_dates_without_a_format_are_never_guessed() {
    for name in [fixtures::MONTH_FIRST, fixtures::DAY_FIRST] {
        let (ran, report, got) = import(&fixtures::arg(name), &["--timezone", "Europe/London"]);
        assert_eq!(ran.code, 1, "{name}: {ran:?}");
        assert!(got.is_empty(), "{name}: {got:?}");
        assert_eq!(report.len(), 4);
        for r in &report {
            assert_eq!(r.status, "invalid");
            assert!(
                r.error_message.contains("not guessed")
                    && r.error_message
                        .contains("--timestamp-format '%m/%d/%Y %I:%M %p' (month first)")
                    && r.error_message
                        .contains("--timestamp-format '%d/%m/%Y %I:%M %p' (day first)"),
                "{name}: {r:?}"
            );
        }
    }
    // Where the value tells (23 is no month), it is still not guessed.
    let dir = Dir::new();
    let input = dir.write(
        "us.csv",
        "conversation_id,timestamp,sender_role,sender_id,text\n\
         C1,11/23/2021 12:13 PM,agent,a,hi\n\
         C1,23.11.2021 13:06,agent,a,hi\n",
    );
    let emu = Emulator::start(Config::default()).expect("emulator starts");
    let ran = util::import(&emu.url(), &dir, "r.csv", &[&input]);
    assert_eq!(ran.code, 1, "{ran:?}");
    let report = util::report(&dir.path("r.csv"));
    assert!(
        report[0]
            .error_message
            .contains("--timestamp-format '%m/%d/%Y %I:%M %p'"),
        "{report:?}"
    );
    assert!(
        report[1]
            .error_message
            .contains("--timestamp-format '%d.%m.%Y %H:%M'"),
        "{report:?}"
    );
    assert!(received(&emu, &report).is_empty());
    // With the formats (repeatable), both rows go, in --timezone.
    let ran = util::import(
        &emu.url(),
        &dir,
        "r2.csv",
        &[
            "--timestamp-format",
            "%m/%d/%Y %I:%M %p",
            "--timestamp-format",
            "%d.%m.%Y %H:%M",
            "--timezone",
            "Europe/Berlin",
            &input,
        ],
    );
    assert_eq!(ran.code, 0, "{ran:?}");
    let report = util::report(&dir.path("r2.csv"));
    let sent: Vec<DateTime<Utc>> = received(&emu, &report).iter().map(|m| m.instant).collect();
    assert_eq!(
        sent,
        vec![
            instant("2021-11-23T11:13:00Z"),
            instant("2021-11-23T12:06:00Z")
        ]
    );
}

#[test]
fn workbook_first_sheet_with_date_cells() {
    imports_as(fixtures::WORKBOOK, &[], &fixtures::workbook_messages());
}

#[test]
fn workbook_dates_are_zone_less() {
    let mut shifted = fixtures::workbook_messages();
    // Rows 2, 3 and 6 are date cells, local time in Berlin (UTC+1 in
    // November); row 5 is text with a `Z`, which no zone moves.
    let instants = [
        "2021-11-23T11:13:14Z",
        "2021-11-23T11:13:20.500Z",
        "2021-11-23T12:14:00Z",
        "2021-11-24T08:00:00Z",
    ];
    for (m, at) in shifted.iter_mut().zip(instants) {
        m.instant = at;
    }
    imports_as(
        fixtures::WORKBOOK,
        &["--timezone", "Europe/Berlin"],
        &shifted,
    );
}

#[test]
fn workbook_second_sheet_by_name_and_by_number() {
    imports_as(
        fixtures::WORKBOOK,
        &["--sheet", "Archive"],
        &fixtures::archive_messages(),
    );
    imports_as(
        fixtures::WORKBOOK,
        &["--sheet", "2"],
        &fixtures::archive_messages(),
    );
    let (ran, _, got) = import(&fixtures::arg(fixtures::WORKBOOK), &["--sheet", "Nope"]);
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(ran.stderr.contains("Nope"), "{}", ran.stderr);
    assert!(ran.stderr.contains("Chats") && ran.stderr.contains("Archive"));
    assert!(got.is_empty());
}

#[test]
fn a_truncated_workbook_is_refused() {
    let dir = Dir::new();
    let bytes = std::fs::read(fixtures::path(fixtures::WORKBOOK)).unwrap();
    let input = dir.write("cut.xlsx", &bytes[..bytes.len() / 2]);
    let ran = util::run(&["check", &input]);
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr
            .starts_with(&format!("error: {input}: cannot read as xlsx")),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
}

/// The size cap, on a sparse file: a workbook is read into memory, so one
/// over the cap is refused before a byte of it is read, naming its size.
#[test]
fn a_workbook_over_the_size_cap_is_refused_naming_its_size() {
    let dir = Dir::new();
    let path = dir.path("huge.xlsx");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(transcript_import::read::workbook::MAX_WORKBOOK_BYTES + 1)
        .unwrap();
    let ran = util::run(&["check", path.to_str().unwrap()]);
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr.contains(&format!(
            "error: {}: the workbook is 64.0 MiB (67108865 bytes), \
             over the 64 MiB a workbook may have (it is read into memory)",
            path.display()
        )) && ran.stderr.contains("hint: save the sheet as CSV"),
        "{}",
        ran.stderr
    );
}

#[test]
fn a_bad_encoding_name_is_a_usage_error_naming_the_flag() {
    let ran = util::run(&[
        "check",
        "--encoding",
        "nonsense",
        &fixtures::arg(fixtures::SEP),
    ]);
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr
            .contains("invalid value for --encoding: `nonsense` is not an encoding name"),
        "{}",
        ran.stderr
    );
}

/// `check` says, for each input, the format, delimiter and encoding it
/// read it with, and why.
#[test]
fn check_says_how_each_input_was_read() {
    let ran = util::run(&[
        "check",
        "--encoding",
        "windows-1252",
        "--timestamp-format",
        fixtures::DOTTED_FORMAT,
        &fixtures::arg(fixtures::UNICODE_TEXT),
        &fixtures::arg(fixtures::UTF16BE),
        &fixtures::arg(fixtures::SEP),
        &fixtures::arg(fixtures::WINDOWS_1252),
        &fixtures::arg(fixtures::DOTTED),
        &fixtures::arg(fixtures::WORKBOOK),
        &fixtures::arg("flat.jsonl"),
    ]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let line = |name: &str| {
        let prefix = format!("  {}: ", fixtures::arg(name));
        ran.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no line for {name}: {}", ran.stdout))
            .to_string()
    };
    assert_eq!(
        line(fixtures::UNICODE_TEXT),
        "CSV, delimiter tab (detected), UTF-16LE (byte order mark)"
    );
    assert_eq!(
        line(fixtures::UTF16BE),
        "CSV, delimiter tab (detected), UTF-16BE (byte order mark)"
    );
    assert_eq!(
        line(fixtures::SEP),
        "CSV, delimiter `;` (its sep= line), windows-1252 (--encoding)"
    );
    assert_eq!(
        line(fixtures::WINDOWS_1252),
        "CSV, delimiter `,` (detected), windows-1252 (--encoding)"
    );
    assert_eq!(
        line(fixtures::DOTTED),
        "CSV, delimiter `;` (detected), windows-1252 (--encoding)"
    );
    assert_eq!(
        line(fixtures::WORKBOOK),
        "xlsx workbook, sheet `Chats` (1 of 2), header on row 1"
    );
    assert_eq!(line("flat.jsonl"), "JSONL, windows-1252 (--encoding)");
    assert!(
        ran.stdout.contains(
            "timestamps:    --timestamp-format '%d.%m.%Y %H:%M', then RFC 3339 or epoch; \
             without a zone, in UTC"
        ),
        "{}",
        ran.stdout
    );
}

/// Rejected rows of an input decoded from Windows-1252 are read back from
/// its UTF-8 spool: the rejects file is UTF-8 with a byte order mark, so
/// fed back with the run's own flags (`--encoding windows-1252` again) it
/// is read as UTF-8, and the fixed row goes with its accents intact.
#[test]
fn rejects_of_a_decoded_input_feed_back_with_the_same_flags() {
    let dir = Dir::new();
    let text = "sep=;\r\nconversation_id;timestamp;sender_role;sender_id;text\r\n\
                C1252;2021-11-23T09:00:00Z;customer;jos\u{e9};Caf\u{e9} \u{201c}cr\u{e8}me\u{201d}\r\n\
                C1252;2021-11-23T09:00:10Z;robot;a-1;It\u{2019}s on its way\r\n";
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(text);
    assert!(!unmappable);
    let input = dir.write("in.csv", &bytes);
    let rejects = dir.path("rejects.csv");
    let emu = Emulator::start(Config::default()).expect("emulator starts");
    let flags = ["--encoding", "windows-1252"];
    let mut args = flags.to_vec();
    args.extend(["--rejects", rejects.to_str().unwrap(), &input]);
    let ran = util::import(&emu.url(), &dir, "r1.csv", &args);
    assert_eq!(ran.code, 1, "{ran:?}");
    let got = std::fs::read(&rejects).unwrap();
    let want = "\u{feff}sep=;\r\nconversation_id;timestamp;sender_role;sender_id;text;status;reason\r\n\
                C1252;2021-11-23T09:00:10Z;robot;a-1;It\u{2019}s on its way;invalid;\
                \"sender_role: unknown role (expected agent, customer or system; see --role-map): \"\"robot\"\"\"\r\n";
    assert_eq!(String::from_utf8_lossy(&got), want);

    std::fs::write(
        &rejects,
        String::from_utf8(got)
            .unwrap()
            .replace(";robot;", ";agent;"),
    )
    .unwrap();
    let mut args = flags.to_vec();
    args.push(rejects.to_str().unwrap());
    let ran = util::import(&emu.url(), &dir, "r2.csv", &args);
    assert_eq!(ran.code, 0, "{ran:?}");
    let report = util::report(&dir.path("r2.csv"));
    let texts: Vec<String> = received(&emu, &report)
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(
        texts,
        [
            "Caf\u{e9} \u{201c}cr\u{e8}me\u{201d}",
            "It\u{2019}s on its way"
        ]
    );
}

/// A workbook's rejected rows are its sheet's rows as CSV (as they were
/// read), so `--rejects` takes a `.csv` file that imports as it stands.
#[test]
fn rejects_of_a_workbook_are_csv() {
    let dir = Dir::new();
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let rows = [
        [
            "conversation_id",
            "timestamp",
            "sender_role",
            "sender_id",
            "text",
        ],
        ["CXL", "2021-11-23T09:00:00Z", "customer", "c-1", "Hallo"],
        [
            "CXL",
            "2021-11-23T09:00:05Z",
            "bot",
            "b-1",
            "Zwei, \"Zeilen\"\nhier",
        ],
    ];
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            sheet.write_string(r as u32, c as u16, *cell).unwrap();
        }
    }
    let input = dir.write("in.xlsx", book.save_to_buffer().unwrap());
    let emu = Emulator::start(Config::default()).expect("emulator starts");
    let rejects = dir.path("rejects.csv");
    let ran = util::import(
        &emu.url(),
        &dir,
        "r1.csv",
        &["--rejects", rejects.to_str().unwrap(), &input],
    );
    assert_eq!(ran.code, 1, "{ran:?}");
    let got = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(
        got,
        "\u{feff}conversation_id,timestamp,sender_role,sender_id,text,status,reason\n\
         CXL,2021-11-23T09:00:05Z,bot,b-1,\"Zwei, \"\"Zeilen\"\"\nhier\",invalid,\
         \"sender_role: unknown role (expected agent, customer or system; see --role-map): \"\"bot\"\"\"\n"
    );
    std::fs::write(&rejects, got.replace(",bot,", ",system,")).unwrap();
    let ran = util::import(&emu.url(), &dir, "r2.csv", &[rejects.to_str().unwrap()]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let report = util::report(&dir.path("r2.csv"));
    assert_eq!(received(&emu, &report).len(), 2);
}

/// `report` without inputs reads the last run's inputs with its flags
/// (the ledger keeps its command line): `--encoding` and
/// `--timestamp-format` included; given without inputs they are refused.
#[test]
fn report_rereads_the_last_runs_inputs_with_its_encoding_and_formats() {
    let dir = Dir::new();
    let emu = Emulator::start(Config::default()).expect("emulator starts");
    let input = fixtures::arg(fixtures::WINDOWS_1252);
    let ran = util::import(
        &emu.url(),
        &dir,
        "r1.csv",
        &["--encoding", "windows-1252", &input],
    );
    assert_eq!(ran.code, 0, "{ran:?}");
    let state = dir.path("state.db");
    let out = dir.path("again.csv");
    let ran = util::run(&[
        "report",
        "--state",
        state.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let again = util::report(&out);
    assert_eq!(again.len(), 3);
    assert!(again.iter().all(|r| r.status == "created"), "{again:?}");
    for flag in [
        ["--encoding", "latin1"],
        ["--timestamp-format", fixtures::DOTTED_FORMAT],
        ["--sheet", "2"],
    ] {
        let ran = util::run(&[
            "report",
            "--state",
            state.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            flag[0],
            flag[1],
        ]);
        assert_eq!(ran.code, 2, "{ran:?}");
        assert!(
            ran.stderr.contains(&format!(
                "{}: input flags apply to inputs given on the command line",
                flag[0]
            )),
            "{}",
            ran.stderr
        );
    }
}
