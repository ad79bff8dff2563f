//! Box overlap measures: IoU, GIoU and CIoU on tensors (differentiable, for the
//! box loss) and plain IoU on numbers (for the assigner and NMS).
//!
//! Boxes are `[x0, y0, x1, y1]`. The tensor versions follow YOLOv8's `bbox_iou`
//! term by term, including its small `eps` guards (height + eps, union + eps,
//! enclosing area / diagonal + eps), so they agree with it to float precision.

use std::f64::consts::PI;

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// Guards divisions by zero in the tensor versions (YOLOv8's value).
pub const IOU_EPS: f64 = 1e-7;

/// Which overlap measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum IouKind {
    /// Intersection over union, in [0, 1].
    Iou,
    /// Generalised IoU: IoU minus the fraction of the smallest enclosing box not
    /// covered by the union; in (-1, 1], still informative for disjoint boxes.
    Giou,
    /// Complete IoU: IoU minus the squared centre distance over the squared
    /// enclosing diagonal, minus an aspect-ratio term; in (-1.5, 1].
    Ciou,
}

/// Overlap of corresponding boxes: `a` and `b` are `[..., 4]` of the same shape,
/// the result `[..., 1]` (rank kept, so any batch layout works).
///
/// CIoU's trade-off weight `alpha = v / (1 - IoU + v)` is detached, as in the
/// CIoU paper and YOLOv8: it weights the aspect term, it is not optimised.
pub fn box_iou<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>, kind: IouKind) -> Tensor<B, D> {
    let [ax0, ay0, ax1, ay1] = corners(a);
    let [bx0, by0, bx1, by1] = corners(b);
    let (aw, ah) = (ax1.clone() - ax0.clone(), ay1.clone() - ay0.clone() + IOU_EPS);
    let (bw, bh) = (bx1.clone() - bx0.clone(), by1.clone() - by0.clone() + IOU_EPS);

    let iw = (ax1.clone().min_pair(bx1.clone()) - ax0.clone().max_pair(bx0.clone())).clamp_min(0.0);
    let ih = (ay1.clone().min_pair(by1.clone()) - ay0.clone().max_pair(by0.clone())).clamp_min(0.0);
    let inter = iw * ih;
    let union = aw.clone() * ah.clone() + bw.clone() * bh.clone() - inter.clone() + IOU_EPS;
    let iou = inter / union.clone();
    if kind == IouKind::Iou {
        return iou;
    }

    // Smallest enclosing box.
    let cw = ax1.clone().max_pair(bx1.clone()) - ax0.clone().min_pair(bx0.clone());
    let ch = ay1.clone().max_pair(by1.clone()) - ay0.clone().min_pair(by0.clone());
    if kind == IouKind::Giou {
        let c_area = cw * ch + IOU_EPS;
        return iou - (c_area.clone() - union) / c_area;
    }

    let diagonal2 = cw.powi_scalar(2) + ch.powi_scalar(2) + IOU_EPS;
    // Squared distance between the centres: ((b centre - a centre) * 2)² / 4.
    let dx = bx0 + bx1 - ax0 - ax1;
    let dy = by0 + by1 - ay0 - ay1;
    let centre2 = (dx.powi_scalar(2) + dy.powi_scalar(2)) / 4.0;
    let v = ((bw / bh).atan() - (aw / ah).atan()).powi_scalar(2) * (4.0 / (PI * PI));
    let alpha = (v.clone() / (v.clone() - iou.clone() + (1.0 + IOU_EPS))).detach();
    iou - (centre2 / diagonal2 + v * alpha)
}

/// All pairs: `a` `[N, 4]`, `b` `[M, 4]` → `[N, M]`.
pub fn pairwise_iou<B: Backend>(a: Tensor<B, 2>, b: Tensor<B, 2>, kind: IouKind) -> Tensor<B, 2> {
    let (n, m) = (a.dims()[0], b.dims()[0]);
    let a = a.unsqueeze_dim::<3>(1).expand([n, m, 4]);
    let b = b.unsqueeze_dim::<3>(0).expand([n, m, 4]);
    box_iou(a, b, kind).reshape([n, m])
}

/// The four coordinate columns `[..., 1]` of `[..., 4]` boxes.
fn corners<B: Backend, const D: usize>(boxes: Tensor<B, D>) -> [Tensor<B, D>; 4] {
    assert_eq!(boxes.dims()[D - 1], 4, "boxes must have 4 coordinates in the last dimension");
    let mut c = boxes.split(1, D - 1).into_iter();
    std::array::from_fn(|_| c.next().unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::postprocess::plain_iou;
    use crate::train::loss::test_util::{fixture, to_vec};
    use burn::backend::Flex;
    use burn::tensor::TensorData;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Case {
        a: [f32; 4],
        b: [f32; 4],
        iou: f32,
        giou: f32,
        ciou: f32,
    }

    fn boxes(rows: Vec<[f32; 4]>) -> Tensor<Flex, 2> {
        let n = rows.len();
        Tensor::from_data(TensorData::new(rows.concat(), [n, 4]), &Default::default())
    }

    fn elementwise(a: [f32; 4], b: [f32; 4], kind: IouKind) -> f32 {
        to_vec(box_iou(boxes(vec![a]), boxes(vec![b]), kind))[0]
    }

    #[test]
    fn hand_checked_values() {
        let unit = [0.0, 0.0, 1.0, 1.0];
        // Unit squares offset by half: intersection 1/2, union 3/2, IoU 1/3.
        let half = [0.5, 0.0, 1.5, 1.0];
        assert!((plain_iou(&unit, &half) - 1.0 / 3.0).abs() < 1e-6);
        assert!((elementwise(unit, half, IouKind::Iou) - 1.0 / 3.0).abs() < 1e-5);
        // Enclosing box 1.5 × 1 = union, so GIoU = IoU.
        assert!((elementwise(unit, half, IouKind::Giou) - 1.0 / 3.0).abs() < 1e-5);
        // CIoU: same shape (v = 0), centre distance² 0.25, diagonal² 1.5² + 1 = 3.25.
        assert!((elementwise(unit, half, IouKind::Ciou) - (1.0 / 3.0 - 0.25 / 3.25)).abs() < 1e-5);
        // Identical boxes: 1 for all three.
        for kind in [IouKind::Iou, IouKind::Giou, IouKind::Ciou] {
            assert!((elementwise(unit, unit, kind) - 1.0).abs() < 1e-5);
        }
        // Disjoint unit squares 1 apart: IoU 0, GIoU = -(3 - 2)/3 < 0.
        let far = [2.0, 0.0, 3.0, 1.0];
        assert_eq!(plain_iou(&unit, &far), 0.0);
        assert!((elementwise(unit, far, IouKind::Giou) + 1.0 / 3.0).abs() < 1e-5);
        assert!(elementwise(unit, far, IouKind::Ciou) < elementwise(unit, far, IouKind::Giou) + 1e-6);
        // Degenerate boxes have no overlap instead of NaN.
        assert_eq!(plain_iou(&[1.0, 1.0, 1.0, 1.0], &[1.0, 1.0, 1.0, 1.0]), 0.0);
    }

    #[test]
    fn agrees_with_the_python_reference() {
        let cases: Vec<Case> = serde_json::from_str(&fixture("iou.json")).unwrap();
        let a = boxes(cases.iter().map(|c| c.a).collect());
        let b = boxes(cases.iter().map(|c| c.b).collect());
        let mut worst = 0.0f32;
        for (kind, pick) in [
            (IouKind::Iou, (|c: &Case| c.iou) as fn(&Case) -> f32),
            (IouKind::Giou, |c: &Case| c.giou),
            (IouKind::Ciou, |c: &Case| c.ciou),
        ] {
            let got = to_vec(box_iou(a.clone(), b.clone(), kind));
            for (g, c) in got.iter().zip(&cases) {
                worst = worst.max((g - pick(c)).abs());
                assert!((g - pick(c)).abs() < 1e-4, "{kind:?} {:?} {:?}: {g} vs {}", c.a, c.b, pick(c));
            }
        }
        for c in &cases {
            worst = worst.max((plain_iou(&c.a, &c.b) - c.iou).abs());
            assert!((plain_iou(&c.a, &c.b) - c.iou).abs() < 1e-4);
        }
        eprintln!("iou: max abs diff vs reference {worst:e}");
    }

    #[test]
    fn pairwise_matches_elementwise() {
        let a = vec![[0.0, 0.0, 4.0, 4.0], [1.0, 2.0, 3.0, 7.0]];
        let b = vec![[2.0, 2.0, 6.0, 5.0], [0.0, 0.0, 1.0, 1.0], [1.0, 2.0, 3.0, 7.0]];
        let got = to_vec(pairwise_iou(boxes(a.clone()), boxes(b.clone()), IouKind::Ciou));
        for (i, &ai) in a.iter().enumerate() {
            for (j, &bj) in b.iter().enumerate() {
                assert!((got[i * 3 + j] - elementwise(ai, bj, IouKind::Ciou)).abs() < 1e-6);
            }
        }
    }
}
