//! `twinhead runs compare-images`: two checkpoints on the same validation
//! images, image by image, the images where one beats the other most first
//! (see `image_comparison`); `--against-checkpoint` on the same run compares
//! two of its checkpoints (`switch` against `last`: forgetting, image by image).

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::progress_bar;
use super::run_args::{parse_checkpoint, CheckpointArg, DeviceArg};
use crate::image_comparison::{compare, sort_by_difference, write_csv, ImageRow};
use crate::model::Task;
use crate::predictor::Predictor;
use crate::train::checkpoint::CheckpointKind;
use crate::train::evaluate::ValidationSplits;
use crate::train::run_dir;

#[derive(Debug, clap::Args)]
pub struct CompareImagesArgs {
    /// The first run folder (runs/NAME); its validation datasets are the images compared.
    #[arg(long)]
    pub run: PathBuf,
    #[command(flatten)]
    pub checkpoint: CheckpointArg,
    /// The second run folder (default: the first, to compare two of its checkpoints).
    #[arg(long)]
    pub against: Option<PathBuf>,
    /// The second run's checkpoint.
    #[arg(long, default_value = "last", value_parser = parse_checkpoint)]
    pub against_checkpoint: CheckpointKind,
    /// Images of each validation split compared (default: all).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub images: Option<u64>,
    /// Images shown at each end of each task's list.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub top: u64,
    /// Also writes every image's row, sorted, as CSV here.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceArg,
}

pub fn run(args: CompareImagesArgs) -> Result<ExitCode> {
    let config = run_dir::read_config(&args.run)?;
    let against = args.against.clone().unwrap_or_else(|| args.run.clone());
    let device = args.device.device;
    let a = Predictor::load_on(&args.run, &args.checkpoint.checkpoint, device)?;
    let b = Predictor::load_on(&against, &args.against_checkpoint, device)?;
    let (a_name, b_name) = (format!("{} {}", args.run.display(), args.checkpoint.checkpoint.name()), format!("{} {}", against.display(), args.against_checkpoint.name()));
    let bar = progress_bar(Some(0), "comparing");
    let limit = args.images.map_or(usize::MAX, |n| n as usize);
    let splits = ValidationSplits::open(&config.data)?;
    let (mut rows, skipped) = compare((&a, &b), &splits, &config.eval.postprocess(), limit, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        ControlFlow::Continue(())
    })?;
    bar.finish_and_clear();
    sort_by_difference(&mut rows);
    println!("A = {a_name}, B = {b_name}");
    for task in Task::ALL {
        let of_task: Vec<&ImageRow> = rows.iter().filter(|r| r.task == task).collect();
        if of_task.is_empty() {
            continue;
        }
        let scored: Vec<&&ImageRow> = of_task.iter().filter(|r| r.difference().is_some()).collect();
        let (a_wins, b_wins) = (scored.iter().filter(|r| r.difference() > Some(0.0)).count(), scored.iter().filter(|r| r.difference() < Some(0.0)).count());
        println!("\n{task} ({} images, by {}): A better on {a_wins}, B better on {b_wins}, equal on {}", of_task.len(), metric(task), scored.len() - a_wins - b_wins);
        let top = args.top as usize;
        println!("  where A beats B most:");
        for row in scored.iter().take(top).filter(|r| r.difference() > Some(0.0)) {
            println!("    {}", line(row));
        }
        println!("  where B beats A most:");
        for row in scored.iter().rev().take(top).filter(|r| r.difference() < Some(0.0)) {
            println!("    {}", line(row));
        }
    }
    if !skipped.is_empty() {
        println!("\n{} images left out (they do not read): {}", skipped.len(), skipped.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "));
    }
    if let Some(path) = &args.csv {
        write_csv(&rows, path)?;
        println!("\n{} rows written to {}", rows.len(), path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn metric(task: Task) -> &'static str {
    match task {
        Task::Det => "AP50 of the image's boxes",
        Task::Seg => "the image's mean IoU",
        Task::Cls => "right or wrong",
    }
}

fn line(row: &ImageRow) -> String {
    let number = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.3}"));
    format!("{}  A {} ({})  B {} ({})", row.id, number(row.a), row.a_detail, number(row.b), row.b_detail)
}
