//! Checkpoints: `runs/<name>/checkpoints/<kind>/` holding the trained weights
//! (`trainee.mpk`), the optimiser state (for `last`) and `state.json` (step,
//! loader positions, best metrics, class lists, the model configuration).
//! Each is written into a temporary folder and renamed into place, so a killed
//! run never leaves a half-written checkpoint.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use super::strategy::StrategyConfig;
use super::trainee::Trainee;
use crate::data::loader::Position;
use crate::model::yolov8::ImportReport;
use crate::model::task::PerTask;
use crate::model::{ModelConfig, Task, TwinNet};

/// Which checkpoint: the latest, the best per task, the snapshot taken at a
/// sequential strategy's task switch (the LwF teacher, the EWC anchor), or a
/// compressed model (`compressed/<method>`, written by `twinhead compress`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum CheckpointKind {
    #[default]
    Last,
    BestDet,
    BestSeg,
    BestCls,
    Switch,
    /// The folder name under `compressed/` (the method, `:` written `-`).
    Compressed(String),
}

impl Serialize for CheckpointKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for CheckpointKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        Self::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// The run's sub-folder holding compressed models.
pub const COMPRESSED_DIR: &str = "compressed";

impl CheckpointKind {
    /// The checkpoints training writes, in the order pickers offer them
    /// (`switch` only in the sequential family's runs).
    pub const TRAINED: [CheckpointKind; 5] = [Self::Last, Self::BestDet, Self::BestSeg, Self::BestCls, Self::Switch];

    /// The checkpoint of `task`'s best evaluation so far.
    pub fn best(task: Task) -> Self {
        match task {
            Task::Det => Self::BestDet,
            Task::Seg => Self::BestSeg,
            Task::Cls => Self::BestCls,
        }
    }

    /// Every checkpoint name accepted, for help texts and errors:
    /// `last, best-det, best-seg, best-cls, switch or compressed/<method>`.
    pub fn accepted() -> String {
        let trained: Vec<String> = Self::TRAINED.iter().map(Self::name).collect();
        format!("{} or {COMPRESSED_DIR}/<method>", trained.join(", "))
    }

    pub fn name(&self) -> String {
        match self {
            Self::Last => "last".into(),
            Self::BestDet => "best-det".into(),
            Self::BestSeg => "best-seg".into(),
            Self::BestCls => "best-cls".into(),
            Self::Switch => "switch".into(),
            Self::Compressed(folder) => format!("{COMPRESSED_DIR}/{folder}"),
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "last" => Self::Last,
            "best-det" => Self::BestDet,
            "best-seg" => Self::BestSeg,
            "best-cls" => Self::BestCls,
            "switch" => Self::Switch,
            other => match other.strip_prefix("compressed/") {
                Some(method) if !method.is_empty() && !method.contains(['/', '\\']) && method != ".." => {
                    Self::Compressed(method.replace(':', "-"))
                }
                _ => bail!("unknown checkpoint {other:?} ({})", Self::accepted()),
            },
        })
    }
}

/// Everything besides the weights that resuming or predicting needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "StateFile", into = "StateFile")]
pub struct TrainerState {
    /// Steps completed.
    pub step: usize,
    /// Where each task's training loader is.
    pub positions: PerTask<Position>,
    /// Where replay's buffer loader of the first task is (the only buffer of a
    /// two-phase run); see [`TrainerState::replay_position_of`].
    pub replay_position: Position,
    /// Where the buffer loaders of the later earlier tasks (`order[1]`, …) are,
    /// in runs of three or more phases.
    pub replay_later_positions: Vec<Position>,
    /// Each task's best headline metric so far (0 for a task the run lacks).
    pub best: PerTask<f64>,
    /// Factor the user applied to the scheduled learning rate (set-learning-rate).
    pub lr_scale: f64,
    /// The strategy in force (it may have been changed while running).
    pub strategy: StrategyConfig,
    /// Step at which the strategy in force took over.
    pub strategy_since: usize,
    pub wall_seconds: f64,
    pub model: ModelConfig,
    /// Each task's class names (empty for a task the run lacks).
    pub classes: PerTask<Vec<String>>,
    pub image_size: u32,
    /// What `model.pretrained` loaded from a YOLOv8 checkpoint, and what started fresh.
    pub pretrained: Option<ImportReport>,
}

/// `state.json` as runs write it: a field per task, classification's left
/// out of runs without it (as runs before it had none).
#[derive(Serialize, Deserialize)]
struct StateFile {
    step: usize,
    det_position: Position,
    seg_position: Position,
    #[serde(default, skip_serializing_if = "is_start")]
    cls_position: Position,
    #[serde(default)]
    replay_position: Position,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    replay_later_positions: Vec<Position>,
    best_map50: f64,
    best_miou: f64,
    #[serde(default, skip_serializing_if = "is_unset")]
    best_top1: f64,
    lr_scale: f64,
    strategy: StrategyConfig,
    strategy_since: usize,
    wall_seconds: f64,
    model: ModelConfig,
    det_classes: Vec<String>,
    seg_classes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    cls_classes: Vec<String>,
    image_size: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pretrained: Option<ImportReport>,
}

impl From<StateFile> for TrainerState {
    fn from(file: StateFile) -> Self {
        Self {
            step: file.step,
            positions: PerTask::from([file.det_position, file.seg_position, file.cls_position]),
            replay_position: file.replay_position,
            replay_later_positions: file.replay_later_positions,
            best: PerTask::from([file.best_map50, file.best_miou, file.best_top1]),
            lr_scale: file.lr_scale,
            strategy: file.strategy,
            strategy_since: file.strategy_since,
            wall_seconds: file.wall_seconds,
            model: file.model,
            classes: PerTask::from([file.det_classes, file.seg_classes, file.cls_classes]),
            image_size: file.image_size,
            pretrained: file.pretrained,
        }
    }
}

impl From<TrainerState> for StateFile {
    fn from(state: TrainerState) -> Self {
        let [det_classes, seg_classes, cls_classes] = state.classes.into_array();
        Self {
            step: state.step,
            det_position: state.positions[Task::Det],
            seg_position: state.positions[Task::Seg],
            cls_position: state.positions[Task::Cls],
            replay_position: state.replay_position,
            replay_later_positions: state.replay_later_positions,
            best_map50: state.best[Task::Det],
            best_miou: state.best[Task::Seg],
            best_top1: state.best[Task::Cls],
            lr_scale: state.lr_scale,
            strategy: state.strategy,
            strategy_since: state.strategy_since,
            wall_seconds: state.wall_seconds,
            model: state.model,
            det_classes,
            seg_classes,
            cls_classes,
            image_size: state.image_size,
            pretrained: state.pretrained,
        }
    }
}

impl TrainerState {
    /// Where the replay buffer of the task at `index` in the strategy's order is.
    pub fn replay_position_of(&self, index: usize) -> Position {
        match index {
            0 => self.replay_position,
            later => self.replay_later_positions.get(later - 1).copied().unwrap_or_default(),
        }
    }

    pub fn set_replay_position(&mut self, index: usize, position: Position) {
        match index {
            0 => self.replay_position = position,
            later => {
                if self.replay_later_positions.len() < later {
                    self.replay_later_positions.resize(later, Position::default());
                }
                self.replay_later_positions[later - 1] = position;
            }
        }
    }

}

fn is_start(position: &Position) -> bool {
    *position == Position::default()
}

fn is_unset(value: &f64) -> bool {
    *value == 0.0
}

pub fn checkpoint_dir(run_dir: &Path, kind: &CheckpointKind) -> PathBuf {
    match kind {
        CheckpointKind::Compressed(folder) => run_dir.join(COMPRESSED_DIR).join(folder),
        _ => run_dir.join("checkpoints").join(kind.name()),
    }
}

/// Writes a checkpoint atomically; `write_extra` adds files (the optimiser state).
pub fn save<B: Backend>(
    run_dir: &Path,
    kind: &CheckpointKind,
    trainee: &Trainee<B>,
    state: &TrainerState,
    write_extra: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    save_to(&checkpoint_dir(run_dir, kind), trainee, state, write_extra)
}

/// Writes a checkpoint folder `target` atomically: into `<target>.tmp`, then
/// renamed into place (the previous one kept as `<target>.old` in between).
pub fn save_to<B: Backend>(
    target: &Path,
    trainee: &Trainee<B>,
    state: &TrainerState,
    write_extra: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let name = target.file_name().expect("checkpoint dir has a name").to_string_lossy().into_owned();
    let parent = target.parent().expect("checkpoint dir has a parent");
    let tmp = parent.join(format!("{name}.tmp"));
    let old = parent.join(format!("{name}.old"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("{}: cannot clear", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    trainee
        .clone()
        .save_file(tmp.join("trainee"), &recorder)
        .with_context(|| format!("{}: cannot write weights", tmp.display()))?;
    write_extra(&tmp)?;
    std::fs::write(tmp.join("state.json"), serde_json::to_string_pretty(state)?)
        .with_context(|| format!("{}: cannot write state", tmp.display()))?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    if target.exists() {
        std::fs::rename(target, &old)?;
    }
    std::fs::rename(&tmp, target).with_context(|| format!("{}: cannot move into place", target.display()))?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(target.to_path_buf())
}

/// The compressed models of a run (`compressed/<method>/` folders holding a
/// checkpoint), by name.
/// The checkpoints a picker offers for `run_dir`: `last` (written soon in a
/// run that has none yet), the other trained ones it has, its compressed models.
pub fn available(run_dir: &Path) -> Vec<CheckpointKind> {
    let trained = CheckpointKind::TRAINED.into_iter().filter(|kind| *kind == CheckpointKind::Last || find(run_dir, kind).is_ok());
    trained.chain(compressed(run_dir)).collect()
}

pub fn compressed(run_dir: &Path) -> Vec<CheckpointKind> {
    let Ok(entries) = std::fs::read_dir(run_dir.join(COMPRESSED_DIR)) else {
        return Vec::new();
    };
    let mut kinds: Vec<CheckpointKind> = entries
        .flatten()
        .filter(|e| e.path().join("state.json").is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|name| !name.ends_with(".tmp") && !name.ends_with(".old"))
        .map(CheckpointKind::Compressed)
        .collect();
    kinds.sort_by_key(CheckpointKind::name);
    kinds
}

/// The folder of a complete checkpoint: `<kind>/`, or `<kind>.old/` when a run was
/// killed between the two renames of [`save`].
pub fn find(run_dir: &Path, kind: &CheckpointKind) -> Result<PathBuf> {
    let dir = checkpoint_dir(run_dir, kind);
    if dir.join("state.json").is_file() {
        return Ok(dir);
    }
    let name = dir.file_name().expect("checkpoint dir has a name").to_string_lossy().into_owned();
    let old = dir.with_file_name(format!("{name}.old"));
    if old.join("state.json").is_file() {
        return Ok(old);
    }
    bail!("{}: no {} checkpoint", run_dir.display(), kind.name())
}

pub fn read_state(dir: &Path) -> Result<TrainerState> {
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a valid checkpoint state", path.display()))
}

/// The file (without extension) holding a checkpoint's weight EMA, when the run keeps one.
pub const EMA_FILE: &str = "ema";
/// The file (without extension) holding the pseudo-label teacher of
/// `alternate`/`joint` with `pseudo_labels` (its own weight EMA), in `last`.
pub const TEACHER_FILE: &str = "teacher";

/// Writes a network kept beside the weights (the weight EMA, the pseudo-label
/// teacher) as `file` into a checkpoint folder being written (see [`save`]'s `write_extra`).
pub fn save_net<B: Backend>(dir: &Path, file: &str, net: &TwinNet<B>) -> Result<()> {
    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    net.clone().save_file(dir.join(file), &recorder).with_context(|| format!("{}: cannot write {file}.mpk", dir.display()))
}

/// The network a checkpoint folder keeps as `file` beside the weights, if it has one.
pub fn load_net<B: Backend>(dir: &Path, file: &str, state: &TrainerState, device: &B::Device) -> Result<Option<TwinNet<B>>> {
    let path = dir.join(file).with_extension("mpk");
    if !path.is_file() {
        return Ok(None);
    }
    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    let net = Trainee::<B>::new(&state.model, device)
        .net
        .load_file(dir.join(file), &recorder, device)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(Some(net))
}

/// The file [`load_inference_net`] reads in a checkpoint folder.
pub fn inference_weights_file(dir: &Path) -> PathBuf {
    let ema = dir.join(EMA_FILE).with_extension("mpk");
    if ema.is_file() {
        ema
    } else {
        dir.join("trainee.mpk")
    }
}

/// The network to predict with: the weight EMA when the run kept one, else the
/// weights (read only when there is no EMA).
pub fn load_inference_net<B: Backend>(dir: &Path, device: &B::Device) -> Result<(TwinNet<B>, TrainerState)> {
    let state = read_state(dir)?;
    match load_net::<B>(dir, EMA_FILE, &state, device)? {
        Some(net) => Ok((net, state)),
        None => load_trainee::<B>(dir, device).map(|(trainee, state)| (trainee.net, state)),
    }
}

/// Loads the weights of a checkpoint folder into a freshly built trainee.
pub fn load_trainee<B: Backend>(dir: &Path, device: &B::Device) -> Result<(Trainee<B>, TrainerState)> {
    let state = read_state(dir)?;
    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    let trainee = Trainee::<B>::new(&state.model, device)
        .load_file(dir.join("trainee"), &recorder, device)
        .with_context(|| format!("{}: cannot read weights", dir.join("trainee.mpk").display()))?;
    Ok((trainee, state))
}
