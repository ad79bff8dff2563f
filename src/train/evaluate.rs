//! Validation during training: every task of the run on fixed subsets of its
//! validation split, whichever task is training, with the eval module's metrics.

use std::ops::ControlFlow;
use std::path::Path;

use anyhow::Result;
use image::GrayImage;

use crate::backend::TwinBackend;
use crate::data::ade::AdeDataset;
use crate::data::classify::ClsDataset;
use crate::data::batch::{ClsSource, DetSource, SegSource};
use crate::data::loader::{Loader, LoaderConfig};
use crate::data::split::DatasetSplit;
use crate::data::voc::VocDataset;
use crate::eval::{
    curves_ap, ground_truth_from_voc, pr_curves, ClassAp, ClsMetrics, ConfusionMatrix, DetConfusion, GroundTruth, PrCurve, VocMetric,
    CONFUSION_SCORE_THRESHOLD,
};
use crate::model::task::PerTask;
use crate::model::{Task, TwinNet};
use crate::model::postprocess::{Detection, PostprocessConfig, DISPLAY_SCORE_FLOOR};
use crate::model::predict::{classify_batch, detect_batch, segment_batch};
use crate::train::config::DataConfig;

/// The validation splits of a run's tasks, whole (what `twinhead eval --run`
/// scores and the workbench's Inspect panel samples).
pub struct ValidationSplits(PerTask<Option<DatasetSplit>>);

impl ValidationSplits {
    pub fn open(data: &DataConfig) -> Result<Self> {
        let mut splits = PerTask::default();
        for task in Task::ALL {
            splits[task] = data.open_split(task, data.split_names(task)[1])?;
        }
        Ok(Self(splits))
    }

    /// `task`'s split, in a run with `task`.
    pub fn get(&self, task: Task) -> Option<&DatasetSplit> {
        self.0[task].as_ref()
    }

    /// The run's tasks' splits.
    pub fn iter(&self) -> impl Iterator<Item = (Task, &DatasetSplit)> {
        self.0.iter().filter_map(|(task, split)| Some((task, split.as_ref()?)))
    }

    pub fn det(&self) -> Option<&VocDataset> {
        match self.get(Task::Det)? {
            DatasetSplit::Det(split) => Some(split),
            _ => None,
        }
    }

    pub fn seg(&self) -> Option<&AdeDataset> {
        match self.get(Task::Seg)? {
            DatasetSplit::Seg(split) => Some(split),
            _ => None,
        }
    }

    pub fn cls(&self) -> Option<&ClsDataset> {
        match self.get(Task::Cls)? {
            DatasetSplit::Cls(split) => Some(split),
            _ => None,
        }
    }

    /// The first `images` records of each split, with their ground truth.
    pub fn subsets(&self, images: PerTask<usize>) -> Result<ValidationSets> {
        let mut sets = ValidationSets::default();
        if let Some(voc) = self.det() {
            let mut source = DetSource::new(voc);
            source.records.truncate(images[Task::Det]);
            let truth = ground_truth_from_voc(&source.records);
            sets.det = Some((source, truth));
        }
        if let Some(ade) = self.seg() {
            let mut source = SegSource::new(ade);
            source.records.truncate(images[Task::Seg]);
            let truth = source
                .records
                .iter()
                .map(|r| r.read_mask(source.classes.len()).map_err(|p| anyhow::anyhow!("{p}")))
                .collect::<Result<Vec<_>>>()?;
            sets.seg = Some((source, truth));
        }
        if let Some(cls) = self.cls() {
            let mut source = ClsSource::new(cls);
            source.records.truncate(images[Task::Cls]);
            sets.cls = Some(source);
        }
        Ok(sets)
    }

    /// The first task whose split has other classes than `head_classes`
    /// says the network's head has: `(task, head's, split's)`.
    pub fn class_mismatch(&self, head_classes: impl Fn(Task) -> usize) -> Option<(Task, usize, usize)> {
        self.iter().map(|(task, split)| (task, head_classes(task), split.classes().len())).find(|(_, head, split)| head != split)
    }

    /// Images in each split (0 for a task the run does not have).
    pub fn image_counts(&self) -> PerTask<usize> {
        PerTask::from_fn(|task| self.get(task).map_or(0, DatasetSplit::len))
    }
}

/// The fixed validation subsets of a run's tasks and their ground truth (masks kept in memory).
#[derive(Default)]
pub struct ValidationSets {
    det: Option<(DetSource, Vec<GroundTruth>)>,
    seg: Option<(SegSource, Vec<GrayImage>)>,
    cls: Option<ClsSource>,
}

impl ValidationSets {
    /// The classes of each of the run's tasks (empty for a task it does not have).
    pub fn class_names(&self, task: Task) -> Vec<String> {
        let classes = match task {
            Task::Det => self.det.as_ref().map(|(source, _)| &source.classes),
            Task::Seg => self.seg.as_ref().map(|(source, _)| &source.classes),
            Task::Cls => self.cls.as_ref().map(|source| &source.classes),
        };
        classes.map_or_else(Vec::new, |c| c.names().to_vec())
    }

    /// `(id, image path)` of detection image `index`.
    pub fn det_image(&self, index: usize) -> Option<(&str, &Path)> {
        let record = &self.det.as_ref()?.0.records[index];
        Some((&record.id, &record.image_path))
    }

    /// `(id, image path)` of segmentation image `index`.
    pub fn seg_image(&self, index: usize) -> Option<(&str, &Path)> {
        let record = &self.seg.as_ref()?.0.records[index];
        Some((&record.id, &record.image_path))
    }

    /// `(id, image path, true class)` of classification image `index`.
    pub fn cls_image(&self, index: usize) -> Option<(&str, &Path, usize)> {
        let record = &self.cls.as_ref()?.records[index];
        Some((&record.id, &record.image_path, record.class))
    }
}

/// The metrics of one evaluation, each task's with what it is computed from.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Validation {
    pub det: Option<DetValidation>,
    pub seg: Option<ConfusionMatrix>,
    pub cls: Option<ClsMetrics>,
    /// The predictions of the first [`ValidationSettings::keep_predictions`] images of each set.
    #[serde(skip)]
    pub kept: KeptPredictions,
}

impl Validation {
    /// `task`'s metric (mAP50, mIoU, top-1; 0 where nothing could be scored), in a run with the task.
    pub fn metric(&self, task: Task) -> Option<f64> {
        match task {
            Task::Det => self.det.as_ref().map(|det| det.ap.mean().unwrap_or(0.0)),
            Task::Seg => self.seg.as_ref().map(|seg| seg.miou().unwrap_or(0.0)),
            Task::Cls => self.cls.as_ref().map(|cls| cls.top1().unwrap_or(0.0)),
        }
    }

    /// `task`'s value per class (AP50, IoU, accuracy), in a run with the task.
    pub fn per_class(&self, task: Task) -> Option<Vec<Option<f64>>> {
        match task {
            Task::Det => self.det.as_ref().map(|det| det.ap.per_class.clone()),
            Task::Seg => self.seg.as_ref().map(|seg| seg.per_class_iou()),
            Task::Cls => self.cls.as_ref().map(|cls| cls.per_class_accuracy()),
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct DetValidation {
    /// VOC area AP50 per class.
    pub ap: ClassAp,
    /// The curves `ap` integrates (see [`pr_curves`]).
    pub curves: Vec<Option<PrCurve>>,
    pub confusion: DetConfusion,
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
    let det_images = sets.det.as_ref().map_or(0, |(source, _)| source.records.len());
    let seg_images = sets.seg.as_ref().map_or(0, |(source, _)| source.records.len());
    let total = det_images + seg_images + sets.cls.as_ref().map_or(0, |c| c.records.len());
    let mut done = 0;
    let mut report = |images: usize| {
        done += images;
        match on_batch(done, total) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(()) => Err(anyhow::anyhow!("validation cancelled")),
        }
    };

    let mut kept = KeptPredictions::default();
    let det = match &sets.det {
        Some((source, truth)) => {
            let mut detections = Vec::new();
            for batch in Loader::new(source.clone(), loader_config())? {
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
            let num_classes = source.classes.len();
            let curves = pr_curves(truth, &detections, num_classes);
            let ap = curves_ap(&curves, VocMetric::Area);
            let confusion = DetConfusion::new(truth, &detections, num_classes, CONFUSION_SCORE_THRESHOLD);
            Some(DetValidation { ap, curves, confusion })
        }
        None => None,
    };
    let seg = match &sets.seg {
        Some((source, truth)) => {
            let mut seg = ConfusionMatrix::new(source.classes.len());
            for batch in Loader::new(source.clone(), loader_config())? {
                let turn = B::device_turn(device);
                let masks = segment_batch(net, batch.images::<B>(device), &batch.letterboxes);
                drop(turn);
                for (index, mask) in batch.indices.iter().zip(&masks) {
                    seg.accumulate(truth[*index].as_raw(), mask.as_raw());
                    if *index < settings.keep_predictions {
                        kept.seg.push((*index, mask.clone()));
                    }
                }
                report(masks.len())?;
            }
            Some(seg)
        }
        None => None,
    };
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
    Ok(Validation { det, seg, cls, kept })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ClassList;

    fn split(classes: ClassList) -> AdeDataset {
        AdeDataset { root: "ade".into(), split: "validation".into(), classes, records: Vec::new(), problems: Vec::new() }
    }

    #[test]
    fn a_head_with_other_classes_than_its_split_is_named_with_both_counts() {
        let mut splits = PerTask::default();
        splits[Task::Seg] = Some(DatasetSplit::Seg(split(ClassList::ade())));
        let splits = ValidationSplits(splits);
        assert_eq!(splits.class_mismatch(|task| if task == Task::Seg { 150 } else { 7 }), None, "tasks without a split are not compared");
        assert_eq!(splits.class_mismatch(|_| 9), Some((Task::Seg, 9, 150)));
        assert_eq!(splits.image_counts(), PerTask::from([0, 0, 0]));
    }
}
