//! `twinhead eval --run`: every task of a trained run on its full validation split.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use crate::data::classes::mask_label_name;
use crate::eval::voc_ap::VOC_IOU_THRESHOLD;
use crate::eval::{track_score, CONFUSION_SCORE_THRESHOLD};
use super::progress_bar;
use crate::backend::device::DeviceSpec;
use crate::predictor::Predictor;
use crate::train::checkpoint::CheckpointKind;
use crate::train::run_dir;

/// How many of the largest pixel confusions the table lists.
const TOP_CONFUSIONS: usize = 10;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run folder (runs/NAME).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// last, best-det, best-seg or best-cls.
    #[arg(long, default_value = "last")]
    pub checkpoint: String,
    /// Device to run on: cpu, cuda[:N], wgpu[:N] or wgpu:cpu (`twinhead devices`).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, run: PathBuf) -> Result<ExitCode> {
    let config = run_dir::read_config(&run)?;
    let predictor = Predictor::load_on(&run, &CheckpointKind::parse(&args.checkpoint)?, args.device)?;
    let (dir, state) = (&predictor.checkpoint, &predictor.state);
    let bar = progress_bar(Some(0), "evaluating");
    let full = predictor.validate_full(&config, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        ControlFlow::Continue(())
    })?;
    bar.finish_and_clear();
    let result = &full.validation;
    let det_per_class: serde_json::Map<String, serde_json::Value> =
        state.det_classes.iter().cloned().zip(result.det.per_class.iter().map(|v| json!(v))).collect();
    let seg_per_class: serde_json::Map<String, serde_json::Value> =
        state.seg_classes.iter().cloned().zip(result.seg.per_class_iou().into_iter().map(|v| json!(v))).collect();
    let map50 = result.det.mean().unwrap_or(0.0);
    let miou = result.seg.miou().unwrap_or(0.0);
    let pixel_acc = result.seg.pixel_accuracy().unwrap_or(0.0);
    let seg_label = |label: usize| mask_label_name(&state.seg_classes, label);
    let top_confusions = result.seg.top_confusions(TOP_CONFUSIONS);
    let cls_per_class: serde_json::Map<String, serde_json::Value> = match &result.cls {
        Some(cls) => state.cls_classes.iter().cloned().zip(cls.per_class_accuracy().into_iter().map(|v| json!(v))).collect(),
        None => Default::default(),
    };
    if args.json {
        let pr: serde_json::Map<String, serde_json::Value> = state
            .det_classes
            .iter()
            .zip(&result.det_curves)
            .map(|(class, curve)| {
                let value = curve.as_ref().map(|c| json!({"precision": c.precision, "recall": c.recall, "score": c.score}));
                (class.clone(), value.unwrap_or(serde_json::Value::Null))
            })
            .collect();
        let det_labels: Vec<String> = state.det_classes.iter().cloned().chain(["background".to_string()]).collect();
        let seg_labels: Vec<String> = (0..=state.seg_classes.len()).map(seg_label).collect();
        let mut report = json!({
            "checkpoint": dir, "step": state.step,
            "det": {"map50": map50, "images": full.det_images, "per_class": det_per_class},
            "seg": {"miou": miou, "pixel_acc": pixel_acc, "images": full.seg_images, "per_class": seg_per_class},
            "pr": pr,
            "confusion": {
                "det": {
                    "rows_are": "ground truth", "labels": det_labels, "iou": VOC_IOU_THRESHOLD,
                    "score_threshold": CONFUSION_SCORE_THRESHOLD, "counts": result.det_confusion.rows(),
                },
                "seg": {"rows_are": "ground truth", "labels": seg_labels, "counts": result.seg.rows()},
            },
        });
        if let Some(cls) = &result.cls {
            report["cls"] = json!({
                "top1": cls.top1(), "top5": cls.top5(), "images": full.cls_images, "per_class": cls_per_class,
                "confusion": {"rows_are": "true class", "labels": state.cls_classes, "counts": cls.rows()},
            });
            report["track_score"] = json!(track_score(map50, miou, cls.top1().unwrap_or(0.0)));
        }
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{} (step {})", dir.display(), state.step);
        println!("detection   {} images  mAP50 {:.4}", full.det_images, map50);
        for (class, ap) in &det_per_class {
            println!("  {class:<20} {}", ap.as_f64().map_or("-".into(), |v| format!("{v:.4}")));
        }
        println!("segmentation {} images  mIoU {:.4}  pixel accuracy {:.4}", full.seg_images, miou, pixel_acc);
        for (class, iou) in &seg_per_class {
            println!("  {class:<20} {}", iou.as_f64().map_or("-".into(), |v| format!("{v:.4}")));
        }
        println!("most confused pixels (share of the true class's pixels):");
        for (gt, pred, share) in top_confusions {
            println!("  {:<20} -> {:<20} {share:.4}", seg_label(gt), seg_label(pred));
        }
        if let Some(cls) = &result.cls {
            let rate = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.4}"));
            println!("classification {} images  top-1 {}  top-5 {}", full.cls_images, rate(cls.top1()), rate(cls.top5()));
            for (class, accuracy) in &cls_per_class {
                println!("  {class:<20} {}", rate(accuracy.as_f64()));
            }
            let score = track_score(map50, miou, cls.top1().unwrap_or(0.0));
            println!("track score (mean of mAP50, mIoU and top-1) {score:.4}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
