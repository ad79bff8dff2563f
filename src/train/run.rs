//! Starting a run on a background thread, on any device (the CPU, CUDA, wgpu):
//! the engine behind both `twinhead train` and the workbench.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use anyhow::{bail, ensure, Context, Result};
use crossbeam_channel::{Receiver, Sender};

use super::config::TrainConfig;
use super::events::{Control, Event, FinishReason};
use super::parallel::launch::Launch;
use super::parallel::Placement;
use super::run_dir::{self, record_failure, EventLog};
use super::trainer::Trainer;
use crate::backend::device::{DeviceSpec, OnBackend};
use crate::backend::{TwinAutodiffBackend, TwinBackend, ENGINE_THREAD_STACK};


/// A run training on its own thread.
pub struct RunHandle {
    pub events: Receiver<Event>,
    pub control: Sender<Control>,
    pub run_dir: PathBuf,
    thread: JoinHandle<Result<FinishReason>>,
}

impl RunHandle {
    /// Waits for the run to end.
    pub fn join(self) -> Result<FinishReason> {
        match self.thread.join() {
            Ok(result) => result,
            Err(_) => bail!("the training thread panicked"),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

/// Starts a new run in `run_dir` (which must not hold one), or resumes the run
/// there from its last checkpoint with the configuration it was started with.
pub fn start(config: Option<TrainConfig>, run_dir: &Path, resume: bool, device: DeviceSpec) -> Result<RunHandle> {
    start_on(config, run_dir, resume, Placement::single(device))
}

/// [`start`] on several devices or machines (data-parallel, one replica per
/// device). A node other than node 0 needs no configuration or run folder: it
/// trains with node 0's.
pub fn start_on(config: Option<TrainConfig>, run_dir: &Path, resume: bool, placement: Placement) -> Result<RunHandle> {
    for device in &placement.devices {
        device.probe()?;
    }
    // Node 0 holds the run folder, and trains it alone until the thread ends.
    let (lock, config) = match placement.node_rank() {
        0 => {
            // The log (JSON lines) names the run folder, and JSON holds only UTF-8 text.
            let absolute = std::path::absolute(run_dir).unwrap_or_else(|_| run_dir.to_path_buf());
            ensure!(absolute.to_str().is_some(), "{}: the run folder's path is not UTF-8, and its log cannot name it: choose another folder", absolute.display());
            let lock = run_dir::TrainLock::acquire(run_dir)?;
            (Some(lock), Some(open_run(config, run_dir, resume)?))
        }
        // The other nodes train with node 0's.
        _ => (None, None),
    };
    let (event_tx, events) = crossbeam_channel::unbounded();
    let (control, control_rx) = crossbeam_channel::unbounded();
    let dir = run_dir.to_path_buf();
    if placement.is_parallel() {
        let devices = placement.devices.clone();
        let launch = Launch { config, run_dir: dir, resume, placement, events: event_tx, control: control_rx };
        return spawn_training(run_dir, events, control, move || {
            let _lock = lock;
            DeviceSpec::with_backend_devices(&devices, launch)?
        });
    }
    let (device, config) = (placement.devices[0], config.context("no configuration for the run")?);
    spawn_training(run_dir, events, control, move || {
        let _lock = lock;
        device.with_backend(Training { config, run_dir: dir, resume, device, events: event_tx, control: control_rx })?
    })
}

/// The configuration of the run in `run_dir`: the one it was started with
/// when resuming, else `config`, written into the new run folder.
fn open_run(config: Option<TrainConfig>, run_dir: &Path, resume: bool) -> Result<TrainConfig> {
    if resume {
        return run_dir::read_config(run_dir);
    }
    let config = config.context("no configuration for a new run")?;
    if run_dir.join(run_dir::METRICS_FILE).exists() {
        if !run_dir::never_trained(run_dir)? {
            bail!("{}: a run already exists here (use --resume to continue it, or another --out)", run_dir.display());
        }
        // A start that failed on its input: this one replaces it.
        for stale in [run_dir::METRICS_FILE, run_dir::RESTARTED_METRICS_FILE] {
            let _ = std::fs::remove_file(run_dir.join(stale));
        }
        let _ = std::fs::remove_dir_all(run_dir.join(crate::train::tensorboard_log::TENSORBOARD_DIR));
    }
    run_dir::create(run_dir, &config)?;
    Ok(config)
}

/// Runs `train` on the training thread.
fn spawn_training(
    run_dir: &Path,
    events: Receiver<Event>,
    control: Sender<Control>,
    train: impl FnOnce() -> Result<FinishReason> + Send + 'static,
) -> Result<RunHandle> {
    let thread = std::thread::Builder::new()
        .name("trainer".into())
        .stack_size(ENGINE_THREAD_STACK)
        .spawn(train)
        .context("cannot start the training thread")?;
    Ok(RunHandle { events, control, run_dir: run_dir.to_path_buf(), thread })
}

/// A run to train on the device's backend, differentiated by autodiff.
struct Training {
    config: TrainConfig,
    run_dir: PathBuf,
    resume: bool,
    device: DeviceSpec,
    events: Sender<Event>,
    control: Receiver<Control>,
}

impl OnBackend for Training {
    type Output = Result<FinishReason>;
    fn run<B: TwinBackend>(self, device: B::Device) -> Result<FinishReason> {
        let Training { config, run_dir, resume, device: name, events, control } = self;
        B::twin_run_training(ENGINE_THREAD_STACK, || {
            train_on::<burn::backend::Autodiff<B>>(config, &run_dir, resume, device, &name.to_string(), events, control)
        })
    }
}

fn train_on<B: TwinAutodiffBackend>(
    config: TrainConfig,
    run_dir: &Path,
    resume: bool,
    device: B::Device,
    device_name: &str,
    events: Sender<Event>,
    control: Receiver<Control>,
) -> Result<FinishReason> {
    // Building the network (or loading the checkpoint) onto the device is a turn of its own.
    let turn = B::device_turn(&device);
    let trainer = EventLog::open(run_dir, Some(events.clone())).and_then(|log| Trainer::<B>::new(config, run_dir, resume, device, log));
    drop(turn);
    let result = trainer.and_then(|mut trainer| trainer.run(&control, device_name));
    if let Err(error) = &result {
        record_failure(run_dir, Some(events), &format!("{error:#}"))?;
    }
    result
}

