//! Forgetting-mitigation strategies: which task trains at each step, with what
//! learning-rate factor, what is frozen, and which extra penalty applies.

use std::fmt;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::pseudo::PseudoLabels;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Det,
    Seg,
}

impl Task {
    pub fn other(self) -> Task {
        match self {
            Task::Det => Task::Seg,
            Task::Seg => Task::Det,
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Task::Det => "detection",
            Task::Seg => "segmentation",
        })
    }
}

/// How the two task losses are combined by `alternate` and `joint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weighting {
    /// `det_weight · L_det + seg_weight · L_seg`.
    #[default]
    Fixed,
    /// Kendall et al.: `Σ L_i / (2σ_i²) + log σ_i` with learned `log σ_i²`.
    Uncertainty,
}

/// What `freeze` holds fixed in its second phase.
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum StrategyConfig {
    /// Switch task every `period` steps, detection first.
    Alternate {
        #[serde(default = "one")]
        period: usize,
        #[serde(default)]
        weighting: Weighting,
        #[serde(default = "unit")]
        det_weight: f32,
        #[serde(default = "unit")]
        seg_weight: f32,
        /// Pseudo-labels for the task each batch lacks, from a teacher EMA
        /// (`pseudo_labels = true`, or a table of [`PseudoLabels`] settings).
        #[serde(default, with = "pseudo_option", skip_serializing_if = "Option::is_none")]
        pseudo_labels: Option<PseudoLabels>,
    },
    /// Every step one detection and one segmentation batch, one weighted loss.
    Joint {
        #[serde(default)]
        weighting: Weighting,
        #[serde(default = "unit")]
        det_weight: f32,
        #[serde(default = "unit")]
        seg_weight: f32,
        /// Pseudo-labels for the task each batch lacks, from a teacher EMA
        /// (`pseudo_labels = true`, or a table of [`PseudoLabels`] settings).
        #[serde(default, with = "pseudo_option", skip_serializing_if = "Option::is_none")]
        pseudo_labels: Option<PseudoLabels>,
    },
    /// `first` until `switch_step`, then the other task with the learning rate × `lr_factor`.
    Sequential {
        #[serde(default = "det")]
        first: Task,
        switch_step: usize,
        #[serde(default = "tenth")]
        lr_factor: f64,
    },
    /// `sequential`, with part of the network frozen in the second phase.
    Freeze {
        #[serde(default = "det")]
        first: Task,
        switch_step: usize,
        #[serde(default = "tenth")]
        lr_factor: f64,
        freeze: FreezeScope,
    },
    /// `sequential`; in the second phase the first task's head outputs on the
    /// current images are distilled from a frozen snapshot taken at the switch.
    Lwf {
        #[serde(default = "det")]
        first: Task,
        switch_step: usize,
        #[serde(default = "tenth")]
        lr_factor: f64,
        #[serde(default = "unit")]
        weight: f32,
        #[serde(default = "two")]
        temperature: f32,
    },
    /// `sequential`; in the second phase a diagonal-Fisher penalty, estimated at
    /// the switch on the first task, holds the shared weights near their values.
    Ewc {
        #[serde(default = "det")]
        first: Task,
        switch_step: usize,
        #[serde(default = "tenth")]
        lr_factor: f64,
        #[serde(default = "ewc_lambda")]
        lambda: f32,
        #[serde(default = "fisher_batches")]
        fisher_batches: usize,
    },
    /// `sequential`; in the second phase every `every`-th step also trains the
    /// first task again, on a batch from a fixed buffer of its training images (rehearsal).
    Replay {
        #[serde(default = "det")]
        first: Task,
        switch_step: usize,
        #[serde(default = "tenth")]
        lr_factor: f64,
        /// The buffer: a count of images (≥ 1) or a fraction of the first task's training split (< 1).
        #[serde(default = "replay_buffer")]
        buffer: f64,
        #[serde(default = "replay_every")]
        every: usize,
    },
    /// `sequential`; in the second phase the snapshot at the switch labels the
    /// new task's images for the first task (pseudo-labels), and the network
    /// trains on both labels of each image.
    Pseudo {
        #[serde(default = "det")]
        first: Task,
        switch_step: usize,
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
/// How many first-task batches EWC's Fisher estimate averages by default.
pub const FISHER_BATCHES: usize = 8;

/// Replay's default buffer: 5 % of the first task's training images.
pub const REPLAY_BUFFER: f64 = 0.05;
/// Replay's default period: a first-task batch added to every 4th second-phase step.
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

/// Which losses one step computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepTasks {
    Det,
    Seg,
    Both,
}

impl StepTasks {
    pub fn includes(self, task: Task) -> bool {
        matches!((self, task), (StepTasks::Both, _) | (StepTasks::Det, Task::Det) | (StepTasks::Seg, Task::Seg))
    }
}

impl From<Task> for StepTasks {
    fn from(task: Task) -> Self {
        match task {
            Task::Det => StepTasks::Det,
            Task::Seg => StepTasks::Seg,
        }
    }
}

/// What the trainer does at one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepPlan {
    pub tasks: StepTasks,
    /// 0 before a sequential switch (and always for alternate/joint), 1 after.
    pub phase: usize,
    pub lr_factor: f64,
    /// The task whose batch comes from the replay buffer (the first task, on
    /// every `every`-th step of replay's second phase, besides the new task's batch).
    pub replay: Option<Task>,
}

/// The parts shared by the sequential family.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sequence {
    pub first: Task,
    pub switch_step: usize,
    pub lr_factor: f64,
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

    /// The sequential schedule, for the strategies that have one.
    pub fn sequence(&self) -> Option<Sequence> {
        match *self {
            Self::Sequential { first, switch_step, lr_factor }
            | Self::Freeze { first, switch_step, lr_factor, .. }
            | Self::Lwf { first, switch_step, lr_factor, .. }
            | Self::Ewc { first, switch_step, lr_factor, .. }
            | Self::Replay { first, switch_step, lr_factor, .. }
            | Self::Pseudo { first, switch_step, lr_factor, .. } => Some(Sequence { first, switch_step, lr_factor }),
            Self::Alternate { .. } | Self::Joint { .. } => None,
        }
    }

    /// The same strategy with `task` first (the sequential family; others are unchanged).
    pub fn with_first(mut self, task: Task) -> Self {
        match &mut self {
            Self::Sequential { first, .. }
            | Self::Freeze { first, .. }
            | Self::Lwf { first, .. }
            | Self::Ewc { first, .. }
            | Self::Replay { first, .. }
            | Self::Pseudo { first, .. } => *first = task,
            Self::Alternate { .. } | Self::Joint { .. } => {}
        }
        self
    }

    /// Loss weights and weighting mode for the strategies that combine tasks.
    pub fn weighting(&self) -> (Weighting, f32, f32) {
        match *self {
            Self::Alternate { weighting, det_weight, seg_weight, .. }
            | Self::Joint { weighting, det_weight, seg_weight, .. } => (weighting, det_weight, seg_weight),
            _ => (Weighting::Fixed, 1.0, 1.0),
        }
    }

    /// The pseudo-labels in force in `phase`: `pseudo`'s second phase, and
    /// throughout for `alternate`/`joint` with `pseudo_labels`.
    pub fn pseudo_labels(&self, phase: usize) -> Option<PseudoLabels> {
        match self {
            Self::Pseudo { pseudo_labels, .. } if phase == 1 => Some(pseudo_labels.clone()),
            Self::Alternate { pseudo_labels, .. } | Self::Joint { pseudo_labels, .. } => pseudo_labels.clone(),
            _ => None,
        }
    }

    /// The strategy's name, with "+ pseudo-labels" where an option adds them.
    pub fn label(&self) -> String {
        match self {
            Self::Alternate { pseudo_labels: Some(labels), .. } | Self::Joint { pseudo_labels: Some(labels), .. } => {
                let kind = if labels.has_specialist() { "specialists' pseudo-labels" } else { "pseudo-labels" };
                format!("{} + {kind}", self.name())
            }
            _ => self.name().to_string(),
        }
    }

    pub fn plan(&self, step: usize) -> StepPlan {
        if let Some(seq) = self.sequence() {
            if step < seq.switch_step {
                return StepPlan { tasks: seq.first.into(), phase: 0, lr_factor: 1.0, replay: None };
            }
            // A replay step adds the buffer's batch: the new task keeps every step.
            if matches!(*self, Self::Replay { every, .. } if (step - seq.switch_step) % every == every - 1) {
                return StepPlan { tasks: StepTasks::Both, phase: 1, lr_factor: seq.lr_factor, replay: Some(seq.first) };
            }
            return StepPlan { tasks: seq.first.other().into(), phase: 1, lr_factor: seq.lr_factor, replay: None };
        }
        let tasks = match *self {
            Self::Alternate { period, .. } => (if (step / period) % 2 == 0 { Task::Det } else { Task::Seg }).into(),
            _ => StepTasks::Both,
        };
        StepPlan { tasks, phase: 0, lr_factor: 1.0, replay: None }
    }

    /// A one-line description of a phase, for events and curve markers.
    pub fn describe_phase(&self, phase: usize) -> String {
        match self.sequence() {
            Some(seq) if phase == 0 => format!("{} {}", self.name(), seq.first),
            Some(seq) => match self {
                Self::Replay { buffer, every, .. } => format!(
                    "{} {} (lr ×{}; 1 step in {every} also replays {} from a buffer of {})",
                    self.name(),
                    seq.first.other(),
                    seq.lr_factor,
                    seq.first,
                    if *buffer >= 1.0 { format!("{buffer} images") } else { format!("{}%", buffer * 100.0) }
                ),
                Self::Pseudo { pseudo_labels, .. } => format!(
                    "{} {} (lr ×{}; {} labels its images for {}, weight {})",
                    self.name(),
                    seq.first.other(),
                    seq.lr_factor,
                    match (seq.first, &pseudo_labels.det_teacher, &pseudo_labels.seg_teacher) {
                        (Task::Det, Some(_), _) | (Task::Seg, _, Some(_)) => "a specialist",
                        _ => "the switch snapshot",
                    },
                    seq.first,
                    pseudo_labels.weight,
                ),
                _ => format!("{} {} (lr ×{})", self.name(), seq.first.other(), seq.lr_factor),
            },
            None => self.label(),
        }
    }

    pub fn validate(&self, steps: usize) -> Result<()> {
        match *self {
            Self::Alternate { period: 0, .. } => bail!("strategy.period: must be at least 1"),
            Self::Alternate { det_weight, seg_weight, .. } | Self::Joint { det_weight, seg_weight, .. }
                if det_weight < 0.0 || seg_weight < 0.0 =>
            {
                bail!("strategy.det_weight/seg_weight: must be ≥ 0")
            }
            Self::Lwf { temperature, .. } if temperature <= 0.0 => bail!("strategy.temperature: must be > 0"),
            Self::Ewc { fisher_batches: 0, .. } => bail!("strategy.fisher_batches: must be at least 1"),
            Self::Replay { every: 0, .. } => bail!("strategy.every: must be at least 1 (1: every second-phase step replays)"),
            Self::Replay { buffer, .. } if !(buffer > 0.0 && (buffer < 1.0 || buffer.fract() == 0.0)) => {
                bail!("strategy.buffer: a fraction in (0, 1) of the first task's images, or a whole count ≥ 1; got {buffer}")
            }
            _ => {}
        }
        if let Some(PseudoLabels { weight, box_score, pixel_confidence, background_score, det_teacher, seg_teacher, .. }) =
            self.pseudo_labels(1)
        {
            for (key, dir) in [("det_teacher", det_teacher), ("seg_teacher", seg_teacher)] {
                if let Some(dir) = dir.filter(|dir| !dir.is_dir()) {
                    bail!("strategy.pseudo_labels.{key}: {} is not a folder (a checkpoint folder, e.g. runs/NAME/checkpoints/best-det)", dir.display());
                }
            }
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
        if let Some(seq) = self.sequence() {
            if seq.switch_step == 0 || seq.switch_step >= steps {
                bail!("strategy.switch_step: must be between 1 and steps - 1 ({}), got {}", steps.saturating_sub(1), seq.switch_step);
            }
            if !(seq.lr_factor > 0.0 && seq.lr_factor <= 10.0) {
                bail!("strategy.lr_factor: must be in (0, 10], got {}", seq.lr_factor);
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

    #[test]
    fn alternate_switches_every_period_steps() {
        let s = parse("kind = \"alternate\"\nperiod = 2").unwrap();
        let tasks: Vec<StepTasks> = (0..6).map(|i| s.plan(i).tasks).collect();
        use StepTasks::*;
        assert_eq!(tasks, [Det, Det, Seg, Seg, Det, Det]);
        assert_eq!(parse("kind = \"alternate\"").unwrap().plan(1).tasks, Seg);
        assert_eq!(parse("kind = \"joint\"").unwrap().plan(7).tasks, Both);
    }

    #[test]
    fn sequential_family_switches_task_and_lowers_the_rate() {
        let s = parse("kind = \"freeze\"\nfirst = \"seg\"\nswitch_step = 10\nlr_factor = 0.2\nfreeze = \"stages:2\"").unwrap();
        assert_eq!(s.plan(9), StepPlan { tasks: StepTasks::Seg, phase: 0, lr_factor: 1.0, replay: None });
        assert_eq!(s.plan(10), StepPlan { tasks: StepTasks::Det, phase: 1, lr_factor: 0.2, replay: None });
        assert!(matches!(s, StrategyConfig::Freeze { freeze: FreezeScope::Stages(2), .. }));
        assert_eq!(s.describe_phase(1), "freeze detection (lr ×0.2)");
        assert!(s.validate(20).is_ok());
        assert!(s.validate(10).unwrap_err().to_string().contains("switch_step"));
    }

    #[test]
    fn replay_adds_a_first_task_batch_from_its_buffer_every_kth_second_phase_step() {
        let s = parse("kind = \"replay\"\nswitch_step = 10\nevery = 3").unwrap();
        let plans: Vec<(StepTasks, Option<Task>)> = (8..17).map(|i| (s.plan(i).tasks, s.plan(i).replay)).collect();
        use StepTasks::*;
        let r = Some(Task::Det);
        assert_eq!(plans, [(Det, None), (Det, None), (Seg, None), (Seg, None), (Both, r), (Seg, None), (Seg, None), (Both, r), (Seg, None)]);
        assert_eq!(s.describe_phase(1), "replay segmentation (lr ×0.1; 1 step in 3 also replays detection from a buffer of 5%)");
        assert!(s.validate(20).is_ok());
        for (bad, field) in [("every = 0", "strategy.every"), ("buffer = 0", "strategy.buffer"), ("buffer = 2.5", "strategy.buffer")] {
            let s = parse(&format!("kind = \"replay\"\nswitch_step = 10\n{bad}")).unwrap();
            assert!(s.validate(20).unwrap_err().to_string().contains(field), "{bad}");
        }
    }

    #[test]
    fn pseudo_labels_apply_in_pseudos_second_phase_and_throughout_alternate_with_the_option() {
        let s = parse("kind = \"pseudo\"\nfirst = \"seg\"\nswitch_step = 10\npseudo_labels = { weight = 0.5 }").unwrap();
        assert_eq!(s.plan(10), StepPlan { tasks: StepTasks::Det, phase: 1, lr_factor: 0.1, replay: None });
        assert_eq!(s.pseudo_labels(0), None);
        let labels = PseudoLabels { weight: 0.5, ..PseudoLabels::default() };
        assert_eq!(s.pseudo_labels(1), Some(labels));
        assert_eq!(s.describe_phase(1), "pseudo detection (lr ×0.1; the switch snapshot labels its images for segmentation, weight 0.5)");
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
            assert!(s.validate(20).unwrap_err().to_string().contains(field), "{bad}");
        }
        // Specialists are named in the label and the phase description, and written back out.
        let folder = std::env::temp_dir();
        let text = format!("kind = \"alternate\"\n[pseudo_labels]\ndet_teacher = '{}'", folder.display());
        let specialist = parse(&text).unwrap();
        assert_eq!(specialist.label(), "alternate + specialists' pseudo-labels");
        assert!(specialist.validate(20).is_ok());
        assert_eq!(parse(&toml::to_string(&specialist).unwrap()).unwrap(), specialist);
        let pseudo = parse(&format!("kind = \"pseudo\"\nfirst = \"det\"\nswitch_step = 10\n[pseudo_labels]\ndet_teacher = '{}'", folder.display())).unwrap();
        assert!(pseudo.describe_phase(1).contains("a specialist labels its images for detection"), "{}", pseudo.describe_phase(1));
        let err = parse("kind = \"joint\"\npseudo_labels = { wieght = 1 }").unwrap_err().to_string();
        assert!(err.contains("unknown field `wieght`"), "{err}");
    }

    #[test]
    fn bad_strategies_name_the_field() {
        let err = parse("kind = \"sequential\"\nswitch_step = 3\nlr = 1").unwrap_err().to_string();
        assert!(err.contains("unknown field `lr`"), "{err}");
        let err = parse("kind = \"freeze\"\nswitch_step = 3\nfreeze = \"head\"").unwrap_err().to_string();
        assert!(err.contains("\"head\" is not one of"), "{err}");
        let err = parse("kind = \"magic\"").unwrap_err().to_string();
        assert!(err.contains("unknown variant `magic`"), "{err}");
        assert!(parse("kind = \"alternate\"\nperiod = 0").unwrap().validate(10).is_err());
    }
}
