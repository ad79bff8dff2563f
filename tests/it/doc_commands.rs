//! Every `twinhead …` command the README and `docs/` show still works, so a
//! renamed flag breaks this test and not a reader.
//!
//! Commands are the lines of fenced code blocks that start with `twinhead` (or
//! `cargo run --release --`). Each one is parsed by the real command-line
//! parser; a synopsis (`[--seed N]`, `voc07|voc|coco`, `runs/NAME`) is parsed
//! with its options present and its placeholders filled in. The commands of
//! `sh` blocks are examples a reader types: they are also run, in the order of
//! the pages, in one scratch folder whose synthetic datasets are tiny, with
//! training, fine-tuning and benchmarks cut to a couple of steps; the
//! datasets of a user's own that they name (`datasets/coco`,
//! `datasets/bdd100k-seg`) are stood in for by tiny generated ones in their
//! layout. An example that cannot run here says why in a comment that starts
//! with `needs` (`# needs a GPU`, `# needs real data`, `# needs a second
//! machine`); any other example must run and exit 0.
//!
//! A newcomer's test runs the README as written, from an empty folder: the
//! headless first run and the first-session block, with every training loop
//! cut short by `TWINHEAD_STEPS` (docs/cli.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use twinhead::cli::Cli;
use twinhead::train::TrainConfig;

/// A command found in a page: its words after `twinhead`, where, and whether it is an example to run.
#[derive(Debug, Clone)]
struct DocCommand {
    args: Vec<String>,
    place: String,
    example: bool,
    /// What the example needs that this machine lacks (its `# needs …` comment).
    needs: Option<String>,
}

fn pages() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    std::iter::once(root.join("README.md")).chain(docs).collect()
}

/// The `twinhead` commands in a page's fenced code blocks.
fn commands_in(page: &Path) -> Vec<DocCommand> {
    let text = std::fs::read_to_string(page).unwrap();
    let name = page.file_name().unwrap().to_string_lossy().to_string();
    let mut commands = Vec::new();
    let mut block: Option<bool> = None; // Some(is_sh) inside a fence
    let mut pending = String::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(info) = trimmed.strip_prefix("```") {
            block = match block {
                None => Some(matches!(info.trim(), "sh" | "bash" | "shell" | "console")),
                Some(_) => None,
            };
            continue;
        }
        let Some(example) = block else { continue };
        let joined = format!("{pending}{trimmed}");
        if let Some(head) = joined.strip_suffix('\\') {
            pending = format!("{head} ");
            continue;
        }
        pending.clear();
        let (line, comment) = if example { strip_shell_comment(&joined) } else { (strip_note(&joined), String::new()) };
        let needs = comment.strip_prefix("needs ").map(str::to_string);
        let rest = ["twinhead", "cargo run --release --"].iter().find_map(|p| {
            line.strip_prefix(p).filter(|r| r.is_empty() || r.starts_with(' '))
        });
        if let Some(rest) = rest {
            commands.push(DocCommand { args: shell_words(rest), place: format!("{name}:{}", i + 1), example, needs });
        }
    }
    commands
}

/// An `sh` line without its `# comment`, and the comment.
fn strip_shell_comment(line: &str) -> (String, String) {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' | '\'' => quoted = !quoted,
            '#' if !quoted && (i == 0 || line[..i].ends_with(' ')) => {
                return (line[..i].trim_end().to_string(), line[i + 1..].trim().to_string())
            }
            _ => {}
        }
    }
    (line.to_string(), String::new())
}

/// A synopsis line without the note in parentheses after a wide gap.
fn strip_note(line: &str) -> String {
    match line.find("  (") {
        Some(at) => line[..at].trim_end().to_string(),
        None => line.to_string(),
    }
}

/// Words as a shell splits them (quotes group, and are removed).
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut in_word = false;
    for c in text.chars() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (_, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// A synopsis made concrete: options present, the first of each `a|b` choice,
/// placeholders given values of their kind.
fn filled_in(args: &[String]) -> Vec<String> {
    args.iter()
        .filter(|a| !matches!(a.as_str(), "..." | "…" | "[" | "]"))
        .map(|a| {
            let a = a.replace(['[', ']'], "").replace("...", "").replace('…', "");
            let a = a.split('|').next().unwrap_or_default().trim_end_matches('+').to_string();
            placeholder_value(&a).map_or(a.clone(), str::to_string)
        })
        .collect()
}

/// What a synopsis placeholder stands for, e.g. `N` → 1, `runs/NAME` → a run folder.
fn placeholder_value(word: &str) -> Option<&'static str> {
    Some(match word {
        "N" => "2",
        "PX" => "64",
        "T" | "A" | "F" => "0.5",
        "P" => "quick",
        "D" => "cpu",
        "C" => "last",
        "S" => "train",
        "ADDR" => "127.0.0.1:7878",
        "DIR" | "FILE" | "PATH" | "IMAGE" | "RUN" | "runs/NAME" => "x",
        _ => return None,
    })
}

fn parses(args: &[String]) -> Result<(), String> {
    let argv = std::iter::once("twinhead".to_string()).chain(args.iter().cloned());
    match Cli::try_parse_from(argv) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn every_documented_command_parses() {
    let commands: Vec<DocCommand> = pages().iter().flat_map(|p| commands_in(p)).collect();
    assert!(commands.len() >= 30, "found only {} commands in the docs", commands.len());
    let mut failures = Vec::new();
    for command in &commands {
        let args = if command.example { command.args.clone() } else { filled_in(&command.args) };
        if let Err(e) = parses(&args) {
            failures.push(format!("{}: twinhead {}\n  parsed as {:?}: {e}", command.place, command.args.join(" "), args));
        }
    }
    assert!(failures.is_empty(), "documented commands that no longer parse:\n{}", failures.join("\n"));
}

#[test]
fn a_renamed_flag_would_be_caught() {
    // The check above can fail: a flag the parser does not know, or a placeholder left in.
    assert!(parses(&filled_in(&shell_words("data synth --out DIR [--seed N]"))).is_ok());
    assert!(parses(&shell_words("data synth --output x")).is_err());
    assert!(parses(&shell_words("train --steps 2")).is_err());
    assert!(parses(&filled_in(&shell_words("eval det --voc DIR --split S --pred PATH --metric voc07|voc|coco"))).is_ok());
    assert!(parses(&shell_words("eval det --voc x --split s --pred p --metric voc12")).is_err());
}

/// Settings that make every documented example cheap: tiny data, a quarter-width network, two steps.
const TINY_RUN: &[&str] = &[
    "steps=2",
    "data.image_size=64",
    "data.batch_size=2",
    "data.threads=1",
    "data.synthetic.det_images=24",
    "data.synthetic.seg_images=24",
    "data.synthetic.size=64",
    "model.width=0.25",
    "eval.every=2",
    "eval.det_images=4",
    "eval.seg_images=4",
    "checkpoint.every=2",
];
/// Presets whose strategy switches task at `switch_step` (beyond two steps otherwise).
const SEQUENTIAL_PRESETS: &[&str] = &["naive", "sequential", "freeze", "lwf", "ewc", "replay", "pseudo"];

/// The value after `--flag`, if given.
fn option<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).map(String::as_str)
}

/// Sets `--flag value`, replacing a value the page gave.
fn set_option(args: &mut Vec<String>, flag: &str, value: &str) {
    match args.iter().position(|a| a == flag) {
        Some(i) if i + 1 < args.len() => args[i + 1] = value.to_string(),
        _ => args.extend([flag.to_string(), value.to_string()]),
    }
}

/// The example as it runs here: the same command on tiny data and a couple of
/// steps. None for the window, which needs a display, and for a run on data
/// of the user's that no stand-in replaces (which its page must mark).
fn cheap(args: &[String], sandbox: &Path) -> Option<Vec<String>> {
    let mut args = args.to_vec();
    let words: Vec<String> = args.iter().take_while(|a| !a.starts_with('-')).cloned().collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let tiny_sets = |args: &mut Vec<String>| {
        let preset = option(args, "--preset").unwrap_or("quick").to_string();
        for set in TINY_RUN {
            args.extend(["--set".to_string(), set.to_string()]);
        }
        if SEQUENTIAL_PRESETS.contains(&preset.as_str()) {
            args.extend(["--set".to_string(), "strategy.switch_step=1".to_string()]);
        }
    };
    match words.as_slice() {
        _ if args.iter().any(|a| a == "--help" || a == "-h") => {}
        [] | ["help", ..] => return None,
        ["train"] if !args.iter().any(|a| a == "--resume") => {
            // The configuration as the page gives it must be valid (e.g. a switch step inside the run).
            let sets: Vec<String> = args.windows(2).filter(|w| w[0] == "--set").map(|w| w[1].clone()).collect();
            match TrainConfig::load_preset(option(&args, "--preset").unwrap_or("quick"), &sets) {
                Err(e) => panic!("`twinhead {}`: its configuration is invalid: {e:#}", args.join(" ")),
                // A preset on the user's own data (voc-ade…) with no stand-in here: valid, not run.
                Ok(config) if config.data.synthetic_set().unwrap().is_none() && !stood_in(&config) => return None,
                Ok(_) => {}
            }
            // Each example is a fresh run: an earlier example's folder of the same name goes.
            let out = option(&args, "--out").map(PathBuf::from).unwrap_or_else(|| {
                Path::new("runs").join(option(&args, "--preset").unwrap_or("quick"))
            });
            let _ = std::fs::remove_dir_all(sandbox.join(out));
            tiny_sets(&mut args);
        }
        ["bench", "train"] => {
            tiny_sets(&mut args);
            set_option(&mut args, "--warmup", "1");
            set_option(&mut args, "--steps", "1");
        }
        ["bench", "data"] => {
            set_option(&mut args, "--voc", "datasets/synth/voc");
            set_option(&mut args, "--images", "8");
            set_option(&mut args, "--size", "64");
        }
        ["data", "synth"] => {
            set_option(&mut args, "--det-images", "24");
            set_option(&mut args, "--seg-images", "24");
            set_option(&mut args, "--size", "64");
        }
        ["compress"] => set_option(&mut args, "--finetune-steps", "2"),
        _ => {}
    }
    Some(args)
}

/// Whether every dataset of `config` is one [`stand_ins`] writes or the synthetic set.
fn stood_in(config: &TrainConfig) -> bool {
    let ours = ["datasets/synth/voc", "datasets/synth/ade", "datasets/synth/cls", "datasets/coco", "datasets/bdd100k-seg"];
    config.data.folders().iter().all(|(_, dir)| ours.iter().any(|o| Path::new(o) == dir.as_path()))
}

/// Writes the user datasets the pages name, tiny and generated, in their layouts:
/// `datasets/coco` (COCO JSON, splits train2017 and val2017) and
/// `datasets/bdd100k-seg` (train-id masks, 255 ignored).
fn stand_ins(sandbox: &Path, run: &dyn Fn(&[String]) -> std::process::Output) {
    let made = run(&shell_words("data synth --out stand-ins --det-images 24 --seg-images 24 --size 64 --det-format coco --seg-format masks"));
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let (from, datasets) = (sandbox.join("stand-ins"), sandbox.join("datasets"));
    std::fs::rename(from.join("masks"), datasets.join("bdd100k-seg")).unwrap();
    let coco = datasets.join("coco");
    std::fs::rename(from.join("coco"), &coco).unwrap();
    for split in ["train", "val"] {
        std::fs::rename(coco.join("images").join(split), coco.join("images").join(format!("{split}2017"))).unwrap();
        let json = coco.join("annotations");
        std::fs::rename(json.join(format!("instances_{split}.json")), json.join(format!("instances_{split}2017.json"))).unwrap();
    }
}

#[test]
fn the_example_commands_run() {
    let sandbox = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_twinhead");
    let run = |args: &[String]| Command::new(bin).args(args).current_dir(sandbox.path()).env("XDG_RUNTIME_DIR", sandbox.path()).output().unwrap();
    // The datasets the presets read, generated tiny (the presets' synthetic settings are cut to match).
    let synth = run(&shell_words("data synth --out datasets/synth --seed 0 --det-images 24 --seg-images 24 --size 64"));
    assert!(synth.status.success(), "{}", String::from_utf8_lossy(&synth.stderr));
    stand_ins(sandbox.path(), &run);

    let examples: Vec<DocCommand> = pages().iter().flat_map(|p| commands_in(p)).filter(|c| c.example).collect();
    assert!(examples.len() >= 15, "found only {} example commands", examples.len());
    let (mut ran, mut marked) = (0, 0);
    for example in &examples {
        if example.needs.is_some() {
            marked += 1;
            continue;
        }
        let Some(args) = cheap(&example.args, sandbox.path()) else {
            assert!(
                example.args.is_empty() || example.args[0] == "help",
                "{}: `twinhead {}` cannot run on generated data: give it a stand-in here, or mark it `# needs …` in its page",
                example.place,
                example.args.join(" ")
            );
            continue;
        };
        let output = run(&args);
        assert!(
            output.status.success(),
            "{}: `twinhead {}` (run as `twinhead {}`) exited {:?}\nstdout:\n{}\nstderr:\n{}",
            example.place,
            example.args.join(" "),
            args.join(" "),
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        ran += 1;
    }
    eprintln!("ran {ran} documented example commands; {marked} marked as needing what this machine lacks");
}

/// The fenced `sh` lines of the README section headed `heading`.
fn readme_block(heading: &str) -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = text.split(&format!("## {heading}\n")).nth(1).unwrap_or_else(|| panic!("README has no section {heading:?}"));
    let block = section.split("```sh\n").nth(1).expect("a sh block").split("```").next().unwrap();
    block.lines().map(|l| strip_shell_comment(l).0).filter(|l| !l.is_empty()).collect()
}

#[test]
fn a_newcomer_runs_the_readme_as_written() {
    let empty = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_twinhead");
    // The headless first run, then the first session, exactly as the README writes them.
    let mut lines = readme_block("Run it, test it");
    lines.extend(readme_block("A first session"));
    assert!(lines.len() >= 5, "{lines:?}");
    for line in &lines {
        let words = shell_words(line);
        let args = match words.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["cargo", "run", "--release", "--", ..] => words[4..].to_vec(),
            ["twinhead", ..] => words[1..].to_vec(),
            _ => panic!("README: {line:?} is not a twinhead command"),
        };
        let output = Command::new(bin)
            .args(&args)
            .current_dir(empty.path())
            .env("XDG_RUNTIME_DIR", empty.path())
            .env("TWINHEAD_STEPS", "6")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "README: `{line}` exited {:?}\nstdout:\n{}\nstderr:\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // What the session made: its runs, their best checkpoints, the compressed model.
    for path in ["runs/quick/checkpoints/last", "runs/seq/checkpoints/switch", "runs/replay/checkpoints/best-det", "runs/replay/compressed"] {
        assert!(empty.path().join(path).exists(), "{path} was not made");
    }
}
