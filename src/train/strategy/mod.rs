//! Forgetting-mitigation strategies, one file each: which tasks train at each
//! step and at what learning-rate factor, what changes when a later phase
//! begins, the settings Setup shows, and which runs they can train.
//!
//! A strategy is a type implementing [`Strategy`] in its own file here, and
//! one line in `strategies!` below. The sequential family shares [`Sequence`]
//! (`sequence.rs`); `alternate` and `joint` share [`Mixing`] (`mixing.rs`).

/// A strategy's accessors of shared settings it holds in a field of the
/// same name: `shared_settings!(sequence, sequence_mut: Sequence)`.
macro_rules! shared_settings {
    ($field:ident, $field_mut:ident: $kind:ty) => {
        fn $field(&self) -> Option<&$kind> {
            Some(&self.$field)
        }

        fn $field_mut(&mut self) -> Option<&mut $kind> {
            Some(&mut self.$field)
        }
    };
}

mod alternate;
mod ewc;
mod freeze;
mod joint;
mod lwf;
mod mixing;
mod pseudo;
mod replay;
mod sequence;
mod sequential;
mod settings;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::pseudo::PseudoLabels;
use super::trainee::FreezeScope;
pub use super::task_gradients::GradientCombination;
pub use crate::model::task::{Task, TaskSet};
pub use alternate::Alternate;
pub use ewc::{Ewc, EWC_LAMBDA, FISHER_BATCHES};
pub use freeze::Freeze;
pub use joint::Joint;
pub use lwf::Lwf;
pub use mixing::{Mixing, TaskWeights, Weighting};
pub use pseudo::Pseudo;
pub use replay::{Replay, REPLAY_BUFFER, REPLAY_EVERY};
pub use sequence::{Sequence, TaskSchedule};
pub use sequential::Sequential;
pub use settings::{Choice, Choosable, Number, NumberValue, Setting};

/// What one strategy is and does; the trainer, Setup and Compare ask this,
/// never which strategy it is.
pub trait Strategy {
    /// The `kind` it is written as.
    fn name(&self) -> &'static str;

    /// The strategy with its default settings, taking `sequence` where it has one.
    fn with_sequence(sequence: Sequence) -> Self
    where
        Self: Sized;

    /// The sequential family's settings.
    fn sequence(&self) -> Option<&Sequence> {
        None
    }

    fn sequence_mut(&mut self) -> Option<&mut Sequence> {
        None
    }

    /// `alternate`'s and `joint`'s loss weighting and pseudo-label option.
    fn mixing(&self) -> Option<&Mixing> {
        None
    }

    fn mixing_mut(&mut self) -> Option<&mut Mixing> {
        None
    }

    /// Whether it can train a run of `tasks` (a sequence needs two or more).
    fn supports(&self, tasks: TaskSet) -> bool {
        self.sequence().is_none() || tasks.len() >= 2
    }

    /// What `step` of `run` trains.
    fn plan(&self, step: usize, run: RunShape) -> StepPlan {
        match self.sequence() {
            Some(sequence) => sequence.schedule(run).plan(step),
            None => StepPlan::every(run.tasks),
        }
    }

    /// What a later phase's one-line description adds after its rate, given
    /// the tasks trained before it.
    fn phase_detail(&self, _earlier: &[Task]) -> Option<String> {
        None
    }

    /// What changes when a later phase begins.
    fn at_switch(&self) -> AtSwitch {
        AtSwitch::Nothing
    }

    /// The pseudo-label settings in force in `phase`.
    fn pseudo_labels(&self, _phase: usize) -> Option<PseudoLabels> {
        self.mixing().and_then(|mixing| mixing.pseudo_labels.clone())
    }

    /// How a step's task gradients are combined.
    fn gradients(&self) -> GradientCombination {
        GradientCombination::Sum
    }

    /// Each earlier task's rehearsal buffer: a count of images (≥ 1) or a
    /// fraction of its training split, for a strategy whose plans replay.
    fn replay_buffer(&self) -> Option<f64> {
        None
    }

    /// The errors of its own settings, named by key (the shared parts are checked apart).
    fn validate_own(&self, _run: RunShape) -> Result<()> {
        Ok(())
    }

    /// Its settings, in the order an editor shows them.
    fn settings(&mut self) -> Vec<Setting<'_>>;
}

/// What a strategy changes when one of its later phases begins; the network
/// as it was at the switch (the snapshot) is the teacher or the anchor.
#[derive(Debug, Clone, PartialEq)]
pub enum AtSwitch {
    Nothing,
    /// Part of the network held fixed.
    Freeze(FreezeScope),
    /// The earlier tasks' head outputs on the new images distilled from the snapshot.
    Distill { weight: f32, temperature: f32 },
    /// A diagonal-Fisher penalty (estimated on `batches` of each earlier task)
    /// holding the shared weights near the snapshot's.
    Anchor { lambda: f32, batches: usize },
    /// The snapshot labels the new images for the earlier tasks.
    PseudoLabel(PseudoLabels),
}

/// What one step trains, at which phase and rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepPlan {
    /// The tasks whose losses the step computes.
    pub tasks: TaskSet,
    /// The index of the phase in the sequence (0 before the first switch, and
    /// always for the strategies without one).
    pub phase: usize,
    pub lr_factor: f64,
    /// The task whose batch comes from its replay buffer (an earlier task, on
    /// some of replay's later-phase steps, besides the new task's batch).
    pub replay: Option<Task>,
}

impl StepPlan {
    /// `tasks`, at the full rate, with no phases.
    pub fn every(tasks: TaskSet) -> Self {
        Self { tasks, phase: 0, lr_factor: 1.0, replay: None }
    }
}

/// What a strategy needs to know of its run: the tasks it has and its length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunShape {
    pub tasks: TaskSet,
    pub steps: usize,
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

/// The strategies: a variant each, its `kind` the variant's name in lower case.
macro_rules! strategies {
    ($($variant:ident),* $(,)?) => {
        /// A strategy as configured: `[strategy] kind = "..."` and its settings.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", rename_all = "lowercase")]
        pub enum StrategyConfig {
            $($variant($variant)),*
        }

        impl StrategyConfig {
            pub fn get(&self) -> &dyn Strategy {
                match self {
                    $(Self::$variant(strategy) => strategy),*
                }
            }

            pub fn get_mut(&mut self) -> &mut dyn Strategy {
                match self {
                    $(Self::$variant(strategy) => strategy),*
                }
            }

            /// Every strategy with its default settings over `sequence`, in the order Setup lists them.
            pub fn every_kind(sequence: &Sequence) -> Vec<StrategyConfig> {
                vec![$(Self::$variant($variant::with_sequence(sequence.clone()))),*]
            }
        }
    };
}

strategies!(Alternate, Joint, Sequential, Freeze, Lwf, Ewc, Replay, Pseudo);

impl StrategyConfig {
    /// `alternate` with every task weighing 1 (fixed weighting).
    pub fn alternate() -> Self {
        Self::Alternate(Alternate::with_sequence(Sequence::halfway(0)))
    }

    /// `joint` with every task weighing 1, gradients summed.
    pub fn joint() -> Self {
        Self::Joint(Joint::with_sequence(Sequence::halfway(0)))
    }

    /// The strategy written `kind` with its defaults, keeping `current`'s
    /// sequence (else switching halfway through `steps`).
    pub fn of_kind(kind: &str, current: &StrategyConfig, steps: usize) -> Option<Self> {
        let sequence = current.sequence().cloned().unwrap_or_else(|| Sequence::halfway(steps));
        Self::every_kind(&sequence).into_iter().find(|strategy| strategy.name() == kind)
    }

    pub fn name(&self) -> &'static str {
        self.get().name()
    }

    pub fn sequence(&self) -> Option<&Sequence> {
        self.get().sequence()
    }

    pub fn sequence_mut(&mut self) -> Option<&mut Sequence> {
        self.get_mut().sequence_mut()
    }

    /// Moves the step settings (the switch steps, a pseudo-label burn-in) to
    /// the same fraction of a `to`-step run as they had of a `from`-step run.
    pub fn rescale_steps(&mut self, from: usize, to: usize) {
        if from == 0 {
            return;
        }
        let scale = |step: usize| ((step as u128 * to as u128 + from as u128 / 2) / from as u128) as usize;
        if let Some(sequence) = self.sequence_mut() {
            sequence.rescale(scale, to);
        }
        if let Some(labels) = self.get_mut().mixing_mut().and_then(|mixing| mixing.pseudo_labels.as_mut()) {
            labels.start_step = scale(labels.start_step);
        }
    }

    /// The sequence resolved over `run`, for the sequential family.
    pub fn schedule(&self, run: RunShape) -> Option<TaskSchedule> {
        self.sequence().map(|sequence| sequence.schedule(run))
    }

    /// The same strategy with `task` first (the sequential family; others are unchanged).
    pub fn with_first(mut self, task: Task) -> Self {
        if let Some(sequence) = self.sequence_mut() {
            sequence.put_first(task);
        }
        self
    }

    /// The weighting mode (fixed for the strategies that train one task at a time).
    pub fn weighting(&self) -> Weighting {
        self.get().mixing().map_or(Weighting::Fixed, |mixing| mixing.weighting)
    }

    /// The fixed loss weight of `task` (1 for the strategies that train one task at a time).
    pub fn weight(&self, task: Task) -> f32 {
        self.get().mixing().map_or(1.0, |mixing| mixing.weight(task))
    }

    pub fn gradients(&self) -> GradientCombination {
        self.get().gradients()
    }

    pub fn pseudo_labels(&self, phase: usize) -> Option<PseudoLabels> {
        self.get().pseudo_labels(phase)
    }

    pub fn plan(&self, step: usize, run: RunShape) -> StepPlan {
        self.get().plan(step, run)
    }

    /// The strategy's name, with "+ pseudo-labels" or "+ pcgrad" where an option adds them.
    pub fn label(&self) -> String {
        let strategy = self.get();
        let mut label = strategy.name().to_string();
        if let Some(labels) = strategy.mixing().and_then(|mixing| mixing.pseudo_labels.as_ref()) {
            label += if labels.has_specialist() { " + specialists' pseudo-labels" } else { " + pseudo-labels" };
        }
        if !strategy.gradients().is_sum() {
            label += &format!(" + {}", strategy.gradients().key());
        }
        label
    }

    /// A one-line description of a phase, for events and curve markers.
    pub fn describe_phase(&self, phase: usize, run: RunShape) -> String {
        let strategy = self.get();
        match strategy.sequence() {
            Some(sequence) => sequence.describe(strategy.name(), phase, run, |earlier| strategy.phase_detail(earlier)),
            None => self.label(),
        }
    }

    /// The errors the strategy has over `run`, each naming its key.
    pub fn validate(&self, run: RunShape) -> Result<()> {
        let strategy = self.get();
        strategy.validate_own(run)?;
        if let Some(mixing) = strategy.mixing() {
            mixing.validate()?;
        }
        if let Some(labels) = strategy.pseudo_labels(1) {
            labels.validate()?;
        }
        if let Some(sequence) = strategy.sequence() {
            sequence.validate(strategy.name(), run)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
