//! Text encodings. Everything after reading works on UTF-8: an input in
//! another encoding is decoded once, whole, into a UTF-8 spool file (as a
//! gzip input is decompressed into one), so record offsets point into the
//! spool and a message read back by offset is the text that was planned.
//!
//! What decides the encoding, first rule first:
//!
//! 1. a byte order mark: UTF-8, UTF-16LE or UTF-16BE, whatever `--encoding`
//!    says (the WHATWG decode algorithm's rule: the mark is the file's own
//!    word);
//! 2. `--encoding NAME`, a WHATWG label (`windows-1252`, `latin1`,
//!    `iso-8859-2`, `utf-16le`, `shift_jis`, ...);
//! 3. UTF-8. A file that looks like UTF-16 without a mark (a NUL byte in
//!    every other position) is refused with a hint: read as UTF-8 it would
//!    be garbage, and which byte order it has is a guess.
//!
//! UTF-8 input is read in place: a byte that is not UTF-8 makes its row
//! invalid (never the file), and the reason names the `--encoding` that
//! would read it ([`not_utf8`]). In a decoded input, a byte sequence that
//! is not valid in its encoding becomes the byte `0xFF` in the spool (never
//! valid UTF-8), so that row is invalid too, never sent with a replacement
//! character in it.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use encoding_rs::{DecoderResult, Encoding, UTF_16BE, UTF_16LE, UTF_8};
use tempfile::TempPath;

use super::ReadError;

/// Why an input is read in the encoding it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Because {
    /// Nothing said otherwise.
    Default,
    /// The file starts with a byte order mark.
    ByteOrderMark,
    /// `--encoding`.
    Flag,
}

/// The encoding an input is read in, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextEncoding {
    pub encoding: &'static Encoding,
    pub because: Because,
    /// Length of the byte order mark at the start of the file (0 without one).
    bom: usize,
}

impl TextEncoding {
    /// Whether the input must be decoded into a UTF-8 spool.
    pub fn decodes(&self) -> bool {
        self.encoding != UTF_8
    }
}

impl fmt::Display for TextEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encoding.name())?;
        match self.because {
            Because::Default => f.write_str(" (the default; --encoding names another)"),
            Because::ByteOrderMark => f.write_str(" (byte order mark)"),
            Because::Flag => f.write_str(" (--encoding)"),
        }
    }
}

/// `--encoding NAME`: a WHATWG label, matched as browsers match them
/// (case-insensitively, surrounding spaces ignored).
pub fn label(value: &str) -> Result<&'static Encoding, String> {
    Encoding::for_label_no_replacement(value.trim().as_bytes()).ok_or_else(|| {
        format!(
            "invalid value for --encoding: `{value}` is not an encoding name \
             (e.g. utf-8, windows-1252, iso-8859-1, iso-8859-2, utf-16le, utf-16be, shift_jis, gbk)"
        )
    })
}

/// Decide how to read a file whose first bytes are `head` (as on disk,
/// byte order mark included).
pub(crate) fn decide(
    name: &str,
    head: &[u8],
    flag: Option<&'static Encoding>,
) -> Result<TextEncoding, ReadError> {
    if let Some((encoding, bom)) = Encoding::for_bom(head) {
        return Ok(TextEncoding {
            encoding,
            because: Because::ByteOrderMark,
            bom,
        });
    }
    if let Some(encoding) = flag {
        return Ok(TextEncoding {
            encoding,
            because: Because::Flag,
            bom: 0,
        });
    }
    if let Some(order) = utf16_without_bom(head) {
        return Err(ReadError::Other {
            path: name.to_string(),
            message: format!(
                "looks like UTF-16 ({} byte order: a NUL in every other byte) without a \
                 byte order mark; read as UTF-8 it would be garbage\n  \
                 hint: name its encoding: --encoding {}",
                if order == UTF_16LE {
                    "little-endian"
                } else {
                    "big-endian"
                },
                order.name().to_ascii_lowercase()
            ),
        });
    }
    Ok(TextEncoding {
        encoding: UTF_8,
        because: Because::Default,
        bom: 0,
    })
}

/// UTF-16 text without a byte order mark: mostly ASCII text has a NUL as
/// the high byte of nearly every code unit, and almost never elsewhere.
fn utf16_without_bom(head: &[u8]) -> Option<&'static Encoding> {
    let pairs = head.len() / 2;
    if pairs < 2 {
        return None;
    }
    let (mut even, mut odd) = (0usize, 0usize);
    for pair in head.chunks_exact(2) {
        if let [a, b] = pair {
            even += usize::from(*a == 0);
            odd += usize::from(*b == 0);
        }
    }
    // At least 40% of the code units look like ASCII, and the other
    // position holds almost no NUL.
    let many = |n: usize| n * 5 >= pairs * 2;
    let few = |n: usize| n * 20 <= pairs;
    if many(odd) && few(even) {
        Some(UTF_16LE)
    } else if many(even) && few(odd) {
        Some(UTF_16BE)
    } else {
        None
    }
}

/// Decode the file at `path` from `text` into a new UTF-8 spool file,
/// without its byte order mark. A sequence that is not valid in the
/// encoding becomes one byte `0xFF`.
pub(crate) fn decode(name: &str, path: &Path, text: TextEncoding) -> Result<TempPath, ReadError> {
    let failed = |what: &str, e: io::Error| ReadError::Other {
        path: name.to_string(),
        message: format!("cannot decode from {}: {what}: {e}", text.encoding.name()),
    };
    let mut input = File::open(path).map_err(|source| ReadError::Open {
        path: name.to_string(),
        source,
    })?;
    let tmp = tempfile::NamedTempFile::new().map_err(|e| failed("temporary file", e))?;
    let (file, spool) = tmp.into_parts();
    let mut out = BufWriter::with_capacity(64 * 1024, file);
    let mut decoder = text.encoding.new_decoder_without_bom_handling();
    let mut buf = vec![0u8; 64 * 1024];
    let mut decoded = vec![0u8; 4 * buf.len() + 16];
    let mut skip = text.bom;
    loop {
        let n = match input.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(failed("read", e)),
        };
        let last = n == 0;
        let mut chunk = buf.get(..n).unwrap_or_default();
        let dropped = skip.min(chunk.len());
        chunk = chunk.get(dropped..).unwrap_or_default();
        skip -= dropped;
        loop {
            let (result, read, written) =
                decoder.decode_to_utf8_without_replacement(chunk, &mut decoded, last);
            out.write_all(decoded.get(..written).unwrap_or_default())
                .map_err(|e| failed("write", e))?;
            chunk = chunk.get(read..).unwrap_or_default();
            match result {
                DecoderResult::InputEmpty => break,
                DecoderResult::OutputFull => {}
                DecoderResult::Malformed(_, _) => {
                    out.write_all(&[MALFORMED])
                        .map_err(|e| failed("write", e))?;
                }
            }
        }
        if last {
            break;
        }
    }
    out.flush().map_err(|e| failed("write", e))?;
    Ok(spool)
}

/// What a byte sequence that is not valid in a decoded input's encoding
/// becomes in its spool.
const MALFORMED: u8 = 0xFF;

/// The problem of a value (a CSV field, or a JSONL line) that is not UTF-8
/// at its byte `at` (0-based): `where_` says what the value is (``column
/// `text` ``, `the line`). In a decoded input, those are the bytes that
/// did not decode; otherwise the reason names the `--encoding` that would
/// read them.
pub(crate) fn not_utf8(
    bytes: &[u8],
    at: usize,
    where_: &str,
    decoded: Option<&'static Encoding>,
) -> String {
    if let Some(encoding) = decoded {
        let valid = bytes.get(..at).unwrap_or_default();
        let character = String::from_utf8_lossy(valid).chars().count() + 1;
        return format!(
            "bytes that are not valid {} at character {character} of {where_}",
            encoding.name()
        );
    }
    let hint = match likely(bytes) {
        Some(name) => {
            format!("the bytes look like {name} (Latin-1): read the file with --encoding {name}")
        }
        None => "if the file is not UTF-8, name its encoding with --encoding \
                 (e.g. windows-1252, iso-8859-2, shift_jis, gbk)"
            .to_string(),
    };
    format!("invalid UTF-8 at byte {} of {where_}; {hint}", at + 1)
}

/// The encoding bytes that are not UTF-8 are likely in, when they say so:
/// Windows-1252 (a superset of Latin-1) when every run of non-ASCII bytes
/// is one or two bytes long (`é`, `ü`, `’`, `ß` in Latin-script text) and
/// each byte is one that Windows-1252 defines. Longer runs are the lead and
/// trail bytes of a multi-byte encoding, which the bytes of one field do
/// not tell apart.
fn likely(bytes: &[u8]) -> Option<&'static str> {
    const UNDEFINED_1252: [u8; 5] = [0x81, 0x8D, 0x8F, 0x90, 0x9D];
    let mut run = 0usize;
    for &b in bytes {
        if b.is_ascii() {
            run = 0;
            continue;
        }
        run += 1;
        if run > 2 || UNDEFINED_1252.contains(&b) {
            return None;
        }
    }
    Some("windows-1252")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(bytes: &[u8], flag: Option<&'static Encoding>) -> Result<Vec<u8>, String> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        let text = decide("in", bytes, flag).map_err(|e| e.to_string())?;
        if !text.decodes() {
            return Ok(bytes.to_vec());
        }
        let spool = decode("in", f.path(), text).map_err(|e| e.to_string())?;
        Ok(std::fs::read(&spool).unwrap())
    }

    fn utf16le(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    fn utf16be(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_be_bytes).collect()
    }

    #[test]
    fn labels_are_whatwg_names() {
        assert_eq!(label("windows-1252").unwrap(), encoding_rs::WINDOWS_1252);
        assert_eq!(label(" Latin1 ").unwrap(), encoding_rs::WINDOWS_1252);
        assert_eq!(label("iso-8859-1").unwrap(), encoding_rs::WINDOWS_1252);
        assert_eq!(label("UTF-16LE").unwrap(), UTF_16LE);
        assert_eq!(label("utf-16").unwrap(), UTF_16LE);
        assert_eq!(label("shift_jis").unwrap(), encoding_rs::SHIFT_JIS);
        let e = label("klingon").unwrap_err();
        assert!(
            e.starts_with("invalid value for --encoding: `klingon`"),
            "{e}"
        );
        assert!(label("replacement").is_err());
    }

    #[test]
    fn a_byte_order_mark_decides_and_is_dropped() {
        let text = "a,b\n\u{e9}t\u{e9},\u{1f600}\r\n";
        let mut le = vec![0xFF, 0xFE];
        le.extend(utf16le(text));
        assert_eq!(decoded(&le, None).unwrap(), text.as_bytes());
        let mut be = vec![0xFE, 0xFF];
        be.extend(utf16be(text));
        assert_eq!(decoded(&be, None).unwrap(), text.as_bytes());
        // The mark wins over the flag.
        assert_eq!(
            decoded(&le, Some(encoding_rs::WINDOWS_1252)).unwrap(),
            text.as_bytes()
        );
        let t = decide("in", &le, None).unwrap();
        assert_eq!(t.to_string(), "UTF-16LE (byte order mark)");
        // A UTF-8 mark: read in place, as before.
        let t = decide("in", b"\xEF\xBB\xBFa", Some(encoding_rs::WINDOWS_1252)).unwrap();
        assert!(!t.decodes());
    }

    #[test]
    fn the_flag_decodes_a_whole_file() {
        let latin = b"caf\xe9 \x93quoted\x94 \x80\n";
        assert_eq!(
            decoded(latin, Some(encoding_rs::WINDOWS_1252)).unwrap(),
            "caf\u{e9} \u{201c}quoted\u{201d} \u{20ac}\n".as_bytes()
        );
        // Without it, the bytes are left for the rows to refuse.
        assert_eq!(decoded(latin, None).unwrap(), latin);
        // Bigger than one buffer, with a character across the boundary.
        let long = "\u{e9}".repeat(50_000);
        let mut le = vec![0xFF, 0xFE];
        le.extend(utf16le(&long));
        assert_eq!(decoded(&le, None).unwrap(), long.as_bytes());
    }

    #[test]
    fn what_does_not_decode_becomes_an_invalid_byte() {
        // An unpaired surrogate, then an odd last byte.
        let mut le = vec![0xFF, 0xFE];
        le.extend(utf16le("a"));
        le.extend([0x00, 0xD8]);
        le.extend(utf16le("b"));
        le.push(b'c');
        let out = decoded(&le, None).unwrap();
        assert_eq!(out, b"a\xFFb\xFF");
    }

    #[test]
    fn utf16_without_a_mark_is_refused_with_a_hint() {
        let e = decoded(&utf16le("conversation_id,text\nA,hi\n"), None).unwrap_err();
        assert!(e.contains("looks like UTF-16 (little-endian"), "{e}");
        assert!(
            e.contains("hint: name its encoding: --encoding utf-16le"),
            "{e}"
        );
        let e = decoded(&utf16be("conversation_id,text\n"), None).unwrap_err();
        assert!(e.contains("--encoding utf-16be"), "{e}");
        // With the flag it is read.
        assert_eq!(
            decoded(&utf16le("a,b\n"), Some(UTF_16LE)).unwrap(),
            b"a,b\n"
        );
        // Text with the odd NUL is not UTF-16.
        assert!(decoded(b"a,b\n\0c,d\n", None).is_ok());
        assert!(decoded(b"", None).is_ok());
        assert!(decoded(b"\0", None).is_ok());
    }

    #[test]
    fn reasons_name_the_likely_encoding() {
        let r = not_utf8(b"caf\xe9", 3, "column `text`", None);
        assert_eq!(
            r,
            "invalid UTF-8 at byte 4 of column `text`; the bytes look like windows-1252 \
             (Latin-1): read the file with --encoding windows-1252"
        );
        let r = not_utf8(b"\x93Hi\x94", 0, "column `text`", None);
        assert!(r.contains("--encoding windows-1252"), "{r}");
        // Runs of high bytes: a multi-byte encoding, not named.
        let r = not_utf8(b"\x82\xb1\x82\xf1\x82\xc9", 0, "the line", None);
        assert!(
            r.starts_with("invalid UTF-8 at byte 1 of the line; if the file"),
            "{r}"
        );
        assert!(r.contains("--encoding"), "{r}");
        // In a decoded input: where the bytes that did not decode are.
        let r = not_utf8(b"\xc3\xa9\xff", 2, "column `text`", Some(UTF_16LE));
        assert_eq!(
            r,
            "bytes that are not valid UTF-16LE at character 2 of column `text`"
        );
    }
}
