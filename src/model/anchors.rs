//! Anchor points of the anchor-free detection head, and decoding of its raw box
//! outputs into boxes.
//!
//! One anchor point per feature-map cell, at the cell centre in input pixels:
//! `((x + 0.5) * stride, (y + 0.5) * stride)`. Levels are concatenated in the
//! order of `strides`, cells row-major (y, then x) within a level: the layout of
//! the head's `[N, A, ·]` outputs.
//!
//! Decoding: the head regresses, per anchor, raw distances to the left, top,
//! right and bottom sides. They become pixels as `softplus(raw) * stride`:
//! softplus keeps every distance positive (so a decoded box always has positive
//! area and contains its own anchor point, which keeps IoU and CIoU well defined),
//! is smooth everywhere (unlike `exp`, it grows only linearly, so one large raw
//! value cannot blow the loss up) and scales with the level's stride (so all
//! levels regress numbers of the same order, `raw = 0` being a box ~1.4 cells wide).

use burn::tensor::activation::log_sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// Anchor points, all levels concatenated.
#[derive(Debug, Clone, PartialEq)]
pub struct Anchors {
    /// Cell centres `[x, y]` in input pixels.
    pub points: Vec<[f32; 2]>,
    /// The stride of each anchor's level, in pixels.
    pub strides: Vec<f32>,
}

impl Anchors {
    /// Anchors of a square `image_size`×`image_size` input.
    pub fn new(image_size: usize, strides: &[usize]) -> Self {
        Self::for_input(image_size, image_size, strides)
    }

    /// Anchors of a `width`×`height` input. A level has `ceil(side / stride)`
    /// cells per side: what stride-2 convolutions with "same" padding produce,
    /// and `side / stride` exactly when the stride divides the side.
    pub fn for_input(width: usize, height: usize, strides: &[usize]) -> Self {
        let mut points = Vec::new();
        let mut anchor_strides = Vec::new();
        for &stride in strides {
            let s = stride as f32;
            for y in 0..height.div_ceil(stride) {
                for x in 0..width.div_ceil(stride) {
                    points.push([(x as f32 + 0.5) * s, (y as f32 + 0.5) * s]);
                    anchor_strides.push(s);
                }
            }
        }
        Self { points, strides: anchor_strides }
    }

    /// Number of anchors `A`.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The points as a `[A, 2]` tensor.
    pub fn points_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2> {
        let flat: Vec<f32> = self.points.iter().flatten().copied().collect();
        Tensor::from_data(TensorData::new(flat, [self.len(), 2]), device)
    }

    /// The strides as a `[A, 1]` tensor.
    pub fn strides_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(self.strides.clone(), [self.len(), 1]), device)
    }
}

/// `ln(1 + e^x)`, written as `-log_sigmoid(-x)`: burn's `log_sigmoid` is computed
/// stably (no overflow for large `x`) and has an exact backward, whereas the
/// `relu(x) + ln(1 + e^-|x|)` rewrite has a zero gradient at exactly `x = 0`.
pub fn softplus<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    log_sigmoid(x.neg()).neg()
}

/// Decodes raw box outputs `[N, A, 4]` (left, top, right, bottom) into boxes
/// `[N, A, 4]` `x0, y0, x1, y1` in input pixels (0-based, continuous), with
/// distances `softplus(raw) * stride`. Differentiable: the box loss goes through it.
pub fn decode_boxes<B: Backend>(box_raw: Tensor<B, 3>, anchors: &Anchors) -> Tensor<B, 3> {
    let [_, a, four] = box_raw.dims();
    assert_eq!(four, 4, "box_raw must be [N, A, 4]");
    assert_eq!(a, anchors.len(), "box_raw has {a} anchors, the anchor layout {}", anchors.len());
    let device = box_raw.device();
    // [cx, cy, cx, cy] per anchor, plus distances signed [-l, -t, +r, +b].
    let centres: Vec<f32> = anchors.points.iter().flat_map(|&[x, y]| [x, y, x, y]).collect();
    let centres = Tensor::<B, 3>::from_data(TensorData::new(centres, [1, a, 4]), &device);
    let strides = anchors.strides_tensor::<B>(&device).reshape([1, a, 1]);
    let signs = Tensor::<B, 3>::from_data(TensorData::new(vec![-1.0f32, -1.0, 1.0, 1.0], [1, 1, 4]), &device);
    centres + softplus(box_raw) * strides * signs
}

/// [`decode_boxes`] for one anchor on plain numbers (tests, debugging).
pub fn decode_box(raw: [f32; 4], point: [f32; 2], stride: f32) -> [f32; 4] {
    // ln(1 + e^x) without overflow.
    let sp = |x: f32| x.max(0.0) + (-x.abs()).exp().ln_1p();
    let d = raw.map(|r| sp(r) * stride);
    [point[0] - d[0], point[1] - d[1], point[0] + d[2], point[1] + d[3]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};

    #[test]
    fn layout_is_stride_order_then_row_major() {
        let a = Anchors::new(32, &[8, 16, 32]);
        assert_eq!(a.len(), 16 + 4 + 1);
        assert_eq!(a.points[0], [4.0, 4.0]);
        assert_eq!(a.points[1], [12.0, 4.0]); // x moves first
        assert_eq!(a.points[4], [4.0, 12.0]);
        assert_eq!(a.points[16], [8.0, 8.0]);
        assert_eq!(a.points[20], [16.0, 16.0]);
        assert_eq!(a.strides[15..], [8.0, 16.0, 16.0, 16.0, 16.0, 32.0]);
        // 640 px: the familiar 80² + 40² + 20² = 8400.
        assert_eq!(Anchors::new(640, &[8, 16, 32]).len(), 8400);
        // A stride that does not divide the side rounds the grid up, like the convolutions.
        assert_eq!(Anchors::new(16, &[8, 16, 32]).len(), 4 + 1 + 1);
        assert_eq!(Anchors::for_input(48, 16, &[16]).points, vec![[8.0, 8.0], [24.0, 8.0], [40.0, 8.0]]);
    }

    #[test]
    fn decoding_matches_the_scalar_formula() {
        let device = Default::default();
        let anchors = Anchors::new(16, &[8, 16]);
        let raw: Vec<f32> = (0..anchors.len() * 4).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let t = Tensor::<Flex, 3>::from_data(TensorData::new(raw.clone(), [1, anchors.len(), 4]), &device);
        let got = decode_boxes(t, &anchors).into_data().convert::<f32>().into_vec::<f32>().unwrap();
        for (i, (&p, &s)) in anchors.points.iter().zip(&anchors.strides).enumerate() {
            let want = decode_box(raw[i * 4..i * 4 + 4].try_into().unwrap(), p, s);
            for k in 0..4 {
                assert!((got[i * 4 + k] - want[k]).abs() < 1e-4, "anchor {i}: {:?} vs {want:?}", &got[i * 4..i * 4 + 4]);
            }
        }
        // raw = 0: softplus(0) = ln 2, so a stride-8 box is 2·8·ln 2 wide, centred on the anchor.
        let b = decode_box([0.0; 4], [4.0, 4.0], 8.0);
        assert!((b[2] - b[0] - 16.0 * std::f32::consts::LN_2).abs() < 1e-5);
    }

    #[test]
    fn softplus_is_stable_and_has_the_right_gradient() {
        let device = Default::default();
        let x = Tensor::<Autodiff<Flex>, 1>::from_floats([-100.0, 0.0, 100.0], &device).require_grad();
        let y = softplus(x.clone());
        let v = y.to_data().convert::<f32>().into_vec::<f32>().unwrap();
        assert!(v[0] >= 0.0 && v[0] < 1e-30);
        assert!((v[1] - std::f32::consts::LN_2).abs() < 1e-6);
        assert!((v[2] - 100.0).abs() < 1e-4);
        let g = x.grad(&y.sum().backward()).unwrap().into_data().convert::<f32>().into_vec::<f32>().unwrap();
        // d softplus / dx = sigmoid(x): 0, 1/2, 1.
        assert!(g[0].abs() < 1e-6 && (g[1] - 0.5).abs() < 1e-6 && (g[2] - 1.0).abs() < 1e-6, "{g:?}");
    }
}
