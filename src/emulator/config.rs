//! From `transcript-import emulator` flags and environment to an emulator
//! [`Config`]. A bad value is a usage error whose message names the flag.

use std::time::Duration;

use super::{Config, Tls};
use crate::cli::EmulatorArgs;
use crate::error::Error;

macro_rules! bail {
    ($($t:tt)*) => {
        return Err(Error::usage(format!($($t)*)))
    };
}

/// The emulator's configuration from its flags, with credentials from
/// `ASAPP_API_ID` / `ASAPP_API_SECRET`.
pub fn emulator_config(args: &EmulatorArgs) -> Result<Config, Error> {
    let id = std::env::var("ASAPP_API_ID").ok();
    let secret = std::env::var("ASAPP_API_SECRET").ok();
    from_args(args, id, secret)
}

fn from_args(
    args: &EmulatorArgs,
    id: Option<String>,
    secret: Option<String>,
) -> Result<Config, Error> {
    let credentials = match (id, secret) {
        (None, None) => None,
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => Some((id, secret)),
        _ => bail!("set both ASAPP_API_ID and ASAPP_API_SECRET (non-empty), or neither"),
    };
    for (flag, rate) in [
        ("--error-429", args.error_429),
        ("--error-503", args.error_503),
        ("--error-500", args.error_500),
        ("--drop-before", args.drop_before),
        ("--drop-after", args.drop_after),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            bail!("{flag} {rate}: a rate is a share between 0 and 1");
        }
    }
    let faults = args.error_429 + args.error_503 + args.error_500 + args.drop_before;
    if faults > 1.0 {
        bail!("--error-429, --error-503, --error-500 and --drop-before add up to {faults}, more than 1");
    }
    if args.rate_limit == Some(0) {
        bail!("--rate-limit 0 would refuse everything; leave it out for no limit");
    }
    if args.max_body == 0 {
        bail!("--max-body must be at least 1 byte");
    }
    Ok(Config {
        addr: Some(args.addr),
        credentials,
        latency: Duration::from_millis(args.latency_ms),
        jitter: Duration::from_millis(args.jitter_ms),
        rate_limit: args.rate_limit,
        error_429: args.error_429,
        error_503: args.error_503,
        error_500: args.error_500,
        drop_before: args.drop_before,
        drop_after: args.drop_after,
        seed: args.seed,
        max_body: args.max_body,
        unknown: args.unknown.clone(),
        daily_quota: args.daily_quota,
        conflict_on_duplicate: args.conflict_on_duplicate,
        known_conversations_only: args.known_conversations_only,
        retry_after_http_date: args.retry_after_date,
        stats_file: args.stats_file.clone(),
        tls: args.tls.then(|| {
            let mut tls = Tls::default();
            tls.names.extend(args.tls_name.iter().cloned());
            tls
        }),
        ..Config::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn args(argv: &[&str]) -> EmulatorArgs {
        let mut full = vec!["transcript-import", "emulator"];
        full.extend_from_slice(argv);
        match Cli::parse_from(full).command {
            Command::Emulator(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_become_config() {
        let a = args(&[
            "--latency-ms",
            "20",
            "--jitter-ms",
            "10",
            "--rate-limit",
            "50",
            "--error-429",
            "0.05",
            "--drop-after",
            "0.01",
            "--seed",
            "7",
            "--unknown",
            "AAA",
            "--unknown",
            "BBB",
            "--daily-quota",
            "100",
            "--conflict-on-duplicate",
            "--max-body",
            "1000",
        ]);
        let c = from_args(&a, Some("id".into()), Some("s3cret".into())).unwrap();
        assert_eq!(c.latency, Duration::from_millis(20));
        assert_eq!(c.jitter, Duration::from_millis(10));
        assert_eq!(c.rate_limit, Some(50));
        assert_eq!(c.error_429, 0.05);
        assert_eq!(c.drop_after, 0.01);
        assert_eq!(c.seed, Some(7));
        assert_eq!(c.unknown, ["AAA", "BBB"]);
        assert_eq!(c.daily_quota, Some(100));
        assert!(c.conflict_on_duplicate);
        assert_eq!(c.max_body, 1000);
        assert_eq!(c.credentials, Some(("id".into(), "s3cret".into())));
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn tls_names_add_to_loopback() {
        let c = from_args(&args(&["--tls", "--tls-name", "emulator.test"]), None, None).unwrap();
        assert_eq!(
            c.tls.unwrap().names,
            ["localhost", "127.0.0.1", "::1", "emulator.test"]
        );
        assert!(from_args(&args(&[]), None, None).unwrap().tls.is_none());
    }

    #[test]
    fn defaults() {
        let c = from_args(&args(&[]), None, None).unwrap();
        assert_eq!(c.max_body, 64 * 1024);
        assert!(c.credentials.is_none());
        assert_eq!(c.addr.map(|a| a.port()), Some(0));
    }

    #[test]
    fn bad_values_name_the_flag() {
        let e = from_args(&args(&["--error-503", "1.5"]), None, None).unwrap_err();
        assert!(e.to_string().contains("--error-503"), "{e}");
        let e = from_args(&args(&["--rate-limit", "0"]), None, None).unwrap_err();
        assert!(e.to_string().contains("--rate-limit"), "{e}");
        let e = from_args(&args(&[]), Some("id".into()), None).unwrap_err();
        assert!(e.to_string().contains("ASAPP_API_SECRET"), "{e}");
    }
}
