//! `ewc` (Elastic Weight Consolidation): `sequential`; in each later phase a
//! diagonal-Fisher penalty, estimated at the switch on every earlier task,
//! holds the shared weights near their values.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::{AtSwitch, Number, RunShape, Sequence, Setting, Strategy};

/// EWC's default λ: with the Fisher normalised to mean 1, a weight of average
/// importance is pulled back with force `λ·(θ − θ*)`.
pub const EWC_LAMBDA: f32 = 10.0;
/// How many batches of each earlier task EWC's Fisher estimate averages by default.
pub const FISHER_BATCHES: usize = 8;

fn ewc_lambda() -> f32 {
    EWC_LAMBDA
}
fn fisher_batches() -> usize {
    FISHER_BATCHES
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ewc {
    #[serde(flatten)]
    pub sequence: Sequence,
    #[serde(default = "ewc_lambda")]
    pub lambda: f32,
    #[serde(default = "fisher_batches")]
    pub fisher_batches: usize,
}

impl Strategy for Ewc {
    fn name(&self) -> &'static str {
        "ewc"
    }

    fn with_sequence(sequence: Sequence) -> Self {
        Self { sequence, lambda: EWC_LAMBDA, fisher_batches: FISHER_BATCHES }
    }

    shared_settings!(sequence, sequence_mut: Sequence);

    fn at_switch(&self) -> AtSwitch {
        AtSwitch::Anchor { lambda: self.lambda, batches: self.fisher_batches }
    }

    fn validate_own(&self, _: RunShape) -> Result<()> {
        if self.fisher_batches == 0 {
            bail!("strategy.fisher_batches: must be at least 1");
        }
        Ok(())
    }

    fn settings(&mut self) -> Vec<Setting<'_>> {
        vec![
            Setting::Sequence(&mut self.sequence),
            Number::single("lambda", "EWC λ", &mut self.lambda, 1e9, 0.5).into(),
            Number::count("fisher_batches", "Fisher batches", &mut self.fisher_batches, 10_000).hint("Per earlier task").into(),
        ]
    }
}
