//! `pseudo`: `sequential`; in each later phase the snapshot at the switch
//! labels the new task's images for every earlier task (pseudo-labels: boxes,
//! masks, soft class distributions), and the network trains on all labels of
//! each image.

use serde::{Deserialize, Serialize};

use super::{list, AtSwitch, Sequence, Setting, Strategy, Task};
use crate::train::pseudo::PseudoLabels;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pseudo {
    #[serde(flatten)]
    pub sequence: Sequence,
    #[serde(default)]
    pub pseudo_labels: PseudoLabels,
}

impl Strategy for Pseudo {
    fn name(&self) -> &'static str {
        "pseudo"
    }

    fn with_sequence(sequence: Sequence) -> Self {
        Self { sequence, pseudo_labels: PseudoLabels::default() }
    }

    shared_settings!(sequence, sequence_mut: Sequence);

    fn pseudo_labels(&self, phase: usize) -> Option<PseudoLabels> {
        (phase >= 1).then(|| self.pseudo_labels.clone())
    }

    fn at_switch(&self) -> AtSwitch {
        AtSwitch::PseudoLabel(self.pseudo_labels.clone())
    }

    fn phase_detail(&self, earlier: &[Task]) -> Option<String> {
        let specialist = earlier.iter().all(|&task| self.pseudo_labels.teacher(task).is_some());
        let teacher = if specialist { "a specialist" } else { "the switch snapshot" };
        Some(format!("{teacher} labels its images for {}, weight {}", list(earlier.iter()), self.pseudo_labels.weight))
    }

    fn settings(&mut self) -> Vec<Setting<'_>> {
        vec![Setting::Sequence(&mut self.sequence), Setting::PseudoLabels(&mut self.pseudo_labels)]
    }
}
