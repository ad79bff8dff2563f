//! GroupNorm followed by SiLU, forward and backward, written with burn's
//! tensor ops: what every backend without a fused kernel runs.
//!
//! The group statistics are contiguous row reductions over `[N·G, C/G·H·W]`;
//! γ, β, the mean and 1/σ fold into one scale and shift per (sample,
//! channel), applied over `[N, C, H·W]` with `[N, C, 1]` operands (on the CPU
//! backend a per-row scalar, its SIMD fast path; on a GPU, fewer kernels).
//!
//! Backward, with `z = x̂·γ + β`, `y = z·sigmoid(z)` and `x̂ = (x − μ)/σ` per group:
//! `dz = dy·s·(1 + z·(1 − s))`, `dβ = Σ dz`, `dγ = Σ dz·x̂` (over samples and
//! pixels), and `dx = (g − mean(g) − x̂·mean(g·x̂)) / σ` with `g = dz·γ`, the
//! means over each group.

use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};

/// Per-group mean and 1/σ of `x` `[N, C, H, W]`, each `[N·G, 1]`.
fn statistics<B: Backend>(x: &Tensor<B, 4>, groups: usize, epsilon: f64) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let [n, c, h, w] = x.dims();
    let count = (c / groups * h * w) as f64;
    let rows = x.clone().reshape([n * groups, c / groups * h * w]);
    let mean = rows.clone().sum_dim(1).div_scalar(count);
    // Var = E[x²] − E[x]² in one pass: the convolution outputs normalised here
    // have |mean| well below 10³·σ, where f32 keeps the variance exact enough.
    let mean_sq = rows.square().sum_dim(1).div_scalar(count);
    let var = (mean_sq - mean.clone().square()).clamp_min(0.0);
    (mean, var.add_scalar(epsilon).sqrt().recip())
}

/// `[N·G, 1]` per group → `[N, C, 1]` per channel.
fn per_channel<B: Backend>(t: Tensor<B, 2>, n: usize, c: usize, groups: usize) -> Tensor<B, 3> {
    t.reshape([n, groups, 1]).expand([n, groups, c / groups]).reshape([n, c, 1])
}

/// `x̂·γ + β` over `[N, C, H·W]`, and the per-channel scale 1/σ and shift −μ/σ that make x̂.
fn normalise<B: Backend>(
    x: &Tensor<B, 4>,
    gamma: &Tensor<B, 1>,
    beta: &Tensor<B, 1>,
    groups: usize,
    epsilon: f64,
) -> (Tensor<B, 3>, Tensor<B, 3>, Tensor<B, 3>) {
    let [n, c, h, w] = x.dims();
    let (mean, inv_std) = statistics(x, groups, epsilon);
    let inv_std = per_channel(inv_std, n, c, groups);
    let shift = per_channel(mean, n, c, groups).neg() * inv_std.clone();
    let gamma = gamma.clone().reshape([1, c, 1]);
    let scale = inv_std.clone() * gamma.clone();
    let z_shift = shift.clone() * gamma + beta.clone().reshape([1, c, 1]);
    let z = x.clone().reshape([n, c, h * w]) * scale + z_shift;
    (z, inv_std, shift)
}

pub fn forward<B: Backend>(x: Tensor<B, 4>, gamma: Tensor<B, 1>, beta: Tensor<B, 1>, groups: usize, epsilon: f64) -> Tensor<B, 4> {
    let shape = x.dims();
    let (z, _, _) = normalise(&x, &gamma, &beta, groups, epsilon);
    (z.clone() * sigmoid(z)).reshape(shape)
}

/// Gradients with respect to x, γ and β.
pub fn backward<B: Backend>(
    x: Tensor<B, 4>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    groups: usize,
    epsilon: f64,
    output_grad: Tensor<B, 4>,
) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>) {
    let [n, c, h, w] = x.dims();
    let (z, inv_std, shift) = normalise(&x, &gamma, &beta, groups, epsilon);
    let s = sigmoid(z.clone());
    let dz = output_grad.reshape([n, c, h * w]) * s.clone() * (z * (s.neg().add_scalar(1.0))).add_scalar(1.0);
    let x_hat = x.reshape([n, c, h * w]) * inv_std.clone() + shift;
    let d_beta = dz.clone().sum_dim(2).sum_dim(0).reshape([c]);
    let d_gamma = (dz.clone() * x_hat.clone()).sum_dim(2).sum_dim(0).reshape([c]);

    let g = dz * gamma.reshape([1, c, 1]);
    let group_mean = |t: Tensor<B, 3>| per_channel(t.reshape([n * groups, c / groups * h * w]).mean_dim(1), n, c, groups);
    let mean_g = group_mean(g.clone());
    let mean_g_x_hat = group_mean(g.clone() * x_hat.clone());
    let dx = (g - mean_g - x_hat * mean_g_x_hat) * inv_std;
    (dx.reshape([n, c, h, w]), d_gamma, d_beta)
}

pub(super) fn tensor<B: Backend, const D: usize>(t: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

/// [`forward`] on a backend's primitives (what `TwinBackend` passes around).
pub fn forward_primitives<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    groups: usize,
    epsilon: f64,
) -> FloatTensor<B> {
    forward::<B>(tensor(x), tensor(gamma), tensor(beta), groups, epsilon).into_primitive().tensor()
}

/// [`backward`] on a backend's primitives: `[dx, dγ, dβ]`.
pub fn backward_primitives<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    groups: usize,
    epsilon: f64,
    output_grad: FloatTensor<B>,
) -> [FloatTensor<B>; 3] {
    let (dx, d_gamma, d_beta) = backward::<B>(tensor(x), tensor(gamma), tensor(beta), groups, epsilon, tensor(output_grad));
    [dx.into_primitive().tensor(), d_gamma.into_primitive().tensor(), d_beta.into_primitive().tensor()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::Distribution;

    type A = Autodiff<Flex>;

    /// The explicit backward equals autodiff through the forward's ops.
    #[test]
    fn backward_equals_autodiff_of_the_forward() {
        let device = Default::default();
        let (shape, groups) = ([2, 8, 5, 3], 4);
        let x = Tensor::<Flex, 4>::random(shape, Distribution::Normal(0.3, 1.5), &device);
        let gamma = Tensor::<Flex, 1>::random([8], Distribution::Uniform(0.5, 1.5), &device);
        let beta = Tensor::<Flex, 1>::random([8], Distribution::Normal(0.0, 0.5), &device);
        let dy = Tensor::<Flex, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device);

        let (xa, ga, ba) = (
            Tensor::<A, 4>::from_inner(x.clone()).require_grad(),
            Tensor::<A, 1>::from_inner(gamma.clone()).require_grad(),
            Tensor::<A, 1>::from_inner(beta.clone()).require_grad(),
        );
        let y = forward(xa.clone(), ga.clone(), ba.clone(), groups, 1e-5);
        let grads = (y * Tensor::from_inner(dy.clone())).sum().backward();
        let (dx, dg, db) = backward(x, gamma, beta, groups, 1e-5, dy);
        let diff = |a: Tensor<Flex, 1>, b: Tensor<Flex, 1>| -> f32 { (a - b).abs().max().into_scalar() };
        assert!(diff(dx.flatten(0, 3), xa.grad(&grads).unwrap().flatten(0, 3)) < 1e-5);
        assert!(diff(dg, ga.grad(&grads).unwrap()) < 1e-5);
        assert!(diff(db, ba.grad(&grads).unwrap()) < 1e-5);
    }
}
