//! The first images of each validation split with their ground truth and a
//! checkpoint's predictions: what the workbench's Inspect shows and measures.
//! Made where the run is, on this machine or by a server for a client (the
//! whole is JSON, images as PNG), so Inspect works on a server's runs too.

use std::path::Path;

use anyhow::{bail, Result};
use image::{GrayImage, RgbImage};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::backend::device::DeviceSpec;
use crate::data::ade::AdeRecord;
use crate::data::batch::decode_rgb;
use crate::data::classify::ClsRecord;
use crate::data::coco::CocoIds;
use crate::data::voc::VocRecord;
use crate::data::Problem;
use crate::predictor::{ModelInfo, Prediction, Predictor, PredictorCache};
use crate::train::checkpoint::CheckpointKind;
use crate::train::config::TrainConfig;
use crate::train::evaluate::ValidationSplits;

/// Images taken from each validation split.
pub const SAMPLES: usize = 24;
/// Images per forward pass between progress reports and cancellation checks.
const CHUNK: usize = 8;

/// An image of a split, its record (ground truth) and what the network predicted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sampled<R> {
    pub record: R,
    #[serde(with = "crate::data::encoded::rgb")]
    pub image: RgbImage,
    pub prediction: Prediction,
}

/// A segmentation image with its ground-truth mask (ADE encoding).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegSampled {
    pub record: AdeRecord,
    #[serde(with = "crate::data::encoded::rgb")]
    pub image: RgbImage,
    #[serde(with = "crate::data::encoded::gray")]
    pub truth: Option<GrayImage>,
    pub prediction: Prediction,
}

/// What a checkpoint does on the first [`SAMPLES`] images of each of its run's validation splits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Samples {
    pub model: ModelInfo,
    pub det: Vec<Sampled<VocRecord>>,
    pub seg: Vec<SegSampled>,
    /// Empty in a run without classification; the prediction holds the class probabilities.
    pub cls: Vec<Sampled<ClsRecord>>,
    /// Sampled images that could not be read, left out.
    pub skipped: Vec<Problem>,
    /// The detection images' and classes' ids in exported COCO results.
    pub coco_ids: CocoIds,
}

/// How far along a sampling is, and whether to stop.
pub trait Progress {
    fn set(&self, done: usize, total: usize);
    fn is_cancelled(&self) -> bool;
}

/// Progress nobody watches.
pub struct Unwatched;

impl Progress for Unwatched {
    fn set(&self, _: usize, _: usize) {}
    fn is_cancelled(&self) -> bool {
        false
    }
}

/// Samples run `run` (folder `run_dir`)'s validation splits and predicts them with its `kind` checkpoint.
pub fn sample(predictors: &PredictorCache, run: &str, (run_dir, kind, device): (&Path, CheckpointKind, DeviceSpec), config: &TrainConfig, progress: &dyn Progress) -> Result<Samples> {
    let predictor = predictors.load(run_dir, &kind, device)?;
    let model = ModelInfo::of(run, kind, &predictor);
    let splits = ValidationSplits::open(&config.data)?;
    let sampled = |records: usize| records.min(SAMPLES);
    let mut skipped = Vec::new();
    if let Some((task, head, dataset)) = splits.class_mismatch(|task| predictor.classes(task).len()) {
        bail!("the run's {task} head has {head} classes but its validation dataset has {dataset}: was the dataset changed?");
    }
    let (det_records, det_images) = match splits.det() {
        Some(voc) => read_images(&voc.records[..sampled(voc.records.len())], |r: &VocRecord| &r.image_path, &mut skipped),
        None => Default::default(),
    };
    let (seg_records, seg_images, seg_truth) = match splits.seg() {
        Some(ade) => read_seg(&ade.records[..sampled(ade.records.len())], ade.classes.len(), &mut skipped),
        None => Default::default(),
    };
    let (cls_records, cls_images) = match splits.cls() {
        Some(split) => read_images(&split.records[..sampled(split.records.len())], |r: &ClsRecord| &r.image_path, &mut skipped),
        None => Default::default(),
    };
    let postprocess = config.eval.postprocess();
    let (mut done, total) = (0, det_images.len() + seg_images.len() + cls_images.len());
    let det_predictions = predict(&predictor, &det_images, &postprocess, progress, &mut done, total)?;
    let seg_predictions = predict(&predictor, &seg_images, &postprocess, progress, &mut done, total)?;
    let cls_probabilities = match cls_images.is_empty() {
        true => Vec::new(),
        false => predictor.classify_images(&cls_images)?,
    };
    progress.set(total, total);
    let cls_predictions = cls_probabilities.into_iter().map(|class_probabilities| Prediction { class_probabilities, ..Default::default() }).collect();
    let seg = seg_records
        .into_iter()
        .zip(seg_images)
        .zip(seg_truth)
        .zip(seg_predictions)
        .map(|(((record, image), truth), prediction)| SegSampled { record, image, truth: Some(truth), prediction })
        .collect();
    Ok(Samples {
        det: paired(det_records, det_images, det_predictions),
        seg,
        cls: paired(cls_records, cls_images, cls_predictions),
        skipped,
        coco_ids: splits.det().map_or_else(|| CocoIds::numbered([], 0), |voc| voc.coco_ids()),
        model,
    })
}

/// Each record with its image and prediction.
fn paired<R>(records: Vec<R>, images: Vec<RgbImage>, predictions: Vec<Prediction>) -> Vec<Sampled<R>> {
    records.into_iter().zip(images).zip(predictions).map(|((record, image), prediction)| Sampled { record, image, prediction }).collect()
}

/// Predicts `images` a chunk at a time: after each chunk `done` grows and is
/// reported out of `total`, and a cancelled sampling stops with an error.
pub fn predict(
    predictor: &Predictor,
    images: &[RgbImage],
    postprocess: &crate::model::postprocess::PostprocessConfig,
    progress: &dyn Progress,
    done: &mut usize,
    total: usize,
) -> Result<Vec<Prediction>> {
    let mut predictions = Vec::with_capacity(images.len());
    for chunk in images.chunks(CHUNK) {
        if progress.is_cancelled() {
            bail!("cancelled");
        }
        predictions.extend(predictor.predict_images(chunk, postprocess));
        *done += chunk.len();
        progress.set(*done, total);
    }
    Ok(predictions)
}

/// The records whose image (at `image_path`) decodes, with their images.
fn read_images<R: Clone + Send + Sync>(records: &[R], image_path: fn(&R) -> &Path, skipped: &mut Vec<Problem>) -> (Vec<R>, Vec<RgbImage>) {
    let decoded: Vec<Result<(R, RgbImage), Problem>> =
        records.par_iter().map(|r| decode_rgb(image_path(r)).map(|image| (r.clone(), image))).collect();
    keep_readable(decoded, skipped).into_iter().unzip()
}

/// The records where both the image and the mask decode, with both.
fn read_seg(records: &[AdeRecord], num_classes: usize, skipped: &mut Vec<Problem>) -> (Vec<AdeRecord>, Vec<RgbImage>, Vec<GrayImage>) {
    let decoded: Vec<Result<(AdeRecord, RgbImage, GrayImage), Problem>> = records
        .par_iter()
        .map(|r| Ok((r.clone(), decode_rgb(&r.image_path)?, r.read_mask(num_classes)?)))
        .collect();
    let mut columns = (Vec::new(), Vec::new(), Vec::new());
    for (record, image, mask) in keep_readable(decoded, skipped) {
        columns.0.push(record);
        columns.1.push(image);
        columns.2.push(mask);
    }
    columns
}

/// The items that were read; the problems of the others go to `skipped`.
fn keep_readable<T>(items: Vec<Result<T, Problem>>, skipped: &mut Vec<Problem>) -> Vec<T> {
    items.into_iter().filter_map(|item| item.map_err(|problem| skipped.push(problem)).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_items_are_skipped_with_their_problem() {
        let mut skipped = Vec::new();
        let items = vec![Ok(1), Err(Problem::new("b.jpg", "image does not decode")), Ok(3)];
        assert_eq!(keep_readable(items, &mut skipped), vec![1, 3]);
        assert_eq!(skipped, vec![Problem::new("b.jpg", "image does not decode")]);
    }
}
