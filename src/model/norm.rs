//! GroupNorm's parameters, with the same names and types as burn's
//! `GroupNorm` (what the checkpoints of earlier runs recorded, so they load
//! unchanged), applied together with the SiLU that always follows it here
//! through [`TwinBackend`]'s fused op.

use burn::module::{Initializer, Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::backend::{self, TwinBackend};

/// Epsilon added to the variance (burn's and PyTorch's default).
const EPSILON: f64 = 1e-5;

/// GroupNorm with a learned per-channel scale γ and shift β.
#[derive(Module, Debug)]
pub struct GroupNorm<B: Backend> {
    pub gamma: Option<Param<Tensor<B, 1>>>,
    pub beta: Option<Param<Tensor<B, 1>>>,
    pub num_groups: usize,
    pub num_channels: usize,
    pub epsilon: f64,
    pub affine: bool,
}

impl<B: Backend> GroupNorm<B> {
    /// The key `group_statistics::record` files this layer's statistics under:
    /// its address, while the network is alive.
    pub fn statistics_key(&self) -> usize {
        self as *const Self as usize
    }

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

    /// Keeps only the channels `keep`: whole groups, so the group size stays.
    pub fn keep_channels(&mut self, keep: &[usize]) {
        let group_size = self.num_channels / self.num_groups;
        assert_eq!(keep.len() % group_size, 0, "pruning keeps whole groups of {group_size} channels");
        self.gamma = self.gamma.as_ref().map(|g| super::select::select(g, 0, keep));
        self.beta = self.beta.as_ref().map(|b| super::select::select(b, 0, keep));
        self.num_channels = keep.len();
        self.num_groups = keep.len() / group_size;
    }

    /// `silu(GroupNorm(x))`.
    pub fn forward_silu(&self, x: Tensor<B, 4>) -> Tensor<B, 4>
    where
        B: TwinBackend,
    {
        let channels = x.dims()[1];
        assert_eq!(channels, self.num_channels, "GroupNorm over {} channels got {channels}", self.num_channels);
        super::group_statistics::observe(self.statistics_key(), self.num_groups, &x);
        let device = x.device();
        let gamma = self.gamma.as_ref().map_or_else(|| Tensor::ones([channels], &device), |g| g.val());
        let beta = self.beta.as_ref().map_or_else(|| Tensor::zeros([channels], &device), |b| b.val());
        backend::group_norm_silu(x, gamma, beta, self.num_groups, self.epsilon)
    }
}

/// An inference-mode BatchNorm as one per-channel scale and shift
/// (`x · scale + shift`): scale = γ/√(σ² + ε), shift = β − μ·scale.
pub fn batch_norm_scale_shift<B: Backend>(
    weight: Tensor<B, 1>,
    bias: Tensor<B, 1>,
    running_mean: Tensor<B, 1>,
    running_var: Tensor<B, 1>,
    epsilon: f64,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let scale = weight * (running_var + epsilon).sqrt().recip();
    let shift = bias - running_mean * scale.clone();
    (scale, shift)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::group_norm;
    use burn::backend::{Autodiff, Flex};
    use burn::nn::GroupNormConfig;
    use burn::tensor::activation::silu;
    use burn::tensor::Distribution;

    type B = Autodiff<Flex>;

    /// |a − b| ≤ 1e-5·(1 + |b|) element-wise.
    fn assert_close(a: Tensor<Flex, 1>, b: Tensor<Flex, 1>, what: &str) {
        let excess: f32 = (a.clone() - b.clone()).abs().sub(b.clone().abs().add_scalar(1.0).mul_scalar(1e-5)).max().into_scalar();
        assert!(excess <= 0.0, "{what}: differs by more than 1e-5 (1 + |expected|), excess {excess}\n{a}\n{b}");
    }

    /// Forward output and every gradient (input, γ, β) equal those of burn's
    /// GroupNorm followed by SiLU with the same non-trivial γ, β, on inputs
    /// with a mean offset: the CPU backend's fused kernel under autodiff, and
    /// the tensor-op version every other backend runs.
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
            let expected = run(&|t| silu(reference.forward(t)), reference.gamma.as_ref().unwrap(), reference.beta.as_ref().unwrap());
            let (gamma, beta) = (ours.gamma.as_ref().unwrap(), ours.beta.as_ref().unwrap());
            let fused = run(&|t| ours.forward_silu(t), gamma, beta);
            let generic = run(&|t| group_norm::forward(t, gamma.val(), beta.val(), groups, 1e-5), gamma, beta);
            for (actual, kind) in [(fused, "fused"), (generic, "generic")] {
                for ((a, e), what) in actual.into_iter().zip(expected.clone()).zip(["output", "input grad", "gamma grad", "beta grad"]) {
                    assert_close(a, e, &format!("{kind} {what}"));
                }
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
        assert_close(loaded.forward_silu(x.clone()).flatten(0, 3), silu(saved.forward(x)).flatten(0, 3), "output after loading");
    }
}
