//! Classification loss: cross-entropy with label smoothing (Szegedy et al.;
//! Track1 uses 0.1): the target puts `1 − ε` on the true class and spreads `ε`
//! evenly over all classes, as `torch.nn.functional.cross_entropy(label_smoothing=ε)`.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

/// Mean over the batch of `−Σ_c q_c · log softmax(logits)_c` with
/// `q = (1 − ε)·onehot(label) + ε / C`; `logits` [N, C], `labels` [N].
pub fn cls_loss<B: Backend>(logits: Tensor<B, 2>, labels: Tensor<B, 1, Int>, smoothing: f32) -> Tensor<B, 1> {
    let [n, classes] = logits.dims();
    let log_p = log_softmax(logits, 1);
    let true_class = log_p.clone().gather(1, labels.reshape([n, 1])).reshape([n]);
    let uniform = log_p.sum_dim(1).reshape([n]).div_scalar(classes as f64);
    let eps = f64::from(smoothing);
    (true_class.mul_scalar(1.0 - eps) + uniform.mul_scalar(eps)).mean().neg()
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use burn::backend::Flex;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct ClsCase {
        logits: Vec<Vec<f32>>,
        labels: Vec<i64>,
        smoothing: f32,
        loss: f32,
    }

    #[test]
    fn label_smoothed_cross_entropy_agrees_with_the_python_reference() {
        let cases: Vec<ClsCase> = serde_json::from_str(&fixture("cls.json")).unwrap();
        let device = Default::default();
        for case in cases {
            let flat: Vec<f32> = case.logits.iter().flatten().copied().collect();
            let logits = Tensor::<Flex, 1>::from_floats(flat.as_slice(), &device).reshape([case.logits.len(), case.logits[0].len()]);
            let labels = Tensor::<Flex, 1, Int>::from_ints(case.labels.as_slice(), &device);
            let got = to_vec(cls_loss(logits, labels, case.smoothing));
            assert_close(&format!("cls ε={}", case.smoothing), &got, &[case.loss]);
        }
    }

    #[test]
    fn without_smoothing_it_is_the_negative_log_probability_of_the_class() {
        let device = Default::default();
        let logits = Tensor::<Flex, 2>::from_floats([[0.0, 0.0], [2.0, 0.0]], &device);
        let labels = Tensor::<Flex, 1, Int>::from_ints([1, 0], &device);
        let got = to_vec(cls_loss(logits, labels, 0.0))[0];
        let want = (std::f32::consts::LN_2 + (1.0 + (-2.0f32).exp()).ln()) / 2.0;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
}
