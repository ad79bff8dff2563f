//! `twinhead bench infer`: forward-pass latency of a run's checkpoint on the
//! CPU (every head, outputs read back), timed as `compress` times its table,
//! for profiling one model without the rest of a compression job.

use std::process::ExitCode;

use anyhow::{ensure, Result};
use burn::module::Module;

use crate::compress::measure::{percentile, probe_images, time_pass, WARM_UP};
use crate::predictor::Predictor;
use crate::train::config::MAX_BATCH_SIZE;
use super::run_args::RunCheckpoint;

#[derive(Debug, clap::Args)]
pub struct InferArgs {
    #[command(flatten)]
    run: RunCheckpoint,
    /// Images per pass.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Timed passes (after a few untimed ones, as `compress` times).
    #[arg(long, default_value_t = 100)]
    passes: usize,
}

pub fn run_infer(args: InferArgs) -> Result<ExitCode> {
    ensure!((1..=MAX_BATCH_SIZE).contains(&args.batch), "--batch must be between 1 and {MAX_BATCH_SIZE}");
    ensure!((1..=1_000_000).contains(&args.passes), "--passes must be between 1 and 1000000");
    let predictor = Predictor::load(&args.run.run, &args.run.checkpoint.checkpoint)?;
    let net = predictor.cpu_net()?;
    let images = probe_images(args.batch, predictor.state.image_size as usize);
    for _ in 0..WARM_UP {
        time_pass(net, images.clone());
    }
    let mut millis: Vec<f64> = (0..args.passes).map(|_| time_pass(net, images.clone()) * 1e3).collect();
    millis.sort_by(f64::total_cmp);
    let median = percentile(&millis, 0.5);
    println!("{} ({} parameters), {} px, batch {}", predictor.checkpoint.display(), net.num_params(), predictor.state.image_size, args.batch);
    println!("latency       {median:.2} ms median, {:.2} ms p90 over {} passes", percentile(&millis, 0.9), args.passes);
    println!("images/s      {:.1}", args.batch as f64 * 1e3 / median);
    Ok(ExitCode::SUCCESS)
}
