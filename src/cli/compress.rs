//! `twinhead compress`: compress a run's checkpoint and measure it; `compress
//! report`: the table of the run's compressed models.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::progress_bar;
use crate::compress::job::{compress, CompressRequest};
use crate::compress::report::{report_path, Report};
use crate::compress::Recipe;
use super::run_args::CheckpointArg;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run folder (runs/NAME).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// int8, prune:R, lowrank:E, or a chain applied in order, e.g. prune:0.3+lowrank:0.9+int8.
    #[arg(long)]
    pub method: Option<String>,
    #[command(flatten)]
    pub checkpoint: CheckpointArg,
    /// Fine-tuning steps on the run's tasks after the structural methods (default 300 for prune/lowrank, 0 for int8 alone).
    #[arg(long)]
    pub finetune_steps: Option<usize>,
    /// Print the new row as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Run folder (runs/NAME).
    #[arg(long)]
    pub run: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let (Some(run_dir), Some(method)) = (args.run, args.method) else {
        anyhow::bail!("compress: give --run RUN_DIR and --method M (or `compress report --run RUN_DIR`)");
    };
    let request = CompressRequest {
        recipe: Recipe::parse(&method)?,
        source: args.checkpoint.checkpoint,
        run_dir,
        finetune_steps: args.finetune_steps,
    };
    let bar = progress_bar(Some(0), "compressing");
    let variant = compress(&request, &mut |stage, done, total| {
        bar.set_message(stage.to_string());
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        ControlFlow::Continue(())
    })?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&variant)?);
    } else {
        println!("{} written; {}", variant.checkpoint, report_path(&request.run_dir).display());
        print!("{}", Report { variants: vec![variant] }.table());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_report(args: ReportArgs) -> Result<ExitCode> {
    if !args.run.is_dir() {
        anyhow::bail!("{}: no such run folder", args.run.display());
    }
    let report = Report::read(&args.run)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(ExitCode::SUCCESS)
}
