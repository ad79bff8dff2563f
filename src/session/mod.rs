//! The runs a workbench or a server knows: every run folder under its runs
//! folder (past ones, new ones as they appear, runs other processes train,
//! followed live), and the trainer threads behind the runs it trains itself:
//! one run trains at a time per device (and one data-parallel run at a time:
//! burn-collective serves one per process), the rest wait in a queue. No egui
//! here: the workbench and `twinhead serve` share it, and it is tested directly.

pub mod follow;
pub mod remote;
pub mod run_filter;
pub mod run_notes;
pub mod run_record;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use self::follow::{Command, Follower, News};
use self::remote::{Remote, RemoteNews, RemoteRequest, RemoteRun};
use self::run_record::{RunRecord, RunStatus};
use crate::backend::device::DeviceSpec;
use crate::train::config::TrainConfig;
use crate::train::control_file;
use crate::train::events::{Control, Event};
use crate::train::parallel::Placement;
use crate::train::run::{self, RunHandle};
use crate::train::run_dir::{self, LockState, TrainLock};

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
    repaint: Arc<dyn Fn() + Send + Sync>,
    /// Follows the runs folder and the runs this process does not train.
    follower: Follower,
    /// Servers whose runs are listed too, and the devices each offers.
    remotes: Vec<Box<dyn Remote>>,
    remote_devices: HashMap<String, Vec<(DeviceSpec, String)>>,
    /// Each remote run's status as its server lists it: that, not the events
    /// replayed so far, is where the run stands.
    remote_status: HashMap<String, (RunStatus, bool)>,
}

impl Session {
    /// Reads the runs under `runs_root` and follows them from then on (new
    /// folders, logs that grow); folders that are not runs are left out and
    /// named in the returned notices.
    pub fn open(runs_root: &Path, repaint: impl Fn() + Send + Sync + 'static) -> (Self, Vec<Notice>) {
        let repaint: Arc<dyn Fn() + Send + Sync> = Arc::new(repaint);
        let mut session = Self {
            runs_root: runs_root.to_path_buf(),
            records: Vec::new(),
            queue: VecDeque::new(),
            active: Vec::new(),
            follower: Follower::start(runs_root, repaint.clone()),
            repaint,
            remotes: Vec::new(),
            remote_devices: HashMap::new(),
            remote_status: HashMap::new(),
        };
        let notices = session.read_runs_folder();
        (session, notices)
    }

    pub fn runs_root(&self) -> &Path {
        &self.runs_root
    }

    /// Reads every run under the runs folder, oldest first, and hands each to the follower.
    fn read_runs_folder(&mut self) -> Vec<Notice> {
        let mut notices = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.runs_root) else {
            return notices;
        };
        let mut dirs: Vec<PathBuf> =
            entries.flatten().map(|e| self.runs_root.join(e.file_name())).filter(|p| p.join(run_dir::CONFIG_FILE).is_file()).collect();
        // Oldest first, so the list reads in the order runs were made.
        dirs.sort_by_key(|d| (std::fs::metadata(d.join(run_dir::CONFIG_FILE)).and_then(|m| m.modified()).ok(), d.clone()));
        for dir in dirs {
            match RunRecord::follow(&dir) {
                Ok((record, tail)) => {
                    notices.extend(unreadable_notice(&record));
                    self.follower.send(Command::Follow(dir, tail));
                    self.records.push(record);
                }
                Err(error) => {
                    notices.push(Notice::warning(format!("{error:#}")));
                    self.follower.send(Command::Forget(dir));
                }
            }
        }
        notices
    }

    /// Lists a server's runs beside this session's (replacing a server of the same label).
    pub fn attach(&mut self, remote: Box<dyn Remote>) {
        self.detach(&remote.label().to_string());
        self.remotes.push(remote);
    }

    /// Stops listing a server's runs.
    pub fn detach(&mut self, label: &str) {
        self.remotes.retain(|r| r.label() != label);
        self.records.retain(|r| r.remote.as_ref().is_none_or(|remote| remote.server != label));
        self.remote_devices.remove(label);
    }

    /// The labels of the servers attached.
    pub fn remote_labels(&self) -> Vec<String> {
        self.remotes.iter().map(|r| r.label().to_string()).collect()
    }

    /// The devices server `label` offers (empty until it said).
    pub fn remote_devices(&self, label: &str) -> &[(DeviceSpec, String)] {
        self.remote_devices.get(label).map_or(&[], Vec::as_slice)
    }

    /// Starts a run of `config` on server `label` (its outcome comes back as a notice and a new run).
    pub fn enqueue_on(&mut self, label: &str, config: TrainConfig, devices: &[DeviceSpec]) -> Result<()> {
        check_new_run(&config, devices)?;
        let remote = self.remotes.iter().find(|r| r.label() == label).with_context(|| format!("no server {label}"))?;
        remote.ask(RemoteRequest::Start { config: Box::new(config), devices: devices.to_vec() });
        Ok(())
    }

    fn ask(&self, remote: &RemoteRun, request: RemoteRequest) -> Result<()> {
        let server = self.remotes.iter().find(|r| r.label() == remote.server).with_context(|| format!("server {} is not connected", remote.server))?;
        server.ask(request);
        Ok(())
    }

    /// Folds in what the servers reported.
    fn absorb_remotes(&mut self) -> Vec<Notice> {
        let mut notices = Vec::new();
        for index in 0..self.remotes.len() {
            let label = self.remotes[index].label().to_string();
            let named = |run: &str| RemoteRun { server: label.clone(), run: run.to_string() }.record_name();
            for news in self.remotes[index].news() {
                let name = match &news {
                    RemoteNews::Run(record) => record.name.clone(),
                    RemoteNews::Events(run, _) | RemoteNews::Status { run, .. } | RemoteNews::Gone(run) => named(run),
                    _ => String::new(),
                };
                match news {
                    RemoteNews::Run(record) => match self.records.iter_mut().find(|r| r.name == record.name) {
                        Some(known) => *known = *record,
                        None => self.records.push(*record),
                    },
                    RemoteNews::Events(_, events) => {
                        if let Some(record) = self.records.iter_mut().find(|r| r.name == name) {
                            for event in &events {
                                record.apply(event);
                            }
                        }
                    }
                    RemoteNews::Status { status, elsewhere, .. } => {
                        self.remote_status.insert(name.clone(), (status, elsewhere));
                    }
                    RemoteNews::Gone(_) => {
                        self.records.retain(|r| r.name != name);
                        self.remote_status.remove(&name);
                    }
                    RemoteNews::Devices(devices) => {
                        self.remote_devices.insert(label.clone(), devices);
                    }
                    RemoteNews::Notice(notice) => notices.push(notice),
                }
                let listed = self.remote_status.get(&name);
                if let (Some((status, elsewhere)), Some(record)) = (listed, self.records.iter_mut().find(|r| r.name == name)) {
                    record.status = status.clone();
                    record.elsewhere = *elsewhere;
                }
            }
        }
        notices
    }

    /// Folds in what the follower found: new runs, events other processes logged, locks taken and let go.
    fn absorb_followed(&mut self) -> Vec<Notice> {
        let mut notices = Vec::new();
        while let Ok(news) = self.follower.news.try_recv() {
            match news {
                News::Appeared(record) => {
                    if !self.records.iter().any(|r| r.dir == record.dir) {
                        notices.extend(unreadable_notice(&record));
                        self.records.push(*record);
                    }
                }
                News::Unreadable(dir, why) => notices.push(Notice::warning(format!("{}: {why}", dir.display()))),
                news => {
                    let dir = match &news {
                        News::Events(dir, ..) | News::Lock(dir, _) => dir.clone(),
                        News::Replaced(record) => record.dir.clone(),
                        _ => unreachable!("handled above"),
                    };
                    // A run this process trains reports over its channel.
                    let trained_here = self.active.iter().any(|a| self.records.iter().any(|r| r.name == a.name && r.dir == dir));
                    let Some(record) = self.records.iter_mut().find(|r| r.dir == dir).filter(|_| !trained_here) else { continue };
                    match news {
                        News::Events(_, events, unreadable) => {
                            record.unreadable_lines += unreadable;
                            for event in &events {
                                record.apply(event);
                            }
                            // Only another process writes the log of a run this one does not train.
                            if !events.is_empty() && !matches!(events.last(), Some(Event::Finished { .. })) {
                                record.elsewhere = true;
                                if !record.status.is_live() {
                                    record.status = RunStatus::Running;
                                }
                            }
                        }
                        News::Lock(_, lock) => record.set_lock(lock),
                        News::Replaced(fresh) => *record = *fresh,
                        _ => {}
                    }
                }
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
        check_new_run(&config, devices)?;
        let name = self.fresh_name(&config.name);
        let dir = self.runs_root.join(&name);
        self.follower.send(Command::Own(dir.clone()));
        run_dir::create(&dir, &config)?;
        self.records.push(RunRecord::new(&dir, config, RunStatus::Queued));
        self.queue.push_back(Pending { name: name.clone(), devices: devices.to_vec(), resume: false });
        Ok(name)
    }

    /// Queues a stopped or interrupted run to continue from its last checkpoint.
    pub fn enqueue_resume(&mut self, name: &str, devices: &[DeviceSpec]) -> Result<()> {
        let record = self.records.iter_mut().find(|r| r.name == name).with_context(|| format!("no run {name}"))?;
        if let Some(remote) = record.remote.clone() {
            if !record.status.is_resumable() {
                bail!("{name} is {}: only a stopped or interrupted run can be resumed", record.status.label());
            }
            return self.ask(&remote, RemoteRequest::Resume { run: remote.run.clone(), devices: devices.to_vec() });
        }
        if record.elsewhere || TrainLock::state(&record.dir) == LockState::Held {
            bail!("{name} is training in another process: steer it from here, or stop it there first");
        }
        if !record.status.is_resumable() {
            bail!("{name} is {}: only a stopped or interrupted run can be resumed", record.status.label());
        }
        // Without a lock to tell (a folder from an older build), a log that grew a moment ago is another process's run.
        let log = record.dir.join(run_dir::METRICS_FILE);
        let age = std::fs::metadata(&log).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        let unlocked = TrainLock::state(&record.dir) == LockState::Unknown;
        if unlocked && record.status == RunStatus::Interrupted && age.is_some_and(|a| a.as_secs() < 120) {
            bail!("{name}: {} changed {}s ago: it seems to be training in another process", log.display(), age.unwrap_or_default().as_secs());
        }
        self.follower.send(Command::Own(record.dir.clone()));
        record.status = RunStatus::Queued;
        self.queue.push_back(Pending { name: name.to_string(), devices: devices.to_vec(), resume: true });
        Ok(())
    }

    /// Starts queued runs whose device is free, and folds the trainers' events
    /// into their records. Returns what the user should be told.
    pub fn poll(&mut self) -> Vec<Notice> {
        let mut notices = self.absorb_followed();
        notices.extend(self.absorb_remotes());
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
            // Someone else may continue it: follow its log from here.
            self.follower.send(Command::Release(record.dir.clone()));
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
                    self.follower.send(Command::Release(record.dir.clone()));
                }
            }
        }
        self.queue = waiting;
        notices
    }

    /// Sends a control message to a live run: over its channel when this
    /// process trains it, else through its control file (the trainer of a
    /// run elsewhere reads it, and logs each control it receives).
    pub fn control(&self, name: &str, message: Control) -> Result<()> {
        if let Some(active) = self.active.iter().find(|a| a.name == name) {
            return active.handle.control.send(message).map_err(|_| anyhow::anyhow!("{name}: the trainer has ended"));
        }
        match self.records.iter().find(|r| r.name == name) {
            Some(record) if record.remote.is_some() && record.status.is_live() => {
                let remote = record.remote.clone().expect("checked");
                self.ask(&remote, RemoteRequest::Control { run: remote.run.clone(), control: message })
            }
            Some(record) if record.elsewhere && record.status.is_live() => {
                control_file::send(&record.dir, &control_file::new_id(), &message)?;
                Ok(())
            }
            _ => bail!("{name} is not training"),
        }
    }

    /// Takes a queued run out of the queue (it keeps its folder, marked stopped).
    pub fn unqueue(&mut self, name: &str) {
        self.queue.retain(|p| p.name != name);
        if let Some(record) = self.records.iter_mut().find(|r| r.name == name && r.status == RunStatus::Queued) {
            record.status = if record.step > 0 { RunStatus::Stopped } else { RunStatus::Interrupted };
            self.follower.send(Command::Release(record.dir.clone()));
        }
    }

    /// Deletes a run that is not training, with its folder.
    pub fn delete(&mut self, name: &str) -> Result<()> {
        if self.active.iter().any(|a| a.name == name) {
            bail!("{name} is training: stop it first");
        }
        self.queue.retain(|p| p.name != name);
        let index = self.records.iter().position(|r| r.name == name).with_context(|| format!("no run {name}"))?;
        if self.records[index].elsewhere {
            bail!("{name} is training in another process: stop it first");
        }
        if let Some(remote) = &self.records[index].remote {
            bail!("{name} is on server {}: it stays there (delete its folder on the server)", remote.server);
        }
        let dir = self.records[index].dir.clone();
        self.follower.send(Command::Forget(dir.clone()));
        std::fs::remove_dir_all(&dir).with_context(|| format!("{}: cannot delete", dir.display()))?;
        self.records.remove(index);
        Ok(())
    }

    /// Writes `notes` (tags, archived) into the run's folder and keeps them.
    pub fn set_notes(&mut self, name: &str, notes: run_notes::RunNotes) -> Result<()> {
        let record = self.records.iter_mut().find(|r| r.name == name).with_context(|| format!("no run {name}"))?;
        notes.write(&record.dir)?;
        record.notes = notes;
        Ok(())
    }

    pub fn is_active(&self, name: &str) -> bool {
        self.active.iter().any(|a| a.name == name)
    }

    /// Whether [`Session::control`] can steer the run: this process trains
    /// it, or another does and reads its control file.
    pub fn is_steerable(&self, name: &str) -> bool {
        self.is_active(name) || self.record(name).is_some_and(|r| (r.elsewhere || r.remote.is_some()) && r.status.is_live())
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

/// Refuses a run that cannot start: an invalid configuration, a batch that
/// does not split over the devices.
fn check_new_run(config: &TrainConfig, devices: &[DeviceSpec]) -> Result<()> {
    config.validate()?;
    Placement { devices: devices.to_vec(), nodes: None }.check_batch(config.data.batch_size)
}

/// The warning for a run whose log has lines that did not parse.
fn unreadable_notice(record: &RunRecord) -> Option<Notice> {
    (record.unreadable_lines > 0).then(|| {
        Notice::warning(format!("{}: {} unreadable lines in {} left out", record.dir.display(), record.unreadable_lines, run_dir::METRICS_FILE))
    })
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
