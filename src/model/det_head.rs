//! Anchor-free decoupled detection head (YOLOX / YOLOv8 / FCOS family): per
//! pyramid level, separate classification and box branches. One anchor point
//! per feature-map cell; boxes are regressed as distances to the four sides.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::blocks::{conv_forward, ConvNormAct};
use super::neck::{Pyramid, PyramidChannels};
use super::reshape::{join, Consumer, EditableLayers, PrunableLayer};
use crate::backend::TwinBackend;

/// Strides of the levels the head reads, in the order its outputs are concatenated.
pub const DET_STRIDES: [usize; 3] = [8, 16, 32];

/// Raw head outputs for a batch, anchors of all levels concatenated (stride order,
/// row-major within a level).
#[derive(Debug, Clone)]
pub struct DetOutput<B: Backend> {
    /// [N, A, C] classification logits (sigmoid per class).
    pub cls_logits: Tensor<B, 3>,
    /// [N, A, 4] raw left/top/right/bottom distances (see `anchors::decode_boxes`).
    pub box_raw: Tensor<B, 3>,
}

#[derive(Module, Debug)]
pub(crate) struct LevelHead<B: Backend> {
    pub(crate) cls1: ConvNormAct<B>,
    pub(crate) cls2: ConvNormAct<B>,
    pub(crate) cls_out: Conv2d<B>,
    pub(crate) box1: ConvNormAct<B>,
    pub(crate) box2: ConvNormAct<B>,
    pub(crate) box_out: Conv2d<B>,
}

#[derive(Module, Debug)]
pub struct DetHead<B: Backend> {
    pub(crate) levels: Vec<LevelHead<B>>,
}

/// Classification bias so that every class starts at probability 0.01: keeps the
/// flood of background anchors from swamping the first steps (RetinaNet's prior).
const PRIOR_PROBABILITY: f64 = 0.01;

impl<B: Backend> DetHead<B> {
    pub fn new(channels: PyramidChannels, num_classes: usize, device: &B::Device) -> Self {
        let cls_hidden = channels.p3.max(num_classes.min(100));
        let box_hidden = (channels.p3 / 2).max(32);
        let prior_bias = -((1.0 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY).ln();
        let levels = [channels.p3, channels.p4, channels.p5]
            .into_iter()
            .map(|c| {
                let mut cls_out = Conv2dConfig::new([cls_hidden, num_classes], [1, 1]).init(device);
                cls_out.bias = Some(Param::from_tensor(Tensor::full([num_classes], prior_bias, device)));
                LevelHead {
                    cls1: ConvNormAct::new(c, cls_hidden, 3, 1, device),
                    cls2: ConvNormAct::new(cls_hidden, cls_hidden, 3, 1, device),
                    cls_out,
                    box1: ConvNormAct::new(c, box_hidden, 3, 1, device),
                    box2: ConvNormAct::new(box_hidden, box_hidden, 3, 1, device),
                    box_out: Conv2dConfig::new([box_hidden, 4], [1, 1]).init(device),
                }
            })
            .collect();
        Self { levels }
    }

    pub fn forward(&self, pyramid: &Pyramid<B>) -> DetOutput<B>
    where
        B: TwinBackend,
    {
        let inputs = [&pyramid.p3, &pyramid.p4, &pyramid.p5];
        let (mut cls, mut boxes) = (Vec::new(), Vec::new());
        for (head, x) in self.levels.iter().zip(inputs) {
            let c = conv_forward(&head.cls_out, head.cls2.forward(head.cls1.forward(x.clone())));
            let b = conv_forward(&head.box_out, head.box2.forward(head.box1.forward(x.clone())));
            cls.push(flatten_cells(c));
            boxes.push(flatten_cells(b));
        }
        DetOutput { cls_logits: Tensor::cat(cls, 1), box_raw: Tensor::cat(boxes, 1) }
    }
}

impl<B: Backend> EditableLayers<B> for LevelHead<B> {
    fn visit_layers(&mut self, path: &str, visit: &mut dyn FnMut(&str, &mut ConvNormAct<B>)) {
        visit(&join(path, "cls1"), &mut self.cls1);
        visit(&join(path, "cls2"), &mut self.cls2);
        visit(&join(path, "box1"), &mut self.box1);
        visit(&join(path, "box2"), &mut self.box2);
    }

    /// Every hidden layer of both branches.
    fn visit_prunable(&mut self, path: &str, visit: &mut dyn FnMut(&str, PrunableLayer<'_, B>)) {
        visit(&join(path, "cls1"), PrunableLayer { producer: &mut self.cls1, consumers: vec![Consumer::all(self.cls2.input_conv())] });
        visit(&join(path, "cls2"), PrunableLayer { producer: &mut self.cls2, consumers: vec![Consumer::all(&mut self.cls_out)] });
        visit(&join(path, "box1"), PrunableLayer { producer: &mut self.box1, consumers: vec![Consumer::all(self.box2.input_conv())] });
        visit(&join(path, "box2"), PrunableLayer { producer: &mut self.box2, consumers: vec![Consumer::all(&mut self.box_out)] });
    }
}

impl<B: Backend> EditableLayers<B> for DetHead<B> {
    fn visit_layers(&mut self, path: &str, visit: &mut dyn FnMut(&str, &mut ConvNormAct<B>)) {
        self.levels.visit_layers(&join(path, "levels"), visit);
    }

    fn visit_prunable(&mut self, path: &str, visit: &mut dyn FnMut(&str, PrunableLayer<'_, B>)) {
        self.levels.visit_prunable(&join(path, "levels"), visit);
    }
}

/// [N, K, H, W] → [N, H·W, K].
fn flatten_cells<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 3> {
    let [n, k, h, w] = x.dims();
    x.reshape([n, k, h * w]).swap_dims(1, 2)
}
