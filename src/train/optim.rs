//! The optimiser: AdamW or SGD with momentum, with two parameter groups (the
//! backbone at its own learning rate, everything else at the base rate), and
//! its state saved and restored for exact resume.

use std::path::Path;

use anyhow::{Context, Result};
use burn::module::list_param_ids;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamW, AdamWConfig, GradientsParams, Optimizer, Sgd, SgdConfig};
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;

use super::config::{OptimConfig, OptimizerKind};
use super::parallel::Replica;
use super::trainee::Trainee;

enum Inner<B: AutodiffBackend> {
    AdamW(OptimizerAdaptor<AdamW, Trainee<B>, B>),
    Sgd(OptimizerAdaptor<Sgd<B::InnerBackend>, Trainee<B>, B>),
}

impl<B: AutodiffBackend> Inner<B> {
    fn new(config: &OptimConfig) -> Self {
        let clip = (config.grad_clip > 0.0).then(|| burn::grad_clipping::GradientClippingConfig::Norm(config.grad_clip));
        match config.optimizer {
            OptimizerKind::Adamw => Inner::AdamW(
                AdamWConfig::new().with_weight_decay(config.weight_decay as f32).with_grad_clipping(clip).init(),
            ),
            OptimizerKind::Sgd => Inner::Sgd(
                SgdConfig::new()
                    .with_weight_decay(Some(WeightDecayConfig::new(config.weight_decay as f32)))
                    .with_momentum(Some(MomentumConfig::new().with_momentum(config.momentum).with_dampening(0.0)))
                    .with_gradient_clipping(clip)
                    .init(),
            ),
        }
    }

    fn step(&mut self, lr: f64, trainee: Trainee<B>, grads: GradientsParams) -> Trainee<B> {
        match self {
            Inner::AdamW(o) => o.step(lr, trainee, grads),
            Inner::Sgd(o) => o.step(lr, trainee, grads),
        }
    }

    fn save(&self, path: &Path) -> Result<()> {
        let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
        match self {
            Inner::AdamW(o) => Recorder::<B>::record(&recorder, o.to_record(), path.to_path_buf()),
            Inner::Sgd(o) => Recorder::<B>::record(&recorder, o.to_record(), path.to_path_buf()),
        }
        .with_context(|| format!("{}: cannot write optimiser state", path.display()))
    }

    fn load(self, path: &Path, device: &B::Device) -> Result<Self> {
        let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
        let context = || format!("{}: cannot read optimiser state", path.display());
        Ok(match self {
            Inner::AdamW(o) => Inner::AdamW(o.load_record(recorder.load(path.to_path_buf(), device).with_context(context)?)),
            Inner::Sgd(o) => Inner::Sgd(o.load_record(recorder.load(path.to_path_buf(), device).with_context(context)?)),
        })
    }
}

/// Two optimisers over disjoint parameter groups.
pub struct TwinOptimizer<B: AutodiffBackend> {
    backbone: Inner<B>,
    rest: Inner<B>,
    backbone_lr_factor: f64,
}

impl<B: AutodiffBackend> TwinOptimizer<B> {
    pub fn new(config: &OptimConfig) -> Self {
        Self { backbone: Inner::new(config), rest: Inner::new(config), backbone_lr_factor: config.backbone_lr_factor }
    }

    /// One update from the gradients of `loss.backward()`; in a data-parallel
    /// run from their mean over the replicas, so every replica steps alike.
    pub fn step(
        &mut self,
        lr: f64,
        trainee: Trainee<B>,
        grads: B::Gradients,
        replica: Option<&mut Replica<B::InnerBackend>>,
    ) -> Result<Trainee<B>> {
        let mut grads = GradientsParams::from_grads(grads, &trainee);
        if let Some(replica) = replica {
            replica.mean_gradients::<B, _>(&trainee, &mut [&mut grads])?;
        }
        Ok(self.step_params(lr, trainee, grads))
    }

    /// One step from gradients already gathered per parameter (and already
    /// averaged over the replicas, in a data-parallel run).
    pub fn step_params(&mut self, lr: f64, trainee: Trainee<B>, mut grads: GradientsParams) -> Trainee<B> {
        let mut backbone = GradientsParams::new();
        for id in list_param_ids(&trainee.net.backbone) {
            // The rank is the stored tensor's own; `1` only names the type.
            if let Some(grad) = grads.remove::<B::InnerBackend, 1>(id) {
                backbone.register::<B::InnerBackend, 1>(id, grad);
            }
        }
        let trainee = self.backbone.step(lr * self.backbone_lr_factor, trainee, backbone);
        self.rest.step(lr, trainee, grads)
    }

    /// Writes `optim-backbone.bin` and `optim-rest.bin` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.backbone.save(&dir.join("optim-backbone"))?;
        self.rest.save(&dir.join("optim-rest"))
    }

    pub fn load(self, dir: &Path, device: &B::Device) -> Result<Self> {
        Ok(Self {
            backbone: self.backbone.load(&dir.join("optim-backbone"), device)?,
            rest: self.rest.load(&dir.join("optim-rest"), device)?,
            backbone_lr_factor: self.backbone_lr_factor,
        })
    }
}
