//! One image's scores, to compare two runs image by image: the AP50 of its
//! boxes with the boxes matched, missed and false, its pixel accuracy and
//! mean IoU, or whether its class is right. Each is the split metric of
//! `eval` computed on the image alone, so a sum over images agrees with it.

use super::det::{Detection, GroundTruth};
use super::det_confusion::DetConfusion;
use super::voc_ap::{evaluate_voc, VocMetric};
use super::ConfusionMatrix;

/// A detection image's score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetImageScore {
    /// VOC area AP at IoU 0.5 over the image's classes (`None`: no object that counts).
    pub ap50: Option<f64>,
    /// Objects found with their class, objects missed or taken for another
    /// class, and detections on nothing or of another class, at `score_threshold`
    /// (difficult objects count nowhere).
    pub matched: u64,
    pub missed: u64,
    pub false_positives: u64,
}

/// The score of one image's `dets` against its `gts` (all of one image).
pub fn det_image_score(gts: &[GroundTruth], dets: &[Detection], num_classes: usize, score_threshold: f32) -> DetImageScore {
    let ap50 = evaluate_voc(gts, dets, num_classes, VocMetric::Area).mean();
    let confusion = DetConfusion::new(gts, dets, num_classes, score_threshold);
    let matched: u64 = (0..num_classes).map(|c| confusion.count(c, c)).sum();
    let objects: u64 = (0..num_classes).flat_map(|g| (0..=num_classes).map(move |p| (g, p))).map(|(g, p)| confusion.count(g, p)).sum();
    let detections: u64 = (0..=num_classes).flat_map(|g| (0..num_classes).map(move |p| (g, p))).map(|(g, p)| confusion.count(g, p)).sum();
    DetImageScore { ap50, matched, missed: objects - matched, false_positives: detections - matched }
}

/// A segmentation image's score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegImageScore {
    pub pixel_accuracy: Option<f64>,
    /// Mean IoU over the classes in the image's truth or prediction.
    pub miou: Option<f64>,
}

/// The score of one image's predicted labels `pred` against `truth` (ADE labels, 0 = unlabelled).
pub fn seg_image_score(truth: &[u8], pred: &[u8], num_classes: usize) -> SegImageScore {
    let mut confusion = ConfusionMatrix::new(num_classes);
    confusion.accumulate(truth, pred);
    SegImageScore { pixel_accuracy: confusion.pixel_accuracy(), miou: confusion.miou() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::CONFUSION_SCORE_THRESHOLD;

    fn gt(class: usize, bbox: [f32; 4]) -> GroundTruth {
        GroundTruth { image: 0, class, bbox, difficult: false }
    }

    fn det(class: usize, bbox: [f32; 4], score: f32) -> Detection {
        Detection { image: 0, class, bbox, score }
    }

    #[test]
    fn a_detection_images_score_is_evals_on_the_image_alone() {
        let (a, b, c) = ([1.0, 1.0, 20.0, 20.0], [30.0, 30.0, 60.0, 50.0], [70.0, 5.0, 90.0, 25.0]);
        let gts = [gt(0, a), gt(1, b), gt(1, c)];
        // A found, B taken for class 0, C missed, one detection on nothing, one too weak to count.
        let dets = [det(0, a, 0.9), det(0, b, 0.8), det(1, [100.0, 100.0, 120.0, 120.0], 0.6), det(1, c, 0.1)];
        let score = det_image_score(&gts, &dets, 2, CONFUSION_SCORE_THRESHOLD);
        assert_eq!((score.matched, score.missed, score.false_positives), (1, 2, 2));
        let split = evaluate_voc(&gts, &dets, 2, VocMetric::Area).mean();
        assert_eq!(score.ap50, split);
        // A perfect image: AP 1, nothing missed or false.
        let perfect = det_image_score(&gts, &[det(0, a, 0.9), det(1, b, 0.8), det(1, c, 0.7)], 2, CONFUSION_SCORE_THRESHOLD);
        assert_eq!(perfect, DetImageScore { ap50: Some(1.0), matched: 3, missed: 0, false_positives: 0 });
        // No object: no AP, every detection false.
        let empty = det_image_score(&[], &[det(0, a, 0.9)], 2, CONFUSION_SCORE_THRESHOLD);
        assert_eq!(empty, DetImageScore { ap50: None, matched: 0, missed: 0, false_positives: 1 });
    }

    #[test]
    fn a_segmentation_images_score_is_the_split_metric_on_the_image_alone() {
        // Labels: 0 unlabelled (ignored), 1 and 2 classes.
        let truth = [1, 1, 2, 2, 0, 2];
        let pred = [1, 2, 2, 2, 1, 2];
        let score = seg_image_score(&truth, &pred, 2);
        assert_eq!(score.pixel_accuracy, Some(4.0 / 5.0));
        // IoU 1: 1 / 2 (one right, one wrong); IoU 2: 3 / 4.
        assert!((score.miou.unwrap() - (0.5 + 0.75) / 2.0).abs() < 1e-12);
    }
}
