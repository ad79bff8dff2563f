//! Group normalisation arranged for the backends: the same maths, parameters
//! and checkpoint names as `burn::nn::GroupNorm` (old runs load unchanged),
//! computed with memory walks that the CPU backend vectorises.
//!
//! `burn::nn::GroupNorm` applies γ and β as `x · γ[1, C, 1, 1] + β` over
//! `[N, C, H, W]`, a broadcast that burn-flex walks one element at a time,
//! forwards and in the backward pass. Here the group statistics are
//! contiguous row reductions over `[N·G, C/G·H·W]`, and γ, β, the mean and
//! 1/σ fold into one scale and shift per (sample, channel), applied as one
//! multiply and one add over `[N, C, H·W]` with `[N, C, 1]` operands: a
//! per-row scalar, flex's SIMD fast path, and fewer kernels on a GPU.

use burn::module::{Initializer, Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// Epsilon added to the variance (burn's and PyTorch's default).
const EPSILON: f64 = 1e-5;

/// GroupNorm with a learned per-channel scale γ and shift β.
#[derive(Module, Debug)]
pub struct GroupNorm<B: Backend> {
    // Field names and types are burn's `GroupNorm`'s, which is what the
    // checkpoints of earlier runs recorded.
    pub gamma: Option<Param<Tensor<B, 1>>>,
    pub beta: Option<Param<Tensor<B, 1>>>,
    pub num_groups: usize,
    pub num_channels: usize,
    pub epsilon: f64,
    pub affine: bool,
}

impl<B: Backend> GroupNorm<B> {
    pub fn new(num_groups: usize, num_channels: usize, device: &B::Device) -> Self {
        assert_eq!(num_channels % num_groups, 0, "{num_groups} groups must divide {num_channels} channels");
        Self {
            gamma: Some(Initializer::Ones.init([num_channels], device)),
            beta: Some(Initializer::Zeros.init([num_channels], device)),
            num_groups,
            num_channels,
            epsilon: EPSILON,
            affine: true,
        }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, c, h, w] = x.dims();
        assert_eq!(c, self.num_channels, "GroupNorm over {} channels got {c}", self.num_channels);
        let g = self.num_groups;
        let per_group = c / g;
        let count = (per_group * h * w) as f64;

        // Statistics: two contiguous row sums. Var = E[x²] − E[x]² in one pass
        // (the conv outputs normalised here have |mean| ≪ σ·10³, where f32 loses nothing that matters).
        let rows = x.clone().reshape([n * g, per_group * h * w]);
        let mean = rows.clone().sum_dim(1).div_scalar(count);
        let mean_sq = rows.square().sum_dim(1).div_scalar(count);
        let var = (mean_sq - mean.clone().square()).clamp_min(0.0);
        let inv_std = var.add_scalar(self.epsilon).sqrt().recip();

        // Per (sample, channel): scale = γ/σ, shift = β − mean·γ/σ. Small tensors.
        let per_channel = |t: Tensor<B, 2>| t.reshape([n, g, 1]).expand([n, g, per_group]).reshape([n, c]);
        let (scale, shift) = match (&self.gamma, &self.beta) {
            (Some(gamma), Some(beta)) => {
                let scale = per_channel(inv_std) * gamma.val().reshape([1, c]);
                let shift = beta.val().reshape([1, c]) - per_channel(mean) * scale.clone();
                (scale, shift)
            }
            _ => {
                let scale = per_channel(inv_std);
                let shift = per_channel(mean).neg() * scale.clone();
                (scale, shift)
            }
        };
        let y = x.reshape([n, c, h * w]) * scale.reshape([n, c, 1]) + shift.reshape([n, c, 1]);
        y.reshape([n, c, h, w])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::nn::GroupNormConfig;
    use burn::tensor::Distribution;

    type B = Autodiff<Flex>;

    /// |a − b| ≤ 1e-5·(1 + |b|) element-wise.
    fn assert_close(a: Tensor<Flex, 1>, b: Tensor<Flex, 1>, what: &str) {
        let excess: f32 = (a.clone() - b.clone()).abs().sub(b.clone().abs().add_scalar(1.0).mul_scalar(1e-5)).max().into_scalar();
        assert!(excess <= 0.0, "{what}: differs by more than 1e-5 (1 + |expected|), excess {excess}\n{a}\n{b}");
    }

    /// Forward output and every gradient (input, γ, β) equal burn's GroupNorm's
    /// with the same non-trivial γ, β, on inputs with a mean offset.
    #[test]
    fn equals_burn_group_norm_forward_and_backward() {
        let device = Default::default();
        for (shape, groups) in [([2, 8, 5, 7], 2), ([3, 12, 4, 4], 3), ([1, 16, 9, 3], 16), ([2, 4, 6, 6], 1)] {
            let [_, c, _, _] = shape;
            let mut reference = GroupNormConfig::new(groups, c).init::<B>(&device);
            let gamma = Tensor::<B, 1>::random([c], Distribution::Uniform(0.5, 1.5), &device);
            let beta = Tensor::<B, 1>::random([c], Distribution::Normal(0.0, 0.5), &device);
            reference.gamma = Some(Param::from_tensor(gamma.clone()));
            reference.beta = Some(Param::from_tensor(beta.clone()));
            let mut ours = GroupNorm::<B>::new(groups, c, &device);
            ours.gamma = Some(Param::from_tensor(gamma));
            ours.beta = Some(Param::from_tensor(beta));
            let x = Tensor::<Flex, 4>::random(shape, Distribution::Normal(0.7, 2.0), &device);
            // A fixed random upstream gradient, so every output element matters.
            let upstream = Tensor::<B, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device);

            let run = |forward: &dyn Fn(Tensor<B, 4>) -> Tensor<B, 4>, gamma: &Param<Tensor<B, 1>>, beta: &Param<Tensor<B, 1>>| {
                let input = Tensor::<B, 4>::from_inner(x.clone()).require_grad();
                let y = forward(input.clone());
                let grads = (y.clone() * upstream.clone()).sum().backward();
                [
                    y.inner().flatten(0, 3),
                    input.grad(&grads).unwrap().flatten(0, 3),
                    gamma.val().grad(&grads).unwrap(),
                    beta.val().grad(&grads).unwrap(),
                ]
            };
            let expected = run(&|t| reference.forward(t), reference.gamma.as_ref().unwrap(), reference.beta.as_ref().unwrap());
            let actual = run(&|t| ours.forward(t), ours.gamma.as_ref().unwrap(), ours.beta.as_ref().unwrap());
            for ((a, e), what) in actual.into_iter().zip(expected).zip(["output", "input grad", "gamma grad", "beta grad"]) {
                assert_close(a, e, what);
            }
        }
    }

    /// A GroupNorm saved by earlier runs (burn's module) loads into this one
    /// and computes the same output.
    #[test]
    fn loads_the_records_of_burn_group_norm() {
        use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
        let device = Default::default();
        let mut saved = GroupNormConfig::new(4, 8).init::<Flex>(&device);
        saved.gamma = Some(Param::from_tensor(Tensor::random([8], Distribution::Uniform(0.5, 1.5), &device)));
        saved.beta = Some(Param::from_tensor(Tensor::random([8], Distribution::Normal(0.0, 1.0), &device)));
        let dir = tempfile::tempdir().unwrap();
        let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        saved.clone().save_file(dir.path().join("norm"), &recorder).unwrap();
        let loaded = GroupNorm::<Flex>::new(4, 8, &device).load_file(dir.path().join("norm"), &recorder, &device).unwrap();
        let x = Tensor::<Flex, 4>::random([2, 8, 3, 3], Distribution::Normal(0.0, 1.0), &device);
        assert_close(loaded.forward(x.clone()).flatten(0, 3), saved.forward(x).flatten(0, 3), "output after loading");
    }
}
