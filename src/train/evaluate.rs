//! Validation during training: every task of the run on fixed subsets of its
//! validation split, whichever task is training, with the eval module's metrics.

use std::ops::ControlFlow;
use std::path::Path;

use anyhow::Result;
use image::GrayImage;

use crate::backend::TwinBackend;
use crate::data::ClassList;
use crate::data::ade::AdeDataset;
use crate::data::batch::{ClsSource, DetSource, SegSource};
use crate::data::loader::{Loader, LoaderConfig};
use crate::data::voc::VocDataset;
use crate::eval::{
    curves_ap, ground_truth_from_voc, pr_curves, ClassAp, ClsMetrics, ConfusionMatrix, DetConfusion, GroundTruth, PrCurve, VocMetric,
    CONFUSION_SCORE_THRESHOLD,
};
use crate::model::TwinNet;
use crate::model::postprocess::{Detection, PostprocessConfig, DISPLAY_SCORE_FLOOR};
use crate::model::predict::{classify_batch, detect_batch, segment_batch};
use crate::train::config::DataConfig;

/// The validation splits a run's configuration names, whole (what `twinhead eval
/// --run` scores and the workbench's Inspect panel samples).
pub fn open_validation_splits(data: &DataConfig) -> Result<(VocDataset, AdeDataset)> {
    Ok((data.det_spec().open(&data.voc_val_split, None)?, data.seg_spec().open(&data.ade_val_split)?))
}

/// The fixed validation subsets and their ground truth (masks kept in memory).
pub struct ValidationSets {
    det: DetSource,
    det_truth: Vec<GroundTruth>,
    seg: SegSource,
    seg_truth: Vec<GrayImage>,
    cls: Option<ClsSource>,
}

impl ValidationSets {
    /// The first `det_images` / `seg_images` records of each validation split.
    pub fn new(voc: &VocDataset, det_images: usize, ade: &AdeDataset, seg_images: usize) -> Result<Self> {
        let mut det = DetSource::new(voc);
        det.records.truncate(det_images);
        let det_truth = ground_truth_from_voc(&det.records);
        let mut seg = SegSource::new(ade);
        seg.records.truncate(seg_images);
        let seg_truth = seg
            .records
            .iter()
            .map(|r| r.read_mask(seg.classes.len()).map_err(|p| anyhow::anyhow!("{p}")))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { det, det_truth, seg, seg_truth, cls: None })
    }

    /// With the first `images` records of a classification validation split.
    pub fn with_cls(mut self, cls: &crate::data::classify::ClsDataset, images: usize) -> Self {
        let mut source = ClsSource::new(cls);
        source.records.truncate(images);
        self.cls = Some(source);
        self
    }

    /// The classification classes, in a run with classification.
    pub fn cls_classes(&self) -> Option<&ClassList> {
        self.cls.as_ref().map(|cls| &cls.classes)
    }

    pub fn det_classes(&self) -> &ClassList {
        &self.det.classes
    }

    pub fn seg_classes(&self) -> &ClassList {
        &self.seg.classes
    }

    /// `(id, image path)` of detection image `index`.
    pub fn det_image(&self, index: usize) -> (&str, &Path) {
        let record = &self.det.records[index];
        (&record.id, &record.image_path)
    }

    /// `(id, image path)` of segmentation image `index`.
    pub fn seg_image(&self, index: usize) -> (&str, &Path) {
        let record = &self.seg.records[index];
        (&record.id, &record.image_path)
    }

    /// `(id, image path, true class)` of classification image `index`.
    pub fn cls_image(&self, index: usize) -> Option<(&str, &Path, usize)> {
        let record = &self.cls.as_ref()?.records[index];
        Some((&record.id, &record.image_path, record.class))
    }
}

/// Both metrics of one evaluation, with what they are computed from.
pub struct Validation {
    /// VOC area AP50 per class.
    pub det: ClassAp,
    /// The curves `det` integrates (see [`pr_curves`]).
    pub det_curves: Vec<Option<PrCurve>>,
    pub det_confusion: DetConfusion,
    pub seg: ConfusionMatrix,
    /// In a run with classification.
    pub cls: Option<ClsMetrics>,
    /// The predictions of the first [`ValidationSettings::keep_predictions`] images of each set.
    pub kept: KeptPredictions,
}

/// Predictions kept for the run's timeline: by image index, boxes for the
/// detection images (down to [`DISPLAY_SCORE_FLOOR`]: no view draws lower),
/// masks for the segmentation images, class probabilities for the classification images.
#[derive(Default)]
pub struct KeptPredictions {
    pub det: Vec<(usize, Vec<Detection>)>,
    pub seg: Vec<(usize, GrayImage)>,
    pub cls: Vec<(usize, Vec<f32>)>,
}

pub struct ValidationSettings {
    pub image_size: u32,
    pub batch_size: usize,
    pub threads: usize,
    pub postprocess: PostprocessConfig,
    /// How many images of each set keep their predictions (0: none).
    pub keep_predictions: usize,
}

/// Says how far validation is (`images done, images in all`) and whether to go on.
pub type OnValidationBatch<'a> = &'a mut dyn FnMut(usize, usize) -> ControlFlow<()>;

pub fn validate<B: TwinBackend>(
    net: &TwinNet<B>,
    sets: &ValidationSets,
    settings: &ValidationSettings,
    device: &B::Device,
    on_batch: OnValidationBatch,
) -> Result<Validation> {
    let loader_config = || LoaderConfig { threads: settings.threads, ..LoaderConfig::eval(settings.image_size, settings.batch_size) };
    let total = sets.det.records.len() + sets.seg.records.len() + sets.cls.as_ref().map_or(0, |c| c.records.len());
    let mut done = 0;
    let mut report = |images: usize| {
        done += images;
        match on_batch(done, total) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(()) => Err(anyhow::anyhow!("validation cancelled")),
        }
    };

    let mut kept = KeptPredictions::default();
    let mut detections = Vec::new();
    for batch in Loader::new(sets.det.clone(), loader_config())? {
        let turn = B::device_turn(device);
        let found = detect_batch(net, batch.images::<B>(device), &batch.letterboxes, &settings.postprocess);
        drop(turn);
        for (index, image_detections) in batch.indices.iter().zip(&found) {
            detections.extend(image_detections.iter().map(|d| d.to_eval(*index)));
            if *index < settings.keep_predictions {
                kept.det.push((*index, image_detections.iter().filter(|d| d.score >= DISPLAY_SCORE_FLOOR).copied().collect()));
            }
        }
        report(found.len())?;
    }
    let num_classes = sets.det.classes.len();
    let det_curves = pr_curves(&sets.det_truth, &detections, num_classes);
    let det = curves_ap(&det_curves, VocMetric::Area);
    let det_confusion = DetConfusion::new(&sets.det_truth, &detections, num_classes, CONFUSION_SCORE_THRESHOLD);

    let mut seg = ConfusionMatrix::new(sets.seg.classes.len());
    for batch in Loader::new(sets.seg.clone(), loader_config())? {
        let turn = B::device_turn(device);
        let masks = segment_batch(net, batch.images::<B>(device), &batch.letterboxes);
        drop(turn);
        for (index, mask) in batch.indices.iter().zip(&masks) {
            seg.accumulate(sets.seg_truth[*index].as_raw(), mask.as_raw());
            if *index < settings.keep_predictions {
                kept.seg.push((*index, mask.clone()));
            }
        }
        report(masks.len())?;
    }
    let cls = match &sets.cls {
        Some(source) => {
            let mut metrics = ClsMetrics::new(source.classes.len());
            for batch in Loader::new(source.clone(), loader_config())? {
                let turn = B::device_turn(device);
                let scores = classify_batch(net, batch.images::<B>(device));
                drop(turn);
                for ((label, row), index) in batch.labels.iter().zip(&scores).zip(&batch.indices) {
                    metrics.add(*label, row);
                    if *index < settings.keep_predictions {
                        kept.cls.push((*index, row.clone()));
                    }
                }
                report(scores.len())?;
            }
            Some(metrics)
        }
        None => None,
    };
    kept.det.sort_by_key(|(index, _)| *index);
    kept.seg.sort_by_key(|(index, _)| *index);
    kept.cls.sort_by_key(|(index, _)| *index);
    Ok(Validation { det, det_curves, det_confusion, seg, cls, kept })
}
