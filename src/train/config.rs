//! `TrainConfig`: everything a run needs, read from a TOML preset (`presets.rs`)
//! with `--set key=value` overrides. Unknown keys and bad values are errors
//! that name the key.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::presets::{find_preset, PresetSource};
use super::strategy::{RunShape, StrategyConfig, Task, TaskSet};
use crate::data::classify::{self, ClsDataset, ClsFormat};
use crate::data::format::{DetFormat, DetSpec, SegFormat, SegSpec};
use crate::data::masks::{MaskEncoding, MaskPreset, MaskSpec};
use crate::model::{BackboneKind, ModelSize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Run name: the run folder is `runs/<name>` unless `--out` says otherwise.
    pub name: String,
    pub seed: u64,
    /// Optimiser steps in the whole run.
    pub steps: usize,
    pub data: DataConfig,
    pub model: ModelSection,
    #[serde(default)]
    pub optim: OptimConfig,
    pub strategy: StrategyConfig,
    #[serde(default)]
    pub loss: LossConfig,
    #[serde(default)]
    pub eval: EvalConfig,
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    #[serde(default)]
    pub log: LogConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// The tasks the run trains, as keys joined by `+` (`seg`, `det+cls`).
    /// Unset: every task whose dataset is set. A single task makes a specialist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<TaskSet>,
    /// The detection dataset's folder (VOC, COCO or YOLO layout): the detection task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voc: Option<PathBuf>,
    /// Its format; detected from the layout when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub det_format: Option<DetFormat>,
    #[serde(default = "default_voc_train")]
    pub voc_train_split: String,
    #[serde(default = "default_voc_val")]
    pub voc_val_split: String,
    /// The segmentation dataset's folder (ADE20K layout or mask folders): the segmentation task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ade: Option<PathBuf>,
    /// Its format; detected from the layout when unset (`masks` when any of
    /// the three keys below is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seg_format: Option<SegFormat>,
    /// A known mask dataset (ade20k, bdd100k, voc2012): its encoding and classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seg_preset: Option<MaskPreset>,
    /// How mask values name classes: offset (ADE), ignore255 (train ids), palette (VOC2012).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seg_encoding: Option<MaskEncoding>,
    /// The mask classes' list file (one name per line), else the dataset's classes.txt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seg_classes: Option<PathBuf>,
    #[serde(default = "default_ade_train")]
    pub ade_train_split: String,
    #[serde(default = "default_ade_val")]
    pub ade_val_split: String,
    /// The classification dataset's folder (image list or class folders): the
    /// classification task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cls: Option<PathBuf>,
    /// Its format; detected from the layout when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cls_format: Option<ClsFormat>,
    #[serde(default = "default_cls_train", skip_serializing_if = "is_default_cls_train")]
    pub cls_train_split: String,
    #[serde(default = "default_cls_val", skip_serializing_if = "is_default_cls_val")]
    pub cls_val_split: String,
    /// Generate the synthetic datasets on first use into the common parent of
    /// the folders set (`<dir>/voc`, `<dir>/ade`, `<dir>/cls`).
    #[serde(default)]
    pub synthetic: Option<SyntheticData>,
    /// Square training input size in pixels (a multiple of 32).
    pub image_size: u32,
    pub batch_size: usize,
    /// Decode/augment worker threads (0 = one per core).
    #[serde(default)]
    pub threads: usize,
}

/// Settings of the synthetic twin datasets (see `twinhead data synth`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticData {
    #[serde(default)]
    pub seed: u64,
    pub det_images: usize,
    pub seg_images: usize,
    /// Classification crops (needs `data.cls = "<dir>/cls"`).
    #[serde(default, skip_serializing_if = "crate::model::config::is_zero")]
    pub cls_images: usize,
    /// Long side of the generated images in pixels.
    pub size: u32,
}

impl DataConfig {
    /// The run's tasks: `tasks`, else every task whose dataset is set.
    pub fn run_tasks(&self) -> TaskSet {
        self.tasks.unwrap_or_else(|| self.configured_tasks())
    }

    /// The tasks whose dataset folder is set.
    pub fn configured_tasks(&self) -> TaskSet {
        let folders = [&self.voc, &self.ade, &self.cls];
        Task::ALL.into_iter().filter(|&task| folders[task as usize].is_some()).collect()
    }

    /// The detection dataset, in a run with detection.
    pub fn det_spec(&self) -> Option<DetSpec> {
        let root = self.voc.as_ref().filter(|_| self.run_tasks().contains(Task::Det))?;
        Some(DetSpec::new(root, self.det_format))
    }

    /// The segmentation dataset, in a run with segmentation.
    pub fn seg_spec(&self) -> Option<SegSpec> {
        let root = self.ade.as_ref().filter(|_| self.run_tasks().contains(Task::Seg))?;
        let masks = MaskSpec { preset: self.seg_preset, encoding: self.seg_encoding, classes: self.seg_classes.clone() };
        Some(SegSpec::new(root, self.seg_format, masks))
    }

    /// The dataset key of `task` (`data.voc`, `data.ade`, `data.cls`).
    pub fn key(task: Task) -> &'static str {
        match task {
            Task::Det => "data.voc",
            Task::Seg => "data.ade",
            Task::Cls => "data.cls",
        }
    }

    /// The dataset folder of each of the run's tasks.
    pub fn folders(&self) -> Vec<(Task, &PathBuf)> {
        let run = self.run_tasks();
        [(Task::Det, &self.voc), (Task::Seg, &self.ade), (Task::Cls, &self.cls)]
            .into_iter()
            .filter_map(|(task, dir)| Some((task, dir.as_ref().filter(|_| run.contains(task))?)))
            .collect()
    }

    /// Split `split` of the classification dataset, in a run with `data.cls`
    /// (its format detected from the layout when `cls_format` is unset).
    pub fn open_cls(&self, split: &str) -> Result<Option<ClsDataset>> {
        let Some(root) = self.cls.as_ref().filter(|_| self.run_tasks().contains(Task::Cls)) else {
            return Ok(None);
        };
        let format = match self.cls_format {
            Some(format) => format,
            None => classify::detect(root).with_context(|| format!("data.cls: {}", root.display()))?,
        };
        ClsDataset::open(root, format, split).map(Some)
    }

    /// Where and how the synthetic set is generated, when the data is synthetic:
    /// the common parent of `voc` and `ade`, and the generator's settings.
    pub fn synthetic_set(&self) -> Result<Option<(PathBuf, crate::data::synth::SynthConfig)>> {
        let Some(synthetic) = &self.synthetic else {
            return Ok(None);
        };
        // Every folder set is `<dir>/voc`, `<dir>/ade` or `<dir>/cls` of one `<dir>`.
        let folders = [("voc", &self.voc), ("ade", &self.ade), ("cls", &self.cls)];
        let set: Vec<(&str, &PathBuf)> = folders.iter().filter_map(|&(name, dir)| Some((name, dir.as_ref()?))).collect();
        let dir = set.first().and_then(|(_, first)| first.parent()).map(Path::to_path_buf).unwrap_or_default();
        if let Some((name, path)) = set.iter().find(|(name, path)| **path != dir.join(name)) {
            bail!("data.synthetic: {name} ({}) must be <dir>/{name}, next to the other generated folders ({})", path.display(), dir.display());
        }
        if set.is_empty() {
            bail!("data.synthetic: set data.voc, data.ade or data.cls to <dir>/voc, <dir>/ade or <dir>/cls (where the set is generated)");
        }
        if synthetic.cls_images > 0 && self.cls.is_none() {
            bail!("data.synthetic.cls_images: set data.cls = \"{}\" too", dir.join("cls").display());
        }
        let config = crate::data::synth::SynthConfig {
            seed: synthetic.seed,
            det_images: synthetic.det_images,
            seg_images: synthetic.seg_images,
            cls_images: synthetic.cls_images,
            size: synthetic.size,
            ..Default::default()
        };
        Ok(Some((dir, config)))
    }
}

/// The largest input side accepted: a batch of 16 at 4096² is 3 GiB of input alone.
pub const MAX_IMAGE_SIZE: u32 = 4096;

fn default_voc_train() -> String {
    "train".into()
}
fn default_voc_val() -> String {
    "val".into()
}
fn default_cls_train() -> String {
    "train".into()
}
fn default_cls_val() -> String {
    "val".into()
}
fn is_default_cls_train(split: &String) -> bool {
    *split == default_cls_train()
}
fn is_default_cls_val(split: &String) -> bool {
    *split == default_cls_val()
}
fn default_ade_train() -> String {
    "training".into()
}
fn default_ade_val() -> String {
    "validation".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    #[serde(default)]
    pub backbone: BackboneKind,
    /// Weights to start from: an Ultralytics YOLOv8 detection checkpoint
    /// (`yolov8s.pt`, or its state dict as `.pt`/`.safetensors`) for the CSP
    /// backbone, neck and head; torchvision ImageNet weights (`.pth` or
    /// `.safetensors`) for a ResNet backbone.
    #[serde(default)]
    pub pretrained: Option<PathBuf>,
    /// Starts from the weights of this checkpoint folder, its architecture
    /// included (e.g. a compressed model being fine-tuned), instead of a fresh
    /// initialisation; `backbone`, `size`, `width` and `depth` then come from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<PathBuf>,
    pub size: ModelSize,
    #[serde(default)]
    pub width: Option<f32>,
    #[serde(default)]
    pub depth: Option<f32>,
    /// Caps the channels of every layer (after `width`): 576 with size `m`
    /// builds YOLOv8m's widths, for its checkpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_channels: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adamw,
    Sgd,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    pub optimizer: OptimizerKind,
    /// Peak learning rate of the heads and neck.
    pub lr: f64,
    /// Backbone learning rate = `lr × backbone_lr_factor`.
    pub backbone_lr_factor: f64,
    pub weight_decay: f64,
    /// SGD momentum (ignored by AdamW).
    pub momentum: f64,
    /// Linear warm-up steps from 0 to `lr`.
    pub warmup_steps: usize,
    /// Cosine decay ends at `lr × min_lr_factor`.
    pub min_lr_factor: f64,
    /// Per-parameter gradient norm clip (0 = off).
    pub grad_clip: f32,
    /// Keep an exponential moving average of the weights with this decay
    /// (e.g. 0.999), evaluated and checkpointed alongside them; 0 = off.
    pub ema_decay: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            optimizer: OptimizerKind::Adamw,
            lr: 2e-3,
            backbone_lr_factor: 1.0,
            weight_decay: 5e-4,
            momentum: 0.9,
            warmup_steps: 50,
            min_lr_factor: 0.05,
            grad_clip: 10.0,
            ema_decay: 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    pub det_cls_weight: f32,
    pub det_box_weight: f32,
    /// Keep only the hardest pixels' cross-entropy (fraction 0–1; 0 = off).
    pub seg_ohem_fraction: f32,
    pub seg_dice_weight: f32,
    /// Label smoothing of the classification loss (Track1: 0.1).
    #[serde(skip_serializing_if = "is_default_smoothing")]
    pub cls_label_smoothing: f32,
}

const CLS_LABEL_SMOOTHING: f32 = 0.1;

fn is_default_smoothing(v: &f32) -> bool {
    *v == CLS_LABEL_SMOOTHING
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            det_cls_weight: 0.5,
            det_box_weight: 7.5,
            seg_ohem_fraction: 0.0,
            seg_dice_weight: 0.0,
            cls_label_smoothing: CLS_LABEL_SMOOTHING,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Evaluate both tasks every this many steps (and at the end).
    pub every: usize,
    /// Size of the fixed validation subsets used during training.
    pub det_images: usize,
    pub seg_images: usize,
    #[serde(skip_serializing_if = "is_default_cls_images")]
    pub cls_images: usize,
    pub score_threshold: f32,
    pub nms_iou: f32,
    pub max_detections: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            every: 100,
            det_images: 200,
            seg_images: 200,
            cls_images: EVAL_CLS_IMAGES,
            score_threshold: 0.001,
            nms_iou: 0.6,
            max_detections: 100,
        }
    }
}

const EVAL_CLS_IMAGES: usize = 500;

fn is_default_cls_images(n: &usize) -> bool {
    *n == EVAL_CLS_IMAGES
}

impl EvalConfig {
    /// The post-processing evaluations use (the trainer's and the workbench's Inspect panel).
    pub fn postprocess(&self) -> crate::model::postprocess::PostprocessConfig {
        crate::model::postprocess::PostprocessConfig {
            score_threshold: self.score_threshold,
            iou_threshold: self.nms_iou,
            max_detections: self.max_detections,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// Save the `last` checkpoint every this many steps (and at the end).
    pub every: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self { every: 100 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Also write the run's events as TensorBoard event files (`tensorboard/`).
    pub tensorboard: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { tensorboard: true }
    }
}

impl TrainConfig {
    /// Reads a preset: a path to a TOML file, or a name (`presets/NAME.toml` in
    /// the working directory, else the built-in one; see [`super::presets`]).
    /// A preset may name another as `base = "name"`: its tables are merged over the base's.
    pub fn load_preset(preset: &str, overrides: &[String]) -> Result<Self> {
        let source = find_preset(preset)?;
        let origin = source.origin.clone();
        let value = read_preset_value(source, 0)?;
        Self::from_value(value, overrides).with_context(|| origin)
    }

    /// Parses TOML text, applies `key=value` overrides (dotted keys, TOML values;
    /// bare words are taken as strings) and checks the result.
    pub fn from_toml(text: &str, overrides: &[String]) -> Result<Self> {
        Self::from_value(toml::from_str(text).context("invalid TOML")?, overrides)
    }

    fn from_value(mut value: toml::Value, overrides: &[String]) -> Result<Self> {
        for item in overrides {
            apply_override(&mut value, item)?;
        }
        let config: Self = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            anyhow::anyhow!("{}: {}", if path == "." { "config".into() } else { path }, e.inner())
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }

    pub fn validate(&self) -> Result<()> {
        let check = |ok: bool, key: &str, why: &str| if ok { Ok(()) } else { bail!("{key}: {why}") };
        check(self.steps > 0, "steps", "must be at least 1")?;
        check(self.data.image_size >= 32 && self.data.image_size % 32 == 0, "data.image_size", "must be a multiple of 32 (the coarsest stride)")?;
        check(self.data.image_size <= MAX_IMAGE_SIZE, "data.image_size", &format!("must be at most {MAX_IMAGE_SIZE} pixels"))?;
        check(self.data.batch_size > 0, "data.batch_size", "must be at least 1")?;
        check(self.optim.lr > 0.0 && self.optim.lr.is_finite(), "optim.lr", "must be a positive number")?;
        check(self.optim.backbone_lr_factor >= 0.0, "optim.backbone_lr_factor", "must be ≥ 0")?;
        check((0.0..=1.0).contains(&self.optim.min_lr_factor), "optim.min_lr_factor", "must be in [0, 1]")?;
        check((0.0..1.0).contains(&self.optim.ema_decay), "optim.ema_decay", "must be in [0, 1) (0 = off)")?;
        check((0.0..=1.0).contains(&self.loss.seg_ohem_fraction), "loss.seg_ohem_fraction", "must be in [0, 1]")?;
        check((0.0..1.0).contains(&self.loss.cls_label_smoothing), "loss.cls_label_smoothing", "must be in [0, 1)")?;
        check(self.eval.every > 0, "eval.every", "must be at least 1")?;
        check(self.checkpoint.every > 0, "checkpoint.every", "must be at least 1")?;
        if self.model.init.is_some() && self.model.pretrained.is_some() {
            bail!("model.init and model.pretrained: give one (init already holds a whole network's weights)");
        }
        if let Some(w) = self.model.width {
            check(w > 0.0 && w <= 2.0, "model.width", "must be in (0, 2]")?;
        }
        if let Some(cap) = self.model.max_channels {
            check(cap >= 8 && cap % 8 == 0, "model.max_channels", "must be a multiple of 8, at least 8")?;
        }
        let tasks = self.data.run_tasks();
        if tasks.is_empty() {
            bail!("data: no task to train: set a dataset folder (data.voc for detection, data.ade for segmentation, data.cls for classification)");
        }
        if let Some(task) = tasks.iter().find(|&task| !self.data.configured_tasks().contains(task)) {
            bail!("data.tasks: {task} needs its dataset folder, {} (the tasks with a dataset: {})", DataConfig::key(task), describe(self.data.configured_tasks()));
        }
        self.strategy.validate(self.run_shape())
    }

    /// The run's tasks ([`DataConfig::run_tasks`]) and its length, as the strategy schedules them.
    pub fn run_shape(&self) -> RunShape {
        RunShape { tasks: self.data.run_tasks(), steps: self.steps }
    }

    /// The network for the datasets' class counts (`cls_classes` 0: no classification head).
    pub fn model_config(&self, det_classes: usize, seg_classes: usize, cls_classes: usize) -> crate::model::ModelConfig {
        crate::model::ModelConfig {
            backbone: self.model.backbone,
            size: self.model.size,
            width: self.model.width,
            depth: self.model.depth,
            max_channels: self.model.max_channels,
            det_classes,
            seg_classes,
            cls_classes,
            reshape: Vec::new(),
        }
    }
}

fn describe(tasks: TaskSet) -> String {
    if tasks.is_empty() {
        return "none".into();
    }
    tasks.into()
}

fn read_preset_value(source: PresetSource, depth: usize) -> Result<toml::Value> {
    let origin = &source.origin;
    if depth > 8 {
        bail!("{origin}: presets name each other as base in a loop");
    }
    let mut value: toml::Value = toml::from_str(&source.text).with_context(|| format!("{origin}: invalid TOML"))?;
    let Some(base) = value.as_table_mut().and_then(|t| t.remove("base")) else {
        return Ok(value);
    };
    let base_name = base.as_str().with_context(|| format!("{origin}: base must be a preset name"))?;
    let mut merged = read_preset_value(find_preset(base_name)?, depth + 1)?;
    merge(&mut merged, value);
    Ok(merged)
}

/// Merges `top` into `base`: tables key by key, any other value replaces.
fn merge(base: &mut toml::Value, top: toml::Value) {
    match (base, top) {
        (toml::Value::Table(base), toml::Value::Table(top)) => {
            for (key, value) in top {
                match base.get_mut(&key) {
                    Some(existing) if existing.is_table() && value.is_table() && key != "strategy" => merge(existing, value),
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, top) => *base = top,
    }
}

fn apply_override(root: &mut toml::Value, item: &str) -> Result<()> {
    let (key, raw) = item
        .split_once('=')
        .with_context(|| format!("--set {item:?}: expected key=value"))?;
    let key = key.trim();
    let raw = raw.trim();
    // A TOML literal (number, bool, quoted string, array); anything else is a bare string.
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    // A new strategy kind starts from its own defaults, not the old kind's parameters.
    if key == "strategy.kind" {
        if let Some(table) = root.as_table_mut() {
            table.insert("strategy".into(), toml::Value::Table(toml::Table::new()));
        }
    }
    let mut node = root;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let table = node
            .as_table_mut()
            .with_context(|| format!("--set {key}: {} is not a table", parts[..i].join(".")))?;
        if i + 1 == parts.len() {
            table.insert(part.to_string(), value);
            return Ok(());
        }
        node = table.entry(part.to_string()).or_insert_with(|| toml::Value::Table(Default::default()));
    }
    bail!("--set {item:?}: empty key")
}
