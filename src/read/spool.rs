//! Make every input a plain file that can be read again by byte offset:
//! stdin, pipes, FIFOs, devices and gzip input are copied (decompressed)
//! into a temporary spool file, which lives as long as the `Source` holding
//! it. A regular file is read in place.
//!
//! Gzip is recognised by the `.gz` extension or by its magic bytes
//! (`1f 8b`), so a misnamed or piped gzip file is read too.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use tempfile::TempPath;

use super::{Format, ReadError};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The file to read, and the spool that must outlive it (if any).
pub(crate) struct Prepared {
    pub path: PathBuf,
    pub spool: Option<TempPath>,
    /// The input was a stream (stdin, a pipe, a FIFO, a device), read once.
    pub streamed: bool,
    /// The input was gzip, decompressed into the spool.
    pub gzip: bool,
    /// A regular file read in place: the handle it was opened and judged by.
    pub file: Option<File>,
}

/// Open `input` (a path or `-`) and spool it if it is not a regular file
/// or is gzip.
///
/// Anything that is not a regular file (stdin, a pipe, a FIFO, the
/// `/dev/fd/N` of a shell's process substitution, a character device) can
/// be read only once: it is opened once and copied into the spool, which is
/// then read (and re-read by offset) instead. Opening it a second time
/// would find a pipe drained, or block on a FIFO whose writer is gone.
pub(crate) fn prepare(input: &str) -> Result<Prepared, ReadError> {
    let open_err = |source| ReadError::Open {
        path: input.to_string(),
        source,
    };
    if input == "-" {
        let stdin = io::stdin();
        let lock = stdin.lock();
        return spool(input, lock);
    }
    let path = Path::new(input);
    let mut file = File::open(path).map_err(open_err)?;
    // The opened file's own metadata: what was opened is what is judged.
    let meta = file.metadata().map_err(open_err)?;
    if meta.is_dir() {
        return Err(open_err(io::Error::other("is a directory")));
    }
    if !meta.is_file() {
        return spool(input, file);
    }
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut file, &mut magic).map_err(open_err)?;
    let gz = n == 2 && magic == GZIP_MAGIC;
    if gz || has_gz_extension(input) {
        file.seek(SeekFrom::Start(0)).map_err(open_err)?;
        return spool(input, file).map(|p| Prepared {
            streamed: false,
            ..p
        });
    }
    Ok(Prepared {
        path: path.to_path_buf(),
        spool: None,
        streamed: false,
        gzip: false,
        file: Some(file),
    })
}

/// Copy `reader` into a spool file, decompressing gzip (by magic bytes).
fn spool(name: &str, reader: impl Read) -> Result<Prepared, ReadError> {
    let err = |e: io::Error| ReadError::Other {
        path: name.to_string(),
        message: format!("cannot spool input to a temporary file: {e}"),
    };
    let mut input = BufReader::with_capacity(64 * 1024, reader);
    let head = input.fill_buf().map_err(|source| ReadError::Open {
        path: name.to_string(),
        source,
    })?;
    let gz = head.starts_with(&GZIP_MAGIC);
    if !gz && has_gz_extension(name) && !head.is_empty() {
        return Err(ReadError::Other {
            path: name.to_string(),
            message: "not a gzip file (no gzip header), though named .gz".to_string(),
        });
    }
    let tmp = tempfile::NamedTempFile::new().map_err(err)?;
    let (file, path) = tmp.into_parts();
    let mut out = io::BufWriter::with_capacity(64 * 1024, file);
    let copied = if gz {
        io::copy(&mut MultiGzDecoder::new(input), &mut out)
    } else {
        io::copy(&mut input, &mut out)
    };
    copied.map_err(|e| ReadError::Other {
        path: name.to_string(),
        message: if gz {
            format!("cannot decompress gzip: {e}")
        } else {
            format!("cannot read: {e}")
        },
    })?;
    out.flush().map_err(err)?;
    Ok(Prepared {
        path: path.to_path_buf(),
        spool: Some(path),
        streamed: true,
        gzip: gz,
        file: None,
    })
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(buf.get_mut(n..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn has_gz_extension(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".gz")
}

/// The format named by the extension (`.gz` ignored), if any.
pub(crate) fn format_from_name(name: &str) -> Option<Format> {
    let lower = name.to_ascii_lowercase();
    let base = lower.strip_suffix(".gz").unwrap_or(&lower);
    let ext = Path::new(base).extension()?.to_str()?;
    match ext {
        "csv" | "tsv" | "txt" => Some(Format::Csv),
        "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
        _ if super::workbook::Kind::from_name(base).is_some() => Some(Format::Excel),
        _ => None,
    }
}

/// The first bytes of a file (BOM stripped), for sniffing the format and
/// the CSV delimiter.
pub(crate) fn head(path: &Path, max: usize) -> io::Result<Vec<u8>> {
    let mut buf = raw_head(path, max)?;
    if buf.starts_with(super::BOM) {
        buf.drain(..super::BOM.len());
    }
    Ok(buf)
}

/// The first bytes of a file, as they are.
pub(crate) fn raw_head(path: &Path, max: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; max];
    let n = read_up_to(&mut File::open(path)?, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// `{` as the first non-space byte means JSONL, anything else CSV.
pub(crate) fn sniff_format(head: &[u8]) -> Format {
    match head.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Format::Jsonl,
        _ => Format::Csv,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_by_extension() {
        assert_eq!(format_from_name("a/b.csv"), Some(Format::Csv));
        assert_eq!(format_from_name("b.CSV.GZ"), Some(Format::Csv));
        assert_eq!(format_from_name("b.tsv"), Some(Format::Csv));
        assert_eq!(format_from_name("b.jsonl"), Some(Format::Jsonl));
        assert_eq!(format_from_name("b.ndjson.gz"), Some(Format::Jsonl));
        assert_eq!(format_from_name("b.jsonl.gz"), Some(Format::Jsonl));
        assert_eq!(format_from_name("-"), None);
        assert_eq!(format_from_name("b.gz"), None);
        assert_eq!(format_from_name("b.dat"), None);
        assert_eq!(format_from_name("b.xlsx"), Some(Format::Excel));
        assert_eq!(format_from_name("b.ODS"), Some(Format::Excel));
        assert_eq!(format_from_name("b.xls.gz"), Some(Format::Excel));
    }

    #[test]
    fn sniffing_looks_at_the_first_non_space_byte() {
        assert_eq!(sniff_format(b"  \n{\"a\":1}"), Format::Jsonl);
        assert_eq!(sniff_format(b"conversation_id,text"), Format::Csv);
        assert_eq!(sniff_format(b""), Format::Csv);
    }
}

#[cfg(test)]
mod spool_tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_stream_is_spooled_and_gzip_is_decompressed() {
        let plain = b"conversation_id,text\nA,hi\n";
        let p = spool("-", &plain[..]).unwrap();
        assert_eq!(std::fs::read(&p.path).unwrap(), plain);
        assert!(p.spool.is_some());

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(plain).unwrap();
        let gz = gz.finish().unwrap();
        let p = spool("-", &gz[..]).unwrap();
        assert_eq!(std::fs::read(&p.path).unwrap(), plain);
        let path = p.path.clone();
        drop(p);
        assert!(!path.exists());

        let p = spool("-", &b""[..]).unwrap();
        assert_eq!(std::fs::read(&p.path).unwrap(), b"");
    }
}
