//! `twinhead bench train`: training throughput after warm-up, and peak memory.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Result};
use burn::backend::Flex;
use burn::module::Module;
use burn::tensor::Tensor;

use crate::model::{macs, ModelConfig, TwinNet};
use crate::train::checkpoint::{self, CheckpointKind};
use crate::train::events::Event;
use crate::backend::autotune;
use crate::backend::device::{mib, DeviceSpec};
use super::replica_totals::ReplicaTotals;
use crate::train::parallel::Placement;
use crate::train::{memory, start_on, TrainConfig};

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Preset name (in presets/) or path to a TOML file.
    #[arg(long, default_value = "quick")]
    preset: String,
    /// Override a configuration key (as for `train`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// cpu, cuda[:N], wgpu[:N] or wgpu:cpu (`twinhead devices` lists this machine's).
    #[arg(long, default_value = "cpu", conflicts_with = "devices")]
    device: DeviceSpec,
    /// Data-parallel on several devices (cuda:0,cuda:1 or cpu,cpu): images/s per replica and in total, all-reduce time per step.
    #[arg(long, value_name = "LIST")]
    devices: Option<String>,
    /// Steps run before timing starts.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Steps timed.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Also list the kernel autotuning chose for each convolution and matrix product (GPU devices).
    #[arg(long)]
    kernels: bool,
}

pub fn run_train(args: TrainArgs) -> Result<ExitCode> {
    let device = args.device;
    let placement = Placement::local(device, args.devices.as_deref())?;
    let total = args.warmup + args.steps;
    let mut overrides = args.overrides.clone();
    // Only training is timed: evaluation and checkpoints fall after the last step.
    overrides.extend([format!("steps={total}"), format!("eval.every={}", total + 1), format!("checkpoint.every={}", total + 1)]);
    let config = TrainConfig::load_preset(&args.preset, &overrides)?;
    let run_dir = std::env::temp_dir().join(format!("twinhead-bench-{}", std::process::id()));
    let handle = start_on(Some(config.clone()), &run_dir, false, placement.clone())?;
    // Per replica, over the timed steps.
    let mut replicas = ReplicaTotals::default();
    let mut timed_start = None;
    let mut images = 0usize;
    let mut elapsed = 0.0;
    let mut error = None;
    let (mut peak_device, mut reserved) = (0u64, 0u64);
    for event in handle.events.iter() {
        match event {
            Event::Step { step, tasks, device_memory, .. } => {
                if let Some(m) = device_memory {
                    peak_device = peak_device.max(m.in_use);
                    reserved = reserved.max(m.reserved);
                }
                if step == args.warmup {
                    timed_start = Some(Instant::now());
                } else if step > args.warmup {
                    let per_task = config.data.batch_size;
                    images += tasks.len() * per_task;
                    elapsed = timed_start.map_or(0.0, |t| t.elapsed().as_secs_f64());
                }
            }
            Event::Replicas { step, replicas: steps } if step > args.warmup => replicas.add(&steps),
            Event::Error { message, .. } => error = Some(message),
            _ => {}
        }
    }
    let _ = handle.join();
    // The network the run trained, as its last checkpoint records it.
    let model = checkpoint::find(&run_dir, &CheckpointKind::Last).and_then(|dir| checkpoint::read_state(&dir)).map(|state| state.model);
    let _ = std::fs::remove_dir_all(&run_dir);
    if let Some(message) = error {
        bail!("{message}");
    }
    let on = placement.describe();
    println!("preset {} on {on}: {} px, batch {}, strategy {}", args.preset, config.data.image_size, config.data.batch_size, config.strategy.name());
    let model = model?;
    let macs = print_network(&model, config.data.image_size);
    let images_per_sec = images as f64 / elapsed.max(1e-9);
    println!("images/s      {images_per_sec:.1}{}", if replicas.is_empty() { "" } else { " in total" });
    for line in replicas.lines() {
        println!("  {line}");
    }
    if !replicas.is_empty() {
        let bytes = 4 * TwinNet::<Flex>::new(&model, &Default::default()).num_params();
        println!("all-reduce    {:.1} MB of gradients per step (4 bytes × parameters)", bytes as f64 / 1e6);
    }
    // A training step computes the forward pass and two products per weight backward: 3 × 2 FLOP per MAC.
    let step_flop = 6.0 * macs as f64;
    println!("compute       {:.2} GFLOP per image per step (forward MACs × 2 × 3), {:.3} TFLOP/s achieved", step_flop / 1e9, step_flop * images_per_sec / 1e12);
    println!("step time     {:.1} ms (mean of {} steps after {} warm-up)", 1000.0 * elapsed / args.steps as f64, args.steps, args.warmup);
    let estimate = memory::training_bytes(&model, &config.data) / (1u64 << 20) as f64;
    match peak_memory_mib() {
        Some(mib) => println!("peak memory   {mib:.0} MiB (process resident set; a step estimated at {estimate:.0} MiB before the run)"),
        None => println!("peak memory   unknown on this platform"),
    }
    if reserved > 0 {
        println!("device memory {:.0} MiB in use at most after a step, {:.0} MiB reserved by the pool", mib(peak_device), mib(reserved));
    }
    if args.kernels {
        print_kernels(device);
    }
    Ok(ExitCode::SUCCESS)
}

/// The kernels the GPU ran, as autotuning recorded its choices (convolutions first).
fn print_kernels(device: DeviceSpec) {
    if device == DeviceSpec::Cpu {
        println!("kernels       the CPU runs Twinhead's own (src/backend/: im2col + GEMM convolution, GroupNorm + SiLU, …)");
        return;
    }
    let Some(dir) = autotune::cache_dir() else { return };
    let mut choices = autotune::kernel_choices(&dir);
    choices.sort_by_key(|c| !c.is_convolution());
    println!("kernels       {} operations tuned, recorded in {}", choices.len(), dir.display());
    for choice in choices {
        println!("  {:<40} fastest of {:>2}  {}", choice.fastest, choice.candidates, choice.operation);
    }
}

/// The network's parameter count per part (what `tools/bench_train_torch.py`
/// must match) and its convolutions' multiply-accumulates per image at `image_size`.
fn print_network(model: &ModelConfig, image_size: u32) -> usize {
    let net = TwinNet::<Flex>::new(model, &Default::default());
    let image = Tensor::<Flex, 4>::zeros([1, 3, image_size as usize, image_size as usize], &Default::default());
    let ((), work) = macs::count(|| {
        net.forward_heads(image, net.tasks());
    });
    let macs = work.macs;
    let parts = [
        ("backbone", net.backbone.num_params()),
        ("neck", net.neck.num_params()),
        ("det head", net.det_head.num_params()),
        ("seg head", net.seg_head.num_params()),
        ("cls head", net.cls_head.num_params()),
    ];
    let listed: Vec<String> = parts.iter().map(|(name, count)| format!("{name} {count}")).collect();
    println!("parameters    {} ({})", net.num_params(), listed.join(", "));
    println!("forward       {:.3} GMACs per image (convolutions, at {image_size} px)", macs as f64 / 1e9);
    macs
}

/// The process's peak resident set (`VmHWM`), Linux only.
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
