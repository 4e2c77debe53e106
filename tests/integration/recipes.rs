//! The README's jq recipes, run exactly as written there: each `jq -c
//! '...' FILE | transcript-import ...` command of its "Nested JSON"
//! section is taken from README.md, jq (`/usr/bin/jq`, which `.ci/run`
//! installs) runs its program on the fixture of that shape, and its output
//! goes through a pipe into the real binary, which imports it into the
//! emulator on loopback. What the emulator stored must be what the nested
//! file holds.

use std::process::{Command, Stdio};

use transcript_import::emulator::{Config, Emulator};

use crate::fixtures::{self, Expected};
use crate::formats::{received, Received};
use crate::util::{self, Dir, Ran};

const JQ: &str = "/usr/bin/jq";

/// One recipe: the jq program, the file it reads, and the importer's
/// arguments after `transcript-import`.
#[derive(Debug)]
struct Recipe {
    program: String,
    file: String,
    args: Vec<String>,
}

/// The recipes of the README's "Nested JSON" section, in order.
fn recipes() -> Vec<Recipe> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find("\n### Nested JSON")
        .expect("README has a Nested JSON section");
    let section = &readme[start + 1..];
    let end = section[4..]
        .find("\n## ")
        .into_iter()
        .chain(section[4..].find("\n### "))
        .min()
        .map_or(section.len(), |e| e + 4);
    // Shell line continuations joined, as the shell joins them.
    let section = section[..end].replace("\\\n", " ");
    let mut out = Vec::new();
    let mut rest = section.as_str();
    while let Some(at) = rest.find("jq -c '") {
        let after = &rest[at + "jq -c '".len()..];
        let close = after.find('\'').expect("the program's quote closes");
        let program = after[..close].to_string();
        let line = after[close + 1..].lines().next().unwrap_or_default();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [file, "|", "transcript-import", args @ ..] => out.push(Recipe {
                program,
                file: file.to_string(),
                args: args.iter().map(|a| a.to_string()).collect(),
            }),
            _ => panic!("a recipe is `jq -c '...' FILE | transcript-import ...`: {line}"),
        }
        rest = &after[close + 1..];
    }
    out
}

/// `jq -c PROGRAM FIXTURE | transcript-import ARGS` (jq found by the
/// test), the importer's
/// `--emulator` replaced by `extra` (the test's emulator, ledger, report).
fn pipe(recipe: &Recipe, fixture: &str, extra: &[String]) -> Ran {
    let mut jq = Command::new(JQ)
        .arg("-c")
        .arg(&recipe.program)
        .arg(fixtures::path(fixture))
        .stdout(Stdio::piped())
        .spawn()
        .expect("jq starts");
    let mut args: Vec<String> = Vec::new();
    for a in &recipe.args {
        if a == "--emulator" {
            args.extend(extra.iter().cloned());
        } else {
            args.push(a.clone());
        }
    }
    let out = Command::new(util::bin())
        .args(&args)
        .env("ASAPP_API_ID", "x")
        .env("ASAPP_API_SECRET", "y")
        .stdin(Stdio::from(jq.stdout.take().expect("jq's stdout")))
        .output()
        .expect("the importer runs");
    let status = jq.wait().expect("jq ends");
    assert!(status.success(), "jq failed on {fixture}: {status}");
    out.into()
}

fn sorted(messages: &[Expected]) -> Vec<Received> {
    let mut out: Vec<Received> = messages
        .iter()
        .map(|m| Received {
            conversation: m.conversation.to_string(),
            instant: chrono::DateTime::parse_from_rfc3339(m.instant)
                .unwrap()
                .with_timezone(&chrono::Utc),
            role: m.role.to_string(),
            sender: m.sender.to_string(),
            text: m.text.to_string(),
        })
        .collect();
    out.sort();
    out
}

#[test]
fn readme_jq_recipes_import_the_nested_shapes() {
    if util::tool(&[JQ], "jq", "the README's jq recipes are not run").is_none() {
        return;
    }
    let recipes = recipes();
    let shapes = [
        (
            "conversations.jsonl",
            fixtures::NESTED_MESSAGES,
            fixtures::nested_messages_expected(),
        ),
        (
            "dialogues.jsonl",
            fixtures::NESTED_TURNS,
            fixtures::nested_turns_expected(),
        ),
    ];
    assert_eq!(
        recipes.iter().map(|r| r.file.as_str()).collect::<Vec<_>>(),
        shapes.iter().map(|s| s.0).collect::<Vec<_>>(),
        "the README's recipes: {recipes:?}"
    );
    for (recipe, (_, fixture, messages)) in recipes.iter().zip(&shapes) {
        assert_eq!(recipe.args.first().map(String::as_str), Some("run"));
        assert_eq!(recipe.args.last().map(String::as_str), Some("-"));
        assert!(recipe.args.iter().any(|a| a == "--emulator"), "{recipe:?}");

        let emu = Emulator::start(Config::default()).expect("emulator starts");
        let dir = Dir::new();
        let report = dir.path("report.csv");
        let extra = [
            "--api-url".to_string(),
            emu.url(),
            "--state".to_string(),
            dir.path("state.db").to_str().unwrap().to_string(),
            "--report".to_string(),
            report.to_str().unwrap().to_string(),
            "--quiet".to_string(),
        ];
        let ran = pipe(recipe, fixture, &extra);
        assert_eq!(ran.code, 0, "{fixture}: {ran:?}");
        let rows = util::report(&report);
        assert_eq!(rows.len(), messages.len(), "{rows:?}");
        assert!(
            rows.iter()
                .all(|r| r.status == "created" && r.source == "-"),
            "{rows:?}"
        );
        assert_eq!(received(&emu, &rows), sorted(messages), "{fixture}");

        // The same pipe into `check -` (the rehearsal the README advises).
        let check = Recipe {
            program: recipe.program.clone(),
            file: recipe.file.clone(),
            args: recipe
                .args
                .iter()
                .map(|a| {
                    if a == "run" {
                        "check".into()
                    } else {
                        a.clone()
                    }
                })
                .collect(),
        };
        let ran = pipe(&check, fixture, &[]);
        assert_eq!(ran.code, 0, "{fixture}: {ran:?}");
        assert!(
            ran.stdout
                .contains(&format!("valid:         {}\n", messages.len())),
            "{}",
            ran.stdout
        );
        assert!(ran.stdout.contains("  -: JSONL, UTF-8"), "{}", ran.stdout);
    }
}
