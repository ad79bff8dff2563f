//! `freeze`: `sequential`, with part of the network frozen in every later phase.

use serde::{Deserialize, Serialize};

use super::{AtSwitch, Choice, Choosable, Sequence, Setting, Strategy};
use crate::train::trainee::FreezeScope;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freeze {
    #[serde(flatten)]
    pub sequence: Sequence,
    pub freeze: FreezeScope,
}

impl Choosable for FreezeScope {
    fn options(&self) -> Vec<String> {
        FreezeScope::ALL.into_iter().map(String::from).collect()
    }

    fn chosen(&self) -> String {
        String::from(*self)
    }

    fn choose(&mut self, key: &str) {
        if let Ok(scope) = FreezeScope::try_from(key.to_string()) {
            *self = scope;
        }
    }
}

impl Strategy for Freeze {
    fn name(&self) -> &'static str {
        "freeze"
    }

    fn with_sequence(sequence: Sequence) -> Self {
        Self { sequence, freeze: FreezeScope::Backbone }
    }

    shared_settings!(sequence, sequence_mut: Sequence);

    fn at_switch(&self) -> AtSwitch {
        AtSwitch::Freeze(self.freeze)
    }

    fn settings(&mut self) -> Vec<Setting<'_>> {
        let freeze = Choice { key: "freeze", label: "Freeze in later phases", hint: "", value: &mut self.freeze };
        vec![Setting::Sequence(&mut self.sequence), freeze.into()]
    }
}
