//! Read, validate and plan: the stages that touch every row.
//! `cargo bench --bench pipeline`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use transcript_import::model::{ConversationMode, SourceId};
use transcript_import::plan;
use transcript_import::read::{self, ReadOptions};
use transcript_import::validate::{self, ValidateOptions};

#[path = "common.rs"]
mod common;

const ROWS: usize = 100_000;

fn read_validate_plan(path: &std::path::Path) -> usize {
    let source = read::open(SourceId(0), path.to_str().unwrap(), &ReadOptions::default()).unwrap();
    let opts = ValidateOptions::default();
    let mut builder = plan::Builder::new(None, ConversationMode::Existing);
    for rec in source.records().unwrap() {
        let rec = rec.unwrap();
        if let Ok(fields) = rec.fields {
            if let Ok(row) = validate::row(rec.pos, fields, &opts) {
                builder.add(&row).unwrap();
            }
        }
    }
    builder.finish().len()
}

fn bench(c: &mut Criterion) {
    let inputs = common::inputs(ROWS);

    let mut g = c.benchmark_group("read+validate+plan");
    g.sample_size(10);
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("csv 100k rows", |b| {
        b.iter(|| read_validate_plan(&inputs.csv))
    });
    g.bench_function("jsonl 100k rows", |b| {
        b.iter(|| read_validate_plan(&inputs.jsonl))
    });
    g.finish();

    // Reading a message back by offset, as every worker does before sending.
    let source = read::open(
        SourceId(0),
        inputs.csv.to_str().unwrap(),
        &ReadOptions::default(),
    )
    .unwrap();
    let refs: Vec<_> = source
        .records()
        .unwrap()
        .map(|r| r.unwrap().pos)
        .step_by(97)
        .collect();
    let mut g = c.benchmark_group("read_at");
    g.throughput(Throughput::Elements(refs.len() as u64));
    g.bench_function("csv", |b| {
        let mut reader = source.reader().unwrap();
        b.iter(|| {
            for r in &refs {
                reader.read_at(r).unwrap();
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
