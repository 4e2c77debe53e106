//! Paths that must not be the same file: an output that is an input, the
//! ledger or one of its side files would destroy it; an input named twice
//! would send every message twice. Compared by what the paths resolve to
//! (through `./`, `..` and symlinks) and by file identity (hard links).

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::record;

/// A path resolved as far as the file system allows, with the identity of
/// the file it names if there is one.
#[derive(Debug)]
struct Resolved {
    path: PathBuf,
    id: Option<(u64, u64)>,
}

fn resolve(path: &Path) -> Resolved {
    let path = match std::fs::canonicalize(path) {
        Ok(p) => p,
        // Not there yet (an output): its directory resolved, and its name;
        // through a link to it, the file the link would create, as outputs
        // are written (two names for one new file were two outputs, the
        // second written over the first).
        Err(_) => {
            let path = record::resolve(path);
            match path.file_name() {
                Some(name) => std::fs::canonicalize(record::directory_of(&path))
                    .map(|d| d.join(name))
                    .unwrap_or_else(|_| path.clone()),
                None => path,
            }
        }
    };
    Resolved {
        id: identity(&path),
        path,
    }
}

#[cfg(unix)]
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn identity(_: &Path) -> Option<(u64, u64)> {
    None
}

impl Resolved {
    fn same(&self, other: &Resolved) -> bool {
        self.path == other.path || (self.id.is_some() && self.id == other.id)
    }
}

/// Refuse outputs that would overwrite an input, the ledger or its side
/// files, or each other. `outputs` are `(flag, path)`.
pub fn check_outputs(
    outputs: &[(&str, &Path)],
    inputs: &[String],
    state: Option<&Path>,
) -> Result<(), Error> {
    let inputs: Vec<(&str, Resolved)> = inputs
        .iter()
        .filter(|i| *i != "-")
        .map(|i| (i.as_str(), resolve(Path::new(i))))
        .collect();
    let state = state.map(|s| (s, resolve(s)));
    if let Some((state_path, st)) = &state {
        if let Some((name, _)) = inputs.iter().find(|(_, i)| i.same(st)) {
            return Err(Error::usage(format!(
                "--state {}: is the input {name}; the ledger would overwrite it",
                state_path.display()
            )));
        }
    }
    let mut seen: Vec<(&str, &Path, Resolved)> = Vec::new();
    for &(flag, path) in outputs {
        let out = resolve(path);
        let refuse = |what: String| {
            Err(Error::usage_with_hint(
                format!("{flag} {}: {what}; it would be overwritten", path.display()),
                format!("write {flag} somewhere else"),
            ))
        };
        if let Some((name, _)) = inputs.iter().find(|(_, i)| i.same(&out)) {
            return refuse(format!("is the input {name}"));
        }
        if let Some((state_path, st)) = &state {
            if st.same(&out) {
                return refuse(format!("is the ledger {}", state_path.display()));
            }
            if record::is_side_file(&st.path, &out.path) {
                return refuse(format!("belongs to the ledger {}", state_path.display()));
            }
        }
        if let Some((other, _, _)) = seen.iter().find(|(_, _, o)| o.same(&out)) {
            return refuse(format!("is also {other}"));
        }
        seen.push((flag, path, out));
    }
    Ok(())
}

/// Refuse an input named twice (the same path, a link to it, or stdin
/// twice) unless `allowed`.
pub fn check_inputs(inputs: &[String], allowed: bool) -> Result<(), Error> {
    if allowed {
        return Ok(());
    }
    let resolved: Vec<Option<Resolved>> = inputs
        .iter()
        .map(|i| (i != "-").then(|| resolve(Path::new(i))))
        .collect();
    for (j, b) in inputs.iter().enumerate() {
        for (i, a) in inputs[..j].iter().enumerate() {
            let same = match (&resolved[i], &resolved[j]) {
                (Some(x), Some(y)) => x.same(y),
                (None, None) => true,
                _ => false,
            };
            if same {
                return Err(twice(a, b, "the same file"));
            }
        }
    }
    Ok(())
}

/// The error for two inputs that are one: every message would go twice.
pub fn twice(first: &str, second: &str, how: &str) -> Error {
    Error::usage_with_hint(
        format!("{second}: {how} as {first}: every message in it would be sent twice"),
        "name each input once, or pass --allow-duplicate-input if it is meant",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(v: &[&Path]) -> Vec<String> {
        v.iter().map(|p| p.to_str().unwrap().to_string()).collect()
    }

    #[test]
    fn an_output_that_is_an_input_is_refused_however_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let input = d.join("t.csv");
        std::fs::write(&input, "x").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        let state = d.join("state.db");
        let ins = inputs(&[&input]);
        let refused = |out: &Path| check_outputs(&[("--report", out)], &ins, Some(&state)).is_err();
        assert!(refused(&input));
        assert!(refused(&d.join("sub/../t.csv")));
        assert!(refused(&d.join("./t.csv")));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&input, d.join("link.csv")).unwrap();
            assert!(refused(&d.join("link.csv")));
            std::fs::hard_link(&input, d.join("hard.csv")).unwrap();
            assert!(refused(&d.join("hard.csv")));
        }
        assert!(refused(&state));
        assert!(refused(&d.join("state.db-wal")));
        assert!(refused(&d.join("state.db.lock")));
        assert!(refused(&d.join("state.db.journal.1.0")));
        assert!(!refused(&d.join("report.csv")));
        let e = check_outputs(&[("--report", &input)], &ins, Some(&state))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--report") && e.contains("is the input"),
            "{e}"
        );
        // Two outputs on one file.
        let r = d.join("r.csv");
        assert!(check_outputs(&[("--report", &r), ("--rejects", &r)], &ins, None).is_err());
        // Through a link to a file not there yet: two names for one new
        // output, and a name for the ledger about to be made.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("new.csv", d.join("latest.csv")).unwrap();
            let outputs = [
                ("--report", &*d.join("new.csv")),
                ("--rejects", &*d.join("latest.csv")),
            ];
            assert!(check_outputs(&outputs, &ins, None).is_err());
            std::os::unix::fs::symlink("state.db", d.join("summary.json")).unwrap();
            assert!(refused(&d.join("summary.json")));
        }
        // The ledger on an input.
        assert!(check_outputs(&[], &ins, Some(&input)).is_err());
    }

    #[test]
    fn an_input_named_twice_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        let b = dir.path().join("b.csv");
        std::fs::write(&a, "x").unwrap();
        std::fs::write(&b, "x").unwrap();
        assert!(check_inputs(&inputs(&[&a, &b]), false).is_ok());
        assert!(check_inputs(&inputs(&[&a, &dir.path().join("./a.csv")]), false).is_err());
        assert!(check_inputs(&inputs(&[&a, &a]), true).is_ok());
        assert!(check_inputs(&["-".into(), "-".into()], false).is_err());
    }
}
