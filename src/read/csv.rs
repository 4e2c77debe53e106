//! CSV as spreadsheets and databases write it: a header line, `,` `;` tab
//! or `|` delimiters (detected from the header line unless `--delimiter`),
//! RFC 4180 quoting (fields with delimiters, `""` quotes and line breaks),
//! CRLF or LF, a UTF-8 BOM, and Excel's `sep=X` first line, which names
//! the delimiter and is not the header. Records are read as bytes and each
//! needed field is checked for UTF-8 on its own, so a bad byte is one
//! row's problem. Blank lines are skipped (by the csv crate) and are not
//! records.
//!
//! A quoted field whose closing quote never comes runs to the end of the
//! file: the csv crate ends the record there without a word, and every
//! line after the quote would become that field's text. Such a record is
//! invalid, its reason naming the line where the quote opened; the lines
//! after it cannot be records of their own (no CSV parser can tell where
//! the quote should have closed), so they are reported only as the span
//! that record swallowed. A record whose quoted fields hold lines that look
//! like records of their own is counted for `check`'s warning.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use csv::{ByteRecord, Position, ReaderBuilder};

use super::columns::{self, index};
use super::window::Window;
use super::{
    RawFields, RawRecord, ReadError, ReadOptions, Source, Unreadable, BOM, LONGEST_RECORD,
};
use crate::model::{Field, Invalid, RowRef};

/// Delimiters tried when detecting, in order of preference on a tie.
const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];

/// The delimiter that occurs most often outside quotes in the first line of
/// `head`; `,` when none occurs.
pub fn detect_delimiter(head: &[u8]) -> u8 {
    let mut counts = [0usize; 4];
    let mut quoted = false;
    for &b in head {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => break,
            _ if !quoted => {
                if let Some(k) = CANDIDATES.iter().position(|c| *c == b) {
                    if let Some(n) = counts.get_mut(k) {
                        *n += 1;
                    }
                }
            }
            _ => {}
        }
    }
    let mut best = 0;
    for (k, n) in counts.iter().enumerate() {
        if *n > counts.get(best).copied().unwrap_or(0) {
            best = k;
        }
    }
    CANDIDATES.get(best).copied().unwrap_or(b',')
}

/// Where a CSV input's delimiter came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelimiterFrom {
    /// `--delimiter`.
    Flag,
    /// Excel's `sep=X` first line.
    SepLine,
    /// The most frequent candidate in the header line.
    Detected,
}

impl fmt::Display for DelimiterFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DelimiterFrom::Flag => "--delimiter",
            DelimiterFrom::SepLine => "its sep= line",
            DelimiterFrom::Detected => "detected",
        })
    }
}

/// Excel's first line `sep=X` (optionally in quotes, any case) at the start
/// of `head` (after a BOM): the delimiter it names and the bytes the line
/// takes, its line break included.
fn sep_line(head: &[u8]) -> Option<(u8, usize)> {
    let quoted = head.first() == Some(&b'"');
    let rest = head.get(usize::from(quoted)..)?;
    let key = rest.get(..4)?;
    if !key.eq_ignore_ascii_case(b"sep=") {
        return None;
    }
    let delimiter = *rest
        .get(4)
        .filter(|b| b.is_ascii() && !b"\"\r\n".contains(b))?;
    let mut len = usize::from(quoted) + 5;
    if quoted {
        if head.get(len) != Some(&b'"') {
            return None;
        }
        len += 1;
    }
    match head.get(len..) {
        Some([]) => Some((delimiter, len)),
        Some([b'\n', ..]) => Some((delimiter, len + 1)),
        Some([b'\r', b'\n', ..]) => Some((delimiter, len + 2)),
        Some([b'\r']) => Some((delimiter, len + 1)),
        _ => None,
    }
}

/// How a CSV input came to be: what the header alone does not say.
pub(crate) struct Setup {
    /// Whether a `sep=X` first line is looked for (not in a workbook's spool).
    pub sep_line: bool,
    /// The encoding the input was decoded from, for reasons.
    pub decoded: Option<&'static encoding_rs::Encoding>,
    /// A workbook's spool: the sheet row of each record, in order.
    pub sheet_rows: Option<Arc<[u32]>>,
}

/// What was learned from the header line.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    delimiter: u8,
    delimiter_from: DelimiterFrom,
    /// Bytes before the header (a `sep=` line, with the BOM before it), and
    /// the header's line number.
    skip: u64,
    first_line: u64,
    /// Column index per field (by `columns::index`); `None` only for an
    /// empty file, which has no header and no records.
    columns: Option<[usize; 5]>,
    /// The header's column names, for reasons.
    names: Vec<String>,
    decoded: Option<&'static encoding_rs::Encoding>,
    sheet_rows: Option<Arc<[u32]>>,
}

impl Header {
    pub(crate) fn read(
        name: &str,
        path: &Path,
        opts: &ReadOptions,
        setup: Setup,
    ) -> Result<Header, ReadError> {
        let open_err = |source| ReadError::Open {
            path: name.to_string(),
            source,
        };
        let raw = super::spool::raw_head(path, 64 * 1024).map_err(open_err)?;
        let bom = if raw.starts_with(BOM) { BOM.len() } else { 0 };
        let after_bom = raw.get(bom..).unwrap_or_default();
        let sep = if setup.sep_line {
            sep_line(after_bom)
        } else {
            None
        };
        let (skip, first_line) = match sep {
            Some((_, len)) => ((bom + len) as u64, 2),
            None => (0, 1),
        };
        let (delimiter, delimiter_from) = match (opts.delimiter, sep) {
            (Some(d), _) => (d, DelimiterFrom::Flag),
            (None, Some((d, _))) => (d, DelimiterFrom::SepLine),
            (None, None) => (detect_delimiter(after_bom), DelimiterFrom::Detected),
        };
        let file = File::open(path).map_err(open_err)?;
        let len = file.metadata().map_err(open_err)?.len();
        let mut rdr = builder(delimiter).from_reader(BufReader::new(file));
        skip_to_header(&mut rdr, skip, first_line).map_err(|e| ReadError::At {
            path: name.to_string(),
            line: first_line,
            message: e.to_string(),
        })?;
        let mut rec = ByteRecord::new();
        let found = rdr.read_byte_record(&mut rec).map_err(|e| ReadError::At {
            path: name.to_string(),
            line: first_line,
            message: e.to_string(),
        })?;
        let empty = Header {
            delimiter,
            delimiter_from,
            skip,
            first_line,
            columns: None,
            names: Vec::new(),
            decoded: setup.decoded,
            sheet_rows: setup.sheet_rows,
        };
        if !found {
            return Ok(empty);
        }
        if rdr.position().byte() >= len {
            let mut file = File::open(path).map_err(open_err)?;
            if let Some(open) =
                open_quote(&mut file, skip, first_line, delimiter).map_err(open_err)?
            {
                return Err(ReadError::At {
                    path: name.to_string(),
                    line: open.line,
                    message: format!(
                        "the header's quoted field in column {} opened on line {} never closes \
                         (the whole file would be the header)",
                        open.column + 1,
                        open.line
                    ),
                });
            }
        }
        let names: Vec<String> = rec
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let b = if i == 0 {
                    b.strip_prefix(BOM).unwrap_or(b)
                } else {
                    b
                };
                String::from_utf8_lossy(b).trim().to_string()
            })
            .collect();
        for (field, column) in &opts.columns {
            let missing = match columns::number(column) {
                Some(n) => (n > names.len()).then(|| {
                    format!(
                        "no column {n}: the header has {} column{}",
                        names.len(),
                        if names.len() == 1 { "" } else { "s" }
                    )
                }),
                None => (!names
                    .iter()
                    .any(|n| n.to_lowercase() == column.trim().to_lowercase()))
                .then(|| {
                    format!(
                        "no column `{column}` in the header ({})",
                        shown_names(&names)
                    )
                }),
            };
            if let Some(missing) = missing {
                return Err(ReadError::Other {
                    path: name.to_string(),
                    message: format!("--map {}={column}: {missing}", field.name()),
                });
            }
        }
        let found = columns::resolve(&names, &opts.columns).map_err(|a| ReadError::Other {
            path: name.to_string(),
            message: format!(
                "columns `{}` (column {}) and `{}` (column {}) both name `{}`; \
                 choose one with --map {}=#{} or --map {}=#{}",
                crate::model::excerpt(&a.first),
                a.at.0 + 1,
                crate::model::excerpt(&a.second),
                a.at.1 + 1,
                a.field.name(),
                a.field.name(),
                a.at.0 + 1,
                a.field.name(),
                a.at.1 + 1,
            ),
        })?;
        let mut cols = [0usize; 5];
        for field in Field::ALL {
            match found.get(index(field)).copied().flatten() {
                Some(i) => {
                    if let Some(c) = cols.get_mut(index(field)) {
                        *c = i;
                    }
                }
                None => {
                    return Err(ReadError::MissingColumn {
                        path: name.to_string(),
                        column: field.name(),
                    })
                }
            }
        }
        Ok(Header {
            columns: Some(cols),
            names,
            ..empty
        })
    }

    /// The delimiter, and where it came from.
    pub(crate) fn delimiter(&self) -> (u8, DelimiterFrom) {
        (self.delimiter, self.delimiter_from)
    }

    /// Whether the file had a header line (it is empty otherwise).
    pub(crate) fn has_columns(&self) -> bool {
        self.columns.is_some()
    }

    /// One record's fields, read into `out` (reusing its strings), or why
    /// they cannot be read (with the conversation id when its own column
    /// can be). `open` is a quoted field of this record that never closes.
    fn fields_into(
        &self,
        rec: &ByteRecord,
        open: Option<&OpenQuote>,
        out: &mut RawFields,
    ) -> Result<(), Unreadable> {
        let Some(cols) = self.columns else {
            return Err(Invalid::record("no header").into());
        };
        let column_of = |field: Field| cols.get(index(field)).copied().unwrap_or(usize::MAX);
        // The whole record checked for UTF-8 at once (most are): a field
        // is then a slice of it, unless a character straddles two fields,
        // and checking it alone says what is wrong.
        let whole = std::str::from_utf8(rec.as_slice()).ok();
        let read = |field: Field, into: &mut Option<String>| -> Result<(), Invalid> {
            let i = column_of(field);
            let Some(bytes) = rec.get(i) else {
                *into = None;
                return Ok(());
            };
            let checked = whole.and_then(|whole| whole.get(rec.range(i)?));
            match checked.map_or_else(|| std::str::from_utf8(bytes), Ok) {
                Ok(s) => {
                    match into {
                        Some(text) => {
                            text.clear();
                            text.push_str(s);
                        }
                        None => *into = Some(s.to_string()),
                    }
                    Ok(())
                }
                Err(e) => Err(Invalid::field(
                    field,
                    super::encoding::not_utf8(
                        bytes,
                        e.valid_up_to(),
                        &format!(
                            "column `{}`",
                            crate::model::excerpt(
                                self.names.get(i).map(String::as_str).unwrap_or("?")
                            )
                        ),
                        self.decoded,
                    ),
                )),
            }
        };
        if let Some(open) = open {
            // Columns before the quote were read as written; the one where
            // it opened and any after it were not.
            let mut id = None;
            if column_of(Field::ConversationId) < open.column {
                // An id that is not UTF-8 leaves `id` as it was: none.
                let _ = read(Field::ConversationId, &mut id);
            }
            return Err(Unreadable {
                reason: self.unclosed(rec, open),
                conversation_id: id,
            });
        }
        if rec.len() != self.names.len() {
            // A ragged row's columns cannot be trusted to be where the
            // header says: no conversation id is taken from it.
            return Err(Invalid::record(format!(
                "row has {} field{}, header has {}",
                rec.len(),
                if rec.len() == 1 { "" } else { "s" },
                self.names.len()
            ))
            .into());
        }
        read(Field::ConversationId, &mut out.conversation_id)?;
        let rest = (|| {
            read(Field::Timestamp, &mut out.timestamp)?;
            read(Field::SenderRole, &mut out.sender_role)?;
            read(Field::SenderId, &mut out.sender_id)?;
            read(Field::Text, &mut out.text)
        })();
        rest.map_err(|reason| Unreadable {
            reason,
            conversation_id: out.conversation_id.take(),
        })
    }

    /// The reason of a record whose quoted field never closes.
    fn unclosed(&self, rec: &ByteRecord, open: &OpenQuote) -> Invalid {
        let field = Field::ALL
            .into_iter()
            .find(|f| self.columns.and_then(|c| c.get(index(*f)).copied()) == Some(open.column));
        let what = if field == Some(Field::Text) {
            "text"
        } else {
            "value"
        };
        let span = match open.last_line.saturating_sub(open.line) {
            0 => "it runs to the end of the file".to_string(),
            1 => format!(
                "the rest of the file, line {}, would become its {what}",
                open.line + 1
            ),
            _ => format!(
                "the rest of the file, lines {}\u{2013}{}, would become its {what}",
                open.line + 1,
                open.last_line
            ),
        };
        let like = rec
            .get(open.column)
            .map_or(0, |value| self.count_record_like(value));
        let like = match like {
            0 => String::new(),
            1 => "; 1 of those lines looks like a record".to_string(),
            n => format!("; {n} of those lines look like records"),
        };
        let problem = format!(
            "quoted field opened on line {} never closes ({span}{like})",
            open.line
        );
        match field {
            Some(field) => Invalid::field(field, problem),
            None => Invalid::record(format!(
                "column `{}`: {problem}",
                crate::model::excerpt(self.names.get(open.column).map_or("?", String::as_str))
            )),
        }
    }

    /// Lines inside the record's fields, after a line break, that look like
    /// records of their own.
    fn lines_like_records(&self, rec: &ByteRecord) -> u32 {
        if !rec.as_slice().contains(&b'\n') {
            return 0;
        }
        rec.iter()
            .filter(|f| f.contains(&b'\n'))
            .fold(0u32, |n, f| n.saturating_add(self.count_record_like(f)))
    }

    fn count_record_like(&self, value: &[u8]) -> u32 {
        let mut n = 0u32;
        let mut fields = None;
        for line in value.split(|b| *b == b'\n').skip(1) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if self.looks_like_a_record(line, &mut fields) {
                n = n.saturating_add(1);
            }
        }
        n
    }

    /// The header's number of columns, a conversation id and a timestamp
    /// in their columns: what a swallowed row looks like. `fields` is the
    /// parser for the lines of one value, built at its first candidate.
    fn looks_like_a_record(&self, line: &[u8], fields: &mut Option<LineFields>) -> bool {
        let Some(cols) = self.columns else {
            return false;
        };
        let width = self.names.len();
        let delimiters = line.iter().filter(|b| **b == self.delimiter).count();
        if width < 2 || delimiters + 1 < width {
            return false;
        }
        let fields = fields.get_or_insert_with(|| LineFields::new(self.delimiter));
        if fields.split(line) != width {
            return false;
        }
        let text = |field: Field| {
            cols.get(index(field))
                .and_then(|i| fields.get(*i))
                .and_then(|b| std::str::from_utf8(b).ok())
                .map(str::trim)
                .unwrap_or_default()
        };
        !text(Field::ConversationId).is_empty()
            && crate::timestamp::parse(text(Field::Timestamp), chrono_tz::UTC).is_ok()
    }
}

/// A quoted field that runs to the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OpenQuote {
    /// 0-based column where the quote opened.
    column: usize,
    /// Physical line where it opened.
    line: u64,
    /// The last physical line with anything on it.
    last_line: u64,
}

/// Scan from `from` (the start of a record, on line `line`) to the end of
/// the file with the csv crate's quoting rules (csv-core's state machine:
/// a quote opens a field only at its start, `""` inside is a quote, a quote
/// inside an unquoted field is data) and say whether a quoted field is
/// still open at the end. A BOM at byte 0 is skipped, as the parser does.
fn open_quote(
    file: &mut File,
    from: u64,
    mut line: u64,
    delimiter: u8,
) -> io::Result<Option<OpenQuote>> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum S {
        StartRecord,
        StartField,
        InField,
        Quoted,
        QuoteInQuoted,
    }
    file.seek(SeekFrom::Start(from))?;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut state, mut column) = (S::StartRecord, 0usize);
    let (mut opened, mut last_line) = ((0usize, line), line);
    let mut skip_bom = from == 0;
    let term = |b: u8| b == b'\r' || b == b'\n';
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut bytes = buf.get(..n).unwrap_or_default();
        if skip_bom {
            skip_bom = false;
            bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
        }
        for &b in bytes {
            if !term(b) {
                last_line = line;
            }
            let mut start_field = |column: &mut usize| {
                if b == b'"' {
                    opened = (*column, line);
                    S::Quoted
                } else if b == delimiter {
                    *column += 1;
                    S::StartField
                } else if term(b) {
                    S::StartRecord
                } else {
                    S::InField
                }
            };
            state = match state {
                S::StartRecord if term(b) => S::StartRecord,
                S::StartRecord => {
                    column = 0;
                    start_field(&mut column)
                }
                S::StartField => start_field(&mut column),
                S::Quoted if b == b'"' => S::QuoteInQuoted,
                S::Quoted => S::Quoted,
                S::QuoteInQuoted if b == b'"' => S::Quoted,
                S::InField | S::QuoteInQuoted if b == delimiter => {
                    column += 1;
                    S::StartField
                }
                S::InField | S::QuoteInQuoted if term(b) => S::StartRecord,
                S::InField | S::QuoteInQuoted => S::InField,
            };
            if b == b'\n' {
                line += 1;
            }
        }
    }
    Ok((state == S::Quoted).then_some(OpenQuote {
        column: opened.0,
        line: opened.1,
        last_line,
    }))
}

fn shown_names(names: &[String]) -> String {
    let shown: Vec<String> = names
        .iter()
        .take(12)
        .map(|n| format!("`{}`", crate::model::excerpt(n)))
        .collect();
    format!("columns: {}", shown.join(", "))
}

/// Put a reader that is at the start of the file at the header, past a
/// `sep=` line, counting lines from the header's.
fn skip_to_header<R: Read + Seek>(
    rdr: &mut csv::Reader<R>,
    skip: u64,
    first_line: u64,
) -> csv::Result<()> {
    if skip == 0 {
        return Ok(());
    }
    let mut pos = Position::new();
    pos.set_byte(skip).set_line(first_line).set_record(0);
    rdr.seek_raw(SeekFrom::Start(skip), pos)
}

/// A CSV file as [`Records`] gives it to the csv crate's reader, which
/// holds a whole record in memory: no more than [`LONGEST_RECORD`] bytes
/// of one record are handed over, and the read after that fails.
struct Capped {
    file: File,
    /// Bytes handed over so far, and where the record being read begins,
    /// both from the start of the file (as `csv::Position` counts).
    read: u64,
    record_from: u64,
}

impl Capped {
    /// Whether the record being read ran past [`LONGEST_RECORD`].
    fn over(&self) -> bool {
        self.read.saturating_sub(self.record_from) > LONGEST_RECORD
    }
}

impl Read for Capped {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.over() {
            return Err(io::Error::other("a record runs on too long"));
        }
        let n = self.file.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl Seek for Capped {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let at = self.file.seek(pos)?;
        self.read = at;
        self.record_from = at;
        Ok(at)
    }
}

/// One line split into fields by the csv crate's own parser, with the
/// same rules as [`builder`]'s readers. Built once for many lines: a quote
/// that never closed swallowed 250,000 lines, and building a `csv::Reader`
/// for each (its parser's table of states) was 93 % of `check`'s 8.7 s.
struct LineFields {
    parser: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    /// Fields of the last line split.
    n: usize,
}

impl LineFields {
    fn new(delimiter: u8) -> LineFields {
        LineFields {
            parser: csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
            out: Vec::new(),
            ends: Vec::new(),
            n: 0,
        }
    }

    /// Split `line` (no line break in it); the number of its fields.
    fn split(&mut self, line: &[u8]) -> usize {
        use csv_core::ReadRecordResult;
        self.parser.reset();
        // Room for everything at once: a field is never longer than its
        // line, and a line has at most one field more than bytes.
        self.out.resize(line.len(), 0);
        self.ends.resize(line.len() + 1, 0);
        let (_, read, written, ended) =
            self.parser.read_record(line, &mut self.out, &mut self.ends);
        // No input left: that ends the record.
        let (result, _, _, more) =
            self.parser
                .read_record(&[], &mut self.out[written..], &mut self.ends[ended..]);
        self.n = match result {
            ReadRecordResult::Record if read == line.len() => ended + more,
            _ => 0,
        };
        self.n
    }

    /// Field `i` of the last line split.
    fn get(&self, i: usize) -> Option<&[u8]> {
        if i >= self.n {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.out.get(start..self.ends[i])
    }
}

fn builder(delimiter: u8) -> ReaderBuilder {
    let mut b = ReaderBuilder::new();
    b.has_headers(false).flexible(true).delimiter(delimiter);
    b
}

/// Where a record really starts. The csv crate reports a record's start as
/// the end of the one before, which may still hold that record's `\n` (after
/// a `\r`) and blank lines; those bytes are only ever `\r` and `\n`. This
/// reads them through a second handle, a window at a time, and skips them.
struct Starts {
    file: File,
    window: Vec<u8>,
    window_at: u64,
}

impl Starts {
    const WINDOW: usize = 16 * 1024;

    /// `(bytes, line breaks)` of line terminators from `offset` on.
    fn skip(&mut self, mut offset: u64) -> io::Result<(u64, u64)> {
        let (mut bytes, mut breaks) = (0, 0);
        loop {
            let in_window = offset
                .checked_sub(self.window_at)
                .and_then(|i| usize::try_from(i).ok())
                .filter(|i| *i < self.window.len());
            let Some(i) = in_window else {
                self.file.seek(SeekFrom::Start(offset))?;
                self.window.resize(Self::WINDOW, 0);
                let n = self.file.read(&mut self.window)?;
                self.window.truncate(n);
                self.window_at = offset;
                if n == 0 {
                    return Ok((bytes, breaks));
                }
                continue;
            };
            for &b in self.window.get(i..).unwrap_or_default() {
                match b {
                    b'\n' => breaks += 1,
                    b'\r' => {}
                    _ => return Ok((bytes, breaks)),
                }
                bytes += 1;
                offset += 1;
            }
        }
    }
}

/// Streams a CSV source's records, one reused `ByteRecord`.
pub(crate) struct Records<'a> {
    source: &'a Source,
    header: &'a Header,
    rdr: Option<csv::Reader<Capped>>,
    rec: ByteRecord,
    record: u64,
    /// The line the next record starts on, or a blank line before it.
    next_line: u64,
    starts: Starts,
    /// The file's length: a record that reaches it may hold a quote that
    /// never closes.
    len: u64,
}

impl<'a> Records<'a> {
    pub(crate) fn new(source: &'a Source, header: &'a Header) -> Result<Self, ReadError> {
        let file = File::open(&source.path).map_err(|e| source.open_error(e))?;
        let len = file.metadata().map_err(|e| source.open_error(e))?.len();
        let starts = Starts {
            file: File::open(&source.path).map_err(|e| source.open_error(e))?,
            window: Vec::new(),
            window_at: 0,
        };
        let mut rdr = builder(header.delimiter)
            .buffer_capacity(64 * 1024)
            .from_reader(Capped {
                file,
                read: 0,
                record_from: 0,
            });
        let at_header = |e: csv::Error| ReadError::At {
            path: source.name.clone(),
            line: header.first_line,
            message: e.to_string(),
        };
        skip_to_header(&mut rdr, header.skip, header.first_line).map_err(at_header)?;
        let mut rec = ByteRecord::new();
        // Skip the header (already checked by `open`).
        let has_header = rdr.read_byte_record(&mut rec).map_err(at_header)?;
        let next_line = rdr.position().line();
        rdr.get_mut().record_from = rdr.position().byte();
        Ok(Records {
            source,
            header,
            rdr: has_header.then_some(rdr),
            rec,
            record: 0,
            next_line,
            starts,
            len,
        })
    }
}

impl Iterator for Records<'_> {
    type Item = Result<RawRecord, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut record = RawRecord::empty();
        self.next_into(&mut record)
            .map(|read| read.map(|()| record))
    }
}

impl Records<'_> {
    /// The next record, read into `into` (its strings reused).
    pub(crate) fn next_into(&mut self, into: &mut RawRecord) -> Option<Result<(), ReadError>> {
        let rdr = self.rdr.as_mut()?;
        match rdr.read_byte_record(&mut self.rec) {
            Ok(true) => {}
            Ok(false) => {
                self.rdr = None;
                return None;
            }
            Err(e) => {
                let (line, message) = if rdr.get_ref().over() {
                    (
                        self.next_line,
                        format!(
                            "a record starts here and runs on past {} MiB, where a \
                             message has at most 64 KiB: a quote that opens a field and \
                             closes far later, or never? Fix that quote and run again",
                            LONGEST_RECORD >> 20
                        ),
                    )
                } else {
                    (rdr.position().line(), e.to_string())
                };
                self.rdr = None;
                return Some(Err(ReadError::At {
                    path: self.source.name.clone(),
                    line,
                    message,
                }));
            }
        }
        let end = rdr.position().byte();
        self.next_line = rdr.position().line();
        rdr.get_mut().record_from = end;
        self.record += 1;
        let start = self.rec.position().cloned().unwrap_or_else(Position::new);
        let at_line = |line: u64, e: io::Error| ReadError::At {
            path: self.source.name.clone(),
            line,
            message: e.to_string(),
        };
        let (bytes, breaks) = match self.starts.skip(start.byte()) {
            Ok(skipped) => skipped,
            Err(e) => {
                self.rdr = None;
                return Some(Err(at_line(start.line(), e)));
            }
        };
        // A workbook's records keep the row numbers the sheet shows.
        let line = match &self.header.sheet_rows {
            Some(rows) => usize::try_from(self.record - 1)
                .ok()
                .and_then(|i| rows.get(i))
                .map_or(start.line() + breaks, |row| u64::from(*row)),
            None => start.line() + breaks,
        };
        let pos = RowRef {
            source: self.source.id,
            record: self.record,
            line,
            offset: start.byte() + bytes,
        };
        let open = if end >= self.len {
            self.starts.window_at = u64::MAX;
            match open_quote(
                &mut self.starts.file,
                pos.offset,
                pos.line,
                self.header.delimiter,
            ) {
                Ok(open) => open,
                Err(e) => {
                    self.rdr = None;
                    return Some(Err(at_line(pos.line, e)));
                }
            }
        } else {
            None
        };
        self.header.record_into(pos, &self.rec, open.as_ref(), into);
        Some(Ok(()))
    }
}

impl Header {
    /// A record as read, with its count of lines that look like records.
    fn record(&self, pos: RowRef, rec: &ByteRecord, open: Option<&OpenQuote>) -> RawRecord {
        let mut record = RawRecord::empty();
        self.record_into(pos, rec, open, &mut record);
        record
    }

    /// [`Header::record`], read into `into` (its strings reused).
    fn record_into(
        &self,
        pos: RowRef,
        rec: &ByteRecord,
        open: Option<&OpenQuote>,
        into: &mut RawRecord,
    ) {
        let mut fields =
            std::mem::replace(&mut into.fields, Ok(RawFields::default())).unwrap_or_default();
        let read = self.fields_into(rec, open, &mut fields);
        into.pos = pos;
        match read {
            Ok(()) => {
                into.fields = Ok(fields);
                into.id_of_unreadable = None;
            }
            Err(Unreadable {
                reason,
                conversation_id,
            }) => {
                into.fields = Err(reason);
                into.id_of_unreadable = conversation_id;
            }
        }
        into.lines_like_records = self.lines_like_records(rec);
    }
}

/// Reads CSV records back by offset.
pub(crate) struct At {
    name: String,
    header: Header,
    rdr: csv::Reader<Window>,
    rec: ByteRecord,
    /// A second handle, to look for a quote that never closes.
    scan: File,
    len: u64,
}

impl At {
    pub(crate) fn new(source: &Source, header: Header) -> Result<Self, ReadError> {
        let file = File::open(&source.path).map_err(|e| source.open_error(e))?;
        let len = file.metadata().map_err(|e| source.open_error(e))?.len();
        let scan = File::open(&source.path).map_err(|e| source.open_error(e))?;
        // The parser's buffer starts afresh after a seek, so it is small:
        // it copies from the window, which holds the records after this one.
        let rdr = builder(header.delimiter)
            .buffer_capacity(1024)
            .from_reader(Window::new(file));
        Ok(At {
            name: source.name.clone(),
            header,
            rdr,
            rec: ByteRecord::new(),
            scan,
            len,
        })
    }

    pub(crate) fn read_at(&mut self, at: &RowRef) -> Result<RawRecord, ReadError> {
        let err = |message: String| ReadError::At {
            path: self.name.clone(),
            line: at.line,
            message,
        };
        // Seek to the line break just before the record, not to the record:
        // after a seek the csv parser strips a UTF-8 BOM where it starts, and
        // a record may begin with BOM bytes that the first pass kept. Data
        // records never start at 0 (the header comes first).
        let from = at.offset.saturating_sub(1);
        let mut pos = Position::new();
        pos.set_byte(from).set_line(at.line).set_record(at.record);
        self.rdr
            .seek_raw(std::io::SeekFrom::Start(from), pos)
            .map_err(|e| err(format!("cannot seek to byte {}: {e}", at.offset)))?;
        let found = self
            .rdr
            .read_byte_record(&mut self.rec)
            .map_err(|e| err(e.to_string()))?;
        if !found {
            return Err(err(format!(
                "no record at byte {} (did the file change?)",
                at.offset
            )));
        }
        let open = if self.rdr.position().byte() >= self.len {
            open_quote(&mut self.scan, at.offset, at.line, self.header.delimiter)
                .map_err(|e| err(e.to_string()))?
        } else {
            None
        };
        Ok(self.header.record(*at, &self.rec, open.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiter_is_detected_from_the_header_line() {
        assert_eq!(detect_delimiter(b"a,b,c\n1;2;3;4;5"), b',');
        assert_eq!(detect_delimiter(b"a;b;c\n"), b';');
        assert_eq!(detect_delimiter(b"a\tb\tc\r\n"), b'\t');
        assert_eq!(detect_delimiter(b"a|b|c"), b'|');
        // Delimiters inside quotes do not count.
        assert_eq!(detect_delimiter(b"\"a,b,c\";d;e"), b';');
        assert_eq!(detect_delimiter(b"text"), b',');
        assert_eq!(detect_delimiter(b""), b',');
        // A tie prefers the comma.
        assert_eq!(detect_delimiter(b"a,b;c"), b',');
    }

    #[test]
    fn excel_sep_line_names_the_delimiter() {
        assert_eq!(sep_line(b"sep=;\r\na;b"), Some((b';', 7)));
        assert_eq!(sep_line(b"sep=,\na,b"), Some((b',', 6)));
        assert_eq!(sep_line(b"SEP=|"), Some((b'|', 5)));
        assert_eq!(sep_line(b"\"sep=\t\"\r\n"), Some((b'\t', 9)));
        assert_eq!(sep_line(b"sep=;x\n"), None);
        assert_eq!(sep_line(b"sep=\n"), None);
        assert_eq!(sep_line(b"separator,text\n"), None);
        assert_eq!(sep_line(b"\"sep=;\n"), None);
        assert_eq!(sep_line(b""), None);
    }

    /// A line split alone, as the csv crate's reader splits it.
    #[test]
    fn a_line_splits_as_the_csv_crate_splits_it() {
        let mut fields = LineFields::new(b',');
        for line in [
            &b"a,b,c"[..],
            b"",
            b",",
            b"\"a,b\",c",
            b"\"a\"\"b\",,\"\"",
            b"x\"y,z",
            b"\"a\"b,c",
            b"\"never closes,d",
            b"  padded , ok ",
            b"\xff\xfe,2024-01-01T00:00:00Z",
        ] {
            let mut rdr = builder(b',').from_reader(line);
            let mut rec = ByteRecord::new();
            let want: Vec<Vec<u8>> = if rdr.read_byte_record(&mut rec).unwrap() {
                rec.iter().map(<[u8]>::to_vec).collect()
            } else {
                Vec::new()
            };
            let n = fields.split(line);
            let got: Vec<Vec<u8>> = (0..n).map(|i| fields.get(i).unwrap().to_vec()).collect();
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(line));
            assert_eq!(fields.get(n), None);
        }
        let mut semicolons = LineFields::new(b';');
        assert_eq!(semicolons.split(b"a;\"b;c\";d"), 3);
        assert_eq!(semicolons.get(1), Some(&b"b;c"[..]));
    }

    /// The scanner follows the csv parser's quoting rules.
    #[test]
    fn a_quote_left_open_is_found_where_it_opened() {
        let open = |bytes: &[u8]| {
            let mut f = tempfile::tempfile().unwrap();
            std::io::Write::write_all(&mut f, bytes).unwrap();
            open_quote(&mut f, 0, 1, b',')
                .unwrap()
                .map(|o| (o.column, o.line, o.last_line))
        };
        assert_eq!(open(b"a,b\n"), None);
        assert_eq!(open(b"a,\"b\"\"c\"\n"), None);
        assert_eq!(
            open(b"a,\"b\"c\"\n"),
            None,
            "a quote after a closed one is data"
        );
        assert_eq!(
            open(b"a,b\"c\n"),
            None,
            "a quote inside an unquoted field is data"
        );
        assert_eq!(open(b"\"a\nb\",c\r\n"), None);
        assert_eq!(open(b"a,\"b"), Some((1, 1, 1)));
        assert_eq!(
            open(b"a,\"b\"\"\n"),
            Some((1, 1, 1)),
            "an escaped quote does not close"
        );
        assert_eq!(open(b"x\r\n\r\na,b,\"c\nd\n\ne\n\n"), Some((2, 3, 6)));
        assert_eq!(open(b"\xEF\xBB\xBF\"a\nb"), Some((0, 1, 2)), "after a BOM");
        assert_eq!(open(b"a;\"b"), None, "`;` is no delimiter here");
    }
}
