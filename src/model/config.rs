//! Model configuration: size presets set by width and depth multipliers.

use serde::{Deserialize, Serialize};

use super::reshape::Reshape;
use super::task::{Task, TaskSet};
use super::resnet::ResNetDepth;

/// Size preset of the CSP backbone and its neck (YOLOv8's n/s/m scaling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelSize {
    N,
    S,
    M,
}

impl ModelSize {
    /// (width multiplier, depth multiplier, channel cap).
    fn scaling(self) -> (f32, f32, usize) {
        match self {
            ModelSize::N => (0.25, 0.34, 256),
            ModelSize::S => (0.5, 0.34, 512),
            ModelSize::M => (0.75, 0.67, 768),
        }
    }
}

/// Which backbone the network uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackboneKind {
    /// The CSP backbone, scaled by the size preset.
    #[default]
    Csp,
    /// torchvision-compatible ResNets (load ImageNet weights with `model.pretrained`).
    Resnet18,
    Resnet34,
    Resnet50,
}

impl BackboneKind {
    /// The name Setup shows.
    pub fn label(self) -> &'static str {
        match self {
            Self::Csp => "CSP (scaled by size)",
            Self::Resnet18 => "ResNet-18",
            Self::Resnet34 => "ResNet-34",
            Self::Resnet50 => "ResNet-50",
        }
    }

    pub fn resnet_depth(self) -> Option<ResNetDepth> {
        match self {
            Self::Csp => None,
            Self::Resnet18 => Some(ResNetDepth::R18),
            Self::Resnet34 => Some(ResNetDepth::R34),
            Self::Resnet50 => Some(ResNetDepth::R50),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    #[serde(default)]
    pub backbone: BackboneKind,
    /// Size preset of the CSP backbone and of the neck and heads.
    pub size: ModelSize,
    /// Overrides the preset's width multiplier (e.g. 0.125 for tiny test models).
    #[serde(default)]
    pub width: Option<f32>,
    /// Overrides the preset's depth multiplier.
    #[serde(default)]
    pub depth: Option<f32>,
    /// Overrides the preset's channel cap (256, 512, 768): 576 gives size m
    /// YOLOv8m's widths (its cap comes before the width multiplier, ours after).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_channels: Option<usize>,
    pub det_classes: usize,
    pub seg_classes: usize,
    /// Classes of the classification head; 0: no such head (every two-task network).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cls_classes: usize,
    /// Structural edits made by `compress` (pruned channels, factorized layers), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reshape: Vec<Reshape>,
}

/// `skip_serializing_if` for counts written only when set.
pub(crate) fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl ModelConfig {
    /// The tasks the network has heads for: those with classes.
    pub fn tasks(&self) -> TaskSet {
        let classes = [self.det_classes, self.seg_classes, self.cls_classes];
        Task::ALL.into_iter().filter(|&task| classes[task as usize] > 0).collect()
    }

    pub fn new(size: ModelSize, det_classes: usize, seg_classes: usize) -> Self {
        Self { backbone: BackboneKind::Csp, size, width: None, depth: None, max_channels: None, det_classes, seg_classes, cls_classes: 0, reshape: Vec::new() }
    }

    /// Channels for a YOLOv8 base width (64, 128, …, 1024), rounded to a multiple of 8.
    pub fn channels(&self, base: usize) -> usize {
        let (width, _, cap) = self.size.scaling();
        let width = self.width.unwrap_or(width);
        let scaled = ((base as f32 * width / 8.0).round() as usize * 8).max(8);
        scaled.min(self.max_channels.unwrap_or(cap))
    }

    /// Bottleneck count for a YOLOv8 base depth (3 or 6).
    pub fn depth(&self, base: usize) -> usize {
        let (_, depth, _) = self.size.scaling();
        ((base as f32 * self.depth.unwrap_or(depth)).round() as usize).max(1)
    }
}
