//! The fixtures of `formats`, under `tests/data/input/`: files as
//! spreadsheets and helpdesks export them, written by the generators here
//! (their bytes matter: byte order marks, UTF-16, Windows-1252, a workbook)
//! and committed. `fixtures_are_what_their_generators_write` checks that
//! the committed files are exactly what the generators write; after
//! changing a generator, write them again with
//! `UPDATE_FIXTURES=1 cargo test --test integration fixtures`.
//!
//! Each fixture comes with the messages it holds, as the API must receive
//! them: conversation, role, sender, text, the instant sent (RFC 3339 UTC)
//! and the line (or sheet row) where its row starts.

use std::path::PathBuf;

use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook};

/// One message a fixture holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expected {
    pub conversation: &'static str,
    pub instant: &'static str,
    pub role: &'static str,
    pub sender: &'static str,
    pub text: &'static str,
    pub line: u64,
}

const fn msg(
    conversation: &'static str,
    instant: &'static str,
    role: &'static str,
    sender: &'static str,
    text: &'static str,
    line: u64,
) -> Expected {
    Expected {
        conversation,
        instant,
        role,
        sender,
        text,
        line,
    }
}

pub fn path(name: &str) -> PathBuf {
    PathBuf::from(format!(
        "{}/tests/data/input/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

/// The path of a fixture, as a string for the command line.
pub fn arg(name: &str) -> String {
    path(name).to_str().expect("utf-8 path").to_string()
}

const HEADER: [&str; 5] = [
    "conversation_id",
    "timestamp",
    "sender_role",
    "sender_id",
    "text",
];

/// Rows as CSV with `delimiter`, CRLF line ends, quoting as needed.
fn csv_text(delimiter: u8, header: &[&str], rows: &[[&str; 5]]) -> String {
    let mut w = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(header).unwrap();
    for row in rows {
        w.write_record(row).unwrap();
    }
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

fn utf16le(text: &str, bom: bool) -> Vec<u8> {
    let mut out = if bom { vec![0xFF, 0xFE] } else { Vec::new() };
    out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    out
}

fn utf16be(text: &str) -> Vec<u8> {
    let mut out = vec![0xFE, 0xFF];
    out.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
    out
}

// ---- Excel's "Unicode Text": UTF-16LE with a byte order mark, tabs, CRLF.

pub const UNICODE_TEXT: &str = "excel_unicode_text.txt";

pub fn unicode_text_messages() -> Vec<Expected> {
    vec![
        msg(
            "CONVU16",
            "2021-11-23T12:13:14Z",
            "customer",
            "c-1",
            "Grüße aus Köln 😀",
            2,
        ),
        msg(
            "CONVU16",
            "2021-11-23T12:13:20Z",
            "agent",
            "a-7",
            "Two lines:\r\n\"quoted\"\tand 日本語",
            3,
        ),
        msg(
            "CONVU16",
            "2021-11-23T12:14:00Z",
            "customer",
            "c-1",
            "Danke",
            5,
        ),
    ]
}

fn unicode_text() -> Vec<u8> {
    let rows: Vec<[&str; 5]> = unicode_text_messages()
        .iter()
        .map(|m| [m.conversation, m.instant, m.role, m.sender, m.text])
        .collect();
    utf16le(&csv_text(b'\t', &HEADER, &rows), true)
}

// ---- UTF-16BE with a byte order mark, and UTF-16LE without one, both as
// Excel's "Unicode Text" lays them out (tabs, CRLF).

pub const UTF16BE: &str = "utf16be_bom.txt";
pub const UTF16LE_NO_BOM: &str = "utf16le_no_bom.txt";

pub fn utf16_messages(conversation: &'static str) -> Vec<Expected> {
    vec![
        msg(
            conversation,
            "2021-11-23T08:00:00Z",
            "customer",
            "ü-1",
            "Ça marche ? €5",
            2,
        ),
        msg(
            conversation,
            "2021-11-23T08:00:05.250Z",
            "agent",
            "a-2",
            "Oui 👍",
            3,
        ),
    ]
}

fn utf16_csv(conversation: &'static str) -> String {
    let rows: Vec<[&str; 5]> = utf16_messages(conversation)
        .iter()
        .map(|m| [m.conversation, m.instant, m.role, m.sender, m.text])
        .collect();
    csv_text(b'\t', &HEADER, &rows)
}

// ---- Excel's `sep=;` first line.

pub const SEP: &str = "excel_sep.csv";

pub fn sep_messages() -> Vec<Expected> {
    vec![
        msg(
            "CONVSEP",
            "2021-11-23T10:00:00Z",
            "customer",
            "c-3",
            "Bonjour, j'ai une question",
            3,
        ),
        msg(
            "CONVSEP",
            "2021-11-23T10:00:30Z",
            "agent",
            "a-1",
            "Bien sûr;\r\nje vous écoute",
            4,
        ),
        msg(
            "CONVSEP",
            "2021-11-23T10:01:00Z",
            "customer",
            "c-3",
            "Merci, à bientôt",
            6,
        ),
    ]
}

fn sep() -> Vec<u8> {
    let rows: Vec<[&str; 5]> = sep_messages()
        .iter()
        .map(|m| [m.conversation, m.instant, m.role, m.sender, m.text])
        .collect();
    let header = ["Chat ID", "Created At", "Role", "Author ID", "Message"];
    format!("sep=;\r\n{}", csv_text(b';', &header, &rows)).into_bytes()
}

// ---- Windows-1252: smart quotes, accents, the euro sign.

pub const WINDOWS_1252: &str = "windows_1252.csv";

pub fn windows_1252_messages() -> Vec<Expected> {
    vec![
        msg(
            "CONV1252",
            "2021-11-23T09:00:00Z",
            "customer",
            "josé",
            "Café \u{201c}crème\u{201d} for 3 €",
            2,
        ),
        msg(
            "CONV1252",
            "2021-11-23T09:00:10Z",
            "agent",
            "a-1",
            "It\u{2019}s on its way \u{2013} Straße 5",
            3,
        ),
        msg(
            "CONV1252",
            "2021-11-23T09:00:20Z",
            "customer",
            "josé",
            "Thanks",
            4,
        ),
    ]
}

fn windows_1252() -> Vec<u8> {
    let rows: Vec<[&str; 5]> = windows_1252_messages()
        .iter()
        .map(|m| [m.conversation, m.instant, m.role, m.sender, m.text])
        .collect();
    let text = csv_text(b',', &HEADER, &rows);
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&text);
    assert!(!unmappable, "every character has a Windows-1252 byte");
    bytes.into_owned()
}

// ---- Local date forms: month first, 12-hour (US); day first, 12-hour
// (UK); day first with dots, 24-hour (Germany). The US and UK files hold
// the same strings, which mean other days.

pub const MONTH_FIRST: &str = "dates_month_first_12h.csv";
pub const DAY_FIRST: &str = "dates_day_first_12h.csv";
pub const DOTTED: &str = "dates_day_first_dotted.csv";

pub const MONTH_FIRST_FORMAT: &str = "%m/%d/%Y %I:%M %p";
pub const DAY_FIRST_FORMAT: &str = "%d/%m/%Y %I:%M %p";
pub const DOTTED_FORMAT: &str = "%d.%m.%Y %H:%M";

/// The dates both 12-hour files hold, in file order.
const TWELVE_HOUR: [&str; 4] = [
    "03/04/2021 9:05 AM",
    "03/04/2021 12:30 AM",
    "03/04/2021 12:00 PM",
    "11/12/2021 1:13 PM",
];

/// As read in America/New_York (`--timezone`).
pub fn month_first_messages() -> Vec<Expected> {
    vec![
        msg("CONVUS", "2021-03-04T14:05:00Z", "customer", "c-1", "Hi", 2),
        msg(
            "CONVUS",
            "2021-03-04T05:30:00Z",
            "system",
            "bot",
            "Opened",
            3,
        ),
        msg("CONVUS", "2021-03-04T17:00:00Z", "agent", "a-1", "Hello", 4),
        msg(
            "CONVUS",
            "2021-11-12T18:13:00Z",
            "customer",
            "c-1",
            "Bye",
            5,
        ),
    ]
}

/// As read in Europe/London (`--timezone`): GMT until the end of March.
pub fn day_first_messages() -> Vec<Expected> {
    vec![
        msg("CONVUK", "2021-04-03T08:05:00Z", "customer", "c-1", "Hi", 2),
        msg(
            "CONVUK",
            "2021-04-02T23:30:00Z",
            "system",
            "bot",
            "Opened",
            3,
        ),
        msg("CONVUK", "2021-04-03T11:00:00Z", "agent", "a-1", "Hello", 4),
        msg(
            "CONVUK",
            "2021-12-11T13:13:00Z",
            "customer",
            "c-1",
            "Bye",
            5,
        ),
    ]
}

fn twelve_hour(messages: &[Expected]) -> Vec<u8> {
    let rows: Vec<[&str; 5]> = messages
        .iter()
        .zip(TWELVE_HOUR)
        .map(|(m, t)| [m.conversation, t, m.role, m.sender, m.text])
        .collect();
    csv_text(b',', &HEADER, &rows).into_bytes()
}

/// As read in UTC.
pub fn dotted_messages() -> Vec<Expected> {
    vec![
        msg(
            "CONVDE",
            "2021-11-23T13:06:00Z",
            "customer",
            "k-1",
            "Guten Tag",
            2,
        ),
        msg(
            "CONVDE",
            "2021-11-23T13:07:00Z",
            "agent",
            "m-2",
            "Hallo!",
            3,
        ),
    ]
}

fn dotted() -> Vec<u8> {
    let dates = ["23.11.2021 13:06", "23.11.2021 13:07"];
    let rows: Vec<[&str; 5]> = dotted_messages()
        .iter()
        .zip(dates)
        .map(|(m, t)| [m.conversation, t, m.role, m.sender, m.text])
        .collect();
    csv_text(b';', &HEADER, &rows).into_bytes()
}

// ---- A workbook: date cells, numbers, a blank row, a second sheet.

pub const WORKBOOK: &str = "workbook.xlsx";

/// The first sheet, `Chats`, in UTC; lines are sheet rows.
pub fn workbook_messages() -> Vec<Expected> {
    vec![
        msg(
            "CONVXLSX1",
            "2021-11-23T12:13:14Z",
            "customer",
            "1001",
            "Hallo, ich habe eine Frage",
            2,
        ),
        msg(
            "CONVXLSX1",
            "2021-11-23T12:13:20.500Z",
            "agent",
            "a-7",
            "Zwei\nZeilen, \"zitiert\"",
            3,
        ),
        // Row 4 is blank.
        msg(
            "CONVXLSX1",
            "2021-11-23T12:14:00Z",
            "customer",
            "1001",
            "Danke schön",
            5,
        ),
        msg(
            "CONVXLSX2",
            "2021-11-24T09:00:00Z",
            "agent",
            "7",
            "Guten Morgen",
            6,
        ),
    ]
}

/// The second sheet, `Archive`.
pub fn archive_messages() -> Vec<Expected> {
    vec![
        msg(
            "CONVARCH",
            "2020-01-02T03:04:05Z",
            "customer",
            "c-9",
            "An old question",
            2,
        ),
        msg(
            "CONVARCH",
            "2020-01-02T03:05:00Z",
            "agent",
            "a-9",
            "An old answer",
            3,
        ),
    ]
}

fn workbook() -> Vec<u8> {
    let mut book = Workbook::new();
    // A fixed creation time: the same bytes on every run.
    let created = ExcelDateTime::from_ymd(2024, 1, 1).unwrap();
    book.set_properties(&DocProperties::new().set_creation_datetime(&created));
    let date = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    let at = |y: u16, mo: u8, d: u8, h: u16, mi: u8, s: u8, ms: u16| {
        ExcelDateTime::from_ymd(y, mo, d)
            .unwrap()
            .and_hms_milli(h, mi, s, ms)
            .unwrap()
    };

    let sheet = book.add_worksheet();
    sheet.set_name("Chats").unwrap();
    for (col, name) in HEADER.iter().enumerate() {
        sheet.write_string(0, col as u16, *name).unwrap();
    }
    // Row 2: a date cell, a sender id typed as a number.
    sheet.write_string(1, 0, "CONVXLSX1").unwrap();
    sheet
        .write_datetime_with_format(1, 1, at(2021, 11, 23, 12, 13, 14, 0), &date)
        .unwrap();
    sheet.write_string(1, 2, "customer").unwrap();
    sheet.write_number(1, 3, 1001.0).unwrap();
    sheet
        .write_string(1, 4, "Hallo, ich habe eine Frage")
        .unwrap();
    // Row 3: milliseconds, a line break and quotes in the text.
    sheet.write_string(2, 0, "CONVXLSX1").unwrap();
    sheet
        .write_datetime_with_format(2, 1, at(2021, 11, 23, 12, 13, 20, 500), &date)
        .unwrap();
    sheet.write_string(2, 2, "agent").unwrap();
    sheet.write_string(2, 3, "a-7").unwrap();
    sheet
        .write_string(2, 4, "Zwei\nZeilen, \"zitiert\"")
        .unwrap();
    // Row 4 blank; row 5: a timestamp typed as text.
    sheet.write_string(4, 0, "CONVXLSX1").unwrap();
    sheet.write_string(4, 1, "2021-11-23T12:14:00Z").unwrap();
    sheet.write_string(4, 2, "customer").unwrap();
    sheet.write_number(4, 3, 1001.0).unwrap();
    sheet.write_string(4, 4, "Danke schön").unwrap();
    // Row 6: another conversation; a note right of the header's columns.
    sheet.write_string(5, 0, "CONVXLSX2").unwrap();
    sheet
        .write_datetime_with_format(5, 1, at(2021, 11, 24, 9, 0, 0, 0), &date)
        .unwrap();
    sheet.write_string(5, 2, "agent").unwrap();
    sheet.write_number(5, 3, 7.0).unwrap();
    sheet.write_string(5, 4, "Guten Morgen").unwrap();
    sheet
        .write_string(5, 7, "a note outside the table")
        .unwrap();

    let archive = book.add_worksheet();
    archive.set_name("Archive").unwrap();
    for (col, name) in HEADER.iter().enumerate() {
        archive.write_string(0, col as u16, *name).unwrap();
    }
    for (row, m, when) in [
        (1, &archive_messages()[0], at(2020, 1, 2, 3, 4, 5, 0)),
        (2, &archive_messages()[1], at(2020, 1, 2, 3, 5, 0, 0)),
    ] {
        archive.write_string(row, 0, m.conversation).unwrap();
        archive
            .write_datetime_with_format(row, 1, &when, &date)
            .unwrap();
        archive.write_string(row, 2, m.role).unwrap();
        archive.write_string(row, 3, m.sender).unwrap();
        archive.write_string(row, 4, m.text).unwrap();
    }
    book.save_to_buffer().unwrap()
}

// ---- Nested JSON: a conversation per line, its messages in an array.

/// A helpdesk's export: conversation objects holding `messages`, each with
/// an author object. Roles are the helpdesk's (`user`, `admin`, `bot`).
pub const NESTED_MESSAGES: &str = "nested_messages.jsonl";
/// A dialogue corpus: `dialogue_id` and `turns` of speaker and utterance,
/// no timestamps.
pub const NESTED_TURNS: &str = "nested_turns.jsonl";

pub fn nested_messages_expected() -> Vec<Expected> {
    vec![
        msg(
            "CONVJQ1",
            "2021-11-23T12:00:00Z",
            "customer",
            "u-1",
            "My order is late",
            0,
        ),
        msg(
            "CONVJQ1",
            "2021-11-23T12:00:42.120Z",
            "system",
            "b-1",
            "An agent will be with you shortly",
            0,
        ),
        msg(
            "CONVJQ1",
            "2021-11-23T12:01:30Z",
            "agent",
            "a-5",
            "Sorry about that: it ships \"today\"",
            0,
        ),
        msg(
            "CONVJQ2",
            "2021-11-24T08:00:00Z",
            "customer",
            "u-2",
            "Hallo\nzweite Zeile",
            0,
        ),
        msg(
            "CONVJQ2",
            "2021-11-24T08:05:00Z",
            "agent",
            "a-5",
            "Guten Tag",
            0,
        ),
    ]
}

fn nested_messages() -> Vec<u8> {
    let role = |r: &str| match r {
        "customer" => "user",
        "agent" => "admin",
        _ => "bot",
    };
    let mut out = Vec::new();
    for (id, subject) in [("CONVJQ1", "Late order"), ("CONVJQ2", "Frage")] {
        let messages: Vec<serde_json::Value> = nested_messages_expected()
            .iter()
            .filter(|m| m.conversation == id)
            .map(|m| {
                serde_json::json!({
                    "id": format!("msg-{}", m.instant),
                    "created_at": m.instant,
                    "author": {"type": role(m.role), "id": m.sender, "name": "someone"},
                    "body": m.text,
                })
            })
            .collect();
        let conversation = serde_json::json!({
            "id": id,
            "subject": subject,
            "state": "closed",
            "messages": messages,
        });
        out.extend(conversation.to_string().into_bytes());
        out.push(b'\n');
    }
    out
}

/// What the turns recipe sends: external ids of `--conversations create`,
/// one second per turn from 2023-11-14T22:13:20Z (epoch 1700000000).
pub fn nested_turns_expected() -> Vec<Expected> {
    vec![
        msg(
            "sgd_1_00001",
            "2023-11-14T22:13:20Z",
            "customer",
            "user",
            "I need a table for two tonight",
            0,
        ),
        msg(
            "sgd_1_00001",
            "2023-11-14T22:13:21Z",
            "agent",
            "system",
            "Which restaurant?",
            0,
        ),
        msg(
            "sgd_1_00001",
            "2023-11-14T22:13:22Z",
            "customer",
            "user",
            "Café Müller, at 7 pm",
            0,
        ),
        msg(
            "sgd_1_00002",
            "2023-11-14T22:13:20Z",
            "customer",
            "user",
            "Is it going to rain?",
            0,
        ),
        msg(
            "sgd_1_00002",
            "2023-11-14T22:13:21Z",
            "agent",
            "system",
            "No, sunny all day.",
            0,
        ),
    ]
}

fn nested_turns() -> Vec<u8> {
    let mut out = Vec::new();
    for id in ["sgd_1_00001", "sgd_1_00002"] {
        let turns: Vec<serde_json::Value> = nested_turns_expected()
            .iter()
            .filter(|m| m.conversation == id)
            .map(|m| {
                serde_json::json!({
                    "speaker": m.sender.to_uppercase(),
                    "utterance": m.text,
                })
            })
            .collect();
        let dialogue = serde_json::json!({
            "dialogue_id": id,
            "services": ["Restaurants_1"],
            "turns": turns,
        });
        out.extend(dialogue.to_string().into_bytes());
        out.push(b'\n');
    }
    out
}

/// Every fixture: its name and bytes.
pub fn all() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (UNICODE_TEXT, unicode_text()),
        (UTF16BE, utf16be(&utf16_csv("CONVBE"))),
        (UTF16LE_NO_BOM, utf16le(&utf16_csv("CONVLE"), false)),
        (SEP, sep()),
        (WINDOWS_1252, windows_1252()),
        (MONTH_FIRST, twelve_hour(&month_first_messages())),
        (DAY_FIRST, twelve_hour(&day_first_messages())),
        (DOTTED, dotted()),
        (WORKBOOK, workbook()),
        (NESTED_MESSAGES, nested_messages()),
        (NESTED_TURNS, nested_turns()),
    ]
}

#[test]
fn fixtures_are_what_their_generators_write() {
    let update = std::env::var_os("UPDATE_FIXTURES").is_some();
    let mut stale = Vec::new();
    for (name, bytes) in all() {
        let path = path(name);
        if std::fs::read(&path).ok().as_deref() == Some(&bytes[..]) {
            continue;
        }
        if update {
            std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        } else {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "fixtures differ from what their generators write: {stale:?}; \
         run UPDATE_FIXTURES=1 cargo test --test integration fixtures, and review the diff"
    );
}
