//! Detection loss of the anchor-free head (YOLOv8's, without the DFL term: our
//! head regresses side distances directly, see `model::anchors`).
//!
//! - Targets: the task-aligned assigner (`train::assigner`) on the detached
//!   predictions; a positive's target is its GT box and a soft score for its
//!   GT's class, every other (anchor, class) pair has target 0.
//! - Classification: BCE-with-logits of every (anchor, class) against those soft
//!   targets, summed.
//! - Box: `(1 - CIoU)` (or GIoU) of each positive's decoded box with its GT box,
//!   weighted by the positive's soft score, summed.
//! - Both sums are divided by `max(sum of target scores, 1)` over the batch, so
//!   the loss does not depend on how many objects the batch holds and an image
//!   without objects only contributes background terms to the classification loss.
//!
//! Weights: YOLOv8's `box = 7.5`, `cls = 0.5` by default, in the same units (the
//! same normalisation). YOLOv8 also multiplies the total by the batch size; we
//! do not, so the loss is a per-batch mean like the segmentation loss.

use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rayon::prelude::*;

use super::iou::{box_iou, IouKind};
use super::{bce_with_logits, to_vec};
use crate::model::anchors::{decode_boxes, Anchors};
use crate::train::assigner::{assign, AssignerConfig, Positive, Predictions};

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DetLossConfig {
    pub cls_weight: f32,
    pub box_weight: f32,
    /// Overlap measure of the box loss (`Iou` gives the plain `1 - IoU` loss).
    pub box_loss: IouKind,
    pub assigner: AssignerConfig,
}

impl Default for DetLossConfig {
    fn default() -> Self {
        Self { cls_weight: 0.5, box_weight: 7.5, box_loss: IouKind::Ciou, assigner: AssignerConfig::default() }
    }
}

/// The loss of a batch and its parts, each a `[1]` tensor.
#[derive(Debug, Clone)]
pub struct DetLossOutput<B: Backend> {
    /// `cls_weight * cls + box_weight * boxes`.
    pub total: Tensor<B, 1>,
    pub cls: Tensor<B, 1>,
    pub boxes: Tensor<B, 1>,
    /// Positive anchors in the batch.
    pub num_positives: usize,
    /// Sum of the soft target scores (before the `max(·, 1)`), for logging.
    pub target_score_sum: f32,
}

/// Ground truth of one image: boxes `x0, y0, x1, y1` in input pixels and their class indices.
pub type ImageTargets = (Vec<[f32; 4]>, Vec<usize>);

/// The detection loss of a batch: `cls_logits` `[N, A, C]`, `box_raw` `[N, A, 4]`
/// (the head's outputs), `anchors` their layout, `gts` one entry per image.
pub fn det_loss<B: Backend>(
    cls_logits: Tensor<B, 3>,
    box_raw: Tensor<B, 3>,
    anchors: &Anchors,
    gts: &[ImageTargets],
    config: &DetLossConfig,
) -> DetLossOutput<B> {
    det_loss_ignoring(cls_logits, box_raw, anchors, gts, &[], config)
}

/// [`det_loss`] with some anchors left out of the classification term:
/// `ignored` (empty, or one flag per image and anchor, `N·A`) marks anchors
/// that are neither object nor background unless the assigner makes them
/// positive (pseudo-labels: where the teacher is unsure).
pub fn det_loss_ignoring<B: Backend>(
    cls_logits: Tensor<B, 3>,
    box_raw: Tensor<B, 3>,
    anchors: &Anchors,
    gts: &[ImageTargets],
    ignored: &[bool],
    config: &DetLossConfig,
) -> DetLossOutput<B> {
    let [n, a, c] = cls_logits.dims();
    assert_eq!(box_raw.dims(), [n, a, 4], "box_raw must be [N, A, 4] like cls_logits");
    assert_eq!(gts.len(), n, "one ground-truth entry per image");
    let device = cls_logits.device();
    let pred_boxes = decode_boxes(box_raw, anchors);

    let assigned = assign_batch(cls_logits.clone(), pred_boxes.clone(), anchors, gts, &config.assigner);

    // Dense soft targets [N, A, C]; positives as flat (image, anchor) rows.
    let mut target_scores = vec![0.0f32; n * a * c];
    let (mut rows, mut target_boxes, mut weights) = (Vec::new(), Vec::new(), Vec::new());
    for (image, positives) in assigned.iter().enumerate() {
        for p in positives {
            let row = image * a + p.anchor;
            target_scores[row * c + p.label] = p.score;
            rows.push(row as i64);
            target_boxes.extend_from_slice(&p.bbox);
            weights.push(p.score);
        }
    }
    let target_score_sum: f32 = weights.iter().sum();
    let norm = target_score_sum.max(1.0);

    let targets = Tensor::<B, 3>::from_data(TensorData::new(target_scores, [n, a, c]), &device);
    let mut cls = bce_with_logits(cls_logits, targets);
    if !ignored.is_empty() {
        assert_eq!(ignored.len(), n * a, "one ignore flag per image and anchor");
        let mut keep: Vec<f32> = ignored.iter().map(|&i| if i { 0.0 } else { 1.0 }).collect();
        for &row in &rows {
            keep[row as usize] = 1.0;
        }
        cls = cls * Tensor::<B, 3>::from_data(TensorData::new(keep, [n, a, 1]), &device);
    }
    let cls = cls.sum().div_scalar(norm);

    let num_positives = rows.len();
    let boxes = if num_positives == 0 {
        // Zero, but still attached to the graph, so the box branch gets a
        // (zero) gradient like on any other batch.
        pred_boxes.sum().mul_scalar(0.0)
    } else {
        let rows = Tensor::<B, 1, Int>::from_data(TensorData::new(rows, [num_positives]), &device);
        let pred = pred_boxes.reshape([n * a, 4]).select(0, rows);
        let target = Tensor::<B, 2>::from_data(TensorData::new(target_boxes, [num_positives, 4]), &device);
        let weights = Tensor::<B, 1>::from_data(TensorData::new(weights, [num_positives]), &device);
        let overlap = box_iou(pred, target, config.box_loss).reshape([num_positives]);
        (overlap.neg().add_scalar(1.0) * weights).sum().div_scalar(norm)
    };

    DetLossOutput {
        total: cls.clone().mul_scalar(config.cls_weight) + boxes.clone().mul_scalar(config.box_weight),
        cls,
        boxes,
        num_positives,
        target_score_sum,
    }
}

/// Runs the assigner on every image of the batch, from detached predictions.
pub fn assign_batch<B: Backend>(
    cls_logits: Tensor<B, 3>,
    pred_boxes: Tensor<B, 3>,
    anchors: &Anchors,
    gts: &[ImageTargets],
    config: &AssignerConfig,
) -> Vec<Vec<Positive>> {
    let [n, a, c] = cls_logits.dims();
    let scores = to_vec(sigmoid(cls_logits.detach()));
    let boxes = to_vec(pred_boxes.detach());
    (0..n)
        .into_par_iter()
        .map(|i| {
            let pred = Predictions {
                scores: &scores[i * a * c..(i + 1) * a * c],
                boxes: &boxes[i * a * 4..(i + 1) * a * 4],
                num_classes: c,
            };
            assign(&anchors.points, pred, &gts[i].0, &gts[i].1, config)
        })
        .collect()
}

/// Classification bias that starts a class at probability `prior` (RetinaNet's
/// prior: `-ln((1 - p) / p)`); with `p = 0.01` the background anchors, which
/// outnumber positives by ~1000, do not swamp the first steps.
pub fn prior_bias(prior: f64) -> f64 {
    -((1.0 - prior) / prior).ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::postprocess::{postprocess_batch, PostprocessConfig};
    use crate::model::postprocess::plain_iou;
    use crate::train::loss::test_util::*;
    use burn::backend::{Autodiff, Flex};
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct FixturePositive {
        anchor: usize,
        gt: usize,
        label: usize,
        score: f32,
    }

    #[derive(Deserialize)]
    struct Case {
        name: String,
        image_size: usize,
        strides: Vec<usize>,
        num_classes: usize,
        top_k: usize,
        alpha: f32,
        beta: f32,
        box_loss: IouKind,
        cls_weight: f32,
        box_weight: f32,
        /// [N][A][C] and [N][A][4], flattened.
        cls_logits: Vec<f32>,
        box_raw: Vec<f32>,
        gt_boxes: Vec<Vec<[f32; 4]>>,
        gt_labels: Vec<Vec<usize>>,
        positives: Vec<Vec<FixturePositive>>,
        cls: f32,
        boxes: f32,
        total: f32,
        /// Gradients of `total` (from PyTorch autograd; empty without PyTorch).
        grad_cls_logits: Vec<f32>,
        grad_box_raw: Vec<f32>,
    }

    type Ad = Autodiff<Flex>;

    fn tensor3<B: Backend>(values: &[f32], dims: [usize; 3]) -> Tensor<B, 3> {
        Tensor::from_data(TensorData::new(values.to_vec(), dims), &Default::default())
    }

    #[test]
    fn agrees_with_the_python_reference() {
        let cases: Vec<Case> = serde_json::from_str(&fixture("det.json")).unwrap();
        assert!(cases.len() >= 2);
        for case in &cases {
            let anchors = Anchors::new(case.image_size, &case.strides);
            let (a, c) = (anchors.len(), case.num_classes);
            let n = case.gt_boxes.len();
            let config = DetLossConfig {
                cls_weight: case.cls_weight,
                box_weight: case.box_weight,
                box_loss: case.box_loss,
                assigner: AssignerConfig { top_k: case.top_k, alpha: case.alpha, beta: case.beta },
            };
            let gts: Vec<ImageTargets> =
                case.gt_boxes.iter().cloned().zip(case.gt_labels.iter().cloned()).collect();
            let cls_logits = tensor3::<Ad>(&case.cls_logits, [n, a, c]).require_grad();
            let box_raw = tensor3::<Ad>(&case.box_raw, [n, a, 4]).require_grad();

            // The assigner's targets.
            let pred_boxes = decode_boxes(box_raw.clone(), &anchors);
            let assigned = assign_batch(cls_logits.clone(), pred_boxes, &anchors, &gts, &config.assigner);
            for (image, (got, want)) in assigned.iter().zip(&case.positives).enumerate() {
                let ids = |v: Vec<(usize, usize, usize)>| v;
                assert_eq!(
                    ids(got.iter().map(|p| (p.anchor, p.gt, p.label)).collect()),
                    ids(want.iter().map(|p| (p.anchor, p.gt, p.label)).collect()),
                    "{}: image {image} positives",
                    case.name
                );
                let got_scores: Vec<f32> = got.iter().map(|p| p.score).collect();
                let want_scores: Vec<f32> = want.iter().map(|p| p.score).collect();
                assert_close(&format!("{} image {image} target scores", case.name), &got_scores, &want_scores);
            }

            // The loss and its gradients.
            let out = det_loss(cls_logits.clone(), box_raw.clone(), &anchors, &gts, &config);
            assert_eq!(out.num_positives, case.positives.iter().map(Vec::len).sum::<usize>());
            let parts = [to_vec(out.cls.clone())[0], to_vec(out.boxes.clone())[0], to_vec(out.total.clone())[0]];
            assert_close(&format!("{} cls, box, total", case.name), &parts, &[case.cls, case.boxes, case.total]);
            if !case.grad_cls_logits.is_empty() {
                let grads = out.total.backward();
                let g_cls = to_vec(cls_logits.grad(&grads).unwrap());
                let g_box = to_vec(box_raw.grad(&grads).unwrap());
                assert_close(&format!("{} d total / d cls_logits", case.name), &g_cls, &case.grad_cls_logits);
                assert_close(&format!("{} d total / d box_raw", case.name), &g_box, &case.grad_box_raw);
            }
        }
    }

    #[test]
    fn an_image_without_objects_only_has_background_terms() {
        let anchors = Anchors::new(16, &[8]);
        let logits = tensor3::<Flex>(&[-2.0; 4 * 3], [1, 4, 3]);
        let raw = tensor3::<Flex>(&[0.0; 16], [1, 4, 4]);
        let out = det_loss(logits, raw, &anchors, &[(vec![], vec![])], &DetLossConfig::default());
        assert_eq!(out.num_positives, 0);
        // 12 pairs of BCE(-2, 0) = ln(1 + e^-2), normalised by max(0, 1) = 1.
        let want = 12.0 * (1.0 + (-2.0f32).exp()).ln();
        assert!((to_vec(out.cls)[0] - want).abs() < 1e-5);
        assert_eq!(to_vec(out.boxes)[0], 0.0);
        assert!((to_vec(out.total)[0] - 0.5 * want).abs() < 1e-5);
    }

    /// Plain gradient descent on free head outputs drives the loss down: the loss
    /// is differentiable and its targets are reachable.
    #[test]
    fn gradient_descent_on_free_outputs_decreases_the_loss() {
        let anchors = Anchors::new(32, &[8, 16]);
        let (a, c) = (anchors.len(), 3);
        let gts: Vec<ImageTargets> = vec![
            (vec![[3.0, 5.0, 20.0, 18.0], [14.0, 10.0, 31.0, 30.0]], vec![0, 2]),
            (vec![[1.0, 1.0, 30.0, 12.0]], vec![1]),
        ];
        let mut cls: Vec<f32> = (0..2 * a * c).map(|i| prior_bias(0.01) as f32 + (i as f32 * 0.7).sin() * 0.1).collect();
        let mut raw: Vec<f32> = (0..2 * a * 4).map(|i| (i as f32 * 1.3).cos() * 0.5).collect();
        let config = DetLossConfig::default();
        // The box term carries weight 7.5: a smaller step keeps plain GD stable.
        let (lr_cls, lr_box) = (1.0, 0.05);
        let mut first = None;
        let mut last = 0.0;
        for _ in 0..300 {
            let x = tensor3::<Ad>(&cls, [2, a, c]).require_grad();
            let y = tensor3::<Ad>(&raw, [2, a, 4]).require_grad();
            let out = det_loss(x.clone(), y.clone(), &anchors, &gts, &config);
            last = to_vec(out.total.clone())[0];
            first.get_or_insert(last);
            let grads = out.total.backward();
            for (v, g) in cls.iter_mut().zip(to_vec(x.grad(&grads).unwrap())) {
                *v -= lr_cls * g;
            }
            for (v, g) in raw.iter_mut().zip(to_vec(y.grad(&grads).unwrap())) {
                *v -= lr_box * g;
            }
        }
        let first = first.unwrap();
        assert!(last.is_finite() && last < 0.2 * first, "loss {first} -> {last}");

        // And the fitted outputs decode to the objects: every GT is found, with its class.
        let dets = postprocess_batch(
            tensor3::<Flex>(&cls, [2, a, c]),
            tensor3::<Flex>(&raw, [2, a, 4]),
            &anchors,
            &PostprocessConfig::display(),
        );
        for (image, (boxes, labels)) in gts.iter().enumerate() {
            for (b, &l) in boxes.iter().zip(labels) {
                let found = dets[image].iter().any(|d| d.class == l && plain_iou(&d.bbox, b) > 0.7);
                assert!(found, "image {image}: GT {b:?} class {l} not among {:?}", dets[image]);
            }
        }
    }

    #[test]
    fn prior_bias_gives_the_prior() {
        let p = 1.0 / (1.0 + (-prior_bias(0.01)).exp());
        assert!((p - 0.01).abs() < 1e-12);
    }
}
