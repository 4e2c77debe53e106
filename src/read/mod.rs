//! Read: turn input files into raw records, streaming, never holding a whole
//! file as text. Every record carries its `RowRef` (source, record, line, byte
//! offset) so it can be reported and read again by offset when it is sent.
//!
//! Inputs that cannot be re-read by offset (stdin, pipes, FIFOs, devices,
//! `.gz`) are read once and spooled to a temporary file first; the offsets
//! then point into the spool. So are inputs in another encoding than UTF-8
//! (`encoding`: decoded once into a UTF-8 spool) and workbooks (`workbook`:
//! one sheet written once as a CSV spool).
//!
//! Record numbering (`RowRef`): `record` counts data records from 1 (a CSV
//! header is not a record; blank lines, which CSV and JSONL both skip, are
//! not records either); `line` is the physical line where the record starts
//! (a quoted CSV field with line breaks makes a record span lines; a UTF-8
//! BOM does not shift anything); `offset` is the byte where the record
//! starts, the BOM included in the count.

use std::fmt;
use std::path::PathBuf;

use crate::model::{Field, Invalid, RowRef, SourceId};

pub mod columns;
mod csv;
pub mod encoding;
mod jsonl;
mod spool;
mod window;
pub mod workbook;

pub use self::csv::{detect_delimiter, DelimiterFrom};
pub use self::encoding::TextEncoding;
pub use self::workbook::SheetRead;

/// The UTF-8 byte order mark some tools write at the start of a file.
pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The most a record is read into memory: a thousand times the API's
/// largest message. Past it a record is not a message: a JSON array given
/// as JSON Lines, or a CSV quote that never closes in a file with no other
/// quote after it, whose every line would become one field. Held in
/// memory, such a record took twice its size (271 MB for 140 MB), so a
/// large export ended killed for want of memory.
pub(crate) const LONGEST_RECORD: u64 = 64 << 20;

/// Input format, from the extension (`.csv`, `.jsonl`, `.ndjson`, each
/// optionally `.gz`; `.xlsx`, `.xls`, `.ods`, ...) or from `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
    /// A spreadsheet workbook: .xlsx, .xlsm, .xlsb, .xls or .ods.
    Excel,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Csv => "CSV",
            Format::Jsonl => "JSONL",
            Format::Excel => "workbook",
        })
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
    /// `--encoding`: the text encoding of inputs without a byte order
    /// mark; `None` means UTF-8.
    pub encoding: Option<&'static encoding_rs::Encoding>,
    /// `--sheet`: a workbook's sheet, by name or number; `None` means the first.
    pub sheet: Option<String>,
    /// Hold each input read in place open for as long as its [`Source`]
    /// lives, and read it again through that handle (see `held`).
    pub hold_open: bool,
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
/// read (ragged row, invalid UTF-8, malformed JSON line, a quote that never
/// closes, ...).
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub pos: RowRef,
    pub fields: Result<RawFields, Invalid>,
    /// When `fields` is an error: the conversation id all the same, if its
    /// own column (or key) could be read. It names the row in the report
    /// and decides its `--shard`.
    id_of_unreadable: Option<String>,
    /// Lines inside this record's quoted fields that look like records of
    /// their own (see [`RawRecord::lines_like_records`]).
    lines_like_records: u32,
}

impl RawRecord {
    /// A record with nothing read into it yet.
    pub fn empty() -> RawRecord {
        RawRecord {
            pos: RowRef::default(),
            fields: Ok(RawFields::default()),
            id_of_unreadable: None,
            lines_like_records: 0,
        }
    }

    fn new(pos: RowRef, read: Result<RawFields, Unreadable>) -> RawRecord {
        match read {
            Ok(fields) => RawRecord {
                pos,
                fields: Ok(fields),
                id_of_unreadable: None,
                lines_like_records: 0,
            },
            Err(Unreadable {
                reason,
                conversation_id,
            }) => RawRecord {
                pos,
                fields: Err(reason),
                id_of_unreadable: conversation_id,
                lines_like_records: 0,
            },
        }
    }

    /// The conversation id as written (untrimmed), whether or not the rest
    /// of the record could be read; `None` when it is absent or its own
    /// column cannot be read (not UTF-8, not text, a ragged row).
    pub fn conversation_id(&self) -> Option<&str> {
        match &self.fields {
            Ok(fields) => fields.conversation_id.as_deref(),
            Err(_) => self.id_of_unreadable.as_deref(),
        }
    }

    /// How many lines inside this record's quoted fields (after a line
    /// break in a field) look like records of their own: the header's
    /// number of columns, a conversation id and a timestamp in their
    /// columns. More than zero usually means a stray quote swallowed rows.
    /// Always 0 for JSONL.
    pub fn lines_like_records(&self) -> u32 {
        self.lines_like_records
    }
}

/// Why a record's fields cannot be read, with its conversation id when
/// that one column could be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unreadable {
    pub reason: Invalid,
    pub conversation_id: Option<String>,
}

impl Unreadable {
    /// The fields read after the conversation id, with that id: the id
    /// names the row even when another field cannot be read.
    pub(crate) fn with_id(
        rest: Result<RawFields, Invalid>,
        conversation_id: Option<String>,
    ) -> Result<RawFields, Unreadable> {
        match rest {
            Ok(fields) => Ok(RawFields {
                conversation_id,
                ..fields
            }),
            Err(reason) => Err(Unreadable {
                reason,
                conversation_id,
            }),
        }
    }
}

impl From<Invalid> for Unreadable {
    fn from(reason: Invalid) -> Self {
        Unreadable {
            reason,
            conversation_id: None,
        }
    }
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

impl ReadError {
    /// The same error, naming the input `name`.
    fn named(self, name: &str) -> ReadError {
        let path = name.to_string();
        match self {
            ReadError::Open { source, .. } => ReadError::Open { path, source },
            ReadError::MissingColumn { column, .. } => ReadError::MissingColumn { path, column },
            ReadError::At { line, message, .. } => ReadError::At {
                path,
                line,
                message,
            },
            ReadError::Other { message, .. } => ReadError::Other { path, message },
        }
    }
}

/// An opened input.
#[derive(Debug)]
pub struct Source {
    pub id: SourceId,
    /// As the user named it (`-` for stdin); this is the report's `source`.
    pub name: String,
    /// The file records are read (and re-read) from: the input itself, or its spool.
    /// With `ReadOptions::hold_open`, the input through its held handle.
    pub path: PathBuf,
    pub format: Format,
    /// Read once from a stream (stdin, a pipe, a FIFO, a device) into the spool.
    pub streamed: bool,
    /// How it was read: what `check` shows.
    pub reading: Reading,
    layout: Layout,
    /// Deleted when the source is dropped.
    _spool: Option<tempfile::TempPath>,
    /// The input itself, held open: `path` names it through this handle.
    _held: Option<std::fs::File>,
}

/// How an input was read, and why so: what was assumed and what was
/// said, for `check` to show.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub format: Format,
    /// Decompressed from gzip.
    pub gzip: bool,
    /// The text encoding (`None` for a workbook, which has its own).
    pub encoding: Option<TextEncoding>,
    /// The CSV delimiter, and where it came from.
    pub delimiter: Option<(u8, DelimiterFrom)>,
    /// The workbook sheet that was read.
    pub sheet: Option<SheetRead>,
}

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sheet {
            Some(sheet) => write!(f, "{sheet}")?,
            None => write!(f, "{}", self.format)?,
        }
        if self.gzip {
            f.write_str(" (gzip)")?;
        }
        if self.sheet.is_none() {
            if let Some((delimiter, from)) = self.delimiter {
                let shown = match delimiter {
                    b'\t' => "tab".to_string(),
                    d => format!("`{}`", char::from(d).escape_debug()),
                };
                write!(f, ", delimiter {shown} ({from})")?;
            }
        }
        if let Some(encoding) = &self.encoding {
            write!(f, ", {encoding}")?;
        }
        Ok(())
    }
}

/// What reading a record needs to know beyond the bytes.
#[derive(Debug, Clone)]
pub(crate) enum Layout {
    Csv(csv::Header),
    Jsonl {
        map: Vec<(Field, String)>,
        /// The encoding the input was decoded from, for reasons.
        decoded: Option<&'static encoding_rs::Encoding>,
    },
}

/// Open an input (a path or `-`), decide its format, spool it if needed, and
/// check its header. A missing required column is an error here.
///
/// The format is `--format`, else the extension (`.csv`, `.tsv`, `.txt`;
/// `.jsonl`, `.ndjson`, `.json`; `.xlsx`, `.xlsm`, `.xlsb`, `.xls`, `.ods`;
/// each optionally `.gz`), else sniffed: a zip or OLE file is a workbook
/// (also under another extension, as a misnamed gzip file is read too),
/// `{` as the first non-space character means JSONL, anything else CSV
/// (this is how stdin is read without `--format`).
///
/// Text that is not UTF-8 (a UTF-16 byte order mark, or `--encoding`) is
/// decoded once into a UTF-8 spool, and a workbook's sheet is written once
/// to a CSV spool: offsets point into the spool, which is what is read
/// again when a message is sent.
pub fn open(id: SourceId, input: &str, opts: &ReadOptions) -> Result<Source, ReadError> {
    let mut prepared = spool::prepare(input)?;
    let held = match prepared.file.take().filter(|_| opts.hold_open) {
        Some(file) => held(&file).map(|path| {
            prepared.path = path;
            file
        }),
        None => None,
    };
    let open_err = |source| ReadError::Open {
        path: input.to_string(),
        source,
    };
    let raw = spool::raw_head(&prepared.path, 64 * 1024).map_err(open_err)?;
    let workbook = match opts.format {
        Some(format) => format == Format::Excel,
        None => spool::format_from_name(input) == Some(Format::Excel) || workbook::sniff(&raw),
    };
    if workbook {
        let converted = workbook::convert(input, &prepared.path, opts.sheet.as_deref())?;
        let path = converted.spool.to_path_buf();
        let csv_opts = ReadOptions {
            delimiter: Some(b','),
            ..opts.clone()
        };
        let setup = csv::Setup {
            sep_line: false,
            decoded: None,
            sheet_rows: Some(converted.rows.into()),
        };
        let header = csv::Header::read(input, &path, &csv_opts, setup)?;
        return Ok(Source {
            id,
            name: input.to_string(),
            path,
            format: Format::Excel,
            streamed: prepared.streamed,
            reading: Reading {
                format: Format::Excel,
                gzip: prepared.gzip,
                encoding: None,
                delimiter: None,
                sheet: Some(converted.sheet),
            },
            layout: Layout::Csv(header),
            _spool: Some(converted.spool),
            _held: None,
        });
    }
    let text = encoding::decide(input, &raw, opts.encoding)?;
    let (path, spool, held) = if text.decodes() {
        let decoded = encoding::decode(input, &prepared.path, text)?;
        (decoded.to_path_buf(), Some(decoded), None)
    } else {
        (prepared.path, prepared.spool, held)
    };
    let decoded = text.decodes().then_some(text.encoding);
    let format = match opts.format.or_else(|| spool::format_from_name(input)) {
        Some(f) => f,
        None => spool::sniff_format(&spool::head(&path, 64 * 1024).map_err(open_err)?),
    };
    let (layout, delimiter) = match format {
        Format::Csv | Format::Excel => {
            let setup = csv::Setup {
                sep_line: true,
                decoded,
                sheet_rows: None,
            };
            let header = csv::Header::read(input, &path, opts, setup)?;
            let delimiter = header.delimiter();
            (Layout::Csv(header), Some(delimiter))
        }
        Format::Jsonl => {
            if let Some((field, column)) = opts
                .columns
                .iter()
                .find(|(_, c)| columns::number(c).is_some())
            {
                return Err(ReadError::Other {
                    path: input.to_string(),
                    message: format!(
                        "--map {}={column}: a column number names a CSV header's column; \
                         JSONL keys have no order: name the key",
                        field.name()
                    ),
                });
            }
            let layout = Layout::Jsonl {
                map: opts.columns.clone(),
                decoded,
            };
            (layout, None)
        }
    };
    Ok(Source {
        id,
        name: input.to_string(),
        path,
        format,
        streamed: prepared.streamed,
        reading: Reading {
            format,
            gzip: prepared.gzip,
            encoding: Some(text),
            delimiter,
            sheet: None,
        },
        layout,
        _spool: spool,
        _held: held,
    })
}

/// A name that opens `file` itself, whatever becomes of its path: the
/// file behind its descriptor in `/proc/self/fd`, each open a position
/// of its own (Linux; elsewhere `None`, and the input is opened again by
/// its path). An export job that replaces its file under a running import
/// (a new file renamed over it, the common way to write one atomically),
/// or a cleanup that deletes it, left the run unable to read its plan
/// back: it stopped with exit 3, `changed while importing`, and the
/// rerun then sent what the new file held. Read through this name, the
/// run sends what it planned and ends; the next run reads the new file.
/// A file rewritten in place is the same file, and is still caught by the
/// content check when its messages are read back.
#[cfg(target_os = "linux")]
fn held(file: &std::fs::File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    // Only where /proc is there and the name opens this very file.
    let (theirs, ours) = (std::fs::metadata(&path).ok()?, file.metadata().ok()?);
    (theirs.dev() == ours.dev() && theirs.ino() == ours.ino()).then_some(path)
}

#[cfg(not(target_os = "linux"))]
fn held(_: &std::fs::File) -> Option<PathBuf> {
    None
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
    let mut source = open(id, &path_str, &opts).map_err(|e| e.named(name))?;
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
            Layout::Jsonl { map, decoded } => {
                Ok(Box::new(jsonl::Records::new(self, map, *decoded)?))
            }
        }
    }

    /// Every record in order, streaming, each read into a record kept from
    /// before: reading a large input allocates little per record.
    pub fn stream(&self) -> Result<Stream<'_>, ReadError> {
        Ok(Stream(match &self.layout {
            Layout::Csv(header) => Streamed::Csv(csv::Records::new(self, header)?),
            Layout::Jsonl { map, decoded } => {
                Streamed::Jsonl(jsonl::Records::new(self, map, *decoded)?)
            }
        }))
    }

    /// A reader that reads single records back by their offset; one per worker.
    pub fn reader(&self) -> Result<RecordReader, ReadError> {
        let inner = match &self.layout {
            Layout::Csv(header) => Inner::Csv(Box::new(csv::At::new(self, header.clone())?)),
            Layout::Jsonl { map, decoded } => {
                Inner::Jsonl(jsonl::At::new(self, map.clone(), *decoded)?)
            }
        };
        Ok(RecordReader { inner })
    }

    /// Why this source has no records, for a warning: a stream that
    /// delivered nothing, an empty file, a header alone, blank lines.
    pub fn no_rows(&self) -> String {
        let bytes = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        let what = if bytes == 0 && self.streamed {
            if self.name == "-" {
                "standard input delivered nothing".to_string()
            } else {
                "the pipe delivered nothing".to_string()
            }
        } else if bytes == 0 {
            "the file is empty".to_string()
        } else {
            let read = if self.streamed {
                "read from the pipe"
            } else {
                "in the file"
            };
            let held = match &self.layout {
                Layout::Csv(header) if header.has_columns() => "a header and no rows",
                _ => "only blank lines",
            };
            format!(
                "{bytes} byte{} {read}: {held}",
                if bytes == 1 { "" } else { "s" }
            )
        };
        format!("{}: no rows ({what})", self.name)
    }

    fn open_error(&self, source: std::io::Error) -> ReadError {
        ReadError::Open {
            path: self.name.clone(),
            source,
        }
    }
}

/// A source's records in order (see [`Source::stream`]).
pub struct Stream<'a>(Streamed<'a>);

enum Streamed<'a> {
    Csv(csv::Records<'a>),
    Jsonl(jsonl::Records<'a>),
}

impl Stream<'_> {
    /// The next record, read into `into` (a CSV record reuses its
    /// strings); `None` after the last one, or after an error.
    pub fn next_into(&mut self, into: &mut RawRecord) -> Option<Result<(), ReadError>> {
        match &mut self.0 {
            Streamed::Csv(records) => records.next_into(into),
            Streamed::Jsonl(records) => records.next().map(|read| read.map(|r| *into = r)),
        }
    }
}

/// Reads one record at a known offset (`RowRef::offset`).
pub struct RecordReader {
    inner: Inner,
}

/// Boxed: one per worker and input, made once, and the CSV parser's
/// state is several times a JSONL reader's.
enum Inner {
    Csv(Box<csv::At>),
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
