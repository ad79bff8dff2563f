//! Building blocks shared by the backbone, neck and heads.
//!
//! Every normalisation here is GroupNorm: its statistics come from each image
//! alone, so batches drawn from a single task (as `alternate` and `sequential`
//! produce) cannot skew them the way they skew BatchNorm running statistics.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::norm::GroupNorm;
use crate::backend::{self, TwinBackend};

/// The GroupNorm group count for `channels`: at most 32 groups of at least 4 channels.
pub fn norm_groups(channels: usize) -> usize {
    [32, 16, 8, 4, 2, 1]
        .into_iter()
        .find(|g| channels % g == 0 && channels / g >= 4)
        .unwrap_or(1)
}

/// `conv` applied through [`TwinBackend`]'s convolution (Twinhead's CPU kernels);
/// burn's own `Conv2d::forward` for the padding modes those do not take.
pub fn conv_forward<B: TwinBackend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [0, 0],
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => [top, left],
        _ => return conv.forward(x),
    };
    let options = ConvOptions::new(conv.stride, padding, conv.dilation, conv.groups);
    let y = backend::conv2d(x, conv.weight.val(), options);
    match &conv.bias {
        Some(bias) => {
            let channels = bias.dims()[0];
            y + bias.val().reshape([1, channels, 1, 1])
        }
        None => y,
    }
}

/// Convolution, GroupNorm, SiLU.
#[derive(Module, Debug)]
pub struct ConvNormAct<B: Backend> {
    conv: Conv2d<B>,
    norm: GroupNorm<B>,
}

impl<B: Backend> ConvNormAct<B> {
    pub fn new(channels_in: usize, channels_out: usize, kernel: usize, stride: usize, device: &B::Device) -> Self {
        let pad = kernel / 2;
        let conv = Conv2dConfig::new([channels_in, channels_out], [kernel, kernel])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_bias(false)
            .init(device);
        let norm = GroupNorm::new(norm_groups(channels_out), channels_out, device);
        Self { conv, norm }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4>
    where
        B: TwinBackend,
    {
        self.norm.forward_silu(conv_forward(&self.conv, x))
    }
}

/// Two 3×3 convolutions with an optional residual connection.
#[derive(Module, Debug)]
pub struct Bottleneck<B: Backend> {
    cv1: ConvNormAct<B>,
    cv2: ConvNormAct<B>,
    shortcut: bool,
}

impl<B: Backend> Bottleneck<B> {
    pub fn new(channels: usize, shortcut: bool, device: &B::Device) -> Self {
        Self {
            cv1: ConvNormAct::new(channels, channels, 3, 1, device),
            cv2: ConvNormAct::new(channels, channels, 3, 1, device),
            shortcut,
        }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4>
    where
        B: TwinBackend,
    {
        let y = self.cv2.forward(self.cv1.forward(x.clone()));
        if self.shortcut {
            x + y
        } else {
            y
        }
    }
}

/// CSP block with two convolutions and a chain of bottlenecks whose every
/// intermediate output is concatenated (YOLOv8's C2f): cheap, with rich gradient flow.
#[derive(Module, Debug)]
pub struct C2f<B: Backend> {
    cv1: ConvNormAct<B>,
    cv2: ConvNormAct<B>,
    blocks: Vec<Bottleneck<B>>,
    hidden: usize,
}

impl<B: Backend> C2f<B> {
    pub fn new(channels_in: usize, channels_out: usize, depth: usize, shortcut: bool, device: &B::Device) -> Self {
        let hidden = channels_out / 2;
        Self {
            cv1: ConvNormAct::new(channels_in, 2 * hidden, 1, 1, device),
            cv2: ConvNormAct::new((2 + depth) * hidden, channels_out, 1, 1, device),
            blocks: (0..depth).map(|_| Bottleneck::new(hidden, shortcut, device)).collect(),
            hidden,
        }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4>
    where
        B: TwinBackend,
    {
        let mut parts = self.cv1.forward(x).split(self.hidden, 1);
        for block in &self.blocks {
            let last = parts.last().expect("C2f keeps two parts").clone();
            parts.push(block.forward(last));
        }
        self.cv2.forward(Tensor::cat(parts, 1))
    }
}

/// Spatial pyramid pooling, fast: three chained 5×5 max-pools widen the receptive field.
#[derive(Module, Debug)]
pub struct Sppf<B: Backend> {
    cv1: ConvNormAct<B>,
    cv2: ConvNormAct<B>,
}

impl<B: Backend> Sppf<B> {
    pub fn new(channels: usize, device: &B::Device) -> Self {
        let hidden = channels / 2;
        Self {
            cv1: ConvNormAct::new(channels, hidden, 1, 1, device),
            cv2: ConvNormAct::new(hidden * 4, channels, 1, 1, device),
        }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4>
    where
        B: TwinBackend,
    {
        let pool = |t: Tensor<B, 4>| burn::tensor::module::max_pool2d(t, [5, 5], [1, 1], [2, 2], [1, 1], false);
        let x = self.cv1.forward(x);
        let y1 = pool(x.clone());
        let y2 = pool(y1.clone());
        let y3 = pool(y2.clone());
        self.cv2.forward(Tensor::cat(vec![x, y1, y2, y3], 1))
    }
}

/// Nearest-neighbour 2× upsampling by broadcasting: differentiable on every
/// backend (burn-cuda has no backward for bilinear `interpolate`).
pub fn upsample2x<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h, 1, w, 1]).expand([n, c, h, 2, w, 2]).reshape([n, c, h * 2, w * 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    #[test]
    fn upsample_repeats_each_pixel_into_a_2x2_block() {
        let device = Default::default();
        let x = Tensor::<Flex, 4>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 2, 2]), &device);
        let y: Vec<f32> = upsample2x(x).into_data().to_vec().unwrap();
        assert_eq!(y, [1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.]);
    }

    #[test]
    fn group_counts_divide_the_channels() {
        for c in [3, 8, 16, 24, 48, 64, 96, 256] {
            let g = norm_groups(c);
            assert_eq!(c % g, 0);
        }
        assert_eq!(norm_groups(64), 16);
        assert_eq!(norm_groups(256), 32);
    }

    #[test]
    fn c2f_and_sppf_keep_the_spatial_size() {
        let device = Default::default();
        let x = Tensor::<Flex, 4>::zeros([2, 8, 6, 6], &device);
        assert_eq!(C2f::new(8, 16, 2, true, &device).forward(x.clone()).dims(), [2, 16, 6, 6]);
        assert_eq!(Sppf::new(8, &device).forward(x).dims(), [2, 8, 6, 6]);
    }
}
