//! Metrics, independent of any model: detection AP (VOC07, VOC, COCO),
//! segmentation mIoU and classification accuracy.
//!
//! The metric functions take plain in-memory data (no files), so the trainer can
//! call them on its own predictions; `predictions` reads and checks the files the
//! `twinhead eval` commands are given.

pub mod box_errors;
pub mod cls;
pub mod coco;
pub mod det;
pub mod det_confusion;
pub mod image_score;
pub mod predictions;
pub mod seg;
pub mod square_counts;
pub mod voc_ap;

#[cfg(test)]
mod reference_tests;

pub use cls::ClsMetrics;
pub use coco::{evaluate_coco, CocoReport};
pub use det_confusion::{DetConfusion, CONFUSION_SCORE_THRESHOLD};
pub use det::{ground_truth_from_voc, ClassAp, Detection, GroundTruth};
pub use seg::ConfusionMatrix;
pub use voc_ap::{curves_ap, evaluate_voc, pr_curves, PrCurve, VocMetric};

/// The AllInOne (CVPR23 Track 1) score of a three-task model: the mean of
/// detection mAP50, segmentation mIoU and classification top-1.
pub fn track_score(map50: f64, miou: f64, top1: f64) -> f64 {
    (map50 + miou + top1) / 3.0
}

/// Mean of the `Some` values (classes without a value are left out); `None` when
/// there are none.
pub fn mean_of_defined(values: &[Option<f64>]) -> Option<f64> {
    let defined: Vec<f64> = values.iter().flatten().copied().collect();
    (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64)
}
