//! A real migration: conversations created by their own ids, batches,
//! lost answers settled by reading back, and the daily quota. The real
//! binary against the emulator, which gives out conversation ids and
//! refuses messages for ids it did not give (as the API does).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use transcript_import::emulator::{Config, Emulator, Stats};
use transcript_import::model::Status;
use transcript_import::report::ReportRow;

use crate::delivery::{
    assert_sent_soundly, code, corpus, one_per_row, report, run, spawn, start, statuses, stderr,
    wait_child, wait_for, write_csv,
};
use crate::util::Row;

/// The emulator as a migration meets the API: messages only for
/// conversations it created.
fn api(config: Config) -> Emulator {
    start(Config {
        known_conversations_only: true,
        ..config
    })
}

fn create(url: &str, dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--conversations", "create"];
    args.extend_from_slice(extra);
    run(url, dir, &[&dir.join("in.csv")], &args)
}

fn endpoint(stats: &Stats, name: &str) -> u64 {
    stats.requests_by_endpoint.get(name).copied().unwrap_or(0)
}

/// Every row `created`, with its message id and its conversation's API
/// id; every message stored once, in order, in the conversation the report
/// names; one API conversation per input conversation.
fn assert_imported(rows: &[Row], report: &[ReportRow], emu: &Emulator) {
    let report = one_per_row(report, rows.len());
    let stored: HashMap<String, (String, String)> = emu
        .messages()
        .into_iter()
        .map(|m| (m.id, (m.conversation_id, m.text)))
        .collect();
    let mut api_of: HashMap<&str, &str> = HashMap::new();
    for (row, r) in rows.iter().zip(report) {
        assert_eq!(r.status, Status::Created, "{r:?}");
        let (conversation, text) = stored
            .get(&r.message_id)
            .unwrap_or_else(|| panic!("no stored message {r:?}"));
        assert_eq!(text, &row.text);
        assert_eq!(conversation, &r.api_conversation_id);
        let api = api_of
            .entry(row.conversation_id.as_str())
            .or_insert(r.api_conversation_id.as_str());
        assert_eq!(*api, r.api_conversation_id, "one API id per conversation");
    }
    let distinct: HashSet<&&str> = api_of.values().collect();
    assert_eq!(distinct.len(), api_of.len());
    let stats = emu.stats();
    assert_eq!(stats.stored as usize, rows.len(), "{stats:?}");
    assert_eq!(
        stats.conversations_created as usize,
        api_of.len(),
        "{stats:?}"
    );
    assert_sent_soundly(&stats);
}

fn corpus_in(dir: &Path, conversations: usize, per: usize) -> Vec<Row> {
    // `chat-000123`: ids of the caller's own, not the API's pattern.
    let rows = corpus("chat-0", conversations, per);
    write_csv(&dir.join("in.csv"), &rows);
    rows
}

#[test]
fn create_mode_creates_each_conversation_once_and_sends_every_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let rows = corpus_in(dir.path(), 2_000, 10);
    let emu = api(Config::default());
    let out = create(&emu.url(), dir.path(), &["--concurrency", "16"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_imported(&rows, &report(dir.path()), &emu);
    let stats = emu.stats();
    assert_eq!(endpoint(&stats, "createOrUpdateConversation"), 2_000);
    assert_eq!(endpoint(&stats, "createMessage"), 20_000);
    assert_eq!(endpoint(&stats, "getMessagesByExternalId"), 0);

    // A later run: nothing created or sent again, ids from the ledger.
    let first = report(dir.path());
    let out = create(&emu.url(), dir.path(), &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let again = report(dir.path());
    for (a, b) in first.iter().zip(&again) {
        assert_eq!(b.status, Status::AlreadyImported);
        assert_eq!(b.message_id, a.message_id);
    }
    assert_eq!(emu.stats().requests_total, stats.requests_total);
}

#[test]
fn batches_use_the_fewest_requests_and_ids_are_read_back() {
    let dir = tempfile::tempdir().unwrap();
    // 2,000 conversations of 5 to 15 messages.
    let mut rows = Vec::new();
    for per in [5usize, 10, 15] {
        rows.extend(corpus(&format!("chat-{per}-"), 2_000 / 3 + 1, per));
    }
    write_csv(&dir.path().join("in.csv"), &rows);
    let mut sizes: HashMap<&str, u64> = HashMap::new();
    for r in &rows {
        *sizes.entry(r.conversation_id.as_str()).or_default() += 1;
    }
    let emu = api(Config::default());
    let out = create(
        &emu.url(),
        dir.path(),
        &["--concurrency", "16", "--batch", "100"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_imported(&rows, &report(dir.path()), &emu);
    let stats = emu.stats();
    let conversations = sizes.len() as u64;
    let batches: u64 = sizes.values().map(|n| n.div_ceil(100)).sum();
    assert!(
        stats.requests_total <= conversations * 2 + batches,
        "{} requests for {conversations} conversations in {batches} batches",
        stats.requests_total
    );
    assert_eq!(endpoint(&stats, "createMessage"), 0);
    assert!(stderr(&out).contains(&format!(
        "the fewest this plan could take: {}",
        conversations * 2 + batches
    )));
}

#[test]
fn lost_answers_are_settled_by_reading_back_never_sent_twice() {
    for batch in [None, Some("7")] {
        let dir = tempfile::tempdir().unwrap();
        let rows = corpus_in(dir.path(), 300, 20);
        let emu = api(Config {
            drop_after: 0.01,
            drop_before: 0.01,
            seed: Some(12),
            ..Config::default()
        });
        let mut extra = vec!["--concurrency", "16", "--backoff-scale", "0.01"];
        if let Some(n) = batch {
            extra.extend(["--batch", n]);
        }
        let out = create(&emu.url(), dir.path(), &extra);
        assert_eq!(code(&out), 0, "{batch:?}: {}", stderr(&out));
        let stats = emu.stats();
        assert!(stats.dropped_after > 0, "{stats:?}");
        assert_imported(&rows, &report(dir.path()), &emu);
    }
}

#[test]
fn a_daily_quota_pauses_whole_conversations_and_the_next_day_finishes() {
    let dir = tempfile::tempdir().unwrap();
    // 40 conversations of 10: 11 requests each (a create and 10
    // messages), 440 in all: two days at 300.
    let rows = corpus_in(dir.path(), 40, 10);
    let emu = api(Config::quota_at_midday(300));
    let out = create(&emu.url(), dir.path(), &["--daily-quota", "300"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(stderr(&out).contains("run again after"), "{}", stderr(&out));
    let first = report(dir.path());
    one_per_row(&first, rows.len());
    // No conversation is split: each is all created or all waiting.
    let mut by_conversation: HashMap<&str, HashSet<Status>> = HashMap::new();
    for r in &first {
        by_conversation
            .entry(r.conversation_id.as_str())
            .or_default()
            .insert(r.status);
    }
    for (conversation, statuses) in &by_conversation {
        assert_eq!(statuses.len(), 1, "{conversation} split: {statuses:?}");
    }
    let created = first.iter().filter(|r| r.status == Status::Created).count();
    assert_eq!(created, 27 * 10, "{:?}", statuses(&first));
    assert!(emu.stats().requests_total <= 300);

    // The next day (the API's quota starts over; this run is told the new
    // day's allowance by leaving the flag out).
    emu.reset_quota();
    let out = create(&emu.url(), dir.path(), &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let second = report(dir.path());
    for (a, b) in first.iter().zip(&second) {
        let want = match a.status {
            Status::Created => Status::AlreadyImported,
            _ => Status::Created,
        };
        assert_eq!(b.status, want, "{b:?}");
    }
    let stats = emu.stats();
    assert_eq!(stats.stored as usize, rows.len());
    assert_eq!(stats.conversations_created, 40);
    assert_sent_soundly(&stats);
}

#[test]
fn a_killed_create_mode_run_resumes_without_doubles_or_uncertain_rows() {
    let dir = tempfile::tempdir().unwrap();
    let rows = corpus_in(dir.path(), 200, 10);
    let input = dir.path().join("in.csv");
    let emu = api(Config {
        latency: Duration::from_millis(5),
        ..Config::default()
    });
    let args = ["--conversations", "create", "--concurrency", "8"];
    for kill_at in [300, 900] {
        let mut child = spawn(&emu.url(), dir.path(), &[&input], &args);
        assert!(wait_for(Duration::from_secs(120), || emu.stats().stored >= kill_at));
        child.kill().unwrap();
        let _ = wait_child(&mut child, Duration::from_secs(30));
    }
    let out = run(&emu.url(), dir.path(), &[&input], &args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let last = report(dir.path());
    one_per_row(&last, rows.len());
    assert!(
        last.iter()
            .all(|r| matches!(r.status, Status::Created | Status::AlreadyImported)),
        "{:?}",
        statuses(&last)
    );
    let stats = emu.stats();
    assert_eq!(stats.stored as usize, rows.len());
    assert_eq!(stats.conversations_created, 200);
    assert_sent_soundly(&stats);
}

#[test]
fn a_409_is_exists_and_the_conversation_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let rows = corpus_in(dir.path(), 20, 5);
    let emu = api(Config {
        conflict_on_duplicate: true,
        ..Config::default()
    });
    let out = create(&emu.url(), dir.path(), &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let first = report(dir.path());
    // A fresh ledger: the API already holds every message.
    std::fs::remove_file(dir.path().join("state.db")).unwrap();
    let out = create(&emu.url(), dir.path(), &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let second = report(dir.path());
    one_per_row(&second, rows.len());
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(b.status, Status::Exists, "{b:?}");
        assert_eq!(b.http_status, Some(409));
        // Filled by reading the conversation back.
        assert_eq!(b.message_id, a.message_id);
    }
    let stats = emu.stats();
    assert_eq!(stats.stored as usize, rows.len());
    assert_eq!(stats.conversations_created, 20);
}
