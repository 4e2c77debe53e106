//! From command-line arguments to typed configuration, in one place.
//! Stages receive these types and never see clap.

use anyhow::{anyhow, bail};

use crate::cli::InputArgs;
use crate::model::Role;
use crate::read::{Field, ReadOptions};
use crate::validate::{RoleMap, ValidateOptions};

/// Reading and validation options from the input flags. A bad value here is
/// a usage error (exit 2) whose message names the flag.
pub fn input_options(args: &InputArgs) -> anyhow::Result<(ReadOptions, ValidateOptions)> {
    let read = ReadOptions {
        format: args.format,
        delimiter: args.delimiter.as_deref().map(parse_delimiter).transpose()?,
        columns: parse_map(&args.map)?,
    };
    let validate = ValidateOptions {
        mode: args.conversations,
        timezone: parse_timezone(&args.timezone)?,
        roles: parse_role_map(&args.role_map)?,
    };
    Ok((read, validate))
}

/// `--delimiter`: `,` `;` `tab` `\t` `|` (a literal tab works too).
pub fn parse_delimiter(value: &str) -> anyhow::Result<u8> {
    match value {
        "," | "comma" => Ok(b','),
        ";" | "semicolon" => Ok(b';'),
        "\t" | "tab" | "\\t" | "TAB" => Ok(b'\t'),
        "|" | "pipe" => Ok(b'|'),
        _ => bail!("invalid value for --delimiter: `{value}` (expected `,` `;` `tab` `|`)"),
    }
}

/// `--timezone`: an IANA zone name.
pub fn parse_timezone(value: &str) -> anyhow::Result<chrono_tz::Tz> {
    value.trim().parse::<chrono_tz::Tz>().map_err(|_| {
        anyhow!(
            "invalid value for --timezone: `{value}` is not an IANA time zone \
             (e.g. UTC, Europe/Berlin, America/New_York)"
        )
    })
}

/// `--map FIELD=COLUMN` pairs (clap has split the commas).
pub fn parse_map(pairs: &[String]) -> anyhow::Result<Vec<(Field, String)>> {
    let mut out: Vec<(Field, String)> = Vec::new();
    for pair in pairs {
        let Some((field, column)) = pair.split_once('=') else {
            bail!(
                "invalid value for --map: `{pair}` (expected FIELD=COLUMN, e.g. text=message_body)"
            );
        };
        let field = field.trim();
        let Some(field) = Field::ALL
            .into_iter()
            .find(|f| f.name() == field.to_lowercase())
        else {
            bail!(
                "invalid value for --map: `{pair}`: `{field}` is not a field \
                 (expected conversation_id, timestamp, sender_role, sender_id or text)"
            );
        };
        let column = column.trim();
        if column.is_empty() {
            bail!("invalid value for --map: `{pair}`: no column name after `=`");
        }
        if out.iter().any(|(f, c)| *f == field && c != column) {
            bail!(
                "invalid value for --map: `{}` is mapped twice",
                field.name()
            );
        }
        out.push((field, column.to_string()));
    }
    Ok(out)
}

/// `--role-map NAME=ROLE` pairs (clap has split the commas).
pub fn parse_role_map(pairs: &[String]) -> anyhow::Result<RoleMap> {
    let mut extra = Vec::new();
    for pair in pairs {
        let Some((name, role)) = pair.split_once('=') else {
            bail!("invalid value for --role-map: `{pair}` (expected NAME=ROLE, e.g. bot=system)");
        };
        let name = name.trim().to_lowercase();
        if name.is_empty() {
            bail!("invalid value for --role-map: `{pair}`: no name before `=`");
        }
        let role = match role.trim().to_lowercase().as_str() {
            "agent" => Role::Agent,
            "customer" => Role::Customer,
            "system" => Role::System,
            _ => bail!(
                "invalid value for --role-map: `{pair}`: `{}` is not a role \
                 (expected agent, customer or system)",
                role.trim()
            ),
        };
        extra.push((name, role));
    }
    Ok(RoleMap { extra })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn args(extra: &[&str]) -> anyhow::Result<(ReadOptions, ValidateOptions)> {
        let mut argv = vec!["transcript-import", "check", "in.csv"];
        argv.extend_from_slice(extra);
        let cli = Cli::try_parse_from(argv).expect("clap parses");
        let Command::Check(check) = cli.command else {
            unreachable!()
        };
        input_options(&check.input)
    }

    #[test]
    fn defaults() {
        let (r, v) = args(&[]).unwrap();
        assert_eq!(r.delimiter, None);
        assert!(r.columns.is_empty());
        assert_eq!(v.timezone, chrono_tz::UTC);
        assert!(v.roles.extra.is_empty());
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
            assert_eq!(parse_delimiter(v).unwrap(), want, "{v:?}");
        }
        let e = args(&["--delimiter", "::"]).unwrap_err().to_string();
        assert!(e.starts_with("invalid value for --delimiter: `::`"), "{e}");
    }

    #[test]
    fn timezone_values() {
        let (_, v) = args(&["--timezone", "America/New_York"]).unwrap();
        assert_eq!(v.timezone, chrono_tz::America::New_York);
        let e = args(&["--timezone", "Mars/Olympus"])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("invalid value for --timezone: `Mars/Olympus`"),
            "{e}"
        );
    }

    #[test]
    fn map_pairs_repeated_or_comma_separated() {
        let (r, _) = args(&[
            "--map",
            "text=msg,sender_id=agent ref",
            "--map",
            "Timestamp=when",
        ])
        .unwrap();
        assert_eq!(
            r.columns,
            vec![
                (Field::Text, "msg".to_string()),
                (Field::SenderId, "agent ref".to_string()),
                (Field::Timestamp, "when".to_string()),
            ]
        );
        for bad in ["text", "body=msg", "text=", "text=a,text=b"] {
            let e = args(&["--map", bad]).unwrap_err().to_string();
            assert!(e.starts_with("invalid value for --map"), "{bad}: {e}");
        }
        let e = args(&["--map", "body=msg"]).unwrap_err().to_string();
        assert!(e.contains("`body` is not a field"), "{e}");
    }

    #[test]
    fn role_map_pairs() {
        let (_, v) = args(&[
            "--role-map",
            "Bot=system,user=Customer",
            "--role-map",
            "rep=agent",
        ])
        .unwrap();
        assert_eq!(
            v.roles.extra,
            vec![
                ("bot".to_string(), Role::System),
                ("user".to_string(), Role::Customer),
                ("rep".to_string(), Role::Agent),
            ]
        );
        let e = args(&["--role-map", "bot=robot"]).unwrap_err().to_string();
        assert!(e.contains("`robot` is not a role"), "{e}");
        assert!(e.starts_with("invalid value for --role-map"), "{e}");
        assert!(args(&["--role-map", "bot"]).is_err());
        assert!(args(&["--role-map", "=agent"]).is_err());
    }
}
