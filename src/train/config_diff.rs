//! Which configuration keys differ between runs: what Compare shows next to
//! the metrics and `twinhead runs diff` prints, so a user sees what changed.

use std::collections::BTreeMap;

use super::TrainConfig;

/// A key (dotted, as `--set` takes it) whose value is not the same in every
/// configuration; one value per configuration, in their order, `None` where
/// the key is absent (e.g. a strategy parameter of another kind).
#[derive(Debug, Clone, PartialEq)]
pub struct DifferingKey {
    pub key: String,
    pub values: Vec<Option<String>>,
}

/// The keys that differ between `configs`, sorted by key.
pub fn config_diff(configs: &[&TrainConfig]) -> Vec<DifferingKey> {
    let flat: Vec<BTreeMap<String, String>> = configs.iter().map(|c| flatten(c)).collect();
    let mut keys: Vec<&String> = flat.iter().flat_map(|f| f.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|key| {
            let values: Vec<Option<String>> = flat.iter().map(|f| f.get(key).cloned()).collect();
            values.iter().any(|v| *v != values[0]).then(|| DifferingKey { key: key.clone(), values })
        })
        .collect()
}

/// Every leaf of the configuration as `dotted.key → TOML value` (strings
/// without their quotes, a list as one value).
pub fn flatten(config: &TrainConfig) -> BTreeMap<String, String> {
    fn walk(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, String>) {
        match value {
            toml::Value::Table(table) => {
                for (key, value) in table {
                    let key = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    walk(&key, value, out);
                }
            }
            toml::Value::String(s) => {
                out.insert(prefix.to_string(), s.clone());
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    // A configuration read from TOML always converts back; one that does not has no keys to show.
    if let Ok(value) = toml::Value::try_from(config) {
        walk("", &value, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_keys_that_differ_are_listed() {
        let a = TrainConfig::load_preset("quick", &[]).unwrap();
        let b = TrainConfig::load_preset("quick", &["optim.lr=0.001".into(), "seed=3".into()]).unwrap();
        let c = TrainConfig::load_preset("quick", &["strategy.kind=joint".into()]).unwrap();
        assert!(config_diff(&[&a, &a.clone()]).is_empty());
        let diff = config_diff(&[&a, &b]);
        let keys: Vec<&str> = diff.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, ["optim.lr", "seed"]);
        assert_eq!(diff[1].values, [Some("0".to_string()), Some("3".to_string())]);
        // A strategy parameter the other kind lacks shows as absent.
        let diff = config_diff(&[&a, &c]);
        let kind = diff.iter().find(|d| d.key == "strategy.kind").unwrap();
        assert_eq!(kind.values, [Some("alternate".to_string()), Some("joint".to_string())]);
        let period = diff.iter().find(|d| d.key == "strategy.period").unwrap();
        assert_eq!(period.values[1], None);
    }
}
