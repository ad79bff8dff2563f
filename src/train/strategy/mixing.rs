//! How `alternate` and `joint` mix the tasks of a step: the loss weighting,
//! fixed weights per task, and the option of pseudo-labels for the tasks each
//! batch lacks.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::model::task::Task;
use crate::train::pseudo::PseudoLabels;

/// How the task losses are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weighting {
    /// `Σ weights[t] · L_t` over the tasks the step trains.
    #[default]
    Fixed,
    /// Kendall et al.: `Σ L_i / (2σ_i²) + log σ_i` with learned `log σ_i²`.
    Uncertainty,
}

fn unit() -> f32 {
    1.0
}
fn is_one(w: &f32) -> bool {
    *w == 1.0
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

/// `weighting`, `weights` (and their older spellings) and `pseudo_labels`,
/// written among `alternate`'s and `joint`'s own keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mixing {
    #[serde(default)]
    pub weighting: Weighting,
    /// Fixed weighting's factor per task: `weights = { det = 1, seg = 1, cls = 1 }`.
    #[serde(default, skip_serializing_if = "TaskWeights::is_unit")]
    pub weights: TaskWeights,
    /// The older spelling of `weights.det` (two-task configs and runs).
    #[serde(default = "unit", skip_serializing_if = "is_one")]
    pub det_weight: f32,
    /// The older spelling of `weights.seg`.
    #[serde(default = "unit", skip_serializing_if = "is_one")]
    pub seg_weight: f32,
    /// Pseudo-labels for the task each batch lacks, from a teacher EMA
    /// (`pseudo_labels = true`, or a table of [`PseudoLabels`] settings).
    #[serde(default, with = "pseudo_option", skip_serializing_if = "Option::is_none")]
    pub pseudo_labels: Option<PseudoLabels>,
}

impl Mixing {
    /// Every task weighing 1, fixed, without pseudo-labels.
    pub fn even() -> Self {
        Self { weighting: Weighting::Fixed, weights: TaskWeights::default(), det_weight: 1.0, seg_weight: 1.0, pseudo_labels: None }
    }

    /// The fixed loss weight of `task`, in either spelling.
    pub fn weight(&self, task: Task) -> f32 {
        let older = match task {
            Task::Det => self.det_weight,
            Task::Seg => self.seg_weight,
            Task::Cls => 1.0,
        };
        self.weights.get(task) * older
    }

    /// The weights in the table spelling (a config in the older one is edited as the table).
    pub fn fold_older_spelling(&mut self) {
        *self.weights.get_mut(Task::Det) *= std::mem::replace(&mut self.det_weight, 1.0);
        *self.weights.get_mut(Task::Seg) *= std::mem::replace(&mut self.seg_weight, 1.0);
    }

    pub fn validate(&self) -> Result<()> {
        for task in Task::ALL {
            let weight = self.weights.get(task);
            if !(weight >= 0.0 && weight.is_finite()) {
                bail!("strategy.weights.{}: must be ≥ 0, got {weight}", task.key());
            }
        }
        for (key, task, old) in [("det_weight", Task::Det, self.det_weight), ("seg_weight", Task::Seg, self.seg_weight)] {
            if !(old >= 0.0 && old.is_finite()) {
                bail!("strategy.{key}: must be ≥ 0, got {old}");
            }
            if old != 1.0 && self.weights.get(task) != 1.0 {
                bail!("strategy.{key}: the older spelling of weights.{}; write one of the two", task.key());
            }
        }
        Ok(())
    }
}

/// `pseudo_labels`: `true` (the default settings), `false`, or a table of settings.
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
