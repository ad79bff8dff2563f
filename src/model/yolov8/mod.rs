//! Ultralytics YOLOv8 detection checkpoints (`yolov8n.pt`, `yolov8s.pt`, or
//! their state dicts) as the starting point of the CSP network.
//!
//! Our backbone and neck are YOLOv8's layer for layer ([`names`]); the
//! detection head's hidden layers load where their widths match. YOLOv8's
//! layers are Conv → BatchNorm → SiLU where ours are Conv → GroupNorm → SiLU:
//! an imported layer gets the BatchNorm folded into its convolution (eval-mode
//! statistics, so single-task batches cannot skew them) and keeps no
//! GroupNorm; the edit is recorded as [`Reshape::BatchNorm`](super::Reshape)
//! so checkpoints of the run rebuild those layers. Layers without a
//! counterpart (the stride-4 path, the segmentation head, the final
//! prediction convolutions) start fresh, and the [`ImportReport`] says why.

pub mod export;
mod file;
pub mod names;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use burn_store::TensorSnapshot;
use serde::{Deserialize, Serialize};

use super::blocks::ConvNormAct;
use super::norm::batch_norm_scale_shift;
use super::{EditableLayers, TwinNet};
use names::Counterpart;

/// Ultralytics' BatchNorm epsilon (its `Conv` builds `BatchNorm2d(eps=1e-3)`);
/// state dicts do not store it.
const EPSILON: f64 = 1e-3;

/// What an import loaded and what starts fresh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    pub file: PathBuf,
    /// Our layers now holding the checkpoint's weights, BatchNorm folded in.
    pub loaded: Vec<String>,
    /// Layers that start fresh, each with the reason.
    pub fresh: Vec<FreshLayer>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreshLayer {
    pub layer: String,
    pub reason: String,
}

impl ImportReport {
    /// "loaded 57 layers from F; 16 start fresh (no YOLOv8 counterpart):
    /// neck.top_down2, seg_head.lateral, …; 6 start fresh (…): …", one part per reason.
    pub fn summary(&self) -> String {
        let mut by_reason: BTreeMap<&str, (usize, Vec<String>)> = BTreeMap::new();
        for fresh in &self.fresh {
            let (count, parts) = by_reason.entry(&fresh.reason).or_default();
            *count += 1;
            let part = component(&fresh.layer);
            if !parts.contains(&part) {
                parts.push(part);
            }
        }
        let mut text = format!("loaded {} layers from {}", self.loaded.len(), self.file.display());
        for (reason, (count, parts)) in by_reason {
            text += &format!("; {count} start fresh ({reason}): {}", parts.join(", "));
        }
        text
    }
}

/// `neck.top_down2.blocks.0.cv1` → `neck.top_down2`; the head's layers keep their level.
fn component(layer: &str) -> String {
    let depth = if layer.starts_with("det_head.") { 4 } else { 2 };
    layer.split('.').take(depth).collect::<Vec<_>>().join(".")
}

/// Loads the YOLOv8 checkpoint at `path` into `net`'s CSP backbone, neck and
/// detection head. Fails, naming the file and the first layer that does not
/// fit, unless every backbone and neck layer is in the file with our shape.
pub fn import<B: Backend>(net: &mut TwinNet<B>, path: &Path) -> anyhow::Result<ImportReport> {
    let fail = || format!("model.pretrained: {} is not a YOLOv8 detection checkpoint this network can start from", path.display());
    let read = file::read(path).with_context(fail)?;
    check_task(&read).with_context(fail)?;
    let mut loaded = Vec::new();
    // The `model.N.` modules of the file that went into the backbone and neck.
    let mut used = Vec::new();
    let mut fresh = Vec::new();
    let mut failure = None;
    let mut stride_32_width = 0;
    net.visit_layers("", &mut |layer_path, layer| {
        if layer_path == "backbone.sppf.cv2" {
            stride_32_width = layer.width();
        }
    });
    let hint = |name: &str| hint(&read.tensors, name, stride_32_width);
    net.visit_layers("", &mut |layer_path, layer| {
        if failure.is_some() {
            return;
        }
        let (prefix, required) = match names::counterpart(layer_path) {
            Counterpart::Required(prefix) => (prefix, true),
            Counterpart::Optional(prefix) => (prefix, false),
            Counterpart::None => {
                fresh.push(FreshLayer { layer: layer_path.to_string(), reason: "no YOLOv8 counterpart".into() });
                return;
            }
        };
        match conv_batch_norm(&read.tensors, &prefix, layer) {
            Ok(weights) => {
                weights.apply(layer);
                loaded.push(layer_path.to_string());
                if required {
                    used.push(format!("{prefix}."));
                }
            }
            Err(problem) if required => failure = Some(format!("{problem} ({layer_path}){}", hint(&prefix))),
            Err(_) => {
                let reason = match read.tensors.contains_key(&format!("{prefix}.conv.weight")) {
                    true => "the file's widths differ (they follow its class count)",
                    false => "not in the file",
                };
                fresh.push(FreshLayer { layer: layer_path.to_string(), reason: reason.into() });
            }
        }
    });
    if let Some(problem) = failure {
        bail!("{}: {problem}", fail());
    }
    // What the file has in the backbone and neck beyond our layers (deeper blocks).
    let extra = read.tensors.keys().find(|name| layer_index(name).is_some_and(|i| i <= 21) && !used.iter().any(|p| name.starts_with(p.as_str())));
    if let Some(name) = extra {
        bail!("{}: `{name}` has no place in this network{}", fail(), hint(name));
    }
    for level in 0..net.det_head.as_ref().map_or(0, |head| head.levels.len()) {
        for output in ["cls_out", "box_out"] {
            let layer = format!("det_head.levels.{level}.{output}");
            fresh.push(FreshLayer { layer, reason: "the final predictions (our classes, our box encoding)".into() });
        }
    }
    Ok(ImportReport { file: path.to_path_buf(), loaded, fresh })
}

/// Refuses checkpoints of the other Ultralytics tasks, by class or by head.
fn check_task(read: &file::CheckpointTensors) -> anyhow::Result<()> {
    if let Some(class) = &read.model_class {
        let task = match class.rsplit('.').next().unwrap_or(class) {
            "DetectionModel" => return Ok(()),
            "SegmentationModel" => "an instance-segmentation checkpoint (yolov8n-seg.pt)",
            "PoseModel" => "a pose checkpoint (yolov8n-pose.pt)",
            "OBBModel" => "an oriented-box checkpoint (yolov8n-obb.pt)",
            "ClassificationModel" => "a classification checkpoint (yolov8n-cls.pt)",
            _ => "not an Ultralytics DetectionModel",
        };
        bail!("the file holds {class}: {task}; give a detection checkpoint such as yolov8n.pt");
    }
    let has = |prefix: &str| read.tensors.keys().any(|k| k.starts_with(prefix));
    if has("model.22.proto.") {
        bail!("the state dict has a mask prototype head (model.22.proto): an instance-segmentation checkpoint; give a detection one");
    }
    if has("model.22.cv4.") {
        bail!("the state dict's head has a fourth branch (model.22.cv4): a pose, oriented-box or segmentation checkpoint; give a detection one");
    }
    Ok(())
}

/// The index N of `model.N.…`.
fn layer_index(name: &str) -> Option<usize> {
    name.strip_prefix("model.")?.split('.').next()?.parse().ok()
}

/// Why a checkpoint might not fit at `name`: another size, another channel
/// cap (our `stride_32_width` is the SPPF's), or another YOLO generation.
fn hint(tensors: &BTreeMap<String, TensorSnapshot>, name: &str, stride_32_width: usize) -> String {
    if tensors.keys().any(|k| layer_index(k) == Some(10)) {
        return "; the file has weights at layer 10, where YOLOv8 has none (a YOLO11 checkpoint? only YOLOv8's C2f blocks fit)".into();
    }
    if name.starts_with("model.0.") {
        let stem = tensors.get("model.0.conv.weight").map(|t| t.shape[0]);
        if let Some(size) = stem.and_then(names::size_of_stem) {
            return format!("; its stem is YOLOv8{size}'s: set model.size = \"{size}\"");
        }
    }
    let theirs = tensors.get("model.9.cv2.conv.weight").map(|t| t.shape[0]);
    if let Some(width) = theirs.filter(|&w| w != stride_32_width && w % 8 == 0) {
        return format!("; its stride-32 layers have {width} channels where ours have {stride_32_width}: set model.max_channels = {width}");
    }
    "; a checkpoint of another size or YOLO generation (YOLOv5's C3, YOLO11's C3k2 blocks differ from YOLOv8's C2f)".into()
}

/// One imported layer: the convolution and its BatchNorm, as f32.
struct ConvBatchNorm {
    conv: TensorData,
    /// weight, bias, running_mean, running_var.
    batch_norm: [TensorData; 4],
}

/// The weights of `prefix.conv` and `prefix.bn`, shaped for `layer`, or what is wrong.
fn conv_batch_norm<B: Backend>(
    tensors: &BTreeMap<String, TensorSnapshot>,
    prefix: &str,
    layer: &mut ConvNormAct<B>,
) -> Result<ConvBatchNorm, String> {
    assert!(!layer.is_factorized(), "weights are imported into a network as built");
    let expected = layer.input_conv().weight.dims().to_vec();
    let channels = expected[0];
    let get = |name: String, shape: &[usize]| -> Result<TensorData, String> {
        let tensor = tensors.get(&name).ok_or_else(|| format!("`{name}` is not in the file"))?;
        if tensor.shape.as_slice() != shape {
            return Err(format!("`{name}` is {:?} in the file, {shape:?} here", tensor.shape.as_slice()));
        }
        let data = tensor.to_data().map_err(|e| format!("`{name}` cannot be read: {e}"))?;
        Ok(data.convert::<f32>())
    };
    let conv = get(format!("{prefix}.conv.weight"), &expected)?;
    let bn = |part: &str| get(format!("{prefix}.bn.{part}"), &[channels]);
    let batch_norm = [bn("weight")?, bn("bias")?, bn("running_mean")?, bn("running_var")?];
    Ok(ConvBatchNorm { conv, batch_norm })
}

impl ConvBatchNorm {
    fn apply<B: Backend>(self, layer: &mut ConvNormAct<B>) {
        let device = layer.input_conv().weight.device();
        layer.input_conv().weight = Param::from_tensor(Tensor::from_data(self.conv, &device));
        let [weight, bias, mean, var] = self.batch_norm.map(|data| Tensor::<B, 1>::from_data(data, &device));
        let (scale, shift) = batch_norm_scale_shift(weight, bias, mean, var, EPSILON);
        layer.fold_batch_norm(scale, shift);
    }
}

#[cfg(test)]
mod tests;
