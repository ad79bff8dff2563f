//! Starting a run on a background thread, on the CPU or a CUDA device: the
//! engine behind both `twinhead train` and the workbench.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::thread::JoinHandle;

use anyhow::{bail, Context, Result};
use crossbeam_channel::{Receiver, Sender};

use super::config::TrainConfig;
use super::events::{Control, Event, FinishReason};
use super::run_dir::{self, EventLog};
use super::trainer::Trainer;
use crate::backend::TwinAutodiffBackend;

/// The CPU training backend.
pub type CpuBackend = burn::backend::Autodiff<burn::backend::Flex>;
/// The CUDA training backend.
#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Autodiff<burn::backend::Cuda>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse) {
                Some(Ok(index)) => Ok(Self::Cuda(index)),
                _ => bail!("device {other:?}: expected cpu, cuda or cuda:N"),
            },
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl DeviceSpec {
    /// Checks the device can be used, with a clear message when it cannot
    /// (burn-cuda only panics later, deep inside, when no GPU exists).
    pub fn probe(self) -> Result<()> {
        match self {
            Self::Cpu => Ok(()),
            #[cfg(feature = "cuda")]
            Self::Cuda(index) => {
                use burn::tensor::Tensor;
                let device = burn::backend::cuda::CudaDevice::new(index);
                // The failure surfaces as a panic inside burn-cuda: catch it quietly.
                let previous_hook = std::panic::take_hook();
                std::panic::set_hook(Box::new(|_| {}));
                let attempt = std::panic::catch_unwind(|| {
                    Tensor::<burn::backend::Cuda, 1>::ones([4], &device).sum().into_scalar()
                });
                std::panic::set_hook(previous_hook);
                match attempt {
                    Ok(_) => Ok(()),
                    Err(_) => bail!("cuda:{index}: no usable CUDA device (is a GPU and its driver present?)"),
                }
            }
            #[cfg(not(feature = "cuda"))]
            Self::Cuda(_) => bail!("this build has no CUDA support: rebuild with `--features cuda`"),
        }
    }
}

/// Stack size of the threads that load checkpoints: burn deserializes a whole
/// network's record within one stack frame of a few MiB, more than a spawned
/// thread's default 2 MiB (only touched memory is committed).
pub const ENGINE_THREAD_STACK: usize = 64 << 20;

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
    let config = if resume {
        run_dir::read_config(run_dir)?
    } else {
        let config = config.context("no configuration for a new run")?;
        if run_dir.join(run_dir::METRICS_FILE).exists() {
            bail!("{}: a run already exists here (use --resume to continue it, or another --out)", run_dir.display());
        }
        run_dir::create(run_dir, &config)?;
        config
    };
    device.probe()?;
    let (event_tx, events) = crossbeam_channel::unbounded();
    let (control, control_rx) = crossbeam_channel::unbounded();
    let dir = run_dir.to_path_buf();
    let thread = std::thread::Builder::new()
        .name("trainer".into())
        .stack_size(ENGINE_THREAD_STACK)
        .spawn(move || match device {
            DeviceSpec::Cpu => train_on::<CpuBackend>(config, &dir, resume, Default::default(), "cpu", event_tx, control_rx),
            #[cfg(feature = "cuda")]
            DeviceSpec::Cuda(index) => train_on::<CudaBackend>(
                config,
                &dir,
                resume,
                burn::backend::cuda::CudaDevice::new(index),
                &format!("cuda:{index}"),
                event_tx,
                control_rx,
            ),
            #[cfg(not(feature = "cuda"))]
            DeviceSpec::Cuda(_) => unreachable!("probe rejects CUDA without the feature"),
        })
        .context("cannot start the training thread")?;
    Ok(RunHandle { events, control, run_dir: run_dir.to_path_buf(), thread })
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
    let result = EventLog::open(run_dir, Some(events.clone()))
        .and_then(|log| Trainer::<B>::new(config, run_dir, resume, device, log))
        .and_then(|mut trainer| trainer.run(&control, device_name));
    if let Err(error) = &result {
        // The failure is part of the run's record, and the listener sees it. The
        // log is opened now: resuming may have replaced the file since the start.
        let mut log = EventLog::open(run_dir, Some(events))?;
        let step = run_dir::read_events(run_dir).ok().and_then(|(e, _)| e.last().map(Event::step)).unwrap_or(0);
        log.emit(Event::Error { step, message: format!("{error:#}") })?;
        log.emit(Event::Finished { step, reason: FinishReason::Failed, wall_seconds: 0.0 })?;
    }
    result
}
