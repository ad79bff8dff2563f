use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};

#[derive(Debug, clap::Args)]
pub struct DetArgs {
    #[arg(long)]
    voc: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct SegArgs {
    #[arg(long)]
    ade: PathBuf,
}

pub fn run_det(_args: DetArgs) -> Result<ExitCode> {
    bail!("eval det: not written yet")
}

pub fn run_seg(_args: SegArgs) -> Result<ExitCode> {
    bail!("eval seg: not written yet")
}
