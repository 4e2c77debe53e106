//! Flag values, checked where they are parsed: a bad one is a usage error
//! (exit 2) that names the flag and what it allows. Both `run` and `check`
//! use these, so the same flag is refused the same way by both.

use crate::model::{Field, Role};
use crate::plan::Shard;
use crate::validate::RoleMap;

/// Requests per second: a positive, finite number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate(f64);

impl Rate {
    /// The API's documented spike limit: the default for remote URLs.
    pub const API_SPIKE_LIMIT: Rate = Rate(100.0);

    pub fn per_second(self) -> f64 {
        self.0
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `--rate`.
pub fn rate(value: &str) -> Result<Rate, String> {
    match value.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(Rate(r)),
        _ => Err("must be a positive number of requests per second, e.g. 50 or 0.5".into()),
    }
}

/// The hidden `--backoff-scale`: zero or more.
pub fn scale(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err("must be zero or more".into()),
    }
}

/// `--shard K/N`, or `index/N` with K from `JOB_COMPLETION_INDEX` (0-based).
pub fn shard(value: &str) -> Result<Shard, String> {
    shard_with(value, std::env::var("JOB_COMPLETION_INDEX").ok().as_deref())
}

fn shard_with(value: &str, job_index: Option<&str>) -> Result<Shard, String> {
    match value.trim().strip_prefix("index/") {
        Some(n) => {
            let index = job_index
                .ok_or("index/N takes K from JOB_COMPLETION_INDEX, which is not set".to_string())?;
            let k: u32 = index
                .trim()
                .parse()
                .map_err(|_| format!("JOB_COMPLETION_INDEX={index:?} is not a number"))?;
            format!("{}/{}", k + 1, n.trim()).parse()
        }
        None => value.parse(),
    }
}

/// `--delimiter`: `,` `;` `tab` `\t` `|` (a literal tab works too).
pub fn delimiter(value: &str) -> Result<u8, String> {
    match value {
        "," | "comma" => Ok(b','),
        ";" | "semicolon" => Ok(b';'),
        "\t" | "tab" | "\\t" | "TAB" => Ok(b'\t'),
        "|" | "pipe" => Ok(b'|'),
        _ => Err(format!(
            "invalid value for --delimiter: `{value}` (expected `,` `;` `tab` `|`)"
        )),
    }
}

/// `--timezone`: an IANA zone name.
pub fn timezone(value: &str) -> Result<chrono_tz::Tz, String> {
    value.trim().parse::<chrono_tz::Tz>().map_err(|_| {
        format!(
            "invalid value for --timezone: `{value}` is not an IANA time zone \
             (e.g. UTC, Europe/Berlin, America/New_York)"
        )
    })
}

/// `--encoding`: a WHATWG encoding name.
pub fn encoding(value: &str) -> Result<&'static encoding_rs::Encoding, String> {
    crate::read::encoding::label(value)
}

/// `--timestamp-format`: a chrono strftime format that gives a whole date and time.
pub fn timestamp_format(value: &str) -> Result<crate::timestamp::Pattern, String> {
    value
        .parse()
        .map_err(|e| format!("invalid value for --timestamp-format: {e}"))
}

/// `--sheet`: a non-empty name or number.
pub fn sheet(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err("invalid value for --sheet: empty (name a sheet, or its number from 1)".into());
    }
    Ok(value.to_string())
}

/// `--map FIELD=COLUMN` pairs (clap has split the commas). COLUMN may be
/// `#N`, the N-th column (1-based) of a CSV header.
pub fn map(pairs: &[String]) -> Result<Vec<(Field, String)>, String> {
    let mut out: Vec<(Field, String)> = Vec::new();
    for pair in pairs {
        let Some((field, column)) = pair.split_once('=') else {
            return Err(format!(
                "invalid value for --map: `{pair}` (expected FIELD=COLUMN, e.g. text=message_body)"
            ));
        };
        let Some(field) = Field::from_name(field) else {
            return Err(format!(
                "invalid value for --map: `{pair}`: `{}` is not a field \
                 (expected conversation_id, timestamp, sender_role, sender_id or text)",
                field.trim()
            ));
        };
        let column = column.trim();
        if column.is_empty() {
            return Err(format!(
                "invalid value for --map: `{pair}`: no column name after `=`"
            ));
        }
        let digits = column.strip_prefix('#').unwrap_or_default();
        if !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && crate::read::columns::number(column).is_none()
        {
            return Err(format!(
                "invalid value for --map: `{pair}`: column numbers start at 1 (`#1` is the first column)"
            ));
        }
        if out.iter().any(|(f, c)| *f == field && c != column) {
            return Err(format!(
                "invalid value for --map: `{}` is mapped twice",
                field.name()
            ));
        }
        out.push((field, column.to_string()));
    }
    Ok(out)
}

/// `--role-map NAME=ROLE` pairs (clap has split the commas).
pub fn role_map(pairs: &[String]) -> Result<RoleMap, String> {
    let mut extra = Vec::new();
    for pair in pairs {
        let Some((name, role)) = pair.split_once('=') else {
            return Err(format!(
                "invalid value for --role-map: `{pair}` (expected NAME=ROLE, e.g. bot=system)"
            ));
        };
        let name = name.trim().to_lowercase();
        if name.is_empty() {
            return Err(format!(
                "invalid value for --role-map: `{pair}`: no name before `=`"
            ));
        }
        let role: Role = role.trim().to_lowercase().parse().map_err(|_| {
            format!(
                "invalid value for --role-map: `{pair}`: `{}` is not a role \
                 (expected {})",
                role.trim(),
                Role::names()
            )
        })?;
        extra.push((name, role));
    }
    Ok(RoleMap { extra })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_positive_numbers() {
        assert_eq!(rate("0.5").unwrap().per_second(), 0.5);
        for bad in ["0", "-1", "inf", "NaN", "fast", ""] {
            assert!(rate(bad).is_err(), "{bad}");
        }
        assert!(scale("0").is_ok() && scale("-0.5").is_err());
    }

    #[test]
    fn shards_from_the_flag_or_the_job_index() {
        assert_eq!(shard_with("2/4", None), "2/4".parse());
        assert_eq!(shard_with("index/4", Some("0")), "1/4".parse());
        assert_eq!(shard_with("index/4", Some("3")), "4/4".parse());
        assert!(shard_with("index/4", Some("4")).is_err());
        assert!(shard_with("index/4", None)
            .unwrap_err()
            .contains("JOB_COMPLETION_INDEX"));
    }

    #[test]
    fn delimiter_values() {
        for (v, want) in [
            (",", b','),
            (";", b';'),
            ("tab", b'\t'),
            ("\\t", b'\t'),
            ("\t", b'\t'),
            ("|", b'|'),
        ] {
            assert_eq!(delimiter(v).unwrap(), want, "{v:?}");
        }
        let e = delimiter("::").unwrap_err();
        assert!(e.starts_with("invalid value for --delimiter: `::`"), "{e}");
    }

    #[test]
    fn timezone_values() {
        assert_eq!(
            timezone("America/New_York").unwrap(),
            chrono_tz::America::New_York
        );
        let e = timezone("Mars/Olympus").unwrap_err();
        assert!(
            e.starts_with("invalid value for --timezone: `Mars/Olympus`"),
            "{e}"
        );
    }

    #[test]
    fn timestamp_format_values() {
        assert_eq!(
            timestamp_format("%d.%m.%Y %H:%M").unwrap().as_str(),
            "%d.%m.%Y %H:%M"
        );
        assert!(timestamp_format("%m/%d/%Y %I:%M %p").is_ok());
        assert!(timestamp_format("%Y-%m-%d %H:%M:%S%.f %z").is_ok());
        let e = timestamp_format("%Q").unwrap_err();
        assert!(
            e.starts_with("invalid value for --timestamp-format: `%Q` is not a valid chrono"),
            "{e}"
        );
        for partial in ["%H:%M", "%d.%m.%Y", "%m/%d %H:%M", "hello"] {
            let e = timestamp_format(partial).unwrap_err();
            assert!(
                e.contains("does not give a whole date and time"),
                "{partial}: {e}"
            );
        }
        assert!(encoding("latin1").is_ok());
        assert!(encoding("nope").unwrap_err().contains("--encoding"));
        assert!(sheet(" ").is_err());
    }

    #[test]
    fn map_pairs() {
        let pairs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            map(&pairs(&[
                "text=msg",
                "sender_id=agent ref",
                "Timestamp=when"
            ]))
            .unwrap(),
            vec![
                (Field::Text, "msg".to_string()),
                (Field::SenderId, "agent ref".to_string()),
                (Field::Timestamp, "when".to_string()),
            ]
        );
        assert_eq!(
            map(&pairs(&["text=#5"])).unwrap(),
            vec![(Field::Text, "#5".to_string())]
        );
        assert!(map(&pairs(&["text=#0"]))
            .unwrap_err()
            .contains("column numbers start at 1"));
        for bad in ["text", "body=msg", "text=", "text=#0", "text=#00"] {
            let e = map(&pairs(&[bad])).unwrap_err();
            assert!(e.starts_with("invalid value for --map"), "{bad}: {e}");
        }
        assert!(map(&pairs(&["text=a", "text=b"])).is_err());
        assert!(map(&pairs(&["body=msg"]))
            .unwrap_err()
            .contains("`body` is not a field"));
    }

    #[test]
    fn role_map_pairs() {
        let pairs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let m = role_map(&pairs(&["Bot=system", "user=Customer", "rep=agent"])).unwrap();
        assert_eq!(
            m.extra,
            vec![
                ("bot".to_string(), Role::System),
                ("user".to_string(), Role::Customer),
                ("rep".to_string(), Role::Agent),
            ]
        );
        let e = role_map(&pairs(&["bot=robot"])).unwrap_err();
        assert!(e.contains("`robot` is not a role"), "{e}");
        assert!(role_map(&pairs(&["bot"])).is_err());
        assert!(role_map(&pairs(&["=agent"])).is_err());
    }
}
