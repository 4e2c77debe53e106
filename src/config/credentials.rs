//! API credentials: from `ASAPP_API_ID` / `ASAPP_API_SECRET`, or from a
//! file of `KEY=VALUE` lines (`--credentials-file`), never from a flag
//! (flags show in `ps`). No message ever echoes a value, nor anything of
//! a line that is not a plain key. A file that group or others may read
//! is used, with a warning.

use std::path::Path;

use crate::error::Error;
use crate::send::client::Credentials;

/// Credentials, and what to warn about them.
pub struct Loaded {
    pub credentials: Credentials,
    /// The credentials file is readable by group or others.
    pub warning: Option<String>,
}

/// Credentials from a file (`--credentials-file`) or the environment.
pub fn load(file: Option<&Path>) -> Result<Loaded, Error> {
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::usage(format!(
                    "--credentials-file {}: cannot read: {e}",
                    path.display()
                ))
            })?;
            let credentials = parse(&text)
                .and_then(sendable)
                .map_err(|e| Error::usage(format!("{}: {e}", path.display())))?;
            Ok(Loaded {
                credentials,
                warning: readable_by_others(path),
            })
        }
        None => {
            let var = |name| std::env::var(name).ok().filter(|s| !s.is_empty());
            match (var("ASAPP_API_ID"), var("ASAPP_API_SECRET")) {
                (Some(id), Some(secret)) => Ok(Loaded {
                    credentials: sendable(Credentials { id, secret }).map_err(Error::usage)?,
                    warning: None,
                }),
                _ => Err(Error::usage_with_hint(
                    "no credentials: set ASAPP_API_ID and ASAPP_API_SECRET, or pass --credentials-file",
                    "to rehearse without credentials, use --emulator",
                )),
            }
        }
    }
}

/// A warning when group or others may read the file at `path`.
fn readable_by_others(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o044 != 0).then(|| {
            format!(
                "--credentials-file {}: readable by {} (mode {mode:03o}); `chmod 600 {}` keeps the secret yours",
                path.display(),
                match (mode & 0o040 != 0, mode & 0o004 != 0) {
                    (true, true) => "group and others",
                    (true, false) => "group",
                    _ => "others",
                },
                path.display()
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
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
            // A key is named only when it looks like one: a line such as
            // `ASAPP_API_SECRET: abc=def` must not show `abc`.
            other if is_plain_key(other) => {
                return Err(format!(
                    "line {}: unknown key {other:?} (expected ASAPP_API_ID or ASAPP_API_SECRET)",
                    i + 1
                ))
            }
            _ => {
                return Err(format!(
                    "line {}: expected KEY=VALUE with KEY ASAPP_API_ID or ASAPP_API_SECRET",
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

/// Credentials that can go in an HTTP header. One with a control
/// character (a stray carriage return, say) would fail every request, and
/// the run would stop only after retrying for seconds, with a message that
/// names no credential. Never echoes the value.
fn sendable(credentials: Credentials) -> Result<Credentials, String> {
    for (name, value) in [
        ("ASAPP_API_ID", &credentials.id),
        ("ASAPP_API_SECRET", &credentials.secret),
    ] {
        if ureq::http::HeaderValue::from_str(value).is_err() {
            return Err(format!(
                "{name} holds a control character (a line break, say), which no HTTP header may carry"
            ));
        }
    }
    Ok(credentials)
}

/// `[A-Za-z_][A-Za-z0-9_]*`, at most 64 bytes: an environment variable's name.
fn is_plain_key(key: &str) -> bool {
    key.len() <= 64
        && key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
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
        let e = parse("ASAPP_API_SECRET: hunter2=x\n").unwrap_err();
        assert!(e.starts_with("line 1:") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn a_value_no_header_may_carry_is_refused_by_name_and_not_echoed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds.env");
        // A carriage return inside quotes survives the line's trimming.
        std::fs::write(&path, "ASAPP_API_ID=a\nASAPP_API_SECRET=\"hunter2\r\"\n").unwrap();
        let e = load(Some(&path)).err().expect("refused").to_string();
        assert!(
            e.contains("ASAPP_API_SECRET holds a control character"),
            "{e}"
        );
        assert!(e.contains("creds.env") && !e.contains("hunter2"), "{e}");
        // Tabs and non-ASCII text are fine in a header value.
        let ok = sendable(Credentials {
            id: "a\tb".into(),
            secret: "sécret".into(),
        });
        assert!(ok.is_ok());
        let e = sendable(Credentials {
            id: "a\x01".into(),
            secret: "x".into(),
        })
        .err()
        .unwrap();
        assert!(e.starts_with("ASAPP_API_ID "), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_may_read_is_used_with_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds.env");
        std::fs::write(&path, "ASAPP_API_ID=a\nASAPP_API_SECRET=hunter2\n").unwrap();
        for (mode, warned) in [
            (0o600, None),
            (0o640, Some("group")),
            (0o604, Some("others")),
            (0o644, Some("group and others")),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let loaded = load(Some(&path)).unwrap();
            assert_eq!(loaded.credentials.secret, "hunter2");
            match (loaded.warning, warned) {
                (None, None) => {}
                (Some(w), Some(who)) => {
                    assert!(w.contains(&format!("readable by {who} (mode")), "{w}");
                    assert!(w.contains("chmod 600") && !w.contains("hunter2"), "{w}");
                }
                (got, want) => panic!("{mode:o}: {got:?}, want {want:?}"),
            }
        }
    }
}
