//! The error view of a prediction against its ground truth: boxes coloured as
//! true positive / false positive / missed (the VOC matching, see
//! `eval::box_errors`), and pixels as right / wrong / ignored (unlabelled in
//! the ground truth). Shared by Inspect and Preview.

use eframe::egui::{Color32, ColorImage};
use image::GrayImage;

use crate::data::preprocess::{voc_to_xyxy, xyxy_to_voc};
use crate::data::truth::ImageTruth;
use crate::data::voc::VocAnnotation;
use crate::eval::box_errors::{judge_image, BoxOutcome, ImageErrors};
use crate::eval::{Detection as EvalDetection, GroundTruth};
use crate::model::postprocess::Detection;

pub const TRUE_POSITIVE: Color32 = Color32::from_rgb(60, 200, 90);
pub const FALSE_POSITIVE: Color32 = Color32::from_rgb(230, 60, 50);
pub const MISSED: Color32 = Color32::from_rgb(255, 160, 20);
pub const IGNORED: Color32 = Color32::from_rgb(150, 150, 150);

/// A prediction's ground truth and how the prediction fares against it.
pub struct ErrorLayer {
    /// Ground-truth boxes (0-based corners) and whether each is difficult.
    pub truth_boxes: Vec<(Detection, bool)>,
    /// The verdict on each predicted box, when the image has box truth (a
    /// detection image, even one without objects: then every box is a false positive).
    pub judged: Option<ImageErrors>,
    /// ADE encoding, the prediction's size.
    pub truth_mask: Option<GrayImage>,
}

impl ErrorLayer {
    /// `truth_boxes` is `None` for an image without box labels (a segmentation image).
    pub fn new(truth_boxes: Option<Vec<(Detection, bool)>>, truth_mask: Option<GrayImage>, predicted: &[Detection], predicted_mask: Option<&GrayImage>) -> Self {
        let judged = truth_boxes.as_ref().map(|truth_boxes| {
            let gts: Vec<GroundTruth> = truth_boxes
                .iter()
                .map(|(d, difficult)| GroundTruth { image: 0, class: d.class, bbox: xyxy_to_voc(d.bbox), difficult: *difficult })
                .collect();
            let dets: Vec<EvalDetection> = predicted.iter().map(|d| d.to_eval(0)).collect();
            judge_image(&gts, &dets)
        });
        let truth_boxes = truth_boxes.unwrap_or_default();
        // A mask of another size (a file changed since) cannot be compared pixel by pixel.
        let truth_mask = truth_mask.filter(|m| predicted_mask.is_some_and(|p| m.dimensions() == p.dimensions()));
        Self { truth_boxes, judged, truth_mask }
    }

    /// The colour of predicted box `i` in the error view.
    pub fn box_color(&self, i: usize) -> Option<Color32> {
        self.judged.as_ref().map(|j| match j.detections[i] {
            BoxOutcome::TruePositive => TRUE_POSITIVE,
            BoxOutcome::FalsePositive => FALSE_POSITIVE,
            BoxOutcome::Difficult => IGNORED,
        })
    }

    /// The verdict's name for a hover text.
    pub fn box_verdict(&self, i: usize) -> Option<&'static str> {
        self.judged.as_ref().map(|j| match j.detections[i] {
            BoxOutcome::TruePositive => "true positive",
            BoxOutcome::FalsePositive => "false positive",
            BoxOutcome::Difficult => "on a difficult object (not counted)",
        })
    }

    /// The ground-truth boxes no prediction at or above `threshold` found.
    pub fn missed(&self, threshold: f32) -> impl Iterator<Item = &Detection> + '_ {
        let judged = self.judged.as_ref();
        self.truth_boxes
            .iter()
            .enumerate()
            .filter(move |(i, _)| judged.is_some_and(|j| j.missed(*i, threshold)))
            .map(|(_, (d, _))| d)
    }
}

/// Ground truth read from files as the error layer's parts: boxes (0-based
/// corners, with their difficult flag) or a mask.
pub fn truth_parts(truth: ImageTruth) -> (Option<Vec<(Detection, bool)>>, Option<GrayImage>) {
    match truth {
        ImageTruth::Boxes(annotation) => (Some(annotation_boxes(&annotation)), None),
        ImageTruth::Mask(mask) => (None, Some(mask)),
    }
}

/// An annotation's objects as boxes in the predictions' coordinates (0-based,
/// continuous), each with its difficult flag.
pub fn annotation_boxes(annotation: &VocAnnotation) -> Vec<(Detection, bool)> {
    annotation.objects.iter().map(|o| (Detection { bbox: voc_to_xyxy(o.bbox), class: o.class, score: 1.0 }, o.difficult)).collect()
}

/// Right (green), wrong (red) and ignored (grey, unlabelled in the ground truth) pixels.
pub fn pixel_error_image(truth: &GrayImage, predicted: &GrayImage) -> ColorImage {
    let pixels = truth
        .as_raw()
        .iter()
        .zip(predicted.as_raw())
        .map(|(&t, &p)| match (t, t == p) {
            (0, _) => IGNORED.gamma_multiply(0.6),
            (_, true) => TRUE_POSITIVE,
            (_, false) => FALSE_POSITIVE,
        })
        .collect();
    ColorImage::new([truth.width() as usize, truth.height() as usize], pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_are_right_wrong_or_ignored() {
        let truth = GrayImage::from_raw(3, 1, vec![0, 2, 2]).unwrap();
        let predicted = GrayImage::from_raw(3, 1, vec![1, 2, 3]).unwrap();
        let image = pixel_error_image(&truth, &predicted);
        assert_eq!(image.pixels, vec![IGNORED.gamma_multiply(0.6), TRUE_POSITIVE, FALSE_POSITIVE]);
    }

    #[test]
    fn boxes_get_their_verdicts_and_misses_follow_the_threshold() {
        let b = |class, bbox, score| Detection { bbox, class, score };
        let truth = vec![(b(0, [0.0, 0.0, 10.0, 10.0], 1.0), false), (b(1, [20.0, 20.0, 30.0, 30.0], 1.0), false)];
        let predicted = [b(0, [0.0, 0.0, 10.0, 10.0], 0.9), b(0, [20.0, 20.0, 30.0, 30.0], 0.8), b(1, [20.0, 20.0, 30.0, 30.0], 0.3)];
        let layer = ErrorLayer::new(Some(truth), None, &predicted, None);
        assert_eq!((layer.box_color(0), layer.box_color(1), layer.box_color(2)), (Some(TRUE_POSITIVE), Some(FALSE_POSITIVE), Some(TRUE_POSITIVE)));
        assert_eq!(layer.missed(0.5).map(|d| d.class).collect::<Vec<_>>(), [1]);
        assert_eq!(layer.missed(0.25).count(), 0);
        // No box labels (a segmentation image): no verdicts; a detection image without objects: all false.
        assert_eq!(ErrorLayer::new(None, None, &predicted, None).box_color(0), None);
        assert_eq!(ErrorLayer::new(Some(Vec::new()), None, &predicted, None).box_color(0), Some(FALSE_POSITIVE));
    }
}
