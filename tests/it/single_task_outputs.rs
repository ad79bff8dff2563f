//! What a run of one task (a specialist) gives: a network with that head
//! only, evaluations of that task only, and the CLI's outputs of that task:
//! `eval --run`, `predict` (formats of other tasks refused, exit 2), the ONNX
//! export and a compressed model's table.

use std::path::PathBuf;
use std::sync::OnceLock;

use burn::backend::Flex;
use serde_json::Value;
use twinhead::backend::device::DeviceSpec;
use twinhead::train::checkpoint;
use twinhead::train::events::Event;
use twinhead::train::{start, FinishReason, TrainConfig};

use crate::common::{s, twinhead};
use crate::common;

/// `quick` on the tiny synthetic sets with `data.tasks = "seg"`, four steps.
fn run_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = common::process_tempdir();
        let mut overrides = common::data_overrides(&dir.join("synth"));
        overrides.extend(["data.tasks=seg", "steps=4", "eval.every=4", "eval.seg_images=4", "model.width=0.25"].map(String::from));
        let config = TrainConfig::load_preset("quick", &overrides).unwrap();
        let handle = start(Some(config), &dir.join("runs/seg"), false, DeviceSpec::Cpu).unwrap();
        assert_eq!(handle.join().unwrap(), FinishReason::Completed);
        dir
    });
    dir.join("runs/seg")
}

fn succeeds(args: &[&str]) -> String {
    let out = twinhead(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_network_has_its_tasks_head_only_and_evaluations_score_that_task() {
    let run = run_dir();
    let (trainee, state) = checkpoint::load_trainee::<Flex>(&run.join("checkpoints/last"), &Default::default()).unwrap();
    assert!(trainee.net.det_head.is_none() && trainee.net.seg_head.is_some() && trainee.net.cls_head.is_none());
    assert!(state.classes[twinhead::train::Task::Det].is_empty() && state.classes[twinhead::train::Task::Seg].len() == 9 && state.model.det_classes == 0);
    let (events, _) = twinhead::train::run_dir::read_events(&run).unwrap();
    let steps: Vec<_> = events.iter().filter_map(|e| match e { Event::Step { losses, .. } => Some((losses[twinhead::train::Task::Det], losses[twinhead::train::Task::Seg])), _ => None }).collect();
    assert!(steps.len() == 4 && steps.iter().all(|(det, seg)| det.is_none() && seg.is_some()), "{steps:?}");
    let eval = events.iter().find_map(|e| match e { Event::Eval(r) => Some(r.clone()), _ => None }).unwrap();
    assert!(eval.metric[twinhead::train::Task::Seg].is_some() && eval.metric[twinhead::train::Task::Det].is_none() && eval.per_class[twinhead::train::Task::Det].is_empty() && eval.conflict.is_none(), "{eval:?}");
    // The log leaves detection out rather than writing zeros.
    let log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert!(log.contains("\"miou\"") && !log.contains("map50") && !log.contains("det_forgetting"), "{log}");
    assert!(!run.join("checkpoints/best-det").exists() && run.join("checkpoints/best-seg").is_dir());
}

#[test]
fn eval_run_reports_the_runs_task_only() {
    let run = run_dir();
    let report: Value = serde_json::from_str(&succeeds(&["eval", "--run", s(&run), "--json"])).unwrap();
    assert!(report["seg"]["miou"].is_number() && report["seg"]["images"].as_u64() > Some(0), "{report}");
    assert!(report.get("det").is_none() && report.get("pr").is_none() && report.get("track_score").is_none(), "{report}");
    assert!(report["confusion"].get("seg").is_some() && report["confusion"].get("det").is_none());
    let text = succeeds(&["eval", "--run", s(&run)]);
    assert!(text.contains("segmentation") && !text.contains("detection") && !text.contains("mAP50"), "{text}");
}

#[test]
fn predict_writes_masks_and_refuses_a_detection_format() {
    let run = run_dir();
    let out = tempfile::tempdir().unwrap();
    let image = run.parent().unwrap().parent().unwrap().join("synth/ade/images/validation");
    let image = std::fs::read_dir(image).unwrap().map(|e| e.unwrap().path()).find(|p| p.extension().is_some_and(|e| e == "jpg")).unwrap();
    let id = image.file_stem().unwrap().to_str().unwrap().to_string();
    succeeds(&["predict", "--run", s(&run), "--out", s(out.path()), "--format", "twinhead,png", s(&image)]);
    assert!(out.path().join(format!("{id}_mask.png")).is_file() && out.path().join(format!("masks/{id}.png")).is_file());
    assert!(!out.path().join(format!("{id}.json")).exists(), "no box list without a detection head");
    let predictions: Value = serde_json::from_str(&std::fs::read_to_string(out.path().join("predictions.json")).unwrap()).unwrap();
    let keys: Vec<&String> = predictions.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["seg"], "{predictions}");

    let refused = tempfile::tempdir().unwrap();
    let result = twinhead(&["predict", "--run", s(&run), "--out", s(refused.path()), "--format", "coco", s(&image)]);
    assert_eq!(result.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("format coco") && stderr.contains("no detection head"), "{stderr}");
    assert!(std::fs::read_dir(refused.path()).unwrap().next().is_none(), "nothing written");
}

#[test]
fn the_onnx_export_and_the_compression_table_have_the_runs_task_only() {
    let run = run_dir();
    let dir = tempfile::tempdir().unwrap();
    let (file, reference) = (dir.path().join("seg.onnx"), dir.path().join("reference"));
    succeeds(&["export", "onnx", "--run", s(&run), "--out", s(&file), "--decode", "--reference", s(&reference)]);
    let graph = twinhead::onnx::read(&file).unwrap().graph.unwrap();
    let outputs: Vec<String> = graph.output.iter().map(|v| v.name.clone().unwrap()).collect();
    assert_eq!(outputs, ["seg_logits", "seg_classes"]);
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(reference.join("reference.json")).unwrap()).unwrap();
    let mut written: Vec<&String> = manifest.as_object().unwrap().keys().collect();
    written.sort();
    assert_eq!(written, ["images", "seg_classes", "seg_logits"]);

    let work = dir.path().join("run");
    common::copy_dir(&run, &work);
    succeeds(&["compress", "--run", s(&work), "--method", "int8"]);
    let report: Value = serde_json::from_str(&std::fs::read_to_string(work.join("compressed/report.json")).unwrap()).unwrap();
    let baseline = &report["variants"][0]["baseline"];
    assert!(baseline["miou"].is_number() && baseline.get("map50").is_none(), "{baseline}");
    let table = succeeds(&["compress", "report", "--run", s(&work)]);
    let header = table.lines().nth(1).unwrap();
    assert!(header.contains("mIoU") && header.contains("ΔmIoU") && !header.contains("mAP50"), "{table}");
}
