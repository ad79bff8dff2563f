//! `twinhead export ultralytics-state-dict`: a run's backbone, neck and the
//! detection head's hidden layers in Ultralytics YOLOv8's layout, as a
//! `.safetensors` state dict (for Ultralytics, or another run's
//! `model.pretrained`). The GroupNorms become BatchNorms whose statistics are
//! averaged over training images of both tasks; how far the result is from
//! the network is measured and printed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::progress_bar;
use crate::data::batch::decode_rgb;
use crate::model::yolov8::{self, export};
use crate::model::{ModelConfig, Reshape, TwinNet};
use crate::predictor::{InferenceBackend, Predictor};
use super::run_args::RunCheckpoint;
use crate::train::config::TrainConfig;
use crate::train::run_dir;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run and its checkpoint (not a pruned one: its widths are not YOLOv8's).
    #[command(flatten)]
    run: RunCheckpoint,
    /// The file [default: RUN/ultralytics/<checkpoint>.safetensors].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Training images (half from each task) the BatchNorm statistics are averaged over.
    #[arg(long, default_value = "64", value_parser = clap::value_parser!(u32).range(1..=4096))]
    images: u32,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let kind = args.run.checkpoint.checkpoint.clone();
    let config = run_dir::read_config(&args.run.run)?;
    let predictor = Predictor::load(&args.run.run, &kind)?;
    let model = &predictor.state.model;
    if model.reshape.iter().any(|edit| matches!(edit, Reshape::Prune { .. })) {
        bail!("{}: a pruned network; its widths are not YOLOv8's (export the checkpoint it was pruned from)", predictor.checkpoint.display());
    }
    let mut net = predictor.cpu_net()?.clone();

    let paths = calibration_paths(&config, args.images as usize)?;
    let decoded: Vec<_> = paths.par_iter().map(|path| decode_rgb(path)).collect();
    let failed: Vec<_> = decoded.iter().filter_map(|d| d.as_ref().err()).collect();
    if let Some(first) = failed.first() {
        eprintln!("{} calibration image(s) did not decode and are left out, first: {first}", failed.len());
    }
    let images: Vec<_> = decoded.into_iter().filter_map(Result::ok).collect();
    if images.is_empty() {
        bail!("no calibration image could be read from the run's training splits");
    }
    let device = Default::default();
    let batches: Vec<Tensor<InferenceBackend, 4>> =
        predictor.input_batches(&images).map(|(pixels, _)| Tensor::from_data(pixels, &device)).collect();
    let bar = progress_bar(Some(images.len() as u64), "calibrating");
    let calibration = batches.iter().cloned().inspect(|batch| bar.inc(batch.dims()[0] as u64));
    let state = export::state_dict(&mut net, calibration)?;
    bar.finish_and_clear();

    let out = args.out.clone().unwrap_or_else(|| {
        args.run.run.join("ultralytics").join(format!("{}.safetensors", kind.name().replace('/', "-")))
    });
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("{}: cannot create", parent.display()))?;
    }
    run_dir::write_atomic(&out, &state.to_safetensors()?)?;
    println!(
        "{} -> {} ({} layers, {} tensors; BatchNorm statistics from {} training images)",
        predictor.checkpoint.display(),
        out.display(),
        state.layers.len(),
        state.tensors.len(),
        state.calibration_images
    );

    // The file read back as `model.pretrained` reads it, against the network.
    let plain = ModelConfig { reshape: Vec::new(), ..model.clone() };
    let mut back = TwinNet::<InferenceBackend>::new(&plain, &device);
    yolov8::import(&mut back, &out)?;
    let difference = export::neck_difference(&net, &back, batches[0].clone())?;
    println!(
        "read back: neck outputs at strides 8 / 16 / 32 differ from the network's by {:.2} % / {:.2} % / {:.2} % (relative L2, {} calibration images)",
        difference[0] * 100.0,
        difference[1] * 100.0,
        difference[2] * 100.0,
        batches[0].dims()[0]
    );
    Ok(ExitCode::SUCCESS)
}

/// Up to `count` training images, shared between the run's detection and
/// segmentation splits, evenly spaced through each.
fn calibration_paths(config: &TrainConfig, count: usize) -> Result<Vec<PathBuf>> {
    let data = &config.data;
    let det = data.det_spec().map(|spec| spec.open(&data.voc_train_split, None)).transpose()?;
    let seg = data.seg_spec().map(|spec| spec.open(&data.ade_train_split)).transpose()?;
    let det_paths: Vec<PathBuf> = det.iter().flat_map(|d| &d.records).map(|r| r.image_path.clone()).collect();
    let seg_paths: Vec<PathBuf> = seg.iter().flat_map(|d| &d.records).map(|r| r.image_path.clone()).collect();
    if det_paths.is_empty() && seg_paths.is_empty() {
        bail!("the run has no detection or segmentation images to measure its layers' statistics on (data.voc, data.ade)");
    }
    let det_share = if seg_paths.is_empty() { count } else if det_paths.is_empty() { 0 } else { count.div_ceil(2) };
    Ok(spaced(&det_paths, det_share).into_iter().chain(spaced(&seg_paths, count - det_share)).collect())
}

/// `count` of `items` at even intervals (all of them when there are fewer).
fn spaced(items: &[PathBuf], count: usize) -> Vec<PathBuf> {
    if items.len() <= count {
        return items.to_vec();
    }
    (0..count).map(|i| items[i * items.len() / count].clone()).collect()
}
