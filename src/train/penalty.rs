//! Elastic Weight Consolidation (Kirkpatrick et al.): a diagonal Fisher
//! estimate of how much each shared weight mattered to the first task, and the
//! quadratic penalty that holds important weights near their values at the switch.

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;

use super::trainee::shared_parameters;
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
    pub fn estimate(snapshot: &TwinNet<B>, losses: Vec<Tensor<B, 1>>, lambda: f32) -> Self {
        let params = shared_parameters(snapshot);
        let anchor: Vec<_> = params.iter().map(|p| p.clone().inner()).collect();
        let mut fisher: Vec<Tensor<B::InnerBackend, 1>> = anchor.iter().map(|a| a.zeros_like()).collect();
        let batches = losses.len().max(1) as f32;
        for loss in losses {
            let grads = loss.backward();
            for (f, p) in fisher.iter_mut().zip(&params) {
                if let Some(g) = p.grad(&grads) {
                    *f = f.clone() + g.powi_scalar(2).div_scalar(batches);
                }
            }
        }
        let total: f32 = fisher.iter().map(|f| f.clone().sum().into_scalar().elem::<f32>()).sum();
        let count: usize = fisher.iter().map(|f| f.dims()[0]).sum();
        let mean = (total / count.max(1) as f32).max(f32::MIN_POSITIVE);
        let fisher = fisher.into_iter().map(|f| f.div_scalar(mean)).collect();
        Self { fisher, anchor, lambda }
    }

    /// `λ/2 · mean over weights of F·(θ − θ*)²` (the mean keeps λ's scale independent of model size).
    pub fn penalty(&self, net: &TwinNet<B>) -> Tensor<B, 1> {
        let params = shared_parameters(net);
        let count: usize = self.anchor.iter().map(|a| a.dims()[0]).sum();
        let mut sum: Option<Tensor<B, 1>> = None;
        for ((p, f), a) in params.into_iter().zip(&self.fisher).zip(&self.anchor) {
            let term = (Tensor::<B, 1>::from_inner(f.clone()) * (p - Tensor::from_inner(a.clone())).powi_scalar(2)).sum();
            sum = Some(match sum {
                Some(s) => s + term,
                None => term,
            });
        }
        sum.expect("the network has shared weights").mul_scalar(self.lambda / 2.0 / count.max(1) as f32)
    }
}

use burn::tensor::ElementConversion;
