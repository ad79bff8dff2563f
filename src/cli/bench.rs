use std::process::ExitCode;

use anyhow::{bail, Result};

#[derive(Debug, clap::Args)]
pub struct DataArgs {}

pub fn run_data(_args: DataArgs) -> Result<ExitCode> {
    bail!("bench data: not written yet")
}
