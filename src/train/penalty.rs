//! Elastic Weight Consolidation (Kirkpatrick et al.): a diagonal Fisher
//! estimate of how much each shared weight mattered to the first task, and the
//! quadratic penalty that holds important weights near their values at the switch.

use anyhow::{bail, Result};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor};

use super::trainee::{shared_gradients, shared_parameters};
use crate::model::TwinNet;

pub struct Ewc<B: AutodiffBackend> {
    /// Per shared tensor: the Fisher diagonal, normalised to mean 1 over all weights.
    fisher: Vec<Tensor<B::InnerBackend, 1>>,
    /// Per shared tensor: its value at the switch.
    anchor: Vec<Tensor<B::InnerBackend, 1>>,
    lambda: f32,
}

impl<B: AutodiffBackend> Ewc<B> {
    /// Squared gradients of each first-task batch loss, averaged. Normalising
    /// to mean 1 makes `lambda` independent of the loss scale and model size.
    pub fn estimate(snapshot: &TwinNet<B>, losses: Vec<Tensor<B, 1>>, lambda: f32) -> Result<Self> {
        let anchor: Vec<_> = shared_parameters(snapshot).into_iter().map(|p| p.inner()).collect();
        let mut fisher: Vec<Tensor<B::InnerBackend, 1>> = anchor.iter().map(|a| a.zeros_like()).collect();
        let batches = losses.len().max(1) as f32;
        for loss in losses {
            let grads = loss.backward();
            for (f, g) in fisher.iter_mut().zip(shared_gradients(snapshot, &grads)) {
                *f = f.clone() + g.powi_scalar(2).div_scalar(batches);
            }
        }
        let total: f32 = fisher.iter().map(|f| f.clone().sum().into_scalar().elem::<f32>()).sum();
        let count: usize = fisher.iter().map(|f| f.dims()[0]).sum();
        let mean = total / count.max(1) as f32;
        if !(mean > 0.0 && mean.is_finite()) {
            bail!("EWC: the first task's loss gives the shared weights no usable gradient (mean squared gradient {mean})");
        }
        let fisher = fisher.into_iter().map(|f| f.div_scalar(mean)).collect();
        Ok(Self { fisher, anchor, lambda })
    }

    /// `λ/2 · Σ F·(θ − θ*)²`: a weight of average importance is pulled back
    /// with force `λ·(θ − θ*)` whatever the model's size.
    pub fn penalty(&self, net: &TwinNet<B>) -> Tensor<B, 1> {
        let params = shared_parameters(net);
        let mut sum: Option<Tensor<B, 1>> = None;
        for ((p, f), a) in params.into_iter().zip(&self.fisher).zip(&self.anchor) {
            let term = (Tensor::<B, 1>::from_inner(f.clone()) * (p - Tensor::from_inner(a.clone())).powi_scalar(2)).sum();
            sum = Some(match sum {
                Some(s) => s + term,
                None => term,
            });
        }
        sum.expect("the network has shared weights").mul_scalar(self.lambda / 2.0)
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelConfig, ModelSize};
    use crate::train::trainee::Trainee;
    use burn::backend::{Autodiff, Flex};
    use burn::module::{Module, ModuleMapper, Param};
    use burn::tensor::Distribution;

    type B = Autodiff<Flex>;

    /// Adds `delta` to every float parameter.
    struct Shift(f32);

    impl ModuleMapper<B> for Shift {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, value, mapper) = param.consume();
            Param::from_mapped_value(id, value.add_scalar(self.0), mapper)
        }
    }

    #[test]
    fn the_penalty_is_zero_at_the_anchor_and_grows_as_lambda_half_delta_squared_per_weight() {
        let mut config = ModelConfig::new(ModelSize::N, 3, 4);
        config.width = Some(0.125);
        let device = Default::default();
        let net = Trainee::<B>::seeded(&config, 3, &device).net;
        let losses = (0..2)
            .map(|_| {
                let images = Tensor::<B, 4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
                net.forward_seg(images).powi_scalar(2).mean().reshape([1])
            })
            .collect();
        let lambda = 3.0;
        let ewc = Ewc::estimate(&net, losses, lambda).unwrap();
        let at_anchor = ewc.penalty(&net).into_scalar().elem::<f32>();
        assert!(at_anchor.abs() < 1e-9, "penalty at the anchor: {at_anchor}");
        // The Fisher is normalised to mean 1, so shifting every shared weight by
        // δ costs λ/2 · δ² · (number of shared weights).
        let delta = 0.01;
        let count: usize = shared_parameters(&net).iter().map(|p| p.dims()[0]).sum();
        let shifted = net.clone().map(&mut Shift(delta));
        let penalty = ewc.penalty(&shifted).into_scalar().elem::<f32>();
        let expected = lambda / 2.0 * delta * delta * count as f32;
        assert!((penalty - expected).abs() <= 1e-3 * expected, "{penalty} vs {expected}");
    }
}
