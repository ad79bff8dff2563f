//! `alternate`: one task per step, switching every `period` steps,
//! round-robin over the run's tasks, detection first.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::{Mixing, Number, RunShape, Sequence, Setting, StepPlan, Strategy, Task};

fn one() -> usize {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alternate {
    #[serde(default = "one")]
    pub period: usize,
    #[serde(flatten)]
    pub mixing: Mixing,
}

impl Strategy for Alternate {
    fn name(&self) -> &'static str {
        "alternate"
    }

    fn with_sequence(_: Sequence) -> Self {
        Self { period: 1, mixing: Mixing::even() }
    }

    shared_settings!(mixing, mixing_mut: Mixing);

    fn plan(&self, step: usize, run: RunShape) -> StepPlan {
        let tasks: Vec<Task> = run.tasks.iter().collect();
        StepPlan::every(tasks[(step / self.period.max(1)) % tasks.len().max(1)].into())
    }

    fn validate_own(&self, _: RunShape) -> Result<()> {
        if self.period == 0 {
            bail!("strategy.period: must be at least 1");
        }
        Ok(())
    }

    fn settings(&mut self) -> Vec<Setting<'_>> {
        vec![Number::count("period", "Switch task every", &mut self.period, 100_000).suffix(" steps").into(), Setting::Mixing(&mut self.mixing)]
    }
}
