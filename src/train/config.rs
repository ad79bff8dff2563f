//! `TrainConfig`: everything a run needs, read from a TOML preset (`presets.rs`)
//! with `--set key=value` overrides. Unknown keys and bad values are errors
//! that name the key.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::presets::{find_preset, PresetSource};
use crate::model::task::PerTask;
use super::strategy::{RunShape, StrategyConfig, Task, TaskSet};
use crate::data::classify::{self, ClsDataset, ClsFormat};
use crate::data::format::{DetFormat, DetSpec, SegFormat, SegSpec};
use crate::data::masks::{MaskEncoding, MaskPreset, MaskSpec};
use crate::data::split::DatasetSplit;
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
    /// Generate the synthetic datasets on first use (see [`DataConfig::synthetic_set`]).
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
    /// The folder generated into (`<dir>/voc`, `<dir>/ade`, `<dir>/cls`);
    /// unset: the common parent of the dataset folders named so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
}

impl DataConfig {
    /// The run's tasks: `tasks`, else every task whose dataset is set.
    pub fn run_tasks(&self) -> TaskSet {
        self.tasks.unwrap_or_else(|| self.configured_tasks())
    }

    /// The tasks whose dataset folder is set.
    pub fn configured_tasks(&self) -> TaskSet {
        Task::ALL.into_iter().filter(|&task| self.folder(task).is_some()).collect()
    }

    /// `task`'s dataset folder (`data.voc`, `data.ade`, `data.cls`), when set.
    pub fn folder(&self, task: Task) -> Option<&PathBuf> {
        match task {
            Task::Det => self.voc.as_ref(),
            Task::Seg => self.ade.as_ref(),
            Task::Cls => self.cls.as_ref(),
        }
    }

    /// The names of `task`'s training and validation splits.
    pub fn split_names(&self, task: Task) -> [&str; 2] {
        match task {
            Task::Det => [&self.voc_train_split, &self.voc_val_split],
            Task::Seg => [&self.ade_train_split, &self.ade_val_split],
            Task::Cls => [&self.cls_train_split, &self.cls_val_split],
        }
    }

    /// Split `split` of `task`'s dataset, in a run with `task`.
    pub fn open_split(&self, task: Task, split: &str) -> Result<Option<DatasetSplit>> {
        Ok(match task {
            Task::Det => self.det_spec().map(|spec| spec.open(split, None)).transpose()?.map(DatasetSplit::Det),
            Task::Seg => self.seg_spec().map(|spec| spec.open(split)).transpose()?.map(DatasetSplit::Seg),
            Task::Cls => self.open_cls(split)?.map(DatasetSplit::Cls),
        })
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
        self.run_tasks().iter().filter_map(|task| Some((task, self.folder(task)?))).collect()
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
    /// its folder and the generator's settings, with a count of 0 for each
    /// set the run does not take from it. A dataset folder is generated when
    /// it is `<dir>/voc`, `<dir>/ade` or `<dir>/cls` of the generator's folder
    /// (`data.synthetic.dir`, else the common parent of the folders so named)
    /// and is not a dataset of the user's already there; any other folder is
    /// the user's own, so `--set data.voc=datasets/coco` over a synthetic
    /// preset trains detection on COCO beside the generated segmentation set.
    /// `None` when nothing is generated.
    pub fn synthetic_set(&self) -> Result<Option<(PathBuf, crate::data::synth::SynthConfig)>> {
        let Some(synthetic) = &self.synthetic else {
            return Ok(None);
        };
        let folders = [(Task::Det, "voc", &self.voc), (Task::Seg, "ade", &self.ade), (Task::Cls, "cls", &self.cls)];
        let named: Vec<(Task, &str, &PathBuf)> = folders
            .iter()
            .filter_map(|&(task, name, dir)| Some((task, name, dir.as_ref().filter(|d| d.file_name() == Some(name.as_ref()))?)))
            .collect();
        let dir = match &synthetic.dir {
            Some(dir) => dir.clone(),
            None => {
                let Some(&(first_task, _, first)) = named.first() else { return Ok(None) };
                let dir = first.parent().map(Path::to_path_buf).unwrap_or_default();
                if let Some((task, _, path)) = named.iter().find(|(_, name, path)| **path != dir.join(name)) {
                    bail!(
                        "data.synthetic: {} ({}) and {} ({}) name generated folders in two places: set data.synthetic.dir to the folder to generate into",
                        DataConfig::key(first_task),
                        first.display(),
                        DataConfig::key(*task),
                        path.display()
                    );
                }
                dir
            }
        };
        // A folder there that the generator did not write is a dataset of the user's.
        let generator_made = crate::data::synth::is_generator_folder(&dir);
        let generated = |name: &str, folder: &Option<PathBuf>| {
            folder.as_ref().is_some_and(|f| *f == dir.join(name) && (generator_made || !f.exists()))
        };
        let count = |name: &str, folder: &Option<PathBuf>, images: usize| if generated(name, folder) { images } else { 0 };
        if synthetic.cls_images > 0 && self.cls.is_none() {
            bail!("data.synthetic.cls_images: set data.cls = \"{}\" too", dir.join("cls").display());
        }
        let config = crate::data::synth::SynthConfig {
            seed: synthetic.seed,
            det_images: count("voc", &self.voc, synthetic.det_images),
            seg_images: count("ade", &self.ade, synthetic.seg_images),
            cls_images: count("cls", &self.cls, synthetic.cls_images),
            size: synthetic.size,
            ..Default::default()
        };
        if config.det_images + config.seg_images + config.cls_images == 0 {
            return Ok(None);
        }
        Ok(Some((dir, config)))
    }
}

/// The environment variable that caps every training loop at N steps (a new
/// run's `steps`, scaled with it, and compression's fine-tuning): a smoke test
/// of documented commands, e.g. `TWINHEAD_STEPS=8 twinhead train --preset replay`.
pub const STEPS_CAP_VAR: &str = "TWINHEAD_STEPS";

/// [`STEPS_CAP_VAR`]'s value, when it is set.
pub fn steps_cap() -> Result<Option<usize>> {
    match std::env::var(STEPS_CAP_VAR) {
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(cap) if cap > 0 => Ok(Some(cap)),
            _ => bail!("{STEPS_CAP_VAR}={text:?}: expected a number of steps, at least 1"),
        },
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => bail!("{STEPS_CAP_VAR}: expected a number of steps, at least 1"),
    }
}

/// The largest input side accepted: a batch of 16 at 4096² is 3 GiB of input alone.
pub const MAX_IMAGE_SIZE: u32 = 4096;
/// The largest batch accepted (before it meets the image size in memory).
pub const MAX_BATCH_SIZE: usize = 1024;
/// The most loader threads a run or a bench asks for.
pub const MAX_THREADS: usize = 256;
/// The longest run: a billion steps, years of training, still far from any overflow.
pub const MAX_STEPS: usize = 1_000_000_000;

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
    /// Evaluate every task every this many steps (and at the end).
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
    /// The size of each task's fixed validation subset.
    pub fn images(&self) -> PerTask<usize> {
        PerTask::from([self.det_images, self.seg_images, self.cls_images])
    }

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
        // An error in a key the command line set names that `--set`, not the preset.
        let mut config = Self::from_value(value, overrides).map_err(|e| if e.is::<OverrideError>() { e } else { e.context(origin) })?;
        if let Some(cap) = steps_cap()? {
            config.shorten(cap);
            config.validate().with_context(|| format!("{STEPS_CAP_VAR}={cap}"))?;
        }
        Ok(config)
    }

    /// Trains at most `cap` steps: `steps` becomes `cap`, and the settings
    /// counted in steps (warm-up, evaluation and checkpoint intervals, the
    /// sequential switch steps) shrink by the same factor.
    pub fn shorten(&mut self, cap: usize) {
        if cap == 0 || self.steps <= cap {
            return;
        }
        let (from, to) = (self.steps, cap);
        let scale = |steps: usize| ((steps as u128 * to as u128).div_ceil(from as u128) as usize).clamp(1, to);
        self.steps = to;
        self.optim.warmup_steps = scale(self.optim.warmup_steps).min(self.optim.warmup_steps);
        self.eval.every = scale(self.eval.every);
        self.checkpoint.every = scale(self.checkpoint.every);
        self.strategy.rescale_steps(from, to);
    }

    /// Parses TOML text, applies `key=value` overrides (dotted keys, TOML values;
    /// bare words are taken as strings) and checks the result.
    pub fn from_toml(text: &str, overrides: &[String]) -> Result<Self> {
        Self::from_value(toml::from_str(text).context("invalid TOML")?, overrides)
    }

    /// A configuration as a run folder's config.toml holds it, or the same as JSON.
    pub fn parse(text: &str) -> Result<Self> {
        if text.trim_start().starts_with('{') {
            let value: toml::Value = serde_json::from_str(text).context("invalid JSON")?;
            return Self::from_value(value, &[]);
        }
        Self::from_toml(text, &[])
    }

    fn from_value(mut value: toml::Value, overrides: &[String]) -> Result<Self> {
        for item in overrides {
            apply_override(&mut value, item).map_err(|e| anyhow::Error::from(OverrideError(format!("{e:#}"))))?;
        }
        let config: Self = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { "config".to_string() } else { path };
            blame(overrides, &path, anyhow::anyhow!("{path}: {}", e.inner()))
        })?;
        config.validate().map_err(|e| {
            let message = format!("{e:#}");
            let key = message.split(':').next().unwrap_or_default().to_string();
            blame(overrides, &key, e)
        })?;
        Ok(config)
    }

    pub fn to_toml(&self) -> Result<String> {
        self.check_paths()?;
        Ok(toml::to_string_pretty(self)?)
    }

    /// TOML (config.toml) holds only UTF-8 text: a folder whose path is not
    /// UTF-8 is refused by its key instead of failing the run's first write.
    fn check_paths(&self) -> Result<()> {
        let (data, model) = (&self.data, &self.model);
        let synthetic_dir = data.synthetic.as_ref().and_then(|s| s.dir.as_ref());
        let paths = [
            ("data.voc", data.voc.as_ref()),
            ("data.ade", data.ade.as_ref()),
            ("data.seg_classes", data.seg_classes.as_ref()),
            ("data.cls", data.cls.as_ref()),
            ("data.synthetic.dir", synthetic_dir),
            ("model.pretrained", model.pretrained.as_ref()),
            ("model.init", model.init.as_ref()),
        ];
        match paths.into_iter().find(|(_, path)| path.is_some_and(|p| p.to_str().is_none())) {
            Some((key, Some(path))) => bail!("{key}: {} is not UTF-8, and config.toml holds only UTF-8 text: rename it", path.display()),
            _ => Ok(()),
        }
    }

    pub fn validate(&self) -> Result<()> {
        let check = |ok: bool, key: &str, why: &str| if ok { Ok(()) } else { bail!("{key}: {why}") };
        check((1..=MAX_STEPS).contains(&self.steps), "steps", &format!("must be between 1 and {MAX_STEPS}"))?;
        check(self.data.image_size >= 32 && self.data.image_size % 32 == 0, "data.image_size", "must be a multiple of 32 (the coarsest stride)")?;
        check(self.data.image_size <= MAX_IMAGE_SIZE, "data.image_size", &format!("must be at most {MAX_IMAGE_SIZE} pixels"))?;
        check((1..=MAX_BATCH_SIZE).contains(&self.data.batch_size), "data.batch_size", &format!("must be between 1 and {MAX_BATCH_SIZE}"))?;
        check(self.data.threads <= MAX_THREADS, "data.threads", &format!("must be at most {MAX_THREADS} (0 = one per core)"))?;
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
        self.check_paths()?;
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

/// An error in a key a `--set` gave: it names the `--set` as the user typed it.
#[derive(Debug)]
struct OverrideError(String);

impl std::fmt::Display for OverrideError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OverrideError {}

/// `error` (about configuration key `key`) as an error of the last `--set`
/// that touched the key or a key under it, when one did.
fn blame(overrides: &[String], key: &str, error: anyhow::Error) -> anyhow::Error {
    let related = |set: &str| {
        let set = set.trim();
        set == key || set.starts_with(&format!("{key}.")) || key.starts_with(&format!("{set}."))
    };
    match overrides.iter().rev().find(|item| item.split_once('=').is_some_and(|(set, _)| related(set))) {
        Some(item) => OverrideError(format!("--set {item}: {error:#}")).into(),
        None => error,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn quick(overrides: &[&str]) -> Result<TrainConfig> {
        TrainConfig::load_preset("quick", &overrides.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn a_dataset_of_the_users_replaces_its_generated_set_only() {
        let generated = |config: &TrainConfig| config.data.synthetic_set().unwrap().map(|(dir, c)| (dir, c.det_images, c.seg_images));
        let synth = PathBuf::from("datasets/synth");
        assert_eq!(generated(&quick(&[]).unwrap()), Some((synth.clone(), 600, 600)));
        // COCO for detection: segmentation stays generated.
        let coco = quick(&["data.voc=datasets/coco", "data.voc_train_split=train2017"]).unwrap();
        assert_eq!(generated(&coco), Some((synth.clone(), 0, 600)));
        let missing = quick(&["data.voc=nope"]).unwrap();
        assert_eq!(generated(&missing), Some((synth.clone(), 0, 600)));
        // Both folders elsewhere: nothing generated.
        let own = quick(&["data.voc=mine/VOC2007", "data.ade=mine/ADEChallengeData2016"]).unwrap();
        assert_eq!(generated(&own), None);
        // The whole set moved: generated there.
        let moved = quick(&["data.voc=elsewhere/voc", "data.ade=elsewhere/ade"]).unwrap();
        assert_eq!(generated(&moved), Some((PathBuf::from("elsewhere"), 600, 600)));
        // A folder named like a generated one but elsewhere: ambiguous, unless the generator's folder is given.
        let error = generated_error(&quick(&["data.voc=mine/voc"]).unwrap());
        assert!(error.contains("data.voc") && error.contains("data.ade") && error.contains("data.synthetic.dir"), "{error}");
        let told = quick(&["data.voc=mine/voc", "data.synthetic.dir=datasets/synth"]).unwrap();
        assert_eq!(generated(&told), Some((synth, 0, 600)));
        // A dataset of the user's already at the generated place is left alone.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("voc/Annotations")).unwrap();
        let theirs = quick(&[&format!("data.voc={}", dir.path().join("voc").display()), &format!("data.ade={}", dir.path().join("ade").display())]).unwrap();
        assert_eq!(generated(&theirs), Some((dir.path().to_path_buf(), 0, 600)));
    }

    #[test]
    fn a_path_that_is_not_utf8_is_refused_by_its_key() {
        use std::os::unix::ffi::OsStrExt;
        let mut config = quick(&[]).unwrap();
        config.data.voc = Some(PathBuf::from(std::ffi::OsStr::from_bytes(b"caf\xe9/voc")));
        for error in [config.validate().unwrap_err(), config.to_toml().unwrap_err()] {
            let error = format!("{error:#}");
            assert!(error.starts_with("data.voc: caf") && error.contains("not UTF-8"), "{error}");
        }
    }

    fn generated_error(config: &TrainConfig) -> String {
        format!("{:#}", config.data.synthetic_set().unwrap_err())
    }

    #[test]
    fn an_error_in_a_key_set_on_the_command_line_names_the_set() {
        let error = format!("{:#}", quick(&["foo.bar=1"]).unwrap_err());
        assert!(error.starts_with("--set foo.bar=1: foo: unknown field"), "{error}");
        let error = format!("{:#}", quick(&["steps=abc"]).unwrap_err());
        assert!(error.starts_with("--set steps=abc: steps: invalid type"), "{error}");
        let error = format!("{:#}", quick(&["steps=0"]).unwrap_err());
        assert!(error.starts_with("--set steps=0: steps: must be between 1 and 1000000000"), "{error}");
        let error = format!("{:#}", quick(&["strategy.kind=sequential", "strategy.switch_step=900"]).unwrap_err());
        assert!(error.starts_with("--set strategy.switch_step=900: strategy"), "{error}");
        // An error the command line did not cause names the preset.
        let dir = tempfile::tempdir().unwrap();
        let preset = dir.path().join("bad.toml");
        std::fs::write(&preset, "name = \"bad\"\nseed = 0\nsteps = 0\n[data]\nvoc = \"v\"\nimage_size = 64\nbatch_size = 2\n[model]\nsize = \"n\"\n[strategy]\nkind = \"joint\"\n").unwrap();
        let error = format!("{:#}", TrainConfig::load_preset(preset.to_str().unwrap(), &["optim.lr=0.1".into()]).unwrap_err());
        assert!(error.starts_with(&format!("{}: steps: must be between 1 and 1000000000", preset.display())), "{error}");
    }

    #[test]
    fn a_shortened_run_keeps_its_proportions() {
        let mut config = TrainConfig::load_preset("replay", &["steps=300".into(), "strategy.switch_step=150".into()]).unwrap();
        config.shorten(6);
        assert_eq!((config.steps, config.eval.every, config.checkpoint.every), (6, 2, 2));
        assert_eq!(config.strategy.sequence().unwrap().switch_step, 3);
        config.validate().unwrap();
        let mut three = TrainConfig::load_preset("allinone", &["strategy.kind=sequential".into(), "strategy.order=[\"det\", \"seg\", \"cls\"]".into(), "strategy.switch_steps=[200, 400]".into()]).unwrap();
        three.shorten(3);
        assert_eq!(three.strategy.sequence().unwrap().switch_steps, vec![1, 2]);
        three.validate().unwrap();
    }
}
