//! COCO-style detection AP, as pycocotools' `COCOeval` (bbox, area range "all")
//! computes it: AP averaged over IoU thresholds 0.50:0.05:0.95 and 101 recall
//! points, plus AP50 and AP75.
//!
//! VOC data maps onto it as follows: boxes are continuous (`[x, y, xmax - x,
//! ymax - y]`, no +1), and difficult objects become crowd regions (`iscrowd = 1`):
//! a detection's IoU with one divides by the detection's own area, one crowd
//! region can absorb any number of detections, and detections matched to it are
//! ignored. Each image keeps its 100 best detections per class (pycocotools
//! applies `maxDets` to each image-and-category pair). pycocotools also ignores
//! boxes outside the area range; the range "all" (up to 1e10 px²) holds every VOC box.

use std::collections::{BTreeSet, HashMap};

use super::det::{check_classes, group_by_class_and_image, ClassAp, Detection, GroundTruth};
use crate::data::voc::VocBox;

/// Detections kept per image and class.
pub const MAX_DETECTIONS: usize = 100;

/// Number of IoU thresholds.
const T: usize = 10;
/// Number of recall points.
const R: usize = 101;

/// AP@[.50:.95] (the COCO "AP"), AP50 and AP75, per class and as means.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoReport {
    pub ap: ClassAp,
    pub ap50: ClassAp,
    pub ap75: ClassAp,
}

/// The IoU thresholds, bit-exact with pycocotools' `np.linspace(.5, .95, 10)`
/// (`i * step + start`, last = stop; so 0.9 is 0.8999999999999999). Exactness
/// matters: an IoU landing on a threshold must match exactly as pycocotools does.
pub fn iou_thresholds() -> [f64; T] {
    linspace(0.5, 0.95)
}

/// The recall points, bit-exact with `np.linspace(0, 1, 101)`.
pub fn recall_points() -> [f64; R] {
    linspace(0.0, 1.0)
}

/// numpy's `linspace(start, stop, N)`.
fn linspace<const N: usize>(start: f64, stop: f64) -> [f64; N] {
    let step = (stop - start) / (N - 1) as f64;
    std::array::from_fn(|i| if i == N - 1 { stop } else { i as f64 * step + start })
}

/// What one detection is at one IoU threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    TruePositive,
    FalsePositive,
    /// Matched to a crowd (difficult) region: out of the curve.
    Ignored,
}

/// One evaluated detection: its score and its outcome at every threshold.
struct Scored {
    score: f32,
    outcomes: [Outcome; T],
}

/// COCO AP of every class in `0..num_classes`; `None` for classes without
/// non-difficult ground truth. Panics if a class index is `>= num_classes`.
///
/// Equal scores keep their order as pycocotools' stable sorts do: within an image,
/// input order; across images, ascending `image`.
pub fn evaluate_coco(gts: &[GroundTruth], dets: &[Detection], num_classes: usize) -> CocoReport {
    check_classes(gts, dets, num_classes);
    let thresholds = iou_thresholds();
    let gt_groups = group_by_class_and_image(gts);

    // One stable sort: by class, image, then descending score.
    let mut order: Vec<usize> = (0..dets.len()).collect();
    order.sort_by(|&a, &b| {
        let (da, db) = (&dets[a], &dets[b]);
        (da.class, da.image).cmp(&(db.class, db.image)).then(db.score.total_cmp(&da.score))
    });
    let mut det_groups: HashMap<(usize, usize), &[usize]> = HashMap::new();
    for group in order.chunk_by(|&a, &b| (dets[a].class, dets[a].image) == (dets[b].class, dets[b].image)) {
        det_groups.insert((dets[group[0]].class, dets[group[0]].image), group);
    }

    // Every (class, image) pair with something in it, images ascending within a class.
    let pairs: BTreeSet<(usize, usize)> = gt_groups.keys().chain(det_groups.keys()).copied().collect();
    let mut scored: Vec<Vec<Scored>> = (0..num_classes).map(|_| Vec::new()).collect();
    let mut positives = vec![0usize; num_classes];
    for (class, image) in pairs {
        // Crowd (difficult) regions go last, otherwise in input order.
        let mut image_gts: Vec<&GroundTruth> =
            gt_groups.get(&(class, image)).into_iter().flatten().map(|&g| &gts[g]).collect();
        image_gts.sort_by_key(|g| g.difficult);
        positives[class] += image_gts.iter().filter(|g| !g.difficult).count();
        let image_dets: Vec<&Detection> = det_groups
            .get(&(class, image))
            .map_or(&[][..], |group| &group[..group.len().min(MAX_DETECTIONS)])
            .iter()
            .map(|&d| &dets[d])
            .collect();
        scored[class].extend(match_image(&image_gts, &image_dets, &thresholds));
    }

    let mut ap = vec![None; num_classes];
    let mut ap50 = vec![None; num_classes];
    let mut ap75 = vec![None; num_classes];
    for class in 0..num_classes {
        if positives[class] == 0 {
            continue;
        }
        let per_threshold = class_ap(&mut scored[class], positives[class]);
        ap[class] = Some(per_threshold.iter().sum::<f64>() / T as f64);
        ap50[class] = Some(per_threshold[0]);
        ap75[class] = Some(per_threshold[5]);
    }
    CocoReport { ap: ClassAp { per_class: ap }, ap50: ClassAp { per_class: ap50 }, ap75: ClassAp { per_class: ap75 } }
}

/// pycocotools' `evaluateImg` for one image and class: at each threshold, each
/// detection (best first) takes the unmatched object with the highest IoU at or
/// above the threshold; a later object wins ties, crowd regions (sorted last) are
/// only considered while no regular object has been matched, and stay available.
fn match_image(gts: &[&GroundTruth], dets: &[&Detection], thresholds: &[f64; T]) -> Vec<Scored> {
    let ious: Vec<Vec<f64>> =
        dets.iter().map(|d| gts.iter().map(|g| coco_iou(&d.bbox, &g.bbox, g.difficult)).collect()).collect();
    let mut scored: Vec<Scored> =
        dets.iter().map(|d| Scored { score: d.score, outcomes: [Outcome::FalsePositive; T] }).collect();
    for (t, &threshold) in thresholds.iter().enumerate() {
        let mut taken = vec![false; gts.len()];
        for (d, det_ious) in ious.iter().enumerate() {
            let mut best_iou = threshold.min(1.0 - 1e-10);
            let mut best: Option<usize> = None;
            for (g, gt) in gts.iter().enumerate() {
                if taken[g] && !gt.difficult {
                    continue;
                }
                if best.is_some_and(|m| !gts[m].difficult) && gt.difficult {
                    break;
                }
                if det_ious[g] < best_iou {
                    continue;
                }
                best_iou = det_ious[g];
                best = Some(g);
            }
            if let Some(m) = best {
                taken[m] = true;
                scored[d].outcomes[t] = if gts[m].difficult { Outcome::Ignored } else { Outcome::TruePositive };
            }
        }
    }
    scored
}

/// pycocotools' `accumulate` for one class: AP at each IoU threshold.
/// `scored` holds the class's detections image by image (ascending), best first.
fn class_ap(scored: &mut [Scored], positives: usize) -> [f64; T] {
    // Stable: equal scores stay in image order.
    scored.sort_by(|a, b| b.score.total_cmp(&a.score));
    let recall_points = recall_points();
    std::array::from_fn(|t| {
        // Ignored detections stay in the curve as repeats of the previous point,
        // exactly as pycocotools keeps them.
        let (mut tp, mut fp) = (0.0f64, 0.0f64);
        let mut recall = Vec::with_capacity(scored.len());
        let mut precision = Vec::with_capacity(scored.len());
        for s in scored.iter() {
            match s.outcomes[t] {
                Outcome::TruePositive => tp += 1.0,
                Outcome::FalsePositive => fp += 1.0,
                Outcome::Ignored => {}
            }
            recall.push(tp / positives as f64);
            precision.push(tp / (tp + fp + f64::EPSILON));
        }
        for i in (1..precision.len()).rev() {
            if precision[i] > precision[i - 1] {
                precision[i - 1] = precision[i];
            }
        }
        let sum: f64 = recall_points
            .iter()
            .map(|&r| precision.get(recall.partition_point(|&x| x < r)).copied().unwrap_or(0.0))
            .sum();
        sum / R as f64
    })
}

/// pycocotools' box IoU on `[x, y, w, h]` boxes made from VOC corners; against a
/// crowd region the union is the detection's own area.
pub fn coco_iou(det: &VocBox, gt: &VocBox, gt_is_crowd: bool) -> f64 {
    let [dx, dy, dw, dh] = to_xywh(det);
    let [gx, gy, gw, gh] = to_xywh(gt);
    let w = (dx + dw).min(gx + gw) - dx.max(gx);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (dy + dh).min(gy + gh) - dy.max(gy);
    if h <= 0.0 {
        return 0.0;
    }
    let inter = w * h;
    let union = if gt_is_crowd { dw * dh } else { dw * dh + gw * gh - inter };
    inter / union
}

/// `[xmin, ymin, xmax, ymax]` to `[x, y, w, h]` in double precision, the way a
/// converted annotation file would hold it (so `x + w` rounds as in pycocotools).
fn to_xywh(b: &VocBox) -> [f64; 4] {
    let [x0, y0, x1, y1] = b.map(f64::from);
    [x0, y0, x1 - x0, y1 - y0]
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::eval::det::test_cases::{det, gt};

    fn report(gts: &[GroundTruth], dets: &[Detection]) -> (f64, f64, f64) {
        let r = evaluate_coco(gts, dets, 1);
        (r.ap.per_class[0].unwrap(), r.ap50.per_class[0].unwrap(), r.ap75.per_class[0].unwrap())
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// pycocotools' precision is tp / (tp + fp + eps), so "1" is 1 - 2.2e-16.
    fn assert_report(gts: &[GroundTruth], dets: &[Detection], expected: (f64, f64, f64)) {
        let got = report(gts, dets);
        assert!(
            close(got.0, expected.0) && close(got.1, expected.1) && close(got.2, expected.2),
            "got {got:?}, expected {expected:?}"
        );
    }

    const A: VocBox = [0.0, 0.0, 10.0, 10.0];

    #[test]
    fn thresholds_are_numpys() {
        let t = iou_thresholds();
        assert_eq!(t, [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.8999999999999999, 0.95]);
        let r = recall_points();
        assert_eq!((r[0], r[7], r[35], r[70], r[100]), (0.0, 0.07, 0.35000000000000003, 0.7000000000000001, 1.0));
    }

    #[test]
    fn iou_is_continuous_and_crowd_uses_the_detection_area() {
        // Continuous 10x10 boxes shifted by 5: 50 / 150.
        assert!(close(coco_iou(&A, &[5.0, 0.0, 15.0, 10.0], false), 1.0 / 3.0));
        // Against a crowd region: 50 / (detection's 100).
        assert!(close(coco_iou(&[5.0, 0.0, 15.0, 10.0], &A, true), 0.5));
        // A detection inside a big crowd region has IoU 1 with it.
        assert_eq!(coco_iou(&[2.0, 2.0, 4.0, 4.0], &A, true), 1.0);
        // Touching edges do not overlap in continuous coordinates.
        assert_eq!(coco_iou(&A, &[10.0, 0.0, 20.0, 10.0], false), 0.0);
    }

    #[test]
    fn perfect_predictions_score_one() {
        let gts = [gt(0, A, false), gt(1, [3.0, 4.0, 30.0, 20.0], false)];
        let dets = [det(0, A, 0.9), det(1, [3.0, 4.0, 30.0, 20.0], 0.8)];
        assert_report(&gts, &dets, (1.0, 1.0, 1.0));
    }

    #[test]
    fn box_at_iou_0_6_counts_at_three_thresholds() {
        // [0,0,10,10] vs [0,0,10,6]: inter 60, union 100: IoU 0.6 (the double nearest,
        // which equals the threshold 0.6, so it matches at .5, .55 and .6 only).
        let dets = [det(0, [0.0, 0.0, 10.0, 6.0], 0.9)];
        assert_eq!(coco_iou(&dets[0].bbox, &A, false), 0.6);
        // At a matching threshold AP = 1 (all 101 points at precision 1), else 0.
        assert_report(&[gt(0, A, false)], &dets, (3.0 / 10.0, 1.0, 0.0));
    }

    #[test]
    fn missed_object_limits_the_recall_points() {
        // Two objects, one found: precision 1 up to recall 0.5, i.e. points
        // 0, 0.01, ..., 0.5: 51 of 101.
        let gts = [gt(0, A, false), gt(1, A, false)];
        let (ap, ap50, _) = report(&gts, &[det(0, A, 0.9)]);
        assert!(close(ap, 51.0 / 101.0) && close(ap50, 51.0 / 101.0), "{ap} {ap50}");
    }

    #[test]
    fn duplicate_and_higher_scored_false_positive() {
        // One object; a FP elsewhere outscores the TP, and a duplicate follows.
        // Curve: FP (0, 0), TP (1, 1/2), FP (1, 1/3); envelope 1/2 everywhere: AP 1/2.
        let gts = [gt(0, A, false)];
        let dets = [det(1, A, 0.95), det(0, A, 0.9), det(0, A, 0.8)];
        let (ap, _, _) = report(&gts, &dets);
        assert!(close(ap, 0.5), "{ap}");
    }

    #[test]
    fn difficult_objects_are_crowd_regions() {
        // A difficult big region with a regular object inside it.
        let region = [0.0, 0.0, 100.0, 100.0];
        let object = [10.0, 10.0, 20.0, 20.0];
        let gts = [gt(0, region, true), gt(0, object, false)];
        // The region absorbs several detections (all ignored, IoU 1 by the
        // detection's area), and the object is still found: AP 1.
        let dets =
            [det(0, [50.0, 50.0, 60.0, 60.0], 0.99), det(0, [70.0, 70.0, 80.0, 80.0], 0.98), det(0, object, 0.5)];
        assert_report(&gts, &dets, (1.0, 1.0, 1.0));
        // A duplicate of the object prefers the regular object but finds it taken;
        // it then falls back to the crowd region and is ignored, not a FP.
        let dets = [det(0, object, 0.9), det(0, object, 0.8)];
        assert_report(&gts, &dets, (1.0, 1.0, 1.0));
        // Only difficult objects: the class is left out.
        let r = evaluate_coco(&gts[..1], &dets, 2);
        assert_eq!(r.ap.per_class, vec![None, None]);
        assert_eq!(r.ap.mean(), None);
    }

    #[test]
    fn a_regular_match_is_not_traded_for_a_crowd_region() {
        // A detection overlapping a regular object at 0.55 and a crowd region at 1:
        // once the regular object matches, crowd regions are not looked at, so at
        // thresholds .5 and .55 it is a TP; at higher ones it falls to the crowd
        // region (ignored), leaving the object missed: AP50 = 1, AP = 2/10.
        let object = [0.0, 0.0, 10.0, 10.0];
        let region = [0.0, 0.0, 100.0, 100.0];
        let detection = [0.0, 0.0, 10.0, 5.5]; // IoU with object: 55 / 100
        assert!(close(coco_iou(&detection, &object, false), 0.55));
        let gts = [gt(0, region, true), gt(0, object, false)];
        assert_report(&gts, &[det(0, detection, 0.9)], (0.2, 1.0, 0.0));
    }

    #[test]
    fn only_the_best_hundred_detections_per_image_and_class_count() {
        // 100 FPs outscore the TP in image 0: it is cut off, AP 0. In image 1 the
        // TP is within its own image's 100 and counts: 1 of 2 objects found, with
        // precision 1/101 at recall 0.5 -> points 0..=0.5 (51) at 1/101.
        let far = [50.0, 50.0, 60.0, 60.0];
        let mut dets: Vec<Detection> = (0..100).map(|i| det(0, far, 0.9 + i as f32 * 1e-4)).collect();
        dets.push(det(0, A, 0.5));
        let (ap, _, _) = report(&[gt(0, A, false)], &dets);
        assert_eq!(ap, 0.0);
        dets.push(det(1, A, 0.4));
        let (ap, _, _) = report(&[gt(0, A, false), gt(1, A, false)], &dets);
        assert!(close(ap, 51.0 / 101.0 / 101.0), "{ap}");
    }

    #[test]
    fn equal_scores_break_by_image_order() {
        // Same score: image 0's FP ranks before image 1's TP (pycocotools
        // concatenates images in id order, then sorts stably): curve (0,0), (1,1/2).
        let gts = [gt(1, A, false)];
        let dets = [det(1, A, 0.5), det(0, A, 0.5)];
        let (ap, _, _) = report(&gts, &dets);
        assert!(close(ap, 0.5), "{ap}");
    }
}
