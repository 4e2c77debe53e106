//! The rejects file (`--rejects PATH`): every row that did not make it
//! (`invalid`, `failed`, `skipped`, `uncertain`, `not_attempted`), in the
//! input's own format, byte for byte as the input has it, plus its status
//! and reason, so an analyst can fix the rows and feed the file back.
//!
//! - CSV: the input's header line, then each rejected record's bytes as
//!   they are in the input (quotes, line breaks inside quotes and all),
//!   each followed by two more columns, `status` and `reason`, written with
//!   the input's delimiter. The reason is quoted as CSV needs and made safe
//!   for spreadsheets (see `report::csv`); the input's own cells are not
//!   touched: they are what gets fed back.
//! - JSONL: each rejected line as it is, with `"status"` and `"reason"`
//!   keys added before its closing brace. A line that is not a JSON object
//!   has no object to add them to: it is copied as it is.
//!
//! - An input decoded from another encoding, or a workbook, is read back
//!   from its UTF-8 spool (a workbook's sheet as CSV): its rows are written
//!   as they were read, and the file starts with a UTF-8 byte order mark,
//!   which wins over an `--encoding` given again when it is fed back.
//!
//! The reader ignores columns and keys it does not know, so the file is an
//! input as it stands; fed back with the same ledger, rows already in the
//! API are not sent again. Rows come in input order (input, then record);
//! several inputs go into one file, so they must share a format (and, for
//! CSV, one header), which is checked before anything is sent.
//!
//! During the run each rejected row costs 24 bytes of memory and its
//! reason once (reasons are shared); the records' bytes are read back from
//! the inputs at the end.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Mutex;

use crate::model::{Outcome, Status};
use crate::read::{self, Format, Source};

/// The rejects file cannot be written, or not with these inputs.
#[derive(Debug, thiserror::Error)]
pub enum RejectsError {
    #[error("--rejects {path}: {message}")]
    Unfit { path: String, message: String },
    #[error("--rejects {path}: cannot write the rejects file{}", super::output::left_as_it_was(*kept))]
    Write {
        path: String,
        /// An earlier file at `path` is still there (see `ReportError::Write`).
        kept: bool,
        #[source]
        source: io::Error,
    },
    #[error("--rejects {path}: cannot read {input} again")]
    Read {
        path: String,
        input: String,
        #[source]
        source: io::Error,
    },
}

/// What the rejects file looks like, decided from the inputs before
/// anything is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub format: Format,
    /// CSV: the header line as the first input has it (a byte order mark
    /// included), without its line end.
    header: Vec<u8>,
    delimiter: u8,
    /// The line end the header has (`\r\n` or `\n`).
    newline: &'static [u8],
    /// Start with a UTF-8 byte order mark: the rows are read back from a
    /// UTF-8 spool (an input decoded from another encoding, or a
    /// workbook's sheet), not from the input's own bytes. The mark says
    /// so, and wins over the `--encoding` given again when the file is fed
    /// back with the run's flags.
    bom: bool,
    /// CSV: the header ends with `status` and `reason` (a rejects file fed
    /// back): each row's last two fields are replaced, not added to.
    replaces: bool,
}

/// The format a rejects path's extension names.
pub fn format_of(path: &Path) -> Option<Format> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let ext = name.rsplit('.').next()?;
    match ext {
        "csv" | "tsv" | "txt" => Some(Format::Csv),
        "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
        _ => None,
    }
}

/// Where a CSV source's header ends and its first record starts.
fn header_of(source: &Source) -> io::Result<Option<(Vec<u8>, &'static [u8])>> {
    let first = match source.records() {
        Ok(mut records) => match records.next() {
            Some(Ok(record)) => record.pos.offset,
            // No records: nothing of it can be rejected.
            None => return Ok(None),
            Some(Err(e)) => return Err(io::Error::other(e)),
        },
        Err(e) => return Err(io::Error::other(e)),
    };
    let mut bytes = vec![0u8; first as usize];
    File::open(&source.path)?.read_exact(&mut bytes)?;
    let end = trimmed_len(&bytes);
    let newline: &'static [u8] = if bytes[end..].starts_with(b"\r\n") {
        b"\r\n"
    } else {
        b"\n"
    };
    bytes.truncate(end);
    Ok(Some((bytes, newline)))
}

/// `bytes` without the line ends (and blank lines) at their end.
fn trimmed_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .rposition(|b| !matches!(b, b'\r' | b'\n'))
        .map_or(0, |i| i + 1)
}

fn without_bom(b: &[u8]) -> &[u8] {
    b.strip_prefix(read::BOM).unwrap_or(b)
}

/// Decide the rejects file's layout from the inputs, or say why one file
/// cannot hold their rows: inputs of two formats, CSV inputs with different
/// headers, an extension that names another format than the inputs'.
/// `delimiter` is `--delimiter`, if given.
pub fn layout(
    path: &Path,
    sources: &[Source],
    delimiter: Option<u8>,
) -> Result<Layout, RejectsError> {
    let unfit = |message: String| RejectsError::Unfit {
        path: path.display().to_string(),
        message,
    };
    let Some(first) = sources.first() else {
        return Err(unfit("no inputs".into()));
    };
    let format = written_as(first.format);
    if let Some(other) = sources.iter().find(|s| written_as(s.format) != format) {
        return Err(unfit(format!(
            "{} is {} and {} is {}: one rejects file holds one format; import them separately",
            first.name,
            name_of(first.format),
            other.name,
            name_of(other.format)
        )));
    }
    if let Some(named) = format_of(path) {
        if named != format {
            return Err(unfit(format!(
                "the inputs are {}: name the rejects file .{} so that it can be fed back",
                name_of(format),
                if format == Format::Csv {
                    "csv"
                } else {
                    "jsonl"
                }
            )));
        }
    }
    let mut header: Option<(Vec<u8>, &'static [u8], &str)> = None;
    if format == Format::Csv {
        for source in sources {
            let Some((bytes, newline)) =
                header_of(source).map_err(|source_err| RejectsError::Read {
                    path: path.display().to_string(),
                    input: source.name.clone(),
                    source: source_err,
                })?
            else {
                continue;
            };
            match &header {
                None => header = Some((bytes, newline, &source.name)),
                Some((h, _, name)) if without_bom(h) != without_bom(&bytes) => {
                    return Err(unfit(format!(
                        "{name} and {} have different headers: one rejects file holds one header; import them separately",
                        source.name
                    )))
                }
                Some(_) => {}
            }
        }
    }
    let (header, newline) = header
        .map(|(h, n, _)| (h, n))
        .unwrap_or((Vec::new(), b"\n"));
    // The delimiter the first input was read with (its `sep=` line, or
    // a workbook's spool); detected again only when there is none.
    let delimiter = delimiter
        .or(first.reading.delimiter.map(|(d, _)| d))
        .or((first.format == Format::Excel).then_some(b','))
        .unwrap_or_else(|| read::detect_delimiter(without_bom(&header)));
    let bom = sources
        .iter()
        .any(|s| s.format == Format::Excel || s.reading.encoding.is_some_and(|e| e.decodes()));
    let replaces = format == Format::Csv && ends_with_status_reason(&header, delimiter);
    Ok(Layout {
        format,
        header,
        delimiter,
        newline,
        bom,
        replaces,
    })
}

/// The format a source's rejected rows are written in: a workbook's are
/// its sheet's rows as CSV, as they were read.
fn written_as(format: Format) -> Format {
    match format {
        Format::Excel => Format::Csv,
        other => other,
    }
}

fn name_of(format: Format) -> &'static str {
    match format {
        Format::Csv => "CSV",
        Format::Jsonl => "JSONL",
        Format::Excel => "a workbook (its rows go as CSV)",
    }
}

#[derive(Debug, Clone, Copy)]
struct Rejected {
    source: u32,
    reason: u32,
    record: u64,
    status: Status,
}

#[derive(Default)]
struct Gathered {
    rows: Vec<Rejected>,
    reasons: Vec<Box<str>>,
    ids: HashMap<Box<str>, u32>,
}

/// The rejected rows of a run, gathered by the lanes.
#[derive(Default)]
pub struct Rejects {
    shared: Mutex<Gathered>,
}

/// Rows a lane holds before handing them over.
const CHUNK: usize = 4096;

impl Rejects {
    pub fn new() -> Rejects {
        Rejects::default()
    }

    pub fn lane(&self) -> RejectsLane<'_> {
        RejectsLane {
            rejects: self,
            rows: Vec::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Gathered> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rows gathered so far.
    pub fn len(&self) -> usize {
        self.lock().rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Write the rejects file at `path`, atomically (a temporary file
    /// beside it, renamed when complete; its owner's only). `sources` are
    /// the run's inputs, to read the rows back from. Returns the number of
    /// rows written.
    pub fn write(
        &self,
        layout: &Layout,
        sources: &[Source],
        path: &Path,
    ) -> Result<u64, RejectsError> {
        let write_err = |source| RejectsError::Write {
            path: path.display().to_string(),
            kept: super::output::is_there(path),
            source,
        };
        let mut gathered = self.lock();
        gathered.rows.sort_unstable_by_key(|r| (r.source, r.record));
        let output = super::output::Output::create(path).map_err(write_err)?;
        let mut out = BufWriter::new(output.file());
        if layout.bom {
            out.write_all(read::BOM).map_err(write_err)?;
        }
        if layout.format == Format::Csv {
            let mut header = if layout.bom {
                without_bom(&layout.header).to_vec()
            } else {
                layout.header.clone()
            };
            if header.is_empty() {
                // No input had a record: no row either; a header alone.
                header.extend_from_slice(b"conversation_id,timestamp,sender_role,sender_id,text");
            }
            // A rejects file fed back ends with our two columns already:
            // they are replaced, not added again.
            if layout.replaces {
                if let Some(kept) = without_status_reason(&header, layout.delimiter) {
                    header = kept;
                }
            }
            out.write_all(&header).map_err(write_err)?;
            out.write_all(&csv_suffix(layout.delimiter, "status", "reason"))
                .map_err(write_err)?;
            out.write_all(layout.newline).map_err(write_err)?;
        }
        let mut written = 0u64;
        let rows = &gathered.rows;
        let mut i = 0;
        while i < rows.len() {
            let source_index = rows[i].source;
            let end = rows[i..]
                .iter()
                .position(|r| r.source != source_index)
                .map_or(rows.len(), |n| i + n);
            let Some(source) = sources.get(source_index as usize) else {
                i = end;
                continue;
            };
            let read_err = |e: io::Error| RejectsError::Read {
                path: path.display().to_string(),
                input: source.name.clone(),
                source: e,
            };
            written += copy_rows(source, &rows[i..end], &gathered.reasons, layout, &mut out)
                .map_err(|e| match e {
                    Copy::Read(e) => read_err(e),
                    Copy::Write(e) => write_err(e),
                })?;
            i = end;
        }
        out.flush().map_err(write_err)?;
        drop(out);
        output.finish().map_err(write_err)?;
        Ok(written)
    }
}

enum Copy {
    Read(io::Error),
    Write(io::Error),
}

/// Copy the rejected `rows` of one source (in record order) with their
/// status and reason.
fn copy_rows(
    source: &Source,
    rows: &[Rejected],
    reasons: &[Box<str>],
    layout: &Layout,
    out: &mut impl Write,
) -> Result<u64, Copy> {
    let mut file = File::open(&source.path).map_err(Copy::Read)?;
    let len = file.metadata().map_err(Copy::Read)?.len();
    let mut records = source
        .records()
        .map_err(|e| Copy::Read(io::Error::other(e)))?;
    let mut buf = Vec::new();
    let mut written = 0u64;
    // The rejected record being read: its row and where it starts.
    let mut open: Option<(&Rejected, u64)> = None;
    let mut next = rows.iter().peekable();
    let mut emit = |r: &Rejected, start: u64, end: u64| -> Result<(), Copy> {
        buf.resize((end - start) as usize, 0);
        file.seek(SeekFrom::Start(start)).map_err(Copy::Read)?;
        file.read_exact(&mut buf).map_err(Copy::Read)?;
        let reason = reasons.get(r.reason as usize).map_or("", |s| s);
        let line = match layout.format {
            Format::Csv | Format::Excel => {
                let mut line = buf[..trimmed_len(&buf)].to_vec();
                if layout.replaces {
                    if let Some(kept) = without_status_reason(&line, layout.delimiter) {
                        line = kept;
                    }
                }
                line.extend_from_slice(&csv_suffix(
                    layout.delimiter,
                    r.status.as_str(),
                    &super::csv::safe(reason),
                ));
                line.extend_from_slice(layout.newline);
                line
            }
            Format::Jsonl => {
                let end = buf.iter().position(|b| *b == b'\n').unwrap_or(buf.len());
                let mut line = with_keys(&buf[..end], r.status, reason);
                line.push(b'\n');
                line
            }
        };
        out.write_all(&line).map_err(Copy::Write)?;
        written += 1;
        Ok(())
    };
    while next.peek().is_some() || open.is_some() {
        let Some(record) = records.next() else {
            if let Some((r, start)) = open.take() {
                emit(r, start, len)?;
            }
            break;
        };
        let pos = record.map_err(|e| Copy::Read(io::Error::other(e)))?.pos;
        if let Some((r, start)) = open.take() {
            emit(r, start, pos.offset)?;
        }
        if next.peek().is_some_and(|r| r.record == pos.record) {
            open = next.next().map(|r| (r, pos.offset));
        }
    }
    Ok(written)
}

/// `,status,reason` with `delimiter`, quoted as CSV needs, no line end.
fn csv_suffix(delimiter: u8, status: &str, reason: &str) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    // Writing to memory cannot fail.
    let _ = w.write_record([status, reason]);
    let mut fields = w.into_inner().unwrap_or_default();
    if fields.last() == Some(&b'\n') {
        fields.pop();
    }
    let mut out = vec![delimiter];
    out.append(&mut fields);
    out
}

/// A CSV record without its last two fields when the header says they are
/// an earlier rejects file's `status` and `reason` (or, for the header
/// itself, when they are those names); `None` to keep it as it is. Fields
/// are written again as CSV needs: a row that was rejected twice is ours.
fn without_status_reason(record: &[u8], delimiter: u8) -> Option<Vec<u8>> {
    let bom = record.len() - without_bom(record).len();
    let fields = fields_of(&record[bom..], delimiter)?;
    let mut writer = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    writer
        .write_record(fields.iter().take(fields.len() - 2))
        .ok()?;
    let mut out = record[..bom].to_vec();
    out.extend_from_slice(&writer.into_inner().ok()?);
    out.pop();
    Some(out)
}

/// Whether a header's last two columns are `status` and `reason`.
fn ends_with_status_reason(header: &[u8], delimiter: u8) -> bool {
    fields_of(without_bom(header), delimiter).is_some_and(|fields| {
        let n = fields.len();
        fields[n - 2].eq_ignore_ascii_case(b"status")
            && fields[n - 1].eq_ignore_ascii_case(b"reason")
    })
}

/// The fields of one CSV record, when it has more than `status` and
/// `reason` could be.
fn fields_of(record: &[u8], delimiter: u8) -> Option<csv::ByteRecord> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(record);
    let mut fields = csv::ByteRecord::new();
    (reader.read_byte_record(&mut fields).ok()? && fields.len() >= 3).then_some(fields)
}

/// A JSON object line without the `status` and `reason` keys an earlier
/// rejects file added; `None` when it has neither.
fn without_status_keys(line: &[u8]) -> Option<Vec<u8>> {
    // Most rejected lines never went through a rejects file: no parse.
    if !line.windows(8).any(|w| w == b"\"status\"") {
        return None;
    }
    let serde_json::Value::Object(mut map) = serde_json::from_slice(line).ok()? else {
        return None;
    };
    let had = map.remove("status").is_some() | map.remove("reason").is_some();
    had.then(|| serde_json::to_vec(&map).ok()).flatten()
}

/// A JSONL line with `"status"` and `"reason"` added before its closing
/// brace; a line that is not a JSON object, as it is.
fn with_keys(line: &[u8], status: Status, reason: &str) -> Vec<u8> {
    // A line of an earlier rejects file: its keys are replaced.
    let stripped = without_status_keys(line);
    let line = stripped.as_deref().unwrap_or(line);
    let end = line
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r'))
        .map_or(0, |i| i + 1);
    let start = line
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\r'))
        .unwrap_or(end);
    let object = end > start
        && line[start] == b'{'
        && line[end - 1] == b'}'
        && serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok();
    if !object {
        return line.to_vec();
    }
    let empty = line[start + 1..end - 1]
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
    let mut out = Vec::with_capacity(line.len() + reason.len() + 32);
    out.extend_from_slice(&line[..end - 1]);
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(b"\"status\":");
    // Strings serialize infallibly.
    out.extend_from_slice(&serde_json::to_vec(status.as_str()).unwrap_or_default());
    out.extend_from_slice(b",\"reason\":");
    out.extend_from_slice(&serde_json::to_vec(reason).unwrap_or_default());
    out.extend_from_slice(&line[end - 1..]);
    out
}

/// A worker's end of the rejects.
pub struct RejectsLane<'a> {
    rejects: &'a Rejects,
    rows: Vec<(u32, u64, Status, String)>,
}

impl RejectsLane<'_> {
    /// Keep the row if it did not make it.
    pub fn outcome(&mut self, o: &Outcome<'_>) {
        if o.status.is_success() {
            return;
        }
        let reason = o.error_message.clone().unwrap_or_default();
        self.rows
            .push((o.pos.source.0, o.pos.record, o.status, reason));
        if self.rows.len() >= CHUNK {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        if self.rows.is_empty() {
            return;
        }
        let mut g = self.rejects.lock();
        let g = &mut *g;
        for (source, record, status, reason) in self.rows.drain(..) {
            let id = match g.ids.get(reason.as_str()) {
                Some(id) => *id,
                None => {
                    let id = g.reasons.len() as u32;
                    let reason: Box<str> = reason.into();
                    g.reasons.push(reason.clone());
                    g.ids.insert(reason, id);
                    id
                }
            };
            g.rows.push(Rejected {
                source,
                reason: id,
                record,
                status,
            });
        }
    }
}

impl Drop for RejectsLane<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RowRef, SourceId};
    use crate::read::ReadOptions;

    fn open(name: &str, bytes: &[u8]) -> Source {
        read::open_bytes(SourceId(0), name, bytes, &ReadOptions::default()).unwrap()
    }

    /// A header with every required column but the text, `;`-separated.
    const H: &str = "conversation_id;timestamp;sender_role;sender_id";
    const BOM: &str = "\u{feff}";

    fn reject(lane: &mut RejectsLane<'_>, record: u64, status: Status, why: &str) {
        let pos = RowRef {
            source: SourceId(0),
            record,
            line: 0,
            offset: 0,
        };
        lane.outcome(&Outcome::bare(pos, "C", status).because(why));
    }

    fn written(name: &str, input: &[u8], rows: &[(u64, Status, &str)]) -> String {
        let source = open(name, input);
        let dir = tempfile::tempdir().unwrap();
        let path = dir
            .path()
            .join(format!("rejects.{}", name.rsplit('.').next().unwrap()));
        let sources = [source];
        let layout = layout(&path, &sources, None).unwrap();
        let rejects = Rejects::new();
        {
            let mut lane = rejects.lane();
            // Out of order, as workers decide them.
            for (record, status, why) in rows.iter().rev() {
                reject(&mut lane, *record, *status, why);
            }
            reject(&mut lane, 99, Status::Created, "");
        }
        let n = rejects.write(&layout, &sources, &path).unwrap();
        assert_eq!(n as usize, rows.len());
        String::from_utf8(std::fs::read(&path).unwrap()).unwrap()
    }

    #[test]
    fn csv_rows_are_copied_byte_for_byte_with_status_and_reason() {
        let input =
            format!("{BOM}{H};text\r\nA;\"two\r\nlines\"\r\n\r\nB;x\r\nC;\"q\"\"uote\"\r\nD;last");
        let got = written(
            "in.csv",
            input.as_bytes(),
            &[
                (1, Status::Failed, "=HYPERLINK(1)"),
                (3, Status::Invalid, "text: \"quoted\"; more"),
                (4, Status::Skipped, "not sent"),
            ],
        );
        assert_eq!(
            got,
            format!(
                "{BOM}{H};text;status;reason\r\n\
             A;\"two\r\nlines\";failed;'=HYPERLINK(1)\r\n\
             C;\"q\"\"uote\";invalid;\"text: \"\"quoted\"\"; more\"\r\n\
             D;last;skipped;not sent\r\n"
            )
        );
    }

    #[test]
    fn jsonl_lines_get_two_more_keys() {
        let input = "{\"a\": 1}\n{}\r\n\nnot json\n{\"b\": \"}\"}  \n";
        let got = written(
            "in.jsonl",
            input.as_bytes(),
            &[
                (1, Status::Failed, "HTTP 404: \"unknown\""),
                (2, Status::Invalid, "x"),
                (3, Status::Invalid, "not a JSON object"),
                (4, Status::NotAttempted, "not sent"),
            ],
        );
        assert_eq!(
            got,
            "{\"a\": 1,\"status\":\"failed\",\"reason\":\"HTTP 404: \\\"unknown\\\"\"}\n\
             {\"status\":\"invalid\",\"reason\":\"x\"}\r\n\
             not json\n\
             {\"b\": \"}\",\"status\":\"not_attempted\",\"reason\":\"not sent\"}  \n"
        );
    }

    #[test]
    fn a_rejects_file_fed_back_has_its_status_and_reason_replaced() {
        let input = format!(
            "{BOM}{H};text;status;reason\r\nA;\"two\r\nlines\";failed;\"HTTP 404; gone\"\r\nB;x;skipped;not sent\r\n"
        );
        let got = written(
            "in.csv",
            input.as_bytes(),
            &[(1, Status::Invalid, "text: empty")],
        );
        assert_eq!(
            got,
            format!(
                "{BOM}{H};text;status;reason\r\n\
             A;\"two\r\nlines\";invalid;text: empty\r\n"
            )
        );
        let jsonl = "{\"a\":1,\"status\":\"failed\",\"reason\":\"x\"}\n";
        let got = written(
            "in.jsonl",
            jsonl.as_bytes(),
            &[(1, Status::Skipped, "not sent")],
        );
        assert_eq!(
            got,
            "{\"a\":1,\"status\":\"skipped\",\"reason\":\"not sent\"}\n"
        );
    }

    #[test]
    fn inputs_that_cannot_share_a_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("r.csv");
        let h = H.replace(';', ",");
        let open_csv = |name: &str, rest: &str| open(name, format!("{h}{rest}").as_bytes());
        let a = open_csv("a.csv", ",text\nA,x\n");
        let b = open("b.csv", format!("{H};text\nA;x\n").as_bytes());
        let j = open("c.jsonl", b"{}\n");
        let e = layout(&csv, &[a, b], None).unwrap_err().to_string();
        assert!(e.contains("different headers"), "{e}");
        let a = open_csv("a.csv", ",text\nA,x\n");
        let e = layout(&csv, &[a, j], None).unwrap_err().to_string();
        assert!(e.contains("one format"), "{e}");
        let j = open("c.jsonl", b"{}\n");
        let e = layout(&csv, &[j], None).unwrap_err().to_string();
        assert!(e.contains(".jsonl"), "{e}");
        // Same header, another record: fine; a header-only input too.
        let a = open_csv("a.csv", ",text\nA,x\n");
        let b = open_csv("b.csv", ",text\r\nB,y\r\n");
        let c = open_csv("c.csv", ",message\n");
        assert!(layout(&csv, &[a, b, c], None).is_ok());
        assert_eq!(format_of(Path::new("x.NDJSON")), Some(Format::Jsonl));
        assert_eq!(format_of(Path::new("x.gz")), None);
    }
}
