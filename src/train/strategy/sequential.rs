//! `sequential`: the tasks one after another (the naive baseline the other
//! sequential strategies improve on), later phases at a lower learning rate.

use serde::{Deserialize, Serialize};

use super::{Sequence, Setting, Strategy};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sequential {
    #[serde(flatten)]
    pub sequence: Sequence,
}

impl Strategy for Sequential {
    fn name(&self) -> &'static str {
        "sequential"
    }

    fn with_sequence(sequence: Sequence) -> Self {
        Self { sequence }
    }

    shared_settings!(sequence, sequence_mut: Sequence);

    fn settings(&mut self) -> Vec<Setting<'_>> {
        vec![Setting::Sequence(&mut self.sequence)]
    }
}
