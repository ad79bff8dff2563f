//! `lwf` (Learning without Forgetting): `sequential`; in each later phase the
//! earlier tasks' head outputs on the current images are distilled from a
//! frozen snapshot taken at the switch.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::{AtSwitch, Number, RunShape, Sequence, Setting, Strategy};

fn unit() -> f32 {
    1.0
}
fn two() -> f32 {
    2.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lwf {
    #[serde(flatten)]
    pub sequence: Sequence,
    #[serde(default = "unit")]
    pub weight: f32,
    #[serde(default = "two")]
    pub temperature: f32,
}

impl Strategy for Lwf {
    fn name(&self) -> &'static str {
        "lwf"
    }

    fn with_sequence(sequence: Sequence) -> Self {
        Self { sequence, weight: unit(), temperature: two() }
    }

    shared_settings!(sequence, sequence_mut: Sequence);

    fn at_switch(&self) -> AtSwitch {
        AtSwitch::Distill { weight: self.weight, temperature: self.temperature }
    }

    fn validate_own(&self, _: RunShape) -> Result<()> {
        if self.temperature <= 0.0 {
            bail!("strategy.temperature: must be > 0");
        }
        Ok(())
    }

    fn settings(&mut self) -> Vec<Setting<'_>> {
        vec![
            Setting::Sequence(&mut self.sequence),
            Number::single("weight", "Distillation weight", &mut self.weight, 1000.0, 0.05).into(),
            Number::single("temperature", "Temperature", &mut self.temperature, 100.0, 0.05).into(),
        ]
    }
}
