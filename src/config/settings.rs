//! A run's settings as people read them, for the HTML report: what was
//! imported, where to, and how. Never a credential: those come from the
//! environment or a file and are not flags; a URL loses any user, password
//! and query it carries.

use crate::cli::{InputArgs, RunArgs};

/// `url` without what may be a secret: `https://user:pw@host/x?key=1`
/// is `https://host/x`.
pub fn redact_url(url: &str) -> String {
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority.rsplit('@').next().unwrap_or_default();
    match scheme {
        Some(scheme) => format!("{scheme}://{host}{path}"),
        None => format!("{host}{path}"),
    }
}

fn or(value: Option<String>, none: &str) -> String {
    value.unwrap_or_else(|| none.to_string())
}

/// How the inputs were read.
pub fn of_input(input: &InputArgs) -> Vec<(String, String)> {
    let mut out = vec![
        ("inputs".to_string(), input.inputs.join(", ")),
        (
            "conversations".to_string(),
            format!("{:?}", input.conversations).to_lowercase(),
        ),
        (
            "format".to_string(),
            or(
                input.format.map(|f| format!("{f:?}").to_lowercase()),
                "by extension",
            ),
        ),
        (
            "delimiter".to_string(),
            or(input.delimiter.clone(), "detected"),
        ),
        ("timezone".to_string(), input.timezone.clone()),
        (
            "shard".to_string(),
            or(input.shard.map(|s| s.to_string()), "none"),
        ),
    ];
    if let Some(encoding) = &input.encoding {
        out.push(("encoding".into(), encoding.clone()));
    }
    if !input.timestamp_formats.is_empty() {
        out.push((
            "timestamp formats".into(),
            input.timestamp_formats.join(", "),
        ));
    }
    if let Some(sheet) = &input.sheet {
        out.push(("sheet".into(), sheet.clone()));
    }
    if !input.map.is_empty() {
        out.push(("map".into(), input.map.join(", ")));
    }
    if !input.role_map.is_empty() {
        out.push(("role map".into(), input.role_map.join(", ")));
    }
    out
}

/// Everything `run` was told, by name.
pub fn of_run(args: &RunArgs) -> Vec<(String, String)> {
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let mut out = of_input(&args.input);
    out.extend([
        (
            "API".to_string(),
            if args.emulator {
                "the built-in emulator (--emulator)".to_string()
            } else {
                redact_url(&args.api_url)
            },
        ),
        (
            "credentials".to_string(),
            if args.emulator {
                "none (emulator)".to_string()
            } else if let Some(file) = &args.credentials_file {
                format!("from the file {}", file.display())
            } else {
                "from the environment".to_string()
            },
        ),
        ("concurrency".to_string(), args.pace.concurrency.to_string()),
        (
            "rate".to_string(),
            or(
                args.pace.rate.map(|r| format!("{r} requests/s")),
                "default (100/s remote, none on loopback; adapts on 429)",
            ),
        ),
        (
            "batch".to_string(),
            or(args.pace.batch.map(|b| b.to_string()), "off"),
        ),
        (
            "daily quota".to_string(),
            or(args.pace.daily_quota.map(|q| q.to_string()), "none"),
        ),
        ("timeout".to_string(), format!("{} s", args.timeout)),
        (
            "resend uncertain".to_string(),
            if args.resend_uncertain { "yes" } else { "no" }.to_string(),
        ),
        ("ledger".to_string(), args.state.display().to_string()),
        (
            "journal sync".to_string(),
            match args.journal_sync {
                Some(crate::cli::JournalSync::Disk) => "disk",
                Some(crate::cli::JournalSync::Memory) => "memory",
                None => "default (disk remote, memory on loopback)",
            }
            .to_string(),
        ),
        ("report".to_string(), or(path(&args.report), "none")),
        ("rejects".to_string(), or(path(&args.rejects), "none")),
        ("HTML report".to_string(), or(path(&args.html), "none")),
        (
            "summary JSON".to_string(),
            or(path(&args.summary_json), "none"),
        ),
    ]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_what_may_be_secret() {
        assert_eq!(
            redact_url("https://user:pw@api.example.com:8443/v1?key=abc#x"),
            "https://api.example.com:8443/v1"
        );
        assert_eq!(
            redact_url("https://api.sandbox.asapp.com"),
            "https://api.sandbox.asapp.com"
        );
        assert_eq!(redact_url("http://127.0.0.1:9"), "http://127.0.0.1:9");
    }
}
