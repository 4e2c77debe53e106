//! The ledger's write-ahead journal: what workers append on the hot path.
//!
//! A SQLite commit costs tens of microseconds and one thread owns the
//! connection, so committing an intent before every request made workers
//! wait on the ledger thread (a wake-up each way per message). Here a
//! worker appends its intent, and the outcomes before it, with one
//! `write(2)` to a file beside the ledger: once `write` returns the bytes
//! are in the OS page cache and survive the process being killed, exactly
//! like a SQLite commit in WAL mode with `synchronous=NORMAL`. The ledger
//! thread folds the journal into SQLite every second and at the end of the
//! run; `Ledger::open` folds what a killed run left behind.
//!
//! A file is `<state>.journal.<seq>`: a header (magic, run id), then records
//! `len: u32 | payload | crc32(payload): u32`, little-endian. A record cut
//! short by a crash fails its length or checksum and ends the file: a cut
//! intent was never followed by its request, a cut outcome leaves the
//! message in flight, so `uncertain`, which is safe.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::plan::ContentKey;

const MAGIC: &[u8; 4] = b"TIJ1";
const HEADER_LEN: u64 = 12;

/// A message's state in the ledger; the journal stores it as a byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    InFlight,
    Created,
    Exists,
    Failed,
    Uncertain,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::InFlight => "in_flight",
            State::Created => "created",
            State::Exists => "exists",
            State::Failed => "failed",
            State::Uncertain => "uncertain",
        }
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(c: u8) -> Option<State> {
        [
            State::InFlight,
            State::Created,
            State::Exists,
            State::Failed,
            State::Uncertain,
        ]
        .get(usize::from(c))
        .copied()
    }
}

/// One journal record: a message about to be sent, or what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: ContentKey,
    pub occurrence: u32,
    pub conversation_id: String,
    pub state: State,
    /// Requests this record accounts for (0 for an intent).
    pub attempts: u32,
    pub message_id: Option<String>,
}

/// Append `record` to `buf`, framed and checksummed.
pub fn encode(buf: &mut Vec<u8>, record: &Record) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&record.key.0);
    buf.extend_from_slice(&record.occurrence.to_le_bytes());
    buf.push(record.state.code());
    buf.extend_from_slice(&record.attempts.to_le_bytes());
    put_str(buf, &record.conversation_id);
    put_str(buf, record.message_id.as_deref().unwrap_or(""));
    let len = (buf.len() - start - 4) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    let crc = crc32fast::hash(&buf[start + 4..]);
    buf.extend_from_slice(&crc.to_le_bytes());
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// Decode one payload; `None` if it is not a well-formed record.
fn decode(mut p: &[u8]) -> Option<Record> {
    fn take<'a>(p: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if p.len() < n {
            return None;
        }
        let (head, rest) = p.split_at(n);
        *p = rest;
        Some(head)
    }
    fn u32_of(p: &mut &[u8]) -> Option<u32> {
        Some(u32::from_le_bytes(take(p, 4)?.try_into().ok()?))
    }
    fn str_of(p: &mut &[u8]) -> Option<String> {
        let n = u32_of(p)? as usize;
        String::from_utf8(take(p, n)?.to_vec()).ok()
    }
    let key = ContentKey(take(&mut p, 16)?.try_into().ok()?);
    let occurrence = u32_of(&mut p)?;
    let state = State::from_code(take(&mut p, 1)?[0])?;
    let attempts = u32_of(&mut p)?;
    let conversation_id = str_of(&mut p)?;
    let message_id = str_of(&mut p)?;
    p.is_empty().then_some(Record {
        key,
        occurrence,
        conversation_id,
        state,
        attempts,
        message_id: (!message_id.is_empty()).then_some(message_id),
    })
}

/// The journal file a run is appending to.
pub struct Journal {
    state: PathBuf,
    run_id: i64,
    active: Mutex<Option<Active>>,
}

struct Active {
    file: File,
    seq: u64,
    len: u64,
}

/// A journal file no longer appended to, waiting to be folded.
#[derive(Debug)]
pub struct Sealed {
    pub seq: u64,
    pub path: PathBuf,
}

impl Journal {
    /// Start a new journal file numbered `seq` for `run_id`.
    pub fn create(state: &Path, run_id: i64, seq: u64) -> io::Result<Journal> {
        let active = Active::create(state, run_id, seq)?;
        Ok(Journal {
            state: state.to_path_buf(),
            run_id,
            active: Mutex::new(Some(active)),
        })
    }

    /// Append framed records. One `write` under the lock: records of two
    /// workers never interleave, and a rotation never splits a write.
    pub fn append(&self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let active = active
            .as_mut()
            .ok_or_else(|| io::Error::other("the journal is closed"))?;
        active.file.write_all(bytes)?;
        active.len += bytes.len() as u64;
        Ok(())
    }

    /// Seal the current file if it holds records, and go on in a new one.
    pub fn rotate(&self) -> io::Result<Option<Sealed>> {
        let mut guard = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let Some(active) = guard.as_ref() else {
            return Ok(None);
        };
        if active.len == HEADER_LEN {
            return Ok(None);
        }
        let next = Active::create(&self.state, self.run_id, active.seq + 1)?;
        let old = guard.replace(next).map(|a| a.seq).unwrap_or_default();
        Ok(Some(Sealed {
            seq: old,
            path: file_path(&self.state, old),
        }))
    }

    /// Delete the current file if nothing was ever appended to it.
    pub fn remove_if_empty(&self) {
        let mut guard = self.active.lock().unwrap_or_else(|e| e.into_inner());
        if guard.as_ref().is_some_and(|a| a.len == HEADER_LEN) {
            if let Some(a) = guard.take() {
                let _ = std::fs::remove_file(file_path(&self.state, a.seq));
            }
        }
    }

    /// Seal the current file for good: later appends fail.
    pub fn close(&self) -> Option<Sealed> {
        let mut guard = self.active.lock().unwrap_or_else(|e| e.into_inner());
        guard.take().map(|a| Sealed {
            seq: a.seq,
            path: file_path(&self.state, a.seq),
        })
    }
}

impl Active {
    fn create(state: &Path, run_id: i64, seq: u64) -> io::Result<Active> {
        let path = file_path(state, seq);
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&run_id.to_le_bytes());
        file.write_all(&header)?;
        Ok(Active {
            file,
            seq,
            len: HEADER_LEN,
        })
    }
}

fn file_path(state: &Path, seq: u64) -> PathBuf {
    let mut p = state.as_os_str().to_owned();
    p.push(format!(".journal.{seq}"));
    PathBuf::from(p)
}

/// Journal files beside `state`, oldest first.
pub fn files(state: &Path) -> io::Result<Vec<Sealed>> {
    let dir = match state.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some(name) = state.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{name}.journal.");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(seq) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        found.push(Sealed {
            seq,
            path: dir.join(file_name),
        });
    }
    found.sort_by_key(|s| s.seq);
    Ok(found)
}

/// A journal file's run id and records, up to the first damaged record.
pub fn read(path: &Path) -> io::Result<(i64, Vec<Record>)> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    if bytes.len() < HEADER_LEN as usize || &bytes[..4] != MAGIC {
        // Created, then killed before its header was written: nothing in it.
        return Ok((0, Vec::new()));
    }
    let run_id = i64::from_le_bytes(bytes[4..12].try_into().expect("8 bytes"));
    let mut records = Vec::new();
    let mut rest = &bytes[HEADER_LEN as usize..];
    while rest.len() >= 4 {
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let Some(frame) = rest.get(4..4 + len + 4) else {
            break;
        };
        let (payload, crc) = frame.split_at(len);
        if crc32fast::hash(payload).to_le_bytes() != crc {
            break;
        }
        let Some(record) = decode(payload) else {
            break;
        };
        records.push(record);
        rest = &rest[4 + len + 4..];
    }
    Ok((run_id, records))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u8, state: State) -> Record {
        Record {
            key: ContentKey([n; 16]),
            occurrence: u32::from(n),
            conversation_id: format!("C{n}"),
            state,
            attempts: u32::from(n) % 3,
            message_id: (state == State::Created).then(|| format!("M{n}")),
        }
    }

    #[test]
    fn records_read_back_in_order_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.db");
        let journal = Journal::create(&state, 7, 3).unwrap();
        let mut buf = Vec::new();
        encode(&mut buf, &record(1, State::InFlight));
        encode(&mut buf, &record(1, State::Created));
        journal.append(&buf).unwrap();
        let sealed = journal.rotate().unwrap().unwrap();
        assert_eq!(sealed.seq, 3);
        assert!(journal.rotate().unwrap().is_none(), "nothing new to seal");
        buf.clear();
        encode(&mut buf, &record(2, State::InFlight));
        journal.append(&buf).unwrap();
        let last = journal.close().unwrap();
        assert!(journal.append(&buf).is_err(), "closed");

        let seqs: Vec<u64> = files(&state).unwrap().iter().map(|s| s.seq).collect();
        assert_eq!(seqs, [3, 4]);
        let (run, first) = read(&sealed.path).unwrap();
        assert_eq!(run, 7);
        assert_eq!(
            first,
            [record(1, State::InFlight), record(1, State::Created)]
        );
        assert_eq!(read(&last.path).unwrap().1, [record(2, State::InFlight)]);
    }

    #[test]
    fn a_cut_or_damaged_tail_ends_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.db");
        let journal = Journal::create(&state, 1, 1).unwrap();
        let mut buf = Vec::new();
        encode(&mut buf, &record(1, State::InFlight));
        let whole = buf.len();
        encode(&mut buf, &record(2, State::InFlight));
        // Every cut inside the second record leaves exactly the first.
        for cut in whole..buf.len() {
            let path = dir.path().join(format!("cut-{cut}"));
            let mut bytes = std::fs::read(file_path(&state, 1)).unwrap();
            bytes.extend_from_slice(&buf[..cut]);
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(read(&path).unwrap().1, [record(1, State::InFlight)]);
        }
        // A flipped byte in the second record's payload.
        let mut damaged = buf.clone();
        damaged[whole + 10] ^= 0xff;
        journal.append(&damaged).unwrap();
        let sealed = journal.close().unwrap();
        assert_eq!(read(&sealed.path).unwrap().1, [record(1, State::InFlight)]);
    }

    #[test]
    fn an_empty_or_headless_file_has_no_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db.journal.1");
        std::fs::write(&path, b"TI").unwrap();
        assert_eq!(read(&path).unwrap(), (0, Vec::new()));
    }
}
