//! Read and validate every input, streaming: valid rows go into the plan,
//! invalid ones to the caller as they are found (with the conversation id
//! they name, when it could be read), so nothing is held per invalid row.

use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};

use super::{Builder, Shard};
use crate::model::{ContentKey, Conversation, Invalid, Role, RowRef, SourceId, Timestamp};
use crate::read::{self, RawRecord, ReadError, ReadOptions, Source};
use crate::validate::{self, Valid, ValidateOptions};

/// What to read, and how.
#[derive(Debug, Clone)]
pub struct InputConfig {
    pub inputs: Vec<String>,
    pub read: ReadOptions,
    pub validate: ValidateOptions,
    pub shard: Option<Shard>,
    /// `--allow-duplicate-input`.
    pub allow_duplicates: bool,
}

/// What reading and validating every input yields.
pub struct Inputs {
    pub sources: Vec<Source>,
    /// Records read per source, in every shard.
    pub rows_per_source: Vec<u64>,
    /// Longest first, each in send order.
    pub conversations: Vec<Conversation>,
    /// Rows read, in every shard.
    pub rows: u64,
    /// Invalid rows of this shard.
    pub invalid: u64,
    /// Rows, valid or not, that belong to other shards.
    pub other_shards: u64,
    /// Records of this shard whose quoted fields hold lines that look like
    /// records of their own (a stray quote may have swallowed rows).
    pub swallowing: Swallowing,
}

/// Records whose quoted fields hold lines that look like records: how many,
/// and the first few with their count of such lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swallowing {
    pub records: u64,
    pub lines: u64,
    pub examples: Vec<(RowRef, u32)>,
}

impl Swallowing {
    /// How many examples are kept.
    pub const EXAMPLES: usize = 5;

    fn add(&mut self, pos: RowRef, lines: u32) {
        self.records += 1;
        self.lines += u64::from(lines);
        if self.examples.len() < Self::EXAMPLES {
            self.examples.push((pos, lines));
        }
    }
}

impl Inputs {
    /// Valid rows of this shard.
    pub fn valid(&self) -> u64 {
        self.conversations
            .iter()
            .map(|c| c.entries.len() as u64)
            .sum()
    }

    /// A warning per input that had no rows at all, saying what it held
    /// (`NAME: no rows (the pipe delivered nothing)`): an input that gives
    /// nothing is never passed over in silence.
    pub fn empty_sources(&self) -> impl Iterator<Item = String> + '_ {
        self.sources
            .iter()
            .zip(&self.rows_per_source)
            .filter(|(_, n)| **n == 0)
            .map(|(s, _)| s.no_rows())
    }
}

/// An invalid row as reading and validation found it.
pub struct InvalidRow<'a> {
    pub pos: RowRef,
    /// The conversation id, trimmed, when the row had a readable one.
    pub conversation_id: Option<&'a str>,
    pub reason: Invalid,
}

/// Read and validate every input. Valid rows of this shard go to the plan
/// (and to `on_valid`), invalid ones of this shard to `on_invalid`, in
/// input order. A fatal reading problem (unreadable file, missing column)
/// is an error: nothing has been sent. An error from `on_invalid` stops the
/// reading.
///
/// Each input is read on a thread of its own and its records checked on
/// another (see [`read_source`]); the plan is built on this one.
pub fn read_all<E: From<ReadError> + From<Duplicate>>(
    cfg: &InputConfig,
    mut on_valid: impl FnMut(&Valid),
    mut on_invalid: impl FnMut(InvalidRow<'_>) -> Result<(), E>,
) -> Result<Inputs, E> {
    let (validate_opts, shard) = (&cfg.validate, cfg.shard);
    let mut sources = Vec::with_capacity(cfg.inputs.len());
    for (i, input) in cfg.inputs.iter().enumerate() {
        sources.push(read::open(SourceId(i as u32), input, &cfg.read)?);
    }
    if !cfg.allow_duplicates {
        if let Some(duplicate) = same_content(&sources)? {
            return Err(duplicate.into());
        }
    }
    let mut builder = Builder::new(shard, validate_opts.mode);
    let (mut rows, mut invalid) = (0u64, 0u64);
    let mut swallowing = Swallowing::default();
    let mut rows_per_source = vec![0u64; sources.len()];
    for (source, per_source) in sources.iter().zip(&mut rows_per_source) {
        read_source(source, validate_opts, |record, verdict| -> Result<(), E> {
            rows += 1;
            *per_source += 1;
            // The conversation id names an invalid row in the report and
            // decides its shard; the reader keeps it even when another
            // field of the record cannot be read.
            let id = record
                .conversation_id()
                .map(validate::trim)
                .filter(|id| !id.is_empty());
            let swallowed = record.lines_like_records();
            if swallowed > 0 && shard.is_none_or(|s| s.owns(id)) {
                swallowing.add(record.pos, swallowed);
            }
            // A verdict is only valid for fields that were read.
            let checked = verdict.and_then(|parsed| {
                let fields = record.fields.as_ref().map_err(Clone::clone)?;
                let row = Valid::from_checked(record.pos, fields, parsed.timestamp, parsed.role);
                Ok((row, parsed.key))
            });
            match checked {
                Ok((row, key)) => {
                    let added = builder.add_keyed(&row, key).map_err(|e| ReadError::Other {
                        path: source.name.clone(),
                        message: e.to_string(),
                    })?;
                    if added {
                        on_valid(&row);
                    }
                }
                Err(reason) => {
                    if shard.is_some_and(|s| !s.owns(id)) {
                        builder.other_shards += 1;
                        return Ok(());
                    }
                    invalid += 1;
                    on_invalid(InvalidRow {
                        pos: record.pos,
                        conversation_id: id,
                        reason,
                    })?;
                }
            }
            Ok(())
        })?;
    }
    let other_shards = builder.other_shards;
    Ok(Inputs {
        sources,
        rows_per_source,
        conversations: builder.finish(),
        rows,
        invalid,
        other_shards,
        swallowing,
    })
}

/// Records in a batch that goes from one thread of [`read_source`] to the next.
const BATCH: usize = 256;
/// Batches waiting between two threads.
const QUEUED: usize = 2;

/// What checking a valid row found that its fields do not say as text.
struct Parsed {
    timestamp: Timestamp,
    role: Role,
    key: ContentKey,
}

/// A record's verdict: valid, or why not.
type Verdict = Result<Parsed, Invalid>;

/// Records in input order, and their verdicts once checked.
type Batch = (Vec<RawRecord>, Vec<Verdict>);

/// Read `source` on one thread, check (validate, and hash for the content
/// key) its records on a second, and hand each record with its verdict to
/// `plan` on this one, in input order: reading, checking and planning
/// overlap. A reading error comes after the records before it; an error
/// from `plan` stops the other two threads.
fn read_source<E: From<ReadError>>(
    source: &Source,
    opts: &ValidateOptions,
    mut plan: impl FnMut(&RawRecord, Verdict) -> Result<(), E>,
) -> Result<(), E> {
    let (to_check, checking) = sync_channel::<Result<Batch, ReadError>>(QUEUED);
    let (to_plan, planning) = sync_channel::<Result<Batch, ReadError>>(QUEUED);
    let (to_reuse, reused) = channel::<Batch>();
    std::thread::scope(|scope| {
        scope.spawn(move || read_batches(source, &to_check, &reused));
        scope.spawn(move || {
            for batch in checking {
                let checked = batch.map(|(records, mut verdicts)| {
                    verdicts.clear();
                    verdicts.extend(records.iter().map(|r| verdict(r, opts)));
                    (records, verdicts)
                });
                if to_plan.send(checked).is_err() {
                    break;
                }
            }
        });
        for batch in planning {
            let (records, mut verdicts) = batch?;
            for (record, verdict) in records.iter().zip(verdicts.drain(..)) {
                plan(record, verdict)?;
            }
            // Back to the reading thread, to be filled again.
            let _ = to_reuse.send((records, verdicts));
        }
        Ok(())
    })
}

/// The reading thread of [`read_source`]. Batches come back from the
/// planning thread to be filled again, their records' strings reused.
fn read_batches(
    source: &Source,
    out: &SyncSender<Result<Batch, ReadError>>,
    reused: &Receiver<Batch>,
) {
    let mut stream = match source.stream() {
        Ok(stream) => stream,
        Err(e) => {
            let _ = out.send(Err(e));
            return;
        }
    };
    let next = || {
        reused
            .try_recv()
            .unwrap_or_else(|_| (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH)))
    };
    let (mut batch, mut n) = (next(), 0);
    loop {
        if n == batch.0.len() {
            batch.0.push(RawRecord::empty());
        }
        let Some(record) = batch.0.get_mut(n) else {
            return;
        };
        match stream.next_into(record) {
            Some(Ok(())) => n += 1,
            Some(Err(e)) => {
                batch.0.truncate(n);
                if n > 0 && out.send(Ok(batch)).is_err() {
                    return;
                }
                let _ = out.send(Err(e));
                return;
            }
            None => break,
        }
        if n == BATCH {
            let full = std::mem::replace(&mut batch, next());
            if out.send(Ok(full)).is_err() {
                return;
            }
            n = 0;
        }
    }
    batch.0.truncate(n);
    if n > 0 {
        let _ = out.send(Ok(batch));
    }
}

/// Check one record: the checking thread's work.
fn verdict(record: &RawRecord, opts: &ValidateOptions) -> Verdict {
    match &record.fields {
        Ok(fields) => validate::check(record.pos, fields, opts).map(|row| Parsed {
            timestamp: row.timestamp,
            role: row.role,
            key: row.key(),
        }),
        Err(reason) => Err(reason.clone()),
    }
}

/// Two inputs with the same content under different names: every message
/// would be sent twice.
#[derive(Debug, thiserror::Error)]
#[error("{second}: the same content as {first}: every message in it would be sent twice\n  hint: name each input once, or pass --allow-duplicate-input if it is meant")]
pub struct Duplicate {
    pub first: String,
    pub second: String,
}

/// The first pair of sources with the same bytes (as read, after
/// decompressing or spooling). Only sources of equal size are hashed.
pub fn same_content(sources: &[Source]) -> Result<Option<Duplicate>, ReadError> {
    use sha2::{Digest, Sha256};
    let unreadable = |s: &Source| {
        let name = s.name.clone();
        move |source| ReadError::Open { path: name, source }
    };
    let sizes: Vec<u64> = sources
        .iter()
        .map(|s| {
            std::fs::metadata(&s.path)
                .map(|m| m.len())
                .map_err(unreadable(s))
        })
        .collect::<Result<_, _>>()?;
    let mut hashes: Vec<Option<[u8; 32]>> = vec![None; sources.len()];
    let mut hash = |i: usize| -> Result<[u8; 32], ReadError> {
        if let Some(h) = hashes[i] {
            return Ok(h);
        }
        let source = &sources[i];
        let mut hasher = Sha256::new();
        let mut file = std::fs::File::open(&source.path).map_err(unreadable(source))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match std::io::Read::read(&mut file, &mut buf) {
                Ok(0) => break,
                Ok(n) => hasher.update(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(unreadable(source)(e)),
            }
        }
        let h: [u8; 32] = hasher.finalize().into();
        hashes[i] = Some(h);
        Ok(h)
    };
    for j in 0..sources.len() {
        for i in 0..j {
            if sizes[i] == sizes[j] && sizes[i] > 0 && hash(i)? == hash(j)? {
                return Ok(Some(Duplicate {
                    first: sources[i].name.clone(),
                    second: sources[j].name.clone(),
                }));
            }
        }
    }
    Ok(None)
}
