//! Building blocks shared by the backbone, neck and heads.
//!
//! Every normalisation here is GroupNorm: its statistics come from each image
//! alone, so batches drawn from a single task (as `alternate` and `sequential`
//! produce) cannot skew them the way they skew BatchNorm running statistics.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

pub use super::conv_norm_act::{conv_forward, norm_groups, ConvNormAct};
use super::reshape::{join, Consumer, EditableLayers, PrunableLayer};
use crate::backend::TwinBackend;

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
    use crate::model::norm::GroupNorm;
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
