#![no_main]

//! The whole read → validate → plan path on arbitrary bytes, CSV or JSONL,
//! as `plan::read_all` runs it, with the invariants the report and the
//! sender rely on:
//!
//! - records are numbered 1, 2, 3, ... and start at increasing offsets;
//! - every record is accounted for exactly once: planned, invalid, or in
//!   another shard (by its conversation id, or shard 1 without one);
//! - every planned conversation is sorted by instant, ties in input order,
//!   longest first, and belongs to the shard;
//! - every planned message reads back by offset as the message planned;
//! - no reason carries a raw control character.
//!
//! The first byte picks the format, the conversation mode and the shard.

use libfuzzer_sys::fuzz_target;
use transcript_import::model::{ConversationMode, RowRef, SourceId};
use transcript_import::plan::{Builder, Shard, Texts};
use transcript_import::read::{self, Format, ReadOptions};
use transcript_import::validate::{self, ValidateOptions};

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, bytes)) = data.split_first() else {
        return;
    };
    let format = if knobs & 1 == 0 { Format::Csv } else { Format::Jsonl };
    let mode = if knobs & 2 == 0 {
        ConversationMode::Existing
    } else {
        ConversationMode::Create
    };
    let shard = match (knobs >> 2) % 4 {
        0 => None,
        k => Some(Shard::new(u32::from(k), 3).expect("shard")),
    };
    let opts = ReadOptions {
        format: Some(format),
        ..ReadOptions::default()
    };
    let Ok(source) = read::open_bytes(SourceId(0), "fuzz", bytes, &opts) else {
        return;
    };
    let Ok(records) = source.records() else {
        return;
    };
    let vopts = ValidateOptions {
        mode,
        timezone: chrono_tz::Europe::Berlin,
        ..ValidateOptions::default()
    };
    let mut builder = Builder::new(shard, mode);
    let (mut planned_here, mut invalid, mut elsewhere) = (Vec::<RowRef>::new(), 0u64, 0u64);
    let mut last: Option<RowRef> = None;
    let mut read = 0u64;
    for rec in records {
        // A fatal reading error stops the whole input: nothing is planned.
        let Ok(rec) = rec else {
            return;
        };
        read += 1;
        assert_eq!(rec.pos.record, read, "records are numbered without gaps");
        if let Some(prev) = last {
            assert!(rec.pos.offset > prev.offset, "{prev:?} then {:?}", rec.pos);
            assert!(rec.pos.line >= prev.line, "{prev:?} then {:?}", rec.pos);
        }
        last = Some(rec.pos);
        let id = rec.conversation_id().map(|s| s.trim().to_string());
        let id = id.as_deref().filter(|s| !s.is_empty());
        match rec.fields.and_then(|f| validate::row(rec.pos, f, &vopts)) {
            Ok(row) => {
                assert_eq!(Some(row.conversation_id.as_str()), id);
                if builder.add(&row) {
                    planned_here.push(row.pos);
                } else {
                    assert!(shard.is_some_and(|s| !s.owns(id)));
                    elsewhere += 1;
                }
            }
            Err(reason) => {
                let shown = reason.to_string();
                assert!(
                    !shown.chars().any(char::is_control),
                    "a raw control character in {shown:?}"
                );
                if shard.is_some_and(|s| !s.owns(id)) {
                    elsewhere += 1;
                } else {
                    invalid += 1;
                }
            }
        }
    }
    let plan = builder.finish();
    let mut planned: Vec<RowRef> = plan
        .iter()
        .flat_map(|c| c.entries.iter().map(|e| e.pos))
        .collect();
    assert_eq!(planned.len() as u64 + invalid + elsewhere, read);
    planned.sort();
    planned_here.sort();
    assert_eq!(planned, planned_here, "every valid row planned exactly once");
    for pair in plan.windows(2) {
        assert!(pair[0].entries.len() >= pair[1].entries.len(), "longest first");
    }
    let sources = [source];
    let texts = Texts::new(&sources, &vopts);
    let mut reader = texts.reader();
    for c in &plan {
        assert!(!c.entries.is_empty());
        if let Some(s) = shard {
            assert!(s.contains(&c.id));
        }
        for pair in c.entries.windows(2) {
            let key = |e: &transcript_import::model::Entry| (e.instant, e.pos.source, e.pos.record);
            assert!(key(&pair[0]) < key(&pair[1]), "{:?} before {:?}", pair[0], pair[1]);
        }
        for entry in &c.entries {
            if let Err(e) = reader.body(entry) {
                panic!("planned message does not read back: {e}");
            }
        }
    }
});
