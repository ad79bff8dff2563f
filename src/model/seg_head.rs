//! Semantic-FPN segmentation head (Panoptic FPN's semantic branch): every
//! pyramid level is brought to stride 4 by conv + GroupNorm + 2× upsampling
//! steps, the levels are summed, a 1×1 convolution predicts the classes, and a
//! fixed bilinear transposed convolution upsamples the logits 4× to the input
//! size. The transposed convolution keeps the path differentiable on burn-cuda,
//! whose bilinear `interpolate` has no backward.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::backend::Backend;
use burn::tensor::module::conv_transpose2d;
use burn::tensor::ops::ConvTransposeOptions;
use burn::tensor::{Tensor, TensorData};

use super::blocks::{upsample2x, ConvNormAct};
use super::neck::{Pyramid, PyramidChannels};

/// Upsampling factor from the head's stride-4 logits to the input.
const OUTPUT_STRIDE: usize = 4;

#[derive(Module, Debug)]
struct LevelBranch<B: Backend> {
    /// One conv per 2× step (at least one).
    steps: Vec<ConvNormAct<B>>,
}

#[derive(Module, Debug)]
pub struct SegHead<B: Backend> {
    branches: Vec<LevelBranch<B>>,
    classifier: Conv2d<B>,
    num_classes: usize,
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
        Self { branches, classifier: Conv2dConfig::new([hidden, num_classes], [1, 1]).init(device), num_classes }
    }

    /// Logits [N, C, H, W] at the input size (the pyramid must include `p2`).
    pub fn forward(&self, pyramid: &Pyramid<B>) -> Tensor<B, 4> {
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
        let logits = self.classifier.forward(fused.expect("four levels"));
        bilinear_upsample(logits, OUTPUT_STRIDE, self.num_classes)
    }
}

/// Bilinear upsampling by an integer factor as a depthwise transposed convolution
/// with a fixed bilinear kernel (the FCN construction).
pub fn bilinear_upsample<B: Backend>(x: Tensor<B, 4>, factor: usize, channels: usize) -> Tensor<B, 4> {
    let kernel = 2 * factor - factor % 2;
    let center = if kernel % 2 == 1 { factor as f32 - 1.0 } else { factor as f32 - 0.5 };
    let mut weights = Vec::with_capacity(kernel * kernel);
    for i in 0..kernel {
        for j in 0..kernel {
            let wy = 1.0 - (i as f32 - center).abs() / factor as f32;
            let wx = 1.0 - (j as f32 - center).abs() / factor as f32;
            weights.push(wy * wx);
        }
    }
    let weight = Tensor::<B, 2>::from_data(TensorData::new(weights, [kernel, kernel]), &x.device())
        .reshape([1, 1, kernel, kernel])
        .expand([channels, 1, kernel, kernel]);
    // Output size (H-1)·f − 2p + k = f·H, and pixel centres stay aligned (half-pixel convention).
    let padding = (kernel - factor) / 2;
    let options = ConvTransposeOptions::new([factor, factor], [padding, padding], [0, 0], [1, 1], channels);
    conv_transpose2d(x, weight, None, options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn bilinear_upsample_quadruples_and_keeps_constants() {
        let device = Default::default();
        let x = Tensor::<Flex, 4>::ones([1, 2, 3, 5], &device).mul_scalar(2.0);
        let y = bilinear_upsample(x, 4, 2);
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
        let y: Vec<f32> = bilinear_upsample(x, 4, 1).into_data().to_vec().unwrap();
        let row = &y[6 * 16..7 * 16];
        // Between input pixel centres the output rises by 1/4 per output pixel.
        for c in 3..11 {
            assert!((row[c + 1] - row[c] - 0.25).abs() < 1e-5, "{row:?}");
        }
    }
}
