//! `twinhead eval --run`: both tasks of a trained run on their full validation splits.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use crate::model::postprocess::PostprocessConfig;
use crate::predictor::InferenceBackend;
use crate::train::checkpoint::{self, CheckpointKind};
use crate::train::evaluate::{open_validation_splits, validate, ValidationSets, ValidationSettings};
use crate::train::run_dir;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run folder (runs/NAME).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// last, best-det or best-seg.
    #[arg(long, default_value = "last")]
    pub checkpoint: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, run: PathBuf) -> Result<ExitCode> {
    let config = run_dir::read_config(&run)?;
    let dir = checkpoint::find(&run, CheckpointKind::parse(&args.checkpoint)?)?;
    let device = Default::default();
    let (net, state) = checkpoint::load_inference_net::<InferenceBackend>(&dir, &device)?;
    let (det, seg) = open_validation_splits(&config.data)?;
    let sets = ValidationSets::new(&det, usize::MAX, &seg, usize::MAX)?;
    let settings = ValidationSettings {
        image_size: state.image_size,
        batch_size: config.data.batch_size,
        threads: config.data.threads,
        postprocess: PostprocessConfig::default(),
    };
    let result = validate(&net, &sets, &settings, &device)?;
    let det_per_class: serde_json::Map<String, serde_json::Value> =
        state.det_classes.iter().cloned().zip(result.det.per_class.iter().map(|v| json!(v))).collect();
    let seg_per_class: serde_json::Map<String, serde_json::Value> =
        state.seg_classes.iter().cloned().zip(result.seg.per_class_iou().into_iter().map(|v| json!(v))).collect();
    let map50 = result.det.mean().unwrap_or(0.0);
    let miou = result.seg.miou().unwrap_or(0.0);
    let pixel_acc = result.seg.pixel_accuracy().unwrap_or(0.0);
    if args.json {
        let report = json!({
            "checkpoint": dir, "step": state.step,
            "det": {"map50": map50, "images": det.records.len(), "per_class": det_per_class},
            "seg": {"miou": miou, "pixel_acc": pixel_acc, "images": seg.records.len(), "per_class": seg_per_class},
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{} (step {})", dir.display(), state.step);
        println!("detection   {} images  mAP50 {:.4}", det.records.len(), map50);
        for (class, ap) in &det_per_class {
            println!("  {class:<20} {}", ap.as_f64().map_or("-".into(), |v| format!("{v:.4}")));
        }
        println!("segmentation {} images  mIoU {:.4}  pixel accuracy {:.4}", seg.records.len(), miou, pixel_acc);
        for (class, iou) in &seg_per_class {
            println!("  {class:<20} {}", iou.as_f64().map_or("-".into(), |v| format!("{v:.4}")));
        }
    }
    Ok(ExitCode::SUCCESS)
}
