//! A deterministic transcript workload for the scale benchmark
//! (`benches/scale.sh`): `rows` messages in `conversations` conversations
//! whose sizes follow Zipf's law with exponent `s` (0 = all equal), texts of
//! realistic lengths (mostly short, a long tail), rows in time order across
//! conversations as exports write them.
//!
//! cargo run --release --example workload -- ROWS CONVERSATIONS S TEXT_MEAN SEED OUT.csv
//! prints `longest N`, the largest conversation's size.

use std::io::{BufWriter, Write};

/// A small, fast, seeded generator (PCG-style LCG): the same seed gives the
/// same file on every machine.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn unit(&mut self) -> f64 {
        self.next() as f64 / (1u64 << 31) as f64
    }
}

const WORDS: &[&str] = &[
    "thanks",
    "order",
    "the",
    "please",
    "account",
    "I",
    "can",
    "you",
    "check",
    "status",
    "refund",
    "delivery",
    "today",
    "help",
    "with",
    "my",
    "plan",
    "upgrade",
    "café",
    "ok",
    "“quoted”",
    "a",
    "number",
    "is",
    "12345",
    "waiting",
    "sorry",
    "for",
    "delay",
    "sure,",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!("usage: workload ROWS CONVERSATIONS ZIPF_S TEXT_MEAN SEED OUT.csv");
        std::process::exit(2);
    }
    let rows: u64 = args[1].parse().expect("ROWS");
    let convs: u64 = args[2].parse().expect("CONVERSATIONS");
    let s: f64 = args[3].parse().expect("ZIPF_S");
    let mean: f64 = args[4].parse().expect("TEXT_MEAN");
    let mut rng = Lcg(args[5].parse().expect("SEED"));
    let out = &args[6];

    // Sizes by Zipf weight, rounded so that they add up to `rows`, each at
    // least one message.
    let weights: Vec<f64> = (1..=convs).map(|k| 1.0 / (k as f64).powf(s)).collect();
    let total: f64 = weights.iter().sum();
    let spare = rows - convs;
    let mut sizes: Vec<u64> = weights
        .iter()
        .map(|w| 1 + (w / total * spare as f64).floor() as u64)
        .collect();
    let mut left = rows - sizes.iter().sum::<u64>();
    for size in sizes.iter_mut() {
        if left == 0 {
            break;
        }
        *size += 1;
        left -= 1;
    }

    // Conversations start spread over a year; messages follow a minute or
    // so apart. Rows are written in time order across conversations.
    let mut rows_out: Vec<(i64, u32, u32)> = Vec::with_capacity(rows as usize);
    for (c, &n) in sizes.iter().enumerate() {
        let mut t = 1_577_836_800_000i64 + (rng.next() % 31_536_000_000) as i64;
        for m in 0..n as u32 {
            rows_out.push((t, c as u32, m));
            t += 1_000 + (rng.next() % 120_000) as i64;
        }
    }
    rows_out.sort_unstable();

    let mut f = BufWriter::with_capacity(1 << 20, std::fs::File::create(out).expect("OUT"));
    writeln!(f, "conversation_id,timestamp,sender_role,sender_id,text").unwrap();
    let mut text = String::new();
    for (t, c, m) in rows_out {
        let role = if m == 0 || rng.next().is_multiple_of(2) {
            "customer"
        } else {
            "agent"
        };
        let sender = if role == "customer" { c } else { c % 97 };
        // Lengths: exponential around the mean, a few long ones.
        let len = (-(1.0 - rng.unit()).max(1e-9).ln() * mean) as usize + 1;
        text.clear();
        while text.len() < len {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(WORDS[(rng.next() % WORDS.len() as u64) as usize]);
        }
        let ts = chrono::DateTime::from_timestamp_millis(t).unwrap();
        writeln!(
            f,
            "CONV{c:08},{},{role},{role}-{sender},\"{}\"",
            ts.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            text.replace('"', "\"\"")
        )
        .unwrap();
    }
    f.flush().unwrap();
    // For the benchmark's lower bound: the longest chain of messages.
    println!("longest {}", sizes.iter().max().unwrap_or(&0));
}
