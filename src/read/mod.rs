//! Read: turn input files into raw records, streaming, never holding a whole
//! file as text. Every record carries its `RowRef` (source, record, line, byte
//! offset) so it can be reported and read again by offset when it is sent.
//!
//! Inputs that cannot be re-read by offset (stdin, `.gz`) are spooled to a
//! temporary file first; the offsets then point into the spool.
//!
//! Record numbering (`RowRef`): `record` counts data records from 1 (a CSV
//! header is not a record; blank lines, which CSV and JSONL both skip, are
//! not records either); `line` is the physical line where the record starts
//! (a quoted CSV field with line breaks makes a record span lines; a UTF-8
//! BOM does not shift anything); `offset` is the byte where the record
//! starts, the BOM included in the count.

use std::path::PathBuf;

use crate::model::{Field, Invalid, RowRef, SourceId};

pub mod columns;
mod csv;
mod jsonl;
mod spool;

pub use self::csv::detect_delimiter;

/// The UTF-8 byte order mark some tools write at the start of a file.
pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Input format, from the extension (`.csv`, `.jsonl`, `.ndjson`, each
/// optionally `.gz`) or from `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

/// How to read: everything that is not per-source.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Forced format; `None` means by extension.
    pub format: Option<Format>,
    /// Forced CSV delimiter; `None` means detected.
    pub delimiter: Option<u8>,
    /// `--map field=column`: explicit column names, over the aliases.
    pub columns: Vec<(Field, String)>,
}

/// One record's fields as text, before validation. `None` means the column
/// or key was absent (or null) in this record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawFields {
    pub conversation_id: Option<String>,
    pub timestamp: Option<String>,
    pub sender_role: Option<String>,
    pub sender_id: Option<String>,
    pub text: Option<String>,
}

/// One record as read: its place, and its fields or why they could not be
/// read (ragged row, invalid UTF-8, malformed JSON line, ...).
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub pos: RowRef,
    pub fields: Result<RawFields, Invalid>,
}

/// A fatal reading problem: nothing is sent (exit 2). Messages name the
/// file, and the line and column where there is one.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: cannot open")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: missing required column `{column}`{}", columns::hint(column))]
    MissingColumn { path: String, column: &'static str },
    #[error("{path}: line {line}: {message}")]
    At {
        path: String,
        line: u64,
        message: String,
    },
    #[error("{path}: {message}")]
    Other { path: String, message: String },
}

/// An opened input.
#[derive(Debug)]
pub struct Source {
    pub id: SourceId,
    /// As the user named it (`-` for stdin); this is the report's `source`.
    pub name: String,
    /// The file records are read (and re-read) from: the input itself, or its spool.
    pub path: PathBuf,
    pub format: Format,
    layout: Layout,
    /// Deleted when the source is dropped.
    _spool: Option<tempfile::TempPath>,
}

/// What reading a record needs to know beyond the bytes.
#[derive(Debug, Clone)]
pub(crate) enum Layout {
    Csv(csv::Header),
    Jsonl { map: Vec<(Field, String)> },
}

/// Open an input (a path or `-`), decide its format, spool it if needed, and
/// check its header. A missing required column is an error here.
///
/// The format is `--format`, else the extension (`.csv`, `.tsv`, `.txt`;
/// `.jsonl`, `.ndjson`, `.json`; each optionally `.gz`), else sniffed: `{`
/// as the first non-space byte means JSONL, anything else CSV (this is how
/// stdin is read without `--format`).
pub fn open(id: SourceId, input: &str, opts: &ReadOptions) -> Result<Source, ReadError> {
    let prepared = spool::prepare(input)?;
    let head = || {
        spool::head(&prepared.path, 64 * 1024).map_err(|source| ReadError::Open {
            path: input.to_string(),
            source,
        })
    };
    let format = match opts.format.or_else(|| spool::format_from_name(input)) {
        Some(f) => f,
        None => spool::sniff_format(&head()?),
    };
    let layout = match format {
        Format::Csv => Layout::Csv(csv::Header::read(input, &prepared.path, opts)?),
        Format::Jsonl => Layout::Jsonl {
            map: opts.columns.clone(),
        },
    };
    Ok(Source {
        id,
        name: input.to_string(),
        path: prepared.path,
        format,
        layout,
        _spool: prepared.spool,
    })
}

/// Open in-memory bytes as if they were a file named `name` (spooled to a
/// temporary file). For tests and fuzzing.
pub fn open_bytes(
    id: SourceId,
    name: &str,
    bytes: &[u8],
    opts: &ReadOptions,
) -> Result<Source, ReadError> {
    use std::io::Write;
    let err = |e: std::io::Error| ReadError::Other {
        path: name.to_string(),
        message: format!("cannot write a temporary file: {e}"),
    };
    let mut tmp = tempfile::NamedTempFile::new().map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    let path = tmp.into_temp_path();
    let path_str = path.to_string_lossy().into_owned();
    let mut opts = opts.clone();
    if opts.format.is_none() {
        opts.format = spool::format_from_name(name);
    }
    let mut source = open(id, &path_str, &opts)?;
    source.name = name.to_string();
    if source._spool.is_none() {
        source._spool = Some(path);
    }
    Ok(source)
}

impl Source {
    /// Every record in order, streaming.
    pub fn records(
        &self,
    ) -> Result<Box<dyn Iterator<Item = Result<RawRecord, ReadError>> + '_>, ReadError> {
        match &self.layout {
            Layout::Csv(header) => Ok(Box::new(csv::Records::new(self, header)?)),
            Layout::Jsonl { map } => Ok(Box::new(jsonl::Records::new(self, map)?)),
        }
    }

    /// A reader that reads single records back by their offset; one per worker.
    pub fn reader(&self) -> Result<RecordReader, ReadError> {
        let inner = match &self.layout {
            Layout::Csv(header) => Inner::Csv(csv::At::new(self, header.clone())?),
            Layout::Jsonl { map } => Inner::Jsonl(jsonl::At::new(self, map.clone())?),
        };
        Ok(RecordReader { inner })
    }

    fn open_error(&self, source: std::io::Error) -> ReadError {
        ReadError::Open {
            path: self.name.clone(),
            source,
        }
    }
}

/// Reads one record at a known offset (`RowRef::offset`).
pub struct RecordReader {
    inner: Inner,
}

enum Inner {
    Csv(csv::At),
    Jsonl(jsonl::At),
}

impl RecordReader {
    /// The record that starts at `at.offset`, with `at` as its position.
    pub fn read_at(&mut self, at: &RowRef) -> Result<RawRecord, ReadError> {
        match &mut self.inner {
            Inner::Csv(r) => r.read_at(at),
            Inner::Jsonl(r) => r.read_at(at),
        }
    }
}
