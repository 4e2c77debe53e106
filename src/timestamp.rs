//! Timestamp parsing: every form the input may use, to one `Timestamp`
//! (an instant plus the fractional precision the input gave).
//!
//! Accepted (after trimming surrounding whitespace):
//!
//! - RFC 3339 / ISO 8601: `YYYY-MM-DDTHH:MM:SS[.fraction][zone]`, with `T`,
//!   `t` or one space between date and time; seconds may be omitted
//!   (`HH:MM`); the fraction has 1 to 9 digits after `.` or `,`.
//! - zone: `Z`/`z`, or an offset `+HH:MM`, `+HHMM`, `+HH` (or `-`), optionally
//!   after one space. Without a zone the time is local time in the given
//!   IANA zone (default UTC). A local time that does not exist (DST gap) or
//!   is ambiguous (DST overlap) there is an error, never a guess.
//! - epoch: digits only, optionally with a fraction (`1637669594.555`).
//!   Values below 100 000 000 000 are seconds (that covers every date up to
//!   the year 5138), larger ones milliseconds (which covers every date from
//!   1973-03-03 on). Epoch milliseconds keep 3 fractional digits.
//! - `--timestamp-format FMT` (chrono's strftime syntax, repeatable):
//!   tried first, in order; the first that parses the whole value wins,
//!   then the forms above. A result without an offset is local time in the
//!   zone, as above.
//!
//! Local date forms (`11/23/2021 12:13 PM`, `23.11.2021 13:06`) are never
//! guessed: whether `03/04` is March or April is the exporter's setting,
//! not the value's. Without a format they are refused, and the reason
//! shows the `--timestamp-format` that reads them (both orders when the
//! value cannot tell).

use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{
    DateTime, Datelike, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;

use crate::model::{excerpt, Field, Invalid, Timestamp};

/// Epoch values below this are seconds; from here on, milliseconds.
pub const EPOCH_MILLIS_FROM: u64 = 100_000_000_000;

/// Parse one timestamp. Zone-less times are taken in `tz`.
pub fn parse(value: &str, tz: Tz) -> Result<Timestamp, Invalid> {
    parse_detailed(value, tz).map(|(t, _)| t)
}

/// A `--timestamp-format`: chrono's strftime syntax, checked when the flag
/// is read: it must be valid and give a whole date and time.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    text: String,
    items: Vec<Item<'static>>,
}

impl Pattern {
    /// The format as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Parse `s` (trimmed) with this format: `None` when it does not match
    /// the whole value, an error when it matches a time that cannot be sent.
    fn parse(&self, s: &str, tz: Tz) -> Option<Result<(Timestamp, bool), Invalid>> {
        let mut parsed = Parsed::new();
        chrono::format::parse(&mut parsed, s, self.items.iter()).ok()?;
        let zoned = parsed.offset().is_some() || parsed.timestamp().is_some();
        let result = if parsed.offset().is_some() {
            parsed
                .to_datetime()
                .ok()
                .map(|t| (t.with_timezone(&Utc), true))
        } else {
            parsed
                .to_naive_datetime_with_offset(0)
                .ok()
                .map(|t| (t.and_utc(), zoned))
        };
        let (at, zoned) = result?;
        let digits = match at.nanosecond() {
            0 => 0,
            n if n % 1_000_000 == 0 => 3,
            n if n % 1_000 == 0 => 6,
            _ => 9,
        };
        if zoned {
            return Some(Ok((Timestamp::new(at, digits), true)));
        }
        Some(local(at.naive_utc(), digits, tz).map(|t| (t, false)))
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Pattern {
    type Err = String;

    /// A format that chrono does not know, or that does not give a whole
    /// date and time (it must read back what it writes), is refused.
    fn from_str(text: &str) -> Result<Pattern, String> {
        let items = StrftimeItems::new(text)
            .parse_to_owned()
            .map_err(|_| format!("`{text}` is not a valid chrono strftime format"))?;
        let pattern = Pattern {
            text: text.to_string(),
            items,
        };
        // 2021-11-23 13:06:07.123 at +01:00: a day above 12, an hour past noon.
        let sample = FixedOffset::east_opt(3600)
            .and_then(|o| o.with_ymd_and_hms(2021, 11, 23, 13, 6, 7).single())
            .map(|t| t + chrono::Duration::milliseconds(123));
        let mut shown = String::new();
        let written = sample.is_some_and(|t| {
            std::fmt::Write::write_fmt(
                &mut shown,
                format_args!("{}", t.format_with_items(pattern.items.iter())),
            )
            .is_ok()
        });
        let reads_back = written
            && pattern
                .parse(shown.trim(), chrono_tz::UTC)
                .is_some_and(|r| r.is_ok());
        if !reads_back {
            return Err(format!(
                "`{text}` does not give a whole date and time (it needs a year, month, day, \
                 hour and minute, e.g. %d.%m.%Y %H:%M or %m/%d/%Y %I:%M %p)"
            ));
        }
        Ok(pattern)
    }
}

/// Parse one timestamp with the `--timestamp-format`s first, in order,
/// then the built-in forms.
pub fn parse_with(value: &str, formats: &[Pattern], tz: Tz) -> Result<Timestamp, Invalid> {
    if formats.is_empty() {
        return parse(value, tz);
    }
    let s = value.trim();
    for pattern in formats {
        if let Some(parsed) = pattern.parse(s, tz) {
            return in_range(parsed, s).map(|(t, _)| t);
        }
    }
    parse(value, tz).map_err(|e| {
        if e.problem.starts_with("not a date-time") {
            let names: Vec<String> = formats.iter().map(|f| format!("'{f}'")).collect();
            invalid(
                format!(
                    "not a date-time: matches no --timestamp-format ({}) and no built-in form",
                    names.join(", ")
                ),
                Some(s),
            )
        } else {
            e
        }
    })
}

/// The reason of a value the built-in forms do not read: for a local date
/// form, the `--timestamp-format`s that read it.
fn unread(s: &str) -> Invalid {
    match local_form(s) {
        Some(Local { formats, order }) => {
            let shown: Vec<String> = formats
                .iter()
                .map(|(f, which)| format!("--timestamp-format '{f}' ({which})"))
                .collect();
            let what = match order {
                Order::Ambiguous => "a local date form; its day and month order is not guessed",
                Order::Known => "a local date form, never guessed",
            };
            invalid(
                format!("{what}: name it with {}", shown.join(" or ")),
                Some(s),
            )
        }
        None if s.bytes().any(|b| b.is_ascii_digit()) && s.contains(':') => invalid(
            "not a date-time (expected e.g. 2021-11-23T12:13:14Z; \
             name other forms with --timestamp-format)",
            Some(s),
        ),
        None => invalid(
            "not a date-time (expected e.g. 2021-11-23T12:13:14Z)",
            Some(s),
        ),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Order {
    /// The value says which is the day (a part above 12), or the year comes first.
    Known,
    /// Both orders read it.
    Ambiguous,
}

#[derive(Debug, PartialEq, Eq)]
struct Local {
    formats: Vec<(String, &'static str)>,
    order: Order,
}

/// A date written `D/M/Y`, `M/D/Y` or `Y/M/D` (with `/`, `.` or `-`),
/// then a time `H:MM[:SS[.fff]]` with an optional AM/PM: the formats that
/// read it.
fn local_form(s: &str) -> Option<Local> {
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize, max: usize| -> Option<(u32, usize)> {
        let start = *i;
        while *i < b.len() && b.get(*i).is_some_and(u8::is_ascii_digit) && *i - start < max {
            *i += 1;
        }
        let n = *i - start;
        (n > 0).then(|| s.get(start..*i)?.parse().ok().map(|v| (v, n)))?
    };
    let (a, a_len) = digits(&mut i, 4)?;
    let sep = *b.get(i).filter(|c| matches!(c, b'/' | b'.' | b'-'))?;
    i += 1;
    let (m, m_len) = digits(&mut i, 2)?;
    if b.get(i) != Some(&sep) {
        return None;
    }
    i += 1;
    let (c, c_len) = digits(&mut i, 4)?;
    let sep = sep as char;
    // Between date and time: spaces, `T`, or `, `.
    let before_time = i;
    while matches!(b.get(i), Some(b' ' | b',')) || (i == before_time && b.get(i) == Some(&b'T')) {
        i += 1;
    }
    let gap = s.get(before_time..i)?;
    if gap.is_empty() {
        return None;
    }
    let (hour, _) = digits(&mut i, 2)?;
    if b.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    let (_, 2) = digits(&mut i, 2)? else {
        return None;
    };
    let mut time = String::from(":%M");
    if b.get(i) == Some(&b':') {
        i += 1;
        let (_, 2) = digits(&mut i, 2)? else {
            return None;
        };
        time.push_str(":%S");
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i, 9)?;
            time.push_str("%.f");
        }
    }
    let space = if b.get(i) == Some(&b' ') { " " } else { "" };
    i += space.len();
    let rest = s.get(i..)?;
    let twelve = match rest.to_ascii_lowercase().as_str() {
        "" if space.is_empty() => false,
        "am" | "pm" => true,
        _ => return None,
    };
    let time = if twelve {
        if !(1..=12).contains(&hour) {
            return None;
        }
        format!("%I{time}{space}%p")
    } else {
        format!("%H{time}")
    };
    let year = |len: usize| if len == 4 { "%Y" } else { "%y" };
    let gap = if gap == "T" {
        "T".to_string()
    } else {
        gap.to_string()
    };
    let date = |first: &str, second: &str, third: &str| {
        format!("{first}{sep}{second}{sep}{third}{gap}{time}")
    };
    if a_len == 4 {
        // Year first: year, month, day is the one order in use.
        if m_len > 2 || c_len > 2 || m > 12 || c > 31 {
            return None;
        }
        return Some(Local {
            formats: vec![(date("%Y", "%m", "%d"), "year first")],
            order: Order::Known,
        });
    }
    if a_len > 2 || !(c_len == 2 || c_len == 4) || a == 0 || m == 0 {
        return None;
    }
    let day_first = (date("%d", "%m", year(c_len)), "day first");
    let month_first = (date("%m", "%d", year(c_len)), "month first");
    match (a > 12, m > 12) {
        (true, true) => None,
        (true, false) if a <= 31 => Some(Local {
            formats: vec![day_first],
            order: Order::Known,
        }),
        (false, true) if m <= 31 => Some(Local {
            formats: vec![month_first],
            order: Order::Known,
        }),
        (false, false) => Some(Local {
            formats: vec![month_first, day_first],
            order: Order::Ambiguous,
        }),
        _ => None,
    }
}

/// Like `parse`, and also says whether the input carried its own zone
/// (an offset, `Z`, or an epoch value).
pub fn parse_detailed(value: &str, tz: Tz) -> Result<(Timestamp, bool), Invalid> {
    let s = crate::validate::trim(value);
    if s.is_empty() {
        return Err(invalid("empty", None));
    }
    let bytes = s.as_bytes();
    let parsed = if bytes.iter().all(|b| b.is_ascii_digit() || *b == b'.') {
        parse_epoch(s).map(|t| (t, true))
    } else {
        parse_datetime(s, tz).map_err(|e| {
            if e.problem.starts_with("not a date-time (expected") {
                unread(s)
            } else {
                e
            }
        })
    };
    in_range(parsed, s)
}

/// RFC 3339 has four-digit years; anything outside cannot be sent.
fn in_range(
    parsed: Result<(Timestamp, bool), Invalid>,
    s: &str,
) -> Result<(Timestamp, bool), Invalid> {
    let parsed = parsed?;
    if !(1..=9999).contains(&parsed.0.instant.year()) {
        return Err(invalid("out of range (years 0001 to 9999 in UTC)", Some(s)));
    }
    Ok(parsed)
}

fn invalid(problem: impl Into<String>, value: Option<&str>) -> Invalid {
    Invalid {
        field: Some(Field::Timestamp),
        problem: problem.into(),
        excerpt: value.map(excerpt),
    }
}

fn parse_epoch(s: &str) -> Result<Timestamp, Invalid> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    if int.is_empty() || frac.is_some_and(|f| f.is_empty() || f.contains('.')) {
        return Err(invalid("not a date-time or epoch number", Some(s)));
    }
    let int_value: u64 = int
        .parse()
        .map_err(|_| invalid("epoch value out of range", Some(s)))?;
    let frac = frac.unwrap_or("");
    let millis = int_value >= EPOCH_MILLIS_FROM;
    // Fraction digits of a second in the result.
    let digits = if millis { 3 + frac.len() } else { frac.len() };
    if digits > 9 {
        return Err(invalid(
            "more than 9 fractional digits of a second",
            Some(s),
        ));
    }
    let frac_value: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse()
            .map_err(|_| invalid("not a date-time or epoch number", Some(s)))?
    };
    let scale = 10u64.pow(9 - digits as u32);
    let (secs, nanos) = if millis {
        let secs = int_value / 1000;
        let ms = int_value % 1000;
        (secs, ms * 1_000_000 + frac_value * scale)
    } else {
        (int_value, frac_value * scale)
    };
    let secs = i64::try_from(secs).map_err(|_| invalid("epoch value out of range", Some(s)))?;
    let nanos = u32::try_from(nanos).map_err(|_| invalid("epoch value out of range", Some(s)))?;
    let instant = DateTime::<Utc>::from_timestamp(secs, nanos)
        .ok_or_else(|| invalid("epoch value out of range", Some(s)))?;
    Ok(Timestamp::new(instant, digits as u8))
}

/// A tiny cursor over ASCII bytes.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Exactly `n` ASCII digits.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let d = self.peek().filter(u8::is_ascii_digit)?;
            v = v * 10 + u32::from(d - b'0');
            self.i += 1;
        }
        Some(v)
    }

    fn at_end(&self) -> bool {
        self.i >= self.b.len()
    }
}

fn parse_datetime(s: &str, tz: Tz) -> Result<(Timestamp, bool), Invalid> {
    let bad = || {
        invalid(
            "not a date-time (expected e.g. 2021-11-23T12:13:14Z)",
            Some(s),
        )
    };
    let mut c = Cursor {
        b: s.as_bytes(),
        i: 0,
    };
    let year = c.digits(4).ok_or_else(bad)?;
    if !c.eat(b'-') {
        return Err(bad());
    }
    let month = c.digits(2).ok_or_else(bad)?;
    if !c.eat(b'-') {
        return Err(bad());
    }
    let day = c.digits(2).ok_or_else(bad)?;
    if !(c.eat(b'T') || c.eat(b't') || c.eat(b' ')) {
        return Err(invalid(
            "not a date-time (a date needs a time: e.g. 2021-11-23T12:13:14Z)",
            Some(s),
        ));
    }
    let hour = c.digits(2).ok_or_else(bad)?;
    if !c.eat(b':') {
        return Err(bad());
    }
    let minute = c.digits(2).ok_or_else(bad)?;
    let mut second = 0;
    let mut nanos = 0u32;
    let mut digits = 0u8;
    if c.eat(b':') {
        second = c.digits(2).ok_or_else(bad)?;
        if c.eat(b'.') || c.eat(b',') {
            let start = c.i;
            while c.peek().is_some_and(|b| b.is_ascii_digit()) {
                c.i += 1;
            }
            let n = c.i - start;
            if n == 0 {
                return Err(bad());
            }
            if n > 9 {
                return Err(invalid(
                    "more than 9 fractional digits of a second",
                    Some(s),
                ));
            }
            let frac = s.get(start..c.i).ok_or_else(bad)?;
            let v: u32 = frac.parse().map_err(|_| bad())?;
            nanos = v * 10u32.pow(9 - n as u32);
            digits = n as u8;
        }
    }
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)
        .ok_or_else(|| invalid("no such date", Some(s)))?;
    if second == 60 && hour < 24 && minute < 60 {
        // RFC 3339 allows it; UTC instants as the API and chrono count them
        // have no 61st second to send.
        return Err(invalid("a leap second (:60) cannot be sent", Some(s)));
    }
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)
        .filter(|_| second < 60)
        .ok_or_else(|| invalid("no such time of day", Some(s)))?;
    let naive = NaiveDateTime::new(date, time);

    // Zone.
    let had_space = c.eat(b' ');
    if c.at_end() {
        if had_space {
            return Err(bad());
        }
        return local(naive, digits, tz).map(|t| (t, false));
    }
    let offset_secs: i32 = match c.peek() {
        Some(b'Z' | b'z') => {
            c.i += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            c.i += 1;
            let h = c.digits(2).ok_or_else(bad)?;
            let m = if c.eat(b':') {
                c.digits(2).ok_or_else(bad)?
            } else if c.at_end() {
                0
            } else {
                c.digits(2).ok_or_else(bad)?
            };
            if h > 23 || m > 59 {
                return Err(invalid("offset out of range", Some(s)));
            }
            let v = (h * 3600 + m * 60) as i32;
            if sign == b'-' {
                -v
            } else {
                v
            }
        }
        _ => return Err(bad()),
    };
    if !c.at_end() {
        return Err(bad());
    }
    let utc = naive
        .checked_sub_signed(chrono::Duration::seconds(i64::from(offset_secs)))
        .ok_or_else(|| invalid("out of range (years 0001 to 9999 in UTC)", Some(s)))?;
    Ok((Timestamp::new(utc.and_utc(), digits), true))
}

fn local(naive: NaiveDateTime, digits: u8, tz: Tz) -> Result<Timestamp, Invalid> {
    let shown = naive.format("%Y-%m-%d %H:%M:%S");
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Ok(Timestamp::new(t.with_timezone(&Utc), digits)),
        LocalResult::None => Err(invalid(
            format!("{shown} does not exist in {} (DST gap)", tz.name()),
            None,
        )),
        LocalResult::Ambiguous(_, _) => Err(invalid(
            format!(
                "{shown} is ambiguous in {} (DST overlap; give an offset)",
                tz.name()
            ),
            None,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(s: &str) -> Timestamp {
        parse(s, chrono_tz::UTC).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn err(s: &str, tz: Tz) -> String {
        parse(s, tz).unwrap_err().to_string()
    }

    #[test]
    fn rfc3339_z_with_and_without_fraction() {
        let t = utc("2021-11-23T12:13:14Z");
        assert_eq!((t.instant, t.digits), (at(2021, 11, 23, 12, 13, 14), 0));
        let t = utc("2021-11-23T12:13:14.555Z");
        assert_eq!(
            t.instant,
            at(2021, 11, 23, 12, 13, 14) + chrono::Duration::milliseconds(555)
        );
        assert_eq!(t.digits, 3);
        assert_eq!(t.to_rfc3339(), "2021-11-23T12:13:14.555Z");
        assert_eq!(
            utc("2021-11-23t12:13:14z").instant,
            at(2021, 11, 23, 12, 13, 14)
        );
    }

    #[test]
    fn precision_digits_are_kept() {
        assert_eq!(utc("2021-11-23T12:13:14.5Z").digits, 1);
        assert_eq!(
            utc("2021-11-23T12:13:14.5Z").to_rfc3339(),
            "2021-11-23T12:13:14.500Z"
        );
        let t = utc("2021-11-23T12:13:14.123456Z");
        assert_eq!(
            (t.digits, t.to_rfc3339().as_str()),
            (6, "2021-11-23T12:13:14.123456Z")
        );
        let t = utc("2021-11-23T12:13:14.123456789Z");
        assert_eq!(t.digits, 9);
        assert_eq!(t.instant.timestamp_subsec_nanos(), 123_456_789);
        assert_eq!(utc("2021-11-23T12:13:14,25Z").digits, 2);
        assert_eq!(
            err("2021-11-23T12:13:14.1234567891Z", chrono_tz::UTC),
            "timestamp: more than 9 fractional digits of a second: \"2021-11-23T12:13:14.1234567891Z\""
        );
    }

    #[test]
    fn offsets_in_every_form() {
        let want = at(2021, 11, 23, 10, 13, 14);
        for s in [
            "2021-11-23T12:13:14+02:00",
            "2021-11-23T12:13:14+0200",
            "2021-11-23T12:13:14+02",
            "2021-11-23 12:13:14 +02:00",
            "2021-11-23T08:13:14-02:00",
            "2021-11-23T10:13:14+00:00",
            "2021-11-23T10:13:14+0000",
            "2021-11-23T10:13:14+00",
            "2021-11-23T10:13:14-00:00",
            "  2021-11-23T10:13:14Z  ",
        ] {
            assert_eq!(utc(s).instant, want, "{s}");
        }
        assert_eq!(
            utc("2021-11-23T12:13:14.25+05:30").instant,
            at(2021, 11, 23, 6, 43, 14) + chrono::Duration::milliseconds(250)
        );
    }

    #[test]
    fn zoneless_with_t_or_space_is_utc_by_default() {
        assert_eq!(
            utc("2021-11-23T12:13:14").instant,
            at(2021, 11, 23, 12, 13, 14)
        );
        assert_eq!(
            utc("2021-11-23 12:13:14").instant,
            at(2021, 11, 23, 12, 13, 14)
        );
        assert_eq!(utc("2021-11-23 12:13").instant, at(2021, 11, 23, 12, 13, 0));
        let (_, zoned) = parse_detailed("2021-11-23 12:13:14", chrono_tz::UTC).unwrap();
        assert!(!zoned);
        let (_, zoned) = parse_detailed("2021-11-23 12:13:14Z", chrono_tz::UTC).unwrap();
        assert!(zoned);
    }

    #[test]
    fn zoneless_in_a_named_zone_follows_dst() {
        let ny = chrono_tz::America::New_York;
        // EST (UTC-5) in winter, EDT (UTC-4) in summer.
        assert_eq!(
            parse("2021-01-15 12:00:00", ny).unwrap().instant,
            at(2021, 1, 15, 17, 0, 0)
        );
        assert_eq!(
            parse("2021-07-15T12:00:00", ny).unwrap().instant,
            at(2021, 7, 15, 16, 0, 0)
        );
        // An explicit offset wins over the zone.
        assert_eq!(
            parse("2021-07-15T12:00:00Z", ny).unwrap().instant,
            at(2021, 7, 15, 12, 0, 0)
        );
    }

    #[test]
    fn dst_gap_and_overlap_are_errors() {
        let ny = chrono_tz::America::New_York;
        assert_eq!(
            err("2021-03-14 02:30:00", ny),
            "timestamp: 2021-03-14 02:30:00 does not exist in America/New_York (DST gap)"
        );
        assert_eq!(
            err("2021-11-07T01:30:00", ny),
            "timestamp: 2021-11-07 01:30:00 is ambiguous in America/New_York (DST overlap; give an offset)"
        );
        // Either side of the gap is fine.
        assert_eq!(
            parse("2021-03-14 01:59:59", ny).unwrap().instant,
            at(2021, 3, 14, 6, 59, 59)
        );
        assert_eq!(
            parse("2021-03-14 03:00:00", ny).unwrap().instant,
            at(2021, 3, 14, 7, 0, 0)
        );
        // With an offset an overlap time is exact.
        assert_eq!(
            parse("2021-11-07T01:30:00-05:00", ny).unwrap().instant,
            at(2021, 11, 7, 6, 30, 0)
        );
    }

    #[test]
    fn epoch_seconds_and_millis_by_magnitude() {
        let t = utc("1637669594");
        assert_eq!((t.instant, t.digits), (at(2021, 11, 23, 12, 13, 14), 0));
        let t = utc("1637669594555");
        assert_eq!(
            t.instant,
            at(2021, 11, 23, 12, 13, 14) + chrono::Duration::milliseconds(555)
        );
        assert_eq!(t.digits, 3);
        assert_eq!(t.to_rfc3339(), "2021-11-23T12:13:14.555Z");
        let t = utc("1637669594.555");
        assert_eq!(
            t.instant,
            at(2021, 11, 23, 12, 13, 14) + chrono::Duration::milliseconds(555)
        );
        assert_eq!(t.digits, 3);
        let t = utc("1637669594.5");
        assert_eq!(t.digits, 1);
        // The boundary: 99 999 999 999 is seconds (year 5138), 100 000 000 000 ms (1973).
        assert_eq!(utc("99999999999").instant.timestamp(), 99_999_999_999);
        assert_eq!(utc("100000000000").instant.timestamp(), 100_000_000);
        assert_eq!(utc("0").instant.timestamp(), 0);
        // Epoch values carry their zone: --timezone does not apply.
        let ny = chrono_tz::America::New_York;
        assert_eq!(
            parse("1637669594", ny).unwrap().instant,
            at(2021, 11, 23, 12, 13, 14)
        );
    }

    #[test]
    fn bad_forms_say_what_is_wrong() {
        let u = chrono_tz::UTC;
        assert_eq!(err("", u), "timestamp: empty");
        assert_eq!(err("   ", u), "timestamp: empty");
        assert_eq!(
            err("yesterday", u),
            "timestamp: not a date-time (expected e.g. 2021-11-23T12:13:14Z): \"yesterday\""
        );
        assert_eq!(
            err("2021-02-30T00:00:00Z", u),
            "timestamp: no such date: \"2021-02-30T00:00:00Z\""
        );
        assert_eq!(
            err("2021-02-03T24:00:00Z", u),
            "timestamp: no such time of day: \"2021-02-03T24:00:00Z\""
        );
        assert_eq!(
            err("2021-02-03T23:59:60Z", u),
            "timestamp: a leap second (:60) cannot be sent: \"2021-02-03T23:59:60Z\""
        );
        assert_eq!(
            err("2021-02-03T10:00:00+25:00", u),
            "timestamp: offset out of range: \"2021-02-03T10:00:00+25:00\""
        );
        assert!(err("2021-02-03", u).contains("a date needs a time"));
        assert!(parse("2021-02-03T10:00:00 ", u).is_ok());
        assert!(parse("2021-02-03T10:00:00X", u).is_err());
        assert!(parse("2021-02-03T10:00:00+", u).is_err());
        assert!(parse("2021-02-03T10:00:00.Z", u).is_err());
        assert!(parse("1.2.3", u).is_err());
        assert!(parse(".5", u).is_err());
        assert!(parse("5.", u).is_err());
        assert_eq!(
            err("99999999999999999999999", u),
            "timestamp: epoch value out of range: \"99999999999999999999999\""
        );
        assert!(parse("99999999999999999", u).is_err());
        assert_eq!(
            err("253402300800000", u),
            "timestamp: out of range (years 0001 to 9999 in UTC): \"253402300800000\""
        );
        assert!(parse("253402300799999", u).is_ok());
        assert!(parse("0001-01-01T00:00:00+01:00", u).is_err());
        assert!(parse("9999-12-31T23:59:59-01:00", u).is_err());
        assert!(parse("2021-１1-23T12:13:14Z", u).is_err());
    }

    fn pattern(f: &str) -> Pattern {
        f.parse().unwrap_or_else(|e| panic!("{f}: {e}"))
    }

    #[test]
    fn formats_are_tried_in_order_then_the_built_in_forms() {
        let us = [pattern("%m/%d/%Y %I:%M %p")];
        let u = chrono_tz::UTC;
        let t = parse_with("11/23/2021 12:13 PM", &us, u).unwrap();
        assert_eq!((t.instant, t.digits), (at(2021, 11, 23, 12, 13, 0), 0));
        assert_eq!(
            parse_with(" 3/4/2021 1:05 am ", &us, u).unwrap().instant,
            at(2021, 3, 4, 1, 5, 0)
        );
        // The built-in forms still read.
        assert_eq!(
            parse_with("2021-11-23T12:13:14Z", &us, u).unwrap().instant,
            at(2021, 11, 23, 12, 13, 14)
        );
        let de = [pattern("%d.%m.%Y %H:%M"), pattern("%d.%m.%Y %H:%M:%S%.f")];
        assert_eq!(
            parse_with("23.11.2021 13:06", &de, u).unwrap().instant,
            at(2021, 11, 23, 13, 6, 0)
        );
        let t = parse_with("23.11.2021 13:06:07.250", &de, u).unwrap();
        assert_eq!(
            (t.instant, t.digits),
            (
                at(2021, 11, 23, 13, 6, 7) + chrono::Duration::milliseconds(250),
                3
            )
        );
        // Zone-less results are in the zone, with its DST rules.
        let ny = chrono_tz::America::New_York;
        assert_eq!(
            parse_with("23.11.2021 13:06", &de, ny).unwrap().instant,
            at(2021, 11, 23, 18, 6, 0)
        );
        assert_eq!(
            parse_with("14.03.2021 02:30", &de, ny)
                .unwrap_err()
                .to_string(),
            "timestamp: 2021-03-14 02:30:00 does not exist in America/New_York (DST gap)"
        );
        // An offset in the format wins over the zone.
        let zoned = [pattern("%d/%m/%Y %H:%M %z")];
        assert_eq!(
            parse_with("23/11/2021 13:06 +0100", &zoned, ny)
                .unwrap()
                .instant,
            at(2021, 11, 23, 12, 6, 0)
        );
        assert_eq!(
            parse_with("23/11/2021 13:06 extra", &us, u)
                .unwrap_err()
                .to_string(),
            "timestamp: not a date-time: matches no --timestamp-format ('%m/%d/%Y %I:%M %p') \
             and no built-in form: \"23/11/2021 13:06 extra\""
        );
        assert_eq!(
            parse_with("2021-02-30T00:00:00Z", &us, u)
                .unwrap_err()
                .to_string(),
            "timestamp: no such date: \"2021-02-30T00:00:00Z\""
        );
        assert_eq!(
            parse_with("  ", &us, u).unwrap_err().to_string(),
            "timestamp: empty"
        );
    }

    #[test]
    fn local_dates_are_never_guessed_and_the_reason_shows_the_format() {
        let u = chrono_tz::UTC;
        assert_eq!(
            err("11/23/2021 12:13 PM", u),
            "timestamp: a local date form, never guessed: name it with \
             --timestamp-format '%m/%d/%Y %I:%M %p' (month first): \"11/23/2021 12:13 PM\""
        );
        assert_eq!(
            err("23.11.2021 13:06", u),
            "timestamp: a local date form, never guessed: name it with \
             --timestamp-format '%d.%m.%Y %H:%M' (day first): \"23.11.2021 13:06\""
        );
        assert_eq!(
            err("03/04/21 09:15:02", u),
            "timestamp: a local date form; its day and month order is not guessed: name it with \
             --timestamp-format '%m/%d/%y %H:%M:%S' (month first) or \
             --timestamp-format '%d/%m/%y %H:%M:%S' (day first): \"03/04/21 09:15:02\""
        );
        assert!(err("2021/11/23 13:06", u).contains("'%Y/%m/%d %H:%M' (year first)"));
        assert!(err("23-11-2021, 13:06:07.5", u).contains("'%d-%m-%Y, %H:%M:%S%.f'"));
        // Every format a hint shows reads the value it was shown for.
        for v in [
            "11/23/2021 12:13 PM",
            "23.11.2021 13:06",
            "03/04/21 09:15:02",
            "2021/11/23 13:06",
            "23-11-2021, 13:06:07.5",
            "1/2/2021 1:02am",
        ] {
            let reason = err(v, u);
            let shown = reason.split("--timestamp-format '").skip(1);
            let mut n = 0;
            for f in shown {
                let f = f.split('\'').next().unwrap();
                assert!(parse_with(v, &[pattern(f)], u).is_ok(), "{v} with {f}");
                n += 1;
            }
            assert!(n > 0, "{v}: {reason}");
        }
        // Not local date forms: the reason is as before, or points at the flag.
        assert_eq!(
            err("yesterday", u),
            "timestamp: not a date-time (expected e.g. 2021-11-23T12:13:14Z): \"yesterday\""
        );
        assert!(err("Nov 23, 2021 1:05 PM", u).contains("name other forms with --timestamp-format"));
        assert!(err("13/13/2021 10:00", u).contains("--timestamp-format"));
        assert!(!err("11/23/2021", u).contains("month first"));
    }
}
