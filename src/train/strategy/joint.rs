//! `joint`: every step one batch of each of the run's tasks, one weighted
//! loss, one optimiser step (the CVPR23 Track1 recipe); the tasks' gradients
//! summed, or combined by gradient surgery (`gradients = "pcgrad"`).

use serde::{Deserialize, Serialize};

use super::{Choice, Choosable, GradientCombination, Mixing, Sequence, Setting, Strategy};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Joint {
    #[serde(flatten)]
    pub mixing: Mixing,
    /// How the tasks' gradients are combined: `sum`, or `pcgrad` (gradient surgery).
    #[serde(default, skip_serializing_if = "GradientCombination::is_sum")]
    pub gradients: GradientCombination,
}

impl Strategy for Joint {
    fn name(&self) -> &'static str {
        "joint"
    }

    fn with_sequence(_: Sequence) -> Self {
        Self { mixing: Mixing::even(), gradients: GradientCombination::Sum }
    }

    shared_settings!(mixing, mixing_mut: Mixing);

    fn gradients(&self) -> GradientCombination {
        self.gradients
    }

    fn settings(&mut self) -> Vec<Setting<'_>> {
        let gradients = Choice {
            key: "gradients",
            label: "Task gradients",
            hint: "sum: one backward pass of the summed losses; pcgrad: each task's gradient on the shared weights projected off the others' where they conflict (one backward pass per task)",
            value: &mut self.gradients,
        };
        vec![Setting::Mixing(&mut self.mixing), gradients.into()]
    }
}

impl Choosable for GradientCombination {
    fn options(&self) -> Vec<String> {
        GradientCombination::ALL.iter().map(|method| method.key().to_string()).collect()
    }

    fn chosen(&self) -> String {
        self.key().to_string()
    }

    fn choose(&mut self, key: &str) {
        if let Some(method) = GradientCombination::ALL.into_iter().find(|method| method.key() == key) {
            *self = method;
        }
    }
}
