//! Forgetting-mitigation strategies: which task trains at each step, with what
//! learning-rate factor, what is frozen, and which extra penalty applies.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::pseudo::PseudoLabels;
pub use crate::model::task::{Task, TaskSet};
pub use super::task_gradients::GradientCombination;

/// How the task losses are combined by `alternate` and `joint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weighting {
    /// `Σ weights[t] · L_t` over the tasks the step trains.
    #[default]
    Fixed,
    /// Kendall et al.: `Σ L_i / (2σ_i²) + log σ_i` with learned `log σ_i²`.
    Uncertainty,
}

/// Fixed loss weights per task (`weights = { det = 1, seg = 1, cls = 1 }`; a
/// task left out weighs 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskWeights {
    pub det: f32,
    pub seg: f32,
    #[serde(skip_serializing_if = "is_one")]
    pub cls: f32,
}

impl Default for TaskWeights {
    fn default() -> Self {
        Self { det: 1.0, seg: 1.0, cls: 1.0 }
    }
}

impl TaskWeights {
    pub fn get(&self, task: Task) -> f32 {
        match task {
            Task::Det => self.det,
            Task::Seg => self.seg,
            Task::Cls => self.cls,
        }
    }

    pub fn get_mut(&mut self, task: Task) -> &mut f32 {
        match task {
            Task::Det => &mut self.det,
            Task::Seg => &mut self.seg,
            Task::Cls => &mut self.cls,
        }
    }

    fn is_unit(&self) -> bool {
        *self == Self::default()
    }
}

/// What `freeze` holds fixed in its later phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum FreezeScope {
    /// The stem and the first `k` backbone stages (1–4).
    Stages(usize),
    Backbone,
    BackboneAndNeck,
}

impl TryFrom<String> for FreezeScope {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "backbone" => Ok(Self::Backbone),
            "backbone+neck" => Ok(Self::BackboneAndNeck),
            other => other
                .strip_prefix("stages:")
                .and_then(|k| k.parse().ok())
                .filter(|k| (1..=4).contains(k))
                .map(Self::Stages)
                .ok_or_else(|| format!("{other:?} is not one of \"backbone\", \"backbone+neck\", \"stages:1\"..\"stages:4\"")),
        }
    }
}

impl From<FreezeScope> for String {
    fn from(scope: FreezeScope) -> String {
        match scope {
            FreezeScope::Stages(k) => format!("stages:{k}"),
            FreezeScope::Backbone => "backbone".into(),
            FreezeScope::BackboneAndNeck => "backbone+neck".into(),
        }
    }
}

fn one() -> usize {
    1
}
fn unit() -> f32 {
    1.0
}
fn tenth() -> f64 {
    0.1
}
fn det() -> Task {
    Task::Det
}
fn is_one(w: &f32) -> bool {
    *w == 1.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum StrategyConfig {
    /// Switch task every `period` steps, round-robin over the run's tasks, detection first.
    Alternate {
        #[serde(default = "one")]
        period: usize,
        #[serde(default)]
        weighting: Weighting,
        /// Fixed weighting's factor per task: `weights = { det = 1, seg = 1, cls = 1 }`.
        #[serde(default, skip_serializing_if = "TaskWeights::is_unit")]
        weights: TaskWeights,
        /// The older spelling of `weights.det` (two-task configs and runs).
        #[serde(default = "unit", skip_serializing_if = "is_one")]
        det_weight: f32,
        /// The older spelling of `weights.seg`.
        #[serde(default = "unit", skip_serializing_if = "is_one")]
        seg_weight: f32,
        /// Pseudo-labels for the task each batch lacks, from a teacher EMA
        /// (`pseudo_labels = true`, or a table of [`PseudoLabels`] settings).
        #[serde(default, with = "pseudo_option", skip_serializing_if = "Option::is_none")]
        pseudo_labels: Option<PseudoLabels>,
    },
    /// Every step one batch of each of the run's tasks, one weighted loss, one
    /// optimiser step (the CVPR23 Track1 recipe).
    Joint {
        #[serde(default)]
        weighting: Weighting,
        /// Fixed weighting's factor per task: `weights = { det = 1, seg = 1, cls = 1 }`.
        #[serde(default, skip_serializing_if = "TaskWeights::is_unit")]
        weights: TaskWeights,
        /// The older spelling of `weights.det` (two-task configs and runs).
        #[serde(default = "unit", skip_serializing_if = "is_one")]
        det_weight: f32,
        /// The older spelling of `weights.seg`.
        #[serde(default = "unit", skip_serializing_if = "is_one")]
        seg_weight: f32,
        /// Pseudo-labels for the task each batch lacks, from a teacher EMA
        /// (`pseudo_labels = true`, or a table of [`PseudoLabels`] settings).
        #[serde(default, with = "pseudo_option", skip_serializing_if = "Option::is_none")]
        pseudo_labels: Option<PseudoLabels>,
        /// How the tasks' gradients are combined: `sum`, or `pcgrad` (gradient surgery).
        #[serde(default, skip_serializing_if = "GradientCombination::is_sum")]
        gradients: GradientCombination,
    },
    /// `first` until `switch_step`, then the other task with the learning rate × `lr_factor`;
    /// with `order` and `switch_steps`, each task in turn.
    Sequential {
        #[serde(default = "det")]
        first: Task,
        #[serde(default)]
        switch_step: usize,
        /// Three or more phases: the tasks in training order (then `first` is unused).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        order: Vec<Task>,
        /// The step each later phase of `order` starts at (then `switch_step` is unused).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        switch_steps: Vec<usize>,
        #[serde(default = "tenth")]
        lr_factor: f64,
    },
    /// `sequential`, with part of the network frozen in every later phase.
    Freeze {
        #[serde(default = "det")]
        first: Task,
        #[serde(default)]
        switch_step: usize,
        /// Three or more phases: the tasks in training order (then `first` is unused).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        order: Vec<Task>,
        /// The step each later phase of `order` starts at (then `switch_step` is unused).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        switch_steps: Vec<usize>,
        #[serde(default = "tenth")]
        lr_factor: f64,
        freeze: FreezeScope,
    },
    /// `sequential`; in each later phase the earlier tasks' head outputs on the
    /// current images are distilled from a frozen snapshot taken at the switch.
    Lwf {
        #[serde(default = "det")]
        first: Task,
        #[serde(default)]
        switch_step: usize,
        /// Three or more phases: the tasks in training order (then `first` is unused).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        order: Vec<Task>,
        /// The step each later phase of `order` starts at (then `switch_step` is unused).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        switch_steps: Vec<usize>,
        #[serde(default = "tenth")]
        lr_factor: f64,
        #[serde(default = "unit")]
        weight: f32,
        #[serde(default = "two")]
        temperature: f32,
    },
    /// `sequential`; in each later phase a diagonal-Fisher penalty, estimated at
    /// the switch on every earlier task, holds the shared weights near their values.
    Ewc {
        #[serde(default = "det")]
        first: Task,
        #[serde(default)]
        switch_step: usize,
        /// Three or more phases: the tasks in training order (then `first` is unused).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        order: Vec<Task>,
        /// The step each later phase of `order` starts at (then `switch_step` is unused).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        switch_steps: Vec<usize>,
        #[serde(default = "tenth")]
        lr_factor: f64,
        #[serde(default = "ewc_lambda")]
        lambda: f32,
        #[serde(default = "fisher_batches")]
        fisher_batches: usize,
    },
    /// `sequential`; in each later phase every `every`-th step also trains an
    /// earlier task again (in turn), on a batch from a fixed buffer of its
    /// training images (rehearsal).
    Replay {
        #[serde(default = "det")]
        first: Task,
        #[serde(default)]
        switch_step: usize,
        /// Three or more phases: the tasks in training order (then `first` is unused).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        order: Vec<Task>,
        /// The step each later phase of `order` starts at (then `switch_step` is unused).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        switch_steps: Vec<usize>,
        #[serde(default = "tenth")]
        lr_factor: f64,
        /// Each earlier task's buffer: a count of images (≥ 1) or a fraction of its training split (< 1).
        #[serde(default = "replay_buffer")]
        buffer: f64,
        #[serde(default = "replay_every")]
        every: usize,
    },
    /// `sequential`; in each later phase the snapshot at the switch labels the
    /// new task's images for every earlier task (pseudo-labels: boxes, masks,
    /// soft class distributions), and the network trains on all labels of each image.
    Pseudo {
        #[serde(default = "det")]
        first: Task,
        #[serde(default)]
        switch_step: usize,
        /// Three or more phases: the tasks in training order (then `first` is unused).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        order: Vec<Task>,
        /// The step each later phase of `order` starts at (then `switch_step` is unused).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        switch_steps: Vec<usize>,
        #[serde(default = "tenth")]
        lr_factor: f64,
        #[serde(default)]
        pseudo_labels: PseudoLabels,
    },
}

fn two() -> f32 {
    2.0
}
/// EWC's default λ: with the Fisher normalised to mean 1, a weight of average
/// importance is pulled back with force `λ·(θ − θ*)`.
pub const EWC_LAMBDA: f32 = 10.0;
/// How many batches of each earlier task EWC's Fisher estimate averages by default.
pub const FISHER_BATCHES: usize = 8;

/// Replay's default buffer: 5 % of each earlier task's training images.
pub const REPLAY_BUFFER: f64 = 0.05;
/// Replay's default period: an earlier task's batch added to every 4th later-phase step.
pub const REPLAY_EVERY: usize = 4;

/// `pseudo_labels` of `alternate`/`joint`: `true` (the default settings),
/// `false`, or a table of settings.
mod pseudo_option {
    use serde::de::{self, MapAccess, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::PseudoLabels;

    pub fn serialize<S: Serializer>(value: &Option<PseudoLabels>, serializer: S) -> Result<S::Ok, S::Error> {
        value.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<PseudoLabels>, D::Error> {
        struct Switch;
        impl<'de> Visitor<'de> for Switch {
            type Value = Option<PseudoLabels>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false or a table of pseudo-label settings (weight, box_score, pixel_confidence, background_score, start_step)")
            }
            fn visit_bool<E: de::Error>(self, on: bool) -> Result<Self::Value, E> {
                Ok(on.then(PseudoLabels::default))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                PseudoLabels::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
            }
        }
        deserializer.deserialize_any(Switch)
    }
}
fn replay_buffer() -> f64 {
    REPLAY_BUFFER
}
fn replay_every() -> usize {
    REPLAY_EVERY
}
fn ewc_lambda() -> f32 {
    EWC_LAMBDA
}
fn fisher_batches() -> usize {
    FISHER_BATCHES
}

/// What one step trains, at which phase and rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepPlan {
    /// The tasks whose losses the step computes.
    pub tasks: TaskSet,
    /// The index of the phase in the sequence (0 before the first switch, and
    /// always for alternate/joint).
    pub phase: usize,
    pub lr_factor: f64,
    /// The task whose batch comes from its replay buffer (an earlier task, on
    /// every `every`-th step of replay's later phases, besides the new task's batch).
    pub replay: Option<Task>,
}

/// The sequential family's settings as written (`first`, the first switch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sequence {
    pub first: Task,
    pub switch_step: usize,
    pub lr_factor: f64,
}

/// Tasks named in prose: "detection", "detection and classification",
/// "detection, segmentation and classification".
fn list<'a>(tasks: impl Iterator<Item = &'a Task>) -> String {
    let names: Vec<String> = tasks.map(Task::to_string).collect();
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// The sequential settings, to edit in place (the workbench's strategy editor).
pub struct SequenceMut<'a> {
    pub first: &'a mut Task,
    pub switch_step: &'a mut usize,
    pub order: &'a mut Vec<Task>,
    pub switch_steps: &'a mut Vec<usize>,
    pub lr_factor: &'a mut f64,
}

/// A sequential schedule resolved for a run: the tasks in training order and
/// the step each later phase starts at.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSchedule {
    pub order: Vec<Task>,
    /// `switches[k]` starts phase `k + 1`.
    pub switches: Vec<usize>,
    pub lr_factor: f64,
}

impl TaskSchedule {
    pub fn phase_at(&self, step: usize) -> usize {
        self.switches.iter().filter(|&&switch| step >= switch).count()
    }

    /// The tasks trained before `phase`.
    pub fn earlier(&self, phase: usize) -> TaskSet {
        TaskSet::of(&self.order[..phase.min(self.order.len())])
    }
}

/// What a strategy needs to know of its run: the tasks it has and its length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunShape {
    pub tasks: TaskSet,
    pub steps: usize,
}

impl StrategyConfig {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Alternate { .. } => "alternate",
            Self::Joint { .. } => "joint",
            Self::Sequential { .. } => "sequential",
            Self::Freeze { .. } => "freeze",
            Self::Lwf { .. } => "lwf",
            Self::Ewc { .. } => "ewc",
            Self::Replay { .. } => "replay",
            Self::Pseudo { .. } => "pseudo",
        }
    }

    /// The sequential settings as written, for the strategies that have them
    /// (`first` is the first task of `order` when one is given).
    pub fn sequence(&self) -> Option<Sequence> {
        let (first, switch_step, lr_factor, order, switch_steps) = self.sequence_fields()?;
        Some(Sequence {
            first: order.first().copied().unwrap_or(first),
            switch_step: switch_steps.first().copied().unwrap_or(switch_step),
            lr_factor,
        })
    }

    fn sequence_fields(&self) -> Option<(Task, usize, f64, &[Task], &[usize])> {
        match self {
            Self::Sequential { first, switch_step, lr_factor, order, switch_steps }
            | Self::Freeze { first, switch_step, lr_factor, order, switch_steps, .. }
            | Self::Lwf { first, switch_step, lr_factor, order, switch_steps, .. }
            | Self::Ewc { first, switch_step, lr_factor, order, switch_steps, .. }
            | Self::Replay { first, switch_step, lr_factor, order, switch_steps, .. }
            | Self::Pseudo { first, switch_step, lr_factor, order, switch_steps, .. } => {
                Some((*first, *switch_step, *lr_factor, order, switch_steps))
            }
            Self::Alternate { .. } | Self::Joint { .. } => None,
        }
    }

    /// `order` and `switch_steps` as written (empty for a two-phase sequence and
    /// for the strategies without one).
    pub fn sequence_lists(&self) -> (Vec<Task>, Vec<usize>) {
        self.sequence_fields().map_or_else(Default::default, |(_, _, _, order, switches)| (order.to_vec(), switches.to_vec()))
    }

    /// The sequential schedule over `run`'s tasks: `order`, else `first` and
    /// then the run's other tasks; `switch_steps`, else `switch_step` and the
    /// rest of the run split evenly between the later phases.
    pub fn schedule(&self, run: RunShape) -> Option<TaskSchedule> {
        let (first, switch_step, lr_factor, order, switch_steps) = self.sequence_fields()?;
        let order: Vec<Task> = match order {
            [] => std::iter::once(first).chain(run.tasks.iter().filter(|&t| t != first)).collect(),
            given => given.to_vec(),
        };
        let switches = match switch_steps {
            [] => {
                let later = order.len().saturating_sub(1).max(1);
                let span = run.steps.saturating_sub(switch_step) / later;
                (0..later).map(|k| switch_step + k * span).collect()
            }
            given => given.to_vec(),
        };
        Some(TaskSchedule { order, switches, lr_factor })
    }

    /// The sequential settings of the strategies that have them, to edit.
    pub fn sequence_mut(&mut self) -> Option<SequenceMut<'_>> {
        match self {
            Self::Sequential { first, switch_step, lr_factor, order, switch_steps }
            | Self::Freeze { first, switch_step, lr_factor, order, switch_steps, .. }
            | Self::Lwf { first, switch_step, lr_factor, order, switch_steps, .. }
            | Self::Ewc { first, switch_step, lr_factor, order, switch_steps, .. }
            | Self::Replay { first, switch_step, lr_factor, order, switch_steps, .. }
            | Self::Pseudo { first, switch_step, lr_factor, order, switch_steps, .. } => {
                Some(SequenceMut { first, switch_step, order, switch_steps, lr_factor })
            }
            Self::Alternate { .. } | Self::Joint { .. } => None,
        }
    }

    /// The same strategy with `task` first (the sequential family, where an
    /// explicit order moves it to the front; others are unchanged).
    pub fn with_first(mut self, task: Task) -> Self {
        if let Some(sequence) = self.sequence_mut() {
            *sequence.first = task;
            if let Some(at) = sequence.order.iter().position(|&t| t == task) {
                sequence.order.remove(at);
                sequence.order.insert(0, task);
            }
        }
        self
    }

    /// The weighting mode of the strategies that combine tasks (fixed otherwise).
    pub fn weighting(&self) -> Weighting {
        match *self {
            Self::Alternate { weighting, .. } | Self::Joint { weighting, .. } => weighting,
            _ => Weighting::Fixed,
        }
    }

    /// The fixed loss weight of `task` (1 for the strategies that train one task at a time).
    pub fn weight(&self, task: Task) -> f32 {
        match *self {
            Self::Alternate { weights, det_weight, seg_weight, .. } | Self::Joint { weights, det_weight, seg_weight, .. } => {
                weights.get(task)
                    * match task {
                        Task::Det => det_weight,
                        Task::Seg => seg_weight,
                        Task::Cls => 1.0,
                    }
            }
            _ => 1.0,
        }
    }

    /// `alternate`/`joint` with every task weighing 1 (fixed weighting).
    pub fn alternate() -> Self {
        Self::Alternate { period: 1, weighting: Weighting::Fixed, weights: TaskWeights::default(), det_weight: 1.0, seg_weight: 1.0, pseudo_labels: None }
    }

    pub fn joint() -> Self {
        Self::Joint {
            weighting: Weighting::Fixed,
            weights: TaskWeights::default(),
            det_weight: 1.0,
            seg_weight: 1.0,
            pseudo_labels: None,
            gradients: GradientCombination::Sum,
        }
    }

    /// How the step's task gradients are combined (`joint`'s `gradients`; summed otherwise).
    pub fn gradients(&self) -> GradientCombination {
        match *self {
            Self::Joint { gradients, .. } => gradients,
            _ => GradientCombination::Sum,
        }
    }

    /// The pseudo-labels in force in `phase`: `pseudo`'s later phases, and
    /// throughout for `alternate`/`joint` with `pseudo_labels`.
    pub fn pseudo_labels(&self, phase: usize) -> Option<PseudoLabels> {
        match self {
            Self::Pseudo { pseudo_labels, .. } if phase >= 1 => Some(pseudo_labels.clone()),
            Self::Alternate { pseudo_labels, .. } | Self::Joint { pseudo_labels, .. } => pseudo_labels.clone(),
            _ => None,
        }
    }

    /// The strategy's name, with "+ pseudo-labels" or "+ pcgrad" where an option adds them.
    pub fn label(&self) -> String {
        let mut label = match self {
            Self::Alternate { pseudo_labels: Some(labels), .. } | Self::Joint { pseudo_labels: Some(labels), .. } => {
                let kind = if labels.has_specialist() { "specialists' pseudo-labels" } else { "pseudo-labels" };
                format!("{} + {kind}", self.name())
            }
            _ => self.name().to_string(),
        };
        if !self.gradients().is_sum() {
            label += &format!(" + {}", self.gradients().key());
        }
        label
    }

    pub fn plan(&self, step: usize, run: RunShape) -> StepPlan {
        if let Some(schedule) = self.schedule(run) {
            let phase = schedule.phase_at(step);
            let task = schedule.order[phase.min(schedule.order.len() - 1)];
            if phase == 0 {
                return StepPlan { tasks: task.into(), phase, lr_factor: 1.0, replay: None };
            }
            // A replay step adds a batch from an earlier task's buffer (the
            // earlier tasks in turn): the new task keeps every step.
            let since = step - schedule.switches[phase - 1];
            if let Self::Replay { every, .. } = *self {
                if since % every == every - 1 {
                    let earlier = schedule.order[(since / every) % phase];
                    return StepPlan { tasks: TaskSet::from(task).with(earlier), phase, lr_factor: schedule.lr_factor, replay: Some(earlier) };
                }
            }
            return StepPlan { tasks: task.into(), phase, lr_factor: schedule.lr_factor, replay: None };
        }
        let tasks = match *self {
            Self::Alternate { period, .. } => {
                let tasks: Vec<Task> = run.tasks.iter().collect();
                tasks[(step / period) % tasks.len()].into()
            }
            _ => run.tasks,
        };
        StepPlan { tasks, phase: 0, lr_factor: 1.0, replay: None }
    }

    /// A one-line description of a phase, for events and curve markers.
    pub fn describe_phase(&self, phase: usize, run: RunShape) -> String {
        let Some(schedule) = self.schedule(run) else {
            return self.label();
        };
        let task = schedule.order[phase.min(schedule.order.len() - 1)];
        if phase == 0 {
            return format!("{} {task}", self.name());
        }
        let earlier = list(schedule.order[..phase.min(schedule.order.len())].iter());
        match self {
            Self::Replay { buffer, every, .. } => format!(
                "{} {task} (lr ×{}; 1 step in {every} also replays {earlier} from a buffer of {})",
                self.name(),
                schedule.lr_factor,
                if *buffer >= 1.0 { format!("{buffer} images") } else { format!("{}%", buffer * 100.0) }
            ),
            Self::Pseudo { pseudo_labels, .. } => {
                let specialist = schedule.order[..phase].iter().all(|&t| pseudo_labels.teacher(t).is_some());
                format!(
                    "{} {task} (lr ×{}; {} labels its images for {earlier}, weight {})",
                    self.name(),
                    schedule.lr_factor,
                    if specialist { "a specialist" } else { "the switch snapshot" },
                    pseudo_labels.weight,
                )
            }
            _ => format!("{} {task} (lr ×{})", self.name(), schedule.lr_factor),
        }
    }

    pub fn validate(&self, run: RunShape) -> Result<()> {
        let steps = run.steps;
        match *self {
            Self::Alternate { period: 0, .. } => bail!("strategy.period: must be at least 1"),
            Self::Alternate { weights, det_weight, seg_weight, .. } | Self::Joint { weights, det_weight, seg_weight, .. } => {
                for task in Task::ALL {
                    if !(weights.get(task) >= 0.0 && weights.get(task).is_finite()) {
                        bail!("strategy.weights.{}: must be ≥ 0, got {}", task.key(), weights.get(task));
                    }
                }
                for (key, task, old) in [("det_weight", Task::Det, det_weight), ("seg_weight", Task::Seg, seg_weight)] {
                    if !(old >= 0.0 && old.is_finite()) {
                        bail!("strategy.{key}: must be ≥ 0, got {old}");
                    }
                    if old != 1.0 && weights.get(task) != 1.0 {
                        bail!("strategy.{key}: the older spelling of weights.{}; write one of the two", task.key());
                    }
                }
            }
            Self::Lwf { temperature, .. } if temperature <= 0.0 => bail!("strategy.temperature: must be > 0"),
            Self::Ewc { fisher_batches: 0, .. } => bail!("strategy.fisher_batches: must be at least 1"),
            Self::Replay { every: 0, .. } => bail!("strategy.every: must be at least 1 (1: every second-phase step replays)"),
            Self::Replay { buffer, .. } if !(buffer > 0.0 && (buffer < 1.0 || buffer.fract() == 0.0)) => {
                bail!("strategy.buffer: a fraction in (0, 1) of the first task's images, or a whole count ≥ 1; got {buffer}")
            }
            _ => {}
        }
        if let Some(labels) = self.pseudo_labels(1) {
            for task in Task::ALL {
                if let Some(dir) = labels.teacher(task).filter(|dir| !dir.is_dir()) {
                    bail!(
                        "strategy.pseudo_labels.{}_teacher: {} is not a folder (a checkpoint folder, e.g. runs/NAME/checkpoints/best-{})",
                        task.key(),
                        dir.display(),
                        task.key()
                    );
                }
            }
            let PseudoLabels { weight, box_score, pixel_confidence, background_score, .. } = labels;
            if !(weight >= 0.0 && weight.is_finite()) {
                bail!("strategy.pseudo_labels.weight: must be ≥ 0, got {weight}");
            }
            if !(box_score > 0.0 && box_score < 1.0) {
                bail!("strategy.pseudo_labels.box_score: a score in (0, 1), got {box_score}");
            }
            if let Some(floor) = background_score.filter(|floor| !(0.0..=box_score).contains(floor)) {
                bail!("strategy.pseudo_labels.background_score: must be in [0, box_score = {box_score}], got {floor}");
            }
            if !(pixel_confidence > 0.0 && pixel_confidence <= 1.0) {
                bail!("strategy.pseudo_labels.pixel_confidence: a probability in (0, 1], got {pixel_confidence}");
            }
        }
        if self.sequence_fields().is_some() && run.tasks.len() < 2 {
            bail!(
                "strategy.kind = \"{}\": a sequence needs two or more tasks; this run has one ({}): train it with kind = \"joint\"",
                self.name(),
                String::from(run.tasks)
            );
        }
        if let Some(schedule) = self.schedule(run) {
            let (_, switch_step, _, order, switch_steps) = self.sequence_fields().expect("a schedule has sequence fields");
            if switch_steps.is_empty() && (switch_step == 0 || switch_step >= steps) {
                bail!("strategy.switch_step: must be between 1 and steps - 1 ({}), got {switch_step}", steps.saturating_sub(1));
            }
            if let Some(task) = schedule.order.iter().find(|&&t| !run.tasks.contains(t)) {
                bail!("strategy.order: the run has no {task} dataset (its tasks: {})", String::from(run.tasks));
            }
            if TaskSet::of(&schedule.order).len() != schedule.order.len() || schedule.order.len() < 2 {
                bail!("strategy.order: at least two tasks, each once; got {:?}", schedule.order.iter().map(|t| t.key()).collect::<Vec<_>>());
            }
            if !order.is_empty() && !switch_steps.is_empty() && switch_steps.len() + 1 != order.len() {
                bail!("strategy.switch_steps: one step per switch ({} for {} tasks), got {}", order.len() - 1, order.len(), switch_steps.len());
            }
            if !schedule.switches.windows(2).all(|w| w[0] < w[1]) || schedule.switches.iter().any(|&s| s == 0 || s >= steps) {
                bail!("strategy.switch_steps: increasing steps between 1 and steps - 1 ({}), got {:?}", steps.saturating_sub(1), schedule.switches);
            }
            if !(schedule.lr_factor > 0.0 && schedule.lr_factor <= 10.0) {
                bail!("strategy.lr_factor: must be in (0, 10], got {}", schedule.lr_factor);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<StrategyConfig, toml::de::Error> {
        toml::from_str(text)
    }

    const TWO: RunShape = RunShape { tasks: TaskSet::DET_SEG, steps: 20 };

    fn two(steps: usize) -> RunShape {
        RunShape { steps, ..TWO }
    }

    const DET: TaskSet = TaskSet::of(&[Task::Det]);
    const SEG: TaskSet = TaskSet::of(&[Task::Seg]);
    const CLS: TaskSet = TaskSet::of(&[Task::Cls]);

    #[test]
    fn alternate_switches_every_period_steps() {
        let s = parse("kind = \"alternate\"\nperiod = 2").unwrap();
        let tasks: Vec<TaskSet> = (0..6).map(|i| s.plan(i, TWO).tasks).collect();
        assert_eq!(tasks, [DET, DET, SEG, SEG, DET, DET]);
        assert_eq!(parse("kind = \"alternate\"").unwrap().plan(1, TWO).tasks, SEG);
        assert_eq!(parse("kind = \"joint\"").unwrap().plan(7, TWO).tasks, TaskSet::DET_SEG);
        // Three tasks: round-robin, and joint trains all three every step.
        let three = RunShape { tasks: TaskSet::of(&Task::ALL), steps: 20 };
        let tasks: Vec<TaskSet> = (0..6).map(|i| s.plan(i, three).tasks).collect();
        assert_eq!(tasks, [DET, DET, SEG, SEG, CLS, CLS]);
        assert_eq!(parse("kind = \"joint\"").unwrap().plan(0, three).tasks.len(), 3);
    }

    #[test]
    fn sequential_family_switches_task_and_lowers_the_rate() {
        let s = parse("kind = \"freeze\"\nfirst = \"seg\"\nswitch_step = 10\nlr_factor = 0.2\nfreeze = \"stages:2\"").unwrap();
        assert_eq!(s.plan(9, TWO), StepPlan { tasks: SEG, phase: 0, lr_factor: 1.0, replay: None });
        assert_eq!(s.plan(10, TWO), StepPlan { tasks: DET, phase: 1, lr_factor: 0.2, replay: None });
        assert!(matches!(s, StrategyConfig::Freeze { freeze: FreezeScope::Stages(2), .. }));
        assert_eq!(s.describe_phase(1, TWO), "freeze detection (lr ×0.2)");
        assert!(s.validate(two(20)).is_ok());
        assert!(s.validate(two(10)).unwrap_err().to_string().contains("switch_step"));
    }

    #[test]
    fn replay_adds_a_first_task_batch_from_its_buffer_every_kth_second_phase_step() {
        let s = parse("kind = \"replay\"\nswitch_step = 10\nevery = 3").unwrap();
        let plans: Vec<(TaskSet, Option<Task>)> = (8..17).map(|i| (s.plan(i, TWO).tasks, s.plan(i, TWO).replay)).collect();
        let (r, both) = (Some(Task::Det), TaskSet::DET_SEG);
        assert_eq!(plans, [(DET, None), (DET, None), (SEG, None), (SEG, None), (both, r), (SEG, None), (SEG, None), (both, r), (SEG, None)]);
        assert_eq!(s.describe_phase(1, TWO), "replay segmentation (lr ×0.1; 1 step in 3 also replays detection from a buffer of 5%)");
        assert!(s.validate(two(20)).is_ok());
        for (bad, field) in [("every = 0", "strategy.every"), ("buffer = 0", "strategy.buffer"), ("buffer = 2.5", "strategy.buffer")] {
            let s = parse(&format!("kind = \"replay\"\nswitch_step = 10\n{bad}")).unwrap();
            assert!(s.validate(two(20)).unwrap_err().to_string().contains(field), "{bad}");
        }
    }

    #[test]
    fn pseudo_labels_apply_in_pseudos_second_phase_and_throughout_alternate_with_the_option() {
        let s = parse("kind = \"pseudo\"\nfirst = \"seg\"\nswitch_step = 10\npseudo_labels = { weight = 0.5 }").unwrap();
        assert_eq!(s.plan(10, TWO), StepPlan { tasks: DET, phase: 1, lr_factor: 0.1, replay: None });
        assert_eq!(s.pseudo_labels(0), None);
        let labels = PseudoLabels { weight: 0.5, ..PseudoLabels::default() };
        assert_eq!(s.pseudo_labels(1), Some(labels));
        assert_eq!(s.describe_phase(1, TWO), "pseudo detection (lr ×0.1; the switch snapshot labels its images for segmentation, weight 0.5)");
        let alternate = parse("kind = \"alternate\"\npseudo_labels = true").unwrap();
        assert_eq!(alternate.pseudo_labels(0), Some(PseudoLabels::default()));
        assert_eq!(alternate.label(), "alternate + pseudo-labels");
        let tuned = parse("kind = \"alternate\"\n[pseudo_labels]\nbox_score = 0.3").unwrap();
        assert_eq!(tuned.pseudo_labels(0).map(|l| (l.weight, l.box_score)), Some((1.0, 0.3)));
        // Written out and read back, the option keeps its settings; off, it is left out.
        assert_eq!(parse(&toml::to_string(&tuned).unwrap()).unwrap(), tuned);
        assert!(!toml::to_string(&parse("kind = \"joint\"").unwrap()).unwrap().contains("pseudo"));
        assert_eq!(parse("kind = \"joint\"\npseudo_labels = false").unwrap().pseudo_labels(0), None);
        for (bad, field) in [
            ("weight = -1", "strategy.pseudo_labels.weight"),
            ("box_score = 1.0", "strategy.pseudo_labels.box_score"),
            ("pixel_confidence = 0", "strategy.pseudo_labels.pixel_confidence"),
            ("det_teacher = \"no/such/checkpoint\"", "strategy.pseudo_labels.det_teacher: no/such/checkpoint is not a folder"),
            ("seg_teacher = \"no/such/checkpoint\"", "strategy.pseudo_labels.seg_teacher"),
        ] {
            let s = parse(&format!("kind = \"joint\"\npseudo_labels = {{ {bad} }}")).unwrap();
            assert!(s.validate(two(20)).unwrap_err().to_string().contains(field), "{bad}");
        }
        // Specialists are named in the label and the phase description, and written back out.
        let folder = std::env::temp_dir();
        let text = format!("kind = \"alternate\"\n[pseudo_labels]\ndet_teacher = '{}'", folder.display());
        let specialist = parse(&text).unwrap();
        assert_eq!(specialist.label(), "alternate + specialists' pseudo-labels");
        assert!(specialist.validate(two(20)).is_ok());
        assert_eq!(parse(&toml::to_string(&specialist).unwrap()).unwrap(), specialist);
        let pseudo = parse(&format!("kind = \"pseudo\"\nfirst = \"det\"\nswitch_step = 10\n[pseudo_labels]\ndet_teacher = '{}'", folder.display())).unwrap();
        assert!(pseudo.describe_phase(1, TWO).contains("a specialist labels its images for detection"), "{}", pseudo.describe_phase(1, TWO));
        let err = parse("kind = \"joint\"\npseudo_labels = { wieght = 1 }").unwrap_err().to_string();
        assert!(err.contains("unknown field `wieght`"), "{err}");
    }

    #[test]
    fn a_sequence_over_three_tasks_follows_its_order_and_switch_steps() {
        let three = RunShape { tasks: TaskSet::of(&Task::ALL), steps: 30 };
        let s = parse("kind = \"sequential\"\norder = [\"cls\", \"det\", \"seg\"]\nswitch_steps = [5, 12]").unwrap();
        let tasks: Vec<TaskSet> = [0, 4, 5, 11, 12, 29].iter().map(|&i| s.plan(i, three).tasks).collect();
        assert_eq!(tasks, [CLS, CLS, DET, DET, SEG, SEG]);
        assert_eq!(s.plan(12, three).phase, 2);
        assert_eq!(s.sequence().unwrap().first, Task::Cls);
        assert_eq!(s.describe_phase(2, three), "sequential segmentation (lr ×0.1)");
        assert!(s.validate(three).is_ok());
        // Without an order: `first`, then the run's other tasks, the rest of the run split evenly.
        let s = parse("kind = \"freeze\"\nfirst = \"seg\"\nswitch_step = 10\nfreeze = \"backbone\"").unwrap();
        assert_eq!(s.schedule(three).unwrap(), TaskSchedule { order: vec![Task::Seg, Task::Det, Task::Cls], switches: vec![10, 20], lr_factor: 0.1 });
        // Written back, the two-task form stays as it was.
        let text = toml::to_string(&parse("kind = \"sequential\"\nswitch_step = 10").unwrap()).unwrap();
        assert!(!text.contains("order") && !text.contains("switch_steps"), "{text}");
        for (bad, field) in [
            ("order = [\"det\", \"seg\", \"cls\"]\nswitch_steps = [5]", "one step per switch"),
            ("order = [\"det\", \"det\"]\nswitch_steps = [5]", "each once"),
            ("order = [\"det\", \"seg\", \"cls\"]\nswitch_steps = [9, 5]", "increasing steps"),
        ] {
            let err = parse(&format!("kind = \"sequential\"\n{bad}")).unwrap().validate(three).unwrap_err().to_string();
            assert!(err.contains(field), "{bad}: {err}");
        }
        let err = parse("kind = \"sequential\"\norder = [\"cls\", \"det\"]\nswitch_steps = [5]").unwrap().validate(two(30)).unwrap_err();
        assert!(err.to_string().contains("the run has no classification dataset"), "{err}");
        // Replay over three phases rehearses the earlier tasks in turn.
        let s = parse("kind = \"replay\"\norder = [\"det\", \"cls\", \"seg\"]\nswitch_steps = [5, 12]\nevery = 2").unwrap();
        assert!(s.validate(three).is_ok());
        let replayed: Vec<Option<Task>> = (5..20).map(|i| s.plan(i, three).replay).collect();
        let (d, c) = (Some(Task::Det), Some(Task::Cls));
        assert_eq!(replayed, [None, d, None, d, None, d, None, None, d, None, c, None, d, None, c]);
        assert_eq!(s.plan(13, three).tasks, TaskSet::of(&[Task::Seg, Task::Det]));
        assert_eq!(s.describe_phase(2, three), "replay segmentation (lr ×0.1; 1 step in 2 also replays detection and classification from a buffer of 5%)");
    }

    #[test]
    fn joint_combines_gradients_by_sum_or_pcgrad() {
        let pcgrad = parse("kind = \"joint\"\ngradients = \"pcgrad\"").unwrap();
        assert_eq!(pcgrad.gradients(), GradientCombination::Pcgrad);
        assert_eq!(pcgrad.label(), "joint + pcgrad");
        assert_eq!(parse(&toml::to_string(&pcgrad).unwrap()).unwrap(), pcgrad);
        // The default is the sum, and is not written: older runs' configs read and write unchanged.
        let joint = parse("kind = \"joint\"").unwrap();
        assert_eq!((joint.gradients(), joint.label().as_str()), (GradientCombination::Sum, "joint"));
        assert!(!toml::to_string(&joint).unwrap().contains("gradients"));
        assert_eq!(StrategyConfig::alternate().gradients(), GradientCombination::Sum);
        let err = parse("kind = \"joint\"\ngradients = \"cagrad\"").unwrap_err().to_string();
        assert!(err.contains("cagrad") && err.contains("pcgrad"), "{err}");
        assert!(parse("kind = \"alternate\"\ngradients = \"pcgrad\"").is_err());
    }

    #[test]
    fn task_sets_read_and_write_as_keys() {
        let all = TaskSet::of(&Task::ALL);
        assert_eq!(String::from(all), "det+seg+cls");
        assert_eq!(String::from(TaskSet::DET_SEG), "both");
        assert_eq!(TaskSet::try_from("seg".to_string()), Ok(SEG));
        assert_eq!(TaskSet::try_from("cls+det".to_string()).map(String::from), Ok("det+cls".to_string()));
        assert!(TaskSet::try_from("det+box".to_string()).unwrap_err().contains("\"box\" is not a task"));
    }

    #[test]
    fn bad_strategies_name_the_field() {
        let err = parse("kind = \"sequential\"\nswitch_step = 3\nlr = 1").unwrap_err().to_string();
        assert!(err.contains("unknown field `lr`"), "{err}");
        let err = parse("kind = \"freeze\"\nswitch_step = 3\nfreeze = \"head\"").unwrap_err().to_string();
        assert!(err.contains("\"head\" is not one of"), "{err}");
        let err = parse("kind = \"magic\"").unwrap_err().to_string();
        assert!(err.contains("unknown variant `magic`"), "{err}");
        assert!(parse("kind = \"alternate\"\nperiod = 0").unwrap().validate(two(10)).is_err());
        // A run of one task trains it alone: `joint` and `alternate` do, a sequence cannot.
        let seg_only = RunShape { tasks: SEG, steps: 10 };
        let err = parse("kind = \"lwf\"\nswitch_step = 3").unwrap().validate(seg_only).unwrap_err().to_string();
        assert!(err.contains("kind = \"lwf\"") && err.contains("one (seg)") && err.contains("joint"), "{err}");
        for kind in ["joint", "alternate"] {
            let strategy = parse(&format!("kind = \"{kind}\"")).unwrap();
            strategy.validate(seg_only).unwrap();
            assert_eq!(strategy.plan(3, seg_only).tasks, SEG);
        }
    }
}
