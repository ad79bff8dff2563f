//! torchvision-compatible ResNet-18/34/50 backbone, loadable from ImageNet checkpoints.
//!
//! Field names follow torchvision's module names (`conv1`, `bn1`, `layer1.0.conv1`,
//! `layer1.0.downsample.0`, …) so a torchvision `state_dict` maps onto this module
//! key for key; see [`ResNet::load_torchvision`]. Every BatchNorm is a
//! [`FrozenBatchNorm2d`], so the network is meant to start from pretrained weights:
//! a randomly initialised one has no working normalisation.

mod frozen_bn;
mod load;

pub use frozen_bn::FrozenBatchNorm2d;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::module::max_pool2d;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::features::{FeatureChannels, Features};
use super::blocks::conv_forward;
use crate::backend::TwinBackend;

/// The torchvision depths this backbone reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResNetDepth {
    #[serde(rename = "resnet18")]
    R18,
    #[serde(rename = "resnet34")]
    R34,
    #[serde(rename = "resnet50")]
    R50,
}

impl ResNetDepth {
    /// 18, 34 or 50.
    pub fn from_layers(layers: usize) -> Option<Self> {
        match layers {
            18 => Some(Self::R18),
            34 => Some(Self::R34),
            50 => Some(Self::R50),
            _ => None,
        }
    }
}

/// Shape of a [`ResNet`]: torchvision's `ResNet(block, layers)` plus a width knob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResNetConfig {
    /// Blocks in layer1..layer4.
    pub blocks: [usize; 4],
    /// Bottleneck blocks (resnet50) instead of basic blocks (resnet18/34).
    pub bottleneck: bool,
    /// Stem width, also the planes of layer1, doubling each stage. torchvision: 64;
    /// smaller values give tiny test models with the same key names. (This is not
    /// torchvision's `width_per_group`, which stays 64: bottleneck inner width = planes.)
    pub base_width: usize,
}

impl ResNetConfig {
    pub fn new(depth: ResNetDepth) -> Self {
        let (blocks, bottleneck) = match depth {
            ResNetDepth::R18 => ([2, 2, 2, 2], false),
            ResNetDepth::R34 => ([3, 4, 6, 3], false),
            ResNetDepth::R50 => ([3, 4, 6, 3], true),
        };
        Self { blocks, bottleneck, base_width: 64 }
    }

    pub fn with_base_width(mut self, base_width: usize) -> Self {
        self.base_width = base_width;
        self
    }

    pub fn with_blocks(mut self, blocks: [usize; 4]) -> Self {
        self.blocks = blocks;
        self
    }

    /// Output channels of a stage's blocks: planes × expansion (4 for bottlenecks).
    fn stage_channels(&self, stage: usize) -> usize {
        let expansion = if self.bottleneck { 4 } else { 1 };
        (self.base_width << stage) * expansion
    }

    pub fn channels(&self) -> FeatureChannels {
        FeatureChannels {
            c2: self.stage_channels(0),
            c3: self.stage_channels(1),
            c4: self.stage_channels(2),
            c5: self.stage_channels(3),
        }
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> ResNet<B> {
        ResNet::new(self, device)
    }
}

/// Bias-free convolution with "same" padding, as every torchvision ResNet conv.
fn conv<B: Backend>(
    channels_in: usize,
    channels_out: usize,
    kernel: usize,
    stride: usize,
    device: &B::Device,
) -> Conv2d<B> {
    let pad = kernel / 2;
    Conv2dConfig::new([channels_in, channels_out], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .init(device)
}

/// torchvision's BasicBlock (conv3 absent) or Bottleneck (ResNet v1.5: stride on the 3×3).
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn1: FrozenBatchNorm2d<B>,
    pub conv2: Conv2d<B>,
    pub bn2: FrozenBatchNorm2d<B>,
    /// Bottleneck only: the 1×1 expansion back to planes × 4.
    pub conv3: Option<Conv2d<B>>,
    pub bn3: Option<FrozenBatchNorm2d<B>>,
    /// Projection shortcut where stride or width change. A tuple, so its keys read
    /// `downsample.0.weight`, `downsample.1.running_mean` like torchvision's `nn.Sequential`.
    pub downsample: Option<(Conv2d<B>, FrozenBatchNorm2d<B>)>,
}

impl<B: Backend> Block<B> {
    fn new(channels_in: usize, planes: usize, stride: usize, bottleneck: bool, device: &B::Device) -> Self {
        let (conv1, conv2, conv3, channels_out) = if bottleneck {
            let out = planes * 4;
            (
                conv(channels_in, planes, 1, 1, device),
                conv(planes, planes, 3, stride, device),
                Some(conv(planes, out, 1, 1, device)),
                out,
            )
        } else {
            (conv(channels_in, planes, 3, stride, device), conv(planes, planes, 3, 1, device), None, planes)
        };
        let downsample = (stride != 1 || channels_in != channels_out).then(|| {
            (conv(channels_in, channels_out, 1, stride, device), FrozenBatchNorm2d::new(channels_out, device))
        });
        Self {
            conv1,
            bn1: FrozenBatchNorm2d::new(planes, device),
            conv2,
            bn2: FrozenBatchNorm2d::new(planes, device),
            bn3: conv3.as_ref().map(|_| FrozenBatchNorm2d::new(channels_out, device)),
            conv3,
            downsample,
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4>
    where
        B: TwinBackend,
    {
        let mut out = self.bn2.forward(conv_forward(&self.conv2, relu(self.bn1.forward(conv_forward(&self.conv1, x.clone())))));
        if let (Some(conv3), Some(bn3)) = (&self.conv3, &self.bn3) {
            out = bn3.forward(conv_forward(conv3, relu(out)));
        }
        let identity = match &self.downsample {
            Some((conv, bn)) => bn.forward(conv_forward(conv, x)),
            None => x,
        };
        relu(out + identity)
    }
}

/// ResNet without its classifier: stem (conv1 7×7/2, bn1, relu, maxpool 3×3/2) and
/// layer1..layer4, returning each stage's output as c2..c5 (strides 4, 8, 16, 32).
#[derive(Module, Debug)]
pub struct ResNet<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn1: FrozenBatchNorm2d<B>,
    pub layer1: Vec<Block<B>>,
    pub layer2: Vec<Block<B>>,
    pub layer3: Vec<Block<B>>,
    pub layer4: Vec<Block<B>>,
}

impl<B: Backend> ResNet<B> {
    /// Feature channels of a torchvision-width ResNet of this depth.
    pub fn channels(depth: ResNetDepth) -> FeatureChannels {
        ResNetConfig::new(depth).channels()
    }

    pub fn new(config: &ResNetConfig, device: &B::Device) -> Self {
        let mut channels_in = config.base_width;
        let mut stage = |index: usize| {
            let planes = config.base_width << index;
            let stride = if index == 0 { 1 } else { 2 };
            (0..config.blocks[index])
                .map(|i| {
                    let block =
                        Block::new(channels_in, planes, if i == 0 { stride } else { 1 }, config.bottleneck, device);
                    channels_in = config.stage_channels(index);
                    block
                })
                .collect::<Vec<_>>()
        };
        let (layer1, layer2, layer3, layer4) = (stage(0), stage(1), stage(2), stage(3));
        Self {
            conv1: conv(3, config.base_width, 7, 2, device),
            bn1: FrozenBatchNorm2d::new(config.base_width, device),
            layer1,
            layer2,
            layer3,
            layer4,
        }
    }

    pub fn forward(&self, images: Tensor<B, 4>) -> Features<B>
    where
        B: TwinBackend,
    {
        let x = relu(self.bn1.forward(conv_forward(&self.conv1, images)));
        // Inputs to the pool are ≥ 0 after the ReLU, so zero padding acts like torch's -inf padding.
        let x = max_pool2d(x, [3, 3], [2, 2], [1, 1], [1, 1], false);
        let run = |blocks: &[Block<B>], x: Tensor<B, 4>| blocks.iter().fold(x, |x, block| block.forward(x));
        let c2 = run(&self.layer1, x);
        let c3 = run(&self.layer2, c2.clone());
        let c4 = run(&self.layer3, c3.clone());
        let c5 = run(&self.layer4, c4.clone());
        Features { c2, c3, c4, c5 }
    }

    /// Stops gradients through the stem and the first `stages` stages (layer1..layer4),
    /// like `CspBackbone::freeze_stages` (detectron2 freezes stem + layer1 by default).
    pub fn freeze_stages(mut self, stages: usize) -> Self {
        self.conv1 = self.conv1.no_grad();
        let freeze = |layer: Vec<Block<B>>| -> Vec<Block<B>> { layer.into_iter().map(Module::no_grad).collect() };
        if stages >= 1 {
            self.layer1 = freeze(self.layer1);
        }
        if stages >= 2 {
            self.layer2 = freeze(self.layer2);
        }
        if stages >= 3 {
            self.layer3 = freeze(self.layer3);
        }
        if stages >= 4 {
            self.layer4 = freeze(self.layer4);
        }
        self
    }

    /// The configuration this module was built with, read back from its structure.
    pub fn config(&self) -> ResNetConfig {
        ResNetConfig {
            blocks: [self.layer1.len(), self.layer2.len(), self.layer3.len(), self.layer4.len()],
            bottleneck: self.layer1.first().is_some_and(|b| b.conv3.is_some()),
            base_width: self.conv1.weight.lazy_shape()[0],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::TensorData;

    #[test]
    fn features_have_the_documented_strides_and_channels() {
        let device = Default::default();
        for depth in [ResNetDepth::R18, ResNetDepth::R50] {
            let config = ResNetConfig::new(depth).with_base_width(8).with_blocks([1, 2, 1, 1]);
            let model = config.init::<Flex>(&device);
            assert_eq!(model.config(), config);
            let f = model.forward(Tensor::zeros([1, 3, 64, 96], &device));
            let ch = config.channels();
            assert_eq!(f.c2.dims(), [1, ch.c2, 16, 24]);
            assert_eq!(f.c3.dims(), [1, ch.c3, 8, 12]);
            assert_eq!(f.c4.dims(), [1, ch.c4, 4, 6]);
            assert_eq!(f.c5.dims(), [1, ch.c5, 2, 3]);
        }
        let r18 = ResNet::<Flex>::channels(ResNetDepth::R18);
        let r50 = ResNet::<Flex>::channels(ResNetDepth::R50);
        assert_eq!([r18.c2, r18.c3, r18.c4, r18.c5], [64, 128, 256, 512]);
        assert_eq!([r50.c2, r50.c3, r50.c4, r50.c5], [256, 512, 1024, 2048]);
        assert_eq!(ResNetDepth::from_layers(34), Some(ResNetDepth::R34));
        assert_eq!(ResNetDepth::from_layers(101), None);
    }

    #[test]
    fn torchvision_parameter_counts() {
        // torchvision's resnet18 / resnet50 without fc (512·1000+1000, 2048·1000+1000),
        // counting BN running stats like the state_dict does (minus num_batches_tracked).
        let device = Default::default();
        let count = |depth| ResNetConfig::new(depth).init::<Flex>(&device).num_params();
        let bn_stats_18 = 2 * (64 + 2 * (2 * 64 + 2 * 128 + 2 * 256 + 2 * 512) + 128 + 256 + 512);
        assert_eq!(count(ResNetDepth::R18), 11_689_512 - 513_000 + bn_stats_18);
    }

    #[test]
    fn frozen_batch_norm_applies_the_stored_statistics() {
        let device = Default::default();
        let mut bn = FrozenBatchNorm2d::<Flex>::new(2, &device);
        let vector = |v: [f32; 2]| burn::module::Param::from_data(TensorData::from(v), &device);
        bn.weight = vector([2.0, 0.5]);
        bn.bias = vector([1.0, -1.0]);
        bn.running_mean = vector([3.0, -2.0]);
        bn.running_var = vector([4.0, 0.25]);
        let x = Tensor::<Flex, 4>::from_data(TensorData::new(vec![5.0f32, 0.0], [1, 2, 1, 1]), &device);
        let y: Vec<f32> = bn.forward(x).into_data().to_vec().unwrap();
        let eps = 1e-5f32;
        let expected = [(5.0 - 3.0) / (4.0 + eps).sqrt() * 2.0 + 1.0, (0.0 + 2.0) / (0.25 + eps).sqrt() * 0.5 - 1.0];
        for (a, b) in y.iter().zip(expected) {
            assert!((a - b).abs() < 1e-5, "{y:?} vs {expected:?}");
        }
    }

    #[test]
    fn batch_norm_and_frozen_stages_get_no_gradient_even_after_loading_a_record() {
        type B = Autodiff<Flex>;
        let device = Default::default();
        let config = ResNetConfig::new(ResNetDepth::R18).with_base_width(4).with_blocks([1, 1, 1, 1]);
        // A record whose BN tensors were not frozen must not unfreeze the receiver.
        let mut donor = config.init::<B>(&device);
        donor.bn1.weight = burn::module::Param::from_tensor(Tensor::ones([4], &device));
        let model = config.init::<B>(&device).load_record(donor.into_record()).freeze_stages(1);
        assert!(!model.bn1.weight.val().is_require_grad());

        let loss = model.forward(Tensor::ones([1, 3, 32, 32], &device)).c5.sum();
        let grads = loss.backward();
        assert!(model.conv1.weight.grad(&grads).is_none() && model.layer1[0].conv1.weight.grad(&grads).is_none());
        let block = &model.layer2[0];
        assert!(block.conv1.weight.grad(&grads).is_some());
        let (_, down_bn) = block.downsample.as_ref().expect("layer2 projects its shortcut");
        for bn in [&model.bn1, &block.bn1, down_bn] {
            for p in [&bn.weight, &bn.bias, &bn.running_mean, &bn.running_var] {
                assert!(p.grad(&grads).is_none());
            }
        }
    }
}
