//! Realistic transcript files for the benchmarks.

use std::io::Write;
use std::path::{Path, PathBuf};

/// `rows` messages written as CSV and as JSONL in a temporary folder, kept
/// as long as this is.
#[allow(dead_code)] // used by the component and pipeline benches
pub struct Inputs {
    _dir: tempfile::TempDir,
    pub csv: PathBuf,
    pub jsonl: PathBuf,
}

#[allow(dead_code)]
pub fn inputs(rows: usize) -> Inputs {
    let dir = tempfile::tempdir().unwrap();
    let (csv, jsonl) = (dir.path().join("t.csv"), dir.path().join("t.jsonl"));
    write_csv(&csv, rows);
    write_jsonl(&jsonl, rows);
    Inputs {
        _dir: dir,
        csv,
        jsonl,
    }
}

/// `rows` messages in conversations of 1 to 40 messages, shuffled, as CSV.
pub fn write_csv(path: &Path, rows: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "conversation_id,timestamp,sender_role,sender_id,text").unwrap();
    for line in lines(rows) {
        let (c, t, r, s, text) = line;
        writeln!(f, "{c},{t},{r},{s},\"{}\"", text.replace('"', "\"\"")).unwrap();
    }
}

/// The same as JSONL in the API's own shape.
#[allow(dead_code)] // used by the pipeline bench, not by e2e
pub fn write_jsonl(path: &Path, rows: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for (c, t, r, s, text) in lines(rows) {
        let v = serde_json::json!({
            "conversationId": c, "timestamp": t, "text": text,
            "sender": {"role": r, "externalId": s},
        });
        writeln!(f, "{v}").unwrap();
    }
}

fn lines(rows: usize) -> Vec<(String, String, &'static str, String, String)> {
    let mut out = Vec::with_capacity(rows);
    let mut seed: u64 = 42;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let mut conv = 0;
    while out.len() < rows {
        conv += 1;
        let len = 1 + (next() % 40) as usize;
        for m in 0..len.min(rows - out.len()) {
            // A customer opens every conversation: the API creates one
            // only with its customer (`--conversations create`).
            let role = if m == 0 {
                "customer"
            } else {
                ["agent", "customer", "system"][(next() % 3) as usize]
            };
            out.push((
                format!("01HCONV{conv:08}"),
                format!("2023-05-{:02}T{:02}:{:02}:{:02}.{:03}Z", 1 + conv % 28, m / 60 % 24, m % 60, next() % 60, next() % 1000),
                role,
                format!("{role}-{}", next() % 500),
                format!(
                    "Message {m} of conversation {conv}: thanks for your patience, let me check the order status, \"quoted\", and get back to you."
                ),
            ));
        }
    }
    // Shuffle: exports are rarely in conversation order.
    for i in (1..out.len()).rev() {
        let j = (next() as usize) % (i + 1);
        out.swap(i, j);
    }
    out
}
