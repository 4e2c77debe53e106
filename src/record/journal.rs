//! The ledger's write-ahead journal: what workers append on the hot path.
//!
//! A SQLite commit costs tens of microseconds and one thread owns the
//! connection, so committing an intent before every request made workers
//! wait on the ledger thread (a wake-up each way per message). Here a
//! worker copies its intent, and the outcome before it, into a file beside
//! the ledger that is mapped into memory (`MAP_SHARED`): once copied, the
//! bytes are in the OS page cache and survive the process being killed,
//! exactly like a SQLite commit in WAL mode with `synchronous=NORMAL`, at
//! the cost of a `memcpy` instead of a system call and its file-system
//! bookkeeping. The ledger thread folds the journal into SQLite as it grows
//! and at the end of the run; `Ledger::open` folds what a killed run left.
//!
//! The page cache does not survive the machine going down (power lost, a
//! kernel panic, a VM's host failing): intents still in it are lost, and
//! the next run would send those messages again. Against a real API each
//! append is therefore also written to the disk before it returns
//! ([`Journal::sync_to_disk`]: an `msync` of the pages it touched, and an
//! `fsync` of each new file and its directory), which the API's own pace
//! (100 requests a second) makes cheap.
//!
//! A file is `<state>.journal.<seq>.<lane>`: a header (magic, run id), then records
//! `len: u32 | payload | crc32(payload): u32`, little-endian, then zeros
//! (space allocated ahead, so that a full disk is an error from `fallocate`
//! or `write`, never a SIGBUS from a page fault). A zero length ends the records. A record cut
//! short by a crash fails its length or checksum and ends the file: only a
//! lane's last record can be cut (a lane takes one append at a time), a cut
//! intent was never followed by its request, and a cut outcome leaves the
//! message in flight, so `uncertain`, which is safe.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use crossbeam_utils::CachePadded;
use memmap2::MmapMut;

use super::private_file;
use crate::model::{ContentKey, MessageKey};

/// Version 2 payloads start with a kind byte ([`Record`]); version 1 files,
/// which a killed run of an older build may have left, hold messages only.
const MAGIC: &[u8; 4] = b"TIJ2";
const MAGIC_V1: &[u8; 4] = b"TIJ1";
const HEADER_LEN: u64 = 12;

crate::model::string_enum! {
    /// A message's state in the ledger: its name in the ledgers of earlier
    /// versions (a `messages` table), its code in `outcomes` rows,
    /// its position in [`State::ALL`] as a byte in the journal.
    pub enum State {
        InFlight = "in_flight",
        Created = "created",
        Exists = "exists",
        Failed = "failed",
        Uncertain = "uncertain",
    }
}

impl State {
    pub(super) fn code(self) -> u8 {
        State::ALL.iter().position(|s| *s == self).unwrap_or(0) as u8
    }

    pub(super) fn from_code(c: u8) -> Option<State> {
        State::ALL.get(usize::from(c)).copied()
    }
}

/// A message about to be sent, or what came of it. Borrowed when written
/// (no allocation per request), owned when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub key: MessageKey,
    pub conversation_id: Cow<'a, str>,
    pub state: State,
    /// Requests this record accounts for (0 for an intent).
    pub attempts: u32,
    pub message_id: Option<Cow<'a, str>>,
}

/// One journal record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    Message(Message<'a>),
    /// A conversation the API created (or found) for an external id.
    Conversation {
        external_id: Cow<'a, str>,
        api_id: Cow<'a, str>,
    },
    /// Requests that belong to no one row (creating a conversation,
    /// reading one back), for the daily quota.
    Requests {
        count: u32,
    },
}

const KIND_MESSAGE: u8 = 0;
const KIND_CONVERSATION: u8 = 1;
const KIND_REQUESTS: u8 = 2;

/// Append `record` to `buf`, framed and checksummed.
pub fn encode(buf: &mut Vec<u8>, record: &Record<'_>) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    match record {
        Record::Message(m) => {
            buf.push(KIND_MESSAGE);
            encode_message(buf, m);
        }
        Record::Conversation {
            external_id,
            api_id,
        } => {
            buf.push(KIND_CONVERSATION);
            put_str(buf, external_id);
            put_str(buf, api_id);
        }
        Record::Requests { count } => {
            buf.push(KIND_REQUESTS);
            buf.extend_from_slice(&count.to_le_bytes());
        }
    }
    let len = (buf.len() - start - 4) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    let crc = crc32fast::hash(&buf[start + 4..]);
    buf.extend_from_slice(&crc.to_le_bytes());
}

/// The bytes of the smallest message record, framed: length, kind (none
/// in version 1 files), key, occurrence, state, attempts, two empty
/// strings' lengths, checksum.
const SMALLEST_MESSAGE_RECORD: usize = 4 + 16 + 4 + 1 + 4 + 4 + 4 + 4;

fn encode_message(buf: &mut Vec<u8>, m: &Message<'_>) {
    buf.extend_from_slice(&m.key.content.0);
    buf.extend_from_slice(&m.key.occurrence.to_le_bytes());
    buf.push(m.state.code());
    buf.extend_from_slice(&m.attempts.to_le_bytes());
    put_str(buf, &m.conversation_id);
    put_str(buf, m.message_id.as_deref().unwrap_or(""));
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

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

fn str_of<'a>(p: &mut &'a [u8]) -> Option<&'a str> {
    let n = u32_of(p)? as usize;
    std::str::from_utf8(take(p, n)?).ok()
}

/// Decode one payload of a file of `version`; `None` if it is not a
/// well-formed record.
fn decode(mut p: &[u8], version: u8) -> Option<Record<'_>> {
    let kind = if version == 1 {
        KIND_MESSAGE
    } else {
        take(&mut p, 1)?[0]
    };
    let record = match kind {
        KIND_MESSAGE => Record::Message(decode_message(&mut p)?),
        KIND_CONVERSATION => Record::Conversation {
            external_id: Cow::Borrowed(str_of(&mut p)?),
            api_id: Cow::Borrowed(str_of(&mut p)?),
        },
        KIND_REQUESTS => Record::Requests {
            count: u32_of(&mut p)?,
        },
        _ => return None,
    };
    p.is_empty().then_some(record)
}

fn decode_message<'a>(p: &mut &'a [u8]) -> Option<Message<'a>> {
    let content = ContentKey(take(p, 16)?.try_into().ok()?);
    let occurrence = u32_of(p)?;
    let state = State::from_code(take(p, 1)?[0])?;
    let attempts = u32_of(p)?;
    let conversation_id = str_of(p)?;
    let message_id = str_of(p)?;
    Some(Message {
        key: MessageKey {
            content,
            occurrence,
        },
        conversation_id: Cow::Borrowed(conversation_id),
        state,
        attempts,
        message_id: (!message_id.is_empty()).then_some(Cow::Borrowed(message_id)),
    })
}

/// Lanes a journal spreads its writers over: each lane is its own file, so
/// workers do not queue on one lock (nor on one inode's) to append.
const LANES: usize = 64;

/// The journal a run is appending to: per sequence number, one file per
/// lane that was written to, created on its first append.
pub struct Journal {
    state: PathBuf,
    run_id: i64,
    /// The sequence number appends go to; `u64::MAX` once closed.
    seq: AtomicU64,
    /// Each on cache lines of its own: side by side, two workers' lanes
    /// would share one, and each append's lock and unlock would wait for
    /// the other core to give it back.
    lanes: Vec<CachePadded<Mutex<Lane>>>,
    next_lane: AtomicUsize,
    /// Each append reaches the disk before it returns (see the module's
    /// documentation), not only the page cache.
    to_disk: AtomicBool,
}

#[derive(Default)]
struct Lane {
    /// The file of sequence number `seq` for this lane, if written to.
    file: Option<LaneFile>,
    seq: u64,
}

/// Space a lane file starts with, allocated before it is mapped; it
/// doubles when full (at most by [`MAX_GROW`]), so a slow run writes little
/// ahead and a fast one remaps rarely.
const FIRST: usize = 64 * 1024;
const MAX_GROW: usize = 4 << 20;

/// One lane's file of one sequence number, mapped for appending.
struct LaneFile {
    file: File,
    map: MmapMut,
    /// Bytes in use, header included.
    used: usize,
}

impl LaneFile {
    fn create(path: &Path, run_id: i64, to_disk: bool) -> io::Result<LaneFile> {
        let mut options = OpenOptions::new();
        options.create_new(true).read(true).write(true);
        let mut file = private_file(&mut options).open(path)?;
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&run_id.to_le_bytes());
        file.write_all(&header)?;
        let map = extend(&mut file, header.len(), FIRST)?;
        if to_disk {
            // The file's header and space, then its name: a record synced
            // into a file whose directory entry was not is lost with it.
            file.sync_all()?;
            #[cfg(unix)]
            File::open(super::directory_of(path))?.sync_all()?;
        }
        Ok(LaneFile {
            file,
            map,
            used: header.len(),
        })
    }

    fn append(&mut self, bytes: &[u8], to_disk: bool) -> io::Result<()> {
        let start = self.used;
        let end = start + bytes.len();
        if end > self.map.len() {
            let len = self.map.len();
            self.map = extend(&mut self.file, len, bytes.len().max(len.min(MAX_GROW)))?;
        }
        self.map[start..end].copy_from_slice(bytes);
        self.used = end;
        if to_disk {
            // msync of the pages written; the file's new size, if it grew,
            // goes with them (data-sync semantics).
            self.map.flush_range(start, bytes.len())?;
        }
        Ok(())
    }

    /// Bytes of records appended, the header not counted.
    fn records(&self) -> u64 {
        (self.used as u64).saturating_sub(HEADER_LEN)
    }

    /// Stop appending: unmap, and cut the zeros written ahead so that the
    /// fold reads only records.
    fn seal(self) -> io::Result<()> {
        let LaneFile { file, map, used } = self;
        drop(map);
        file.set_len(used as u64)
    }
}

/// Give the file `more` bytes of zeros at `len`, their blocks allocated
/// now (so that a full disk is an error here, never a SIGBUS from a page
/// fault), and map the whole file again.
fn extend(file: &mut File, len: usize, more: usize) -> io::Result<MmapMut> {
    if !allocate(file, len, more)? {
        write_zeros(file, len, more)?;
    }
    // SAFETY: the file was created by this process (`create_new`) beside a
    // ledger whose lock it holds, and only this lane, under its mutex, ever
    // touches it until it is sealed: nothing truncates it while mapped.
    unsafe { MmapMut::map_mut(&*file) }
}

/// Allocate `more` bytes at `len` without writing them: the file system
/// marks the blocks as reading back zeros. Writing the zeros instead put
/// each page through a copy from user memory before the workers' records
/// overwrote it: that copy was over half of the workers' journal time.
/// `false` where the file system cannot (the caller writes zeros).
#[cfg(target_os = "linux")]
fn allocate(file: &File, len: usize, more: usize) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(more)) = (libc::off_t::try_from(len), libc::off_t::try_from(more)) else {
        return Ok(false);
    };
    loop {
        // SAFETY: a plain system call on a file descriptor this `File` owns.
        if unsafe { libc::fallocate(file.as_raw_fd(), 0, offset, more) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EOPNOTSUPP | libc::ENOSYS) => return Ok(false),
            _ => return Err(e),
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn allocate(_: &File, _: usize, _: usize) -> io::Result<bool> {
    Ok(false)
}

fn write_zeros(file: &mut File, len: usize, more: usize) -> io::Result<()> {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    file.seek(SeekFrom::Start(len as u64))?;
    let mut left = more;
    while left > 0 {
        let n = left.min(ZEROS.len());
        file.write_all(&ZEROS[..n])?;
        left -= n;
    }
    Ok(())
}

/// The files of one sequence number, no longer appended to, waiting to be
/// folded.
#[derive(Debug)]
pub struct Sealed {
    pub seq: u64,
    pub paths: Vec<PathBuf>,
    /// Bytes of records the files hold; more for files a killed run left
    /// uncut (they end in zeros), and none for a file whose size could not
    /// be read.
    pub bytes: u64,
}

impl Journal {
    /// A journal for `run_id` starting at sequence number `seq`. Files are
    /// created on first use: a run that sends nothing leaves none.
    pub fn new(state: &Path, run_id: i64, seq: u64) -> Journal {
        Journal {
            state: state.to_path_buf(),
            run_id,
            seq: AtomicU64::new(seq),
            lanes: (0..LANES).map(|_| CachePadded::default()).collect(),
            next_lane: AtomicUsize::new(0),
            to_disk: AtomicBool::new(false),
        }
    }

    /// From now on, each append reaches the disk before it returns, so
    /// that what was sent survives the machine going down, not only the
    /// process being killed.
    pub fn sync_to_disk(&self) {
        self.to_disk.store(true, Ordering::Relaxed);
    }

    /// A lane for a new writer.
    pub fn lane(&self) -> usize {
        self.next_lane.fetch_add(1, Ordering::Relaxed) % LANES
    }

    /// Append framed records to `lane`'s file. One copy under the lane's
    /// lock: records never interleave, and a rotation never splits a write.
    /// A message's records all come from one worker, so they are in order.
    pub fn append(&self, lane: usize, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let mut lane_guard = self.lanes[lane % LANES]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Read under the lane's lock: a seal holds every lane's lock while
        // it moves `seq` on, so this write lands wholly before it or after.
        let seq = self.seq.load(Ordering::SeqCst);
        if seq == u64::MAX {
            return Err(io::Error::other("the journal is closed"));
        }
        let to_disk = self.to_disk.load(Ordering::Relaxed);
        if lane_guard.seq != seq || lane_guard.file.is_none() {
            let path = file_path(&self.state, seq, lane % LANES);
            let file = LaneFile::create(&path, self.run_id, to_disk)?;
            *lane_guard = Lane {
                file: Some(file),
                seq,
            };
        }
        lane_guard
            .file
            .as_mut()
            .expect("just opened")
            .append(bytes, to_disk)
    }

    /// Bytes of records appended since the last seal.
    pub fn pending(&self) -> u64 {
        let seq = self.seq.load(Ordering::SeqCst);
        self.lanes
            .iter()
            .map(|l| {
                let lane = l.lock().unwrap_or_else(|e| e.into_inner());
                match &lane.file {
                    Some(f) if lane.seq == seq => f.records(),
                    _ => 0,
                }
            })
            .sum()
    }

    /// Seal what was written under the current sequence number and go on
    /// with the next one. `None` if nothing was written.
    pub fn rotate(&self) -> Option<Sealed> {
        self.seal(|seq| seq + 1)
    }

    /// Seal for good: later appends fail.
    pub fn close(&self) -> Option<Sealed> {
        self.seal(|_| u64::MAX)
    }

    fn seal(&self, next: impl Fn(u64) -> u64) -> Option<Sealed> {
        // Every lane's lock at once (always in the same order; an appender
        // holds one at most): no append can start under the old number
        // after a lane was looked at, nor leave a file of it behind.
        let mut lanes: Vec<_> = self
            .lanes
            .iter()
            .map(|l| l.lock().unwrap_or_else(|e| e.into_inner()))
            .collect();
        let seq = self.seq.load(Ordering::SeqCst);
        if seq == u64::MAX {
            return None;
        }
        let to = next(seq);
        let written = lanes.iter().any(|l| l.seq == seq && l.file.is_some());
        if to != u64::MAX && !written {
            // Nothing to seal: keep the number.
            return None;
        }
        self.seq.store(to, Ordering::SeqCst);
        let taken: Vec<(usize, LaneFile)> = lanes
            .iter_mut()
            .enumerate()
            .filter(|(_, lane)| lane.seq == seq)
            .filter_map(|(i, lane)| Some((i, lane.file.take()?)))
            .collect();
        // Unmap and cut the files once the workers can append again: done
        // under every lane's lock, sixteen workers' files held up every
        // worker's next append for 1.0-4.0 ms per seal (100,000 messages at
        // zero latency, three runs); now the locks are held 3-90 us. No
        // worker touches a file once it is out of its lane.
        drop(lanes);
        let mut paths = Vec::with_capacity(taken.len());
        let mut bytes = 0;
        for (i, file) in taken {
            bytes += file.records();
            // A file left uncut still folds: the zeros end its records.
            let _ = file.seal();
            paths.push(file_path(&self.state, seq, i));
        }
        (!paths.is_empty()).then_some(Sealed { seq, paths, bytes })
    }
}

fn file_path(state: &Path, seq: u64, lane: usize) -> PathBuf {
    let mut p = state.as_os_str().to_owned();
    p.push(format!(".journal.{seq}.{lane}"));
    PathBuf::from(p)
}

/// Journal files beside `state`, by sequence number, oldest first.
pub fn files(state: &Path) -> io::Result<Vec<Sealed>> {
    let dir = super::directory_of(state);
    let Some(name) = state.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{name}.journal.");
    let mut by_seq: std::collections::BTreeMap<u64, (Vec<PathBuf>, u64)> = Default::default();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(seq) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|rest| rest.split_once('.'))
            .filter(|(_, lane)| lane.parse::<usize>().is_ok())
            .and_then(|(seq, _)| seq.parse::<u64>().ok())
        else {
            continue;
        };
        // Only the ledger thread's cache sizing reads `bytes`, never the
        // fold of a killed run's files: a size that cannot be read must
        // not stop that fold.
        let len = entry.metadata().map_or(0, |m| m.len());
        let (paths, bytes) = by_seq.entry(seq).or_default();
        paths.push(dir.join(file_name));
        *bytes += len.saturating_sub(HEADER_LEN);
    }
    Ok(by_seq
        .into_iter()
        .map(|(seq, (mut paths, bytes))| {
            paths.sort();
            Sealed { seq, paths, bytes }
        })
        .collect())
}

/// A sealed journal file, mapped for reading: the fold borrows its
/// records' strings from here instead of copying each into the heap.
pub struct Mapped {
    /// The file's bytes; `None` for an empty file.
    bytes: Option<memmap2::Mmap>,
    /// Its version and run id, read once; `None` without a header (created,
    /// then killed before its header was written: nothing in it).
    header: Option<(u8, i64)>,
}

impl Mapped {
    pub fn open(path: &Path) -> io::Result<Mapped> {
        let file = File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(Mapped {
                bytes: None,
                header: None,
            });
        }
        // Mapped, not read: a lane's file may still hold the zeros written
        // ahead of its records (up to 4 MiB) if it was not cut. SAFETY: a
        // sealed file is no longer written, and the ledger's lock keeps any
        // other run from touching it.
        let bytes = unsafe { memmap2::Mmap::map(&file)? };
        let header = header(&bytes);
        Ok(Mapped {
            bytes: Some(bytes),
            header,
        })
    }

    /// The most message records the file can hold: its bytes over the
    /// smallest a message record can be. More than it holds (records are
    /// larger, and a file not cut ends in zeros), never fewer.
    pub fn most_messages(&self) -> usize {
        self.bytes.as_deref().map_or(0, |b| {
            b.len().saturating_sub(HEADER_LEN as usize) / SMALLEST_MESSAGE_RECORD
        })
    }

    /// The file's run id, and each record with its offset in the file, up
    /// to the first damaged record.
    pub fn scan<'a>(&'a self, mut visit: impl FnMut(usize, Record<'a>)) -> i64 {
        let (Some((version, run_id)), Some(bytes)) = (self.header, self.bytes.as_deref()) else {
            return 0;
        };
        let mut at = HEADER_LEN as usize;
        while let Some((payload, next)) = frame(bytes, at) {
            let Some(record) = decode(payload, version) else {
                break;
            };
            visit(at, record);
            at = next;
        }
        run_id
    }

    /// Ask the CPU to fetch the record at `at` into its cache, without
    /// waiting for it: see `fold_journal`, which reads records back out of
    /// file order. A hint only; nothing on other architectures.
    pub fn prefetch(&self, at: usize) {
        #[cfg(target_arch = "x86_64")]
        if let Some(bytes) = self.bytes.as_deref().and_then(|b| b.get(at..)) {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let p = bytes.as_ptr().cast::<i8>();
            // SAFETY: a prefetch reads nothing the program sees and never
            // faults, whatever the address; SSE is in every x86_64 CPU.
            // A record is 60 to 120 bytes: it may reach into the next line.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(p);
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = at;
    }

    /// The record at `at`, as [`Mapped::scan`] found it (and checked: a
    /// sealed file does not change, so its checksum is not read again).
    pub fn at(&self, at: usize) -> Option<Record<'_>> {
        let (version, _) = self.header?;
        decode(payload(self.bytes.as_deref()?, at)?.0, version)
    }
}

/// A file's version and run id, if it starts with a header.
fn header(bytes: &[u8]) -> Option<(u8, i64)> {
    let version = match bytes.get(..4)? {
        m if m == MAGIC => 2,
        m if m == MAGIC_V1 => 1,
        _ => return None,
    };
    let run_id = i64::from_le_bytes(bytes.get(4..12)?.try_into().ok()?);
    Some((version, run_id))
}

/// The payload of the frame at `at` and where its checksum starts; `None`
/// at the zeros written ahead or the end of the file.
fn payload(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let len = u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize;
    if len == 0 {
        return None;
    }
    Some((bytes.get(at + 4..at + 4 + len)?, at + 4 + len))
}

/// The payload of the frame at `at`, checked, and where the next frame
/// starts; `None` at the end of the records: the zeros written ahead, the
/// end of the file, or a frame cut short or damaged.
fn frame(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let (payload, crc_at) = payload(bytes, at)?;
    let crc = bytes.get(crc_at..crc_at + 4)?;
    (crc32fast::hash(payload).to_le_bytes() == crc).then_some((payload, crc_at + 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u8, state: State) -> Message<'static> {
        Message {
            key: MessageKey {
                content: ContentKey([n; 16]),
                occurrence: u32::from(n),
            },
            conversation_id: format!("C{n}").into(),
            state,
            attempts: u32::from(n) % 3,
            message_id: (state == State::Created).then(|| format!("M{n}").into()),
        }
    }

    /// A file's run id and records, owned, for comparing.
    fn read(path: &Path) -> io::Result<(i64, Vec<Record<'static>>)> {
        let mapped = Mapped::open(path)?;
        let mut records = Vec::new();
        let run_id = mapped.scan(|_, r| records.push(r));
        let owned = |r: Record<'_>| match r {
            Record::Message(m) => Record::Message(Message {
                conversation_id: m.conversation_id.into_owned().into(),
                message_id: m.message_id.map(|id| id.into_owned().into()),
                ..m
            }),
            Record::Conversation {
                external_id,
                api_id,
            } => Record::Conversation {
                external_id: external_id.into_owned().into(),
                api_id: api_id.into_owned().into(),
            },
            Record::Requests { count } => Record::Requests { count },
        };
        Ok((run_id, records.into_iter().map(owned).collect()))
    }

    fn record(n: u8, state: State) -> Record<'static> {
        Record::Message(message(n, state))
    }

    fn occurrence(r: &Record<'_>) -> u32 {
        match r {
            Record::Message(m) => m.key.occurrence,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_kind_reads_back_and_version_1_files_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let records = [
            record(1, State::Created),
            Record::Conversation {
                external_id: "chat-000123 / ü".into(),
                api_id: "01HCONV".into(),
            },
            Record::Requests { count: 3 },
        ];
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&7i64.to_le_bytes());
        for r in &records {
            encode(&mut bytes, r);
        }
        let path = dir.path().join("v2");
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read(&path).unwrap(), (7, records.to_vec()));
        // Version 1: a message payload without its kind byte.
        let mut payload = Vec::new();
        encode_message(&mut payload, &message(2, State::InFlight));
        let mut v1 = MAGIC_V1.to_vec();
        v1.extend_from_slice(&1i64.to_le_bytes());
        v1.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        v1.extend_from_slice(&payload);
        v1.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        std::fs::write(&path, &v1).unwrap();
        assert_eq!(read(&path).unwrap(), (1, vec![record(2, State::InFlight)]));
    }

    #[test]
    fn most_messages_is_never_fewer_than_a_file_holds() {
        let dir = tempfile::tempdir().unwrap();
        let smallest = |version_1: bool| {
            let m = Message {
                conversation_id: "".into(),
                message_id: None,
                ..message(1, State::InFlight)
            };
            let mut bytes = Vec::new();
            if version_1 {
                let mut payload = Vec::new();
                encode_message(&mut payload, &m);
                bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
                bytes.extend_from_slice(&payload);
                bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            } else {
                encode(&mut bytes, &Record::Message(m));
            }
            bytes
        };
        assert_eq!(smallest(true).len(), SMALLEST_MESSAGE_RECORD);
        assert_eq!(smallest(false).len(), SMALLEST_MESSAGE_RECORD + 1);
        for (version_1, magic) in [(true, MAGIC_V1), (false, MAGIC)] {
            let mut bytes = magic.to_vec();
            bytes.extend_from_slice(&1i64.to_le_bytes());
            for _ in 0..1000 {
                bytes.extend_from_slice(&smallest(version_1));
            }
            let path = dir.path().join("j");
            std::fs::write(&path, &bytes).unwrap();
            let mapped = Mapped::open(&path).unwrap();
            let mut held = 0;
            mapped.scan(|_, _| held += 1);
            assert_eq!(held, 1000);
            assert!(mapped.most_messages() >= held, "{}", mapped.most_messages());
        }
        std::fs::write(dir.path().join("empty"), b"").unwrap();
        assert_eq!(
            Mapped::open(&dir.path().join("empty"))
                .unwrap()
                .most_messages(),
            0
        );
    }

    /// The dirty pages of the mapping of `path` in this process, in kB,
    /// as /proc/self/smaps counts them.
    #[cfg(target_os = "linux")]
    fn dirty_kb(path: &Path) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let name = path.to_str().unwrap();
        let mut inside = false;
        let mut kb = 0;
        for line in smaps.lines() {
            // A mapping's first line: its address range, ..., its file.
            if line
                .split_whitespace()
                .next()
                .is_some_and(|r| r.contains('-'))
            {
                inside = line.ends_with(name);
                continue;
            }
            if inside && (line.starts_with("Shared_Dirty:") || line.starts_with("Private_Dirty:")) {
                kb += line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap();
            }
        }
        kb
    }

    /// Synced to the disk, an append leaves none of its pages dirty in
    /// the page cache (where a machine going down would lose them);
    /// without, it does. Not on tmpfs, whose pages have no disk to reach.
    #[cfg(target_os = "linux")]
    #[test]
    fn an_append_synced_to_the_disk_leaves_no_dirty_page() {
        let dir = tempfile::tempdir().unwrap();
        let on_tmpfs = std::process::Command::new("stat")
            .args(["-f", "-c", "%T"])
            .arg(dir.path())
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "tmpfs");
        if on_tmpfs {
            eprintln!("skipped: the temporary directory is on tmpfs");
            return;
        }
        let mut buf = Vec::new();
        encode(&mut buf, &record(1, State::InFlight));
        for to_disk in [false, true] {
            let state = dir.path().join(format!("{to_disk}.db"));
            let journal = Journal::new(&state, 1, 1);
            if to_disk {
                journal.sync_to_disk();
            }
            let lane = journal.lane();
            journal.append(lane, &buf).unwrap();
            let dirty = dirty_kb(&file_path(&state, 1, lane));
            if to_disk {
                assert_eq!(dirty, 0, "synced to the disk");
            } else {
                assert!(dirty > 0, "left to the page cache");
            }
            // And the next record, in the same page.
            journal.append(lane, &buf).unwrap();
            assert_eq!(dirty_kb(&file_path(&state, 1, lane)) == 0, to_disk);
        }
    }

    #[test]
    fn records_read_back_by_sequence_across_rotations_and_lanes() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.db");
        let journal = Journal::new(&state, 7, 3);
        let (a, b) = (journal.lane(), journal.lane());
        assert_ne!(a, b);
        assert!(journal.rotate().is_none(), "nothing written yet");
        assert!(files(&state).unwrap().is_empty(), "no file before a write");
        let mut buf = Vec::new();
        encode(&mut buf, &record(1, State::InFlight));
        encode(&mut buf, &record(1, State::Created));
        journal.append(a, &buf).unwrap();
        let mut appended = buf.len() as u64;
        buf.clear();
        encode(&mut buf, &record(2, State::InFlight));
        journal.append(b, &buf).unwrap();
        appended += buf.len() as u64;
        assert_eq!(journal.pending(), appended);
        let sealed = journal.rotate().unwrap();
        assert_eq!((sealed.seq, sealed.paths.len()), (3, 2));
        assert_eq!(sealed.bytes, appended, "the records, not the headers");
        buf.clear();
        encode(&mut buf, &record(2, State::Created));
        journal.append(b, &buf).unwrap();
        let last = journal.close().unwrap();
        assert_eq!(last.bytes, buf.len() as u64);
        assert!(journal.append(a, &buf).is_err(), "closed");
        assert!(journal.close().is_none());

        let on_disk: Vec<(u64, usize, u64)> = files(&state)
            .unwrap()
            .iter()
            .map(|s| (s.seq, s.paths.len(), s.bytes))
            .collect();
        // Sealed files are cut to their records: the same bytes read back.
        assert_eq!(on_disk, [(3, 2, sealed.bytes), (4, 1, last.bytes)]);
        let (run, first) = read(&sealed.paths[0]).unwrap();
        assert_eq!(run, 7);
        assert_eq!(
            first,
            [record(1, State::InFlight), record(1, State::Created)]
        );
        assert_eq!(
            read(&sealed.paths[1]).unwrap().1,
            [record(2, State::InFlight)]
        );
        assert_eq!(read(&last.paths[0]).unwrap().1, [record(2, State::Created)]);
    }

    #[test]
    fn a_cut_or_damaged_tail_ends_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.db");
        let journal = Journal::new(&state, 1, 1);
        let lane = journal.lane();
        let mut buf = Vec::new();
        encode(&mut buf, &record(1, State::InFlight));
        let whole = buf.len();
        encode(&mut buf, &record(2, State::InFlight));
        journal.append(lane, &buf[..whole]).unwrap();
        let sealed = journal.rotate().unwrap();
        let first = std::fs::read(&sealed.paths[0]).unwrap();
        assert_eq!(
            first.len(),
            HEADER_LEN as usize + whole,
            "sealed files are cut"
        );
        let with = |tail: &[u8], name: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, [&first[..], tail].concat()).unwrap();
            read(&path).unwrap().1
        };
        // Every cut inside the second record leaves exactly the first.
        for cut in whole..buf.len() {
            assert_eq!(with(&buf[whole..cut], "cut"), [record(1, State::InFlight)]);
        }
        // A lane file a crash left unsealed: zeros after the records.
        assert_eq!(with(&[0; 300], "zeros"), [record(1, State::InFlight)]);
        // A flipped byte in the second record's payload.
        let mut damaged = buf[whole..].to_vec();
        damaged[10] ^= 0xff;
        assert_eq!(with(&damaged, "damaged"), [record(1, State::InFlight)]);
    }

    #[test]
    fn a_lane_grows_past_the_space_written_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.db");
        let journal = Journal::new(&state, 1, 1);
        let lane = journal.lane();
        let mut buf = Vec::new();
        let mut written = 0;
        let mut n = 0u32;
        while written < 3 * MAX_GROW {
            buf.clear();
            let mut m = message(1, State::Created);
            m.key.occurrence = n;
            encode(&mut buf, &Record::Message(m));
            journal.append(lane, &buf).unwrap();
            written += buf.len();
            n += 1;
        }
        let sealed = journal.close().unwrap();
        let records = read(&sealed.paths[0]).unwrap().1;
        assert_eq!(records.len(), n as usize);
        assert_eq!(occurrence(records.last().unwrap()), n - 1);
    }

    #[test]
    fn room_made_ahead_reads_back_as_zeros_either_way() {
        let dir = tempfile::tempdir().unwrap();
        for (name, allocated) in [("allocated", true), ("written", false)] {
            let path = dir.path().join(name);
            let mut file = OpenOptions::new()
                .create_new(true)
                .read(true)
                .write(true)
                .open(&path)
                .unwrap();
            file.write_all(b"head").unwrap();
            if allocated {
                // Linux's file systems here (ext4, tmpfs) allocate; one that
                // cannot says so and the zeros are written instead.
                if !allocate(&file, 4, FIRST).unwrap() {
                    write_zeros(&mut file, 4, FIRST).unwrap();
                }
            } else {
                write_zeros(&mut file, 4, FIRST).unwrap();
            }
            let map = extend(&mut file, 4 + FIRST, FIRST).unwrap();
            assert_eq!(map.len(), 4 + 2 * FIRST, "{name}");
            assert_eq!(&map[..4], b"head", "{name}");
            assert!(map[4..].iter().all(|b| *b == 0), "{name}");
        }
    }

    #[test]
    fn rotating_while_workers_append_seals_every_record_once() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.db");
        let journal = Journal::new(&state, 1, 1);
        let (writers, each) = (8u32, 2_000u32);
        let mut sealed = Vec::new();
        std::thread::scope(|scope| {
            for w in 0..writers {
                let journal = &journal;
                scope.spawn(move || {
                    let lane = journal.lane();
                    let mut buf = Vec::new();
                    for n in 0..each {
                        buf.clear();
                        let mut m = message(1, State::InFlight);
                        m.key.occurrence = w * each + n;
                        encode(&mut buf, &Record::Message(m));
                        journal.append(lane, &buf).unwrap();
                    }
                });
            }
            for _ in 0..200 {
                sealed.extend(journal.rotate());
                std::thread::yield_now();
            }
        });
        sealed.extend(journal.close());
        let mut seen: Vec<u32> = sealed
            .iter()
            .flat_map(|s| &s.paths)
            .flat_map(|p| read(p).unwrap().1)
            .map(|r| occurrence(&r))
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..writers * each).collect::<Vec<_>>());
        // Nothing on disk that no seal names.
        let on_disk: usize = files(&state).unwrap().iter().map(|s| s.paths.len()).sum();
        let named: usize = sealed.iter().map(|s| s.paths.len()).sum();
        assert_eq!(on_disk, named);
    }

    #[test]
    fn an_empty_or_headless_file_has_no_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db.journal.1.0");
        std::fs::write(&path, b"TI").unwrap();
        assert_eq!(read(&path).unwrap(), (0, Vec::new()));
    }
}
