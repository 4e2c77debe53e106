//! Shared by the read targets: read every record, validate it, and read it
//! back by offset; the second read must give the same fields.

use transcript_import::model::SourceId;
use transcript_import::read::{self, Format, ReadOptions};
use transcript_import::validate::{self, ValidateOptions};

pub fn check(data: &[u8], format: Format) {
    // The first byte picks a delimiter option, so forced delimiters are covered too.
    let (delimiter, bytes) = match data.split_first() {
        Some((b, rest)) if format == Format::Csv => {
            (match b % 5 {
                0 => Some(b';'),
                1 => Some(b'\t'),
                2 => Some(b'|'),
                3 => Some(b','),
                _ => None,
            }, rest)
        }
        _ => (None, data),
    };
    let opts = ReadOptions {
        format: Some(format),
        delimiter,
        ..ReadOptions::default()
    };
    let Ok(source) = read::open_bytes(SourceId(0), "fuzz", bytes, &opts) else {
        return;
    };
    let Ok(records) = source.records() else {
        return;
    };
    let mut reader = source.reader().expect("reader");
    let vopts = ValidateOptions {
        timezone: chrono_tz::America::New_York,
        ..ValidateOptions::default()
    };
    for rec in records {
        let Ok(rec) = rec else {
            return;
        };
        let again = reader.read_at(&rec.pos).expect("read_at");
        assert_eq!(again.fields, rec.fields, "read_at differs at {:?}", rec.pos);
        if let Ok(fields) = rec.fields {
            let _ = validate::row(rec.pos, fields, &vopts).map_err(|e| e.to_string());
        }
    }
}
