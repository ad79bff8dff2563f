//! A multi-node run launched by Slurm (`srun twinhead train --slurm …`): the
//! node count, this node's rank and the coordinator (the job's first host)
//! come from the variables Slurm sets in every task's environment.

use std::time::Duration;

use anyhow::{Context, Result};

use super::placement::NodeSpec;

/// The port the coordinator listens on unless `--coordinator-port` says
/// otherwise (the run also uses the next nodes + 1 ports).
pub const DEFAULT_PORT: u16 = 29400;

/// This task's node in the job, from Slurm's variables (read through `var`,
/// the process environment in use, a map in tests).
pub fn node_spec(var: impl Fn(&str) -> Option<String>, port: u16, timeout: Duration) -> Result<NodeSpec> {
    let number = |names: &[&str]| -> Result<usize> {
        let (name, text) = names
            .iter()
            .find_map(|name| var(name).map(|value| (*name, value)))
            .with_context(|| format!("--slurm: {} is not set (run under srun or sbatch)", names[0]))?;
        text.trim().parse().with_context(|| format!("--slurm: {name}={text:?} is not a number"))
    };
    let count = number(&["SLURM_JOB_NUM_NODES", "SLURM_NNODES"])?;
    let rank = number(&["SLURM_NODEID"])?;
    let list = var("SLURM_JOB_NODELIST").or_else(|| var("SLURM_NODELIST")).context("--slurm: SLURM_JOB_NODELIST is not set")?;
    let host = first_host(&list).with_context(|| format!("--slurm: SLURM_JOB_NODELIST={list:?} names no host"))?;
    NodeSpec::new(count, rank, &format!("{host}:{port}"), timeout).context("--slurm")
}

/// The first host of a Slurm host list: `gpu[03-06,09],cpu1` is `gpu03`.
pub fn first_host(list: &str) -> Option<String> {
    // The first entry: up to a comma outside brackets.
    let mut depth = 0;
    let end = list.char_indices().find(|&(_, c)| {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ => {}
        }
        c == ',' && depth == 0
    });
    let entry = &list[..end.map_or(list.len(), |(i, _)| i)];
    // Each bracket group gives its first value, zero padding kept.
    let mut host = String::new();
    let mut rest = entry;
    while let Some(open) = rest.find('[') {
        let close = rest[open..].find(']')? + open;
        host.push_str(&rest[..open]);
        let first = rest[open + 1..close].split(',').next()?.split('-').next()?;
        if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        host.push_str(first);
        rest = &rest[close + 1..];
    }
    host.push_str(rest);
    let host = host.trim().to_string();
    (!host.is_empty() && !host.contains([' ', '[', ']'])).then_some(host)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn host_lists_give_their_first_host() {
        assert_eq!(first_host("node07").as_deref(), Some("node07"));
        assert_eq!(first_host("gpu[03-06,09],cpu1").as_deref(), Some("gpu03"));
        assert_eq!(first_host("a100-[1-4]").as_deref(), Some("a100-1"));
        assert_eq!(first_host("rack[2-3]-n[001-004]").as_deref(), Some("rack2-n001"));
        assert_eq!(first_host("c1,c2").as_deref(), Some("c1"));
        assert_eq!(first_host("gpu[x-y]"), None);
        assert_eq!(first_host(""), None);
    }

    #[test]
    fn a_task_finds_its_node_and_the_coordinator_in_slurms_variables() {
        let job: HashMap<&str, &str> = [("SLURM_JOB_NUM_NODES", "4"), ("SLURM_NODEID", "2"), ("SLURM_JOB_NODELIST", "gpu[03-06]")].into();
        let env = |name: &str| job.get(name).map(|v| v.to_string());
        let spec = node_spec(env, 29400, Duration::from_secs(30)).unwrap();
        assert_eq!((spec.count, spec.rank, spec.coordinator.as_str()), (4, 2, "gpu03:29400"));
        // Older Slurm: SLURM_NNODES and SLURM_NODELIST.
        let old: HashMap<&str, &str> = [("SLURM_NNODES", "2"), ("SLURM_NODEID", "0"), ("SLURM_NODELIST", "n1,n2")].into();
        let spec = node_spec(|name| old.get(name).map(|v| v.to_string()), 5000, Duration::from_secs(30)).unwrap();
        assert_eq!((spec.count, spec.rank, spec.coordinator.as_str()), (2, 0, "n1:5000"));
        // Outside Slurm, or a variable that is not what Slurm writes: named.
        let error = node_spec(|_| None, 29400, Duration::from_secs(30)).unwrap_err().to_string();
        assert!(error.contains("SLURM_JOB_NUM_NODES is not set"), "{error}");
        let bad: HashMap<&str, &str> = [("SLURM_NNODES", "two"), ("SLURM_NODEID", "0"), ("SLURM_NODELIST", "n1")].into();
        let error = format!("{:#}", node_spec(|name| bad.get(name).map(|v| v.to_string()), 29400, Duration::from_secs(30)).unwrap_err());
        assert!(error.contains("SLURM_NNODES=\"two\""), "{error}");
        let single: HashMap<&str, &str> = [("SLURM_NNODES", "1"), ("SLURM_NODEID", "0"), ("SLURM_NODELIST", "n1")].into();
        let error = format!("{:#}", node_spec(|name| single.get(name).map(|v| v.to_string()), 29400, Duration::from_secs(30)).unwrap_err());
        assert!(error.contains("at least 2 nodes"), "{error}");
    }
}
