//! Which boxes of one image are right: each detection, in descending score
//! order, matched as the VOC devkit matches (the same-class object it overlaps
//! most, IoU >= 0.5, not taken yet) is a true positive, else a false positive;
//! an object no detection found is a miss. Drawn by the error views.

use super::det::{group_by_class_and_image, Detection, GroundTruth};
use super::voc_ap::{match_detection, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoxOutcome {
    TruePositive,
    FalsePositive,
    /// On a difficult object: counted neither way (as in the AP).
    Difficult,
}

/// The outcome of each detection (in input order), and for each object the
/// score of the detection that found it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageErrors {
    pub detections: Vec<BoxOutcome>,
    pub found_by: Vec<Option<f32>>,
}

impl ImageErrors {
    /// Object `i` is missed when no detection at or above `threshold` found it.
    /// Matching in score order makes this the same as matching only those detections.
    pub fn missed(&self, i: usize, threshold: f32) -> bool {
        self.found_by[i].is_none_or(|score| score < threshold)
    }
}

/// Judges `dets` against `gts`, all of one image (their `image` fields are ignored).
pub fn judge_image(gts: &[GroundTruth], dets: &[Detection]) -> ImageErrors {
    let gts: Vec<GroundTruth> = gts.iter().map(|g| GroundTruth { image: 0, ..*g }).collect();
    let groups = group_by_class_and_image(&gts);
    let mut order: Vec<usize> = (0..dets.len()).collect();
    order.sort_by(|&a, &b| dets[b].score.total_cmp(&dets[a].score));
    let mut taken = vec![false; gts.len()];
    let mut outcomes = vec![BoxOutcome::FalsePositive; dets.len()];
    let mut found_by = vec![None; gts.len()];
    for d in order {
        let det = Detection { image: 0, ..dets[d] };
        let candidates = groups.get(&(det.class, 0)).map_or(&[][..], Vec::as_slice);
        outcomes[d] = match match_detection(&det, candidates, &gts, &mut taken) {
            Outcome::TruePositive(object) => {
                found_by[object] = Some(det.score);
                BoxOutcome::TruePositive
            }
            Outcome::FalsePositive => BoxOutcome::FalsePositive,
            Outcome::Ignored => BoxOutcome::Difficult,
        };
    }
    // A difficult object is never a miss: as if found at every threshold.
    for (g, found) in gts.iter().zip(found_by.iter_mut()) {
        if g.difficult {
            *found = Some(f32::INFINITY);
        }
    }
    ImageErrors { detections: outcomes, found_by }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gt(class: usize, bbox: [f32; 4], difficult: bool) -> GroundTruth {
        GroundTruth { image: 0, class, bbox, difficult }
    }

    fn det(class: usize, bbox: [f32; 4], score: f32) -> Detection {
        Detection { image: 0, class, bbox, score }
    }

    #[test]
    fn detections_are_judged_in_score_order_and_misses_follow_the_threshold() {
        let a = [1.0, 1.0, 10.0, 10.0];
        let b = [21.0, 21.0, 40.0, 30.0];
        let gts = [gt(0, a, false), gt(1, b, false), gt(0, [50.0, 50.0, 60.0, 60.0], true)];
        let dets = [
            det(0, a, 0.4),                   // a duplicate, but listed first: scored lower, so the FP
            det(0, a, 0.9),                   // TP on a
            det(0, b, 0.8),                   // wrong class on b: FP
            det(1, b, 0.3),                   // TP on b
            det(0, [50.0, 50.0, 60.0, 60.0], 0.7), // on the difficult object
        ];
        let judged = judge_image(&gts, &dets);
        use BoxOutcome::*;
        assert_eq!(judged.detections, [FalsePositive, TruePositive, FalsePositive, TruePositive, Difficult]);
        assert_eq!(judged.found_by[..2], [Some(0.9), Some(0.3)]);
        // At threshold 0.5 the only box on b is hidden: b is missed; a never is; the difficult object never is.
        assert!(!judged.missed(0, 0.5) && judged.missed(1, 0.5) && !judged.missed(1, 0.25) && !judged.missed(2, 0.99));
    }
}
