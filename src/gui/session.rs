//! The runs the workbench knows (past ones from `runs/`, live and queued ones),
//! and the trainer threads behind the live ones: one run trains at a time per
//! device (and one data-parallel run at a time: burn-collective serves one per
//! process), the rest wait in a queue. No egui here, so it is tested directly.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::run_record::{RunRecord, RunStatus};
use crate::train::config::TrainConfig;
use crate::train::events::{Control, Event};
use crate::backend::device::DeviceSpec;
use crate::train::parallel::Placement;
use crate::train::run::{self, RunHandle};
use crate::train::run_dir;

/// Something the user should see (a toast in the window).
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub level: NoticeLevel,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeLevel {
    Info,
    Warning,
    Error,
}

impl Notice {
    pub fn info(text: impl Into<String>) -> Self {
        Self { level: NoticeLevel::Info, text: text.into() }
    }
    pub fn warning(text: impl Into<String>) -> Self {
        Self { level: NoticeLevel::Warning, text: text.into() }
    }
    pub fn error(text: impl Into<String>) -> Self {
        Self { level: NoticeLevel::Error, text: text.into() }
    }
}

struct Pending {
    name: String,
    devices: Vec<DeviceSpec>,
    resume: bool,
}

struct Active {
    name: String,
    devices: Vec<DeviceSpec>,
    handle: RunHandle,
}

/// Whether a run on `wanted` must wait for one training on `busy`: they share
/// a device, or both are data-parallel.
fn must_wait(wanted: &[DeviceSpec], busy: &[DeviceSpec]) -> bool {
    wanted.iter().any(|d| busy.contains(d)) || (wanted.len() > 1 && busy.len() > 1)
}

pub struct Session {
    runs_root: PathBuf,
    /// Every run, oldest first.
    pub records: Vec<RunRecord>,
    queue: VecDeque<Pending>,
    active: Vec<Active>,
    /// Called when a trainer has news, so the window repaints.
    repaint: std::sync::Arc<dyn Fn() + Send + Sync>,
}

impl Session {
    /// Reads the past runs under `runs_root`; folders that are not runs are left
    /// out and named in the returned notices.
    pub fn open(runs_root: &Path, repaint: impl Fn() + Send + Sync + 'static) -> (Self, Vec<Notice>) {
        let mut session = Self {
            runs_root: runs_root.to_path_buf(),
            records: Vec::new(),
            queue: VecDeque::new(),
            active: Vec::new(),
            repaint: std::sync::Arc::new(repaint),
        };
        let notices = session.rescan();
        (session, notices)
    }

    pub fn runs_root(&self) -> &Path {
        &self.runs_root
    }

    /// Adds runs that appeared under the runs folder since the last scan.
    pub fn rescan(&mut self) -> Vec<Notice> {
        let mut notices = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.runs_root) else {
            return notices;
        };
        let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.join(run_dir::CONFIG_FILE).is_file()).collect();
        // Oldest first, so the list reads in the order runs were made.
        dirs.sort_by_key(|d| (std::fs::metadata(d.join(run_dir::CONFIG_FILE)).and_then(|m| m.modified()).ok(), d.clone()));
        for dir in dirs {
            if self.records.iter().any(|r| r.dir == dir) {
                continue;
            }
            match RunRecord::load(&dir) {
                Ok(record) => {
                    if record.unreadable_lines > 0 {
                        notices.push(Notice::warning(format!(
                            "{}: {} unreadable lines in {} left out",
                            dir.display(),
                            record.unreadable_lines,
                            run_dir::METRICS_FILE
                        )));
                    }
                    self.records.push(record);
                }
                Err(error) => notices.push(Notice::warning(format!("{error:#}"))),
            }
        }
        notices
    }

    pub fn record(&self, name: &str) -> Option<&RunRecord> {
        self.records.iter().find(|r| r.name == name)
    }

    /// A folder name under the runs folder not used yet, from the config's name.
    fn fresh_name(&self, base: &str) -> String {
        let base: String = base.chars().map(|c| if c.is_alphanumeric() || "-_.".contains(c) { c } else { '-' }).collect();
        let taken = |n: &str| self.records.iter().any(|r| r.name == n) || self.runs_root.join(n).exists();
        (1..).map(|i| if i == 1 { base.clone() } else { format!("{base}-{i}") }).find(|n| !taken(n)).expect("a free name")
    }

    /// Queues a new run of `config` on `devices` (one replica each); it starts
    /// when they are free. Returns the run's name.
    pub fn enqueue(&mut self, config: TrainConfig, devices: &[DeviceSpec]) -> Result<String> {
        config.validate()?;
        Placement { devices: devices.to_vec(), nodes: None }.check_batch(config.data.batch_size)?;
        let name = self.fresh_name(&config.name);
        let dir = self.runs_root.join(&name);
        run_dir::create(&dir, &config)?;
        self.records.push(RunRecord::new(&dir, config, RunStatus::Queued));
        self.queue.push_back(Pending { name: name.clone(), devices: devices.to_vec(), resume: false });
        Ok(name)
    }

    /// Queues a stopped or interrupted run to continue from its last checkpoint.
    pub fn enqueue_resume(&mut self, name: &str, devices: &[DeviceSpec]) -> Result<()> {
        let record = self.records.iter_mut().find(|r| r.name == name).with_context(|| format!("no run {name}"))?;
        if !record.status.is_resumable() {
            bail!("{name} is {}: only a stopped or interrupted run can be resumed", record.status.label());
        }
        // A log that grows without us is a run another process (`twinhead train`) is training.
        let log = record.dir.join(run_dir::METRICS_FILE);
        let age = std::fs::metadata(&log).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        if record.status == RunStatus::Interrupted && age.is_some_and(|a| a.as_secs() < 120) {
            bail!("{name}: {} changed {}s ago: it seems to be training in another process", log.display(), age.unwrap_or_default().as_secs());
        }
        record.status = RunStatus::Queued;
        self.queue.push_back(Pending { name: name.to_string(), devices: devices.to_vec(), resume: true });
        Ok(())
    }

    /// Starts queued runs whose device is free, and folds the trainers' events
    /// into their records. Returns what the user should be told.
    pub fn poll(&mut self) -> Vec<Notice> {
        let mut notices = Vec::new();
        for active in &self.active {
            let record = self.records.iter_mut().find(|r| r.name == active.name).expect("an active run has a record");
            while let Ok(event) = active.handle.events.try_recv() {
                match &event {
                    Event::Warning { step, message } => notices.push(Notice::warning(format!("{} step {step}: {message}", record.name))),
                    Event::Error { message, .. } => notices.push(Notice::error(format!("{} failed: {message}", record.name))),
                    Event::Finished { reason, .. } => notices.push(Notice::info(format!("{} {reason:?}", record.name).to_lowercase())),
                    _ => {}
                }
                record.apply(&event);
            }
        }
        // Join the trainers that ended (their last events were read above).
        let mut still_active = Vec::new();
        for active in self.active.drain(..) {
            if !active.handle.is_finished() {
                still_active.push(active);
                continue;
            }
            // Events sent between the drain above and the thread's end: the relay
            // closes the channel once it has passed on the last one.
            let record = self.records.iter_mut().find(|r| r.name == active.name).expect("record");
            while let Ok(event) = active.handle.events.recv() {
                record.apply(&event);
            }
            if let Err(error) = active.handle.join() {
                if !matches!(record.status, RunStatus::Failed(_)) {
                    notices.push(Notice::error(format!("{} failed: {error:#}", record.name)));
                    record.status = RunStatus::Failed(format!("{error:#}"));
                }
            }
            if record.status.is_live() {
                record.status = RunStatus::Interrupted;
            }
        }
        self.active = still_active;
        notices.extend(self.start_queued());
        notices
    }

    fn start_queued(&mut self) -> Vec<Notice> {
        let mut notices = Vec::new();
        let mut waiting = VecDeque::new();
        while let Some(pending) = self.queue.pop_front() {
            if self.active.iter().any(|a| must_wait(&pending.devices, &a.devices)) {
                waiting.push_back(pending);
                continue;
            }
            let record = self.records.iter_mut().find(|r| r.name == pending.name).expect("a queued run has a record");
            let repaint = self.repaint.clone();
            let config = (!pending.resume).then(|| record.config.clone());
            // `start` refuses a folder with a log: a fresh run's folder has only its config.
            let placement = Placement { devices: pending.devices.clone(), nodes: None };
            match run::start_on(config, &record.dir, pending.resume, placement) {
                Ok(handle) => {
                    record.status = RunStatus::Running;
                    let forward = forward_with_repaint(handle, repaint);
                    self.active.push(Active { name: pending.name, devices: pending.devices, handle: forward });
                }
                Err(error) => {
                    record.status = RunStatus::Failed(format!("{error:#}"));
                    notices.push(Notice::error(format!("{}: cannot start: {error:#}", record.name)));
                }
            }
        }
        self.queue = waiting;
        notices
    }

    /// Sends a control message to a live run.
    pub fn control(&self, name: &str, message: Control) -> Result<()> {
        let active = self.active.iter().find(|a| a.name == name).with_context(|| format!("{name} is not training"))?;
        active.handle.control.send(message).map_err(|_| anyhow::anyhow!("{name}: the trainer has ended"))
    }

    /// Takes a queued run out of the queue (it keeps its folder, marked stopped).
    pub fn unqueue(&mut self, name: &str) {
        self.queue.retain(|p| p.name != name);
        if let Some(record) = self.records.iter_mut().find(|r| r.name == name && r.status == RunStatus::Queued) {
            record.status = if record.step > 0 { RunStatus::Stopped } else { RunStatus::Interrupted };
        }
    }

    /// Deletes a run that is not training, with its folder.
    pub fn delete(&mut self, name: &str) -> Result<()> {
        if self.active.iter().any(|a| a.name == name) {
            bail!("{name} is training: stop it first");
        }
        self.queue.retain(|p| p.name != name);
        let index = self.records.iter().position(|r| r.name == name).with_context(|| format!("no run {name}"))?;
        let dir = self.records[index].dir.clone();
        std::fs::remove_dir_all(&dir).with_context(|| format!("{}: cannot delete", dir.display()))?;
        self.records.remove(index);
        Ok(())
    }

    pub fn is_active(&self, name: &str) -> bool {
        self.active.iter().any(|a| a.name == name)
    }

    /// The runs training now.
    pub fn active_names(&self) -> Vec<&str> {
        self.active.iter().map(|a| a.name.as_str()).collect()
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Stops every live run and waits for them (each saves its last checkpoint);
    /// queued runs stay queued on disk as not started.
    pub fn shutdown(&mut self) {
        self.queue.clear();
        for active in &self.active {
            let _ = active.handle.control.send(Control::Stop);
        }
        for active in self.active.drain(..) {
            let record = self.records.iter_mut().find(|r| r.name == active.name).expect("record");
            let _ = active.handle.join();
            record.status = RunStatus::Stopped;
        }
    }
}

/// The same handle, with a relay thread that repaints the window on every event.
fn forward_with_repaint(mut handle: RunHandle, repaint: std::sync::Arc<dyn Fn() + Send + Sync>) -> RunHandle {
    let (tx, rx) = crossbeam_channel::unbounded();
    let source = std::mem::replace(&mut handle.events, rx);
    std::thread::spawn(move || {
        for event in source {
            if tx.send(event).is_err() {
                break;
            }
            repaint();
        }
    });
    handle
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::events::FinishReason;

    fn write_run(root: &Path, name: &str, events: &[Event]) -> PathBuf {
        let dir = root.join(name);
        run_dir::create(&dir, &TrainConfig::load_preset("quick", &[]).unwrap()).unwrap();
        let mut log = run_dir::EventLog::open(&dir, None).unwrap();
        for event in events {
            log.emit(event.clone()).unwrap();
        }
        dir
    }

    #[test]
    fn past_runs_are_read_resumed_only_when_safe_and_deleted() {
        let root = tempfile::tempdir().unwrap();
        let started = Event::Started { step: 0, total_steps: 600, run_dir: "x".into(), resumed: false, device: "cpu".into() };
        write_run(root.path(), "done", &[started.clone(), Event::Finished { step: 600, reason: FinishReason::Completed, wall_seconds: 1.0 }]);
        let killed = write_run(root.path(), "killed", &[started]);
        std::fs::create_dir_all(root.path().join("not-a-run")).unwrap();
        std::fs::create_dir_all(root.path().join("broken")).unwrap();
        std::fs::write(root.path().join("broken/config.toml"), "steps = ").unwrap();

        let (mut session, notices) = Session::open(root.path(), || {});
        let mut names: Vec<&str> = session.records.iter().map(|r| r.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["done", "killed"]);
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(notices[0].text.contains("broken"), "{notices:?}");
        assert_eq!(session.record("done").unwrap().status, RunStatus::Completed);
        assert_eq!(session.record("killed").unwrap().status, RunStatus::Interrupted);

        let error = session.enqueue_resume("done", &[DeviceSpec::Cpu]).unwrap_err().to_string();
        assert!(error.contains("only a stopped or interrupted run"), "{error}");
        // Its log was written a moment ago: another process may be training it.
        let error = session.enqueue_resume("killed", &[DeviceSpec::Cpu]).unwrap_err().to_string();
        assert!(error.contains("another process"), "{error}");
        assert_eq!(session.queued(), 0);

        session.delete("killed").unwrap();
        assert!(!killed.exists());
        assert!(session.record("killed").is_none());
        assert!(session.delete("killed").is_err());
    }

    #[test]
    fn new_runs_get_free_folder_names_and_bad_configs_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let (mut session, _) = Session::open(root.path(), || {});
        let mut config = TrainConfig::load_preset("quick", &[]).unwrap();
        assert_eq!(session.fresh_name("quick"), "quick");
        std::fs::create_dir_all(root.path().join("quick")).unwrap();
        assert_eq!(session.fresh_name("quick"), "quick-2");
        assert_eq!(session.fresh_name("a b/c"), "a-b-c");
        config.steps = 0;
        let error = session.enqueue(config.clone(), &[DeviceSpec::Cpu]).unwrap_err().to_string();
        assert!(error.starts_with("steps:"), "{error}");
        config.steps = 10;
        config.data.batch_size = 7;
        let error = session.enqueue(config, &[DeviceSpec::Cpu, DeviceSpec::Cpu]).unwrap_err().to_string();
        assert!(error.starts_with("data.batch_size:") && error.contains("2 replicas"), "{error}");
        assert!(session.records.is_empty());
    }

    /// A run waits for one on a device it wants, and data-parallel runs wait for each other.
    #[test]
    fn runs_wait_for_their_devices_and_parallel_runs_for_each_other() {
        let (cpu, gpu0, gpu1) = (DeviceSpec::Cpu, DeviceSpec::Cuda(0), DeviceSpec::Cuda(1));
        assert!(must_wait(&[cpu, cpu], &[cpu]));
        assert!(!must_wait(&[gpu0], &[cpu]));
        assert!(must_wait(&[gpu0, gpu1], &[gpu1]));
        assert!(!must_wait(&[gpu1], &[gpu0]));
        let (gpu2, gpu3) = (DeviceSpec::Cuda(2), DeviceSpec::Cuda(3));
        assert!(must_wait(&[gpu0, gpu1], &[gpu2, gpu3]), "burn-collective serves one collective per process");
    }
}
