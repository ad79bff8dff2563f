//! `twinhead predict`: boxes and a semantic mask for any images, from a run's checkpoint.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::data::augment::xyxy_to_voc;
use crate::model::postprocess::PostprocessConfig;
use crate::overlay;
use crate::predictor::Predictor;
use crate::train::checkpoint::CheckpointKind;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run folder (runs/NAME).
    #[arg(long)]
    run: PathBuf,
    /// last, best-det or best-seg.
    #[arg(long, default_value = "last")]
    checkpoint: String,
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
    let predictor = Predictor::load(&args.run, CheckpointKind::parse(&args.checkpoint)?)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}: cannot create", args.out.display()))?;
    let postprocess = PostprocessConfig { score_threshold: args.score_threshold, ..PostprocessConfig::display() };
    let results = predictor.predict_files(&args.images, &postprocess);
    let mut det = Vec::new();
    let mut seg = BTreeMap::new();
    let mut failures = Vec::new();
    for (path, result) in args.images.iter().zip(results) {
        let (image, prediction) = match result {
            Ok(ok) => ok,
            Err(problem) => {
                eprintln!("error: {problem}");
                failures.push(problem);
                continue;
            }
        };
        let id = path.file_stem().and_then(|s| s.to_str()).unwrap_or("image").to_string();
        let mask_path = args.out.join(format!("{id}_mask.png"));
        prediction.mask.save(&mask_path).with_context(|| format!("{}: cannot write", mask_path.display()))?;
        let overlay_path = args.out.join(format!("{id}_overlay.png"));
        overlay::render(&image, &prediction.mask, &prediction.detections, args.opacity, args.score_threshold)
            .save(&overlay_path)
            .with_context(|| format!("{}: cannot write", overlay_path.display()))?;
        let boxes: Vec<_> = prediction
            .detections
            .iter()
            .map(|d| {
                json!({"image_id": id, "category": predictor.det_classes()[d.class], "bbox": xyxy_to_voc(d.bbox), "score": d.score})
            })
            .collect();
        let json_path = args.out.join(format!("{id}.json"));
        std::fs::write(&json_path, serde_json::to_string_pretty(&boxes)?)
            .with_context(|| format!("{}: cannot write", json_path.display()))?;
        println!("{}: {} boxes -> {}", path.display(), boxes.len(), overlay_path.display());
        det.extend(boxes);
        seg.insert(id, mask_path);
    }
    let combined = args.out.join("predictions.json");
    std::fs::write(&combined, serde_json::to_string_pretty(&json!({"det": det, "seg": seg}))?)
        .with_context(|| format!("{}: cannot write", combined.display()))?;
    if !failures.is_empty() {
        bail!("{} of {} image(s) could not be read", failures.len(), args.images.len());
    }
    Ok(ExitCode::SUCCESS)
}
