//! A copied or installed binary needs nothing from the source tree: presets and
//! class lists are built in; runs and datasets land in the working directory.

use std::path::Path;
use std::process::Command;

fn run_in(dir: &Path, binary: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(binary).args(args).current_dir(dir).output().unwrap();
    assert!(
        out.status.success(),
        "twinhead {args:?} in {}: {}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn the_binary_copied_to_an_empty_folder_trains_and_generates_data() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("twinhead");
    std::fs::copy(env!("CARGO_BIN_EXE_twinhead"), &binary).unwrap();

    run_in(dir.path(), &binary, &["train", "--preset", "quick", "--set", "steps=2"]);
    let run = dir.path().join("runs/quick");
    assert!(run.join("config.toml").is_file() && run.join("checkpoints").is_dir());
    assert!(dir.path().join("datasets/synth/voc").is_dir(), "the quick preset's data is generated in the working directory");

    run_in(dir.path(), &binary, &["data", "synth", "--out", "more", "--det-images", "4", "--seg-images", "4"]);
    assert!(dir.path().join("more/synth.json").is_file());

    // A local presets/NAME.toml overrides the built-in preset of that name.
    std::fs::create_dir(dir.path().join("presets")).unwrap();
    let local = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("presets/quick.toml"))
        .unwrap()
        .replace("name = \"quick\"", "name = \"my-quick\"");
    std::fs::write(dir.path().join("presets/quick.toml"), local).unwrap();
    run_in(dir.path(), &binary, &["train", "--preset", "quick", "--set", "steps=1"]);
    assert!(dir.path().join("runs/my-quick/config.toml").is_file());

    // `runs diff` lists only what differs: the name and the steps.
    let out = run_in(dir.path(), &binary, &["runs", "diff", "runs/quick", "runs/my-quick", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&String> = json["differences"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["name", "steps"]);
    assert_eq!(json["differences"]["steps"], serde_json::json!(["2", "1"]));
    let out = Command::new(&binary).args(["runs", "diff", "runs/quick", "runs/none"]).current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("runs/none/config.toml"));
}

/// Runs the binary in `dir` and returns what it did, without judging it.
fn attempt(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_twinhead")).args(args).current_dir(dir).env("XDG_RUNTIME_DIR", dir).output().unwrap()
}

/// A tiny `quick` run's settings.
const TINY: [&str; 16] = [
    "--set", "steps=2", "--set", "data.image_size=64", "--set", "data.batch_size=2", "--set", "data.synthetic.det_images=16",
    "--set", "data.synthetic.seg_images=16", "--set", "data.synthetic.size=64", "--set", "model.width=0.25", "--set", "eval.det_images=4",
];

/// The first hour with one's own data: a dataset set on the command line
/// replaces the preset's generated one for its task; a start that fails on
/// it can be corrected and run again with the same `--out`; `--resume` does
/// not silently drop a `--set`; the masks `data synth` writes read back as
/// they were written.
#[test]
fn a_users_dataset_over_the_default_preset_and_a_start_that_failed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let made = attempt(d, &["data", "synth", "--out", "stand-in", "--det-images", "16", "--seg-images", "16", "--size", "64", "--det-format", "coco", "--seg-format", "masks"]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    // The masks written (ignore255) are read back as such, with no flag.
    let check = attempt(d, &["data", "check", "--ade", "stand-in/masks"]);
    assert!(check.status.success(), "{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));

    // A folder that is not there is named, not blamed on the generator.
    let train = |voc: &str| {
        let mut args = vec!["train", "--out", "runs/mine", "--set"];
        let voc = format!("data.voc={voc}");
        args.push(&voc);
        args.extend(TINY);
        attempt(d, &args)
    };
    let failed = train("nope");
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("data.voc: dataset folder nope does not exist") && !stderr.contains("data.synthetic"), "{stderr}");
    // `--resume` keeps the run's configuration: a --set beside it is refused, not ignored.
    let resumed = attempt(d, &["train", "--out", "runs/mine", "--resume", "--set", "data.voc=stand-in/coco"]);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--set with --resume"), "{stderr}");
    // The same command, corrected, trains in the same folder: COCO for detection, the generated set for segmentation.
    let fixed = train("stand-in/coco");
    assert!(fixed.status.success(), "{}", String::from_utf8_lossy(&fixed.stderr));
    let config = std::fs::read_to_string(d.join("runs/mine/config.toml")).unwrap();
    assert!(config.contains("voc = \"stand-in/coco\""), "{config}");
    assert!(d.join("datasets/synth/ade").is_dir() && !d.join("datasets/synth/voc").exists());
    // A run that trained is not replaced.
    let again = train("stand-in/coco");
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("a run already exists here"));

    // Output into a pipe that closes ends the command quietly (no panic, no exit 101).
    let mut child = Command::new(env!("CARGO_BIN_EXE_twinhead"))
        .args(["eval", "--run", "runs/mine"])
        .current_dir(d)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked") && output.status.code() != Some(101), "{:?}: {stderr}", output.status);
}

/// Nothing in the binary points into the machine that built it.
#[test]
fn the_binary_holds_no_folder_of_the_build_machine() {
    let binary = std::fs::read(env!("CARGO_BIN_EXE_twinhead")).unwrap();
    for needle in ["shared/realdata", concat!(env!("CARGO_MANIFEST_DIR"), "/..")] {
        assert!(!binary.windows(needle.len()).any(|w| w == needle.as_bytes()), "the binary holds {needle:?}");
    }
}

/// The help texts name the three tasks, and each command's checkpoint list is the one the code accepts.
#[test]
fn help_texts_follow_what_the_code_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let help = |args: &[&str]| String::from_utf8(attempt(dir.path(), args).stdout).unwrap();
    let top = help(&["--help"]);
    assert!(top.contains("classification") && !top.contains("(VOC) and segmentation (ADE20K)"), "{top}");
    assert!(help(&["data", "check", "--help"]).contains("classification"));
    let accepted = twinhead::train::checkpoint::CheckpointKind::accepted();
    for command in [&["predict"][..], &["eval"], &["compress"], &["export", "onnx"], &["export", "ultralytics-state-dict"], &["bench", "infer"], &["submit", "track1"]] {
        let text = help(&[command, &["--help"]].concat()).split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(text.contains(&accepted), "`{} --help` lists other checkpoints:\n{text}", command.join(" "));
    }
}

/// `devices` in a shell without a desktop session prints the devices, not the GPU stack's complaints.
#[test]
fn devices_in_a_headless_shell_is_quiet() {
    let output = Command::new(env!("CARGO_BIN_EXE_twinhead")).arg("devices").env_remove("XDG_RUNTIME_DIR").env_remove("WAYLAND_DISPLAY").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && !stderr.contains("XDG_RUNTIME_DIR"), "{stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("cpu"));
}

/// A number no run can use is refused by its flag, before anything starts.
#[test]
fn numbers_out_of_reach_are_refused_naming_their_flag() {
    let dir = tempfile::tempdir().unwrap();
    let output = attempt(dir.path(), &["train", "--nodes", "2", "--node-rank", "1", "--coordinator", "127.0.0.1:1", "--node-timeout", "18446744073709551615"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--node-timeout"), "{stderr}");
}
