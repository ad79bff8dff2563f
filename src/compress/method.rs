//! The compression methods and their textual form: `int8`, `prune:R`,
//! `lowrank:E`, chained with `+` and applied in order.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Method {
    /// Convolution weights stored as int8, one scale per output channel.
    Int8,
    /// This fraction of every prunable layer's GroupNorm groups removed.
    Prune { ratio: f64 },
    /// Each convolution factorized at the rank keeping this fraction of its
    /// weight's energy (squared singular values), where that lowers its FLOPs.
    LowRank { energy: f64 },
}

impl Method {
    fn parse(text: &str) -> Result<Self> {
        let number = |value: &str, what: &str| -> Result<f64> {
            value.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| anyhow::anyhow!("{text:?}: {what} {value:?} is not a number"))
        };
        Ok(match text.split_once(':') {
            None if text == "int8" => Self::Int8,
            Some(("prune", value)) => {
                let ratio = number(value, "ratio")?;
                if !(ratio > 0.0 && ratio < 1.0) {
                    bail!("{text:?}: the pruning ratio must be in (0, 1), the fraction of channels removed");
                }
                Self::Prune { ratio }
            }
            Some(("lowrank", value)) => {
                let energy = number(value, "energy")?;
                if !(energy > 0.0 && energy <= 1.0) {
                    bail!("{text:?}: the energy kept must be in (0, 1]");
                }
                Self::LowRank { energy }
            }
            _ => bail!("unknown compression method {text:?} (int8, prune:R, lowrank:E, chained with +)"),
        })
    }

    /// Whether the method changes the network's shapes (and fine-tuning can follow it).
    pub fn is_structural(self) -> bool {
        !matches!(self, Self::Int8)
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Int8 => f.write_str("int8"),
            Self::Prune { ratio } => write!(f, "prune:{ratio}"),
            Self::LowRank { energy } => write!(f, "lowrank:{energy}"),
        }
    }
}

/// A chain of methods, e.g. `prune:0.3+lowrank:0.9+int8`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe(pub Vec<Method>);

impl Recipe {
    pub fn parse(text: &str) -> Result<Self> {
        let methods = text.split('+').map(|part| Method::parse(part.trim())).collect::<Result<Vec<_>>>()?;
        if let Some(i) = methods.iter().position(|m| *m == Method::Int8) {
            if i + 1 != methods.len() {
                bail!("{text:?}: int8 must come last (the structural methods and fine-tuning work on float weights)");
            }
        }
        Ok(Self(methods))
    }

    /// The folder name under the run's `compressed/` (`:` is not portable in file names).
    pub fn folder(&self) -> String {
        self.to_string().replace(':', "-")
    }

    pub fn is_structural(&self) -> bool {
        self.0.iter().any(|m| m.is_structural())
    }

    pub fn quantizes(&self) -> bool {
        self.0.contains(&Method::Int8)
    }
}

impl std::fmt::Display for Recipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(Method::to_string).collect();
        f.write_str(&parts.join("+"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_parse_print_and_name_their_folder() {
        let recipe = Recipe::parse("prune:0.3+lowrank:0.9+int8").unwrap();
        assert_eq!(recipe.0, [Method::Prune { ratio: 0.3 }, Method::LowRank { energy: 0.9 }, Method::Int8]);
        assert_eq!(recipe.to_string(), "prune:0.3+lowrank:0.9+int8");
        assert_eq!(recipe.folder(), "prune-0.3+lowrank-0.9+int8");
        assert!(recipe.is_structural() && recipe.quantizes());
        assert!(!Recipe::parse("int8").unwrap().is_structural());
    }

    #[test]
    fn bad_methods_are_named() {
        for (text, said) in [
            ("fp16", "unknown compression method \"fp16\""),
            ("prune:1.5", "must be in (0, 1)"),
            ("prune:0", "must be in (0, 1)"),
            ("prune:x", "ratio \"x\" is not a number"),
            ("lowrank:0", "must be in (0, 1]"),
            ("int8+prune:0.3", "int8 must come last"),
            ("int8+int8", "int8 must come last"),
        ] {
            let error = Recipe::parse(text).unwrap_err().to_string();
            assert!(error.contains(said), "{text}: {error}");
        }
    }
}
