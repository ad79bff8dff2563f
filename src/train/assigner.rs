//! Task-aligned assignment of ground-truth objects to anchor points (TOOD;
//! YOLOv8's `TaskAlignedAssigner`), on plain CPU numbers: the targets it builds
//! carry no gradient.
//!
//! For one image:
//! 1. candidates of a GT: the anchors whose point lies strictly inside its box;
//! 2. alignment `t = s^alpha * u^beta`, with `s` the predicted probability of the
//!    GT's class and `u` the IoU of the predicted box with the GT box (TOOD's
//!    IoU; YOLOv8 uses CIoU clamped at 0 here);
//! 3. each GT keeps its `top_k` candidates by `t` (ties: lower anchor index);
//! 4. an anchor kept by several GTs goes to the one its prediction overlaps most
//!    (ties: lower GT index);
//! 5. soft target score of a positive: `t * max_u / max_t`, with `max_t` and
//!    `max_u` the largest alignment and IoU over the GT's final positives, so
//!    the best-aligned anchor of a GT is asked for that GT's best IoU and the
//!    others proportionally less (YOLOv8's `norm_align_metric`).
//!
//! Cost: O(A · G) point-in-box tests plus a sort of each GT's candidates, a
//! few milliseconds for 8400 anchors × 20 GTs × 16 images.

use crate::model::postprocess::plain_iou;

/// Guards `t / max_t` when every alignment of a GT underflows to 0 (YOLOv8's value).
const NORM_EPS: f32 = 1e-9;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AssignerConfig {
    /// Positives kept per GT.
    pub top_k: usize,
    /// Exponent of the class probability in the alignment.
    pub alpha: f32,
    /// Exponent of the IoU in the alignment.
    pub beta: f32,
}

impl Default for AssignerConfig {
    /// YOLOv8's values.
    fn default() -> Self {
        Self { top_k: 10, alpha: 0.5, beta: 6.0 }
    }
}

/// One image's detached predictions.
#[derive(Debug, Clone, Copy)]
pub struct Predictions<'a> {
    /// `A × C` class probabilities (sigmoid of the logits), anchor-major.
    pub scores: &'a [f32],
    /// `A × 4` decoded boxes `x0, y0, x1, y1` in input pixels.
    pub boxes: &'a [f32],
    pub num_classes: usize,
}

/// An anchor assigned to a GT.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Positive {
    pub anchor: usize,
    /// Index of the GT in the image's list.
    pub gt: usize,
    pub label: usize,
    /// The GT box.
    pub bbox: [f32; 4],
    /// Soft classification target for `label` (also the box-loss weight).
    pub score: f32,
    /// IoU of the anchor's predicted box with the GT box.
    pub iou: f32,
}

/// An anchor's best claim so far: (GT, IoU, alignment).
#[derive(Clone, Copy)]
struct Claim {
    gt: usize,
    iou: f32,
    align: f32,
}

/// Assigns the GTs of one image (`gt_boxes[g]` has class `gt_labels[g]`) to
/// `points` (the anchor points). Returns the positives sorted by anchor; every
/// other anchor is background.
pub fn assign(
    points: &[[f32; 2]],
    pred: Predictions<'_>,
    gt_boxes: &[[f32; 4]],
    gt_labels: &[usize],
    config: &AssignerConfig,
) -> Vec<Positive> {
    let (a, c) = (points.len(), pred.num_classes);
    assert_eq!(pred.scores.len(), a * c, "scores must be A × C");
    assert_eq!(pred.boxes.len(), a * 4, "boxes must be A × 4");
    assert_eq!(gt_boxes.len(), gt_labels.len(), "one label per GT box");

    let mut claims: Vec<Option<Claim>> = vec![None; a];
    let mut candidates: Vec<(usize, f32, f32)> = Vec::new(); // (anchor, alignment, IoU)
    for (g, (gt, &label)) in gt_boxes.iter().zip(gt_labels).enumerate() {
        assert!(label < c, "GT label {label} out of range for {c} classes");
        candidates.clear();
        for (i, p) in points.iter().enumerate() {
            if p[0] > gt[0] && p[0] < gt[2] && p[1] > gt[1] && p[1] < gt[3] {
                let pred_box: &[f32; 4] = pred.boxes[i * 4..i * 4 + 4].try_into().unwrap();
                let u = plain_iou(pred_box, gt);
                let s = pred.scores[i * c + label];
                candidates.push((i, s.powf(config.alpha) * u.powf(config.beta), u));
            }
        }
        // Best alignment first, then lower anchor index: a total order, so the
        // selection is deterministic (NaN scores sort as the largest).
        let by_alignment = |x: &(usize, f32, f32), y: &(usize, f32, f32)| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0));
        let k = config.top_k.min(candidates.len());
        if k > 0 && k < candidates.len() {
            candidates.select_nth_unstable_by(k - 1, by_alignment);
        }
        for &(i, align, iou) in &candidates[..k] {
            // GTs come in order, so a tie keeps the lower GT index.
            if claims[i].is_none_or(|old| iou > old.iou) {
                claims[i] = Some(Claim { gt: g, iou, align });
            }
        }
    }

    // Per-GT normalisers over the final positives.
    let mut max_align = vec![0.0f32; gt_boxes.len()];
    let mut max_iou = vec![0.0f32; gt_boxes.len()];
    for claim in claims.iter().flatten() {
        max_align[claim.gt] = max_align[claim.gt].max(claim.align);
        max_iou[claim.gt] = max_iou[claim.gt].max(claim.iou);
    }
    claims
        .iter()
        .enumerate()
        .filter_map(|(anchor, claim)| {
            let claim = (*claim)?;
            let g = claim.gt;
            Some(Positive {
                anchor,
                gt: g,
                label: gt_labels[g],
                bbox: gt_boxes[g],
                score: claim.align * max_iou[g] / (max_align[g] + NORM_EPS),
                iou: claim.iou,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::anchors::Anchors;

    /// 16×16 input, stride 8: anchors at (4,4), (12,4), (4,12), (12,12).
    fn grid() -> Vec<[f32; 2]> {
        Anchors::new(16, &[8]).points
    }

    #[test]
    fn only_anchors_inside_the_box_are_candidates() {
        let points = grid();
        let scores = vec![0.5f32; 4];
        // Every prediction is the GT box itself: IoU 1, alignment 0.5^0.5.
        let gt = [2.0, 2.0, 14.0, 6.0]; // holds (4,4) and (12,4)
        let boxes: Vec<f32> = (0..4).flat_map(|_| gt).collect();
        let pred = Predictions { scores: &scores, boxes: &boxes, num_classes: 1 };
        let pos = assign(&points, pred, &[gt], &[0], &AssignerConfig::default());
        assert_eq!(pos.iter().map(|p| p.anchor).collect::<Vec<_>>(), vec![0, 1]);
        // Equal alignments: both get max IoU = 1.
        assert!(pos.iter().all(|p| (p.score - 1.0).abs() < 1e-6 && p.gt == 0 && p.bbox == gt));
        // A box holding no anchor point gets no positive (YOLOv8 behaviour).
        let pos = assign(&points, pred, &[[5.0, 5.0, 11.0, 11.0]], &[0], &AssignerConfig::default());
        assert!(pos.is_empty());
        // No GT: no positive.
        assert!(assign(&points, pred, &[], &[], &AssignerConfig::default()).is_empty());
    }

    #[test]
    fn top_k_keeps_the_best_aligned_and_scores_are_normalised() {
        let points = grid();
        let gt = [0.0, 0.0, 16.0, 16.0];
        // Predicted boxes with IoU 1, 1/4, 1/16, 1/4 with the GT.
        let boxes = [gt, [0.0, 0.0, 8.0, 8.0], [0.0, 0.0, 4.0, 4.0], [8.0, 8.0, 16.0, 16.0]].concat();
        let scores = [0.25f32, 1.0, 1.0, 0.04];
        let pred = Predictions { scores: &scores, boxes: &boxes, num_classes: 1 };
        let config = AssignerConfig { top_k: 2, alpha: 1.0, beta: 1.0 };
        // t = s·u: 0.25, 0.25, 1/16, 0.01 → the two 0.25s (tie broken by anchor index).
        let pos = assign(&points, pred, &[gt], &[0], &config);
        assert_eq!(pos.iter().map(|p| p.anchor).collect::<Vec<_>>(), vec![0, 1]);
        // max t = 0.25, max IoU over positives = 1: scores t / 0.25 · 1.
        assert!((pos[0].score - 1.0).abs() < 1e-6 && (pos[1].score - 1.0).abs() < 1e-6);
        let config = AssignerConfig { top_k: 3, alpha: 1.0, beta: 1.0 };
        let pos = assign(&points, pred, &[gt], &[0], &config);
        assert_eq!(pos.len(), 3);
        assert!((pos[2].score - 0.25).abs() < 1e-6, "{pos:?}");
    }

    #[test]
    fn an_anchor_claimed_twice_goes_to_the_gt_it_overlaps_most() {
        let points = grid();
        let (big, small) = ([0.0, 0.0, 16.0, 16.0], [0.0, 0.0, 9.0, 9.0]);
        // Anchor 0 predicts a box close to `small`; both GTs hold it.
        let boxes = [[0.0, 0.0, 8.0, 8.0]; 4].concat();
        let scores = [0.9f32; 8];
        let pred = Predictions { scores: &scores, boxes: &boxes, num_classes: 2 };
        let pos = assign(&points, pred, &[big, small], &[0, 1], &AssignerConfig::default());
        assert_eq!(pos.len(), 4);
        assert_eq!((pos[0].anchor, pos[0].gt, pos[0].label), (0, 1, 1));
        assert!(pos[1..].iter().all(|p| p.gt == 0 && p.label == 0));
    }
}
