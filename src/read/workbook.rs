//! Spreadsheet workbooks (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`, `.ods`), read
//! with calamine: one sheet (`--sheet NAME` or `--sheet N`, the first by
//! default) is written once to a temporary CSV spool, and everything after
//! that reads it as CSV. Its header is the sheet's first non-empty row.
//!
//! What each cell becomes: text as it is; whole numbers without `.0` (an id
//! typed as a number stays `123`); date cells as the date and time they
//! show, zone-less (`2021-11-23T13:06:00`, milliseconds when there are
//! any), so `--timezone` applies as to any zone-less time, never a serial
//! number; a time with no date (`13:06:00`), which no row can send; TRUE
//! and FALSE; an error cell as Excel shows it (`#N/A`). Rows with no value
//! under any header column are skipped, as blank lines are in CSV; cells
//! right of the header's last column are not read.
//!
//! Every record keeps the row number the sheet shows (`RowRef::line`), even
//! when a cell holds line breaks.
//!
//! An `.xlsx` sheet is streamed cell by cell (the workbook's shared strings
//! are held in memory); the other formats are read whole. A workbook over
//! [`MAX_WORKBOOK_BYTES`] is refused before it is read, naming its size.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read};
use std::path::Path;

use calamine::{Data, DataRef, Ods, Reader, Xls, Xlsb, Xlsx};
use tempfile::TempPath;

use super::ReadError;

/// The largest workbook read, in bytes on disk (after gzip). Workbooks are
/// compressed and their strings are held in memory while a sheet is
/// converted: 64 MiB of `.xlsx` is already several hundred MB of memory.
/// Past it, save the sheet as CSV (UTF-8), which is streamed at any size.
pub const MAX_WORKBOOK_BYTES: u64 = 64 * 1024 * 1024;

/// The magic bytes of a zip file (`.xlsx`, `.xlsm`, `.xlsb`, `.ods`).
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
/// The magic bytes of an OLE compound file (`.xls`).
const OLE_MAGIC: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";

/// The workbook formats calamine reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Xlsx,
    Xlsb,
    Xls,
    Ods,
}

impl Kind {
    /// By extension (`.gz` ignored).
    pub(crate) fn from_name(name: &str) -> Option<Kind> {
        let lower = name.to_ascii_lowercase();
        let base = lower.strip_suffix(".gz").unwrap_or(&lower);
        match Path::new(base).extension()?.to_str()? {
            "xlsx" | "xlsm" => Some(Kind::Xlsx),
            "xlsb" => Some(Kind::Xlsb),
            "xls" => Some(Kind::Xls),
            "ods" => Some(Kind::Ods),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Xlsx => "xlsx",
            Kind::Xlsb => "xlsb",
            Kind::Xls => "xls",
            Kind::Ods => "ods",
        }
    }
}

/// Whether `head` starts like a workbook: a zip or an OLE file. No CSV or
/// JSONL file starts with these bytes.
pub(crate) fn sniff(head: &[u8]) -> bool {
    head.starts_with(ZIP_MAGIC) || head.starts_with(OLE_MAGIC)
}

/// The sheet that was read, for `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetRead {
    pub kind: Kind,
    pub name: String,
    /// 1-based position among the workbook's sheets.
    pub number: usize,
    pub sheets: usize,
    /// The sheet's row holding the header (1-based); `None` for an empty sheet.
    pub header_row: Option<u32>,
}

impl fmt::Display for SheetRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} workbook, sheet `{}` ({} of {})",
            self.kind.name(),
            crate::model::excerpt(&self.name),
            self.number,
            self.sheets
        )?;
        match self.header_row {
            Some(row) => write!(f, ", header on row {row}"),
            None => f.write_str(", empty"),
        }
    }
}

/// A sheet converted to CSV.
pub(crate) struct Converted {
    pub spool: TempPath,
    pub sheet: SheetRead,
    /// The sheet row (1-based) of each data record, in order.
    pub rows: Vec<u32>,
}

/// Convert one sheet of the workbook at `path` (named `name` by the user)
/// to a CSV spool.
pub(crate) fn convert(
    name: &str,
    path: &Path,
    sheet: Option<&str>,
) -> Result<Converted, ReadError> {
    let err = |message: String| ReadError::Other {
        path: name.to_string(),
        message,
    };
    let open_err = |source| ReadError::Open {
        path: name.to_string(),
        source,
    };
    let size = std::fs::metadata(path).map_err(open_err)?.len();
    if size > MAX_WORKBOOK_BYTES {
        return Err(err(format!(
            "the workbook is {}, over the {} a workbook may have (it is read into memory)\n  \
             hint: save the sheet as CSV (UTF-8) and import that: CSV is streamed at any size",
            bytes(size),
            bytes(MAX_WORKBOOK_BYTES)
        )));
    }
    let mut head = [0u8; 8];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(open_err)?;
    let magic = head.get(..n).unwrap_or_default();
    let kind = match Kind::from_name(name) {
        Some(kind) => kind,
        None if magic.starts_with(OLE_MAGIC) => Kind::Xls,
        None => Kind::Xlsx,
    };
    let reader = || File::open(path).map(BufReader::new).map_err(open_err);
    let tmp = tempfile::NamedTempFile::new()
        .map_err(|e| err(format!("cannot write a temporary file: {e}")))?;
    let (file, spool) = tmp.into_parts();
    let mut sink = Sink::new(BufWriter::with_capacity(64 * 1024, file));
    let unreadable =
        |kind: Kind, e: &dyn fmt::Display| err(format!("cannot read as {}: {e}", kind.name()));
    let (kind, sheet) = match kind {
        Kind::Xlsx => match calamine::open_workbook_from_rs::<Xlsx<_>, _>(reader()?) {
            Ok(mut book) => {
                let sheet = pick(name, &book.sheet_names(), sheet, Kind::Xlsx)?;
                let mut cells = book
                    .worksheet_cells_reader(&sheet.name)
                    .map_err(|e| unreadable(Kind::Xlsx, &e))?;
                while let Some(cell) = cells.next_cell().map_err(|e| unreadable(Kind::Xlsx, &e))? {
                    let (row, col) = cell.get_position();
                    sink.cell(row, col, cell.get_value())
                        .map_err(|e| err(e.to_string()))?;
                }
                (Kind::Xlsx, sheet)
            }
            // A zip that is no xlsx: the other zipped formats.
            Err(xlsx) if Kind::from_name(name).is_none() => {
                let sheet = match ranged::<Ods<_>>(name, reader()?, sheet, Kind::Ods, &mut sink) {
                    Ok(sheet) => sheet,
                    Err(_) => ranged::<Xlsb<_>>(name, reader()?, sheet, Kind::Xlsb, &mut sink)
                        .map_err(|_| unreadable(Kind::Xlsx, &xlsx))?,
                };
                (sheet.kind, sheet)
            }
            Err(e) => return Err(unreadable(Kind::Xlsx, &e)),
        },
        Kind::Xlsb => {
            let sheet = ranged::<Xlsb<_>>(name, reader()?, sheet, kind, &mut sink)?;
            (kind, sheet)
        }
        Kind::Xls => {
            let sheet = ranged::<Xls<_>>(name, reader()?, sheet, kind, &mut sink)?;
            (kind, sheet)
        }
        Kind::Ods => {
            let sheet = ranged::<Ods<_>>(name, reader()?, sheet, kind, &mut sink)?;
            (kind, sheet)
        }
    };
    let (header_row, rows) = sink.finish().map_err(|e| err(e.to_string()))?;
    Ok(Converted {
        spool,
        sheet: SheetRead {
            kind,
            header_row,
            ..sheet
        },
        rows,
    })
}

/// Read a whole sheet with a reader that has no streaming form.
fn ranged<R: Reader<BufReader<File>>>(
    name: &str,
    rs: BufReader<File>,
    sheet: Option<&str>,
    kind: Kind,
    sink: &mut Sink<BufWriter<File>>,
) -> Result<SheetRead, ReadError>
where
    R::Error: fmt::Display,
{
    let err = |e: &dyn fmt::Display| ReadError::Other {
        path: name.to_string(),
        message: format!("cannot read as {}: {e}", kind.name()),
    };
    let mut book = R::new(rs).map_err(|e| err(&e))?;
    let picked = pick(name, &book.sheet_names(), sheet, kind)?;
    let range = book.worksheet_range(&picked.name).map_err(|e| err(&e))?;
    let (top, left) = range.start().unwrap_or((0, 0));
    for (i, row) in range.rows().enumerate() {
        for (j, value) in row.iter().enumerate() {
            let (Ok(i), Ok(j)) = (u32::try_from(i), u32::try_from(j)) else {
                continue;
            };
            sink.cell(
                top.saturating_add(i),
                left.saturating_add(j),
                &as_ref(value),
            )
            .map_err(|e| err(&e))?;
        }
    }
    Ok(picked)
}

/// The sheet `--sheet` names among `names` (in workbook order), or the
/// first: a sheet's name, or else its number counting from 1 (a sheet
/// named `2` is found by its name first).
fn pick(
    name: &str,
    names: &[String],
    choice: Option<&str>,
    kind: Kind,
) -> Result<SheetRead, ReadError> {
    let listed = || {
        names
            .iter()
            .take(20)
            .enumerate()
            .map(|(i, n)| format!("{} `{}`", i + 1, crate::model::excerpt(n)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let found = match choice {
        None => (!names.is_empty()).then_some(0),
        Some(wanted) => names
            .iter()
            .position(|n| n == wanted)
            .or_else(|| names.iter().position(|n| n.trim() == wanted.trim()))
            .or_else(|| {
                let n: usize = wanted.trim().parse().ok()?;
                (1..=names.len()).contains(&n).then(|| n - 1)
            }),
    };
    match found.and_then(|i| names.get(i).map(|n| (i, n))) {
        Some((i, sheet)) => Ok(SheetRead {
            kind,
            name: sheet.clone(),
            number: i + 1,
            sheets: names.len(),
            header_row: None,
        }),
        None => Err(ReadError::Other {
            path: name.to_string(),
            message: match choice {
                Some(wanted) => format!(
                    "--sheet {wanted}: no such sheet (the workbook has {}: {})",
                    names.len(),
                    listed()
                ),
                None => "the workbook has no sheets".to_string(),
            },
        }),
    }
}

/// A `Data` cell as the borrowed form the streaming reader yields.
fn as_ref(value: &Data) -> DataRef<'_> {
    match value {
        Data::Int(i) => DataRef::Int(*i),
        Data::Float(f) => DataRef::Float(*f),
        Data::String(s) => DataRef::SharedString(s),
        Data::Bool(b) => DataRef::Bool(*b),
        Data::DateTime(d) => DataRef::DateTime(*d),
        Data::DateTimeIso(s) => DataRef::SharedString(s),
        Data::DurationIso(s) => DataRef::SharedString(s),
        Data::Error(e) => DataRef::Error(e.clone()),
        Data::Empty => DataRef::Empty,
    }
}

/// What a cell holds, as text.
fn text<'a>(value: &'a DataRef<'_>) -> Cow<'a, str> {
    match value {
        DataRef::Empty => Cow::Borrowed(""),
        DataRef::String(s) => Cow::Borrowed(s),
        DataRef::SharedString(s) => Cow::Borrowed(s),
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => Cow::Borrowed(s),
        DataRef::Int(i) => Cow::Owned(i.to_string()),
        DataRef::Float(f) => Cow::Owned(number(*f)),
        DataRef::Bool(b) => Cow::Borrowed(if *b { "TRUE" } else { "FALSE" }),
        DataRef::Error(e) => Cow::Owned(e.to_string()),
        DataRef::DateTime(d) => {
            let shown = if d.is_duration() {
                d.as_duration().map(|t| {
                    let ms = t.num_milliseconds();
                    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
                    format!("{h:02}:{:02}:{:02}", rest / 60_000, (rest % 60_000) / 1000)
                })
            } else {
                d.as_datetime().map(|t| {
                    let time = if t.and_utc().timestamp_subsec_millis() == 0 {
                        "%H:%M:%S"
                    } else {
                        "%H:%M:%S%.3f"
                    };
                    if d.as_f64() < 1.0 {
                        // A time of day with no date: no instant to send.
                        t.format(time).to_string()
                    } else {
                        t.format(&format!("%Y-%m-%dT{time}")).to_string()
                    }
                })
            };
            Cow::Owned(shown.unwrap_or_else(|| number(d.as_f64())))
        }
    }
}

/// A number as a spreadsheet shows it in a general cell: whole numbers
/// without a fraction.
fn number(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// A size as people read it, with the exact count of bytes when rounding
/// would hide it (a workbook one byte over the cap is not "64.0 MiB").
fn bytes(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    match n {
        n if n >= MIB && n % MIB == 0 => format!("{} MiB", n / MIB),
        n if n >= MIB => format!("{:.1} MiB ({n} bytes)", n as f64 / MIB as f64),
        n => format!("{n} bytes"),
    }
}

/// Gathers cells row by row and writes CSV records: the first non-empty
/// row is the header, and its last non-empty cell the last column read.
struct Sink<W: io::Write> {
    out: csv::Writer<W>,
    /// The row being gathered (0-based) and its cells by column.
    row: Option<u32>,
    cells: Vec<(u32, String)>,
    header: Option<(u32, usize)>,
    rows: Vec<u32>,
    record: Vec<String>,
}

impl<W: io::Write> Sink<W> {
    fn new(out: W) -> Self {
        Sink {
            out: csv::WriterBuilder::new().flexible(true).from_writer(out),
            row: None,
            cells: Vec::new(),
            header: None,
            rows: Vec::new(),
            record: Vec::new(),
        }
    }

    fn cell(&mut self, row: u32, col: u32, value: &DataRef<'_>) -> io::Result<()> {
        if self.row != Some(row) {
            if self.row.is_some_and(|r| row < r) {
                return Err(io::Error::other(format!(
                    "the sheet's cells are out of order (row {} after row {})",
                    u64::from(row) + 1,
                    self.row.map_or(0, |r| u64::from(r) + 1)
                )));
            }
            self.flush()?;
            self.row = Some(row);
        }
        let width = self.header.map(|(_, w)| w);
        if width.is_some_and(|w| col as usize >= w) {
            return Ok(());
        }
        let text = text(value);
        if !text.is_empty() {
            self.cells.push((col, text.into_owned()));
        }
        Ok(())
    }

    /// Write the gathered row.
    fn flush(&mut self) -> io::Result<()> {
        let Some(row) = self.row else {
            return Ok(());
        };
        if self.cells.iter().all(|(_, t)| t.trim().is_empty()) {
            self.cells.clear();
            return Ok(());
        }
        let width = match self.header {
            Some((_, width)) => width,
            None => {
                let width = self
                    .cells
                    .iter()
                    .filter(|(_, t)| !t.trim().is_empty())
                    .map(|(c, _)| *c as usize + 1)
                    .max()
                    .unwrap_or(0);
                self.header = Some((row, width));
                width
            }
        };
        self.record.clear();
        self.record.resize(width, String::new());
        for (col, text) in self.cells.drain(..) {
            if let Some(slot) = self.record.get_mut(col as usize) {
                *slot = text;
            }
        }
        self.out
            .write_record(&self.record)
            .map_err(io::Error::other)?;
        if self.header.is_some_and(|(r, _)| r != row) {
            self.rows.push(row.saturating_add(1));
        }
        Ok(())
    }

    /// The header's sheet row (1-based) and each record's.
    fn finish(mut self) -> io::Result<(Option<u32>, Vec<u32>)> {
        self.flush()?;
        let mut out = self.out.into_inner().map_err(|e| e.into_error())?;
        io::Write::flush(&mut out)?;
        Ok((self.header.map(|(r, _)| r.saturating_add(1)), self.rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{ExcelDateTime, ExcelDateTimeType};

    #[test]
    fn sizes_read_as_people_read_them() {
        assert_eq!(bytes(MAX_WORKBOOK_BYTES), "64 MiB");
        assert_eq!(bytes(MAX_WORKBOOK_BYTES + 1), "64.0 MiB (67108865 bytes)");
        assert_eq!(
            bytes(100 * 1024 * 1024 + 512 * 1024),
            "100.5 MiB (105381888 bytes)"
        );
        assert_eq!(bytes(1000), "1000 bytes");
    }

    fn sink(cells: &[(u32, u32, DataRef<'_>)]) -> (String, Option<u32>, Vec<u32>) {
        let mut s = Sink::new(Vec::new());
        for (r, c, v) in cells {
            s.cell(*r, *c, v).unwrap();
        }
        s.flush().unwrap();
        let header = s.header.map(|(r, _)| r + 1);
        let rows = s.rows.clone();
        let out = s.out.into_inner().unwrap();
        (String::from_utf8(out).unwrap(), header, rows)
    }

    #[test]
    fn cells_become_text_as_a_sheet_shows_them() {
        let date = |v| DataRef::DateTime(ExcelDateTime::new(v, ExcelDateTimeType::DateTime, false));
        assert_eq!(text(&DataRef::Float(123.0)), "123");
        assert_eq!(text(&DataRef::Float(-4.0)), "-4");
        assert_eq!(text(&DataRef::Float(1.5)), "1.5");
        assert_eq!(text(&DataRef::Int(7)), "7");
        assert_eq!(text(&DataRef::Bool(true)), "TRUE");
        assert_eq!(text(&date(44523.5)), "2021-11-23T12:00:00");
        assert_eq!(
            text(&date(44523.5 + 1.5 / 86_400.0)),
            "2021-11-23T12:00:01.500"
        );
        assert_eq!(text(&date(0.25)), "06:00:00");
        assert_eq!(text(&DataRef::Error(calamine::CellErrorType::NA)), "#N/A");
    }

    #[test]
    fn rows_keep_their_sheet_numbers() {
        let s = |t: &'static str| DataRef::SharedString(t);
        let (csv, header, rows) = sink(&[
            (1, 0, s("id")),
            (1, 1, s("text")),
            (2, 0, s("A")),
            (2, 1, s("two\nlines")),
            // Row 4 is empty, row 5 has a cell past the header only.
            (4, 5, s("note")),
            (5, 1, s("b")),
        ]);
        assert_eq!(csv, "id,text\nA,\"two\nlines\"\n,b\n");
        assert_eq!(header, Some(2));
        assert_eq!(rows, vec![3, 6]);
    }

    #[test]
    fn sheets_by_name_or_number() {
        let names = vec!["Chats".to_string(), "Notes".to_string(), "3".to_string()];
        let pick = |c: Option<&str>| {
            pick("b.xlsx", &names, c, Kind::Xlsx)
                .map(|s| (s.name, s.number))
                .map_err(|e| e.to_string())
        };
        assert_eq!(pick(None), Ok(("Chats".into(), 1)));
        assert_eq!(pick(Some("Notes")), Ok(("Notes".into(), 2)));
        assert_eq!(pick(Some("2")), Ok(("Notes".into(), 2)));
        assert_eq!(pick(Some("3")), Ok(("3".into(), 3)), "a name wins");
        let e = pick(Some("Other")).unwrap_err();
        assert_eq!(
            e,
            "b.xlsx: --sheet Other: no such sheet (the workbook has 3: 1 `Chats`, 2 `Notes`, 3 `3`)"
        );
        assert!(pick(Some("4")).is_err());
        assert!(pick(Some("0")).is_err());
    }

    #[test]
    fn magic_and_names() {
        assert!(sniff(b"PK\x03\x04rest"));
        assert!(sniff(OLE_MAGIC));
        assert!(!sniff(b"conversation_id"));
        assert_eq!(Kind::from_name("a/B.XLSX"), Some(Kind::Xlsx));
        assert_eq!(Kind::from_name("b.xls.gz"), Some(Kind::Xls));
        assert_eq!(Kind::from_name("b.ods"), Some(Kind::Ods));
        assert_eq!(Kind::from_name("b.csv"), None);
    }
}
