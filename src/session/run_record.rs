//! What the workbench knows about one run: its configuration, status, and the
//! curves and markers folded from its events (live from the trainer's channel,
//! replayed from `metrics.jsonl` for past runs, or tailed from it for runs
//! another process trains).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::run_notes::RunNotes;
use crate::backend::device::DeviceMemory;
use crate::train::config::TrainConfig;
use crate::train::events::{EvalRecord, Event, FinishReason, ReplicaStep};
use crate::train::log_tail::LogTail;
use crate::train::run_dir::{self, LockState, TrainLock};
use crate::model::task::PerTask;
use crate::train::strategy::{StrategyConfig, Task};

#[derive(Debug, Clone, PartialEq)]
pub enum RunStatus {
    /// Waiting for its device.
    Queued,
    Running,
    Paused,
    Completed,
    Stopped,
    Failed(String),
    /// The log ends without a finish (the process was killed): resumable.
    Interrupted,
}

impl RunStatus {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Stopped => "stopped",
            Self::Failed(_) => "failed",
            Self::Interrupted => "interrupted",
        }
    }

    /// Training (or paused mid-run) on its thread.
    pub fn is_live(&self) -> bool {
        matches!(self, Self::Running | Self::Paused)
    }

    /// Stopped before the last step with a checkpoint to continue from.
    pub fn is_resumable(&self) -> bool {
        matches!(self, Self::Stopped | Self::Interrupted)
    }
}

/// A vertical marker on the curves: a phase or strategy change.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub step: usize,
    pub label: String,
}

/// The plotted quantities, as `[step, value]` points.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Each task's loss at the steps that trained it.
    pub loss: PerTask<Vec<[f64; 2]>>,
    /// Each task's metric (mAP50, mIoU, top-1) at each evaluation.
    pub metric: PerTask<Vec<[f64; 2]>>,
    pub lr: Vec<[f64; 2]>,
    pub images_per_sec: Vec<[f64; 2]>,
    /// The task-conflict meter (gradient cosine on the shared weights) at each evaluation.
    pub conflict: Vec<[f64; 2]>,
    /// The meter of detection–classification and segmentation–classification (three-task runs).
    pub conflict_det_cls: Vec<[f64; 2]>,
    pub conflict_seg_cls: Vec<[f64; 2]>,
}

#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The run folder's name.
    pub name: String,
    pub dir: PathBuf,
    pub config: TrainConfig,
    pub status: RunStatus,
    pub step: usize,
    pub total_steps: usize,
    /// The strategy in force now (changes with set-strategy).
    pub strategy: StrategyConfig,
    pub device: Option<String>,
    /// The GPU's memory pool after the latest step (none on the CPU).
    pub device_memory: Option<DeviceMemory>,
    /// A data-parallel run's replicas at the latest step (empty for one device).
    pub replicas: Vec<ReplicaStep>,
    pub series: Series,
    pub markers: Vec<Marker>,
    pub evals: Vec<EvalRecord>,
    pub wall_seconds: f64,
    pub warnings: usize,
    /// Per checkpoint kind (`last`, `best-det` …): how many times it was written.
    pub checkpoint_writes: HashMap<String, usize>,
    /// Lines of the log that did not parse (a run killed mid-write).
    pub unreadable_lines: usize,
    /// Trained by another process on this machine or a shared file system
    /// (its folder's lock is held), not by this one.
    pub elsewhere: bool,
    /// A run of a server's, listed here (its `dir` is a local mirror of what is shown).
    pub remote: Option<RemoteRun>,
    /// Tags and archiving, from the folder's `notes.json`.
    pub notes: RunNotes,
}

impl RunRecord {
    /// A run about to start (or queued) with `config` in `dir`.
    pub fn new(dir: &Path, config: TrainConfig, status: RunStatus) -> Self {
        Self {
            name: dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned()),
            dir: dir.to_path_buf(),
            total_steps: config.steps,
            strategy: config.strategy.clone(),
            config,
            status,
            step: 0,
            device: None,
            device_memory: None,
            replicas: Vec::new(),
            series: Series::default(),
            markers: Vec::new(),
            evals: Vec::new(),
            wall_seconds: 0.0,
            warnings: 0,
            checkpoint_writes: HashMap::new(),
            unreadable_lines: 0,
            elsewhere: false,
            remote: None,
            notes: RunNotes::default(),
        }
    }

    /// A run replayed from its folder.
    pub fn load(dir: &Path) -> Result<Self> {
        Ok(Self::follow(dir)?.0)
    }

    /// A run replayed from its folder, with the reader of its log where it
    /// stopped, to follow what is appended next.
    pub fn follow(dir: &Path) -> Result<(Self, LogTail)> {
        let mut tail = LogTail::new(&dir.join(run_dir::METRICS_FILE));
        let read = tail.read().with_context(|| format!("{}: cannot read", dir.join(run_dir::METRICS_FILE).display()))?;
        Ok((Self::replay(dir, read.events, read.unreadable + tail.torn() as usize)?, tail))
    }

    /// The run in `dir` whose log holds `events` (and `unreadable` lines).
    pub fn replay(dir: &Path, events: Vec<Event>, unreadable: usize) -> Result<Self> {
        let config = run_dir::read_config(dir)?;
        let mut record = Self::new(dir, config, RunStatus::Interrupted);
        record.unreadable_lines = unreadable;
        // Notes that do not read are a warning on the run, not a run lost from the list.
        record.notes = RunNotes::read(dir).unwrap_or_else(|error| {
            tracing::warn!("{error:#}");
            record.warnings += 1;
            RunNotes::default()
        });
        for event in &events {
            record.apply(event);
        }
        let lock = TrainLock::state(dir);
        if lock != LockState::Held && (events.is_empty() || record.status.is_live()) {
            // Unless its lock says a process trains it, a log that ends mid-run belongs to one that is gone.
            record.status = RunStatus::Interrupted;
        }
        record.set_lock(lock);
        Ok(record)
    }

    /// Folds in whether another process trains the run. Without a lock to
    /// tell (a run folder from a build before locks, a file system without
    /// them) nothing changes: a log seen growing marks the run as trained
    /// elsewhere then.
    pub fn set_lock(&mut self, lock: LockState) {
        let training = match lock {
            LockState::Held => true,
            LockState::Free => false,
            LockState::Unknown => return,
        };
        self.elsewhere = training;
        if training && !self.status.is_live() && self.status != RunStatus::Completed {
            // The process has the run and has not logged its start yet.
            self.status = RunStatus::Running;
        }
        if !training && self.status.is_live() {
            // A log that ends mid-run belongs to a process that is gone.
            self.status = RunStatus::Interrupted;
        }
    }

    /// The status as the runs list shows it (`running elsewhere`).
    pub fn status_label(&self) -> String {
        match self.elsewhere && self.status.is_live() {
            true => format!("{} elsewhere", self.status.label()),
            false => self.status.label().to_string(),
        }
    }

    /// Folds one event into the record.
    pub fn apply(&mut self, event: &Event) {
        self.step = self.step.max(event.step());
        match event {
            Event::Started { total_steps, device, step, .. } => {
                self.total_steps = *total_steps;
                self.device = Some(device.clone());
                self.status = RunStatus::Running;
                // A resumed run re-plays from its checkpoint: drop what came after it.
                self.truncate_after(*step);
                self.step = *step;
            }
            Event::Step { step, losses, lr, images_per_sec, device_memory, .. } => {
                self.device_memory = *device_memory;
                let x = *step as f64;
                for (task, loss) in losses.iter() {
                    if let Some(v) = loss {
                        self.series.loss[task].push([x, *v as f64]);
                    }
                }
                self.series.lr.push([x, *lr]);
                self.series.images_per_sec.push([x, *images_per_sec as f64]);
            }
            Event::Eval(eval) => {
                let x = eval.step as f64;
                for (task, series) in self.series.metric.iter_mut() {
                    if let Some(value) = eval.metric[task] {
                        series.push([x, value]);
                    }
                }
                if let Some(conflict) = eval.conflict {
                    self.series.conflict.push([x, conflict.shared]);
                }
                for pair in &eval.cls_conflicts {
                    let series = match pair.tasks[0] {
                        Task::Det => &mut self.series.conflict_det_cls,
                        _ => &mut self.series.conflict_seg_cls,
                    };
                    series.push([x, pair.cosines.shared]);
                }
                self.evals.push(eval.clone());
            }
            Event::Phase { step, description, .. } => {
                self.markers.push(Marker { step: *step, label: description.clone() });
            }
            Event::StrategyChanged { step, strategy } => {
                self.strategy = strategy.clone();
                self.markers.push(Marker { step: *step, label: format!("strategy: {}", strategy.label()) });
            }
            Event::LearningRateChanged { step, lr } => {
                self.markers.push(Marker { step: *step, label: format!("learning rate: {lr:.2e}") });
            }
            Event::Replicas { replicas, .. } => self.replicas = replicas.clone(),
            Event::Paused { .. } => self.status = RunStatus::Paused,
            Event::Resumed { .. } => self.status = RunStatus::Running,
            Event::ControlReceived { .. } => {}
            Event::Warning { .. } => self.warnings += 1,
            Event::Error { message, .. } => self.status = RunStatus::Failed(message.clone()),
            Event::Finished { reason, wall_seconds, .. } => {
                if *wall_seconds > 0.0 {
                    self.wall_seconds = *wall_seconds;
                }
                self.status = match reason {
                    FinishReason::Completed => RunStatus::Completed,
                    FinishReason::Stopped => RunStatus::Stopped,
                    FinishReason::Failed => match &self.status {
                        RunStatus::Failed(message) => RunStatus::Failed(message.clone()),
                        _ => RunStatus::Failed("failed".into()),
                    },
                };
            }
            Event::Checkpoint { kind, .. } => *self.checkpoint_writes.entry(kind.clone()).or_default() += 1,
        }
    }

    fn truncate_after(&mut self, step: usize) {
        let keep = |points: &mut Vec<[f64; 2]>| points.retain(|p| p[0] <= step as f64);
        let s = &mut self.series;
        let per_task = s.loss.iter_mut().chain(s.metric.iter_mut()).map(|(_, series)| series);
        let all = per_task.chain([&mut s.lr, &mut s.images_per_sec]);
        for points in all {
            keep(points);
        }
        self.markers.retain(|m| m.step <= step);
        self.evals.retain(|e| e.step <= step);
    }

    /// The best value of `task`'s metric at any evaluation, in a run with the task.
    pub fn best(&self, task: Task) -> Option<f64> {
        self.evals.iter().filter_map(|e| e.metric[task]).reduce(f64::max)
    }

    pub fn last_eval(&self) -> Option<&EvalRecord> {
        self.evals.last()
    }

    /// The largest drop from `task`'s best seen at any evaluation (the forgetting a
    /// strategy let happen, even if it recovered later), in a run with the task.
    pub fn max_forgetting(&self, task: Task) -> Option<f64> {
        self.evals.iter().filter_map(|e| e.forgetting[task]).reduce(f64::max)
    }

    /// Steps done over steps planned, 0–1.
    pub fn progress(&self) -> f32 {
        if self.total_steps == 0 {
            0.0
        } else {
            (self.step as f32 / self.total_steps as f32).min(1.0)
        }
    }

    /// The strategy with its parameters, in one line.
    pub fn strategy_summary(&self) -> String {
        strategy_summary(&self.strategy)
    }
}

/// `alternate (period 1, fixed)`-style one-line description of a strategy.
pub fn strategy_summary(strategy: &StrategyConfig) -> String {
    let value = toml::Value::try_from(strategy).ok();
    let table = value.as_ref().and_then(|v| v.as_table());
    // With `order` and `switch_steps`, `first` and `switch_step` are unused.
    let unused = |key: &str| match key {
        "first" => table.is_some_and(|t| t.contains_key("order")),
        "switch_step" => table.is_some_and(|t| t.contains_key("switch_steps")),
        _ => key == "kind",
    };
    let text = |v: &toml::Value| match v {
        toml::Value::Array(items) => items.iter().map(|i| i.to_string().trim_matches('"').to_string()).collect::<Vec<_>>().join(" "),
        _ => v.to_string().trim_matches('"').to_string(),
    };
    let params: Vec<String> = table.into_iter().flatten().filter(|(k, _)| !unused(k)).map(|(k, v)| format!("{k} {}", text(v))).collect();
    format!("{} ({})", strategy.name(), params.join(", "))
}

/// Where a remote run lives: its server's label and its name there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteRun {
    pub server: String,
    pub run: String,
}

impl RemoteRun {
    /// The run's name in the session: `run@server`.
    pub fn record_name(&self) -> String {
        format!("{}@{}", self.run, self.server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::strategy::TaskSet;

    fn config() -> TrainConfig {
        TrainConfig::load_preset("sequential", &[]).unwrap()
    }

    fn step(step: usize, det: Option<f32>, seg: Option<f32>) -> Event {
        Event::Step {
            step,
            tasks: TaskSet::DET_SEG,
            losses: PerTask::from_fn(|task| match task {
                Task::Det => det,
                Task::Seg => seg,
                Task::Cls => None,
            }),
            penalty: None,
            lr: 1e-3,
            images_per_sec: 10.0,
            device_memory: None,
        }
    }

    fn eval(step: usize, map50: f64, miou: f64, det_forgetting: f64) -> Event {
        Event::Eval(EvalRecord {
            step,
            metric: PerTask::from([Some(map50), Some(miou), None]),
            forgetting: PerTask::from([Some(det_forgetting), Some(0.0), None]),
            pixel_acc: Some(0.5),
            ..Default::default()
        })
    }

    #[test]
    fn events_fold_into_curves_markers_and_status() {
        let mut record = RunRecord::new(Path::new("runs/x"), config(), RunStatus::Queued);
        record.apply(&Event::Started { step: 0, total_steps: 10, run_dir: "runs/x".into(), resumed: false, device: "cpu".into() });
        assert_eq!(record.status, RunStatus::Running);
        record.apply(&step(1, Some(2.0), None));
        record.apply(&step(2, None, Some(1.5)));
        record.apply(&eval(2, 0.3, 0.4, 0.0));
        record.apply(&Event::Phase { step: 3, phase: 1, description: "sequential segmentation".into() });
        record.apply(&eval(4, 0.1, 0.5, 0.2));
        record.apply(&Event::Paused { step: 4 });
        assert_eq!(record.status, RunStatus::Paused);
        for kind in ["last", "best-det", "last"] {
            record.apply(&Event::Checkpoint { step: 4, kind: kind.into(), path: "runs/x/checkpoints".into() });
        }
        assert_eq!(record.checkpoint_writes.get("last"), Some(&2));
        assert_eq!(record.checkpoint_writes.get("best-det"), Some(&1));
        record.apply(&Event::Finished { step: 4, reason: FinishReason::Stopped, wall_seconds: 12.0 });
        assert_eq!(record.series.loss[Task::Det], vec![[1.0, 2.0]]);
        assert_eq!(record.series.loss[Task::Seg], vec![[2.0, 1.5]]);
        assert_eq!(record.series.metric[Task::Det], vec![[2.0, 0.3], [4.0, 0.1]]);
        assert_eq!(record.markers, vec![Marker { step: 3, label: "sequential segmentation".into() }]);
        assert_eq!(record.best(Task::Det), Some(0.3));
        assert_eq!(record.best(Task::Seg), Some(0.5));
        assert_eq!((record.max_forgetting(Task::Det), record.max_forgetting(Task::Seg)), (Some(0.2), Some(0.0)));
        assert_eq!((record.best(Task::Cls), record.max_forgetting(Task::Cls)), (None, None));
        assert_eq!(record.status, RunStatus::Stopped);
        assert!(record.status.is_resumable());
        assert_eq!(record.wall_seconds, 12.0);
        assert_eq!(record.progress(), 0.4);
        // The conflict meter, where an evaluation carries it, is a series of its own.
        assert!(record.series.conflict.is_empty());
        let Event::Eval(mut with_meter) = eval(5, 0.2, 0.5, 0.1) else { unreachable!() };
        with_meter.conflict = Some(crate::train::conflict::TaskConflict { shared: -0.2, backbone: -0.1, neck: -0.4 });
        record.apply(&Event::Eval(with_meter));
        assert_eq!(record.series.conflict, vec![[5.0, -0.2]]);
    }

    #[test]
    fn a_resumed_run_drops_the_steps_it_replays() {
        let mut record = RunRecord::new(Path::new("runs/x"), config(), RunStatus::Queued);
        for s in 1..=5 {
            record.apply(&step(s, Some(1.0), None));
        }
        record.apply(&Event::Started { step: 3, total_steps: 10, run_dir: "runs/x".into(), resumed: true, device: "cpu".into() });
        assert_eq!(record.series.loss[Task::Det].len(), 3);
        assert_eq!(record.step, 3);
    }

    #[test]
    fn a_run_another_process_trains_keeps_the_state_its_log_says() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        run_dir::create(&run, &config()).unwrap();
        let started = Event::Started { step: 0, total_steps: 10, run_dir: run.clone(), resumed: false, device: "cpu".into() };
        let events = vec![started, step(1, Some(1.0), None), Event::ControlReceived { step: 1, id: "p".into() }, Event::Paused { step: 1 }];
        // Its process gone: interrupted.
        let record = RunRecord::replay(&run, events.clone(), 0).unwrap();
        assert_eq!((record.status.clone(), record.elsewhere), (RunStatus::Interrupted, false));
        // Its process there (holding the lock): paused elsewhere, as the log says.
        let _lock = TrainLock::acquire(&run).unwrap();
        let record = RunRecord::replay(&run, events, 0).unwrap();
        assert_eq!((record.status.clone(), record.elsewhere), (RunStatus::Paused, true));
        assert_eq!(record.status_label(), "paused elsewhere");
        // A process that holds it before logging its start: running.
        let record = RunRecord::replay(&run, Vec::new(), 0).unwrap();
        assert_eq!(record.status_label(), "running elsewhere");
    }

    #[test]
    fn failures_keep_their_message() {
        let mut record = RunRecord::new(Path::new("runs/x"), config(), RunStatus::Running);
        record.apply(&Event::Error { step: 1, message: "data.voc: missing".into() });
        record.apply(&Event::Finished { step: 1, reason: FinishReason::Failed, wall_seconds: 0.0 });
        assert_eq!(record.status, RunStatus::Failed("data.voc: missing".into()));
    }

    #[test]
    fn strategy_summary_lists_parameters() {
        let summary = strategy_summary(&config().strategy);
        assert!(summary.starts_with("sequential ("), "{summary}");
        assert!(summary.contains("switch_step 250"), "{summary}");
        let three: StrategyConfig = toml::from_str("kind = \"sequential\"\norder = [\"det\", \"seg\", \"cls\"]\nswitch_steps = [60, 120]").unwrap();
        assert_eq!(strategy_summary(&three), "sequential (lr_factor 0.1, order det seg cls, switch_steps 60 120)");
    }
}
