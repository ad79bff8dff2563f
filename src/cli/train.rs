//! `twinhead train`: run the engine headless with a progress bar.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::progress_bar;
use crate::model::Task;
use crate::train::events::{Event, FinishReason};
use crate::backend::device::{mib, DeviceSpec};
use super::replica_totals::ReplicaTotals;
use crate::train::parallel::{NodeSpec, Placement};
use crate::train::{start_on, TrainConfig};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Preset name (in presets/) or path to a TOML file [default: quick].
    #[arg(long)]
    preset: Option<String>,
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
    #[arg(long, default_value = "cpu", conflicts_with = "devices")]
    device: DeviceSpec,
    /// Data-parallel on several devices, one replica each: cuda:0,cuda:1 (or cpu,cpu).
    /// data.batch_size stays the whole step's batch, split evenly over the replicas.
    #[arg(long, value_name = "LIST")]
    devices: Option<String>,
    /// Machines in a multi-node run (one process per node, each with its --devices).
    #[arg(long, requires_all = ["node_rank", "coordinator"])]
    nodes: Option<usize>,
    /// This node's rank: 0 holds the run folder; the others train with its configuration.
    #[arg(long, requires = "nodes")]
    node_rank: Option<usize>,
    /// Node 0's HOST:PORT (PORT and the next nodes+1 ports are used).
    #[arg(long, value_name = "HOST:PORT", requires = "nodes")]
    coordinator: Option<String>,
    /// A multi-node run launched by Slurm (`srun`): the node count, this node's rank and the
    /// coordinator (the job's first host) come from SLURM_JOB_NUM_NODES, SLURM_NODEID and SLURM_JOB_NODELIST.
    #[arg(long, conflicts_with_all = ["nodes", "node_rank", "coordinator"])]
    slurm: bool,
    /// A file whose contents every node of the run shares: nodes prove they know it, and
    /// connections that cannot are not let in (anyone on the network can reach the coordinator port).
    #[arg(long, value_name = "FILE")]
    node_secret_file: Option<PathBuf>,
    /// The coordinator's port with --slurm.
    #[arg(long, default_value_t = crate::train::parallel::slurm::DEFAULT_PORT, requires = "slurm")]
    coordinator_port: u16,
    /// Seconds a node may stay silent (or unreachable at the start) before the run ends on every node.
    #[arg(long, default_value_t = 30, value_name = "SECONDS", allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..=MAX_NODE_TIMEOUT))]
    node_timeout: u64,
}

/// The longest --node-timeout: a day (a longer silence is a lost node).
const MAX_NODE_TIMEOUT: u64 = 86_400;

/// Where the run trains, from --device, --devices and the node flags.
fn placement(args: &Args) -> Result<Placement> {
    let local = Placement::local(args.device, args.devices.as_deref())?;
    let timeout = std::time::Duration::from_secs(args.node_timeout);
    let nodes = match (args.nodes, args.node_rank, &args.coordinator) {
        _ if args.slurm => Some(crate::train::parallel::slurm::node_spec(|name| std::env::var(name).ok(), args.coordinator_port, timeout)?),
        (Some(count), Some(rank), Some(coordinator)) => Some(NodeSpec::new(count, rank, coordinator, timeout)?),
        _ => None,
    };
    let secret = match &args.node_secret_file {
        Some(path) => {
            let secret = std::fs::read(path).with_context(|| format!("--node-secret-file {}: cannot read", path.display()))?;
            anyhow::ensure!(secret.len() >= 16, "--node-secret-file {}: at least 16 bytes (e.g. `openssl rand -hex 32`)", path.display());
            Some(secret)
        }
        None => None,
    };
    let nodes = nodes.map(|spec| NodeSpec { secret, ..spec });
    Ok(Placement { nodes, ..local })
}

pub fn run(args: Args) -> Result<ExitCode> {
    let placement = placement(&args)?;
    let follower = placement.node_rank() > 0;
    let (config, run_dir) = if follower {
        // Node 0 holds the run and hands out its configuration.
        (None, args.out.clone().unwrap_or_else(|| PathBuf::from("runs")))
    } else if args.resume {
        let dir = args.out.clone().ok_or_else(|| anyhow::anyhow!("--resume needs --out RUN_DIR"))?;
        if let Some(flag) = [(args.preset.is_some(), "--preset"), (!args.overrides.is_empty(), "--set")].iter().find_map(|&(given, flag)| given.then_some(flag)) {
            anyhow::bail!(
                "{flag} with --resume: a resumed run keeps the configuration it started with ({}); \
                 a run that failed before its first step starts again with the same command without --resume",
                dir.join(crate::train::run_dir::CONFIG_FILE).display()
            );
        }
        (None, dir)
    } else {
        let config = TrainConfig::load_preset(args.preset.as_deref().unwrap_or("quick"), &args.overrides)?;
        let dir = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&config.name));
        (Some(config), dir)
    };
    let handle = start_on(config, &run_dir, args.resume, placement.clone())?;
    match std::path::absolute(&run_dir) {
        _ if follower => eprintln!("node {} of {}: training with node 0's run", placement.node_rank(), placement.world() / placement.devices.len()),
        Ok(abs) if abs != run_dir => eprintln!("run folder {} ({})", run_dir.display(), abs.display()),
        _ => eprintln!("run folder {}", run_dir.display()),
    }
    let mut replicas = ReplicaTotals::default();
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
            Event::Step { step, losses, images_per_sec, device_memory, .. } => {
                bar.set_position(*step as u64);
                let losses: Vec<String> = losses.iter().filter_map(|(t, l)| l.map(|l| format!("{} {l:.3}", t.key()))).collect();
                let memory = device_memory.map_or(String::new(), |m| format!(" {:.0} MiB on device", mib(m.in_use)));
                bar.set_message(format!("{} {images_per_sec:.0} img/s{memory}", losses.join(" ")))
            }
            Event::Eval(e) => {
                let forgetting: Vec<String> = Task::ALL.into_iter().filter_map(|t| Some(format!("{} {:.4}", t.key(), e.forgetting[t]?))).collect();
                bar.println(format!("step {:>6}  {}  forgetting {}", e.step, e.metric_texts(4).join("  "), forgetting.join(" ")))
            }
            Event::Phase { step, description, .. } => bar.println(format!("step {step:>6}  phase: {description}")),
            Event::Warning { message, .. } => bar.println(format!("warning: {message}")),
            Event::Error { message, .. } => bar.println(format!("error: {message}")),
            Event::Replicas { replicas: steps, .. } => replicas.add(steps),
            Event::Finished { step, reason, wall_seconds } => {
                bar.finish_and_clear();
                for line in replicas.lines() {
                    println!("{line}");
                }
                match follower {
                    true => println!("{reason:?} at step {step}"),
                    false => println!("{reason:?} at step {step} in {wall_seconds:.0} s; run folder {}", run_dir.display()),
                }
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

