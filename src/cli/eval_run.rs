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
use crate::model::Task;
use crate::predictor::Predictor;
use super::run_args::{CheckpointArg, DeviceArg};
use crate::train::run_dir;

/// How many of the largest pixel confusions the table lists.
const TOP_CONFUSIONS: usize = 10;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run folder (runs/NAME).
    #[arg(long)]
    pub run: Option<PathBuf>,
    #[command(flatten)]
    pub checkpoint: CheckpointArg,
    #[command(flatten)]
    pub device: DeviceArg,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, run: PathBuf) -> Result<ExitCode> {
    let config = run_dir::read_config(&run)?;
    let predictor = Predictor::load_on(&run, &args.checkpoint.checkpoint, args.device.device)?;
    let (dir, state) = (&predictor.checkpoint, &predictor.state);
    let bar = progress_bar(Some(0), "evaluating");
    let full = predictor.validate_full(&config, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        ControlFlow::Continue(())
    })?;
    bar.finish_and_clear();
    let result = &full.validation;
    let per_class = |classes: &[String], values: Vec<Option<f64>>| -> serde_json::Map<String, serde_json::Value> {
        classes.iter().cloned().zip(values.into_iter().map(|v| json!(v))).collect()
    };
    let seg_label = |label: usize| mask_label_name(&state.classes[Task::Seg], label);
    let rate = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.4}"));
    let [map50, miou, top1] = Task::ALL.map(|task| result.metric(task));
    let score = map50.zip(miou).zip(top1).map(|((map50, miou), top1)| track_score(map50, miou, top1));
    if args.json {
        let mut report = json!({"checkpoint": dir, "step": state.step});
        let mut confusion = serde_json::Map::new();
        if let Some(det) = &result.det {
            report["det"] = json!({"map50": map50, "images": full.images[Task::Det], "per_class": per_class(&state.classes[Task::Det], det.ap.per_class.clone())});
            let pr: serde_json::Map<String, serde_json::Value> = state.classes[Task::Det]
                .iter()
                .zip(&det.curves)
                .map(|(class, curve)| {
                    let value = curve.as_ref().map(|c| json!({"precision": c.precision, "recall": c.recall, "score": c.score}));
                    (class.clone(), value.unwrap_or(serde_json::Value::Null))
                })
                .collect();
            report["pr"] = json!(pr);
            let labels: Vec<String> = state.classes[Task::Det].iter().cloned().chain(["background".to_string()]).collect();
            confusion.insert("det".into(), json!({
                "rows_are": "ground truth", "labels": labels, "iou": VOC_IOU_THRESHOLD,
                "score_threshold": CONFUSION_SCORE_THRESHOLD, "counts": det.confusion.rows(),
            }));
        }
        if let Some(seg) = &result.seg {
            report["seg"] = json!({
                "miou": miou, "pixel_acc": seg.pixel_accuracy().unwrap_or(0.0), "images": full.images[Task::Seg],
                "per_class": per_class(&state.classes[Task::Seg], seg.per_class_iou()),
            });
            let labels: Vec<String> = (0..=state.classes[Task::Seg].len()).map(seg_label).collect();
            confusion.insert("seg".into(), json!({"rows_are": "ground truth", "labels": labels, "counts": seg.rows()}));
        }
        report["confusion"] = json!(confusion);
        if let Some(cls) = &result.cls {
            report["cls"] = json!({
                "top1": cls.top1(), "top5": cls.top5(), "images": full.images[Task::Cls],
                "per_class": per_class(&state.classes[Task::Cls], cls.per_class_accuracy()),
                "confusion": {"rows_are": "true class", "labels": state.classes[Task::Cls], "counts": cls.rows()},
            });
        }
        if let Some(score) = score {
            report["track_score"] = json!(score);
        }
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} (step {})", dir.display(), state.step);
    if let Some(det) = &result.det {
        println!("detection   {} images  mAP50 {:.4}", full.images[Task::Det], map50.unwrap_or(0.0));
        for (class, ap) in state.classes[Task::Det].iter().zip(&det.ap.per_class) {
            println!("  {class:<20} {}", rate(*ap));
        }
    }
    if let Some(seg) = &result.seg {
        println!("segmentation {} images  mIoU {:.4}  pixel accuracy {:.4}", full.images[Task::Seg], miou.unwrap_or(0.0), seg.pixel_accuracy().unwrap_or(0.0));
        for (class, iou) in state.classes[Task::Seg].iter().zip(seg.per_class_iou()) {
            println!("  {class:<20} {}", rate(iou));
        }
        println!("most confused pixels (share of the true class's pixels):");
        for (gt, pred, share) in seg.top_confusions(TOP_CONFUSIONS) {
            println!("  {:<20} -> {:<20} {share:.4}", seg_label(gt), seg_label(pred));
        }
    }
    if let Some(cls) = &result.cls {
        println!("classification {} images  top-1 {}  top-5 {}", full.images[Task::Cls], rate(cls.top1()), rate(cls.top5()));
        for (class, accuracy) in state.classes[Task::Cls].iter().zip(cls.per_class_accuracy()) {
            println!("  {class:<20} {}", rate(accuracy));
        }
    }
    if let Some(score) = score {
        println!("track score (mean of mAP50, mIoU and top-1) {score:.4}");
    }
    Ok(ExitCode::SUCCESS)
}
