//! Integration tests: what is generated from the command line's own
//! definitions, `completions <shell>` and `man`, through the real binary.
//! Each names every command and the flags of `run`, so a flag added to
//! `src/cli/` shows in both without another edit.

use std::process::{Command, Stdio};

use crate::util::{self, Dir};

fn output(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(util::bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Flags of `run` that every completion script and the run page know.
const RUN_FLAGS: [&str; 8] = [
    "--api-url",
    "--emulator",
    "--shard",
    "--ca-cert",
    "--proxy",
    "--allow-insecure-http",
    "--credentials-file",
    "--report",
];

#[test]
fn completions_for_every_shell_know_the_commands_and_flags() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (code, script, err) = output(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(err.is_empty(), "{shell}: {err}");
        for word in ["run", "check", "emulator", "completions", "man"] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
        for flag in RUN_FLAGS.iter().chain(&["--tls", "--tls-name"]) {
            // fish writes `-l ca-cert`, the others `--ca-cert`.
            let bare = flag.trim_start_matches('-');
            assert!(
                script.contains(flag) || script.contains(&format!("-l {bare}")),
                "{shell}: no {flag}"
            );
        }
    }
    // bash reads its script without a syntax error, and it completes.
    let (_, script, _) = output(&["completions", "bash"]);
    let dir = Dir::new();
    let path = dir.write("transcript-import.bash", &script);
    let check = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {path} && COMP_WORDS=(transcript-import run --ca) COMP_CWORD=2 && \
             _transcript__import transcript-import --ca run && printf '%s\\n' \"${{COMPREPLY[@]}}\""
        ))
        .output();
    if let Ok(check) = check {
        let said = String::from_utf8_lossy(&check.stdout);
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        assert!(said.lines().any(|l| l == "--ca-cert"), "{said}");
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let (code, _, err) = output(&["completions", "tcsh"]);
    assert_eq!(code, 2);
    assert!(err.contains("possible values: bash"), "{err}");
}

#[test]
fn man_prints_the_main_page_and_writes_one_per_command() {
    let (code, page, err) = output(&["man"]);
    assert_eq!(code, 0, "{err}");
    assert!(page.starts_with(".ie \\n(.g .ds Aq"), "{page}");
    assert!(page.contains(".TH transcript-import 1"), "{page}");
    for command in ["run", "check", "emulator", "completions", "man"] {
        assert!(
            page.contains(&format!("transcript\\-import\\-{command}(1)")),
            "no {command} in the main page"
        );
    }

    let dir = Dir::new();
    let (code, out, err) = output(&["man", "--dir", dir.root().to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    let mut names: Vec<String> = util::files_under(dir.root())
        .into_iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "transcript-import-check.1",
            "transcript-import-completions.1",
            "transcript-import-emulator.1",
            "transcript-import-man.1",
            "transcript-import-report.1",
            "transcript-import-run.1",
            "transcript-import.1",
        ]
    );
    let run = std::fs::read_to_string(dir.path("transcript-import-run.1")).unwrap();
    for flag in RUN_FLAGS {
        // roff escapes every dash.
        assert!(
            run.contains(&flag.replace('-', "\\-")),
            "no {flag} in the run page"
        );
    }
    assert!(
        run.contains("JOB_COMPLETION_INDEX"),
        "--shard's help is there"
    );

    // man(1) renders it, when it is installed.
    if let Ok(rendered) = Command::new("man")
        .arg("-l")
        .arg(dir.path("transcript-import-run.1"))
        .env("MANWIDTH", "100")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
    {
        if rendered.status.success() {
            let text = String::from_utf8_lossy(&rendered.stdout);
            assert!(text.contains("--ca-cert"), "{text}");
        }
    }
    // A directory that cannot be written: exit 2, naming it.
    let (code, _, err) = output(&["man", "--dir", "/nonexistent/man1"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/man1"), "{err}");
}
