//! Read: turn input files into raw records, streaming, never holding a whole
//! file as text. Every record carries its `RowRef` (source, record, line, byte
//! offset) so it can be reported and read again by offset when it is sent.
//!
//! Inputs that cannot be re-read by offset (stdin, `.gz`) are spooled to a
//! temporary file first; the offsets then point into the spool.

use std::path::PathBuf;

use crate::model::{RowRef, SourceId};
use crate::validate::Invalid;

/// Input format, from the extension (`.csv`, `.jsonl`, `.ndjson`, each
/// optionally `.gz`) or from `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

/// The five fields a message is made of, by their canonical column names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    ConversationId,
    Timestamp,
    SenderRole,
    SenderId,
    Text,
}

impl Field {
    pub const ALL: [Field; 5] = [
        Field::ConversationId,
        Field::Timestamp,
        Field::SenderRole,
        Field::SenderId,
        Field::Text,
    ];

    /// The canonical column name.
    pub fn name(self) -> &'static str {
        match self {
            Field::ConversationId => "conversation_id",
            Field::Timestamp => "timestamp",
            Field::SenderRole => "sender_role",
            Field::SenderId => "sender_id",
            Field::Text => "text",
        }
    }
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
    #[error("{path}: cannot open: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: missing required column `{column}`")]
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
}

/// Open an input (a path or `-`), decide its format, spool it if needed, and
/// check its header. A missing required column is an error here.
pub fn open(_id: SourceId, _input: &str, _opts: &ReadOptions) -> Result<Source, ReadError> {
    unimplemented!("read::open")
}

impl Source {
    /// Every record in order.
    pub fn records(
        &self,
    ) -> Result<Box<dyn Iterator<Item = Result<RawRecord, ReadError>> + '_>, ReadError> {
        unimplemented!("Source::records")
    }

    /// A reader that reads single records back by their offset; one per worker.
    pub fn reader(&self) -> Result<RecordReader, ReadError> {
        unimplemented!("Source::reader")
    }
}

/// Reads one record at a known offset (`RowRef::offset`).
pub struct RecordReader {}

impl RecordReader {
    pub fn read_at(&mut self, _at: &RowRef) -> Result<RawRecord, ReadError> {
        unimplemented!("RecordReader::read_at")
    }
}
