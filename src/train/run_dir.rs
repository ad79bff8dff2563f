//! The run folder `runs/<name>/`: `config.toml`, the append-only event log
//! `metrics.jsonl` (and its TensorBoard copy), and `checkpoints/`. Event lines are also sent to whoever
//! listens (the CLI's progress bar, the workbench).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use crossbeam_channel::Sender;

use super::config::TrainConfig;
use super::events::{Event, FinishReason};
use super::tensorboard_log::TensorboardLog;

pub const CONFIG_FILE: &str = "config.toml";
pub const METRICS_FILE: &str = "metrics.jsonl";
/// Where a run that restarts from step 0 keeps the events of its killed attempt.
pub const RESTARTED_METRICS_FILE: &str = "metrics.before-restart.jsonl";

/// Writes `contents` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot move into place", path.display()))
}

/// Held by the process that trains a run, for as long as it trains it.
pub const LOCK_FILE: &str = "train.lock";

/// The lock a training process holds on its run folder (an advisory file
/// lock, so it goes with the process however that ends). Other processes
/// see a run as training elsewhere while it is held, and cannot train it too.
pub struct TrainLock {
    _file: File,
}

/// Who holds a run's lock, as far as its folder tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    /// No process trains the run.
    Free,
    /// A process trains it (this one or another).
    Held,
    /// The file system keeps no locks here (or the folder has no lock file, from
    /// a build before it): unknown.
    Unknown,
}

impl TrainLock {
    /// Takes the lock of `run_dir` (created if missing), or says who holds it.
    pub fn acquire(run_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(run_dir).with_context(|| format!("{}: cannot create run folder", run_dir.display()))?;
        let path = run_dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("{}: cannot open", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                anyhow::bail!("{}: another process is training this run ({})", run_dir.display(), holder.trim());
            }
            // A file system without locks (some network mounts): train unguarded, as before.
            Err(std::fs::TryLockError::Error(e)) => tracing::warn!("{}: cannot lock ({e}); not guarded against a second trainer", path.display()),
        }
        let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "this machine".into());
        let _ = file.set_len(0);
        let _ = (&file).write_all(format!("pid {} on {host}\n", std::process::id()).as_bytes());
        Ok(Self { _file: file })
    }

    /// Whether a process trains the run in `run_dir` now.
    pub fn state(run_dir: &Path) -> LockState {
        let Ok(file) = OpenOptions::new().read(true).write(true).open(run_dir.join(LOCK_FILE)) else {
            return LockState::Unknown;
        };
        match file.try_lock() {
            Ok(()) => LockState::Free,
            Err(std::fs::TryLockError::WouldBlock) => LockState::Held,
            Err(std::fs::TryLockError::Error(_)) => LockState::Unknown,
        }
    }
}

/// Creates the run folder and writes its configuration.
pub fn create(run_dir: &Path, config: &TrainConfig) -> Result<()> {
    std::fs::create_dir_all(run_dir).with_context(|| format!("{}: cannot create run folder", run_dir.display()))?;
    write_atomic(&run_dir.join(CONFIG_FILE), config.to_toml()?.as_bytes())
}

/// Reads the configuration a run was started with.
pub fn read_config(run_dir: &Path) -> Result<TrainConfig> {
    let path = run_dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read (is this a run folder?)", path.display()))?;
    TrainConfig::from_toml(&text, &[]).with_context(|| path.display().to_string())
}

/// Whether `run_dir` holds a run that never trained: a start that failed on
/// its input (a missing dataset, bad weights) logs an error and no step, and
/// saves no checkpoint. Starting the run again may replace it.
pub fn never_trained(run_dir: &Path) -> Result<bool> {
    let (events, _) = read_events(run_dir)?;
    let started = events.iter().any(|e| matches!(e, Event::Started { .. }));
    Ok(!started && !run_dir.join("checkpoints").exists())
}

/// Reads every event of a run's log; a line that does not parse (a run killed
/// mid-write) is skipped and counted.
pub fn read_events(run_dir: &Path) -> Result<(Vec<Event>, usize)> {
    let mut tail = super::log_tail::LogTail::new(&run_dir.join(METRICS_FILE));
    let read = tail.read().with_context(|| format!("{}: cannot read", run_dir.join(METRICS_FILE).display()))?;
    Ok((read.events, read.unreadable + tail.torn() as usize))
}

/// Appends events to `metrics.jsonl` (and the TensorBoard file, once
/// attached) and forwards them to a listener.
pub struct EventLog {
    path: PathBuf,
    /// `None` for a replica's log, which writes nothing (the run's is replica 0's).
    file: Option<File>,
    listener: Option<Sender<Event>>,
    tensorboard: Option<TensorboardLog>,
}

impl EventLog {
    pub fn open(run_dir: &Path, listener: Option<Sender<Event>>) -> Result<Self> {
        let path = run_dir.join(METRICS_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("{}: cannot open", path.display()))?;
        Ok(Self { path, file: Some(file), listener, tensorboard: None })
    }

    /// The log of a data-parallel replica other than replica 0: its events
    /// go to `listener` only (another node's progress bar), never to a file.
    pub fn replica(listener: Option<Sender<Event>>) -> Self {
        Self { path: PathBuf::new(), file: None, listener, tensorboard: None }
    }

    /// Whether events are written to a run folder.
    pub fn writes(&self) -> bool {
        self.file.is_some()
    }

    /// Also writes every event to `tensorboard` from now on.
    pub fn attach_tensorboard(&mut self, tensorboard: TensorboardLog) {
        self.tensorboard = Some(tensorboard);
    }

    pub fn emit(&mut self, event: Event) -> Result<()> {
        let mut line = serde_json::to_string(&event)?;
        line.push('\n');
        if let Some(file) = &mut self.file {
            file.write_all(line.as_bytes()).with_context(|| format!("{}: cannot append", self.path.display()))?;
        }
        if let Some(tensorboard) = &mut self.tensorboard {
            tensorboard.record(&event)?;
        }
        if let Some(listener) = &self.listener {
            // A listener that went away (a closed window) does not stop training.
            let _ = listener.send(event);
        }
        Ok(())
    }

    /// Starts the log over for a run that restarts from step 0 (killed before
    /// its first checkpoint), so its steps are not logged twice. The killed
    /// attempt's events move to [`RESTARTED_METRICS_FILE`], whose path this
    /// returns; `None` when the log held nothing.
    pub fn restart(&mut self) -> Result<Option<PathBuf>> {
        if !self.writes() {
            return Ok(None);
        }
        let dir = self.path.parent().expect("log lives in a run folder").to_path_buf();
        let (events, _) = read_events(&dir)?;
        if events.is_empty() {
            return Ok(None);
        }
        let kept = dir.join(RESTARTED_METRICS_FILE);
        std::fs::rename(&self.path, &kept).with_context(|| format!("{}: cannot move to {}", self.path.display(), kept.display()))?;
        self.file = Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .with_context(|| format!("{}: cannot open", self.path.display()))?,
        );
        self.rebuild_tensorboard(&dir)?;
        Ok(Some(kept))
    }

    /// Drops the events after `step` (those of steps a killed run lost), atomically.
    pub fn truncate_after(&mut self, step: usize) -> Result<()> {
        if !self.writes() {
            return Ok(());
        }
        let dir = self.path.parent().expect("log lives in a run folder").to_path_buf();
        let (events, _) = read_events(&dir)?;
        let mut text = String::new();
        for event in events.iter().filter(|e| e.step() <= step && !matches!(e, Event::Finished { .. })) {
            text.push_str(&serde_json::to_string(event)?);
            text.push('\n');
        }
        write_atomic(&self.path, text.as_bytes())?;
        self.file = Some(OpenOptions::new().append(true).open(&self.path)?);
        self.rebuild_tensorboard(&dir)
    }

    /// Writes the attached TensorBoard file anew from what the log now holds.
    fn rebuild_tensorboard(&mut self, dir: &Path) -> Result<()> {
        if let Some(tensorboard) = self.tensorboard.take() {
            self.tensorboard = Some(TensorboardLog::rebuild(dir, &read_events(dir)?.0, tensorboard.seg_classes())?);
        }
        Ok(())
    }
}

/// Appends a failure to the run's record, for the listener too. The log is
/// opened now: resuming may have replaced the file since the start.
pub fn record_failure(run_dir: &Path, listener: Option<Sender<Event>>, message: &str) -> Result<()> {
    let mut log = EventLog::open(run_dir, listener)?;
    let step = read_events(run_dir).ok().and_then(|(e, _)| e.last().map(Event::step)).unwrap_or(0);
    log.emit(Event::Error { step, message: message.to_string() })?;
    log.emit(Event::Finished { step, reason: FinishReason::Failed, wall_seconds: 0.0 })
}
