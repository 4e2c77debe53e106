//! Shared helpers for the integration tests: the real binary, a temp dir,
//! a transcript generator and the report read back.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde::Deserialize;

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_transcript-import")
}

/// A temporary directory, removed when dropped.
pub struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// Write `contents` to `name` and return its path as a string.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("write input");
        path.to_str().expect("utf-8 path").to_string()
    }

    /// Every file in the directory, with its bytes.
    pub fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.root()).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_file() {
                let bytes = std::fs::read(&path).expect("read file");
                out.push((path, bytes));
            }
        }
        out
    }
}

/// Every file under `dir`, in subdirectories too, with its bytes.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("dir entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("stat");
            if meta.is_dir() {
                todo.push(path);
            } else if meta.is_file() {
                let bytes = std::fs::read(&path).expect("read file");
                out.push((path, bytes));
            }
        }
    }
    out
}

/// Make a FIFO at `path` with the system's `mkfifo`.
pub fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(made.success(), "mkfifo {}", path.display());
}

/// `setrlimit`'s resource argument, as the libc at hand types it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type Resource = libc::c_int;

/// `cmd` started with its `resource` limited to `soft` and `hard`.
fn with_limit(cmd: &mut Command, resource: Resource, soft: u64, hard: u64) {
    // SAFETY: between fork and exec, setrlimit only lowers this process's
    // own limits.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: soft as libc::rlim_t,
                rlim_max: hard as libc::rlim_t,
            };
            if libc::setrlimit(resource, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// `cmd` started with its limit on open files at `soft` and `hard`.
pub fn with_open_files(cmd: &mut Command, soft: u64, hard: u64) {
    with_limit(cmd, libc::RLIMIT_NOFILE, soft, hard);
}

/// `cmd` started with no file it writes allowed past `bytes` (a disk that
/// fills up), and SIGXFSZ ignored: a write past the limit fails with EFBIG
/// instead of killing the process.
pub fn with_file_size_limit(cmd: &mut Command, bytes: u64) {
    // SAFETY: between fork and exec, signal() only sets a disposition.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    with_limit(cmd, libc::RLIMIT_FSIZE, bytes, bytes);
}

/// Whether `haystack` holds `needle`.
pub fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Panics naming the first file under `dir` (subdirectories included:
/// the ledger and its journal, reports, the HTML report and the summary
/// JSON, spools, anything else a run leaves) that holds `secret`; returns
/// how many files were searched. Run with `TMPDIR=dir`, so that a
/// temporary file is searched too.
pub fn files_written_contain_no_secret(dir: &Path, secret: &str) -> usize {
    let files = files_under(dir);
    for (path, bytes) in &files {
        assert!(
            !holds(bytes, secret.as_bytes()),
            "{} holds the secret",
            path.display()
        );
    }
    files.len()
}

/// What a run of the binary gave.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Ran {
    fn from(o: Output) -> Ran {
        Ran {
            code: o.status.code().expect("exited, not killed"),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// The binary with `args`, credentials from `creds` (the environment's own
/// are removed), run to completion.
pub fn run_with(args: &[&str], creds: Option<(&str, &str)>) -> Ran {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("ASAPP_API_ID")
        .env_remove("ASAPP_API_SECRET");
    if let Some((id, secret)) = creds {
        cmd.env("ASAPP_API_ID", id).env("ASAPP_API_SECRET", secret);
    }
    cmd.output().expect("run the binary").into()
}

/// The binary with `args` and the credentials `x` / `y`.
pub fn run(args: &[&str]) -> Ran {
    run_with(args, Some(("x", "y")))
}

/// `run --api-url URL --state DIR/state.db --report DIR/REPORT --quiet`, then `extra`.
pub fn import(url: &str, dir: &Dir, report: &str, extra: &[&str]) -> Ran {
    let state = dir.path("state.db");
    let report = dir.path(report);
    let mut args = vec![
        "run",
        "--api-url",
        url,
        "--state",
        state.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// One input row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub conversation_id: String,
    pub timestamp: String,
    pub role: String,
    pub sender_id: String,
    pub text: String,
    /// Why the row was made invalid, if it was.
    pub invalid: Option<&'static str>,
}

/// The ways the generator breaks a row, each with a word its reason contains.
pub const BREAKS: [(&str, &str); 5] = [
    ("empty text", "text"),
    ("bad role", "sender_role"),
    ("unparseable timestamp", "timestamp"),
    ("lowercase conversation id", "conversation_id"),
    ("empty sender id", "sender_id"),
];

/// A ULID-like API conversation id (26 characters, `A-Z0-9`).
pub fn conversation_id(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut id = String::from("01J");
    for _ in 0..23 {
        id.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    id
}

/// `conversations` conversations of 1 to 30 messages, `rows` in all, in
/// strictly increasing time within each conversation, shuffled; `invalid`
/// of them broken in one of the [`BREAKS`] ways. Texts have commas, quotes
/// and, now and then, line breaks.
pub fn transcripts(seed: u64, conversations: usize, rows: usize, invalid: usize) -> Vec<Row> {
    assert!(rows >= conversations && rows <= conversations * 30);
    let mut rng = StdRng::seed_from_u64(seed);
    // Start even, then move messages between conversations within 1..=30.
    let mut lengths = vec![rows / conversations; conversations];
    for l in lengths.iter_mut().take(rows % conversations) {
        *l += 1;
    }
    for _ in 0..conversations * 4 {
        let (a, b) = (
            rng.random_range(0..conversations),
            rng.random_range(0..conversations),
        );
        let k = rng.random_range(1..=10);
        if a != b && lengths[a] > k && lengths[b] + k <= 30 {
            lengths[a] -= k;
            lengths[b] += k;
        }
    }
    let base = chrono::DateTime::parse_from_rfc3339("2023-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let mut out = Vec::with_capacity(rows);
    for (c, &len) in lengths.iter().enumerate() {
        let id = conversation_id(&mut rng);
        let mut t = base + chrono::Duration::seconds(rng.random_range(0..300 * 24 * 3600));
        for m in 0..len {
            t += chrono::Duration::milliseconds(rng.random_range(1..120_000));
            let role = ["agent", "customer", "system"][rng.random_range(0..3)];
            let text = match rng.random_range(0..10) {
                0 => format!("Message {m} of {c}, with \"quotes\",\nand a second line"),
                1 => format!("Message {m} of {c}: \u{e9}t\u{e9}, caf\u{e9} \u{1f600}"),
                _ => format!("Message {m} of {c}, hello"),
            };
            out.push(Row {
                conversation_id: id.clone(),
                timestamp: t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                role: role.to_string(),
                sender_id: format!("{role}-{}", rng.random_range(1..50)),
                text,
                invalid: None,
            });
        }
    }
    out.shuffle(&mut rng);
    let mut picks: Vec<usize> = (0..out.len()).collect();
    picks.shuffle(&mut rng);
    for (n, &i) in picks.iter().take(invalid).enumerate() {
        let row = &mut out[i];
        let (why, _) = BREAKS[n % BREAKS.len()];
        match n % BREAKS.len() {
            0 => row.text.clear(),
            1 => row.role = "bot".into(),
            2 => row.timestamp = "yesterday at noon".into(),
            3 => row.conversation_id = row.conversation_id.to_lowercase(),
            _ => row.sender_id.clear(),
        }
        row.invalid = Some(why);
    }
    out
}

/// The rows as CSV with the canonical header.
pub fn csv(rows: &[Row]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "conversation_id",
        "timestamp",
        "sender_role",
        "sender_id",
        "text",
    ])
    .unwrap();
    for r in rows {
        w.write_record([
            &r.conversation_id,
            &r.timestamp,
            &r.role,
            &r.sender_id,
            &r.text,
        ])
        .unwrap();
    }
    w.into_inner().unwrap()
}

/// The rows as JSONL in the API's shape.
pub fn jsonl(rows: &[Row]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in rows {
        let v = serde_json::json!({
            "conversation_id": r.conversation_id,
            "text": r.text,
            "sender": {"role": r.role, "externalId": r.sender_id},
            "timestamp": r.timestamp,
        });
        out.extend_from_slice(v.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// A report row, read back as the contract names its columns.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReportRow {
    pub source: String,
    pub record: u64,
    pub line: u64,
    pub conversation_id: String,
    pub api_conversation_id: String,
    pub timestamp: String,
    pub status: String,
    pub message_id: String,
    pub http_status: Option<u16>,
    pub error_code: String,
    pub error_message: String,
    pub request_id: String,
    pub attempts: u32,
}

/// The report at `path` (`.csv` or `.jsonl`).
pub fn report(path: &Path) -> Vec<ReportRow> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if path.extension().is_some_and(|e| e == "jsonl") {
        bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("report line is JSON"))
            .collect()
    } else {
        csv::Reader::from_reader(&bytes[..])
            .deserialize()
            .map(|r| r.expect("report row"))
            .collect()
    }
}

/// How many report rows have each status.
pub fn statuses(rows: &[ReportRow]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in rows {
        *m.entry(r.status.clone()).or_default() += 1;
    }
    m
}

/// The first of `paths` that exists: a tool a test needs beyond cargo.
/// Where none does, the test is skipped, saying `skipped` and how to
/// install `package` (the README's `cargo test` works on a fresh machine);
/// in CI (`CI=true`, where `.ci/run` installs it) that is a failure.
pub fn tool(paths: &[&'static str], package: &str, skipped: &str) -> Option<&'static str> {
    let found = paths.iter().copied().find(|p| Path::new(p).exists());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{} is missing: .ci/run installs {package}",
            paths.join(" or ")
        );
        eprintln!(
            "SKIPPED: {skipped}: no {} here (apt-get install {package})",
            paths[0]
        );
    }
    found
}
