//! Weight EMA, as YOLOv5/v8 keep it: an exponential moving average of the
//! network's weights, updated after every optimiser step, which evaluates
//! (and predicts) more smoothly than the raw weights late in training. When
//! `optim.ema_decay > 0` the trainer evaluates it, picks the best checkpoints
//! by it, and writes it next to the raw weights (`ema.mpk`), which inference prefers.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::trainee::flat_parameters;
use crate::model::TwinNet;

pub struct WeightEma<B: Backend> {
    pub net: TwinNet<B>,
    decay: f64,
}

impl<B: Backend> WeightEma<B> {
    pub fn new(net: TwinNet<B>, decay: f64) -> Self {
        Self { net, decay }
    }

    /// The decay after optimiser step `step` (1-based): TensorFlow's
    /// `min(decay, (1 + step) / (10 + step))`, so the average does not drag the
    /// random initial weights along early in a short run.
    pub fn decay_at(&self, step: usize) -> f64 {
        self.decay.min((1.0 + step as f64) / (10.0 + step as f64))
    }

    /// `ema ← d·ema + (1 − d)·current` for every parameter.
    pub fn update(&mut self, current: &TwinNet<B>, step: usize) {
        let keep = self.decay_at(step);
        let mut blend = Blend { current: flat_parameters(current).into_iter(), keep };
        self.net = self.net.clone().map(&mut blend);
    }
}

struct Blend<B: Backend> {
    current: std::vec::IntoIter<Tensor<B, 1>>,
    keep: f64,
}

impl<B: Backend> ModuleMapper<B> for Blend<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, average, mapper) = param.consume();
        // Both networks are built from the same config, so parameters pair up in order.
        let current = self.current.next().expect("the same network structure").reshape(average.shape());
        Param::from_mapped_value(id, average.mul_scalar(self.keep) + current.mul_scalar(1.0 - self.keep), mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelConfig, ModelSize};
    use crate::train::trainee::Trainee;
    use burn::backend::Flex;

    fn tiny(seed: u64) -> TwinNet<Flex> {
        let mut config = ModelConfig::new(ModelSize::N, 3, 4);
        config.width = Some(0.125);
        Trainee::<Flex>::seeded(&config, seed, &Default::default()).net
    }

    fn values(net: &TwinNet<Flex>) -> Vec<f32> {
        flat_parameters(net).into_iter().flat_map(|t| t.into_data().to_vec::<f32>().unwrap()).collect()
    }

    #[test]
    fn the_average_moves_towards_the_current_weights_by_one_minus_decay() {
        let (a, b) = (tiny(1), tiny(2));
        let mut ema = WeightEma::new(a.clone(), 0.9);
        assert_eq!(ema.decay_at(0), 0.1);
        assert_eq!(ema.decay_at(1000), 0.9);
        ema.update(&b, 1000);
        let (va, vb, ve) = (values(&a), values(&b), values(&ema.net));
        assert_eq!(ve.len(), va.len());
        let differing = va.iter().zip(&vb).filter(|(x, y)| x != y).count();
        assert!(differing > va.len() / 2, "two seeds give different weights");
        for ((x, y), e) in va.iter().zip(&vb).zip(&ve) {
            let expected = 0.9 * x + 0.1 * y;
            assert!((e - expected).abs() <= 1e-6 * expected.abs().max(1.0), "{e} vs {expected}");
        }
    }
}
