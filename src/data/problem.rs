//! A problem found in a dataset or an input file: which file, and what is wrong.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    #[serde(serialize_with = "super::path_text::one")]
    pub path: PathBuf,
    pub reason: String,
}

impl Problem {
    pub fn new(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        Self { path: path.as_ref().to_path_buf(), reason: reason.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// Moves the records that passed a check to the first list and the problems
/// of the others into `problems`, in order.
pub fn split_checked<T>(checked: Vec<Result<T, Problem>>, problems: &mut Vec<Problem>) -> Vec<T> {
    let mut kept = Vec::with_capacity(checked.len());
    for item in checked {
        match item {
            Ok(record) => kept.push(record),
            Err(problem) => problems.push(problem),
        }
    }
    kept
}

/// Keeps the `records` whose verdict is `None`; the others' problems go to `problems`.
pub fn keep_passing<T>(records: Vec<T>, verdicts: Vec<Option<Problem>>, problems: &mut Vec<Problem>) -> Vec<T> {
    let checked = records.into_iter().zip(verdicts).map(|(record, verdict)| verdict.map_or(Ok(record), Err)).collect();
    split_checked(checked, problems)
}

/// Logs how many records a reader left out, so a skip is never silent.
pub fn log_skipped(what: &str, problems: &[Problem]) {
    if !problems.is_empty() {
        tracing::warn!(
            "{what}: {} record(s) left out because of problems (first: {})",
            problems.len(),
            problems[0]
        );
    }
}
