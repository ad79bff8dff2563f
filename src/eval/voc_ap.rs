//! PASCAL VOC detection AP, following the official MATLAB devkit (`VOCevaldet.m`):
//! per class, detections in descending score order are matched greedily to the
//! unmatched ground truth of their image with the highest IoU (pixel-inclusive
//! boxes, IoU >= 0.5). A match to a difficult object counts as neither TP nor FP;
//! a second match to the same object is a FP.
//!
//! Where the popular Python port (py-faster-rcnn `voc_eval.py`) differs from the
//! devkit we follow the devkit: IoU >= 0.5 rather than > 0.5, and the 11 recall
//! steps have the values MATLAB's `0:0.1:1` produces (see [`voc07_recall_steps`]).

use super::det::{check_classes, group_by_class_and_image, positives_per_class, ClassAp, Detection, GroundTruth};
use crate::data::voc::VocBox;

/// How the precision/recall curve becomes one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VocMetric {
    /// VOC2007: mean of the maximum precision at recall >= 0, 0.1, ..., 1.
    Voc07,
    /// VOC2010 and later: area under the monotone precision envelope.
    Area,
}

/// The minimum IoU for a match.
pub const VOC_IOU_THRESHOLD: f64 = 0.5;

/// What one detection turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Found the object with this index (now taken).
    TruePositive(usize),
    FalsePositive,
    /// Matched a difficult object: left out of the curve entirely.
    Ignored,
}

/// One class's precision–recall curve at IoU 0.5: a point per counted
/// detection, in descending score order (detections on difficult objects are
/// left out, as the devkit leaves them out of the AP).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PrCurve {
    pub recall: Vec<f64>,
    pub precision: Vec<f64>,
    /// The score of the detection each point ends at.
    pub score: Vec<f32>,
}

impl PrCurve {
    /// The AP this curve gives under `metric`.
    pub fn ap(&self, metric: VocMetric) -> f64 {
        match metric {
            VocMetric::Voc07 => ap_11_point(&self.recall, &self.precision),
            VocMetric::Area => ap_area(&self.recall, &self.precision),
        }
    }

    /// The monotone precision envelope the VOC area AP integrates, as a step
    /// curve from recall 0 to 1: `(recall, precision)` corners to draw.
    pub fn envelope(&self) -> Vec<[f64; 2]> {
        let best = suffix_max(&self.precision);
        let mut points = Vec::with_capacity(2 * best.len() + 2);
        let mut previous_recall = 0.0;
        for (&r, &p) in self.recall.iter().zip(&best) {
            if r != previous_recall {
                points.push([previous_recall, p]);
                points.push([r, p]);
                previous_recall = r;
            }
        }
        points.push([previous_recall, 0.0]);
        points.push([1.0, 0.0]);
        points
    }
}

/// AP of every class in `0..num_classes`.
///
/// Detections with equal scores keep their input order (MATLAB's `sort` is stable).
/// Panics if a class index is `>= num_classes`.
pub fn evaluate_voc(gts: &[GroundTruth], dets: &[Detection], num_classes: usize, metric: VocMetric) -> ClassAp {
    curves_ap(&pr_curves(gts, dets, num_classes), metric)
}

/// The per-class AP of curves from [`pr_curves`].
pub fn curves_ap(curves: &[Option<PrCurve>], metric: VocMetric) -> ClassAp {
    ClassAp { per_class: curves.iter().map(|c| c.as_ref().map(|c| c.ap(metric))).collect() }
}

/// The precision–recall curve of every class in `0..num_classes`; `None` for a
/// class without non-difficult objects (no recall to speak of), an empty curve
/// for one with objects but no counted detection (AP 0).
pub fn pr_curves(gts: &[GroundTruth], dets: &[Detection], num_classes: usize) -> Vec<Option<PrCurve>> {
    check_classes(gts, dets, num_classes);
    let groups = group_by_class_and_image(gts);
    let npos = positives_per_class(gts, num_classes);

    // One stable sort: by class, then by descending score.
    let mut order: Vec<usize> = (0..dets.len()).collect();
    order.sort_by(|&a, &b| dets[a].class.cmp(&dets[b].class).then(dets[b].score.total_cmp(&dets[a].score)));

    let mut taken = vec![false; gts.len()];
    let mut curves: Vec<Option<PrCurve>> = npos.iter().map(|&n| (n > 0).then(PrCurve::default)).collect();
    for class_order in order.chunk_by(|&a, &b| dets[a].class == dets[b].class) {
        let class = dets[class_order[0]].class;
        let Some(curve) = curves[class].as_mut() else { continue };
        let (mut tp, mut fp) = (0usize, 0usize);
        for &d in class_order {
            let det = &dets[d];
            let candidates = groups.get(&(class, det.image)).map_or(&[][..], Vec::as_slice);
            match match_detection(det, candidates, gts, &mut taken) {
                Outcome::TruePositive(_) => tp += 1,
                Outcome::FalsePositive => fp += 1,
                // The devkit keeps the entry with tp = fp = 0, which repeats the previous
                // point of the curve (or adds (0, 0) at its start): neither AP changes.
                Outcome::Ignored => continue,
            }
            curve.recall.push(tp as f64 / npos[class] as f64);
            curve.precision.push(tp as f64 / (tp + fp) as f64);
            curve.score.push(det.score);
        }
    }
    curves
}

/// Matches one detection against the objects of its class in its image, marking
/// the matched object as taken.
pub(crate) fn match_detection(det: &Detection, candidates: &[usize], gts: &[GroundTruth], taken: &mut [bool]) -> Outcome {
    // The first object with the strictly highest IoU wins, taken or not: a
    // detection whose best object is already taken is a duplicate, not a second try.
    let mut best: Option<(f64, usize)> = None;
    for &g in candidates {
        if let Some(iou) = voc_iou(&det.bbox, &gts[g].bbox) {
            if best.is_none_or(|(max, _)| iou > max) {
                best = Some((iou, g));
            }
        }
    }
    match best {
        Some((iou, g)) if iou >= VOC_IOU_THRESHOLD => {
            if gts[g].difficult {
                Outcome::Ignored
            } else if taken[g] {
                Outcome::FalsePositive
            } else {
                taken[g] = true;
                Outcome::TruePositive(g)
            }
        }
        _ => Outcome::FalsePositive,
    }
}

/// IoU with the devkit's pixel-inclusive sizes (width = xmax - xmin + 1); `None`
/// when the boxes do not overlap by at least one pixel's width in each direction.
pub fn voc_iou(a: &VocBox, b: &VocBox) -> Option<f64> {
    let [ax0, ay0, ax1, ay1] = a.map(f64::from);
    let [bx0, by0, bx1, by1] = b.map(f64::from);
    let iw = ax1.min(bx1) - ax0.max(bx0) + 1.0;
    let ih = ay1.min(by1) - ay0.max(by0) + 1.0;
    if iw <= 0.0 || ih <= 0.0 {
        return None;
    }
    let inter = iw * ih;
    let union = (ax1 - ax0 + 1.0) * (ay1 - ay0 + 1.0) + (bx1 - bx0 + 1.0) * (by1 - by0 + 1.0) - inter;
    Some(inter / union)
}

/// The recall steps of the VOC2007 11-point AP, bit-exact with MATLAB's `0:0.1:1`,
/// which builds the first half as `k * 0.1` and the second as `1 - (10 - k) * 0.1`
/// (so 0.6 and 0.7 are the nearest doubles, while 0.3 is `3 * 0.1`, slightly above).
/// It matters whenever a recall lands exactly on a step, e.g. 3 of 5 objects found.
pub fn voc07_recall_steps() -> [f64; 11] {
    std::array::from_fn(|k| if k <= 5 { k as f64 * 0.1 } else { 1.0 - (10 - k) as f64 * 0.1 })
}

/// VOC2007 AP: the mean over the 11 recall steps of the best precision reached at
/// that recall or beyond (0 if never reached). `recall` must be non-decreasing.
pub fn ap_11_point(recall: &[f64], precision: &[f64]) -> f64 {
    let best_from = suffix_max(precision);
    voc07_recall_steps()
        .iter()
        .map(|&t| {
            let first = recall.partition_point(|&r| r < t);
            best_from.get(first).copied().unwrap_or(0.0) / 11.0
        })
        .sum()
}

/// VOC2010+ AP: the area under the precision envelope (precision made
/// non-increasing from the right), summed where recall changes.
pub fn ap_area(recall: &[f64], precision: &[f64]) -> f64 {
    let mrec: Vec<f64> = [0.0].iter().chain(recall).chain(&[1.0]).copied().collect();
    let mut mpre: Vec<f64> = [0.0].iter().chain(precision).chain(&[0.0]).copied().collect();
    for i in (0..mpre.len() - 1).rev() {
        mpre[i] = mpre[i].max(mpre[i + 1]);
    }
    (1..mrec.len()).filter(|&i| mrec[i] != mrec[i - 1]).map(|i| (mrec[i] - mrec[i - 1]) * mpre[i]).sum()
}

/// `out[i] = max(values[i..])`.
fn suffix_max(values: &[f64]) -> Vec<f64> {
    let mut out = values.to_vec();
    for i in (0..out.len().saturating_sub(1)).rev() {
        out[i] = out[i].max(out[i + 1]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::eval::det::test_cases::{det, gt};

    fn ap(gts: &[GroundTruth], dets: &[Detection], metric: VocMetric) -> f64 {
        evaluate_voc(gts, dets, 1, metric).per_class[0].unwrap()
    }

    fn both(gts: &[GroundTruth], dets: &[Detection]) -> (f64, f64) {
        (ap(gts, dets, VocMetric::Voc07), ap(gts, dets, VocMetric::Area))
    }

    /// Asserts (11-point, area) AP to 1e-12: the 11-point AP is a sum of elevenths.
    fn assert_aps(gts: &[GroundTruth], dets: &[Detection], expected: (f64, f64)) {
        let got = both(gts, dets);
        assert!(
            (got.0 - expected.0).abs() < 1e-12 && (got.1 - expected.1).abs() < 1e-12,
            "got {got:?}, expected {expected:?}"
        );
    }

    const A: VocBox = [1.0, 1.0, 10.0, 10.0]; // 10x10 pixels
    const B: VocBox = [21.0, 21.0, 40.0, 30.0]; // 20x10 pixels

    #[test]
    fn iou_counts_pixels_inclusively() {
        assert_eq!(voc_iou(&A, &A), Some(1.0));
        // [1,10] vs [6,15]: 5 shared columns of 10 each way: 50 / (100 + 100 - 50).
        assert_eq!(voc_iou(&A, &[6.0, 1.0, 15.0, 10.0]), Some(50.0 / 150.0));
        // Touching at x = 10 shares one pixel column: 10 / 190.
        assert_eq!(voc_iou(&A, &[10.0, 1.0, 19.0, 10.0]), Some(10.0 / 190.0));
        assert_eq!(voc_iou(&A, &[11.0, 1.0, 20.0, 10.0]), None);
    }

    #[test]
    fn recall_steps_are_matlabs() {
        let steps = voc07_recall_steps();
        assert_eq!(steps, [0.0, 0.1, 0.2, 0.30000000000000004, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]);
        // 3 of 5 found reaches step 0.6 (numpy's arange would give 0.6000000000000001 and miss it).
        assert!(3.0 / 5.0 >= steps[6]);
    }

    #[test]
    fn perfect_predictions_score_one() {
        let gts = [gt(0, A, false), gt(0, B, false), gt(1, A, false)];
        let dets = [det(0, A, 0.9), det(0, B, 0.8), det(1, A, 0.7)];
        assert_aps(&gts, &dets, (1.0, 1.0));
    }

    #[test]
    fn shifted_box_below_half_iou_is_a_false_positive() {
        // Image 0 holds A and B. The best detection is A shifted right by 5 pixels:
        // IoU 50/150 = 0.33 < 0.5, a FP. Then B is found (TP) and A never is.
        let gts = [gt(0, A, false), gt(0, B, false)];
        let dets = [det(0, [6.0, 1.0, 15.0, 10.0], 0.9), det(0, B, 0.8)];
        // Curve: (rec 0, prec 0), (rec 0.5, prec 0.5).
        // 11-point: steps 0..=0.5 reach precision 0.5, steps 0.6..=1 nothing: 6 * 0.5 / 11.
        // Area: envelope 0.5 from recall 0 to 0.5: 0.25.
        assert_aps(&gts, &dets, (3.0 / 11.0, 0.25));
        // Shifted by only 2 pixels: IoU 80/120 = 0.67, a TP, AP = 1 both ways.
        let dets = [det(0, [3.0, 1.0, 12.0, 10.0], 0.9), det(0, B, 0.8)];
        assert_aps(&gts, &dets, (1.0, 1.0));
    }

    #[test]
    fn exactly_half_iou_matches() {
        // A (10x10) inside a 20x10 box: inter 100, union 200: IoU = 0.5 exactly, a match.
        let gts = [gt(0, A, false)];
        assert_eq!(voc_iou(&A, &[1.0, 1.0, 20.0, 10.0]), Some(0.5));
        assert_aps(&gts, &[det(0, [1.0, 1.0, 20.0, 10.0], 0.5)], (1.0, 1.0));
    }

    #[test]
    fn duplicate_detection_is_a_false_positive() {
        // Two objects; a duplicate of A ranks second.
        // Curve: TP (1/2, 1), FP (1/2, 1/2), TP (1, 2/3).
        // 11-point: steps 0..=0.5 see max(1, 1/2, 2/3) = 1, steps 0.6..=1 see 2/3:
        //   (6 * 1 + 5 * 2/3) / 11 = 28/33.
        // Area: envelope 1 on [0, 0.5], 2/3 on [0.5, 1]: 0.5 + 1/3 = 5/6.
        let gts = [gt(0, A, false), gt(1, B, false)];
        let dets = [det(0, A, 0.9), det(0, A, 0.8), det(1, B, 0.7)];
        assert_aps(&gts, &dets, (28.0 / 33.0, 5.0 / 6.0));
    }

    #[test]
    fn detection_of_a_difficult_object_counts_as_neither() {
        // A is difficult: not a positive, and the top detection on it is ignored.
        // What remains is one TP on B: AP 1. Had it counted as a FP, the curve would
        // be (0, 0), (1, 1/2): AP 1/2.
        let gts = [gt(0, A, true), gt(0, B, false)];
        let dets = [det(0, A, 0.9), det(0, B, 0.8)];
        assert_aps(&gts, &dets, (1.0, 1.0));
        // Only the difficult object detected: no TP, no FP: an empty curve, AP 0.
        assert_aps(&gts, &dets[..1], (0.0, 0.0));
        // A duplicate on the difficult object is ignored too (no "taken" for difficult).
        let dets = [det(0, A, 0.9), det(0, A, 0.85), det(0, B, 0.8)];
        assert_aps(&gts, &dets, (1.0, 1.0));
    }

    #[test]
    fn class_with_only_difficult_objects_is_left_out() {
        let gts = [gt(0, A, true), GroundTruth { image: 0, class: 1, bbox: B, difficult: false }];
        let dets = [det(0, A, 0.9)];
        let report = evaluate_voc(&gts, &dets, 3, VocMetric::Voc07);
        // Class 1 has a positive but no detection: AP 0. Class 2 has nothing: left out.
        assert_eq!(report.per_class, vec![None, Some(0.0), None]);
        assert_eq!(report.left_out(), vec![0, 2]);
        assert_eq!(report.mean(), Some(0.0));
    }

    #[test]
    fn missed_object_lowers_recall_and_the_two_aps_differ() {
        // Three objects, two found with precision 1: recall tops out at 2/3.
        // 11-point: steps 0..=0.6 (7 steps; 0.6 <= 2/3) reach precision 1: 7/11 = 0.636.
        // Area: 1 * 2/3 = 0.667.
        let gts = [gt(0, A, false), gt(1, A, false), gt(2, A, false)];
        let dets = [det(0, A, 0.9), det(1, A, 0.8)];
        assert_aps(&gts, &dets, (7.0 / 11.0, 2.0 / 3.0));
    }

    #[test]
    fn recall_exactly_on_a_step_uses_matlab_steps() {
        // Five objects, three found first: recall 3/5 = 0.6 exactly. MATLAB's step 0.6
        // is the double nearest 0.6, so it is reached: steps 0..=0.6 give 1, the rest 0:
        // 7/11 (numpy's 0.6000000000000001 would give 6/11).
        let gts: Vec<GroundTruth> = (0..5).map(|i| gt(i, A, false)).collect();
        let dets: Vec<Detection> = (0..3).map(|i| det(i, A, 0.9)).collect();
        let voc07 = ap(&gts, &dets, VocMetric::Voc07);
        assert!((voc07 - 7.0 / 11.0).abs() < 1e-12, "{voc07}");
    }

    #[test]
    fn equal_scores_keep_input_order() {
        // FP then TP at the same score: curve (0, 0), (1, 1/2).
        // 11-point: every step reaches 1/2. Area: 1/2.
        let gts = [gt(0, A, false)];
        let dets = [det(1, A, 0.5), det(0, A, 0.5)];
        assert_aps(&gts, &dets, (0.5, 0.5));
        // TP first: 1 both ways.
        let dets = [det(0, A, 0.5), det(1, A, 0.5)];
        assert_aps(&gts, &dets, (1.0, 1.0));
    }

    /// The drawn envelope's area (a step curve) is the area AP, computed apart.
    #[test]
    fn the_envelope_encloses_the_area_ap() {
        let gts = [gt(0, A, false), gt(1, B, false), gt(2, A, false), gt(3, B, false)];
        let dets = [det(0, A, 0.9), det(0, A, 0.8), det(5, B, 0.75), det(1, B, 0.7), det(3, B, 0.6), det(4, A, 0.5)];
        let curve = pr_curves(&gts, &dets, 1)[0].clone().unwrap();
        assert_eq!(curve.recall, [0.25, 0.25, 0.25, 0.5, 0.75, 0.75]);
        assert_eq!(curve.score, [0.9, 0.8, 0.75, 0.7, 0.6, 0.5]);
        let envelope = curve.envelope();
        // Corners alternate horizontal and vertical steps: the area is Σ Δrecall · precision.
        let area: f64 = envelope.windows(2).map(|w| (w[1][0] - w[0][0]) * w[1][1]).sum();
        let ap = ap(&gts, &dets, VocMetric::Area);
        assert!((area - ap).abs() < 1e-6, "envelope area {area}, AP {ap}");
        // 1 on [0, 0.25], 3/5 on [0.25, 0.75]: 0.25 + 0.3.
        assert!((ap - 0.55).abs() < 1e-12, "{ap}");
        assert_eq!(pr_curves(&gts, &[], 2), vec![Some(PrCurve::default()), None]);
    }

    #[test]
    fn best_object_taken_makes_a_duplicate_even_if_another_overlaps() {
        // Two overlapping objects; both detections sit on the first. The second
        // detection's best IoU is with the taken object, so it is a FP, even though
        // it overlaps the free object by more than 0.5.
        let g0 = [1.0, 1.0, 10.0, 10.0];
        let g1 = [2.0, 1.0, 11.0, 10.0]; // IoU with g0: 90/110 = 0.82
        let gts = [gt(0, g0, false), gt(0, g1, false)];
        let dets = [det(0, g0, 0.9), det(0, g0, 0.8)];
        // TP (1/2, 1), FP (1/2, 1/2): 11-point 6/11, area 0.5.
        assert_aps(&gts, &dets, (6.0 / 11.0, 0.5));
    }
}
