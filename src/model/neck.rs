//! FPN + PAN neck: a top-down path spreads semantics to fine levels, a
//! bottom-up path spreads localisation back to coarse ones. Detection reads
//! strides 8/16/32; the segmentation head also reads the stride-4 level.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::features::{FeatureChannels, Features};
use super::blocks::{upsample2x, ConvNormAct, C2f};
use super::config::ModelConfig;
use super::reshape::{join, Consumer, EditableLayers, PrunableLayer};
use crate::backend::TwinBackend;

/// Neck outputs: `p2` (stride 4, only computed for segmentation) and `p3..p5`.
pub struct Pyramid<B: Backend> {
    pub p2: Option<Tensor<B, 4>>,
    pub p3: Tensor<B, 4>,
    pub p4: Tensor<B, 4>,
    pub p5: Tensor<B, 4>,
}

#[derive(Debug, Clone, Copy)]
pub struct PyramidChannels {
    pub p2: usize,
    pub p3: usize,
    pub p4: usize,
    pub p5: usize,
}

impl<B: Backend> EditableLayers<B> for PanFpn<B> {
    fn visit_layers(&mut self, path: &str, visit: &mut dyn FnMut(&str, &mut ConvNormAct<B>)) {
        self.top_down4.visit_layers(&join(path, "top_down4"), visit);
        self.top_down3.visit_layers(&join(path, "top_down3"), visit);
        self.top_down2.visit_layers(&join(path, "top_down2"), visit);
        visit(&join(path, "down3"), &mut self.down3);
        self.bottom_up4.visit_layers(&join(path, "bottom_up4"), visit);
        visit(&join(path, "down4"), &mut self.down4);
        self.bottom_up5.visit_layers(&join(path, "bottom_up5"), visit);
    }

    /// The two downsampling convolutions (the first part of the next block's
    /// concatenated input) and the blocks' inner channels.
    fn visit_prunable(&mut self, path: &str, visit: &mut dyn FnMut(&str, PrunableLayer<'_, B>)) {
        visit(&join(path, "down3"), PrunableLayer { producer: &mut self.down3, consumers: vec![Consumer::all(self.bottom_up4.input_conv())] });
        visit(&join(path, "down4"), PrunableLayer { producer: &mut self.down4, consumers: vec![Consumer::all(self.bottom_up5.input_conv())] });
        for (name, block) in [
            ("top_down4", &mut self.top_down4),
            ("top_down3", &mut self.top_down3),
            ("top_down2", &mut self.top_down2),
            ("bottom_up4", &mut self.bottom_up4),
            ("bottom_up5", &mut self.bottom_up5),
        ] {
            block.visit_prunable(&join(path, name), visit);
        }
    }
}

#[derive(Module, Debug)]
pub struct PanFpn<B: Backend> {
    pub(crate) top_down4: C2f<B>,
    pub(crate) top_down3: C2f<B>,
    pub(crate) top_down2: C2f<B>,
    pub(crate) down3: ConvNormAct<B>,
    pub(crate) bottom_up4: C2f<B>,
    pub(crate) down4: ConvNormAct<B>,
    pub(crate) bottom_up5: C2f<B>,
}

impl<B: Backend> PanFpn<B> {
    pub fn channels(config: &ModelConfig) -> PyramidChannels {
        PyramidChannels {
            p2: config.channels(128),
            p3: config.channels(256),
            p4: config.channels(512),
            p5: config.channels(1024),
        }
    }

    pub fn new(config: &ModelConfig, c: FeatureChannels, device: &B::Device) -> Self {
        let p = Self::channels(config);
        let depth = config.depth(3);
        Self {
            top_down4: C2f::new(c.c5 + c.c4, p.p4, depth, false, device),
            top_down3: C2f::new(p.p4 + c.c3, p.p3, depth, false, device),
            top_down2: C2f::new(p.p3 + c.c2, p.p2, depth, false, device),
            down3: ConvNormAct::new(p.p3, p.p3, 3, 2, device),
            bottom_up4: C2f::new(p.p3 + p.p4, p.p4, depth, false, device),
            down4: ConvNormAct::new(p.p4, p.p4, 3, 2, device),
            bottom_up5: C2f::new(p.p4 + c.c5, p.p5, depth, false, device),
        }
    }

    /// `with_p2` computes the stride-4 level (needed by segmentation only).
    pub fn forward(&self, f: Features<B>, with_p2: bool) -> Pyramid<B>
    where
        B: TwinBackend,
    {
        let t4 = self.top_down4.forward(Tensor::cat(vec![upsample2x(f.c5.clone()), f.c4], 1));
        let p3 = self.top_down3.forward(Tensor::cat(vec![upsample2x(t4.clone()), f.c3], 1));
        let p2 = with_p2.then(|| self.top_down2.forward(Tensor::cat(vec![upsample2x(p3.clone()), f.c2], 1)));
        let p4 = self.bottom_up4.forward(Tensor::cat(vec![self.down3.forward(p3.clone()), t4], 1));
        let p5 = self.bottom_up5.forward(Tensor::cat(vec![self.down4.forward(p4.clone()), f.c5], 1));
        Pyramid { p2, p3, p4, p5 }
    }
}
