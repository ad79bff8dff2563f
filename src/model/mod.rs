//! The multi-task network: one CSP backbone and FPN+PAN neck shared by an
//! anchor-free detection head and a semantic-FPN segmentation head, and a
//! classification head on the backbone: the heads of the run's tasks.

pub mod anchors;
pub mod backbone;
pub mod blocks;
pub mod cls_head;
pub mod config;
pub mod features;
pub mod conv_norm_act;
pub mod det_head;
pub mod group_statistics;
pub mod macs;
pub mod neck;
pub mod norm;
pub mod resnet;
pub mod predict;
pub mod postprocess;
pub mod reshape;
pub mod seg_head;
pub mod select;
pub mod task;
pub mod transfer;
pub mod yolov8;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

pub use config::{BackboneKind, ModelConfig, ModelSize};
pub use det_head::{DetOutput, DET_STRIDES};
pub use reshape::{EditableLayers, PrunableLayer, Reshape};

use backbone::Backbone;
use cls_head::ClsHead;
use det_head::DetHead;
use neck::PanFpn;
use seg_head::SegHead;

use crate::backend::TwinBackend;
pub use task::{Task, TaskSet};

/// The outputs of the heads [`TwinNet::forward_heads`] was asked for.
pub struct HeadOutputs<B: Backend> {
    pub det: Option<DetOutput<B>>,
    pub seg: Option<Tensor<B, 4>>,
    pub cls: Option<Tensor<B, 2>>,
}

#[derive(Module, Debug)]
pub struct TwinNet<B: Backend> {
    pub backbone: Backbone<B>,
    pub neck: PanFpn<B>,
    /// Each head only in a network with classes for its task (a checkpoint
    /// written before a head was optional loads it as `Some`, one without it as `None`).
    pub det_head: Option<DetHead<B>>,
    pub seg_head: Option<SegHead<B>>,
    pub cls_head: Option<ClsHead<B>>,
}

impl<B: Backend> TwinNet<B> {
    /// The network `config` describes, its structural edits ([`Reshape`]) included.
    pub fn new(config: &ModelConfig, device: &B::Device) -> Self {
        let features = Backbone::<B>::channels(config);
        let pyramid = PanFpn::<B>::channels(config);
        let mut net = Self {
            backbone: Backbone::new(config, device),
            neck: PanFpn::new(config, features, device),
            det_head: (config.det_classes > 0).then(|| DetHead::new(pyramid, config.det_classes, device)),
            seg_head: (config.seg_classes > 0).then(|| SegHead::new(pyramid, config.channels(256), config.seg_classes, device)),
            cls_head: (config.cls_classes > 0).then(|| ClsHead::new(features.c5, config.cls_classes, device)),
        };
        for edit in &config.reshape {
            let unmatched = edit.apply_shapes(&mut net);
            if unmatched > 0 {
                tracing::error!("{unmatched} layer name(s) of a recorded {edit:?} match no layer of this network");
            }
        }
        net
    }

    /// Starts from the weights at `path`: a YOLOv8 checkpoint for the CSP
    /// network (its report returned), torchvision weights for a ResNet backbone.
    pub fn load_pretrained(mut self, path: &std::path::Path) -> anyhow::Result<(Self, Option<yolov8::ImportReport>)> {
        if let Backbone::ResNet(resnet) = self.backbone {
            self.backbone = Backbone::ResNet(resnet.load_torchvision(path)?);
            return Ok((self, None));
        }
        let report = yolov8::import(&mut self, path)?;
        Ok((self, Some(report)))
    }

    /// Detection outputs only (skips the stride-4 level and the segmentation
    /// head). A network without the head is a caller's error, as for the two below.
    pub fn forward_det(&self, images: Tensor<B, 4>) -> DetOutput<B>
    where
        B: TwinBackend,
    {
        self.forward_heads(images, Task::Det.into()).det.expect("forward_heads gives the head asked for")
    }

    /// Segmentation logits [N, C, H, W] only.
    pub fn forward_seg(&self, images: Tensor<B, 4>) -> Tensor<B, 4>
    where
        B: TwinBackend,
    {
        self.forward_heads(images, Task::Seg.into()).seg.expect("forward_heads gives the head asked for")
    }

    /// Classification logits [N, classes] (the backbone only).
    pub fn forward_cls(&self, images: Tensor<B, 4>) -> Tensor<B, 2>
    where
        B: TwinBackend,
    {
        self.forward_heads(images, Task::Cls.into()).cls.expect("forward_heads gives the head asked for")
    }

    /// Detection and segmentation from one shared forward pass.
    pub fn forward_both(&self, images: Tensor<B, 4>) -> (DetOutput<B>, Tensor<B, 4>)
    where
        B: TwinBackend,
    {
        let heads = self.forward_heads(images, TaskSet::DET_SEG);
        (heads.det.expect("forward_heads gives the heads asked for"), heads.seg.expect("forward_heads gives the heads asked for"))
    }

    pub fn det_head(&self) -> &DetHead<B> {
        self.det_head.as_ref().expect("detection outputs of a network without a detection head")
    }

    pub fn seg_head(&self) -> &SegHead<B> {
        self.seg_head.as_ref().expect("segmentation outputs of a network without a segmentation head")
    }

    pub fn cls_head(&self) -> &ClsHead<B> {
        self.cls_head.as_ref().expect("classification outputs of a network without a classification head")
    }

    /// The heads of `tasks` from one shared forward pass (a training step with
    /// pseudo-labels or distillation for other tasks, inference). The neck runs
    /// only for detection or segmentation, its finest level only for segmentation,
    /// so each single task costs what `forward_det`/`forward_seg`/`forward_cls` do.
    pub fn forward_heads(&self, images: Tensor<B, 4>, tasks: TaskSet) -> HeadOutputs<B>
    where
        B: TwinBackend,
    {
        B::twin_run(|| {
            let features = self.backbone.forward(images);
            let cls = tasks.contains(Task::Cls).then(|| self.cls_head().forward(features.c5.clone()));
            if !tasks.contains(Task::Det) && !tasks.contains(Task::Seg) {
                return HeadOutputs { det: None, seg: None, cls };
            }
            let pyramid = self.neck.forward(features, tasks.contains(Task::Seg));
            HeadOutputs {
                det: tasks.contains(Task::Det).then(|| self.det_head().forward(&pyramid)),
                seg: tasks.contains(Task::Seg).then(|| self.seg_head().forward(&pyramid)),
                cls,
            }
        })
    }

    /// The tasks the network has heads for.
    pub fn tasks(&self) -> TaskSet {
        let built = [self.det_head.is_some(), self.seg_head.is_some(), self.cls_head.is_some()];
        Task::ALL.into_iter().filter(|&task| built[task as usize]).collect()
    }
}

impl<B: Backend> EditableLayers<B> for TwinNet<B> {
    fn visit_layers(&mut self, path: &str, visit: &mut dyn FnMut(&str, &mut blocks::ConvNormAct<B>)) {
        if let Some(backbone) = self.backbone.editable() {
            backbone.visit_layers(&reshape::join(path, "backbone"), visit);
        }
        self.neck.visit_layers(&reshape::join(path, "neck"), visit);
        if let Some(head) = &mut self.det_head {
            head.visit_layers(&reshape::join(path, "det_head"), visit);
        }
        if let Some(head) = &mut self.seg_head {
            head.visit_layers(&reshape::join(path, "seg_head"), visit);
        }
    }

    fn visit_prunable(&mut self, path: &str, visit: &mut dyn FnMut(&str, PrunableLayer<'_, B>)) {
        if let Some(backbone) = self.backbone.editable() {
            backbone.visit_prunable(&reshape::join(path, "backbone"), visit);
        }
        self.neck.visit_prunable(&reshape::join(path, "neck"), visit);
        if let Some(head) = &mut self.det_head {
            head.visit_prunable(&reshape::join(path, "det_head"), visit);
        }
        if let Some(head) = &mut self.seg_head {
            head.visit_prunable(&reshape::join(path, "seg_head"), visit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn output_shapes_match_the_anchor_layout_and_input_size() {
        let device = Default::default();
        let mut config = ModelConfig::new(ModelSize::N, 6, 9);
        config.width = Some(0.125);
        config.cls_classes = 5;
        let model = TwinNet::<Flex>::new(&config, &device);
        let images = Tensor::<Flex, 4>::zeros([2, 3, 64, 64], &device);
        assert_eq!(model.forward_cls(images.clone()).dims(), [2, 5]);
        // One shared pass gives what the single-task passes give, for any set of heads.
        let all = model.forward_heads(images.clone(), TaskSet::ALL);
        assert_eq!(all.cls.map(|c| c.dims()), Some([2, 5]));
        let cls_only = model.forward_heads(images.clone(), Task::Cls.into());
        assert!(cls_only.det.is_none() && cls_only.seg.is_none());
        assert_eq!(cls_only.cls.unwrap().into_data(), model.forward_cls(images.clone()).into_data());
        let det_cls = model.forward_heads(images.clone(), TaskSet::of(&[Task::Det, Task::Cls]));
        assert_eq!(det_cls.det.unwrap().box_raw.into_data(), model.forward_det(images.clone()).box_raw.into_data());
        assert_eq!(all.seg.unwrap().into_data(), model.forward_seg(images.clone()).into_data());
        let (det, seg) = model.forward_both(images.clone());
        let anchors = 8 * 8 + 4 * 4 + 2 * 2;
        assert_eq!(det.cls_logits.dims(), [2, anchors, 6]);
        assert_eq!(det.box_raw.dims(), [2, anchors, 4]);
        assert_eq!(seg.dims(), [2, 9, 64, 64]);
        assert_eq!(model.forward_det(images.clone()).cls_logits.dims(), [2, anchors, 6]);
        assert_eq!(model.forward_seg(images).dims(), [2, 9, 64, 64]);
    }

    #[test]
    fn a_network_builds_the_heads_of_its_tasks_only() {
        let device = Default::default();
        let mut config = ModelConfig::new(ModelSize::N, 0, 0);
        config.width = Some(0.125);
        config.cls_classes = 5;
        let cls_only = TwinNet::<Flex>::new(&config, &device);
        assert_eq!(cls_only.tasks(), Task::Cls.into());
        let images = Tensor::<Flex, 4>::zeros([2, 3, 64, 64], &device);
        let heads = cls_only.forward_heads(images.clone(), cls_only.tasks());
        assert!(heads.det.is_none() && heads.seg.is_none() && heads.cls.map(|c| c.dims()) == Some([2, 5]));
        let seg_only = TwinNet::<Flex>::new(&ModelConfig { cls_classes: 0, seg_classes: 9, ..config.clone() }, &device);
        assert_eq!(seg_only.tasks(), Task::Seg.into());
        assert_eq!(seg_only.forward_seg(images).dims(), [2, 9, 64, 64]);
        let both = TwinNet::<Flex>::new(&ModelConfig { cls_classes: 0, det_classes: 6, seg_classes: 9, ..config }, &device);
        assert_eq!(both.tasks(), TaskSet::DET_SEG);
        let head = |net: &TwinNet<Flex>| net.det_head.as_ref().map_or(0, |h| h.num_params());
        assert_eq!(seg_only.num_params() + head(&both), both.num_params());
    }

    #[test]
    fn presets_scale_width_and_depth() {
        let n = ModelConfig::new(ModelSize::N, 20, 150);
        let s = ModelConfig::new(ModelSize::S, 20, 150);
        let m = ModelConfig::new(ModelSize::M, 20, 150);
        assert_eq!([n.channels(64), n.channels(1024)], [16, 256]);
        assert_eq!([s.channels(64), s.channels(1024)], [32, 512]);
        assert_eq!([m.channels(64), m.channels(1024)], [48, 768]);
        // YOLOv8m caps at 768 before its width multiplier: 576 after ours.
        let yolov8m = ModelConfig { max_channels: Some(576), ..m.clone() };
        assert_eq!([yolov8m.channels(256), yolov8m.channels(512), yolov8m.channels(1024)], [192, 384, 576]);
        assert_eq!([n.depth(3), n.depth(6), m.depth(3)], [1, 2, 2]);
        let device = Default::default();
        let params = |c: &ModelConfig| TwinNet::<Flex>::new(c, &device).num_params();
        assert!(params(&n) < params(&s) && params(&s) < params(&m));
    }
}
