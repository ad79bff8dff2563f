//! The arguments every command on a trained run shares: the run folder, which
//! of its checkpoints, the device. One definition, so their names, defaults
//! and help texts are the same everywhere and follow what the code accepts.

use std::path::PathBuf;

use crate::backend::device::DeviceSpec;
use crate::train::checkpoint::CheckpointKind;

/// A run folder and one of its checkpoints.
#[derive(Debug, Clone, clap::Args)]
pub struct RunCheckpoint {
    /// Run folder (runs/NAME).
    #[arg(long)]
    pub run: PathBuf,
    #[command(flatten)]
    pub checkpoint: CheckpointArg,
}

/// Which of a run's checkpoints.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckpointArg {
    #[arg(long, default_value = "last", value_parser = parse_checkpoint, help = checkpoint_help())]
    pub checkpoint: CheckpointKind,
}

/// The device to compute on.
#[derive(Debug, Clone, clap::Args)]
pub struct DeviceArg {
    /// Device to run on: cpu, cuda[:N], wgpu[:N] or wgpu:cpu (`twinhead devices` lists this machine's).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
}

pub(crate) fn parse_checkpoint(name: &str) -> anyhow::Result<CheckpointKind> {
    CheckpointKind::parse(name)
}

fn checkpoint_help() -> String {
    format!("Which checkpoint: {} (`compress` writes those)", CheckpointKind::accepted())
}
