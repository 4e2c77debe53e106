//! From command-line arguments to typed configuration, in one place.
//! Stages receive these types and never see clap.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use crate::cli::{InputArgs, RunArgs};
use crate::model::ConversationMode;
use crate::plan::Shard;
use crate::read::ReadOptions;
use crate::report::ReportFormat;
use crate::send::client::{ApiUrl, Credentials};
use crate::send::retry::RetryPolicy;
use crate::validate::ValidateOptions;

/// Reading and validation options from the input flags. A bad value here is
/// a usage error (exit 2) whose message names the flag.
pub fn input_options(args: &InputArgs) -> anyhow::Result<(ReadOptions, ValidateOptions)> {
    let read = ReadOptions {
        format: args.format,
        ..ReadOptions::default()
    };
    let validate = ValidateOptions {
        mode: args.conversations,
        ..ValidateOptions::default()
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
