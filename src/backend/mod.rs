//! The backends Twinhead runs on, extended with kernels of its own.
//!
//! burn 0.21's CPU backend computes a convolution's gradients through generic
//! fallbacks: the input gradient as a single-threaded transposed convolution,
//! the weight gradient as a convolution over transposed (strided, copied
//! element by element) views. Together they cost more than the forward pass.
//! [`TwinBackend`] is burn's backend-extension mechanism: ops whose default is
//! burn's own kernel (what every GPU backend uses), overridden for the CPU
//! backend by im2col + GEMM kernels parallel over the batch (`cpu_conv`), and
//! for autodiff by a backward step that calls the inner backend's gradients
//! (`autodiff`).

mod autodiff;
mod cpu_conv;

use burn::backend::Flex;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::{ConvOptions, FloatTensor, ModuleOps};
use burn::tensor::{Tensor, TensorPrimitive};

/// A backend with Twinhead's kernels (burn's own where it has none better).
pub trait TwinBackend: Backend {
    /// 2-D convolution without bias.
    fn twin_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        Self::conv2d(x, weight, None, options)
    }

    /// The gradient of [`Self::twin_conv2d`] with respect to its input.
    fn twin_conv2d_x_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_x_backward(x, weight, output_grad, options)
    }

    /// The gradient of [`Self::twin_conv2d`] with respect to its weight.
    fn twin_conv2d_weight_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_weight_backward(x, weight, output_grad, options)
    }
}

/// A backend the trainer differentiates through: autodiff over a [`TwinBackend`].
pub trait TwinAutodiffBackend: AutodiffBackend<InnerBackend: TwinBackend> + TwinBackend {}

impl<B> TwinAutodiffBackend for B where B: AutodiffBackend<InnerBackend: TwinBackend> + TwinBackend {}

impl TwinBackend for Flex {
    fn twin_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        match cpu_conv::supported(&x, &weight, &options) {
            true => cpu_conv::conv2d(x, weight, &options),
            false => Self::conv2d(x, weight, None, options),
        }
    }

    fn twin_conv2d_x_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        match cpu_conv::supported(&x, &weight, &options) {
            true => cpu_conv::conv2d_x_backward(x, weight, output_grad, &options),
            false => Self::conv2d_x_backward(x, weight, output_grad, options),
        }
    }

    fn twin_conv2d_weight_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        match cpu_conv::supported(&x, &weight, &options) {
            true => cpu_conv::conv2d_weight_backward(x, weight, output_grad, &options),
            false => Self::conv2d_weight_backward(x, weight, output_grad, options),
        }
    }
}

#[cfg(feature = "cuda")]
impl TwinBackend for burn::backend::Cuda {}

/// 2-D convolution without bias through [`TwinBackend::twin_conv2d`].
pub fn conv2d<B: TwinBackend>(x: Tensor<B, 4>, weight: Tensor<B, 4>, options: ConvOptions<2>) -> Tensor<B, 4> {
    let output = B::twin_conv2d(x.into_primitive().tensor(), weight.into_primitive().tensor(), options);
    Tensor::from_primitive(TensorPrimitive::Float(output))
}
