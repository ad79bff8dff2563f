//! Training losses: detection (`det`), segmentation (`seg`), classification
//! (`cls`), distillation for
//! Learning-without-Forgetting (`distill`), and the box overlaps they use (`iou`).
//!
//! All are generic over the backend and differentiable in the network outputs;
//! targets are built on the CPU and carry no gradient. Each is checked against
//! the values `tools/loss_reference.py` writes to `tests/fixtures/loss/`.

pub mod cls;
pub mod det;
pub mod distill;
pub mod iou;
pub mod seg;

use burn::tensor::activation::log_sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

pub use cls::cls_loss;
pub use det::{det_loss, DetLossConfig, DetLossOutput};
pub use distill::{kd_det_loss, kd_softmax_loss, KdDetOutput};
pub use iou::{box_iou, pairwise_iou, IouKind};
pub use seg::{seg_loss, OhemConfig, SegLossConfig, SegLossOutput};

/// Elementwise binary cross-entropy of `sigmoid(logits)` against `targets` in
/// [0, 1], in the stable form `ln(1 + e^x) - z·x` (`ln(1 + e^x)` via
/// `log_sigmoid`, which never overflows: no `ln(0)` for saturated logits).
pub fn bce_with_logits<B: Backend, const D: usize>(logits: Tensor<B, D>, targets: Tensor<B, D>) -> Tensor<B, D> {
    log_sigmoid(logits.clone().neg()).neg() - logits * targets
}

/// A tensor's values as `f32` (any float dtype).
pub(crate) fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec::<f32>().expect("float tensor")
}

#[cfg(test)]
pub(crate) mod test_util {
    use std::path::PathBuf;

    pub(crate) use super::to_vec;

    /// A fixture written by `tools/loss_reference.py`.
    pub fn fixture(name: &str) -> String {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/loss").join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Largest `|a - b|`, after checking the lengths match.
    pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "length mismatch");
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    /// Agreement to 1e-4, relative for values above 1 (sums of many terms).
    pub fn assert_close(what: &str, got: &[f32], want: &[f32]) -> f32 {
        assert_eq!(got.len(), want.len(), "{what}: length mismatch");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-4 * w.abs().max(1.0), "{what}[{i}]: {g} vs reference {w}");
        }
        let d = max_abs_diff(got, want);
        eprintln!("{what}: max abs diff vs reference {d:e}");
        d
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;
    use burn::backend::Flex;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct BceCase {
        logits: Vec<f32>,
        targets: Vec<f32>,
        loss: Vec<f32>,
    }

    #[test]
    fn bce_agrees_with_the_reference_and_is_stable() {
        let case: BceCase = serde_json::from_str(&fixture("bce.json")).unwrap();
        let device = Default::default();
        let x = Tensor::<Flex, 1>::from_floats(case.logits.as_slice(), &device);
        let z = Tensor::<Flex, 1>::from_floats(case.targets.as_slice(), &device);
        assert_close("bce", &to_vec(bce_with_logits(x, z)), &case.loss);
        // Hand-checked: x = 0 gives ln 2 for any target; saturated logits stay finite.
        let x = Tensor::<Flex, 1>::from_floats([0.0, 200.0, -200.0], &device);
        let z = Tensor::<Flex, 1>::from_floats([0.3, 0.0, 1.0], &device);
        let got = to_vec(bce_with_logits(x, z));
        assert!((got[0] - std::f32::consts::LN_2).abs() < 1e-6);
        assert!((got[1] - 200.0).abs() < 1e-3 && (got[2] - 200.0).abs() < 1e-3, "{got:?}");
    }
}
