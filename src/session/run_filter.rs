//! The runs list's search, grouping and sorting. A query is words and
//! `key OP value` terms (`OP`: `=`, `!=`, `<`, `<=`, `>`, `>=`), all of which
//! must hold: a word is found in a run's name, status, strategy or tags; a
//! key is any key of its configuration by its dotted path or the path's end
//! (`strategy.kind=replay`, `lr<0.001`), or one of `name`, `status`, `tag`,
//! `tasks`, `strategy`, `step`, `best.det`, `best.seg`, `best.cls`.
//! Numbers compare as numbers, anything else as text (ignoring case).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::run_record::RunRecord;
use crate::model::Task;
use crate::train::config_diff::flatten;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Term {
    Word(String),
    Compare { key: String, op: Op, value: String },
}

/// A parsed search; the empty query matches every run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunQuery {
    terms: Vec<Term>,
}

impl RunQuery {
    /// Never fails: a token without an operator is a word.
    pub fn parse(text: &str) -> Self {
        // Two-character operators first, so that `<=` is not read as `<`.
        const OPS: [(&str, Op); 6] = [("!=", Op::Ne), ("<=", Op::Le), (">=", Op::Ge), ("=", Op::Eq), ("<", Op::Lt), (">", Op::Gt)];
        let terms = text
            .split_whitespace()
            .map(|token| {
                let found = OPS.iter().filter_map(|&(sign, op)| token.find(sign).map(|at| (at, sign, op))).min_by_key(|&(at, sign, _)| (at, usize::MAX - sign.len()));
                match found {
                    Some((at, sign, op)) if at > 0 => Term::Compare { key: token[..at].to_lowercase(), op, value: token[at + sign.len()..].to_string() },
                    _ => Term::Word(token.to_lowercase()),
                }
            })
            .collect();
        Self { terms }
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn matches(&self, run: &RunFacts) -> bool {
        self.terms.iter().all(|term| match term {
            Term::Word(word) => run.words.contains(word.as_str()),
            Term::Compare { key, op, value } => run.values_of(key).any(|have| compare(have, *op, value)),
        })
    }
}

fn compare(have: &str, op: Op, want: &str) -> bool {
    let order = match (have.parse::<f64>(), want.parse::<f64>()) {
        (Ok(a), Ok(b)) => a.partial_cmp(&b),
        _ if matches!(op, Op::Eq | Op::Ne) => Some(have.to_lowercase().cmp(&want.to_lowercase())),
        _ => None,
    };
    match (op, order) {
        (Op::Eq, Some(o)) => o == Ordering::Equal,
        (Op::Ne, Some(o)) => o != Ordering::Equal,
        (Op::Lt, Some(o)) => o == Ordering::Less,
        (Op::Le, Some(o)) => o != Ordering::Greater,
        (Op::Gt, Some(o)) => o == Ordering::Greater,
        (Op::Ge, Some(o)) => o != Ordering::Less,
        (_, None) => false,
    }
}

/// What a run is searched, grouped and sorted by, computed once per change
/// of the run (its configuration flattened to dotted keys).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFacts {
    /// Key → values (a list, such as the tags, has several).
    values: BTreeMap<String, Vec<String>>,
    /// Name, status, strategy and tags, lower case, for words.
    words: String,
}

impl RunFacts {
    pub fn of(record: &RunRecord) -> Self {
        let notes = &record.notes;
        let mut config = record.config.clone();
        config.strategy = record.strategy.clone();
        let mut values: BTreeMap<String, Vec<String>> = flatten(&config).into_iter().map(|(key, value)| (key, vec![value])).collect();
        let mut put = |key: &str, value: String| values.insert(key.to_string(), vec![value]);
        put("name", record.name.clone());
        put("status", record.status.label().to_string());
        put("strategy", record.strategy.label());
        put("tasks", String::from(record.config.data.run_tasks()));
        put("step", record.step.to_string());
        for task in Task::ALL {
            if let Some(best) = record.best(task) {
                put(&format!("best.{}", task.key()), best.to_string());
            }
        }
        values.insert("tag".into(), notes.tags.clone());
        let words = [record.name.as_str(), record.status.label(), &record.strategy.label(), &notes.tags.join(" ")].join(" ").to_lowercase();
        Self { values, words }
    }

    /// The values of `key`: its own, else those of every key ending in `.key`.
    fn values_of<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        let exact = self.values.get(key);
        let suffix = format!(".{key}");
        let ends = self.values.iter().filter(move |(k, _)| exact.is_none() && k.ends_with(&suffix)).flat_map(|(_, v)| v);
        exact.into_iter().flatten().chain(ends)
    }

    /// The text a group is formed by: the run's values of `key`, joined
    /// (`(none)` when it has none).
    pub fn group_of(&self, key: &str) -> String {
        let values: Vec<&str> = self.values_of(key).map(String::as_str).collect();
        if values.is_empty() { "(none)".to_string() } else { values.join(", ") }
    }
}

/// How the runs list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunOrder {
    #[default]
    Newest,
    Name,
    /// By the best metric of the task, highest first (runs without one last).
    Best(Task),
    /// By the metric of the last evaluation.
    Final(Task),
}

impl RunOrder {
    pub const ALL: [RunOrder; 8] = [
        RunOrder::Newest,
        RunOrder::Name,
        RunOrder::Best(Task::Det),
        RunOrder::Best(Task::Seg),
        RunOrder::Best(Task::Cls),
        RunOrder::Final(Task::Det),
        RunOrder::Final(Task::Seg),
        RunOrder::Final(Task::Cls),
    ];

    pub fn label(self) -> String {
        match self {
            RunOrder::Newest => "newest first".into(),
            RunOrder::Name => "name".into(),
            RunOrder::Best(task) => format!("best {}", task.metric_name()),
            RunOrder::Final(task) => format!("final {}", task.metric_name()),
        }
    }

    /// `indices` (into `records`, oldest first) in this order.
    pub fn sort(self, records: &[RunRecord], indices: &mut [usize]) {
        let metric = |i: usize| match self {
            RunOrder::Best(task) => records[i].best(task),
            RunOrder::Final(task) => records[i].last_eval().and_then(|e| e.metric[task]),
            _ => None,
        };
        match self {
            RunOrder::Newest => indices.sort_by(|a, b| b.cmp(a)),
            RunOrder::Name => indices.sort_by(|&a, &b| records[a].name.cmp(&records[b].name)),
            // Highest first; runs without the metric after all that have it.
            _ => indices.sort_by(|&a, &b| match (metric(a), metric(b)) {
                (Some(x), Some(y)) => y.total_cmp(&x),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => b.cmp(&a),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::run_record::RunStatus;
    use crate::train::config::TrainConfig;

    fn run(name: &str, overrides: &[&str], tags: &[&str]) -> RunFacts {
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        let config = TrainConfig::load_preset("quick", &overrides).unwrap();
        let mut record = RunRecord::new(std::path::Path::new(name), config, RunStatus::Completed);
        record.notes.tags = tags.iter().map(|s| s.to_string()).collect();
        RunFacts::of(&record)
    }

    #[test]
    fn queries_match_words_and_config_keys() {
        let replay = run("replay-a", &["strategy.kind=replay", "strategy.switch_step=200", "optim.lr=0.0005"], &["baseline"]);
        let joint = run("joint-b", &["strategy.kind=joint", "optim.lr=0.002"], &[]);
        let matching = |query: &str| -> Vec<bool> { [&replay, &joint].map(|r| RunQuery::parse(query).matches(r)).to_vec() };
        assert_eq!(matching(""), [true, true]);
        assert_eq!(matching("strategy.kind=replay"), [true, false]);
        assert_eq!(matching("kind=JOINT"), [false, true], "a key by its end, text ignoring case");
        assert_eq!(matching("lr<0.001"), [true, false], "numbers as numbers");
        assert_eq!(matching("lr>=0.0005 lr<=0.002"), [true, true]);
        assert_eq!(matching("optim.lr!=0.002"), [true, false]);
        assert_eq!(matching("tag=baseline"), [true, false]);
        assert_eq!(matching("Replay"), [true, false], "a word in the name or strategy");
        assert_eq!(matching("completed joint"), [false, true]);
        assert_eq!(matching("lr<fast"), [false, false], "no order between a number and text");
        assert_eq!(matching("=x"), [false, false], "a token starting with an operator is a word");
        assert_eq!(replay.group_of("strategy.kind"), "replay");
        assert_eq!(joint.group_of("tag"), "(none)");
    }

    #[test]
    fn orders_put_the_best_first_and_runs_without_a_metric_last() {
        let config = TrainConfig::load_preset("quick", &[]).unwrap();
        let mut records: Vec<RunRecord> = ["b", "a", "c"].iter().map(|n| RunRecord::new(std::path::Path::new(n), config.clone(), RunStatus::Completed)).collect();
        for (record, miou) in records.iter_mut().zip([Some(0.5), Some(0.7), None]) {
            if let Some(miou) = miou {
                record.evals.push(crate::train::events::EvalRecord { step: 10, metric: [Some(0.1), Some(miou), None].into(), ..Default::default() });
            }
        }
        let order = |by: RunOrder| {
            let mut indices: Vec<usize> = (0..3).collect();
            by.sort(&records, &mut indices);
            indices.iter().map(|&i| records[i].name.as_str()).collect::<Vec<_>>()
        };
        assert_eq!(order(RunOrder::Newest), ["c", "a", "b"]);
        assert_eq!(order(RunOrder::Name), ["a", "b", "c"]);
        assert_eq!(order(RunOrder::Best(Task::Seg)), ["a", "b", "c"]);
    }
}
