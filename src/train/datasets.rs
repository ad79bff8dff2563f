//! A run's datasets opened for training: each task's training split as a
//! sample source and the fixed validation subsets, the synthetic set generated
//! first when the run uses it, and what each reader left out said once.

use std::path::Path;

use anyhow::{bail, Result};

use super::config::{DataConfig, TrainConfig};
use super::evaluate::{ValidationSets, ValidationSplits};
use super::task_data::TaskSource;
use crate::data::problem::Problem;
use crate::data::split::DatasetSplit;
use crate::data::synth::ensure_generated;
use crate::model::task::PerTask;
use crate::model::Task;

/// The opened datasets of a run's tasks.
pub struct Datasets {
    /// Each task's training split (`None` for a task the run lacks).
    pub train: PerTask<Option<TaskSource>>,
    pub validation: ValidationSets,
}

/// For a relative path, says which folder it is relative to (a copied binary
/// runs anywhere, so "datasets/voc" alone can puzzle).
fn relative_to_cwd(path: &Path) -> String {
    match std::env::current_dir() {
        Ok(cwd) if path.is_relative() => format!(" (relative paths resolve against the working directory {})", cwd.display()),
        _ => String::new(),
    }
}

/// Opens (generating the synthetic set first when configured) the datasets of the run's tasks.
pub fn open_datasets(config: &TrainConfig, log: &mut dyn FnMut(String)) -> Result<Datasets> {
    let data = &config.data;
    if let Some((dir, synth)) = data.synthetic_set()? {
        tracing::info!("synthetic datasets in {}", std::path::absolute(&dir).unwrap_or_else(|_| dir.clone()).display());
        ensure_generated(&dir, &synth, |_, _| {})?;
    }
    for (task, path) in data.folders() {
        if !path.exists() {
            bail!("{}: dataset folder {} does not exist{}", DataConfig::key(task), path.display(), relative_to_cwd(path));
        }
    }
    let mut left_out = |name: &str, problems: &[Problem]| {
        if !problems.is_empty() {
            log(format!("{name} split: {} record(s) left out, first: {}", problems.len(), problems[0]));
        }
    };
    let empty = |task: Task, split: &DatasetSplit| {
        let folder = data.folder(task).map_or_else(|| split.root().display(), |dir| dir.display());
        anyhow::anyhow!("{}: {folder}: the {task} split {:?} has no images", DataConfig::key(task), split.name())
    };
    let mut train = PerTask::default();
    for task in Task::ALL {
        let Some(split) = data.open_split(task, data.split_names(task)[0])? else { continue };
        left_out(&format!("{task} training"), split.problems());
        if split.is_empty() {
            return Err(empty(task, &split));
        }
        train[task] = Some(TaskSource::new(&split));
    }
    let splits = ValidationSplits::open(data)?;
    for (task, split) in splits.iter() {
        left_out(&format!("{task} validation"), split.problems());
    }
    // A task is scored on its validation split; classification's metrics have no value for none.
    if let Some(cls) = splits.get(Task::Cls).filter(|split| split.is_empty()) {
        return Err(empty(Task::Cls, cls));
    }
    let validation = splits.subsets(config.eval.images())?;
    Ok(Datasets { train, validation })
}
