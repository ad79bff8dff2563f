//! What several test files share: tiny runs trained once per test binary
//! (each binary uses some of them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use twinhead::backend::device::DeviceSpec;
use twinhead::train::{start, FinishReason, TrainConfig};

/// The run's folder name under `<tmp>/runs`.
pub const RUN: &str = "tiny";

/// `quick` preset overrides for the tiny synthetic datasets in `synth`.
pub fn data_overrides(synth: &Path) -> Vec<String> {
    vec![
        "data.image_size=64".into(),
        "data.batch_size=2".into(),
        "data.synthetic.det_images=16".into(),
        "data.synthetic.seg_images=16".into(),
        "data.synthetic.size=64".into(),
        format!("data.voc={}", synth.join("voc").display()),
        format!("data.ade={}", synth.join("ade").display()),
    ]
}

/// A new temporary folder that lives as long as the test process, for what a
/// process makes once and its tests share. (A `TempDir` in a static is never
/// dropped: every test process, one per test under nextest, left its folder in
/// the system's temporary folder, 28 GB over a day of runs.) Removed at exit,
/// also after a failed test; a process killed outright still leaves it.
pub fn process_tempdir() -> PathBuf {
    static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    extern "C" fn remove_all() {
        if let Ok(dirs) = DIRS.lock() {
            for dir in dirs.iter() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
    let dir = tempfile::tempdir().unwrap().keep();
    let mut dirs = DIRS.lock().unwrap();
    if dirs.is_empty() {
        // SAFETY: registers a plain function with no arguments, once per process.
        assert_eq!(unsafe { libc::atexit(remove_all) }, 0, "atexit");
    }
    dirs.push(dir.clone());
    dir
}

/// A temporary folder holding `synth/` (tiny synthetic datasets) and
/// `runs/tiny` (a run trained for four steps, evaluated once at step 4, with
/// its last checkpoint and timeline), made once for all the binary's tests.
pub fn trained() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = process_tempdir();
        let mut overrides = data_overrides(&dir.join("synth"));
        overrides.extend(["steps=4", "eval.every=4", "eval.det_images=4", "eval.seg_images=4", "model.width=0.25"].map(String::from));
        let config = TrainConfig::load_preset("quick", &overrides).unwrap();
        let handle = start(Some(config), &dir.join("runs").join(RUN), false, DeviceSpec::Cpu).unwrap();
        assert_eq!(handle.join().unwrap(), FinishReason::Completed);
        dir
    })
}

/// The three-task run's folder name under `<tmp>/runs`.
pub const THREE_TASK_RUN: &str = "three";

/// A temporary folder holding `synth/` (tiny synthetic datasets, crops
/// included) and `runs/three` (`allinone` trained four steps, evaluated at
/// step 4), made once for all the binary's tests.
pub fn trained_three_task() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = process_tempdir();
        let synth = dir.join("synth");
        let overrides = [
            "steps=4",
            "eval.every=4",
            "eval.det_images=4",
            "eval.seg_images=4",
            "eval.cls_images=12",
            "model.width=0.25",
            "data.image_size=64",
            "data.batch_size=2",
            "data.synthetic.det_images=16",
            "data.synthetic.seg_images=16",
            "data.synthetic.cls_images=48",
            "data.synthetic.size=64",
        ]
        .map(String::from)
        .into_iter()
        .chain(["voc", "ade", "cls"].map(|set| format!("data.{set}={}", synth.join(set).display())))
        .collect::<Vec<_>>();
        let config = TrainConfig::load_preset("allinone", &overrides).unwrap();
        let handle = start(Some(config), &dir.join("runs").join(THREE_TASK_RUN), false, DeviceSpec::Cpu).unwrap();
        assert_eq!(handle.join().unwrap(), FinishReason::Completed);
        dir
    })
}

/// Copies a folder and everything in it (a run to change without touching the shared one).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Runs the binary under test with `args`.
pub fn twinhead(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_twinhead")).args(args).output().unwrap()
}

/// [`twinhead`]'s exit code, standard output and standard error, as text.
pub fn twinhead_text(args: &[&str]) -> (i32, String, String) {
    let out = twinhead(args);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A new synthetic set of `images` detection and segmentation images at
/// `size` pixels in every layout: VOC, COCO and YOLO; ADE and mask folders.
pub fn every_layout(images: usize, size: u32, more: &[&str]) -> PathBuf {
    let dir = process_tempdir();
    let (images, size) = (images.to_string(), size.to_string());
    let args = ["data", "synth", "--out", s(&dir), "--det-images", &images, "--seg-images", &images, "--size", &size];
    let formats = ["--det-format", "coco", "--det-format", "yolo", "--seg-format", "masks"];
    let (code, stdout, stderr) = twinhead_text(&[&args[..], &formats[..], more].concat());
    assert_eq!(code, 0, "{stdout}{stderr}");
    dir
}

/// A path as a command-line argument.
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}
