//! `twinhead runs diff`: the configuration keys that differ between runs;
//! `twinhead runs tensorboard`: their TensorBoard files written anew.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use crate::model::Task;
use crate::train::checkpoint::{self, CheckpointKind};
use crate::train::config_diff::config_diff;
use crate::train::run_dir;
use crate::train::tensorboard_log::{events_path, TensorboardLog};

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// Two or more run folders (runs/NAME).
    #[arg(required = true, num_args = 2..)]
    runs: Vec<PathBuf>,
    /// Print JSON: {"runs": [...], "differences": {key: [value per run, null = absent]}}.
    #[arg(long)]
    json: bool,
}

pub fn run_diff(args: DiffArgs) -> Result<ExitCode> {
    let configs = args.runs.iter().map(|dir| run_dir::read_config(dir)).collect::<Result<Vec<_>>>()?;
    let diff = config_diff(&configs.iter().collect::<Vec<_>>());
    let names: Vec<String> = args.runs.iter().map(|p| p.display().to_string()).collect();
    if args.json {
        let differences: serde_json::Map<String, serde_json::Value> =
            diff.iter().map(|d| (d.key.clone(), json!(d.values))).collect();
        println!("{}", serde_json::to_string_pretty(&json!({"runs": names, "differences": differences}))?);
        return Ok(ExitCode::SUCCESS);
    }
    if diff.is_empty() {
        println!("the {} runs have the same configuration", names.len());
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![std::iter::once("key".to_string()).chain(names).collect::<Vec<_>>()];
    rows.extend(diff.into_iter().map(|d| {
        std::iter::once(d.key).chain(d.values.into_iter().map(|v| v.unwrap_or_else(|| "—".into()))).collect()
    }));
    let widths: Vec<usize> =
        (0..rows[0].len()).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        println!("{}", cells.join("  ").trim_end());
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct TensorboardArgs {
    /// Run folders (runs/NAME).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
}

pub fn run_tensorboard(args: TensorboardArgs) -> Result<ExitCode> {
    for run in &args.runs {
        // The class count reads the timeline's masks; a run's checkpoint states it.
        let last = checkpoint::find(run, &CheckpointKind::Last)?;
        let state = checkpoint::read_state(&last)?;
        TensorboardLog::rebuild(run, &run_dir::read_events(run)?.0, state.classes[Task::Seg].len())?;
        println!("{}", events_path(run).display());
    }
    Ok(ExitCode::SUCCESS)
}
