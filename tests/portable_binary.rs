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
