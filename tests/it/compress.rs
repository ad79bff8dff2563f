//! `twinhead compress` on a tiny trained run: a chained recipe with
//! fine-tuning writes a checkpoint that `eval`, `predict` and the report read;
//! a compressed network scores the same after save → load; bad input exits 2
//! and leaves the run folder as it was.

use std::ops::ControlFlow;
use std::path::Path;
use std::process::Command;

use burn::module::Module;
use serde_json::Value;
use twinhead::compress::{int8, lowrank, prune};
use twinhead::model::postprocess::PostprocessConfig;
use twinhead::predictor::{InferenceBackend, Predictor};
use twinhead::train::checkpoint::{self, CheckpointKind};
use twinhead::train::evaluate::{validate, ValidationSettings, ValidationSplits};
use twinhead::train::run_dir;
use twinhead::train::trainee::Trainee;

use crate::common::{s, twinhead};
use crate::common::{trained, RUN};

/// A copy of the trained run (each test compresses its own).
fn run_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = trained().join("runs").join(RUN);
    let status = Command::new("cp").args(["-r", &format!("{}/.", from.display()), s(dir.path())]).status().unwrap();
    assert!(status.success());
    dir
}

/// Every file under `dir` with its contents.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push((path.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn a_chained_recipe_writes_a_checkpoint_that_eval_predict_and_the_report_read() {
    let run = run_copy();
    let out = twinhead(&["compress", "--run", s(run.path()), "--method", "prune:0.5+lowrank:0.9+int8", "--finetune-steps", "2", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let row: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(row["checkpoint"], "compressed/prune-0.5+lowrank-0.9+int8");
    assert_eq!(row["finetune_steps"], 2);
    let (measured, baseline) = (&row["measured"], &row["baseline"]);
    assert!(measured["params"].as_u64() < baseline["params"].as_u64());
    assert!(measured["macs"].as_u64() < baseline["macs"].as_u64());
    assert!(measured["file_bytes"].as_u64().unwrap() * 4 < baseline["file_bytes"].as_u64().unwrap(), "{measured} vs {baseline}");
    // The fine-tuning run's scratch folder is gone; the checkpoint holds the edits.
    let compressed = run.path().join("compressed");
    assert!(!compressed.join("prune-0.5+lowrank-0.9+int8.work").exists());
    let state = checkpoint::read_state(&compressed.join("prune-0.5+lowrank-0.9+int8")).unwrap();
    assert_eq!(state.model.reshape.len(), 2);
    // eval --run with the compressed checkpoint (either spelling) gives the report's figures.
    for name in ["compressed/prune-0.5+lowrank-0.9+int8", "compressed/prune:0.5+lowrank:0.9+int8"] {
        let out = twinhead(&["eval", "--run", s(run.path()), "--checkpoint", name, "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let eval: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(eval["det"]["map50"].as_f64(), measured["map50"].as_f64());
        assert_eq!(eval["seg"]["miou"].as_f64(), measured["miou"].as_f64());
    }
    let image = std::fs::read_dir(trained().join("synth/voc/JPEGImages")).unwrap().flatten().next().unwrap().path();
    let predictions = tempfile::tempdir().unwrap();
    let out = twinhead(&[
        "predict", "--run", s(run.path()), "--checkpoint", "compressed/prune:0.5+lowrank:0.9+int8", "--out", s(predictions.path()), s(&image),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = twinhead(&["compress", "report", "--run", s(run.path()), "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["variants"][0], row);
    let out = twinhead(&["compress", "report", "--run", s(run.path())]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("baseline (last)") && table.contains("prune:0.5+lowrank:0.9+int8"), "{table}");
}

#[test]
fn a_compressed_network_scores_the_same_after_save_and_load() {
    let run = run_copy();
    let config = run_dir::read_config(run.path()).unwrap();
    let dir = checkpoint::find(run.path(), &CheckpointKind::Last).unwrap();
    let (mut net, mut state) = checkpoint::load_inference_net::<InferenceBackend>(&dir, &Default::default()).unwrap();
    let params = net.num_params();
    state.model.reshape.push(prune::prune(&mut net, 0.3).reshape);
    state.model.reshape.push(lowrank::factorize(&mut net, 0.8, true).unwrap().reshape);
    int8::quantize(&mut net);
    assert!(net.num_params() < params);
    let sets = ValidationSplits::open(&config.data).unwrap().subsets(twinhead::model::task::PerTask::from([usize::MAX; 3])).unwrap();
    let settings = ValidationSettings {
        image_size: state.image_size,
        batch_size: config.data.batch_size,
        threads: config.data.threads,
        postprocess: PostprocessConfig::default(),
        keep_predictions: 0,
    };
    let before = validate(&net, &sets, &settings, &Default::default(), &mut |_, _| ControlFlow::Continue(())).unwrap();
    let target = run.path().join("compressed").join("by-hand");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    checkpoint::save_to(&target, &Trainee::from_net(net, &Default::default()), &state, |_| Ok(())).unwrap();
    let loaded = Predictor::load(run.path(), &CheckpointKind::Compressed("by-hand".into())).unwrap();
    let after = loaded.validate_full(&config, &mut |_, _| ControlFlow::Continue(())).unwrap().validation;
    assert_eq!(before.det.unwrap().ap.per_class, after.det.unwrap().ap.per_class);
    assert_eq!(before.seg.unwrap().rows(), after.seg.unwrap().rows());
    assert!(checkpoint::compressed(run.path()).contains(&CheckpointKind::Compressed("by-hand".into())));
}

#[test]
fn bad_input_exits_2_naming_the_problem_and_leaves_the_run_folder_unchanged() {
    let run = run_copy();
    let out = twinhead(&["compress", "--run", s(run.path()), "--method", "int8"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = snapshot(run.path());
    for (method, checkpoint, said) in [
        ("fp16", "last", "unknown compression method \"fp16\""),
        ("prune:1.2", "last", "must be in (0, 1)"),
        ("int8+prune:0.3", "last", "int8 must come last"),
        ("int8", "compressed/int8", "already int8"),
        ("prune:0.3", "compressed/int8", "already int8"),
        ("int8", "switch", "no switch checkpoint"),
        ("int8", "compressed/nothing", "no compressed/nothing checkpoint"),
    ] {
        let out = twinhead(&["compress", "--run", s(run.path()), "--method", method, "--checkpoint", checkpoint]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{method} from {checkpoint}: {stderr}");
        assert!(stderr.contains(said), "{method} from {checkpoint}: {stderr}");
    }
    // A run folder without a checkpoint.
    let empty = tempfile::tempdir().unwrap();
    std::fs::copy(run.path().join("config.toml"), empty.path().join("config.toml")).unwrap();
    let out = twinhead(&["compress", "--run", s(empty.path()), "--method", "int8"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no last checkpoint"));
    assert!(snapshot(run.path()) == before, "the run folder changed");
}

#[test]
fn a_cancelled_compression_leaves_nothing_behind() {
    use twinhead::compress::job::{compress, CompressRequest};
    use twinhead::compress::Recipe;
    let run = run_copy();
    let before = snapshot(run.path());
    let request = CompressRequest {
        run_dir: run.path().to_path_buf(),
        source: CheckpointKind::Last,
        recipe: Recipe::parse("prune:0.3").unwrap(),
        finetune_steps: Some(50),
    };
    let mut stages = Vec::new();
    let error = compress(&request, &mut |stage, done, _| {
        stages.push(stage.to_string());
        if stage == "fine-tuning" && done >= 2 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    })
    .unwrap_err();
    assert_eq!(error.to_string(), "cancelled");
    assert!(stages.iter().any(|s| s == "applying prune:0.3"), "{stages:?}");
    assert!(snapshot(run.path()) == before, "the run folder changed");
}
