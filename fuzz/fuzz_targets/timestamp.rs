#![no_main]

//! Any string: parsing never panics, and what parses prints as RFC 3339
//! that parses back to the same instant and precision.

use libfuzzer_sys::fuzz_target;
use transcript_import::timestamp;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for tz in [chrono_tz::UTC, chrono_tz::America::New_York, chrono_tz::Asia::Kolkata] {
        if let Ok(t) = timestamp::parse(s, tz) {
            let printed = t.to_rfc3339();
            let back = timestamp::parse(&printed, chrono_tz::UTC).expect("own output parses");
            assert_eq!(back.instant, t.instant, "{s:?} -> {printed}");
        } else {
            let _ = timestamp::parse(s, tz).map_err(|e| e.to_string());
        }
    }
});
