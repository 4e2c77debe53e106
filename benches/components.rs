//! Each stage on its own, on generated transcripts (`common.rs`): reading
//! records, parsing timestamps, planning, recording outcomes in the ledger,
//! and rendering the report. Every group sets a throughput, so criterion
//! prints MB/s or elements/s beside the times.
//!
//! `cargo bench --bench components` (a minute or two; one group:
//! `cargo bench --bench components -- ledger`).

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use transcript_import::model::{
    ConversationMode, MessageKey, Outcome, RowRef, SourceId, Status, Timestamp,
};
use transcript_import::plan;
use transcript_import::read::{self, ReadOptions};
use transcript_import::report::{self, ReportFormat, Spool};
use transcript_import::timestamp;
use transcript_import::validate::{self, Row, ValidateOptions};
use transcript_import::Ledger;

#[path = "common.rs"]
mod common;

/// Rows in the generated inputs (about 17 MB of CSV).
const ROWS: usize = 100_000;
/// Outcomes recorded per ledger: a fresh ledger each time, so every
/// measurement inserts into the same size of table.
const LEDGER_OUTCOMES: usize = 20_000;
/// Timestamps parsed per iteration, all different.
const TIMESTAMPS: usize = 1_000;

/// Ten samples, a short warm-up and a few seconds of measuring: each
/// group stays within seconds even on a busy machine.
fn short<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g
}

/// Every record of `path`, read and counted, nothing checked.
fn read_records(path: &Path) -> usize {
    let source = read::open(SourceId(0), path.to_str().unwrap(), &ReadOptions::default()).unwrap();
    let mut n = 0;
    for rec in source.records().unwrap() {
        n += usize::from(rec.unwrap().fields.is_ok());
    }
    n
}

/// The valid rows of `path`, in input order.
fn valid_rows(path: &Path) -> Vec<Row> {
    let source = read::open(SourceId(0), path.to_str().unwrap(), &ReadOptions::default()).unwrap();
    let opts = ValidateOptions::default();
    let rows: Vec<Row> = source
        .records()
        .unwrap()
        .map(|rec| {
            let rec = rec.unwrap();
            validate::row(rec.pos, rec.fields.unwrap(), &opts).unwrap()
        })
        .collect();
    assert_eq!(rows.len(), ROWS);
    rows
}

fn plan_of(rows: &[Row], mode: ConversationMode) -> Vec<transcript_import::model::Conversation> {
    let mut builder = plan::Builder::new(None, mode);
    for row in rows {
        builder.add(row).unwrap();
    }
    builder.finish()
}

fn reader(c: &mut Criterion, csv: &Path, jsonl: &Path) {
    let mut g = short(c, "reader");
    // Ten reads of the JSONL file take about 3 s on a busy machine.
    g.sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(5));
    for (name, path) in [("csv 100k rows", csv), ("jsonl 100k rows", jsonl)] {
        g.throughput(Throughput::Bytes(std::fs::metadata(path).unwrap().len()));
        g.bench_function(name, |b| {
            b.iter(|| assert_eq!(read_records(path), ROWS));
        });
    }
    g.finish();
}

/// `TIMESTAMPS` values of one form, each a different instant.
fn timestamps(form: Form) -> Vec<String> {
    let mut seed: u64 = 7;
    (0..TIMESTAMPS)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            form(seed >> 20)
        })
        .collect()
}

/// One way of writing timestamps, from random bits.
type Form = fn(u64) -> String;

/// A date and time of day (no zone) from random bits.
fn date(r: u64) -> String {
    format!(
        "20{:02}-{:02}-{:02}T{:02}:{:02}:{:02}",
        10 + r % 14,
        1 + (r >> 4) % 12,
        1 + (r >> 8) % 28,
        (r >> 13) % 24,
        (r >> 18) % 60,
        (r >> 24) % 60
    )
}

fn timestamp_parser(c: &mut Criterion) {
    let forms: [(&str, Form, chrono_tz::Tz); 7] = [
        ("rfc3339 Z", |r| format!("{}Z", date(r)), chrono_tz::UTC),
        (
            "rfc3339 +hh:mm",
            |r| format!("{}+0{}:30", date(r), r % 10),
            chrono_tz::UTC,
        ),
        (
            "rfc3339 .mmm Z",
            |r| format!("{}.{:03}Z", date(r), r % 1000),
            chrono_tz::UTC,
        ),
        (
            "rfc3339 .uuuuuu -hh:mm",
            |r| format!("{}.{:06}-05:00", date(r), r % 1_000_000),
            chrono_tz::UTC,
        ),
        (
            "zoneless in America/New_York",
            |r| date(r).replace('T', " "),
            chrono_tz::America::New_York,
        ),
        (
            "epoch millis",
            |r| (1_500_000_000_000 + r % 300_000_000_000).to_string(),
            chrono_tz::UTC,
        ),
        (
            "epoch seconds.mmm",
            |r| format!("{}.{:03}", 1_500_000_000 + r % 300_000_000, r % 1000),
            chrono_tz::UTC,
        ),
    ];
    let mut g = short(c, "timestamp");
    g.measurement_time(Duration::from_secs(2));
    for (name, form, tz) in forms {
        let values = timestamps(form);
        // Every value parses (a DST gap or overlap would be an error, not a
        // timestamp: none of the generated times falls in one).
        let values: Vec<String> = values
            .into_iter()
            .filter(|v| timestamp::parse(v, tz).is_ok())
            .collect();
        assert!(
            values.len() > TIMESTAMPS * 99 / 100,
            "{name}: {}",
            values[0]
        );
        g.throughput(Throughput::Elements(values.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut digits = 0u32;
                for v in &values {
                    let t: Timestamp = timestamp::parse(std::hint::black_box(v), tz).unwrap();
                    digits += u32::from(t.digits);
                }
                digits
            })
        });
    }
    g.finish();
}

fn planner(c: &mut Criterion, rows: &[Row]) {
    let mut g = short(c, "planner");
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(rows.len() as u64));
    for (name, mode) in [
        ("existing 100k rows", ConversationMode::Existing),
        ("create 100k rows", ConversationMode::Create),
    ] {
        // The plan is dropped outside the measurement.
        g.bench_function(name, |b| b.iter_with_large_drop(|| plan_of(rows, mode)));
    }
    g.finish();
}

/// What a worker sends, in the plan's order: (conversation id, key).
fn sends(conversations: &[transcript_import::model::Conversation]) -> Vec<(&str, MessageKey)> {
    conversations
        .iter()
        .flat_map(|c| c.entries.iter().map(move |e| (&*c.id, e.key())))
        .collect()
}

/// One worker's part of a run's bookkeeping: per message an intent, then
/// its outcome (created, with the API's id), then a sync at the end.
fn record(mut recorder: transcript_import::Recorder, sends: &[(&str, MessageKey)]) {
    for (i, &(conversation_id, key)) in sends.iter().enumerate() {
        recorder.intent(key, conversation_id).unwrap();
        let mut outcome = Outcome::bare(RowRef::default(), conversation_id, Status::Created);
        outcome.message_id = Some(format!("01HMSG{i:020}"));
        outcome.http_status = Some(200);
        outcome.attempts = 1;
        outcome.requests = 1;
        outcome.sent = Some(key);
        recorder.outcome(&outcome);
    }
    recorder.sync().unwrap();
}

fn ledger(c: &mut Criterion, conversations: &[transcript_import::model::Conversation]) {
    let dir = tempfile::tempdir().unwrap();
    // Conversations dealt to workers in plan order, as sending does.
    let all = sends(conversations);
    let all = &all[..LEDGER_OUTCOMES];
    let mut g = short(c, "ledger");
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(all.len() as u64));
    let mut round = 0;
    for workers in [1usize, 4] {
        g.bench_function(format!("{workers} worker(s), 20k outcomes"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    let state = dir.path().join(format!("state-{round}.db"));
                    let mut ledger = Ledger::open(&state, "https://api.example.com").unwrap();
                    ledger.add_sources(&["t.csv".to_string()]).unwrap();
                    let t = Instant::now();
                    let writer = ledger.into_writer().unwrap();
                    let share = all.len().div_ceil(workers);
                    std::thread::scope(|s| {
                        for part in all.chunks(share) {
                            let recorder = writer.recorder();
                            s.spawn(move || record(recorder, part));
                        }
                    });
                    let ledger = writer.close().unwrap();
                    total += t.elapsed();
                    drop(ledger);
                    for entry in std::fs::read_dir(dir.path()).unwrap() {
                        std::fs::remove_file(entry.unwrap().path()).unwrap();
                    }
                }
                total
            })
        });
    }
    g.finish();
}

/// Outcomes as a run decides them, in the plan's order (not the input's):
/// mostly created, some failed with the API's words, a few uncertain.
fn outcomes(conversations: &[transcript_import::model::Conversation]) -> Vec<Outcome<'_>> {
    let mut out = Vec::with_capacity(ROWS);
    for c in conversations {
        for e in &c.entries {
            let i = out.len();
            let status = match i % 100 {
                0..=1 => Status::Failed,
                2 => Status::Uncertain,
                _ => Status::Created,
            };
            let mut o = Outcome::bare(e.pos(), &c.id, status);
            o.api_conversation_id = Some(&c.id);
            o.timestamp = e.timestamp();
            o.attempts = 1;
            o.requests = 1;
            o.sent = Some(e.key());
            match status {
                Status::Created => {
                    o.message_id = Some(format!("01HMSG{i:020}"));
                    o.http_status = Some(200);
                    o.request_id = Some(format!("req-{i:012x}"));
                }
                Status::Failed => {
                    o.http_status = Some(400);
                    o.error_code = Some("INVALID_ARGUMENT".into());
                    o.error_message =
                        Some("text: must be at most 10000 characters, \"quoted\"".into());
                    o.request_id = Some(format!("req-{i:012x}"));
                    o.attempts = 3;
                }
                _ => o.error_message = Some("no answer within 30s".into()),
            }
            out.push(o);
        }
    }
    out
}

fn report_writer(c: &mut Criterion, conversations: &[transcript_import::model::Conversation]) {
    let dir = tempfile::tempdir().unwrap();
    let outcomes = outcomes(conversations);
    let sources = vec!["transcripts.csv".to_string()];
    let mut g = short(c, "report");
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(outcomes.len() as u64));
    g.bench_function("csv render+spool+write 100k rows", |b| {
        let path = dir.path().join("report.csv");
        b.iter(|| {
            let spool = Spool::for_report(ReportFormat::Csv, sources.clone(), dir.path()).unwrap();
            spool.reserve(&[outcomes.len() as u64]);
            let mut writer = spool.writer();
            for o in &outcomes {
                writer.outcome(o).unwrap();
            }
            writer.flush().unwrap();
            drop(writer);
            report::write(&spool, &path, None).unwrap()
        });
        // In input order, one line a row and the header.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), outcomes.len() + 1);
    });
    // The rendering alone, for how much of the above is CSV encoding.
    g.bench_function("csv render only 100k rows", |b| {
        let mut buf = Vec::with_capacity(32 << 20);
        b.iter(|| {
            buf.clear();
            for o in &outcomes {
                let row = report::ReportRow::new(o, &sources[0]);
                ReportFormat::Csv.encode(&row, &mut buf).unwrap();
            }
            buf.len()
        });
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    let inputs = common::inputs(ROWS);
    let rows = valid_rows(&inputs.csv);
    let conversations = plan_of(&rows, ConversationMode::Existing);

    reader(c, &inputs.csv, &inputs.jsonl);
    timestamp_parser(c);
    planner(c, &rows);
    ledger(c, &conversations);
    report_writer(c, &conversations);
}

criterion_group!(benches, bench);
criterion_main!(benches);
