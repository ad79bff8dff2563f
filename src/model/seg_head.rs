//! Semantic-FPN segmentation head (Panoptic FPN's semantic branch): every
//! pyramid level is brought to stride 4 by conv + GroupNorm + 2× upsampling
//! steps, the levels are summed, a 1×1 convolution predicts the classes, and
//! fixed bilinear interpolation matrices upsample the logits 4× to the input
//! size. Matrix products keep the path differentiable on burn-cuda, whose
//! bilinear `interpolate` has no backward.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::blocks::{conv_forward, upsample2x, ConvNormAct};
use crate::backend::TwinBackend;
use super::neck::{Pyramid, PyramidChannels};
use super::reshape::{join, Consumer, EditableLayers, PrunableLayer};

/// Upsampling factor from the head's stride-4 logits to the input.
pub(crate) const OUTPUT_STRIDE: usize = 4;

#[derive(Module, Debug)]
pub(crate) struct LevelBranch<B: Backend> {
    /// One conv per 2× step (at least one).
    pub(crate) steps: Vec<ConvNormAct<B>>,
}

#[derive(Module, Debug)]
pub struct SegHead<B: Backend> {
    pub(crate) branches: Vec<LevelBranch<B>>,
    pub(crate) classifier: Conv2d<B>,
}

impl<B: Backend> SegHead<B> {
    pub fn new(channels: PyramidChannels, hidden: usize, num_classes: usize, device: &B::Device) -> Self {
        let inputs = [(channels.p2, 0), (channels.p3, 1), (channels.p4, 2), (channels.p5, 3)];
        let branches = inputs
            .into_iter()
            .map(|(c, upsamplings)| LevelBranch {
                steps: (0..upsamplings.max(1))
                    .map(|i| ConvNormAct::new(if i == 0 { c } else { hidden }, hidden, 3, 1, device))
                    .collect(),
            })
            .collect();
        Self { branches, classifier: Conv2dConfig::new([hidden, num_classes], [1, 1]).init(device) }
    }

    /// Logits [N, C, H, W] at the input size (the pyramid must include `p2`).
    pub fn forward(&self, pyramid: &Pyramid<B>) -> Tensor<B, 4>
    where
        B: TwinBackend,
    {
        let p2 = pyramid.p2.clone().expect("segmentation needs the stride-4 level");
        let inputs = [p2, pyramid.p3.clone(), pyramid.p4.clone(), pyramid.p5.clone()];
        let mut fused: Option<Tensor<B, 4>> = None;
        for (level, (branch, x)) in self.branches.iter().zip(inputs).enumerate() {
            let mut y = x;
            for step in &branch.steps {
                y = step.forward(y);
                if level > 0 {
                    y = upsample2x(y);
                }
            }
            fused = Some(match fused {
                Some(f) => f + y,
                None => y,
            });
        }
        let logits = conv_forward(&self.classifier, fused.expect("four levels"));
        bilinear_upsample(logits, OUTPUT_STRIDE)
    }
}

impl<B: Backend> EditableLayers<B> for LevelBranch<B> {
    fn visit_layers(&mut self, path: &str, visit: &mut dyn FnMut(&str, &mut ConvNormAct<B>)) {
        self.steps.visit_layers(&join(path, "steps"), visit);
    }

    /// Every step but the last (whose output joins the sum over levels).
    fn visit_prunable(&mut self, path: &str, visit: &mut dyn FnMut(&str, PrunableLayer<'_, B>)) {
        for i in 1..self.steps.len() {
            let (before, after) = self.steps.split_at_mut(i);
            let layer = PrunableLayer { producer: &mut before[i - 1], consumers: vec![Consumer::all(after[0].input_conv())] };
            visit(&join(path, &format!("steps.{}", i - 1)), layer);
        }
    }
}

impl<B: Backend> EditableLayers<B> for SegHead<B> {
    fn visit_layers(&mut self, path: &str, visit: &mut dyn FnMut(&str, &mut ConvNormAct<B>)) {
        self.branches.visit_layers(&join(path, "branches"), visit);
    }

    fn visit_prunable(&mut self, path: &str, visit: &mut dyn FnMut(&str, PrunableLayer<'_, B>)) {
        self.branches.visit_prunable(&join(path, "branches"), visit);
    }
}

/// Bilinear upsampling by an integer factor, separably: one matrix product
/// along the rows and one along the columns with fixed interpolation matrices.
/// The values are those of the FCN construction (a depthwise transposed
/// convolution with a bilinear kernel: half-pixel centres, borders see fewer
/// taps), at a fraction of its cost on the CPU, and differentiable everywhere.
pub fn bilinear_upsample<B: Backend>(x: Tensor<B, 4>, factor: usize) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let device = x.device();
    let columns = interpolation_matrix::<B>(w, factor, &device).transpose();
    let rows = interpolation_matrix::<B>(h, factor, &device).unsqueeze::<3>();
    let wide = x.reshape([n * c * h, w]).matmul(columns).reshape([n * c, h, factor * w]);
    rows.matmul(wide).reshape([n, c, factor * h, factor * w])
}

/// `[factor·len, len]`: output pixel `o` takes `1 − |(o + ½) − factor·(i + ½)| / factor`
/// of input pixel `i` (clamped at 0), the bilinear kernel on half-pixel centres.
fn interpolation_matrix<B: Backend>(len: usize, factor: usize, device: &B::Device) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(interpolation_weights(len, factor), [factor * len, len]), device)
}

/// The `[factor·len, len]` matrix of [`bilinear_upsample`] along one axis, row-major.
pub fn interpolation_weights(len: usize, factor: usize) -> Vec<f32> {
    let f = factor as f32;
    (0..factor * len)
        .flat_map(|o| (0..len).map(move |i| (1.0 - ((o as f32 + 0.5) - f * (i as f32 + 0.5)).abs() / f).max(0.0)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn bilinear_upsample_quadruples_and_keeps_constants() {
        let device = Default::default();
        let x = Tensor::<Flex, 4>::ones([1, 2, 3, 5], &device).mul_scalar(2.0);
        let y = bilinear_upsample(x, 4);
        assert_eq!(y.dims(), [1, 2, 12, 20]);
        let values: Vec<f32> = y.into_data().to_vec().unwrap();
        // Interior pixels of a constant map stay constant (borders see fewer taps).
        let row = 6;
        for col in 4..16 {
            assert!((values[row * 20 + col] - 2.0).abs() < 1e-5, "{}", values[row * 20 + col]);
        }
    }

    #[test]
    fn bilinear_upsample_interpolates_a_ramp_linearly_inside() {
        let device = Default::default();
        let ramp: Vec<f32> = (0..4).map(|i| i as f32).collect();
        let x = Tensor::<Flex, 4>::from_data(TensorData::new(ramp, [1, 1, 1, 4]), &device).expand([1, 1, 4, 4]);
        let y: Vec<f32> = bilinear_upsample(x, 4).into_data().to_vec().unwrap();
        let row = &y[6 * 16..7 * 16];
        // Between input pixel centres the output rises by 1/4 per output pixel.
        for c in 3..11 {
            assert!((row[c + 1] - row[c] - 0.25).abs() < 1e-5, "{row:?}");
        }
    }

    /// The layer this one replaced: a depthwise transposed convolution with the
    /// FCN bilinear kernel. Kept as the reference the matrices must equal.
    fn transposed_conv_upsample<B: Backend>(x: Tensor<B, 4>, factor: usize) -> Tensor<B, 4> {
        use burn::tensor::module::conv_transpose2d;
        use burn::tensor::ops::ConvTransposeOptions;
        let channels = x.dims()[1];
        let kernel = 2 * factor - factor % 2;
        let center = if kernel % 2 == 1 { factor as f32 - 1.0 } else { factor as f32 - 0.5 };
        let tap = |i: usize| 1.0 - (i as f32 - center).abs() / factor as f32;
        let weights: Vec<f32> = (0..kernel).flat_map(|i| (0..kernel).map(move |j| tap(i) * tap(j))).collect();
        let weight = Tensor::<B, 2>::from_data(TensorData::new(weights, [kernel, kernel]), &x.device())
            .reshape([1, 1, kernel, kernel])
            .expand([channels, 1, kernel, kernel]);
        let padding = (kernel - factor) / 2;
        let options = ConvTransposeOptions::new([factor, factor], [padding, padding], [0, 0], [1, 1], channels);
        conv_transpose2d(x, weight, None, options)
    }

    #[test]
    fn matrices_equal_the_transposed_convolution_forward_and_backward() {
        use burn::backend::Autodiff;
        use burn::tensor::Distribution;
        type A = Autodiff<Flex>;
        let device = Default::default();
        for (shape, factor) in [([2, 3, 5, 7], 4), ([1, 2, 4, 4], 2), ([1, 1, 3, 6], 3)] {
            let x = Tensor::<Flex, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let [n, c, h, w] = shape;
            let upstream = Tensor::<A, 4>::random([n, c, factor * h, factor * w], Distribution::Normal(0.0, 1.0), &device);
            let run = |f: &dyn Fn(Tensor<A, 4>) -> Tensor<A, 4>| {
                let input = Tensor::<A, 4>::from_inner(x.clone()).require_grad();
                let y = f(input.clone());
                let grads = (y.clone() * upstream.clone()).sum().backward();
                (y.inner(), input.grad(&grads).unwrap())
            };
            let (y, dx) = run(&|t| bilinear_upsample(t, factor));
            let (y_ref, dx_ref) = run(&|t| transposed_conv_upsample(t, factor));
            for (a, b) in [(y, y_ref), (dx, dx_ref)] {
                let diff: f32 = (a - b).abs().max().into_scalar();
                assert!(diff < 1e-5, "factor {factor}, shape {shape:?}: differs by {diff}");
            }
        }
    }
}
