//! `twinhead bench data`: decode + augment + normalise throughput of the loader.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{ensure, Result};

use super::progress_bar;
use crate::data::augment::AugmentConfig;
use crate::data::batch::DetSource;
use crate::data::loader::{default_threads, Loader, LoaderConfig};
use crate::data::synth::{self, SynthConfig};
use crate::data::format::{DetFormat, DetSpec};
use crate::train::config::{MAX_BATCH_SIZE, MAX_IMAGE_SIZE, MAX_THREADS};

/// Runs `--images` VOC images through decode, training augmentation (random
/// scale + crop, flip, colour jitter), letterboxing to `--size` and
/// normalisation on `--threads` loader workers, and prints images per second.
/// Without --voc it uses a generated set of VOC-sized images (nothing outside
/// the working and temporary folders is read). Compare with tools/bench_data_torch.py.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// VOC dataset (every image listed in any split is used).
    #[arg(long)]
    voc: Option<PathBuf>,
    /// Loader worker threads (default: available cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Network input size, in pixels.
    #[arg(long, default_value_t = 512)]
    size: u32,
    /// Number of images to process (the dataset is cycled through epochs).
    #[arg(long, default_value_t = 512)]
    images: usize,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Batches prepared ahead of the consumer.
    #[arg(long, default_value_t = 4)]
    prefetch: usize,
    /// Letterbox only (evaluation mode) instead of training augmentation.
    #[arg(long)]
    eval: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, serde::Serialize)]
struct BenchResult {
    dataset: PathBuf,
    dataset_images: usize,
    images: usize,
    skipped: usize,
    threads: usize,
    size: u32,
    batch_size: usize,
    mode: &'static str,
    seconds: f64,
    images_per_second: f64,
}

pub fn run_data(args: DataArgs) -> Result<ExitCode> {
    ensure!(args.images > 0, "--images must be at least 1");
    ensure!((32..=MAX_IMAGE_SIZE).contains(&args.size), "--size must be between 32 and {MAX_IMAGE_SIZE} pixels");
    ensure!((1..=MAX_BATCH_SIZE).contains(&args.batch_size), "--batch-size must be between 1 and {MAX_BATCH_SIZE}");
    ensure!((1..=64).contains(&args.prefetch), "--prefetch must be between 1 and 64 batches");
    ensure!(args.threads.is_none_or(|t| (1..=MAX_THREADS).contains(&t)), "--threads must be between 1 and {MAX_THREADS}");
    let threads = args.threads.unwrap_or_else(default_threads);
    let root = match &args.voc {
        Some(dir) => dir.clone(),
        None => generated_set(args.seed)?,
    };
    // The output folder of `data synth` holds its detection set in voc/.
    let root = if DetFormat::detect(&root).is_err() && root.join("voc").is_dir() { root.join("voc") } else { root };
    let dataset = DetSpec::new(&root, None).open_all(None)?;
    ensure!(!dataset.records.is_empty(), "{}: no usable images", root.display());
    let dataset_images = dataset.records.len();
    let config = LoaderConfig {
        batch_size: args.batch_size,
        seed: args.seed,
        shuffle: true,
        drop_last: false,
        threads,
        prefetch: args.prefetch,
        epochs: None,
        augment: if args.eval { AugmentConfig::eval(args.size) } else { AugmentConfig::train(args.size) },
        shard: Default::default(),
    };
    let bar = progress_bar(Some(args.images as u64), "decode + augment");
    let start = Instant::now();
    let mut loader = Loader::new(DetSource::new(&dataset), config)?;
    let mut done = 0;
    let mut checksum = 0f64;
    while done < args.images {
        let Some(batch) = loader.next() else { break };
        // Touch the output so nothing is optimised away.
        checksum += batch.images.iter().step_by(4096).map(|&v| v as f64).sum::<f64>();
        done += batch.len();
        bar.set_position(done.min(args.images) as u64);
    }
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let skipped = loader.skipped();
    drop(loader);
    tracing::debug!("checksum {checksum}");
    let result = BenchResult {
        dataset: root,
        dataset_images,
        images: done,
        skipped,
        threads,
        size: args.size,
        batch_size: args.batch_size,
        mode: if args.eval { "eval (letterbox)" } else { "train (scale+crop, flip, jitter)" },
        seconds,
        images_per_second: done as f64 / seconds,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!(
            "bench data: {} images ({} in the set, {}) at {} px, {}, batch {}, {} thread(s): {:.2} s, {:.1} images/s{}",
            result.images,
            result.dataset_images,
            result.dataset.display(),
            result.size,
            result.mode,
            result.batch_size,
            result.threads,
            result.seconds,
            result.images_per_second,
            if skipped > 0 { format!(" ({skipped} samples skipped, see warnings)") } else { String::new() }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A VOC-format set of VOC-sized synthetic images, generated once into the temp folder.
fn generated_set(seed: u64) -> Result<PathBuf> {
    let out = std::env::temp_dir().join(format!("twinhead-bench-synth-{seed}"));
    let config = SynthConfig { seed, det_images: 256, seg_images: 0, size: 500, ..SynthConfig::default() };
    eprintln!("no --voc given: using a generated set of {} VOC-sized images in {}", config.det_images, out.display());
    let bar = progress_bar(Some(config.det_images as u64), "generating");
    let summary = synth::ensure_generated(&out, &config, |done, _| bar.set_position(done as u64));
    bar.finish_and_clear();
    Ok(summary?.voc_root)
}
