//! Typed events the trainer emits (over a crossbeam channel to the CLI or the
//! workbench, and appended to `runs/<name>/metrics.jsonl`), and the control
//! messages it accepts while running.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::conflict::{PairConflict, TaskConflict};
use crate::backend::device::DeviceMemory;

use super::strategy::{StrategyConfig, Task, TaskSet};
use crate::model::task::PerTask;

/// A step's task losses as `metrics.jsonl` has them: `det_loss` and
/// `seg_loss` always (null when not trained), `cls_loss` when trained.
mod step_losses {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{PerTask, Task};

    #[derive(Serialize, Deserialize)]
    struct Fields {
        det_loss: Option<f32>,
        seg_loss: Option<f32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cls_loss: Option<f32>,
    }

    pub fn serialize<S: Serializer>(losses: &PerTask<Option<f32>>, serializer: S) -> Result<S::Ok, S::Error> {
        Fields { det_loss: losses[Task::Det], seg_loss: losses[Task::Seg], cls_loss: losses[Task::Cls] }.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PerTask<Option<f32>>, D::Error> {
        let Fields { det_loss, seg_loss, cls_loss } = Fields::deserialize(deserializer)?;
        Ok(PerTask::from([det_loss, seg_loss, cls_loss]))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Started { step: usize, total_steps: usize, run_dir: PathBuf, resumed: bool, device: String },
    Step {
        step: usize,
        tasks: TaskSet,
        /// Each trained task's loss, written `det_loss`, `seg_loss`, `cls_loss`.
        #[serde(flatten, with = "step_losses")]
        losses: PerTask<Option<f32>>,
        /// Extra penalty of the strategy (distillation, EWC), when active.
        penalty: Option<f32>,
        lr: f64,
        images_per_sec: f32,
        /// The GPU's memory pool after the step (absent on the CPU).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device_memory: Option<DeviceMemory>,
    },
    Eval(EvalRecord),
    Phase { step: usize, phase: usize, description: String },
    StrategyChanged { step: usize, strategy: StrategyConfig },
    LearningRateChanged { step: usize, lr: f64 },
    Checkpoint { step: usize, kind: String, path: PathBuf },
    Paused { step: usize },
    Resumed { step: usize },
    /// A control read from the run's `control.jsonl` (sent by another
    /// process), logged before it acts: its delivery receipt.
    ControlReceived { step: usize, id: String },
    Warning { step: usize, message: String },
    Error { step: usize, message: String },
    /// A data-parallel run's step on each replica (after the step's `Step`).
    Replicas { step: usize, replicas: Vec<ReplicaStep> },
    Finished { step: usize, reason: FinishReason, wall_seconds: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Completed,
    Stopped,
    Failed,
}

/// Every task of the run evaluated on its fixed validation subset. A task
/// the run does not have has no values (`None`, empty).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "RecordFile", into = "RecordFile")]
pub struct EvalRecord {
    pub step: usize,
    /// Each task's metric: mAP50 (VOC-style AP at IoU 0.5, the area under
    /// the precision envelope, mean over classes), mIoU, top-1 accuracy.
    pub metric: PerTask<Option<f64>>,
    /// Each task's best value so far minus the current one (0 when at the best).
    pub forgetting: PerTask<Option<f64>>,
    /// Each class's AP50, IoU or accuracy, per task.
    pub per_class: PerTask<BTreeMap<String, Option<f64>>>,
    /// Segmentation's pixel accuracy.
    pub pixel_acc: Option<f64>,
    /// Classification's top-5 accuracy.
    pub top5: Option<f64>,
    /// The detection–segmentation task-conflict meter at this evaluation
    /// (absent in logs written before it existed, and in runs without the pair).
    pub conflict: Option<TaskConflict>,
    /// The meter of classification's pairs (detection–classification,
    /// segmentation–classification) in a run with classification.
    pub cls_conflicts: Vec<PairConflict>,
}

/// An evaluation's line in `metrics.jsonl`: a task the run lacks leaves its
/// fields out, so a detection–segmentation record reads and writes as it always has.
#[derive(Serialize, Deserialize)]
struct RecordFile {
    step: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    map50: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    miou: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pixel_acc: Option<f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    det_per_class: BTreeMap<String, Option<f64>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    seg_per_class: BTreeMap<String, Option<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    det_forgetting: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seg_forgetting: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    top1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    top5: Option<f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    cls_per_class: BTreeMap<String, Option<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cls_forgetting: Option<f64>,
    #[serde(default)]
    conflict: Option<TaskConflict>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    cls_conflicts: Vec<PairConflict>,
}

impl From<RecordFile> for EvalRecord {
    fn from(file: RecordFile) -> Self {
        let RecordFile { step, map50, miou, pixel_acc, det_per_class, seg_per_class, det_forgetting, seg_forgetting, top1, top5, cls_per_class, cls_forgetting, conflict, cls_conflicts } = file;
        Self {
            step,
            metric: PerTask::from([map50, miou, top1]),
            forgetting: PerTask::from([det_forgetting, seg_forgetting, cls_forgetting]),
            per_class: PerTask::from([det_per_class, seg_per_class, cls_per_class]),
            pixel_acc,
            top5,
            conflict,
            cls_conflicts,
        }
    }
}

impl From<EvalRecord> for RecordFile {
    fn from(record: EvalRecord) -> Self {
        let EvalRecord { step, metric, forgetting, per_class, pixel_acc, top5, conflict, cls_conflicts } = record;
        let [det_per_class, seg_per_class, cls_per_class] = per_class.into_array();
        Self {
            step,
            map50: metric[Task::Det],
            miou: metric[Task::Seg],
            pixel_acc,
            det_per_class,
            seg_per_class,
            det_forgetting: forgetting[Task::Det],
            seg_forgetting: forgetting[Task::Seg],
            top1: metric[Task::Cls],
            top5,
            cls_per_class,
            cls_forgetting: forgetting[Task::Cls],
            conflict,
            cls_conflicts,
        }
    }
}

impl EvalRecord {
    /// The key of `task`'s metric in a record (`map50`, `miou`, `top1`).
    pub fn metric_key(task: Task) -> &'static str {
        match task {
            Task::Det => "map50",
            Task::Seg => "miou",
            Task::Cls => "top1",
        }
    }

    /// `name value` of each task's metric the record has (`mAP50 0.5123`).
    pub fn metric_texts(&self, digits: usize) -> Vec<String> {
        Task::ALL.into_iter().filter_map(|t| Some(format!("{} {:.*}", t.metric_name(), digits, self.metric[t]?))).collect()
    }

    /// The track score of a three-task run's evaluation (mean of mAP50, mIoU and top-1).
    pub fn track_score(&self) -> Option<f64> {
        Some(crate::eval::track_score(self.metric[Task::Det]?, self.metric[Task::Seg]?, self.metric[Task::Cls]?))
    }
}

impl Event {
    pub fn step(&self) -> usize {
        match self {
            Event::Eval(e) => e.step,
            Event::Started { step, .. }
            | Event::Step { step, .. }
            | Event::Phase { step, .. }
            | Event::StrategyChanged { step, .. }
            | Event::LearningRateChanged { step, .. }
            | Event::Checkpoint { step, .. }
            | Event::Paused { step }
            | Event::Resumed { step }
            | Event::ControlReceived { step, .. }
            | Event::Warning { step, .. }
            | Event::Error { step, .. }
            | Event::Replicas { step, .. }
            | Event::Finished { step, .. } => *step,
        }
    }
}

/// One replica's part of a data-parallel step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaStep {
    /// Its rank among all replicas (0 evaluates and checkpoints), its node and its device there.
    pub rank: usize,
    pub node: usize,
    pub device: String,
    /// Its images per second (its shard of the batch over the step's time).
    pub images_per_sec: f32,
    pub step_seconds: f32,
    /// Time spent in all-reduce (waiting for the other replicas included).
    pub all_reduce_seconds: f32,
    /// Its GPU's memory pool (absent on the CPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_memory: Option<DeviceMemory>,
}

/// Messages that steer a running trainer; each change becomes an event at its step.
/// A data-parallel run's replica 0 passes them on to the others (serialized).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Control {
    Pause,
    Resume,
    Stop,
    CheckpointNow,
    SetStrategy(StrategyConfig),
    SetLearningRate(f64),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step's line in metrics.jsonl, as runs have always written it: the
    /// detection and segmentation losses always (null when not trained),
    /// classification's only when trained.
    #[test]
    fn a_step_is_written_as_before_and_reads_back() {
        let step = |cls: Option<f32>| Event::Step {
            step: 3,
            tasks: TaskSet::DET_SEG,
            losses: PerTask::from([Some(1.5), None, cls]),
            penalty: None,
            lr: 0.001,
            images_per_sec: 10.0,
            device_memory: None,
        };
        let two = serde_json::to_string(&step(None)).unwrap();
        assert_eq!(two, r#"{"event":"step","step":3,"tasks":"both","det_loss":1.5,"seg_loss":null,"penalty":null,"lr":0.001,"images_per_sec":10.0}"#);
        let three = serde_json::to_string(&step(Some(0.25))).unwrap();
        assert!(three.contains(r#""seg_loss":null,"cls_loss":0.25,"penalty""#), "{three}");
        for (text, event) in [(two, step(None)), (three, step(Some(0.25)))] {
            assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), event);
        }
    }

    /// A JSON text's numbers, and the text with each number replaced by `#`.
    fn numbers_apart(text: &str) -> (String, Vec<f64>) {
        let (mut skeleton, mut numbers, mut in_string) = (String::new(), Vec::new(), false);
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if !in_string && (c.is_ascii_digit() || c == '-') {
                let mut number = c.to_string();
                while let Some(&next) = chars.peek().filter(|n| n.is_ascii_digit() || "+-.eE".contains(**n)) {
                    number.push(next);
                    chars.next();
                }
                numbers.push(number.parse().unwrap());
                skeleton.push('#');
                continue;
            }
            in_string ^= c == '"';
            skeleton.push(c);
        }
        (skeleton, numbers)
    }

    /// Every line of a run's log written before events held their tasks as
    /// a set (the two-task fixture) writes back with the same keys in the
    /// same order, and the same numbers (serde_json reads a float to within
    /// one unit in the last place).
    #[test]
    fn an_older_runs_log_reads_and_writes_back_unchanged() {
        let log = include_str!("../../tests/fixtures/two_task_run/metrics.jsonl");
        for line in log.lines() {
            let event: Event = serde_json::from_str(line).unwrap();
            let (written, before) = (numbers_apart(&serde_json::to_string(&event).unwrap()), numbers_apart(line));
            assert_eq!(written.0, before.0);
            assert!(written.1.iter().zip(&before.1).all(|(a, b)| (a - b).abs() <= 1e-15 * b.abs()), "{line}");
        }
        assert!(log.lines().any(|line| line.contains("\"event\":\"eval\"")));
    }
}
