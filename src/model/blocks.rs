//! Building blocks shared by the backbone, neck and heads.
//!
//! Every normalisation here is GroupNorm: its statistics come from each image
//! alone, so batches drawn from a single task (as `alternate` and `sequential`
//! produce) cannot skew them the way they skew BatchNorm running statistics.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use super::norm::GroupNorm;
use super::reshape::{join, Consumer, EditableLayers, PrunableLayer};
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

/// `param` with only the entries `keep` along `dim`.
pub fn select<B: Backend, const D: usize>(param: &Param<Tensor<B, D>>, dim: usize, keep: &[usize]) -> Param<Tensor<B, D>> {
    let value = param.val();
    let indices = Tensor::<B, 1, Int>::from_data(TensorData::new(keep.iter().map(|&i| i as i64).collect(), [keep.len()]), &value.device());
    // Detached: a parameter must be a leaf of the autodiff graph.
    Param::from_tensor(value.select(dim, indices).detach())
}

/// Two 3×3 convolutions with an optional residual connection.
#[derive(Module, Debug)]
pub struct Bottleneck<B: Backend> {
    pub(crate) cv1: ConvNormAct<B>,
    pub(crate) cv2: ConvNormAct<B>,
    pub(crate) shortcut: bool,
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
    pub(crate) cv1: ConvNormAct<B>,
    pub(crate) cv2: ConvNormAct<B>,
    pub(crate) blocks: Vec<Bottleneck<B>>,
    pub(crate) hidden: usize,
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
    pub(crate) cv1: ConvNormAct<B>,
    pub(crate) cv2: ConvNormAct<B>,
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

impl<B: Backend> EditableLayers<B> for Bottleneck<B> {
    fn visit_layers(&mut self, path: &str, visit: &mut dyn FnMut(&str, &mut ConvNormAct<B>)) {
        visit(&join(path, "cv1"), &mut self.cv1);
        visit(&join(path, "cv2"), &mut self.cv2);
    }

    /// The hidden channels between the two convolutions (the second's output
    /// joins the residual sum and the C2f concatenation: not pruned).
    fn visit_prunable(&mut self, path: &str, visit: &mut dyn FnMut(&str, PrunableLayer<'_, B>)) {
        visit(&join(path, "cv1"), PrunableLayer { producer: &mut self.cv1, consumers: vec![Consumer::all(self.cv2.input_conv())] });
    }
}

impl<B: Backend> C2f<B> {
    /// The convolution that reads the block's input.
    pub fn input_conv(&mut self) -> &mut Conv2d<B> {
        self.cv1.input_conv()
    }
}

impl<B: Backend> EditableLayers<B> for C2f<B> {
    fn visit_layers(&mut self, path: &str, visit: &mut dyn FnMut(&str, &mut ConvNormAct<B>)) {
        visit(&join(path, "cv1"), &mut self.cv1);
        self.blocks.visit_layers(&join(path, "blocks"), visit);
        visit(&join(path, "cv2"), &mut self.cv2);
    }

    fn visit_prunable(&mut self, path: &str, visit: &mut dyn FnMut(&str, PrunableLayer<'_, B>)) {
        self.blocks.visit_prunable(&join(path, "blocks"), visit);
    }
}

impl<B: Backend> EditableLayers<B> for Sppf<B> {
    fn visit_layers(&mut self, path: &str, visit: &mut dyn FnMut(&str, &mut ConvNormAct<B>)) {
        visit(&join(path, "cv1"), &mut self.cv1);
        visit(&join(path, "cv2"), &mut self.cv2);
    }

    /// The first convolution's output and its three pooled copies, all read by the second.
    fn visit_prunable(&mut self, path: &str, visit: &mut dyn FnMut(&str, PrunableLayer<'_, B>)) {
        let consumer = Consumer { conv: self.cv2.input_conv(), offset: 0, copies: 4 };
        visit(&join(path, "cv1"), PrunableLayer { producer: &mut self.cv1, consumers: vec![consumer] });
    }
}

/// Nearest-neighbour 2× upsampling (a kernel of [`TwinBackend`]).
pub use crate::backend::upsample2x;

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

    /// Folded, a BatchNorm computes what it computes after the convolution in
    /// inference mode; factorized afterwards (exactly, at full rank), the layer
    /// keeps the bias on its output.
    #[test]
    fn a_folded_batch_norm_equals_convolution_batch_norm_silu() {
        use burn::tensor::activation::silu;
        use burn::tensor::Distribution;
        let device = Default::default();
        let mut layer = ConvNormAct::<Flex>::new(3, 4, 3, 1, &device);
        let x = Tensor::<Flex, 4>::random([2, 3, 5, 6], Distribution::Normal(0.0, 1.0), &device);
        let vector = |values: [f32; 4]| Tensor::<Flex, 1>::from_data(TensorData::new(values.to_vec(), [4]), &device);
        let (gamma, beta, mean, var, eps) = (vector([0.5, 1.5, -1.0, 2.0]), vector([0.1, -0.2, 0.3, 0.0]), vector([0.2, -0.1, 0.0, 1.0]), vector([0.5, 2.0, 1.0, 0.1]), 1e-3);
        let per_channel = |t: Tensor<Flex, 1>| t.reshape([1, 4, 1, 1]);
        let expected = silu(
            (conv_forward(&layer.conv, x.clone()) - per_channel(mean.clone())) / per_channel(var.clone().add_scalar(eps).sqrt()) * per_channel(gamma.clone())
                + per_channel(beta.clone()),
        );
        let scale = gamma / var.add_scalar(eps).sqrt();
        let shift = beta - mean * scale.clone();
        layer.fold_batch_norm(scale, shift);
        assert!(layer.norm().is_none());
        let close = |a: Tensor<Flex, 4>, what: &str| {
            let diff: f32 = (a - expected.clone()).abs().max().into_scalar();
            assert!(diff < 1e-5, "{what}: differs by {diff}");
        };
        close(layer.forward(x.clone()), "folded");
        let identity = Tensor::<Flex, 2>::eye(4, &device).reshape([4, 4, 1, 1]);
        layer.factorize(layer.conv.weight.val(), identity);
        close(layer.forward(x), "folded, then factorized");
    }

    /// A layer as checkpoints recorded it before the GroupNorm became optional.
    #[derive(Module, Debug)]
    struct GroupNormLayer<B: Backend> {
        conv: Conv2d<B>,
        pointwise: Option<Conv2d<B>>,
        norm: GroupNorm<B>,
    }

    #[test]
    fn records_of_layers_with_a_plain_group_norm_load() {
        use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
        let device = Default::default();
        let ConvNormAct { conv, norm, .. } = ConvNormAct::<Flex>::new(3, 8, 3, 1, &device);
        let old = GroupNormLayer { conv, pointwise: None, norm: norm.unwrap() };
        let x = Tensor::<Flex, 4>::ones([1, 3, 4, 4], &device);
        let expected = old.norm.forward_silu(conv_forward(&old.conv, x.clone()));
        let dir = tempfile::tempdir().unwrap();
        let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        old.save_file(dir.path().join("layer"), &recorder).unwrap();
        let loaded = ConvNormAct::<Flex>::new(3, 8, 3, 1, &device).load_file(dir.path().join("layer"), &recorder, &device).unwrap();
        assert!(loaded.norm().is_some());
        let diff: f32 = (loaded.forward(x) - expected).abs().max().into_scalar();
        assert_eq!(diff, 0.0);
    }

    #[test]
    fn c2f_and_sppf_keep_the_spatial_size() {
        let device = Default::default();
        let x = Tensor::<Flex, 4>::zeros([2, 8, 6, 6], &device);
        assert_eq!(C2f::new(8, 16, 2, true, &device).forward(x.clone()).dims(), [2, 16, 6, 6]);
        assert_eq!(Sppf::new(8, &device).forward(x).dims(), [2, 8, 6, 6]);
    }
}
