//! The network's one layer kind: a convolution, then GroupNorm (or a folded
//! BatchNorm), then SiLU; with the convolution every layer runs through.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::norm::GroupNorm;
use super::select::select;
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
    let [_, per_output, kh, kw] = conv.weight.dims();
    let outputs = y.shape().num_elements();
    super::macs::add(outputs * per_output * kh * kw, outputs);
    match &conv.bias {
        Some(bias) => {
            let channels = bias.dims()[0];
            y + bias.val().reshape([1, channels, 1, 1])
        }
        None => y,
    }
}

/// Convolution, GroupNorm, SiLU; or convolution with a BatchNorm folded in, SiLU.
#[derive(Module, Debug)]
pub struct ConvNormAct<B: Backend> {
    pub(crate) conv: Conv2d<B>,
    /// After a low-rank factorization (`compress`), the 1×1 convolution from
    /// `conv`'s rank-r output to the layer's channels; absent otherwise.
    pub(crate) pointwise: Option<Conv2d<B>>,
    /// Absent once a BatchNorm is folded into the convolution
    /// ([`Self::fold_batch_norm`]), which then carries a bias. (Records of
    /// layers written when this was a plain `GroupNorm` read as `Some`.)
    pub(crate) norm: Option<GroupNorm<B>>,
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
        Self { conv, pointwise: None, norm: Some(norm) }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4>
    where
        B: TwinBackend,
    {
        let y = conv_forward(&self.conv, x);
        let y = match &self.pointwise {
            Some(pointwise) => conv_forward(pointwise, y),
            None => y,
        };
        match &self.norm {
            Some(norm) => norm.forward_silu(y),
            None => burn::tensor::activation::silu(y),
        }
    }

    /// The convolution that reads the layer's input.
    pub fn input_conv(&mut self) -> &mut Conv2d<B> {
        &mut self.conv
    }

    /// The convolution that writes the layer's output channels.
    pub fn output_conv(&mut self) -> &mut Conv2d<B> {
        self.pointwise.as_mut().unwrap_or(&mut self.conv)
    }

    /// The layer's convolutions: one, or the two halves of a factorization.
    pub fn convs_mut(&mut self) -> Vec<&mut Conv2d<B>> {
        std::iter::once(&mut self.conv).chain(self.pointwise.as_mut()).collect()
    }

    /// The GroupNorm, absent where a BatchNorm was folded in.
    pub fn norm(&self) -> Option<&GroupNorm<B>> {
        self.norm.as_ref()
    }

    pub fn set_norm(&mut self, norm: GroupNorm<B>) {
        assert_eq!(norm.num_channels, self.width(), "a layer's GroupNorm keeps its width");
        self.norm = Some(norm);
    }

    /// Output channels.
    pub fn width(&self) -> usize {
        self.pointwise.as_ref().unwrap_or(&self.conv).weight.dims()[0]
    }

    /// Replaces the GroupNorm by an inference-mode BatchNorm folded into the
    /// output convolution: per channel `y·scale + shift`, with
    /// scale = γ/√(σ² + ε) and shift = β − μ·scale.
    pub fn fold_batch_norm(&mut self, scale: Tensor<B, 1>, shift: Tensor<B, 1>) {
        let conv = self.output_conv();
        let channels = scale.dims()[0];
        assert_eq!(channels, conv.weight.dims()[0], "a BatchNorm over the layer's channels");
        let weight = conv.weight.val() * scale.clone().reshape([channels, 1, 1, 1]);
        let bias = match &conv.bias {
            Some(bias) => bias.val() * scale + shift,
            None => shift,
        };
        conv.weight = Param::from_tensor(weight.detach());
        conv.bias = Some(Param::from_tensor(bias.detach()));
        self.norm = None;
    }

    /// The layer's convolution as one weight [C_out, C_in, k, k] and its bias:
    /// a factorization multiplied back (both halves are linear).
    pub fn merged_conv(&self) -> (Tensor<B, 4>, Option<Tensor<B, 1>>) {
        let Some(pointwise) = &self.pointwise else {
            return (self.conv.weight.val(), self.conv.bias.as_ref().map(Param::val));
        };
        let [rank, channels_in, kh, kw] = self.conv.weight.dims();
        let channels_out = pointwise.weight.dims()[0];
        let first = self.conv.weight.val().reshape([rank, channels_in * kh * kw]);
        let second = pointwise.weight.val().reshape([channels_out, rank]);
        let weight = second.clone().matmul(first).reshape([channels_out, channels_in, kh, kw]);
        let first_bias = self.conv.bias.as_ref().map(|b| second.matmul(b.val().reshape([rank, 1])).reshape([channels_out]));
        let bias = match (first_bias, pointwise.bias.as_ref().map(Param::val)) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        (weight, bias)
    }

    pub fn is_factorized(&self) -> bool {
        self.pointwise.is_some()
    }

    /// Keeps only the output channels `keep` (whole GroupNorm groups, ascending).
    pub fn keep_outputs(&mut self, keep: &[usize]) {
        let conv = self.output_conv();
        conv.weight = select(&conv.weight, 0, keep);
        conv.bias = conv.bias.as_ref().map(|b| select(b, 0, keep));
        if let Some(norm) = &mut self.norm {
            norm.keep_channels(keep);
        }
    }

    /// Replaces the convolution by `first` (the k×k convolution to `r` channels)
    /// followed by the 1×1 `second` [C_out, r, 1, 1].
    pub fn factorize(&mut self, first: Tensor<B, 4>, second: Tensor<B, 4>) {
        assert!(self.pointwise.is_none(), "a layer is factorized once");
        let [channels_out, rank, _, _] = second.dims();
        let mut pointwise = Conv2dConfig::new([rank, channels_out], [1, 1]).with_bias(false).init(&second.device());
        pointwise.weight = Param::from_tensor(second);
        // A folded BatchNorm's bias belongs to the layer's output.
        pointwise.bias = self.conv.bias.take();
        self.conv.weight = Param::from_tensor(first);
        self.pointwise = Some(pointwise);
    }
}
