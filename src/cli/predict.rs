//! `twinhead predict`: boxes, a semantic mask and classes (what the network's
//! heads give) for any images, from a run's checkpoint.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use image::RgbImage;
use serde_json::json;

use crate::data::preprocess::xyxy_to_voc;
use crate::eval::cls::top_classes;
use crate::model::postprocess::PostprocessConfig;
use crate::overlay;
use crate::data::coco::CocoIds;
use crate::export::{self, ExportFormat, ImagePrediction, Naming};
use crate::model::Task;
use crate::predictor::{Prediction, Predictor};
use super::run_args::{DeviceArg, RunCheckpoint};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    run: RunCheckpoint,
    #[command(flatten)]
    device: DeviceArg,
    /// Images to predict.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Minimum detection score kept (0–1).
    #[arg(long, default_value_t = 0.25, value_parser = fraction, allow_negative_numbers = true)]
    score_threshold: f32,
    /// Mask opacity in the overlay (0–1).
    #[arg(long, default_value_t = 0.5, value_parser = fraction, allow_negative_numbers = true)]
    opacity: f32,
    /// Output formats, comma-separated: twinhead (overlays, masks, JSON), coco
    /// (predictions.coco.json), voc (comp4_det_<split>_<class>.txt), png (masks/<id>.png, ADE encoding).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "twinhead")]
    format: Vec<ExportFormat>,
    /// The split name in the VOC result files' names (`--format voc`).
    #[arg(long, default_value = "test")]
    voc_split: String,
    /// A COCO file (e.g. instances_val2017.json) whose image ids (matched by file
    /// stem) and category ids (by name) `--format coco` writes; without it images
    /// are numbered from their stems and categories from 1, as `data export-coco`
    /// numbers a VOC split.
    #[arg(long)]
    coco_ids: Option<PathBuf>,
}

/// A number in [0, 1] (clap names the option when this refuses a value).
fn fraction(value: &str) -> Result<f32, String> {
    match value.parse::<f32>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Ok(v) => Err(format!("{v} is outside [0, 1]")),
        Err(e) => Err(format!("not a number: {e}")),
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let ids = image_ids(&args.images)?;
    let predictor = Predictor::load_on(&args.run.run, &args.run.checkpoint.checkpoint, args.device.device)?;
    export::check_formats(&args.format, predictor.tasks())?;
    let coco_ids = match &args.coco_ids {
        Some(path) => {
            let coco_ids = CocoIds::read(path, predictor.classes(Task::Det))?;
            // Refused before predicting: results without an id could not be scored.
            if let Some((image, id)) = args.images.iter().zip(&ids).find(|(_, id)| coco_ids.image(id).is_none()) {
                bail!("{}: no image named {id:?} in {}", image.display(), path.display());
            }
            coco_ids
        }
        None => CocoIds::numbered(ids.iter().map(String::as_str), predictor.classes(Task::Det).len()),
    };
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}: cannot create", args.out.display()))?;
    let postprocess = PostprocessConfig { score_threshold: args.score_threshold, ..PostprocessConfig::display() };
    let results = predictor.predict_files(&args.images, &postprocess);
    let mut predicted = Vec::new();
    let mut failures = 0;
    for ((path, id), result) in args.images.iter().zip(&ids).zip(results) {
        match result {
            Ok((image, prediction)) => predicted.push((path, id.as_str(), image, prediction)),
            Err(problem) => {
                eprintln!("error: {problem}");
                failures += 1;
            }
        }
    }
    if args.format.contains(&ExportFormat::Twinhead) {
        write_twinhead(&args, &predictor, &predicted)?;
    }
    let images: Vec<ImagePrediction> =
        predicted.iter().map(|(_, id, _, prediction)| ImagePrediction { id, prediction }).collect();
    let naming = Naming { det_classes: predictor.classes(Task::Det), voc_split: &args.voc_split, coco_ids: &coco_ids };
    let written = export::write_standard(&args.format, &args.out, &images, &naming)?;
    if !written.is_empty() {
        println!("{} result file(s) in {}", written.len(), args.out.display());
    }
    if failures > 0 {
        bail!("{failures} of {} image(s) could not be read", args.images.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// Each image's id, its file stem; two images with one stem would overwrite each other's files.
pub(super) fn image_ids(images: &[PathBuf]) -> Result<Vec<String>> {
    let mut seen = BTreeMap::new();
    images
        .iter()
        .map(|path| {
            let id = path.file_stem().and_then(|s| s.to_str()).unwrap_or("image").to_string();
            if let Some(first) = seen.insert(id.clone(), path) {
                bail!("{} and {}: two images named {id:?} (results are named by file stem)", first.display(), path.display());
            }
            Ok(id)
        })
        .collect()
}

/// Twinhead's own output, per image what the network's heads give: a mask,
/// an overlay and a box list; in predictions.json all boxes, every mask file
/// and each image's top-5 classes.
fn write_twinhead(args: &Args, predictor: &Predictor, predicted: &[(&PathBuf, &str, RgbImage, Prediction)]) -> Result<()> {
    let tasks = predictor.tasks();
    let mut det = Vec::new();
    let mut seg = BTreeMap::new();
    let mut cls = BTreeMap::new();
    for (path, id, image, prediction) in predicted {
        let mut said = Vec::new();
        if let Some(mask) = &prediction.mask {
            let mask_path = args.out.join(format!("{id}_mask.png"));
            mask.save(&mask_path).with_context(|| format!("{}: cannot write", mask_path.display()))?;
            seg.insert(id.to_string(), mask_path);
        }
        let overlay_path = args.out.join(format!("{id}_overlay.png"));
        overlay::render(image, prediction.mask.as_ref(), &prediction.detections, args.opacity, args.score_threshold)
            .save(&overlay_path)
            .with_context(|| format!("{}: cannot write", overlay_path.display()))?;
        if tasks.contains(Task::Det) {
            let boxes: Vec<_> = prediction
                .detections
                .iter()
                .map(|d| {
                    json!({"image_id": id, "category": predictor.classes(Task::Det)[d.class], "bbox": xyxy_to_voc(d.bbox), "score": d.score})
                })
                .collect();
            let json_path = args.out.join(format!("{id}.json"));
            export::write_file(&json_path, serde_json::to_string_pretty(&boxes)?.as_bytes())?;
            said.push(format!("{} boxes", boxes.len()));
            det.extend(boxes);
        }
        let top = top_classes(&prediction.class_probabilities, predictor.classes(Task::Cls), 5);
        if let Some((name, p)) = top.first() {
            said.push(format!("class {name} ({p:.2})"));
            cls.insert(id.to_string(), top.iter().map(|(name, score)| json!({"class": name, "score": score})).collect::<Vec<_>>());
        }
        println!("{}: {} -> {}", path.display(), said.join(", "), overlay_path.display());
    }
    let mut combined = serde_json::Map::new();
    if tasks.contains(Task::Det) {
        combined.insert("det".into(), json!(det));
    }
    if tasks.contains(Task::Seg) {
        combined.insert("seg".into(), json!(seg));
    }
    if tasks.contains(Task::Cls) {
        combined.insert("cls".into(), json!(cls));
    }
    let combined = serde_json::Value::Object(combined);
    let path = args.out.join("predictions.json");
    export::write_file(&path, serde_json::to_string_pretty(&combined)?.as_bytes())
}
