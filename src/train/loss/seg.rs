//! Segmentation loss: pixel-wise cross-entropy with an ignore label, optionally
//! restricted to the hardest pixels (OHEM) and optionally plus a soft Dice term.
//!
//! `logits` `[N, C, H, W]` at the input size, `targets` `[N, H, W]` class indices
//! with [`IGNORE_INDEX`] (255: padding, ADE20K's "other") for pixels that count
//! nowhere. Every mean is over the non-ignored pixels only, and a batch with no
//! such pixel gives 0 (not NaN).

use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{IndexingUpdateOp, Int, Tensor, TensorData};

use super::to_vec;
use crate::backend::{class_log_prob, TwinBackend};

/// Target value of pixels that are not scored.
pub const IGNORE_INDEX: i64 = 255;

/// Online hard example mining: average the cross-entropy over the hard pixels only.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OhemConfig {
    /// Pixels whose loss exceeds this are hard; `-ln(0.7) ≈ 0.357` keeps those
    /// whose true class has probability below 0.7 (mmseg's usual `thresh`).
    pub loss_threshold: f32,
    /// At least this fraction of the valid pixels is kept (the highest losses),
    /// so a well-fitted batch still trains on something.
    pub min_kept_fraction: f32,
}

impl Default for OhemConfig {
    fn default() -> Self {
        Self { loss_threshold: -(0.7f32).ln(), min_kept_fraction: 1.0 / 16.0 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize, Default)]
pub struct SegLossConfig {
    pub ohem: Option<OhemConfig>,
    /// Weight of the Dice term; 0 leaves it out (and skips computing it).
    pub dice_weight: f32,
}

/// The loss of a batch and its parts, each a `[1]` tensor.
#[derive(Debug, Clone)]
pub struct SegLossOutput<B: Backend> {
    /// `ce + dice_weight * dice`.
    pub total: Tensor<B, 1>,
    pub ce: Tensor<B, 1>,
    /// Zero when `dice_weight` is 0.
    pub dice: Tensor<B, 1>,
}

pub fn seg_loss<B: TwinBackend>(
    logits: Tensor<B, 4>,
    targets: Tensor<B, 3, Int>,
    config: &SegLossConfig,
) -> SegLossOutput<B> {
    let (pixel_loss, valid) = pixel_cross_entropy(logits.clone(), targets.clone());
    let keep = match &config.ohem {
        None => valid,
        Some(ohem) => ohem_mask(pixel_loss.clone(), valid, ohem),
    };
    let ce = masked_mean(pixel_loss, keep);
    let dice = if config.dice_weight > 0.0 {
        dice_loss(logits, targets)
    } else {
        Tensor::zeros([1], &ce.device())
    };
    SegLossOutput { total: ce.clone() + dice.clone().mul_scalar(config.dice_weight), ce, dice }
}

/// Per-pixel cross-entropy `[N, H, W]` (0 at ignored pixels) and the 0/1 mask of
/// the scored pixels.
pub fn pixel_cross_entropy<B: TwinBackend>(logits: Tensor<B, 4>, targets: Tensor<B, 3, Int>) -> (Tensor<B, 3>, Tensor<B, 3>) {
    let [n, _, h, w] = logits.dims();
    assert_eq!(targets.dims(), [n, h, w], "targets must be [N, H, W] like the logits");
    let (index, valid) = split_ignored(targets);
    let log_p = class_log_prob(logits, index);
    (log_p.neg() * valid.clone(), valid)
}

/// Class indices with ignored pixels sent to class 0 (so gathers stay in range),
/// and the float mask of the pixels that count.
fn split_ignored<B: Backend>(targets: Tensor<B, 3, Int>) -> (Tensor<B, 3, Int>, Tensor<B, 3>) {
    let ignored = targets.clone().equal_elem(IGNORE_INDEX);
    let valid = ignored.clone().bool_not().float();
    (targets.mask_fill(ignored, 0), valid)
}

/// `sum(values · mask) / max(sum(mask), 1)`: a mean over the masked pixels, 0 if none.
fn masked_mean<B: Backend>(values: Tensor<B, 3>, mask: Tensor<B, 3>) -> Tensor<B, 1> {
    (values * mask.clone()).sum() / mask.sum().clamp_min(1.0)
}

/// The OHEM mask: valid pixels whose loss exceeds the threshold, or that are
/// among the `ceil(fraction · valid)` highest losses. Chosen on the CPU from
/// detached losses (an O(pixels) selection, no sort).
fn ohem_mask<B: Backend>(pixel_loss: Tensor<B, 3>, valid: Tensor<B, 3>, config: &OhemConfig) -> Tensor<B, 3> {
    let dims = pixel_loss.dims();
    let device = pixel_loss.device();
    let loss = to_vec(pixel_loss.detach());
    let valid = to_vec(valid);
    let mut valid_losses: Vec<f32> = loss.iter().zip(&valid).filter(|(_, &v)| v > 0.0).map(|(&l, _)| l).collect();
    let min_kept = ((config.min_kept_fraction * valid_losses.len() as f32).ceil() as usize).clamp(1, valid_losses.len().max(1));
    // The min_kept-th highest loss: every pixel at least as hard is kept too.
    let kth = if valid_losses.is_empty() {
        f32::INFINITY
    } else {
        *valid_losses.select_nth_unstable_by(min_kept - 1, |a, b| b.total_cmp(a)).1
    };
    let keep: Vec<f32> = loss
        .iter()
        .zip(&valid)
        .map(|(&l, &v)| if v > 0.0 && (l > config.loss_threshold || l >= kth) { 1.0 } else { 0.0 })
        .collect();
    Tensor::from_data(TensorData::new(keep, dims), &device)
}

/// Smoothing of the Dice ratio: an absent class that is not predicted scores 1.
const DICE_SMOOTH: f64 = 1.0;

/// Soft Dice loss `1 - mean_c (2·Σ p·g + 1) / (Σ p + Σ g + 1)`, sums over the
/// batch's scored pixels, mean over all classes (so probability mass on absent
/// classes is penalised too), `p` the softmax, `g` the one-hot targets.
pub fn dice_loss<B: Backend>(logits: Tensor<B, 4>, targets: Tensor<B, 3, Int>) -> Tensor<B, 1> {
    let [n, c, h, w] = logits.dims();
    let (index, valid) = split_ignored(targets);
    let valid = valid.reshape([n, 1, h, w]);
    // One-hot of the scored pixels: 1 at (n, target, h, w) where valid.
    let one_hot = Tensor::<B, 4>::zeros([n, c, h, w], &logits.device()).scatter(
        1,
        index.reshape([n, 1, h, w]),
        valid.clone(),
        IndexingUpdateOp::Add,
    );
    let p = softmax(logits, 1) * valid;
    let per_class = |t: Tensor<B, 4>| t.sum_dim(0).sum_dim(2).sum_dim(3).reshape([c]);
    let inter = per_class(p.clone() * one_hot.clone());
    let denom = per_class(p) + per_class(one_hot);
    let dice = (inter.mul_scalar(2.0) + DICE_SMOOTH) / (denom + DICE_SMOOTH);
    dice.mean().neg().add_scalar(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::loss::test_util::*;
    use burn::backend::Flex;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Case {
        /// [N, C, H, W] flattened.
        dims: [usize; 4],
        logits: Vec<f32>,
        targets: Vec<i64>,
        ce: f32,
        ohem_threshold: f32,
        ohem_fraction: f32,
        ohem_ce: f32,
        /// OHEM with the fraction dominating (threshold above every loss).
        ohem_topk_ce: f32,
        dice: f32,
    }

    fn inputs(case: &Case) -> (Tensor<Flex, 4>, Tensor<Flex, 3, Int>) {
        let [n, _, h, w] = case.dims;
        let device = Default::default();
        (
            Tensor::from_data(TensorData::new(case.logits.clone(), case.dims), &device),
            Tensor::from_data(TensorData::new(case.targets.clone(), [n, h, w]), &device),
        )
    }

    fn value(t: Tensor<Flex, 1>) -> f32 {
        to_vec(t)[0]
    }

    #[test]
    fn agrees_with_the_python_reference() {
        let case: Case = serde_json::from_str(&fixture("seg.json")).unwrap();
        let (logits, targets) = inputs(&case);
        let plain = seg_loss(logits.clone(), targets.clone(), &SegLossConfig::default());
        let ohem = |loss_threshold, min_kept_fraction| SegLossConfig {
            ohem: Some(OhemConfig { loss_threshold, min_kept_fraction }),
            dice_weight: 0.0,
        };
        let hard = seg_loss(logits.clone(), targets.clone(), &ohem(case.ohem_threshold, case.ohem_fraction));
        let topk = seg_loss(logits.clone(), targets.clone(), &ohem(1e9, case.ohem_fraction));
        let with_dice = seg_loss(logits, targets, &SegLossConfig { ohem: None, dice_weight: 0.5 });
        assert_close(
            "seg ce, ohem ce, ohem top-k ce, dice",
            &[value(plain.ce), value(hard.ce), value(topk.ce), value(with_dice.dice.clone())],
            &[case.ce, case.ohem_ce, case.ohem_topk_ce, case.dice],
        );
        assert_close("seg total with dice", &[value(with_dice.total)], &[case.ce + 0.5 * case.dice]);
    }

    #[test]
    fn uniform_logits_give_ln_c_and_all_ignored_gives_zero() {
        let device = Default::default();
        let logits = Tensor::<Flex, 4>::zeros([2, 5, 3, 3], &device);
        let mut t = vec![1i64; 18];
        t[4] = IGNORE_INDEX;
        let targets = Tensor::<Flex, 3, Int>::from_data(TensorData::new(t, [2, 3, 3]), &device);
        let out = seg_loss(logits.clone(), targets, &SegLossConfig::default());
        assert!((value(out.ce) - 5f32.ln()).abs() < 1e-5);

        let ignored = Tensor::<Flex, 3, Int>::full([2, 3, 3], IGNORE_INDEX, &device);
        let config = SegLossConfig { ohem: Some(OhemConfig::default()), dice_weight: 1.0 };
        let out = seg_loss(logits, ignored, &config);
        assert_eq!([value(out.ce), value(out.dice), value(out.total)], [0.0; 3]);
    }

    #[test]
    fn ce_gradient_is_softmax_minus_one_hot_over_scored_pixels() {
        use burn::backend::Autodiff;
        let case: Case = serde_json::from_str(&fixture("seg.json")).unwrap();
        let [n, c, h, w] = case.dims;
        let device = Default::default();
        let logits = Tensor::<Autodiff<Flex>, 4>::from_data(TensorData::new(case.logits.clone(), case.dims), &device)
            .require_grad();
        let targets = Tensor::from_data(TensorData::new(case.targets.clone(), [n, h, w]), &device);
        let config = SegLossConfig { ohem: None, dice_weight: 1.0 };
        let out = seg_loss(logits.clone(), targets, &config);
        // Dice is differentiable too (finite gradient); CE alone is checked analytically.
        let dice_grad = to_vec(logits.grad(&out.dice.backward()).unwrap());
        assert!(dice_grad.iter().all(|g| g.is_finite()));
        let grad = to_vec(logits.grad(&out.ce.backward()).unwrap());
        let scored = case.targets.iter().filter(|&&t| t != IGNORE_INDEX).count() as f32;
        for (pixel, &t) in case.targets.iter().enumerate() {
            let (img, hw) = (pixel / (h * w), pixel % (h * w));
            let at = |k: usize| (img * c + k) * h * w + hw;
            let z: f32 = (0..c).map(|k| case.logits[at(k)].exp()).sum();
            for k in 0..c {
                let want = if t == IGNORE_INDEX {
                    0.0
                } else {
                    (case.logits[at(k)].exp() / z - f32::from(u8::from(k as i64 == t))) / scored
                };
                assert!((grad[at(k)] - want).abs() < 1e-5, "pixel {pixel} class {k}: {} vs {want}", grad[at(k)]);
            }
        }
    }

    #[test]
    fn perfect_predictions_have_near_zero_dice_and_ce() {
        let device = Default::default();
        // Class = column index, logits 20 on the right class.
        let t: Vec<i64> = (0..9).map(|i| i % 3).collect();
        let mut l = vec![0.0f32; 27];
        for (i, &c) in t.iter().enumerate() {
            l[c as usize * 9 + i] = 20.0;
        }
        let logits = Tensor::<Flex, 4>::from_data(TensorData::new(l, [1, 3, 3, 3]), &device);
        let targets = Tensor::<Flex, 3, Int>::from_data(TensorData::new(t, [1, 3, 3]), &device);
        let out = seg_loss(logits, targets, &SegLossConfig { ohem: None, dice_weight: 1.0 });
        assert!(value(out.ce) < 1e-6 && value(out.dice) < 1e-5);
    }
}
