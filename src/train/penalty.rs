//! Elastic Weight Consolidation (Kirkpatrick et al.): a diagonal Fisher
//! estimate of how much each shared weight mattered to each earlier task, and
//! the quadratic penalty that holds important weights near their values at the switch.

use anyhow::{bail, Result};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor};

use super::trainee::{shared_gradients, shared_parameters};
use crate::model::{Task, TwinNet};

pub struct Ewc<B: AutodiffBackend> {
    /// Per shared tensor: the sum over the earlier tasks of each task's Fisher
    /// diagonal, normalised to mean 1 over all weights.
    fisher: Vec<Tensor<B::InnerBackend, 1>>,
    /// Per shared tensor: its value at the switch.
    anchor: Vec<Tensor<B::InnerBackend, 1>>,
    lambda: f32,
}

impl<B: AutodiffBackend> Ewc<B> {
    /// Per earlier task, the squared gradients of its batch losses, averaged
    /// over its count of batches. Normalising each task's estimate to mean 1 makes `lambda` independent
    /// of the loss scale and model size, and gives every earlier task the same
    /// say (EWC's one penalty per task, the anchors all at the latest switch).
    /// A data-parallel replica passes its share of the batches, and
    /// `sum_replicas` sums the replicas' partial estimates.
    pub fn estimate(
        snapshot: &TwinNet<B>,
        losses: Vec<(Task, usize, Vec<Tensor<B, 1>>)>,
        lambda: f32,
        sum_replicas: &mut dyn FnMut(Vec<Tensor<B::InnerBackend, 1>>) -> Result<Vec<Tensor<B::InnerBackend, 1>>>,
    ) -> Result<Self> {
        let anchor: Vec<_> = shared_parameters(snapshot).into_iter().map(|p| p.inner()).collect();
        let mut fisher: Option<Vec<Tensor<B::InnerBackend, 1>>> = None;
        for (task, batches, losses) in losses {
            let mut estimate: Vec<Tensor<B::InnerBackend, 1>> = anchor.iter().map(|a| a.zeros_like()).collect();
            let batches = batches.max(1) as f32;
            for loss in losses {
                let grads = loss.backward();
                for (f, g) in estimate.iter_mut().zip(shared_gradients(snapshot, &grads)) {
                    *f = f.clone() + g.powi_scalar(2).div_scalar(batches);
                }
            }
            let estimate = sum_replicas(estimate)?;
            let total: f32 = estimate.iter().map(|f| f.clone().sum().into_scalar().elem::<f32>()).sum();
            let count: usize = estimate.iter().map(|f| f.dims()[0]).sum();
            let mean = total / count.max(1) as f32;
            if !(mean > 0.0 && mean.is_finite()) {
                bail!("EWC: the {task} loss gives the shared weights no usable gradient (mean squared gradient {mean})");
            }
            let normalised = estimate.into_iter().map(|f| f.div_scalar(mean));
            fisher = Some(match fisher {
                None => normalised.collect(),
                Some(sum) => sum.into_iter().zip(normalised).map(|(a, b)| a + b).collect(),
            });
        }
        let Some(fisher) = fisher else {
            bail!("EWC: no earlier task to protect");
        };
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
        let images = || Tensor::<B, 4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let losses_of = |net: &TwinNet<B>| (0..2).map(|_| net.forward_seg(images()).powi_scalar(2).mean().reshape([1])).collect::<Vec<_>>();
        let det_loss = |net: &TwinNet<B>| net.forward_det(images()).cls_logits.powi_scalar(2).mean().reshape([1]);
        let lambda = 3.0;
        let ewc = Ewc::estimate(&net, vec![(Task::Seg, 2, losses_of(&net))], lambda, &mut Ok).unwrap();
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
        // Two earlier tasks: each has its say, so the same shift costs twice as much.
        let two = Ewc::estimate(&net, vec![(Task::Seg, 2, losses_of(&net)), (Task::Det, 1, vec![det_loss(&net)])], lambda, &mut Ok).unwrap();
        let penalty = two.penalty(&shifted).into_scalar().elem::<f32>();
        assert!((penalty - 2.0 * expected).abs() <= 2e-3 * expected, "{penalty} vs {}", 2.0 * expected);
    }
}
