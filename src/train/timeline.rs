//! The prediction timeline: at every evaluation the trainer stores what the
//! network predicted for the first few validation images of each task (boxes
//! for detection images, masks for segmentation images, class probabilities
//! for classification images) under
//! `timeline/step-<step>/`, so Inspect can scrub through training and show a
//! task degrading while the other trains. Each step folder is written whole
//! (a temporary folder, then a rename), so a reader never sees half of one.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use image::GrayImage;
use serde::{Deserialize, Serialize};

use super::evaluate::{KeptPredictions, ValidationSets};
use crate::data::ade::read_mask;
use crate::model::postprocess::Detection;

pub const TIMELINE_DIR: &str = "timeline";
/// Images of each task whose predictions are stored.
pub const TIMELINE_IMAGES: usize = 8;
const STEP_FILE: &str = "predictions.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StepFile {
    step: usize,
    det: Vec<DetEntry>,
    seg: Vec<SegEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    cls: Vec<ClsEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ClsEntry {
    id: String,
    /// Text for people: a name that is not UTF-8 is written lossily (JSON holds no other).
    #[serde(serialize_with = "crate::data::path_text::one")]
    image: PathBuf,
    truth: usize,
    probabilities: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct DetEntry {
    id: String,
    /// Text for people: a name that is not UTF-8 is written lossily (JSON holds no other).
    #[serde(serialize_with = "crate::data::path_text::one")]
    image: PathBuf,
    /// `[x0, y0, x1, y1, class, score]`, image pixels.
    boxes: Vec<[f32; 6]>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SegEntry {
    id: String,
    /// Text for people: a name that is not UTF-8 is written lossily (JSON holds no other).
    #[serde(serialize_with = "crate::data::path_text::one")]
    image: PathBuf,
    /// The mask's file in the step folder (ADE encoding).
    mask: String,
}

/// One image's prediction at one step.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineImage {
    pub id: String,
    pub image: PathBuf,
    pub prediction: TimelinePrediction,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TimelinePrediction {
    Boxes(Vec<Detection>),
    Mask(GrayImage),
    /// The class probabilities, and the true class.
    Classes { probabilities: Vec<f32>, truth: usize },
}

/// Everything stored at one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineStep {
    pub step: usize,
    pub det: Vec<TimelineImage>,
    pub seg: Vec<TimelineImage>,
    /// Empty in a run without classification.
    pub cls: Vec<TimelineImage>,
}

fn step_dir(run_dir: &Path, step: usize) -> PathBuf {
    run_dir.join(TIMELINE_DIR).join(format!("step-{step:08}"))
}

/// Stores the kept predictions of the evaluation at `step` (replacing any
/// stored for that step before, as a resumed run re-evaluates).
pub fn write_step(run_dir: &Path, step: usize, sets: &ValidationSets, kept: &KeptPredictions) -> Result<()> {
    let dir = step_dir(run_dir, step);
    let tmp = dir.with_extension("tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("{}: cannot remove", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
    let det = kept
        .det
        .iter()
        .filter_map(|(index, boxes)| {
            let (id, image) = sets.det_image(*index)?;
            let boxes = boxes.iter().map(|d| [d.bbox[0], d.bbox[1], d.bbox[2], d.bbox[3], d.class as f32, d.score]).collect();
            Some(DetEntry { id: id.to_string(), image: image.to_path_buf(), boxes })
        })
        .collect();
    let mut seg = Vec::new();
    for (i, (index, mask)) in kept.seg.iter().enumerate() {
        let Some((id, image)) = sets.seg_image(*index) else { continue };
        let file = format!("seg-{i}.png");
        mask.save(tmp.join(&file)).with_context(|| format!("{}: cannot write", tmp.join(&file).display()))?;
        seg.push(SegEntry { id: id.to_string(), image: image.to_path_buf(), mask: file });
    }
    let cls = kept
        .cls
        .iter()
        .filter_map(|(index, probabilities)| {
            let (id, image, truth) = sets.cls_image(*index)?;
            Some(ClsEntry { id: id.to_string(), image: image.to_path_buf(), truth, probabilities: probabilities.clone() })
        })
        .collect();
    let json = serde_json::to_string(&StepFile { step, det, seg, cls })?;
    std::fs::write(tmp.join(STEP_FILE), json).with_context(|| format!("{}: cannot write", tmp.join(STEP_FILE).display()))?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("{}: cannot replace", dir.display()))?;
    }
    std::fs::rename(&tmp, &dir).with_context(|| format!("{}: cannot move into place", dir.display()))
}

/// The steps stored in a run's timeline, in order (none for a run without one).
pub fn stored_steps(run_dir: &Path) -> Vec<usize> {
    let mut steps: Vec<usize> = std::fs::read_dir(run_dir.join(TIMELINE_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("step-")?.parse().ok())
        .collect();
    steps.sort_unstable();
    steps
}

/// Reads the predictions stored at `step`; `num_classes` (segmentation) checks the masks.
pub fn read_step(run_dir: &Path, step: usize, seg_classes: usize) -> Result<TimelineStep> {
    let dir = step_dir(run_dir, step);
    let path = dir.join(STEP_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    let file: StepFile = serde_json::from_str(&text).with_context(|| format!("{}: not a timeline step", path.display()))?;
    let det = file
        .det
        .into_iter()
        .map(|e| {
            let boxes = e.boxes.iter().map(|b| Detection { bbox: [b[0], b[1], b[2], b[3]], class: b[4] as usize, score: b[5] }).collect();
            TimelineImage { id: e.id, image: e.image, prediction: TimelinePrediction::Boxes(boxes) }
        })
        .collect();
    let seg = file
        .seg
        .into_iter()
        .map(|e| {
            let mask = read_mask(&dir.join(&e.mask), seg_classes).map_err(|p| anyhow::anyhow!("{p}"))?;
            Ok(TimelineImage { id: e.id, image: e.image, prediction: TimelinePrediction::Mask(mask) })
        })
        .collect::<Result<_>>()?;
    let cls = file
        .cls
        .into_iter()
        .map(|e| TimelineImage { id: e.id, image: e.image, prediction: TimelinePrediction::Classes { probabilities: e.probabilities, truth: e.truth } })
        .collect();
    Ok(TimelineStep { step: file.step, det, seg, cls })
}
