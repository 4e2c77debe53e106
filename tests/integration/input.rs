//! Integration tests: input. The read and validate stages through the
//! library API, on the files under `tests/data/input/` and
//! `tests/data/malformed/`.

use transcript_import::model::Field;
use transcript_import::model::{Role, SourceId};
use transcript_import::read::{self, Format, RawRecord, ReadError, ReadOptions, Source};
use transcript_import::validate::{self, RoleMap, ValidateOptions};

fn data(path: &str) -> String {
    format!("{}/tests/data/{path}", env!("CARGO_MANIFEST_DIR"))
}

fn open(path: &str, opts: &ReadOptions) -> Source {
    read::open(SourceId(3), &data(path), opts).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn records(source: &Source) -> Vec<RawRecord> {
    source
        .records()
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// Every record read back by offset gives the same fields.
fn assert_read_at(source: &Source, recs: &[RawRecord]) {
    let mut r = source.reader().unwrap();
    // Backwards, so every read seeks.
    for rec in recs.iter().rev() {
        let again = r.read_at(&rec.pos).unwrap();
        assert_eq!(again.pos, rec.pos);
        assert_eq!(again.fields, rec.fields, "record {}", rec.pos.record);
    }
}

type Msg = (String, String, Role, String, String);

/// (record, line, message or reason) for every record; checks `read_at` too.
fn read_all(
    path: &str,
    ropts: &ReadOptions,
    vopts: &ValidateOptions,
) -> Vec<(u64, u64, Result<Msg, String>)> {
    let source = open(path, ropts);
    let recs = records(&source);
    assert_read_at(&source, &recs);
    recs.into_iter()
        .map(|rec| {
            let pos = rec.pos;
            assert_eq!(pos.source, SourceId(3));
            let row = rec
                .fields
                .and_then(|f| validate::row(pos, f, vopts))
                .map(|r| {
                    (
                        r.conversation_id,
                        r.timestamp.to_rfc3339(),
                        r.role,
                        r.sender_id,
                        r.text,
                    )
                })
                .map_err(|e| e.to_string());
            (pos.record, pos.line, row)
        })
        .collect()
}

fn plain(path: &str) -> Vec<(u64, u64, Result<Msg, String>)> {
    read_all(path, &ReadOptions::default(), &ValidateOptions::default())
}

fn msg(c: &str, t: &str, r: Role, s: &str, x: &str) -> Result<Msg, String> {
    Ok((c.into(), t.into(), r, s.into(), x.into()))
}

#[test]
fn source_and_reader_can_cross_threads() {
    fn sync<T: Sync + Send>() {}
    fn send<T: Send>() {}
    sync::<Source>();
    send::<read::RecordReader>();
}

#[test]
fn bom_crlf_quoted_multiline_csv() {
    let got = plain("input/bom_crlf_multiline.csv");
    assert_eq!(
        got,
        vec![
            (
                1,
                2,
                msg(
                    "CONV1",
                    "2021-11-23T12:13:14Z",
                    Role::Customer,
                    "c1",
                    "Hello, I have a question"
                )
            ),
            (
                2,
                3,
                msg(
                    "CONV1",
                    "2021-11-23T12:13:15.555Z",
                    Role::Agent,
                    "a1",
                    "Sure.\r\nWhat is it? Say \"please\",\r\nthen ask."
                )
            ),
            // Record 2 spans lines 3-5; line 6 is blank.
            (
                3,
                7,
                msg(
                    "CONV1",
                    "2021-11-23T12:14:00Z",
                    Role::Customer,
                    "c1",
                    "Thanks"
                )
            ),
        ]
    );
    let source = open("input/bom_crlf_multiline.csv", &ReadOptions::default());
    assert_eq!(source.format, Format::Csv);
    let recs = records(&source);
    // Offsets count the BOM: the header is 3 + 54 bytes.
    assert_eq!(recs[0].pos.offset, 57);
}

#[test]
fn semicolon_csv() {
    assert_eq!(
        plain("input/semicolon.csv"),
        vec![
            (
                1,
                2,
                msg(
                    "CONV2",
                    "2021-11-23T11:13:14Z",
                    Role::Agent,
                    "a1",
                    "Bonjour; ça va?"
                )
            ),
            (
                2,
                3,
                msg(
                    "CONV2",
                    "2021-11-23T12:13:14.555Z",
                    Role::Customer,
                    "c1",
                    "Oui, merci"
                )
            ),
        ]
    );
}

#[test]
fn tab_csv_with_spaced_header_names_and_epochs() {
    assert_eq!(
        plain("input/tab.tsv"),
        vec![
            (
                1,
                2,
                msg(
                    "CONV3",
                    "2021-11-23T12:13:14Z",
                    Role::System,
                    "bot",
                    "Welcome, \"friend\""
                )
            ),
            (
                2,
                3,
                msg(
                    "CONV3",
                    "2021-11-23T12:13:14.500Z",
                    Role::Customer,
                    "c9",
                    "Hi"
                )
            ),
        ]
    );
}

#[test]
fn forced_delimiter() {
    let opts = ReadOptions {
        delimiter: Some(b'|'),
        ..ReadOptions::default()
    };
    let got = read_all("input/pipe.csv", &opts, &ValidateOptions::default());
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[0].2,
        msg(
            "CONV10",
            "2021-03-14T01:30:00Z",
            Role::Agent,
            "a1",
            "before the gap"
        )
    );
}

#[test]
fn zoneless_times_in_a_zone_with_dst() {
    let v = ValidateOptions {
        timezone: chrono_tz::America::New_York,
        ..ValidateOptions::default()
    };
    let got = read_all("input/pipe.csv", &ReadOptions::default(), &v);
    assert_eq!(
        got,
        vec![
            (1, 2, msg("CONV10", "2021-03-14T06:30:00Z", Role::Agent, "a1", "before the gap")),
            (
                2,
                3,
                Err("timestamp: 2021-03-14 02:30:00 does not exist in America/New_York (DST gap)".into())
            ),
            (
                3,
                4,
                Err(
                    "timestamp: 2021-11-07 01:30:00 is ambiguous in America/New_York (DST overlap; give an offset)"
                        .into()
                )
            ),
        ]
    );
}

#[test]
fn ragged_rows_are_per_row_reasons() {
    assert_eq!(
        plain("input/ragged.csv"),
        vec![
            (
                1,
                2,
                msg("CONV4", "2021-11-23T12:13:14Z", Role::Agent, "a1", "ok")
            ),
            (2, 3, Err("row has 4 fields, header has 5".into())),
            (3, 4, Err("row has 6 fields, header has 5".into())),
            (
                4,
                5,
                msg("CONV4", "2021-11-23T12:13:17Z", Role::Agent, "a1", "fine")
            ),
        ]
    );
}

#[test]
fn invalid_utf8_is_a_per_row_reason() {
    assert_eq!(
        plain("input/invalid_utf8.csv"),
        vec![
            (
                1,
                2,
                msg(
                    "CONV5",
                    "2021-11-23T12:13:14Z",
                    Role::Agent,
                    "a1",
                    "café ok"
                )
            ),
            (
                2,
                3,
                Err("text: invalid UTF-8 at byte 16 of column `message`; the bytes look like windows-1252 (Latin-1): read the file with --encoding windows-1252".into())
            ),
            (
                3,
                4,
                Err("sender_id: invalid UTF-8 at byte 1 of column `sender_id`; the bytes look like windows-1252 (Latin-1): read the file with --encoding windows-1252".into())
            ),
            (
                4,
                5,
                msg("CONV5", "2021-11-23T12:13:17Z", Role::Agent, "a1", "fine")
            ),
        ]
    );
}

fn flat_jsonl_rows() -> Vec<(u64, u64, Result<Msg, String>)> {
    vec![
        (
            1,
            1,
            msg(
                "CONV6",
                "2021-11-23T12:13:14Z",
                Role::Customer,
                "c1",
                "Hi\nthere",
            ),
        ),
        (
            2,
            3,
            msg(
                "CONV6",
                "2021-11-23T12:13:15.100Z",
                Role::Agent,
                "42",
                "Hello, \"you\"",
            ),
        ),
        (
            3,
            5,
            msg("CONV6", "2021-11-23T12:13:16Z", Role::Agent, "a1", "Bye"),
        ),
    ]
}

#[test]
fn jsonl_flat_with_blank_lines_and_numeric_ids() {
    assert_eq!(plain("input/flat.jsonl"), flat_jsonl_rows());
}

#[test]
fn jsonl_api_shape() {
    assert_eq!(
        plain("input/api.jsonl"),
        vec![
            (
                1,
                1,
                msg(
                    "CONV7",
                    "2021-11-23T12:13:14.555Z",
                    Role::Agent,
                    "123",
                    "Hello, I would like to upgrade my internet plan to GOLD."
                )
            ),
            (
                2,
                2,
                msg(
                    "CONV7",
                    "2021-11-23T12:13:15.555Z",
                    Role::Customer,
                    "c-1",
                    "Sure"
                )
            ),
            (
                3,
                3,
                msg(
                    "CONV7",
                    "2021-11-23T12:13:16Z",
                    Role::Customer,
                    "7",
                    "Numeric id"
                )
            ),
        ]
    );
}

#[test]
fn gzip_by_extension_and_by_magic_bytes() {
    assert_eq!(plain("input/flat.jsonl.gz"), flat_jsonl_rows());
    let source = open("input/flat.jsonl.gz", &ReadOptions::default());
    assert_eq!(source.name, data("input/flat.jsonl.gz"));
    assert_ne!(
        source.path,
        std::path::PathBuf::from(data("input/flat.jsonl.gz"))
    );
    let spool = source.path.clone();
    assert!(spool.exists());
    drop(source);
    assert!(!spool.exists(), "the spool is removed with its source");

    let roles = ValidateOptions {
        roles: RoleMap {
            extra: vec![
                ("bot".into(), Role::System),
                ("user".into(), Role::Customer),
            ],
        },
        ..ValidateOptions::default()
    };
    let want = vec![
        (
            1,
            2,
            msg(
                "CONV8",
                "2021-11-23T12:13:14Z",
                Role::System,
                "b1",
                "Hi, how can I help?",
            ),
        ),
        (
            2,
            3,
            msg(
                "CONV8",
                "2021-11-23T12:13:20Z",
                Role::Customer,
                "u1",
                "Billing",
            ),
        ),
    ];
    for path in [
        "input/aliases.csv",
        "input/aliases.csv.gz",
        "input/gzip_no_extension.csv",
    ] {
        assert_eq!(
            read_all(path, &ReadOptions::default(), &roles),
            want,
            "{path}"
        );
    }
}

#[test]
fn aliases_without_role_map_name_the_role() {
    let got = plain("input/aliases.csv");
    assert_eq!(
        got[0].2,
        Err("sender_role: unknown role (expected agent, customer or system; see --role-map): \"bot\"".into())
    );
}

#[test]
fn map_names_columns() {
    let opts = ReadOptions {
        columns: vec![
            (Field::ConversationId, "thread".into()),
            (Field::Timestamp, "WHEN".into()),
            (Field::SenderRole, "who".into()),
            (Field::SenderId, "agent_ref".into()),
            (Field::Text, "msg".into()),
        ],
        ..ReadOptions::default()
    };
    assert_eq!(
        read_all("input/mapped.csv", &opts, &ValidateOptions::default()),
        vec![(
            1,
            2,
            msg(
                "CONV9",
                "2021-11-23T12:13:14Z",
                Role::Agent,
                "a1",
                "mapped text"
            )
        )]
    );
    // Without --map the `message` alias is the text, and `thread` is no alias.
    let e = read::open(
        SourceId(0),
        &data("input/mapped.csv"),
        &ReadOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            ReadError::MissingColumn {
                column: "conversation_id",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn format_from_option_and_sniffed() {
    // A .csv.gz read as JSONL because --format says so: every line is malformed.
    let opts = ReadOptions {
        format: Some(Format::Jsonl),
        ..ReadOptions::default()
    };
    let source = open("input/aliases.csv.gz", &opts);
    assert_eq!(source.format, Format::Jsonl);
    let recs = records(&source);
    assert_eq!(recs.len(), 3);
    assert_eq!(
        recs[0].fields.clone().unwrap_err().to_string(),
        "not a JSON object: expected value at column 1"
    );
    // Bytes with no telling name are sniffed.
    let s = read::open_bytes(
        SourceId(0),
        "-",
        br#"  {"text":"x"}"#,
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!(s.format, Format::Jsonl);
    assert_eq!(s.name, "-");
    let s = read::open_bytes(
        SourceId(0),
        "-",
        b"text,timestamp,sender_role,sender_id,conversation_id\n",
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!(s.format, Format::Csv);
}

// ---- the malformed corpus: each gives its precise reason, never a panic ----

fn open_err(path: &str, opts: &ReadOptions) -> String {
    match read::open(SourceId(0), &data(path), opts) {
        Ok(_) => panic!("{path}: opened"),
        // As the user sees it: the error and its causes.
        Err(e) => format!("{:#}", anyhow::Error::from(e)).replace(&data(""), ""),
    }
}

#[test]
fn malformed_missing_columns() {
    let e = open_err("malformed/no_header.csv", &ReadOptions::default());
    assert_eq!(
        e.lines().next().unwrap(),
        "malformed/no_header.csv: missing required column `conversation_id`"
    );
    assert!(
        e.contains(
            "hint: the header needs conversation_id, timestamp, sender_role, sender_id, text"
        ),
        "{e}"
    );
    assert!(e.contains("--map conversation_id=COLUMN"), "{e}");
    let e = open_err("malformed/missing_text.csv", &ReadOptions::default());
    assert!(
        e.starts_with("malformed/missing_text.csv: missing required column `text`\n  hint:"),
        "{e}"
    );
    assert!(
        e.contains("`text` may also be named message, body, content, message_text"),
        "{e}"
    );
}

#[test]
fn malformed_ambiguous_and_unknown_map_column() {
    assert_eq!(
        open_err("malformed/ambiguous.csv", &ReadOptions::default()),
        "malformed/ambiguous.csv: columns `message` (column 5) and `body` (column 6) both name `text`; \
         choose one with --map text=#5 or --map text=#6"
    );
    let opts = ReadOptions {
        columns: vec![(Field::Text, "body".into())],
        ..ReadOptions::default()
    };
    let s = open("malformed/ambiguous.csv", &opts);
    assert!(records(&s).is_empty());
    let opts = ReadOptions {
        columns: vec![(Field::Text, "msg".into())],
        ..ReadOptions::default()
    };
    assert_eq!(
        open_err("malformed/map_unknown_column.csv", &opts),
        "malformed/map_unknown_column.csv: --map text=msg: no column `msg` in the header \
         (columns: `conversation_id`, `timestamp`, `sender_role`, `sender_id`, `text`)"
    );
}

#[test]
fn malformed_unreadable_files() {
    let e = open_err("malformed/does_not_exist.csv", &ReadOptions::default());
    assert!(
        e.starts_with("malformed/does_not_exist.csv: cannot open: "),
        "{e}"
    );
    let e = open_err("malformed", &ReadOptions::default());
    assert!(e.starts_with("malformed: cannot open: "), "{e}");
    assert_eq!(
        open_err("malformed/not_gzip.csv.gz", &ReadOptions::default()),
        "malformed/not_gzip.csv.gz: not a gzip file (no gzip header), though named .gz"
    );
    let e = open_err("malformed/truncated.jsonl.gz", &ReadOptions::default());
    assert!(
        e.starts_with("malformed/truncated.jsonl.gz: cannot decompress gzip: "),
        "{e}"
    );
}

#[test]
fn malformed_empty_inputs_have_no_records() {
    for path in [
        "malformed/empty.csv",
        "malformed/header_only.csv",
        "malformed/empty.jsonl",
    ] {
        let s = open(path, &ReadOptions::default());
        assert!(records(&s).is_empty(), "{path}");
    }
}

#[test]
fn malformed_unterminated_quote() {
    // The open quote would swallow the rest of the file into one field: the
    // record is invalid, naming the line where the quote opened, and is
    // never sent. Its conversation id, before the quote, is still read.
    let got = plain("malformed/unterminated_quote.csv");
    assert_eq!(
        got,
        vec![(
            1,
            2,
            Err(
                "text: quoted field opened on line 2 never closes (the rest of the file, \
                 line 3, would become its text; 1 of those lines looks like a record)"
                    .into()
            )
        )]
    );
    let s = open("malformed/unterminated_quote.csv", &ReadOptions::default());
    let recs = records(&s);
    assert_eq!(recs[0].conversation_id(), Some("A"));
    assert_eq!(recs[0].lines_like_records(), 1);
}

/// A stray quote in row 1's text, three ordinary rows after it: the rows
/// cannot be told from text any more, so the one record is invalid and says
/// what it would have swallowed; the first read and the read-back agree.
#[test]
fn malformed_unclosed_quote_swallows_rows() {
    let got = plain("malformed/unclosed_quote_swallows_rows.csv");
    assert_eq!(
        got,
        vec![(
            1,
            2,
            Err(
                "text: quoted field opened on line 2 never closes (the rest of the file, \
                 lines 3\u{2013}5, would become its text; 3 of those lines look like records)"
                    .into()
            )
        )]
    );
    // In another column, and at the very end of the file.
    let bytes = b"conversation_id,timestamp,sender_role,sender_id,text,channel\n\
                  A,2021-11-23T12:13:14Z,agent,a1,hi,\"web\n\
                  B,2021-11-23T12:13:15Z,agent,a1,ok,web\n\
                  C,2021";
    let s = read::open_bytes(SourceId(0), "t.csv", bytes, &ReadOptions::default()).unwrap();
    let recs = records(&s);
    assert_read_at(&s, &recs);
    let reasons: Vec<String> = recs
        .iter()
        .map(|r| {
            r.fields
                .clone()
                .map(|_| String::new())
                .unwrap_or_else(|e| e.to_string())
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            "column `channel`: quoted field opened on line 2 never closes \
              (the rest of the file, lines 3\u{2013}4, would become its value; \
              1 of those lines looks like a record)"
        ]
    );
    let bytes = b"conversation_id,timestamp,sender_role,sender_id,text\nA,\"2021";
    let s = read::open_bytes(SourceId(0), "t.csv", bytes, &ReadOptions::default()).unwrap();
    let recs = records(&s);
    assert_read_at(&s, &recs);
    assert_eq!(
        recs[0].fields.clone().unwrap_err().to_string(),
        "timestamp: quoted field opened on line 2 never closes (it runs to the end of the file)"
    );
    assert_eq!(recs[0].conversation_id(), Some("A"));
    // A quote that opens in the id column leaves no id to name the row.
    let bytes = b"conversation_id,timestamp,sender_role,sender_id,text\n\"A,x\nB,y\n";
    let s = read::open_bytes(SourceId(0), "t.csv", bytes, &ReadOptions::default()).unwrap();
    assert_eq!(records(&s)[0].conversation_id(), None);
    // Closed quotes, `""` escapes and quotes inside unquoted fields are fine.
    let bytes = b"conversation_id,timestamp,sender_role,sender_id,text\n\
                  A,2021-11-23T12:13:14Z,agent,a1,\"say \"\"hi\"\"\"\n\
                  A,2021-11-23T12:13:15Z,agent,a1,5\" tall\n\
                  A,2021-11-23T12:13:16Z,agent,a1,\"\"\n";
    let s = read::open_bytes(SourceId(0), "t.csv", bytes, &ReadOptions::default()).unwrap();
    let recs = records(&s);
    assert_eq!(recs.len(), 3);
    assert!(recs.iter().all(|r| r.fields.is_ok()), "{recs:?}");
}

/// A quote opened in the header and never closed: the file is all header,
/// which is the file's problem (exit 2), named at the line.
#[test]
fn malformed_unclosed_quote_in_the_header() {
    let bytes = b"conversation_id,timestamp,\"sender_role,sender_id,text\nA,1,agent,a,x\n";
    let e = read::open_bytes(SourceId(0), "t.csv", bytes, &ReadOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.csv: line 1: the header's quoted field in column 3 opened on line 1 never closes \
         (the whole file would be the header)"
    );
}

/// A quoted field that closes several lines later, swallowing rows that
/// look like records: valid, sent as one message, and counted so that
/// `check` can warn.
#[test]
fn quoted_fields_holding_record_like_lines_are_counted() {
    let bytes = b"conversation_id,timestamp,sender_role,sender_id,text\n\
                  A,2021-11-23T12:13:14Z,customer,c1,\"hello\n\
                  A,2021-11-23T12:13:15Z,agent,a1,hi\n\
                  A,2021-11-23T12:13:16Z,agent,a1,\"bye\"\n\
                  A,2021-11-23T12:13:17Z,agent,a1,\"two\nlines, no record\"\n";
    let s = read::open_bytes(SourceId(0), "t.csv", bytes, &ReadOptions::default()).unwrap();
    let recs = records(&s);
    assert_read_at(&s, &recs);
    let like: Vec<u32> = recs.iter().map(|r| r.lines_like_records()).collect();
    assert_eq!(like, vec![2, 0]);
    assert!(recs.iter().all(|r| r.fields.is_ok()));
}

#[test]
fn malformed_jsonl_lines() {
    let got = plain("malformed/lines.jsonl");
    let reasons: Vec<(u64, u64, String)> = got
        .into_iter()
        .map(|(r, l, m)| (r, l, m.map(|m| m.4).unwrap_or_else(|e| e)))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (
                1,
                1,
                "not a JSON object: expected value at column 1".to_string()
            ),
            (2, 2, "not a JSON object: found an array".to_string()),
            (
                3,
                3,
                "not a JSON object: EOF while parsing a value at column 30".to_string()
            ),
            (
                4,
                4,
                "conversation_id: expected a string, found a boolean".to_string()
            ),
            (5, 5, "not a JSON object: found a string".to_string()),
            (
                6,
                6,
                "not a JSON object: recursion limit exceeded at column 128".to_string()
            ),
            (7, 7, "ok".to_string()),
            (
                8,
                8,
                "text: invalid UTF-8 at byte 10 of the line; the bytes look like windows-1252 (Latin-1): read the file with --encoding windows-1252".to_string()
            ),
        ]
    );
}

#[test]
fn malformed_rows_give_precise_reasons() {
    let got: Vec<String> = plain("malformed/bad_rows.csv")
        .into_iter()
        .map(|(_, _, m)| m.map(|m| m.4).unwrap_or_else(|e| e))
        .collect();
    assert_eq!(
        got,
        vec![
            "conversation_id: not an API conversation id (A-Z, 0-9 only; use --conversations create for your own ids): \"conv-1\"",
            "conversation_id: empty",
            "timestamp: not a date-time (expected e.g. 2021-11-23T12:13:14Z): \"yesterday\"",
            "timestamp: no such date: \"2021-02-30T00:00:00Z\"".replace("00:00:00", "10:00:00").as_str(),
            "sender_role: unknown role (expected agent, customer or system; see --role-map): \"robot\"",
            "sender_id: empty",
            "text: empty",
            "   ",
            "conversation_id: not an API conversation id (A-Z, 0-9 only; use --conversations create for your own ids): \"THISIDISWAYTOOLONGTOSHOWINFULL_0…\"",
        ]
    );
}

#[test]
fn blank_lines_between_lf_records_do_not_shift_lines() {
    let bytes = b"\n\nconversation_id,timestamp,sender_role,sender_id,text\n\nA,1637669594,agent,a,x\n\n\n\"B\",1637669594,agent,a,\"y\nz\"\nC,1637669594,agent,a,w";
    let s = read::open_bytes(SourceId(0), "t.csv", bytes, &ReadOptions::default()).unwrap();
    let recs = records(&s);
    let at: Vec<(u64, u64, u64)> = recs
        .iter()
        .map(|r| (r.pos.record, r.pos.line, r.pos.offset))
        .collect();
    assert_eq!(at, vec![(1, 5, 56), (2, 8, 81), (3, 10, 110)]);
    assert_read_at(&s, &recs);
}

/// A valid message written in any supported layout reads back and
/// validates to the same message.
mod roundtrip {
    use super::*;
    use chrono::{DateTime, FixedOffset, Utc};
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct Message {
        conversation: String,
        sender: String,
        role: Role,
        text: String,
        /// Seconds and nanoseconds, nanos already cut to `digits`.
        secs: i64,
        nanos: u32,
        digits: u8,
    }

    #[derive(Debug, Clone, Copy)]
    enum TsForm {
        Z,
        Offset { minutes: i32, style: u8 },
        Local { sep: char },
        EpochSecs,
        EpochMillis,
    }

    fn message() -> impl Strategy<Value = Message> {
        (
            "[A-Z0-9]{1,12}",
            prop_oneof!["[a-zA-Z0-9@._-]{1,12}", "[1-9][0-9]{0,8}"],
            prop_oneof![Just(Role::Agent), Just(Role::Customer), Just(Role::System)],
            "[a-zA-Z0-9 ,;|\t\"'\r\n\u{e9}\u{1f600}{}:\\[\\]]{1,40}",
            946_684_800i64..1_900_000_000,
            0u32..1_000_000_000,
            0u8..=9,
        )
            .prop_map(|(conversation, sender, role, text, secs, nanos, digits)| {
                let scale = 10u32.pow(9 - u32::from(digits));
                Message {
                    conversation,
                    sender,
                    role,
                    text,
                    secs,
                    nanos: nanos / scale * scale,
                    digits,
                }
            })
    }

    fn ts_form() -> impl Strategy<Value = TsForm> {
        prop_oneof![
            Just(TsForm::Z),
            (-12 * 60..=14 * 60i32, 0u8..3)
                .prop_map(|(m, style)| TsForm::Offset { minutes: m, style }),
            prop_oneof![Just('T'), Just(' ')].prop_map(|sep| TsForm::Local { sep }),
            Just(TsForm::EpochSecs),
            Just(TsForm::EpochMillis),
        ]
    }

    /// The text of the timestamp and the precision it should read back with.
    fn write_ts(m: &Message, form: TsForm) -> (String, u8) {
        let instant: DateTime<Utc> = DateTime::from_timestamp(m.secs, m.nanos).unwrap();
        let frac = |digits: u8| {
            if digits == 0 {
                String::new()
            } else {
                let s = format!("{:09}", m.nanos);
                format!(".{}", &s[..digits as usize])
            }
        };
        match form {
            TsForm::Z => (
                format!("{}{}Z", instant.format("%Y-%m-%dT%H:%M:%S"), frac(m.digits)),
                m.digits,
            ),
            TsForm::Offset { minutes, style } => {
                let minutes = if style == 2 {
                    minutes / 60 * 60
                } else {
                    minutes
                };
                let off = FixedOffset::east_opt(minutes * 60).unwrap();
                let local = instant.with_timezone(&off);
                let sign = if minutes < 0 { '-' } else { '+' };
                let (h, mm) = (minutes.abs() / 60, minutes.abs() % 60);
                let zone = match style {
                    0 => format!("{sign}{h:02}:{mm:02}"),
                    1 => format!("{sign}{h:02}{mm:02}"),
                    _ => format!("{sign}{h:02}"),
                };
                (
                    format!(
                        "{}{}{zone}",
                        local.format("%Y-%m-%dT%H:%M:%S"),
                        frac(m.digits)
                    ),
                    m.digits,
                )
            }
            TsForm::Local { sep } => (
                format!(
                    "{}{sep}{}{}",
                    instant.format("%Y-%m-%d"),
                    instant.format("%H:%M:%S"),
                    frac(m.digits)
                ),
                m.digits,
            ),
            TsForm::EpochSecs => (format!("{}{}", m.secs, frac(m.digits)), m.digits),
            TsForm::EpochMillis => {
                let ms = m.secs * 1000 + i64::from(m.nanos / 1_000_000);
                let rest = format!("{:09}", m.nanos);
                let more = if m.digits > 3 {
                    format!(".{}", &rest[3..m.digits as usize])
                } else {
                    String::new()
                };
                (format!("{ms}{more}"), m.digits.max(3))
            }
        }
    }

    const HEADERS: [&[&str]; 5] = [
        &[
            "conversation_id",
            "conversationId",
            "Conversation ID",
            "chat_id",
            "thread_id",
            "CONVERSATION",
        ],
        &[
            "timestamp",
            "created_at",
            "sent_at",
            "Time",
            "date",
            "datetime",
        ],
        &["sender_role", "role", "Role", "SENDER ROLE"],
        &[
            "sender_id",
            "external_id",
            "externalId",
            "sender_external_id",
            "sender",
            "author_id",
        ],
        &["text", "message", "body", "content", "message_text", "Text"],
    ];

    #[derive(Debug, Clone)]
    struct Layout {
        jsonl: bool,
        api_shape: bool,
        delimiter: u8,
        names: [usize; 5],
        order: Vec<usize>,
        extra_column: bool,
        crlf: bool,
        bom: bool,
        always_quote: bool,
        role_case: u8,
    }

    fn layout() -> impl Strategy<Value = Layout> {
        (
            any::<bool>(),
            any::<bool>(),
            prop_oneof![Just(b','), Just(b';'), Just(b'\t'), Just(b'|')],
            [0usize..6, 0usize..6, 0usize..4, 0usize..6, 0usize..6],
            Just((0..5).collect::<Vec<usize>>()).prop_shuffle(),
            any::<bool>(),
            (any::<bool>(), any::<bool>(), any::<bool>(), 0u8..3),
        )
            .prop_map(
                |(
                    jsonl,
                    api_shape,
                    delimiter,
                    names,
                    order,
                    extra_column,
                    (crlf, bom, always_quote, role_case),
                )| Layout {
                    jsonl,
                    api_shape,
                    delimiter,
                    names,
                    order,
                    extra_column,
                    crlf,
                    bom,
                    always_quote,
                    role_case,
                },
            )
    }

    fn role_text(role: Role, case: u8) -> String {
        match case {
            0 => role.as_str().to_string(),
            1 => role.as_str().to_uppercase(),
            _ => format!(" {}", role.as_str().replace('a', "A")),
        }
    }

    fn write(layout: &Layout, rows: &[(Message, String)]) -> Vec<u8> {
        let names: Vec<&str> = (0..5)
            .map(|f| HEADERS[f][layout.names[f] % HEADERS[f].len()])
            .collect();
        let values = |m: &Message, ts: &str| -> [String; 5] {
            [
                m.conversation.clone(),
                ts.to_string(),
                role_text(m.role, layout.role_case),
                m.sender.clone(),
                m.text.clone(),
            ]
        };
        if layout.jsonl {
            let mut out = Vec::new();
            for (m, ts) in rows {
                let v = values(m, ts);
                // A number only when it reads back as the same text: "00" is not 0.
                let sender: serde_json::Value = match m.sender.parse::<u64>() {
                    Ok(n) if n.to_string() == m.sender => n.into(),
                    _ => m.sender.clone().into(),
                };
                let obj = if layout.api_shape {
                    serde_json::json!({
                        "conversationId": v[0], "timestamp": v[1], "text": v[4],
                        "sender": {"role": v[2], "externalId": sender},
                    })
                } else {
                    let mut o = serde_json::Map::new();
                    for f in &layout.order {
                        let value = if *f == 3 {
                            sender.clone()
                        } else {
                            v[*f].clone().into()
                        };
                        o.insert(names[*f].to_string(), value);
                    }
                    if layout.extra_column {
                        o.insert("channel".into(), serde_json::json!({"a": [1, true]}));
                    }
                    serde_json::Value::Object(o)
                };
                out.extend_from_slice(obj.to_string().as_bytes());
                out.extend_from_slice(if layout.crlf { b"\r\n" } else { b"\n" });
            }
            return out;
        }
        let mut w = csv::WriterBuilder::new()
            .delimiter(layout.delimiter)
            .terminator(if layout.crlf {
                csv::Terminator::CRLF
            } else {
                csv::Terminator::Any(b'\n')
            })
            .quote_style(if layout.always_quote {
                csv::QuoteStyle::Always
            } else {
                csv::QuoteStyle::Necessary
            })
            .from_writer(Vec::new());
        let mut header: Vec<String> = layout.order.iter().map(|f| names[*f].to_string()).collect();
        if layout.extra_column {
            header.insert(1, "notes".into());
        }
        w.write_record(&header).unwrap();
        for (m, ts) in rows {
            let v = values(m, ts);
            let mut rec: Vec<String> = layout.order.iter().map(|f| v[*f].clone()).collect();
            if layout.extra_column {
                rec.insert(1, "x, \"y\"".into());
            }
            w.write_record(&rec).unwrap();
        }
        let mut out = if layout.bom {
            b"\xEF\xBB\xBF".to_vec()
        } else {
            Vec::new()
        };
        out.extend(w.into_inner().unwrap());
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn any_layout_reads_back_the_same_messages(
            layout in layout(),
            rows in proptest::collection::vec((message(), ts_form()), 1..5),
        ) {
            let written: Vec<(Message, String, u8)> = rows
                .iter()
                .map(|(m, f)| {
                    let (ts, digits) = write_ts(m, *f);
                    (m.clone(), ts, digits)
                })
                .collect();
            let pairs: Vec<(Message, String)> = written.iter().map(|(m, t, _)| (m.clone(), t.clone())).collect();
            let bytes = write(&layout, &pairs);
            let name = if layout.jsonl { "in.jsonl" } else { "in.csv" };
            let source = read::open_bytes(SourceId(1), name, &bytes, &ReadOptions::default())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let recs = records(&source);
            prop_assert_eq!(recs.len(), written.len());
            assert_read_at(&source, &recs);
            for (i, (rec, (m, ts, digits))) in recs.into_iter().zip(&written).enumerate() {
                prop_assert_eq!(rec.pos.record, i as u64 + 1);
                let row = rec
                    .fields
                    .and_then(|f| validate::row(rec.pos, f, &ValidateOptions::default()))
                    .map_err(|e| TestCaseError::fail(format!("{e} (timestamp {ts:?})")))?;
                prop_assert_eq!(&row.conversation_id, &m.conversation);
                prop_assert_eq!(row.timestamp.instant, DateTime::from_timestamp(m.secs, m.nanos).unwrap(), "{}", ts);
                prop_assert_eq!(row.timestamp.digits, *digits, "{}", ts);
                prop_assert_eq!(row.role, m.role);
                prop_assert_eq!(&row.sender_id, &m.sender);
                prop_assert_eq!(&row.text, &m.text);
            }
        }
    }
}

/// Every file of the malformed corpus, read every way, never panics.
#[test]
fn malformed_corpus_never_panics() {
    let dir = data("malformed");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let path = path.to_str().unwrap();
        for format in [None, Some(Format::Csv), Some(Format::Jsonl)] {
            for delimiter in [None, Some(b';')] {
                let opts = ReadOptions {
                    format,
                    delimiter,
                    ..ReadOptions::default()
                };
                let Ok(source) = read::open(SourceId(0), path, &opts) else {
                    continue;
                };
                let mut reader = source.reader().unwrap();
                for rec in source.records().unwrap() {
                    let Ok(rec) = rec else { break };
                    assert_eq!(reader.read_at(&rec.pos).unwrap().fields, rec.fields);
                    if let Ok(f) = rec.fields {
                        let _ = validate::row(rec.pos, f, &ValidateOptions::default());
                    }
                    n += 1;
                }
            }
        }
    }
    assert!(n > 20, "{n} records read");
}

/// Found by fuzzing: a BOM at the start of a record in mid-file is data,
/// and reading that record back by offset must not strip it.
#[test]
fn malformed_bom_inside_a_file() {
    let got: Vec<(u64, u64, Result<Msg, String>)> = plain("malformed/fuzz_bom_inside.csv");
    let reasons: Vec<(u64, u64, String)> = got
        .into_iter()
        .map(|(r, l, m)| (r, l, m.map(|m| m.4).unwrap_or_else(|e| e)))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (1, 1, "row has 1 field, header has 5".to_string()),
            (2, 2, "row has 3 fields, header has 5".to_string()),
            (3, 3, "row has 4 fields, header has 5".to_string()),
            // A BOM after a lone `\r` (no line break) on line 3.
            (4, 3, "row has 1 field, header has 5".to_string()),
            (
                5,
                5,
                "timestamp: invalid UTF-8 at byte 11 of column `timestamp`; if the file is not UTF-8, name its encoding with --encoding (e.g. windows-1252, iso-8859-2, shift_jis, gbk)".to_string(),
            ),
        ]
    );
}

/// A record with an unreadable field still names its conversation when
/// the id's own column (or key) can be read: the report shows it and
/// `--shard` places the row by it.
#[test]
fn unreadable_records_keep_their_conversation_id() {
    let ids = |name: &str, bytes: &[u8]| -> Vec<(Option<String>, String)> {
        let s = read::open_bytes(SourceId(0), name, bytes, &ReadOptions::default()).unwrap();
        let recs = records(&s);
        assert_read_at(&s, &recs);
        recs.iter()
            .map(|r| {
                (
                    r.conversation_id().map(str::to_string),
                    r.fields
                        .clone()
                        .map(|_| "ok".to_string())
                        .unwrap_or_else(|e| e.to_string()),
                )
            })
            .collect()
    };
    let csv = b"conversation_id,timestamp,sender_role,sender_id,text\n\
                C1,2021-11-23T12:13:14Z,agent,a1,caf\xe9\n\
                C\xff2,2021-11-23T12:13:14Z,agent,a1,ok\n\
                C3,2021-11-23T12:13:14Z,ag\xffent,a1,ok\n\
                C4,2021-11-23T12:13:14Z,agent,a1\n\
                C5,2021-11-23T12:13:14Z,agent,a1,fine\n";
    assert_eq!(
        ids("t.csv", csv),
        vec![
            (
                Some("C1".into()),
                "text: invalid UTF-8 at byte 4 of column `text`; the bytes look like windows-1252 (Latin-1): read the file with --encoding windows-1252".into()
            ),
            (
                None,
                "conversation_id: invalid UTF-8 at byte 2 of column `conversation_id`; the bytes look like windows-1252 (Latin-1): read the file with --encoding windows-1252".into()
            ),
            (
                Some("C3".into()),
                "sender_role: invalid UTF-8 at byte 3 of column `sender_role`; the bytes look like windows-1252 (Latin-1): read the file with --encoding windows-1252".into()
            ),
            // A ragged row's columns cannot be trusted: no id from it.
            (None, "row has 4 fields, header has 5".into()),
            (Some("C5".into()), "ok".into()),
        ]
    );
    let jsonl = b"{\"conversation_id\":\"J1\",\"text\":\"caf\xe9\"}\n\
                  {\"conversation_id\":\"J\xff2\",\"text\":\"ok\"}\n\
                  {\"conversation_id\":\"J3\",\"sender_id\":true}\n\
                  {\"conversation_id\":\"J4\",\"note\":\"\xff\"}\n\
                  {\"conversation_id\":\"J5\",\"text\":\"a\",\"text\":\"b\"}\n\
                  {\"conversation_id\": 6, \"text\": \"\xfe\"\n";
    assert_eq!(
        ids("t.jsonl", jsonl),
        vec![
            (
                Some("J1".into()),
                "text: invalid UTF-8 at byte 36 of the line; the bytes look like windows-1252 (Latin-1): read the file with --encoding windows-1252".into()
            ),
            (
                None,
                "conversation_id: invalid UTF-8 at byte 22 of the line; the bytes look like windows-1252 (Latin-1): read the file with --encoding windows-1252".into()
            ),
            (
                Some("J3".into()),
                "sender_id: expected a string, found a boolean".into()
            ),
            (
                Some("J4".into()),
                "invalid UTF-8 at byte 33 of the line; the bytes look like windows-1252 (Latin-1): read the file with --encoding windows-1252".into()
            ),
            (Some("J5".into()), "ok".into()),
            // Not even JSON once the bad byte is set aside: nothing to name.
            (None, "invalid UTF-8 at byte 33 of the line; the bytes look like windows-1252 (Latin-1): read the file with --encoding windows-1252".into()),
        ]
    );
}

/// `--map FIELD=#N` picks a column by its number: the way out of two
/// columns with the same name; a number past the header is an error.
#[test]
fn map_by_column_number() {
    let bytes = b"conversation_id,timestamp,sender_role,sender_id,text,text\n\
                  C1,2021-11-23T12:13:14Z,agent,a1,first,second\n";
    let e = read::open_bytes(SourceId(0), "t.csv", bytes, &ReadOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.csv: columns `text` (column 5) and `text` (column 6) both name `text`; \
         choose one with --map text=#5 or --map text=#6"
    );
    for (n, want) in [("#5", "first"), ("#6", "second")] {
        let opts = ReadOptions {
            columns: vec![(Field::Text, n.into())],
            ..ReadOptions::default()
        };
        let s = read::open_bytes(SourceId(0), "t.csv", bytes, &opts).unwrap();
        let recs = records(&s);
        assert_eq!(recs[0].fields.as_ref().unwrap().text.as_deref(), Some(want));
    }
    let opts = ReadOptions {
        columns: vec![(Field::Text, "#7".into())],
        ..ReadOptions::default()
    };
    let e = read::open_bytes(SourceId(0), "t.csv", bytes, &opts).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.csv: --map text=#7: no column 7: the header has 6 columns"
    );
    let e = read::open_bytes(SourceId(0), "t.jsonl", b"{}\n", &opts).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.jsonl: --map text=#7: a column number names a CSV header's column; \
         JSONL keys have no order: name the key"
    );
}
