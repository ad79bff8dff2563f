//! `freeze`: `sequential`, with part of the network frozen in every later phase.

use serde::{Deserialize, Serialize};

use super::{AtSwitch, Choice, Choosable, Sequence, Setting, Strategy};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freeze {
    #[serde(flatten)]
    pub sequence: Sequence,
    pub freeze: FreezeScope,
}

/// What `freeze` holds fixed in its later phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum FreezeScope {
    /// The stem and the first `k` backbone stages (1–4).
    Stages(usize),
    Backbone,
    BackboneAndNeck,
}

impl FreezeScope {
    pub const ALL: [FreezeScope; 6] = [
        FreezeScope::Stages(1),
        FreezeScope::Stages(2),
        FreezeScope::Stages(3),
        FreezeScope::Stages(4),
        FreezeScope::Backbone,
        FreezeScope::BackboneAndNeck,
    ];
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

    fn sequence(&self) -> Option<&Sequence> {
        Some(&self.sequence)
    }

    fn sequence_mut(&mut self) -> Option<&mut Sequence> {
        Some(&mut self.sequence)
    }

    fn at_switch(&self) -> AtSwitch {
        AtSwitch::Freeze(self.freeze)
    }

    fn settings(&mut self) -> Vec<Setting<'_>> {
        let freeze = Choice { key: "freeze", label: "Freeze in later phases", hint: "", value: &mut self.freeze };
        vec![Setting::Sequence(&mut self.sequence), freeze.into()]
    }
}
