//! `twinhead train`: run the engine headless with a progress bar.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::progress_bar;
use crate::model::Task;
use crate::train::events::{Event, FinishReason};
use crate::backend::device::{mib, DeviceSpec};
use crate::train::{start, TrainConfig};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Preset name (in presets/) or path to a TOML file.
    #[arg(long, default_value = "quick")]
    preset: String,
    /// Override a configuration key, e.g. --set steps=200 --set strategy.kind=joint.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Run folder (default runs/<name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// cpu, cuda[:N], wgpu[:N] or wgpu:cpu (`twinhead devices` lists this machine's).
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let device = args.device;
    let (config, run_dir) = if args.resume {
        let dir = args.out.clone().ok_or_else(|| anyhow::anyhow!("--resume needs --out RUN_DIR"))?;
        (None, dir)
    } else {
        let config = TrainConfig::load_preset(&args.preset, &args.overrides)?;
        let dir = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&config.name));
        (Some(config), dir)
    };
    let handle = start(config, &run_dir, args.resume, device)?;
    match std::path::absolute(&run_dir) {
        Ok(abs) if abs != run_dir => eprintln!("run folder {} ({})", run_dir.display(), abs.display()),
        _ => eprintln!("run folder {}", run_dir.display()),
    }
    let bar = progress_bar(Some(0), "training");
    // A run that fails before it starts failed on its input (data, weights).
    let mut started = false;
    for event in handle.events.iter() {
        match &event {
            Event::Started { step, total_steps, .. } => {
                started = true;
                bar.set_length(*total_steps as u64);
                bar.set_position(*step as u64);
            }
            Event::Step { step, det_loss, seg_loss, cls_loss, images_per_sec, device_memory, .. } => {
                bar.set_position(*step as u64);
                let losses = [(Task::Det, det_loss), (Task::Seg, seg_loss), (Task::Cls, cls_loss)];
                let losses: Vec<String> = losses.iter().filter_map(|(t, l)| l.map(|l| format!("{} {l:.3}", t.key()))).collect();
                let memory = device_memory.map_or(String::new(), |m| format!(" {:.0} MiB on device", mib(m.in_use)));
                bar.set_message(format!("{} {images_per_sec:.0} img/s{memory}", losses.join(" ")))
            }
            Event::Eval(e) => {
                let forgetting: Vec<String> = Task::ALL.into_iter().filter_map(|t| Some(format!("{} {:.4}", t.key(), e.forgetting(t)?))).collect();
                bar.println(format!("step {:>6}  {}  forgetting {}", e.step, e.metric_texts(4).join("  "), forgetting.join(" ")))
            }
            Event::Phase { step, description, .. } => bar.println(format!("step {step:>6}  phase: {description}")),
            Event::Warning { message, .. } => bar.println(format!("warning: {message}")),
            Event::Error { message, .. } => bar.println(format!("error: {message}")),
            Event::Finished { step, reason, wall_seconds } => {
                bar.finish_and_clear();
                println!("{reason:?} at step {step} in {wall_seconds:.0} s; run folder {}", run_dir.display());
            }
            _ => {}
        }
    }
    Ok(match handle.join() {
        Ok(FinishReason::Completed | FinishReason::Stopped) => ExitCode::SUCCESS,
        Ok(FinishReason::Failed) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(if started { 1 } else { 2 })
        }
    })
}
