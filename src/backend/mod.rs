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
//! (`autodiff`). GroupNorm + SiLU, the other half of every `ConvNormAct`, is
//! one such op too: burn-flex runs element-wise ops on one thread, a
//! broadcast at a time; the fused kernel makes two passes over each group,
//! all groups in parallel (`cpu_group_norm`; `group_norm` is the version in
//! burn's tensor ops every other backend runs).

mod autodiff;
mod cpu_conv;
mod cpu_group_norm;
pub mod group_norm;

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

    /// GroupNorm with per-channel γ, β over `groups` groups, then SiLU.
    fn twin_group_norm_silu(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        group_norm::forward::<Self>(float(x), float(gamma), float(beta), groups, epsilon).into_primitive().tensor()
    }

    /// The gradients of [`Self::twin_group_norm_silu`] with respect to x, γ and β.
    fn twin_group_norm_silu_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
        output_grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3] {
        let (dx, d_gamma, d_beta) =
            group_norm::backward::<Self>(float(x), float(gamma), float(beta), groups, epsilon, float(output_grad));
        [dx.into_primitive().tensor(), d_gamma.into_primitive().tensor(), d_beta.into_primitive().tensor()]
    }
}

fn float<B: Backend, const D: usize>(t: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
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

    fn twin_group_norm_silu(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        match cpu_group_norm::supported(&[&x, &gamma, &beta]) {
            true => cpu_group_norm::forward(x, gamma, beta, groups, epsilon),
            false => group_norm::forward::<Self>(float(x), float(gamma), float(beta), groups, epsilon).into_primitive().tensor(),
        }
    }

    fn twin_group_norm_silu_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
        output_grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3] {
        if !cpu_group_norm::supported(&[&x, &gamma, &beta, &output_grad]) {
            let (dx, dg, db) = group_norm::backward::<Self>(float(x), float(gamma), float(beta), groups, epsilon, float(output_grad));
            return [dx.into_primitive().tensor(), dg.into_primitive().tensor(), db.into_primitive().tensor()];
        }
        let (dx, d_gamma, d_beta) = cpu_group_norm::backward(x, gamma, beta, groups, epsilon, output_grad);
        [dx, d_gamma, d_beta]
    }
}

#[cfg(feature = "cuda")]
impl TwinBackend for burn::backend::Cuda {}

/// GroupNorm then SiLU through [`TwinBackend::twin_group_norm_silu`].
pub fn group_norm_silu<B: TwinBackend>(
    x: Tensor<B, 4>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    groups: usize,
    epsilon: f64,
) -> Tensor<B, 4> {
    let [x, gamma, beta] = [x.into_primitive().tensor(), gamma.into_primitive().tensor(), beta.into_primitive().tensor()];
    float(B::twin_group_norm_silu(x, gamma, beta, groups, epsilon))
}

/// 2-D convolution without bias through [`TwinBackend::twin_conv2d`].
pub fn conv2d<B: TwinBackend>(x: Tensor<B, 4>, weight: Tensor<B, 4>, options: ConvOptions<2>) -> Tensor<B, 4> {
    let output = B::twin_conv2d(x.into_primitive().tensor(), weight.into_primitive().tensor(), options);
    Tensor::from_primitive(TensorPrimitive::Float(output))
}
