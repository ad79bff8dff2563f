//! What a three-task run gives the CLI: `eval --run` with classification and
//! the track score, `predict` with each image's top-5 classes, the Track1
//! submission file, and a compressed model measured on all three tasks.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::{s};
use crate::common;
use crate::common::trained_three_task as trained;

fn run_dir() -> PathBuf {
    trained().join("runs").join(common::THREE_TASK_RUN)
}

fn twinhead(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_twinhead")).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The first `n` images of a folder, sorted.
fn images(dir: &Path, n: usize) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "jpg")).collect();
    files.sort();
    files.truncate(n);
    files
}

#[test]
fn eval_run_scores_classification_and_the_track() {
    let report: Value = serde_json::from_slice(&twinhead(&["eval", "--run", s(&run_dir()), "--json"]).stdout).unwrap();
    let cls = &report["cls"];
    let top1 = cls["top1"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&top1) && cls["top5"].as_f64().unwrap() >= top1);
    let counts: u64 = cls["confusion"]["counts"].as_array().unwrap().iter().flat_map(|row| row.as_array().unwrap()).map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(counts, cls["images"].as_u64().unwrap());
    let mean = (report["det"]["map50"].as_f64().unwrap() + report["seg"]["miou"].as_f64().unwrap() + top1) / 3.0;
    assert!((report["track_score"].as_f64().unwrap() - mean).abs() < 1e-12, "{report}");
    let text = String::from_utf8(twinhead(&["eval", "--run", s(&run_dir())]).stdout).unwrap();
    assert!(text.contains(&format!("track score (mean of mAP50, mIoU and top-1) {mean:.4}")), "{text}");
}

#[test]
fn predict_gives_each_image_its_top5_classes() {
    let out_dir = tempfile::tempdir().unwrap();
    let crops = images(&trained().join("synth/cls/images"), 2);
    // (Results are named by file stem: the scene must not share a crop's.)
    let scene = images(&trained().join("synth/voc/JPEGImages"), 3).split_off(2);
    let run = run_dir();
    let mut args = vec!["predict", "--run", s(&run), "--out", s(out_dir.path())];
    args.extend(crops.iter().chain(&scene).map(|p| s(p)));
    let stdout = String::from_utf8(twinhead(&args).stdout).unwrap();
    assert_eq!(stdout.matches(", class ").count(), 3, "{stdout}");
    let predictions: Value = serde_json::from_str(&std::fs::read_to_string(out_dir.path().join("predictions.json")).unwrap()).unwrap();
    let classes: Vec<String> = std::fs::read_to_string(trained().join("synth/cls/classes.txt")).unwrap().lines().map(String::from).collect();
    let cls = predictions["cls"].as_object().unwrap();
    assert_eq!(cls.len(), 3);
    for (image, top) in cls {
        let top = top.as_array().unwrap();
        let scores: Vec<f64> = top.iter().map(|t| t["score"].as_f64().unwrap()).collect();
        assert_eq!(top.len(), 5, "{image}");
        assert!(scores.windows(2).all(|w| w[0] >= w[1]) && scores.iter().sum::<f64>() <= 1.0 + 1e-6, "{image}: {scores:?}");
        assert!(top.iter().all(|t| classes.contains(&t["class"].as_str().unwrap().to_string())), "{image}: {top:?}");
    }
}

#[test]
fn submit_track1_writes_every_task_in_the_tracks_layout() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("track1");
    let lists = [("cls", "synth/cls/images"), ("dec", "synth/voc/JPEGImages"), ("seg", "synth/ade/images/validation")];
    for (task, folder) in lists {
        std::fs::create_dir_all(data.join(task)).unwrap();
        let listed: String = images(&trained().join(folder), 3).iter().map(|p| format!("{}\n", p.display())).collect();
        std::fs::write(data.join(task).join("test.txt"), listed).unwrap();
    }
    let out = dir.path().join("submission.json");
    twinhead(&["submit", "track1", "--run", s(&run_dir()), "--data", s(&data), "--out", s(&out)]);
    let submission: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let cls = submission["cls"].as_array().unwrap();
    assert_eq!(cls.len(), 3);
    for entry in cls {
        let (name, class) = entry.as_object().unwrap().iter().next().unwrap();
        assert!(name.ends_with(".jpg") && class.as_u64().unwrap() < 12, "{entry}");
    }
    for result in submission["dec"].as_array().unwrap() {
        assert!((1..=3).contains(&result["image_id"].as_i64().unwrap()), "{result}");
        assert!((1..=20).contains(&result["category_id"].as_i64().unwrap()) && result["bbox"].as_array().unwrap().len() == 4);
    }
    let seg = submission["seg"].as_array().unwrap();
    assert_eq!(seg.len(), 3);
    for entry in seg {
        let (name, classes) = entry.as_object().unwrap().iter().next().unwrap();
        assert!(name.ends_with(".png"), "{name}");
        // Every class id a key, in id order (ids as text: serde_json's map sorts, so compare as read).
        let keys: Vec<usize> = classes.as_object().unwrap().keys().map(|k| k.parse().unwrap()).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..sorted.len()).collect::<Vec<_>>(), "{name}");
    }
}

#[test]
fn a_compressed_three_task_model_is_measured_on_classification_too() {
    let work = tempfile::tempdir().unwrap();
    let run = work.path().join("run");
    common::copy_dir(&run_dir(), &run);
    twinhead(&["compress", "--run", s(&run), "--method", "prune:0.3", "--finetune-steps", "1"]);
    let report: Value = serde_json::from_str(&std::fs::read_to_string(run.join("compressed/report.json")).unwrap()).unwrap();
    let variant = &report["variants"][0];
    for side in ["measured", "baseline"] {
        let top1 = variant[side]["top1"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&top1), "{side}: {variant}");
    }
    let table = String::from_utf8(twinhead(&["compress", "report", "--run", s(&run)]).stdout).unwrap();
    assert!(table.contains("Δtop-1"), "{table}");
}

/// TensorBoard's timeline shows the classification images too, each framed
/// green or red by whether its top-1 class is right.
#[test]
fn tensorboard_shows_the_classification_timeline_images() {
    use twinhead::tensorboard::proto::{Kind, What};
    let (events, _) = twinhead::tensorboard::read_file(&twinhead::train::tensorboard_log::events_path(&run_dir())).unwrap();
    let tags: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.what {
            Some(What::Summary(summary)) => Some(summary.value.iter().filter(|v| matches!(v.value, Some(Kind::Image(_)))).map(|v| v.tag.clone())),
            _ => None,
        })
        .flatten()
        .collect();
    let cls = tags.iter().filter(|t| t.starts_with("timeline/cls/")).count();
    assert!(cls > 0 && tags.iter().any(|t| t.starts_with("timeline/det/")), "{tags:?}");
}
