//! API credentials: from `ASAPP_API_ID` / `ASAPP_API_SECRET`, or from a
//! file of `KEY=VALUE` lines (`--credentials-file`), never from a flag
//! (flags show in `ps`). No message ever echoes a value.

use std::path::Path;

use crate::error::Error;
use crate::send::client::Credentials;

/// Credentials from a file (`--credentials-file`) or the environment.
pub fn load(file: Option<&Path>) -> Result<Credentials, Error> {
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::usage(format!(
                    "--credentials-file {}: cannot read: {e}",
                    path.display()
                ))
            })?;
            parse(&text).map_err(|e| Error::usage(format!("{}: {e}", path.display())))
        }
        None => {
            let var = |name| std::env::var(name).ok().filter(|s| !s.is_empty());
            match (var("ASAPP_API_ID"), var("ASAPP_API_SECRET")) {
                (Some(id), Some(secret)) => Ok(Credentials { id, secret }),
                _ => Err(Error::usage_with_hint(
                    "no credentials: set ASAPP_API_ID and ASAPP_API_SECRET, or pass --credentials-file",
                    "to rehearse without credentials, use --emulator",
                )),
            }
        }
    }
}

/// A credentials file as shell `env` files write it: `KEY=VALUE` lines,
/// `#` comments and blank lines, an optional `export `, values optionally
/// in single or double quotes, LF or CRLF line ends.
fn parse(text: &str) -> Result<Credentials, String> {
    let (mut id, mut secret) = (None, None);
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            // Never echo the line: it may be a secret.
            return Err(format!(
                "line {}: expected KEY=VALUE (ASAPP_API_ID=... or ASAPP_API_SECRET=...)",
                i + 1
            ));
        };
        let value = unquote(value.trim()).to_string();
        match key.trim() {
            "ASAPP_API_ID" => id = Some(value),
            "ASAPP_API_SECRET" => secret = Some(value),
            other => {
                return Err(format!(
                    "line {}: unknown key {other:?} (expected ASAPP_API_ID or ASAPP_API_SECRET)",
                    i + 1
                ))
            }
        }
    }
    let missing = |what| format!("no {what}= line with a value");
    Ok(Credentials {
        id: id
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("ASAPP_API_ID"))?,
        secret: secret
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("ASAPP_API_SECRET"))?,
    })
}

/// A value without one pair of matching surrounding quotes.
fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(text: &str) -> (String, String) {
        let c = parse(text).unwrap();
        (c.id, c.secret)
    }

    #[test]
    fn plain_quoted_exported_and_crlf() {
        let want = ("my-id".to_string(), "s3 cr=t".to_string());
        assert_eq!(both("ASAPP_API_ID=my-id\nASAPP_API_SECRET=s3 cr=t\n"), want);
        assert_eq!(
            both("# the sandbox\n\nexport ASAPP_API_ID=\"my-id\"\r\nexport ASAPP_API_SECRET='s3 cr=t'\r\n"),
            want
        );
        assert_eq!(
            both("  ASAPP_API_ID = my-id \n ASAPP_API_SECRET = \"s3 cr=t\"  "),
            want
        );
        // A quote that is part of the value stays.
        assert_eq!(both("ASAPP_API_ID=it's\nASAPP_API_SECRET=x\"y").0, "it's");
    }

    #[test]
    fn a_missing_or_empty_key_is_named_and_no_value_is_echoed() {
        assert!(parse("ASAPP_API_ID=a\n")
            .unwrap_err()
            .contains("ASAPP_API_SECRET"));
        assert!(parse("ASAPP_API_ID=a\nASAPP_API_SECRET=\"\"\n")
            .unwrap_err()
            .contains("ASAPP_API_SECRET"));
        let e = parse("ASAPP_API_ID=a\nhunter2\n").unwrap_err();
        assert!(e.starts_with("line 2:") && !e.contains("hunter2"), "{e}");
        let e = parse("API_KEY=hunter2\n").unwrap_err();
        assert!(e.contains("API_KEY") && !e.contains("hunter2"), "{e}");
    }
}
