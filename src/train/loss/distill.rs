//! Distillation losses for Learning-without-Forgetting: while training on one
//! task's images, keep the other head's outputs close to those of a frozen copy
//! of the network (the teacher). Teacher tensors are detached here, so passing
//! outputs that still carry a graph is harmless.

use burn::tensor::activation::{log_softmax, sigmoid, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::bce_with_logits;

/// Distillation of class scores along dim 1 (Hinton): segmentation logits
/// `[N, C, H, W]` or classification logits `[N, C]`. `T² · mean over pixels
/// (or images) of KL(softmax(teacher / T) ‖ softmax(student / T))`, the KL
/// summed over classes. `T²` keeps the gradient scale independent of the
/// temperature; at `T = 1` it is the cross-entropy against the teacher's soft
/// class distribution, less its constant entropy.
pub fn kd_softmax_loss<B: Backend, const D: usize>(student_logits: Tensor<B, D>, teacher_logits: Tensor<B, D>, temperature: f32) -> Tensor<B, 1> {
    assert_eq!(student_logits.dims(), teacher_logits.dims(), "student and teacher logits differ in shape");
    let t = f64::from(temperature);
    let teacher = teacher_logits.detach().div_scalar(t);
    let log_q = log_softmax(student_logits.div_scalar(t), 1);
    let log_p = log_softmax(teacher.clone(), 1);
    let kl = (softmax(teacher, 1) * (log_p - log_q)).sum_dim(1);
    kl.mean().mul_scalar(t * t)
}

/// The two parts of [`kd_det_loss`], each a `[1]` tensor; weight and add them as needed.
#[derive(Debug, Clone)]
pub struct KdDetOutput<B: Backend> {
    pub cls: Tensor<B, 1>,
    pub boxes: Tensor<B, 1>,
}

/// Detection distillation on the raw head outputs (`[N, A, C]` logits, `[N, A, 4]`
/// raw boxes). With `w_a = max_c sigmoid(teacher_a,c)` (how sure the teacher is
/// that anchor `a` holds an object) and `W = max(Σ w_a, 1)`:
///
/// - `cls = Σ BCE(student, sigmoid(teacher)) − H(sigmoid(teacher))`, over `W`:
///   BCE against the teacher's probabilities, less its constant entropy, i.e.
///   the binary KL, so a student equal to the teacher scores 0 (same gradient as BCE);
/// - `boxes = Σ_a w_a · Σ_k SmoothL1(student_raw − teacher_raw)` (β = 1), over `W`:
///   boxes are only pulled where the teacher sees an object.
///
/// Dividing by `W` mirrors the detection loss's division by its target-score sum.
pub fn kd_det_loss<B: Backend>(
    student_cls_logits: Tensor<B, 3>,
    teacher_cls_logits: Tensor<B, 3>,
    student_box_raw: Tensor<B, 3>,
    teacher_box_raw: Tensor<B, 3>,
) -> KdDetOutput<B> {
    assert_eq!(student_cls_logits.dims(), teacher_cls_logits.dims(), "cls logits differ in shape");
    assert_eq!(student_box_raw.dims(), teacher_box_raw.dims(), "box outputs differ in shape");
    let teacher_cls = teacher_cls_logits.detach();
    let p = sigmoid(teacher_cls.clone());
    // H(p) = BCE(teacher logits, p).
    let kl = bce_with_logits(student_cls_logits, p.clone()) - bce_with_logits(teacher_cls, p.clone());
    let weight = p.max_dim(2); // [N, A, 1]
    let norm = weight.clone().sum().clamp_min(1.0);

    let diff = (student_box_raw - teacher_box_raw.detach()).abs();
    let small = diff.clone().clamp_max(1.0);
    // 0.5·d² below 1, d − 0.5 above: 0.5·min(d, 1)² + (d − min(d, 1)).
    let smooth_l1 = small.clone().powi_scalar(2).mul_scalar(0.5) + (diff - small);
    let boxes = (smooth_l1 * weight).sum() / norm.clone();
    KdDetOutput { cls: kl.sum() / norm, boxes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::loss::test_util::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Case {
        seg_dims: [usize; 4],
        seg_student: Vec<f32>,
        seg_teacher: Vec<f32>,
        temperature: f32,
        kd_seg: f32,
        det_dims: [usize; 2],
        student_cls: Vec<f32>,
        teacher_cls: Vec<f32>,
        student_box: Vec<f32>,
        teacher_box: Vec<f32>,
        kd_det_cls: f32,
        kd_det_box: f32,
    }

    fn t<const D: usize>(v: &[f32], dims: [usize; D]) -> Tensor<Flex, D> {
        Tensor::from_data(TensorData::new(v.to_vec(), dims), &Default::default())
    }

    #[test]
    fn agrees_with_the_python_reference() {
        let c: Case = serde_json::from_str(&fixture("distill.json")).unwrap();
        let seg = kd_softmax_loss(t(&c.seg_student, c.seg_dims), t(&c.seg_teacher, c.seg_dims), c.temperature);
        let [n, a] = c.det_dims;
        let k = c.student_cls.len() / (n * a);
        let det = kd_det_loss(
            t(&c.student_cls, [n, a, k]),
            t(&c.teacher_cls, [n, a, k]),
            t(&c.student_box, [n, a, 4]),
            t(&c.teacher_box, [n, a, 4]),
        );
        assert_close(
            "kd seg, kd det cls, kd det box",
            &[to_vec(seg)[0], to_vec(det.cls)[0], to_vec(det.boxes)[0]],
            &[c.kd_seg, c.kd_det_cls, c.kd_det_box],
        );
    }

    #[test]
    fn a_student_equal_to_its_teacher_scores_zero() {
        let logits: Vec<f32> = (0..32).map(|i| (i as f32 * 0.9).sin() * 4.0).collect();
        let seg = kd_softmax_loss(t(&logits, [2, 4, 2, 2]), t(&logits, [2, 4, 2, 2]), 2.0);
        assert!(to_vec(seg)[0].abs() < 1e-6);
        let det = kd_det_loss(
            t(&logits[..24], [2, 4, 3]),
            t(&logits[..24], [2, 4, 3]),
            t(&logits, [2, 4, 4]),
            t(&logits, [2, 4, 4]),
        );
        assert!(to_vec(det.cls)[0].abs() < 1e-5 && to_vec(det.boxes)[0] == 0.0);
    }

    #[test]
    fn classification_distillation_is_the_kl_of_the_soft_class_distributions() {
        let student = [[1.0f32, -0.5, 2.0], [0.0, 0.3, -1.2]];
        let teacher = [[0.2f32, 1.5, -0.4], [2.0, -1.0, 0.5]];
        let temperature = 2.0f32;
        // By hand, in f64: T² · mean over images of Σ_c p_c (log p_c − log q_c).
        let log_softmax = |z: &[f32]| -> Vec<f64> {
            let z: Vec<f64> = z.iter().map(|&v| f64::from(v / temperature)).collect();
            let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let log_sum = z.iter().map(|v| (v - max).exp()).sum::<f64>().ln() + max;
            z.iter().map(|v| v - log_sum).collect()
        };
        let kl: f64 = student
            .iter()
            .zip(&teacher)
            .map(|(s, t)| {
                let (log_q, log_p) = (log_softmax(s), log_softmax(t));
                log_p.iter().zip(&log_q).map(|(p, q)| p.exp() * (p - q)).sum::<f64>()
            })
            .sum::<f64>()
            / 2.0;
        let flat = |rows: [[f32; 3]; 2]| rows.iter().flatten().copied().collect::<Vec<f32>>();
        let loss = to_vec(kd_softmax_loss(t(&flat(student), [2, 3]), t(&flat(teacher), [2, 3]), temperature))[0];
        let expected = kl * f64::from(temperature * temperature);
        assert!((f64::from(loss) - expected).abs() < 1e-5, "{loss} vs {expected}");
        assert!(expected > 0.1, "the two distributions differ: {expected}");
    }
}
