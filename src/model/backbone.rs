//! CSP backbone (YOLOv8-style C2f stages) returning features at strides 4, 8, 16 and 32.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::blocks::{ConvNormAct, Sppf, C2f};
use super::config::ModelConfig;
use super::resnet::{ResNet, ResNetConfig};
use crate::backend::TwinBackend;

use super::reshape::{join, Consumer, EditableLayers, PrunableLayer};
use super::features::{FeatureChannels, Features};

#[derive(Module, Debug)]
pub struct CspBackbone<B: Backend> {
    pub(crate) stem: ConvNormAct<B>,
    pub(crate) down2: ConvNormAct<B>,
    pub(crate) stage2: C2f<B>,
    pub(crate) down3: ConvNormAct<B>,
    pub(crate) stage3: C2f<B>,
    pub(crate) down4: ConvNormAct<B>,
    pub(crate) stage4: C2f<B>,
    pub(crate) down5: ConvNormAct<B>,
    pub(crate) stage5: C2f<B>,
    pub(crate) sppf: Sppf<B>,
}

impl<B: Backend> CspBackbone<B> {
    pub fn channels(config: &ModelConfig) -> FeatureChannels {
        FeatureChannels {
            c2: config.channels(128),
            c3: config.channels(256),
            c4: config.channels(512),
            c5: config.channels(1024),
        }
    }

    pub fn new(config: &ModelConfig, device: &B::Device) -> Self {
        let stem = config.channels(64);
        let ch = Self::channels(config);
        Self {
            stem: ConvNormAct::new(3, stem, 3, 2, device),
            down2: ConvNormAct::new(stem, ch.c2, 3, 2, device),
            stage2: C2f::new(ch.c2, ch.c2, config.depth(3), true, device),
            down3: ConvNormAct::new(ch.c2, ch.c3, 3, 2, device),
            stage3: C2f::new(ch.c3, ch.c3, config.depth(6), true, device),
            down4: ConvNormAct::new(ch.c3, ch.c4, 3, 2, device),
            stage4: C2f::new(ch.c4, ch.c4, config.depth(6), true, device),
            down5: ConvNormAct::new(ch.c4, ch.c5, 3, 2, device),
            stage5: C2f::new(ch.c5, ch.c5, config.depth(3), true, device),
            sppf: Sppf::new(ch.c5, device),
        }
    }

    /// Stops gradients through the stem and the first `stages` stages (1–4).
    pub fn freeze_stages(mut self, stages: usize) -> Self {
        self.stem = self.stem.no_grad();
        if stages >= 1 {
            self.down2 = self.down2.no_grad();
            self.stage2 = self.stage2.no_grad();
        }
        if stages >= 2 {
            self.down3 = self.down3.no_grad();
            self.stage3 = self.stage3.no_grad();
        }
        if stages >= 3 {
            self.down4 = self.down4.no_grad();
            self.stage4 = self.stage4.no_grad();
        }
        if stages >= 4 {
            self.down5 = self.down5.no_grad();
            self.stage5 = self.stage5.no_grad();
            self.sppf = self.sppf.no_grad();
        }
        self
    }

    pub fn forward(&self, images: Tensor<B, 4>) -> Features<B>
    where
        B: TwinBackend,
    {
        let x = self.stem.forward(images);
        let c2 = self.stage2.forward(self.down2.forward(x));
        let c3 = self.stage3.forward(self.down3.forward(c2.clone()));
        let c4 = self.stage4.forward(self.down4.forward(c3.clone()));
        let c5 = self.sppf.forward(self.stage5.forward(self.down5.forward(c4.clone())));
        Features { c2, c3, c4, c5 }
    }
}

impl<B: Backend> EditableLayers<B> for CspBackbone<B> {
    fn visit_layers(&mut self, path: &str, visit: &mut dyn FnMut(&str, &mut ConvNormAct<B>)) {
        visit(&join(path, "stem"), &mut self.stem);
        visit(&join(path, "down2"), &mut self.down2);
        self.stage2.visit_layers(&join(path, "stage2"), visit);
        visit(&join(path, "down3"), &mut self.down3);
        self.stage3.visit_layers(&join(path, "stage3"), visit);
        visit(&join(path, "down4"), &mut self.down4);
        self.stage4.visit_layers(&join(path, "stage4"), visit);
        visit(&join(path, "down5"), &mut self.down5);
        self.stage5.visit_layers(&join(path, "stage5"), visit);
        self.sppf.visit_layers(&join(path, "sppf"), visit);
    }

    /// The stem and each downsampling convolution (read only by the next
    /// layer), and the stages' inner channels.
    fn visit_prunable(&mut self, path: &str, visit: &mut dyn FnMut(&str, PrunableLayer<'_, B>)) {
        visit(&join(path, "stem"), PrunableLayer { producer: &mut self.stem, consumers: vec![Consumer::all(self.down2.input_conv())] });
        let downs = [
            ("down2", &mut self.down2, &mut self.stage2),
            ("down3", &mut self.down3, &mut self.stage3),
            ("down4", &mut self.down4, &mut self.stage4),
            ("down5", &mut self.down5, &mut self.stage5),
        ];
        for (name, down, stage) in downs {
            visit(&join(path, name), PrunableLayer { producer: down, consumers: vec![Consumer::all(stage.input_conv())] });
        }
        for (name, stage) in [("stage2", &mut self.stage2), ("stage3", &mut self.stage3), ("stage4", &mut self.stage4), ("stage5", &mut self.stage5)] {
            stage.visit_prunable(&join(path, name), visit);
        }
        self.sppf.visit_prunable(&join(path, "sppf"), visit);
    }
}

/// The network's backbone: the CSP backbone or a torchvision-compatible ResNet.
#[derive(Module, Debug)]
pub enum Backbone<B: Backend> {
    Csp(CspBackbone<B>),
    ResNet(ResNet<B>),
}

impl<B: Backend> Backbone<B> {
    pub fn new(config: &ModelConfig, device: &B::Device) -> Self {
        match config.backbone.resnet_depth() {
            None => Self::Csp(CspBackbone::new(config, device)),
            Some(depth) => Self::ResNet(ResNetConfig::new(depth).init(device)),
        }
    }

    pub fn channels(config: &ModelConfig) -> FeatureChannels {
        match config.backbone.resnet_depth() {
            None => CspBackbone::<B>::channels(config),
            Some(depth) => ResNet::<B>::channels(depth),
        }
    }

    pub fn forward(&self, images: Tensor<B, 4>) -> Features<B>
    where
        B: TwinBackend,
    {
        match self {
            Self::Csp(b) => b.forward(images),
            Self::ResNet(b) => b.forward(images),
        }
    }

    /// Stops gradients through the stem and the first `stages` stages (1–4).
    pub fn freeze_stages(self, stages: usize) -> Self {
        match self {
            Self::Csp(b) => Self::Csp(b.freeze_stages(stages)),
            Self::ResNet(b) => Self::ResNet(b.freeze_stages(stages)),
        }
    }

    /// The CSP backbone's editable layers (a ResNet backbone has none).
    pub fn editable(&mut self) -> Option<&mut CspBackbone<B>> {
        match self {
            Self::Csp(b) => Some(b),
            Self::ResNet(_) => None,
        }
    }
}
