//! From command-line arguments to typed configuration, in one place.
//! Stages receive these types and never see clap.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use crate::cli::{InputArgs, RunArgs};
use crate::model::ConversationMode;
use crate::model::Role;
use crate::plan::Shard;
use crate::read::Field;
use crate::read::ReadOptions;
use crate::report::ReportFormat;
use crate::send::client::{ApiUrl, Credentials};
use crate::send::retry::RetryPolicy;
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

/// Everything `run` needs, checked.
#[derive(Debug)]
pub struct RunConfig {
    pub inputs: Vec<String>,
    pub read: ReadOptions,
    pub validate: ValidateOptions,
    /// `None` with `--emulator`: the emulator's URL is known once it listens.
    pub api_url: Option<ApiUrl>,
    pub credentials: Option<Credentials>,
    pub report: Option<PathBuf>,
    pub state: PathBuf,
    pub concurrency: usize,
    pub rate: Option<f64>,
    pub daily_quota: Option<u64>,
    pub resend_uncertain: bool,
    pub timeout: Duration,
    pub shard: Option<Shard>,
    pub quiet: bool,
    pub progress_every: Duration,
    pub policy: RetryPolicy,
    /// Off only in the end-to-end benchmark, to measure what the ledger's
    /// bookkeeping costs; no flag reaches it (see `Ledger::without_bookkeeping`).
    pub bookkeeping: bool,
}

/// Turn `run`'s flags into a [`RunConfig`]. Errors name the flag or file to fix.
pub fn run_config(args: &RunArgs) -> anyhow::Result<RunConfig> {
    let (read, validate) = input_options(&args.input)?;
    if validate.mode == ConversationMode::Create {
        bail!("--conversations create is not supported yet; use the API's conversation ids (--conversations existing)");
    }
    if let Some(report) = &args.report {
        ReportFormat::from_path(report).map_err(|e| anyhow!("--report {e}"))?;
    }
    let (api_url, credentials) = if args.emulator {
        (None, None)
    } else {
        let url = ApiUrl::parse(&args.api_url).map_err(|e| anyhow!("--api-url {e}"))?;
        (
            Some(url),
            Some(credentials(args.credentials_file.as_deref())?),
        )
    };
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0) {
            bail!("--rate {rate}: must be a positive number of requests per second");
        }
    }
    if !(args.backoff_scale.is_finite() && args.backoff_scale >= 0.0) {
        bail!(
            "--backoff-scale {}: must be zero or more",
            args.backoff_scale
        );
    }
    if args.timeout == 0 {
        bail!("--timeout 0: must be at least one second");
    }
    // The API's documented spike limit applies to the real API; loopback
    // (the emulator, a local proxy) has none unless one is asked for.
    let loopback = api_url.as_ref().is_none_or(ApiUrl::is_loopback);
    let rate = args.rate.or(if loopback { None } else { Some(100.0) });
    Ok(RunConfig {
        inputs: args.input.inputs.clone(),
        read,
        validate,
        api_url,
        credentials,
        report: args.report.clone(),
        state: args.state.clone(),
        concurrency: usize::from(args.concurrency),
        rate,
        daily_quota: args.daily_quota,
        resend_uncertain: args.resend_uncertain,
        timeout: Duration::from_secs(args.timeout),
        shard: args.shard,
        quiet: args.quiet,
        progress_every: Duration::from_secs(args.progress_every.max(1)),
        policy: RetryPolicy {
            scale: args.backoff_scale,
            ..RetryPolicy::default()
        },
        bookkeeping: true,
    })
}

/// Credentials from a file (`--credentials-file`) or the environment.
fn credentials(file: Option<&Path>) -> anyhow::Result<Credentials> {
    let (mut id, mut secret) = (None, None);
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--credentials-file {}: cannot read", path.display()))?;
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let line = line.strip_prefix("export ").unwrap_or(line);
                let Some((key, value)) = line.split_once('=') else {
                    // Never echo the line: it may be a secret.
                    bail!(
                        "{}: line {}: expected KEY=VALUE (ASAPP_API_ID=... or ASAPP_API_SECRET=...)",
                        path.display(),
                        i + 1
                    );
                };
                let value = value
                    .trim()
                    .trim_matches('"')
                    .trim_matches('\'')
                    .to_string();
                match key.trim() {
                    "ASAPP_API_ID" => id = Some(value),
                    "ASAPP_API_SECRET" => secret = Some(value),
                    other => bail!(
                        "{}: line {}: unknown key {other:?} (expected ASAPP_API_ID or ASAPP_API_SECRET)",
                        path.display(),
                        i + 1
                    ),
                }
            }
            let missing = |what| anyhow!("{}: no {what}= line", path.display());
            let id = id
                .filter(|s| !s.is_empty())
                .ok_or_else(|| missing("ASAPP_API_ID"))?;
            let secret = secret
                .filter(|s| !s.is_empty())
                .ok_or_else(|| missing("ASAPP_API_SECRET"))?;
            Ok(Credentials { id, secret })
        }
        None => {
            id = std::env::var("ASAPP_API_ID").ok().filter(|s| !s.is_empty());
            secret = std::env::var("ASAPP_API_SECRET")
                .ok()
                .filter(|s| !s.is_empty());
            match (id, secret) {
                (Some(id), Some(secret)) => Ok(Credentials { id, secret }),
                _ => bail!(
                    "no credentials: set ASAPP_API_ID and ASAPP_API_SECRET, or pass --credentials-file\n  hint: to rehearse without credentials, use --emulator"
                ),
            }
        }
    }
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
