//! CSV as spreadsheets and databases write it: a header line, `,` `;` tab
//! or `|` delimiters (detected from the header line unless `--delimiter`),
//! RFC 4180 quoting (fields with delimiters, `""` quotes and line breaks),
//! CRLF or LF, a UTF-8 BOM. Records are read as bytes and each needed field
//! is checked for UTF-8 on its own, so a bad byte is one row's problem.
//! Blank lines are skipped (by the csv crate) and are not records.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use csv::{ByteRecord, Position, ReaderBuilder};

use super::columns::{self, index};
use super::{RawFields, RawRecord, ReadError, ReadOptions, Source, BOM};
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

/// What was learned from the header line.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    delimiter: u8,
    /// Column index per field (by `columns::index`); `None` only for an
    /// empty file, which has no header and no records.
    columns: Option<[usize; 5]>,
    /// The header's column names, for reasons.
    names: Vec<String>,
}

impl Header {
    pub(crate) fn read(name: &str, path: &Path, opts: &ReadOptions) -> Result<Header, ReadError> {
        let open_err = |source| ReadError::Open {
            path: name.to_string(),
            source,
        };
        let delimiter = match opts.delimiter {
            Some(d) => d,
            None => detect_delimiter(&super::spool::head(path, 64 * 1024).map_err(open_err)?),
        };
        let file = File::open(path).map_err(open_err)?;
        let mut rdr = builder(delimiter).from_reader(BufReader::new(file));
        let mut rec = ByteRecord::new();
        let found = rdr.read_byte_record(&mut rec).map_err(|e| ReadError::At {
            path: name.to_string(),
            line: 1,
            message: e.to_string(),
        })?;
        if !found {
            return Ok(Header {
                delimiter,
                columns: None,
                names: Vec::new(),
            });
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
            if !names
                .iter()
                .any(|n| n.to_lowercase() == column.trim().to_lowercase())
            {
                return Err(ReadError::Other {
                    path: name.to_string(),
                    message: format!(
                        "--map {}={column}: no column `{column}` in the header ({})",
                        field.name(),
                        shown_names(&names)
                    ),
                });
            }
        }
        let found = columns::resolve(&names, &opts.columns).map_err(|a| ReadError::Other {
            path: name.to_string(),
            message: format!(
                "columns `{}` and `{}` both name `{}`; choose one with --map {}=COLUMN",
                a.first,
                a.second,
                a.field.name(),
                a.field.name()
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
            delimiter,
            columns: Some(cols),
            names,
        })
    }

    /// One record's fields, or why they cannot be read.
    fn fields(&self, rec: &ByteRecord) -> Result<RawFields, Invalid> {
        let Some(cols) = self.columns else {
            return Err(Invalid::record("no header"));
        };
        if rec.len() != self.names.len() {
            return Err(Invalid::record(format!(
                "row has {} field{}, header has {}",
                rec.len(),
                if rec.len() == 1 { "" } else { "s" },
                self.names.len()
            )));
        }
        let get = |field: Field| -> Result<Option<String>, Invalid> {
            let i = cols.get(index(field)).copied().unwrap_or(usize::MAX);
            let Some(bytes) = rec.get(i) else {
                return Ok(None);
            };
            match std::str::from_utf8(bytes) {
                Ok(s) => Ok(Some(s.to_string())),
                Err(e) => Err(Invalid::field(
                    field,
                    format!(
                        "invalid UTF-8 at byte {} of column `{}`",
                        e.valid_up_to() + 1,
                        self.names.get(i).map(String::as_str).unwrap_or("?")
                    ),
                )),
            }
        };
        Ok(RawFields {
            conversation_id: get(Field::ConversationId)?,
            timestamp: get(Field::Timestamp)?,
            sender_role: get(Field::SenderRole)?,
            sender_id: get(Field::SenderId)?,
            text: get(Field::Text)?,
        })
    }
}

fn shown_names(names: &[String]) -> String {
    let shown: Vec<String> = names
        .iter()
        .take(12)
        .map(|n| format!("`{}`", crate::model::excerpt(n)))
        .collect();
    format!("columns: {}", shown.join(", "))
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
    rdr: Option<csv::Reader<File>>,
    rec: ByteRecord,
    record: u64,
    starts: Starts,
}

impl<'a> Records<'a> {
    pub(crate) fn new(source: &'a Source, header: &'a Header) -> Result<Self, ReadError> {
        let file = File::open(&source.path).map_err(|e| source.open_error(e))?;
        let starts = Starts {
            file: File::open(&source.path).map_err(|e| source.open_error(e))?,
            window: Vec::new(),
            window_at: 0,
        };
        let mut rdr = builder(header.delimiter)
            .buffer_capacity(64 * 1024)
            .from_reader(file);
        let mut rec = ByteRecord::new();
        // Skip the header (already checked by `open`).
        let has_header = rdr.read_byte_record(&mut rec).map_err(|e| ReadError::At {
            path: source.name.clone(),
            line: 1,
            message: e.to_string(),
        })?;
        Ok(Records {
            source,
            header,
            rdr: has_header.then_some(rdr),
            rec,
            record: 0,
            starts,
        })
    }
}

impl Iterator for Records<'_> {
    type Item = Result<RawRecord, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rdr = self.rdr.as_mut()?;
        match rdr.read_byte_record(&mut self.rec) {
            Ok(true) => {}
            Ok(false) => {
                self.rdr = None;
                return None;
            }
            Err(e) => {
                let line = rdr.position().line();
                self.rdr = None;
                return Some(Err(ReadError::At {
                    path: self.source.name.clone(),
                    line,
                    message: e.to_string(),
                }));
            }
        }
        self.record += 1;
        let start = self.rec.position().cloned().unwrap_or_else(Position::new);
        let (bytes, breaks) = match self.starts.skip(start.byte()) {
            Ok(skipped) => skipped,
            Err(e) => {
                self.rdr = None;
                return Some(Err(ReadError::At {
                    path: self.source.name.clone(),
                    line: start.line(),
                    message: e.to_string(),
                }));
            }
        };
        let pos = RowRef {
            source: self.source.id,
            record: self.record,
            line: start.line() + breaks,
            offset: start.byte() + bytes,
        };
        Some(Ok(RawRecord {
            pos,
            fields: self.header.fields(&self.rec),
        }))
    }
}

/// Reads CSV records back by offset.
pub(crate) struct At {
    name: String,
    header: Header,
    rdr: csv::Reader<File>,
    rec: ByteRecord,
}

impl At {
    pub(crate) fn new(source: &Source, header: Header) -> Result<Self, ReadError> {
        let file = File::open(&source.path).map_err(|e| source.open_error(e))?;
        let rdr = builder(header.delimiter).from_reader(file);
        Ok(At {
            name: source.name.clone(),
            header,
            rdr,
            rec: ByteRecord::new(),
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
        Ok(RawRecord {
            pos: *at,
            fields: self.header.fields(&self.rec),
        })
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
}
