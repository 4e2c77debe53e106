use super::journal::{Message, Record};
use super::outcomes::Recorded;
use super::*;
use crate::model::{ContentKey, MessageKey, Outcome, Prior, RowRef, SourceId, Status};

fn pos(record: u64) -> RowRef {
    RowRef {
        source: SourceId(0),
        record,
        line: record + 1,
        offset: 0,
    }
}

fn key(n: u8, occurrence: u32) -> MessageKey {
    MessageKey {
        content: ContentKey([n; 16]),
        occurrence,
    }
}

/// A new ledger, made and closed, in a directory of its own (kept while
/// the first value lives).
fn new_ledger() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(Ledger::open(&path, LOOPBACK).unwrap());
    (dir, path)
}

/// What a run that stopped before folding leaves: `records` in one lane
/// of journal number `seq`.
fn leave_journal(path: &std::path::Path, seq: u64, records: &[Record<'_>]) {
    let journal = Journal::new(path, 1, seq);
    let mut bytes = Vec::new();
    for record in records {
        journal::encode(&mut bytes, record);
    }
    journal.append(journal.lane(), &bytes).unwrap();
}

#[test]
fn second_open_is_refused_while_the_first_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let first = Ledger::open(&path, LOOPBACK).unwrap();
    match Ledger::open(&path, LOOPBACK) {
        Err(LedgerError::Locked { holder, .. }) => {
            assert!(
                holder.contains(&format!("pid {}", std::process::id())),
                "{holder}"
            )
        }
        other => panic!("expected Locked, got {:?}", other.map(|_| ())),
    }
    drop(first);
    Ledger::open(&path, LOOPBACK).unwrap();
}

#[test]
fn a_ledger_in_a_missing_directory_is_named_with_that_directory() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let path = missing.join("state.db");
    match Ledger::open(&path, LOOPBACK) {
        Err(e @ LedgerError::NoDirectory { .. }) => {
            let said = e.to_string();
            assert!(said.starts_with(&format!("{}:", path.display())), "{said}");
            assert!(said.contains(&missing.display().to_string()), "{said}");
            assert!(!said.contains(".lock"), "{said}");
        }
        other => panic!("expected NoDirectory, got {:?}", other.map(|_| ())),
    }
    // Nothing was created on the way.
    assert!(!missing.exists());
}

#[test]
fn in_flight_becomes_uncertain_and_created_is_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let (created, other) = (key(7, 0), key(8, 0));
    {
        let mut ledger = Ledger::open(&path, LOOPBACK).unwrap();
        ledger.add_sources(&["a.csv".into()]).unwrap();
        let writer = ledger.into_writer().unwrap();
        let mut rec = writer.recorder();
        rec.intent(created, "C1").unwrap();
        rec.intent(other, "C1").unwrap();
        let mut o = Outcome::bare(pos(1), "C1", Status::Created);
        o.message_id = Some("M1".into());
        o.sent = Some(created);
        o.attempts = 1;
        o.requests = 1;
        rec.outcome(&o);
        rec.sync().unwrap();
        // `other` stays in flight: as if the process died mid-request.
        drop(rec);
        let ledger = writer.close().unwrap();
        assert_eq!(
            ledger.prior("C1", &created),
            Some(Prior::Stored {
                message_id: Some("M1".into())
            })
        );
    }
    let ledger = Ledger::open(&path, LOOPBACK).unwrap();
    assert_eq!(ledger.recovered_in_flight, 1);
    assert_eq!(ledger.prior("C1", &other), Some(Prior::Uncertain));
    assert_eq!(ledger.prior("C1", &key(7, 1)), None);
    assert_eq!(ledger.requests_today().unwrap(), 1);
}

/// Message `n` of conversation C1 in `state`: one request made for it
/// unless it is in flight.
fn answered_in_c1(n: u8, state: State, message_id: Option<&'static str>) -> Record<'static> {
    Record::Message(Message {
        key: key(n, 0),
        conversation_id: "C1".into(),
        state,
        attempts: u32::from(state != State::InFlight),
        message_id: message_id.map(Into::into),
    })
}

#[test]
fn a_killed_runs_journal_is_folded_on_open_and_only_once() {
    let (_dir, path) = new_ledger();
    let record = answered_in_c1;
    // What a run killed mid-request leaves: one message answered, one in flight.
    leave_journal(
        &path,
        5,
        &[
            record(1, State::InFlight, None),
            record(1, State::Created, Some("M1")),
            record(2, State::InFlight, None),
        ],
    );

    let ledger = Ledger::open(&path, LOOPBACK).unwrap();
    assert_eq!(ledger.recovered_in_flight, 1);
    assert_eq!(
        ledger.prior("C1", &key(1, 0)),
        Some(Prior::Stored {
            message_id: Some("M1".into())
        })
    );
    assert_eq!(ledger.prior("C1", &key(2, 0)), Some(Prior::Uncertain));
    assert_eq!(ledger.requests_today().unwrap(), 1);
    drop(ledger);

    // A file folded before a crash that kept it from being deleted.
    leave_journal(&path, 5, &[record(3, State::Created, Some("M3"))]);
    let ledger = Ledger::open(&path, LOOPBACK).unwrap();
    assert_eq!(ledger.prior("C1", &key(3, 0)), None);
    assert_eq!(ledger.requests_today().unwrap(), 1, "not counted twice");
    drop(ledger);
    let left: Vec<_> = journal::files(&path).unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_ledger_is_bound_to_one_api_and_loopback_is_one() {
    let (_dir, path) = new_ledger();
    match Ledger::open(&path, "https://api.sandbox.asapp.com") {
        Err(LedgerError::OtherApi { recorded, .. }) => assert_eq!(recorded, LOOPBACK),
        other => panic!("expected OtherApi, got {:?}", other.map(|_| ())),
    }
    drop(Ledger::open(&path, LOOPBACK).unwrap());
}

#[cfg(unix)]
#[test]
fn the_ledger_and_its_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let ledger = Ledger::open(&path, LOOPBACK).unwrap();
    let writer = ledger.into_writer().unwrap();
    let mut rec = writer.recorder();
    rec.intent(key(1, 0), "C1").unwrap();
    let mut seen = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", entry.path().display());
        seen += 1;
    }
    // The database, its -wal and -shm, the lock and a journal lane.
    assert!(seen >= 5, "{seen} files");
    drop(rec);
    writer.close().unwrap();
}

#[test]
fn a_damaged_ledger_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let e = Ledger::open(&path, LOOPBACK).err().expect("refused");
    assert!(matches!(e, LedgerError::Corrupt { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("damaged") && text.contains("hint:"), "{text}");
}

#[test]
fn side_files_are_recognised() {
    let state = std::path::Path::new("/d/state.db");
    for side in [
        "/d/state.db.lock",
        "/d/state.db-wal",
        "/d/state.db-shm",
        "/d/state.db.journal.3.0",
    ] {
        assert!(is_side_file(state, std::path::Path::new(side)), "{side}");
    }
    for other in ["/d/state.db.csv", "/e/state.db-wal", "/d/other.db-wal"] {
        assert!(!is_side_file(state, std::path::Path::new(other)), "{other}");
    }
}

#[test]
fn conversations_created_and_requests_for_no_row_are_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let ledger = Ledger::open(&path, LOOPBACK).unwrap();
        let writer = ledger.into_writer().unwrap();
        let mut rec = writer.recorder();
        rec.conversation("chat-000123", "01HCONV");
        rec.requests(2);
        rec.sync().unwrap();
        drop(rec);
        writer.close().unwrap();
    }
    let ledger = Ledger::open(&path, LOOPBACK).unwrap();
    let lookup = ledger.lookup().unwrap();
    assert_eq!(
        lookup.conversation("chat-000123").unwrap().as_deref(),
        Some("01HCONV")
    );
    assert_eq!(lookup.conversation("chat-9").unwrap(), None);
    assert_eq!(ledger.requests_today().unwrap(), 2);
}

/// A ledger at `path` holding 40,000 messages of random keys in 400
/// conversations, put straight into the table: that large without a run
/// to make it.
fn large_ledger(path: &std::path::Path) -> Ledger {
    let ledger = Ledger::open(path, LOOPBACK).unwrap();
    let mut row = super::outcomes::Row::new();
    for c in 0..400u32 {
        row.clear();
        for m in 0..100u32 {
            let mut content = [0u8; 16];
            content[..4].copy_from_slice(&c.to_le_bytes());
            content[4..8].copy_from_slice(&m.to_le_bytes());
            let key = MessageKey {
                content: ContentKey(content),
                occurrence: 0,
            };
            row.push(key, State::Created, 1, 1, Some(&format!("M{c:04}-{m:04}")));
        }
        row.insert(&ledger.conn, &format!("L{c}"), 0).unwrap();
    }
    ledger
}

/// The messages the ledger knows, with their conversations, in key order.
fn stored(conn: &rusqlite::Connection) -> Vec<(String, MessageKey, Recorded)> {
    super::outcomes::all(conn).unwrap()
}

#[test]
fn a_large_ledger_is_folded_once_the_journal_holds_a_share_of_it() {
    use super::writer::{FOLD_AT_LEAST, FOLD_EVERY, FOLD_SHARE};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let ledger = large_ledger(&path);
    let bytes = ledger.bytes().unwrap();
    assert!(bytes > 1 << 20, "{bytes}");
    let journal = Arc::clone(ledger.journal.as_ref().unwrap());
    let due = FOLD_EVERY * 2;
    assert!(!ledger.fold_due(due), "nothing to fold");
    let mut record = Vec::new();
    journal::encode(
        &mut record,
        &Record::Message(Message {
            key: key(1, 0),
            conversation_id: "C1".into(),
            state: State::InFlight,
            attempts: 0,
            message_id: None,
        }),
    );
    let mut appended = 0;
    while journal.pending() + (record.len() as u64) < bytes / FOLD_SHARE {
        journal.append(appended % 4, &record).unwrap();
        appended += 1;
        assert!(!ledger.fold_due(due), "after {appended} records");
        // Asked for near the end: from half the share on.
        let half = journal.pending() >= bytes / (2 * FOLD_SHARE);
        assert_eq!(ledger.fold_asked(), half, "after {appended} records");
    }
    assert!(ledger.fold_asked());
    assert!(appended > 1000, "{appended}");
    assert!(ledger.fold_due(FOLD_AT_LEAST), "however little is waiting");
    assert!(
        !ledger.fold_due(FOLD_EVERY / 2),
        "at most every {FOLD_EVERY:?}"
    );
    journal.append(0, &record).unwrap();
    assert!(ledger.fold_due(due));
}

#[test]
fn the_wal_is_checkpointed_in_large_steps() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("state.db"), LOOPBACK).unwrap();
    let pages: i64 = ledger
        .conn
        .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
        .unwrap();
    assert_eq!(pages, 8192);
}

/// SQLite's page cache of the ledger's connection, in bytes.
fn cache(ledger: &Ledger) -> u64 {
    let kib: i64 = ledger
        .conn
        .query_row("PRAGMA cache_size", [], |r| r.get(0))
        .unwrap();
    (-kib * 1024) as u64
}

#[test]
fn a_small_ledgers_folds_get_a_cache_that_holds_all_of_it() {
    use super::schema::CACHE;
    use super::writer::WHOLE_LEDGER_CACHE;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("state.db"), LOOPBACK).unwrap();
    assert_eq!(cache(&ledger), CACHE, "as opened");
    ledger.size_cache(1 << 20);
    assert_eq!(cache(&ledger), WHOLE_LEDGER_CACHE);
    // The ledger with what comes would not fit: back to the small cache.
    ledger.size_cache(WHOLE_LEDGER_CACHE);
    assert_eq!(cache(&ledger), CACHE);
    ledger.size_cache(0);
    assert_eq!(cache(&ledger), WHOLE_LEDGER_CACHE);
    let bytes = ledger.bytes().unwrap();
    ledger.size_cache(WHOLE_LEDGER_CACHE - bytes + 1);
    assert_eq!(cache(&ledger), CACHE, "one byte over");
}

#[test]
fn the_last_fold_is_in_the_ledgers_file_before_it_closes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let ledger = Ledger::open(&path, LOOPBACK).unwrap();
    let writer = ledger.into_writer().unwrap();
    let mut rec = writer.recorder();
    // Enough messages for a few hundred pages, far fewer than the 8,192
    // that make SQLite checkpoint by itself.
    for n in 0..20_000u32 {
        let mut content = [0u8; 16];
        content[..4].copy_from_slice(&n.to_le_bytes());
        let key = MessageKey {
            content: ContentKey(content),
            occurrence: 0,
        };
        rec.intent(key, "C1").unwrap();
        let mut o = Outcome::bare(pos(u64::from(n) + 1), "C1", Status::Created);
        o.message_id = Some(format!("M{n}"));
        o.sent = Some(key);
        o.attempts = 1;
        o.requests = 1;
        rec.outcome(&o);
    }
    drop(rec);
    let ledger = writer.close().unwrap();
    // The connection is still open: what the database file holds now was
    // copied there by the ledger thread, not by closing.
    let bytes = ledger.bytes().unwrap();
    assert!(bytes > 100 * 4096, "{bytes}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), bytes);
    let messages = stored(&ledger.conn);
    assert_eq!(messages.len(), 20_000);
    assert!(messages.iter().all(|(_, _, r)| r.state == State::Created));
    // A few megabytes: the fold had a cache that holds all of them.
    assert_eq!(cache(&ledger), super::writer::WHOLE_LEDGER_CACHE);
}

#[test]
fn fold_soon_folds_what_the_timer_would_leave_for_half_a_minute() {
    use super::writer::FOLD_SHARE;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    // A ledger large enough that what is journaled below is short of the
    // share of it that makes a fold due: only `FOLD_AT_LEAST` (30 s) would
    // fold it, but it is half that share, which a fold asked for needs.
    let ledger = large_ledger(&path);
    let bytes = ledger.bytes().unwrap();
    let journal = Arc::clone(ledger.journal.as_ref().unwrap());
    let writer = ledger.into_writer().unwrap();
    let mut rec = writer.recorder();
    let mut sent = 0u32;
    while journal.pending() < bytes / (2 * FOLD_SHARE) {
        rec.intent(key(7, sent), "C1").unwrap();
        sent += 1;
    }
    assert!(journal.pending() < bytes / FOLD_SHARE);
    writer.fold_soon();
    let reader = rusqlite::Connection::open(&path).unwrap();
    let count = || stored(&reader).len();
    let want = 40_000 + sent as usize;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while count() < want && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(count(), want);
    drop(rec);
    writer.close().unwrap();
}

#[test]
fn a_messages_records_are_merged_across_records_and_lanes() {
    let (_dir, path) = new_ledger();
    let record = |n: u8, state, attempts, message_id: Option<&'static str>| {
        Record::Message(Message {
            key: key(n, 0),
            conversation_id: format!("C{n}").into(),
            state,
            attempts,
            message_id: message_id.map(Into::into),
        })
    };
    // Message 1: its id in the middle of its lane's records, then an answer
    // without one. Message 2: its records in two lanes; the id in the first.
    let journal = Journal::new(&path, 1, 5);
    let (a, b) = (journal.lane(), journal.lane());
    assert_ne!(a, b);
    let mut first = Vec::new();
    journal::encode(&mut first, &record(1, State::InFlight, 0, None));
    journal::encode(&mut first, &record(1, State::Created, 1, Some("M1")));
    journal::encode(&mut first, &record(2, State::InFlight, 0, None));
    journal::encode(&mut first, &record(2, State::Uncertain, 2, Some("M2")));
    journal::encode(&mut first, &record(1, State::Exists, 3, None));
    journal.append(a, &first).unwrap();
    let mut second = Vec::new();
    journal::encode(&mut second, &record(2, State::Failed, 4, None));
    journal.append(b, &second).unwrap();
    drop(journal);

    let ledger = Ledger::open(&path, LOOPBACK).unwrap();
    let recorded = |state, message_id: &str, attempts| Recorded {
        state,
        message_id: Some(message_id.into()),
        attempts,
        run_id: 1,
    };
    // The last record's state, the last id, every request; one row per
    // conversation.
    assert_eq!(
        stored(&ledger.conn),
        [
            ("C1".into(), key(1, 0), recorded(State::Exists, "M1", 4)),
            ("C2".into(), key(2, 0), recorded(State::Failed, "M2", 6)),
        ]
    );
    let rows: i64 = ledger
        .conn
        .query_row("SELECT count(*) FROM outcomes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 2);
    assert_eq!(ledger.requests_today().unwrap(), 10);
}

#[test]
fn a_message_folded_twice_is_updated_not_left_as_first_folded() {
    let (_dir, path) = new_ledger();
    let record = |state, attempts, message_id: Option<&'static str>| {
        Record::Message(Message {
            key: key(1, 0),
            conversation_id: "C1".into(),
            state,
            attempts,
            message_id: message_id.map(Into::into),
        })
    };
    // Two folds of one message's records: the first leaves it answered with
    // an id, the second holds a retry's answer without one.
    for (seq, records) in [
        (
            5,
            vec![
                record(State::InFlight, 0, None),
                record(State::Uncertain, 2, Some("M1")),
            ],
        ),
        (
            6,
            vec![
                record(State::InFlight, 0, None),
                record(State::Exists, 1, None),
            ],
        ),
    ] {
        leave_journal(&path, seq, &records);
        drop(Ledger::open(&path, LOOPBACK).unwrap());
    }
    let ledger = Ledger::open(&path, LOOPBACK).unwrap();
    let messages = stored(&ledger.conn);
    assert_eq!(messages.len(), 1);
    let (_, _, r) = &messages[0];
    assert_eq!(
        (r.state, r.message_id.as_deref(), r.attempts),
        (State::Exists, Some("M1"), 3)
    );
    assert_eq!(ledger.requests_today().unwrap(), 3);
}

#[test]
fn folds_of_many_messages_keep_every_message_whole_across_conversations() {
    // Many conversations, of one to three messages, in two folds: each
    // message keeps its own values.
    let (_dir, path) = new_ledger();
    let n: u8 = 53;
    let record = |i: u8, state, attempts, with_id: bool| {
        Record::Message(Message {
            key: key(i, u32::from(i % 3)),
            conversation_id: format!("C{}", i / 3).into(),
            state,
            attempts,
            message_id: with_id.then(|| format!("M{i}").into()),
        })
    };
    let first: Vec<Record<'_>> = (0..n).map(|i| record(i, State::Created, 1, true)).collect();
    leave_journal(&path, 5, &first);
    drop(Ledger::open(&path, LOOPBACK).unwrap());
    // A second fold touches every other message again: an answer without
    // an id keeps the first id and adds its requests.
    let second: Vec<Record<'_>> = (0..n)
        .step_by(2)
        .map(|i| record(i, State::Exists, 2, false))
        .collect();
    leave_journal(&path, 6, &second);
    let ledger = Ledger::open(&path, LOOPBACK).unwrap();
    let messages = stored(&ledger.conn);
    assert_eq!(messages.len(), usize::from(n));
    for (i, (conversation, key_, r)) in (0..n).zip(&messages) {
        let twice = i % 2 == 0;
        assert_eq!(conversation, &format!("C{}", i / 3), "message {i}");
        assert_eq!(key_, &key(i, u32::from(i % 3)), "message {i}");
        let expected = Recorded {
            state: if twice { State::Exists } else { State::Created },
            message_id: Some(format!("M{i}")),
            attempts: if twice { 3 } else { 1 },
            run_id: 1,
        };
        assert_eq!(r, &expected, "message {i}");
    }
    assert_eq!(
        ledger.requests_today().unwrap(),
        u64::from(n) + 2 * u64::from(n.div_ceil(2))
    );
}

/// `--state` naming a directory, a FIFO or a device is refused in so many
/// words, and nothing is made beside it: SQLite said "disk I/O error" for
/// a device and left its `-journal` and the lock behind.
#[cfg(unix)]
#[test]
fn a_ledger_that_is_not_a_file_is_refused_and_nothing_is_left_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    crate::testing::mkfifo(&fifo);
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    for path in [&fifo, &sub] {
        let err = Ledger::open(path, "loopback").err().unwrap();
        assert!(matches!(err, LedgerError::NotAFile { .. }), "{err}");
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["fifo", "sub"]);
}

/// What programs before `outcomes` made of a ledger: a row per message.
const MESSAGES_TABLE: &str = "CREATE TABLE IF NOT EXISTS messages (
    key BLOB NOT NULL,
    occurrence INTEGER NOT NULL,
    conversation_id TEXT NOT NULL,
    state TEXT NOT NULL,
    message_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    run_id INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (key, occurrence)
) WITHOUT ROWID";

#[test]
fn a_ledger_of_a_row_per_message_is_moved_to_outcomes_and_earlier_programs_refuse_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        // As an earlier program left it: created, in flight, failed, and a
        // state this program does not know, over two conversations.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(MESSAGES_TABLE).unwrap();
        for (n, conversation, state, id, attempts, run) in [
            (1u8, "C1", "created", Some("M1"), 1u32, 1i64),
            (2, "C1", "in_flight", None, 0, 2),
            (3, "C2", "failed", None, 3, 2),
            (4, "C2", "sent_somehow", Some("M4"), 1, 1),
        ] {
            conn.execute(
                "INSERT INTO messages VALUES (?1, 0, ?2, ?3, ?4, ?5, ?6, '')",
                rusqlite::params![
                    &key(n, 0).content.0[..],
                    conversation,
                    state,
                    id,
                    attempts,
                    run
                ],
            )
            .unwrap();
        }
    }
    let ledger = Ledger::open(&path, LOOPBACK).unwrap();
    assert_eq!(ledger.recovered_in_flight, 1);
    let recorded = |state, message_id: Option<&str>, attempts, run_id| Recorded {
        state,
        message_id: message_id.map(Into::into),
        attempts,
        run_id,
    };
    assert_eq!(
        stored(&ledger.conn),
        [
            (
                "C1".into(),
                key(1, 0),
                recorded(State::Created, Some("M1"), 1, 1)
            ),
            (
                "C1".into(),
                key(2, 0),
                recorded(State::Uncertain, None, 0, 2)
            ),
            ("C2".into(), key(3, 0), recorded(State::Failed, None, 3, 2)),
            (
                "C2".into(),
                key(4, 0),
                recorded(State::Uncertain, Some("M4"), 1, 1)
            ),
        ]
    );
    assert_eq!(
        ledger.prior("C1", &key(1, 0)),
        Some(Prior::Stored {
            message_id: Some("M1".into())
        })
    );
    assert_eq!(
        ledger.prior("C2", &key(1, 0)),
        None,
        "another conversation's"
    );
    // The earlier table's pages are not kept in the file.
    let free: i64 = ledger
        .conn
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .unwrap();
    assert_eq!(free, 0);
    drop(ledger);

    // An earlier program opening it: its tables (the view stands where
    // `messages` was, and is left so), then what it does before sending,
    // which fails.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(MESSAGES_TABLE).unwrap();
    let refused = conn.execute(
        "UPDATE messages SET state = 'uncertain' WHERE state = 'in_flight'",
        [],
    );
    let e = refused.expect_err("an earlier program's open goes no further");
    assert!(e.to_string().contains("view"), "{e}");
    drop(conn);

    // Opened again, nothing moves: nothing is left in flight, nothing
    // upgraded twice.
    let ledger = Ledger::open(&path, LOOPBACK).unwrap();
    assert_eq!(ledger.recovered_in_flight, 0);
    assert_eq!(stored(&ledger.conn).len(), 4);
}

#[test]
fn a_message_in_flight_then_answered_in_a_later_fold_is_not_recovered() {
    let (_dir, path) = new_ledger();
    let record = answered_in_c1;
    // Fold 5 leaves both in flight; fold 6 has the answer to one.
    leave_journal(
        &path,
        5,
        &[
            record(1, State::InFlight, None),
            record(2, State::InFlight, None),
        ],
    );
    leave_journal(&path, 6, &[record(1, State::Created, Some("M1"))]);
    let ledger = Ledger::open(&path, LOOPBACK).unwrap();
    assert_eq!(ledger.recovered_in_flight, 1);
    assert_eq!(
        ledger.prior("C1", &key(1, 0)),
        Some(Prior::Stored {
            message_id: Some("M1".into())
        })
    );
    assert_eq!(ledger.prior("C1", &key(2, 0)), Some(Prior::Uncertain));
    let flagged: i64 = ledger
        .conn
        .query_row(
            "SELECT count(*) FROM outcomes WHERE in_flight > 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(flagged, 0);
}

#[test]
fn a_ledger_of_a_later_format_is_refused_untouched() {
    let (_dir, path) = new_ledger();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let format: String = conn
        .query_row("SELECT value FROM meta WHERE name = 'format'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(format, "2");
    conn.execute_batch("UPDATE meta SET value = '3' WHERE name = 'format'; DROP TABLE outcomes")
        .unwrap();
    drop(conn);
    let e = Ledger::open(&path, LOOPBACK).err().expect("refused");
    assert!(matches!(e, LedgerError::Newer { .. }), "{e:?}");
    assert!(e.to_string().contains("newer"), "{e}");
    assert!(Reader::open(&path).is_err());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'outcomes'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0, "nothing created in it");
}
