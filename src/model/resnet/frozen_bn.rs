//! BatchNorm with frozen statistics and affine parameters (detectron2's FrozenBatchNorm2d).

use burn::module::{Module, Param, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::model::norm::batch_norm_scale_shift;

/// torchvision's BatchNorm2d epsilon.
const EPS: f64 = 1e-5;

/// `y = (x - running_mean) / sqrt(running_var + eps) * weight + bias`, all four constant.
///
/// Why frozen: torchvision's statistics are ImageNet statistics, and this network
/// is trained on batches drawn from one task at a time, which would drag live
/// BatchNorm statistics back and forth between VOC and ADE20K. The affine
/// parameters are frozen too, as in detectron2's ResNet backbones.
///
/// How it stays frozen: all four tensors are `Param`s (so checkpoints and records
/// map 1:1 onto torchvision's `bnX.{weight,bias,running_mean,running_var}` keys)
/// created without `require_grad`. They get no gradient, so optimisers skip them,
/// and loading (`load_record`, burn-store's `apply`) goes through
/// `Param::transform_for_load`, which keeps the receiving parameter's
/// `require_grad = false` whatever the loaded tensor was.
#[derive(Module, Debug)]
pub struct FrozenBatchNorm2d<B: Backend> {
    pub weight: Param<Tensor<B, 1>>,
    pub bias: Param<Tensor<B, 1>>,
    pub running_mean: Param<Tensor<B, 1>>,
    pub running_var: Param<Tensor<B, 1>>,
}

impl<B: Backend> FrozenBatchNorm2d<B> {
    /// The identity transform (up to eps) until weights are loaded.
    pub fn new(channels: usize, device: &B::Device) -> Self {
        let constant = |t: Tensor<B, 1>| Param::initialized(ParamId::new(), t.set_require_grad(false));
        Self {
            weight: constant(Tensor::ones([channels], device)),
            bias: constant(Tensor::zeros([channels], device)),
            running_mean: constant(Tensor::zeros([channels], device)),
            running_var: constant(Tensor::ones([channels], device)),
        }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let (scale, shift) = self.scale_shift();
        let [channels] = scale.dims();
        x * scale.reshape([1, channels, 1, 1]) + shift.reshape([1, channels, 1, 1])
    }

    /// The four vectors folded into one per-channel scale and shift (two
    /// broadcast ops on x): the normalisation is `x · scale + shift`.
    pub fn scale_shift(&self) -> (Tensor<B, 1>, Tensor<B, 1>) {
        batch_norm_scale_shift(self.weight.val(), self.bias.val(), self.running_mean.val(), self.running_var.val(), EPS)
    }
}
