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
        Ok(PerTask::from_fn(|task| match task {
            Task::Det => det_loss,
            Task::Seg => seg_loss,
            Task::Cls => cls_loss,
        }))
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
/// the run does not have leaves its fields out (`None`, empty): a
/// detection–segmentation record reads and writes as it always has.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    pub step: usize,
    /// VOC-style AP at IoU 0.5 (area under the precision envelope), mean over classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map50: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miou: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_acc: Option<f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub det_per_class: BTreeMap<String, Option<f64>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub seg_per_class: BTreeMap<String, Option<f64>>,
    /// Best value so far minus the current one (0 when at the best).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub det_forgetting: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seg_forgetting: Option<f64>,
    /// Classification top-1 and top-5 accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top5: Option<f64>,
    /// Accuracy of each classification class.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cls_per_class: BTreeMap<String, Option<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cls_forgetting: Option<f64>,
    /// The detection–segmentation task-conflict meter at this evaluation
    /// (absent in logs written before it existed, and in runs without the pair).
    #[serde(default)]
    pub conflict: Option<TaskConflict>,
    /// The meter of classification's pairs (detection–classification,
    /// segmentation–classification) in a run with classification.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cls_conflicts: Vec<PairConflict>,
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

    /// The metric of `task` (mAP50, mIoU, top-1), in a run with it.
    pub fn metric(&self, task: Task) -> Option<f64> {
        match task {
            Task::Det => self.map50,
            Task::Seg => self.miou,
            Task::Cls => self.top1,
        }
    }

    /// How far `task`'s metric is below its best so far, in a run with it.
    pub fn forgetting(&self, task: Task) -> Option<f64> {
        match task {
            Task::Det => self.det_forgetting,
            Task::Seg => self.seg_forgetting,
            Task::Cls => self.cls_forgetting,
        }
    }

    /// `name value` of each task's metric the record has (`mAP50 0.5123`).
    pub fn metric_texts(&self, digits: usize) -> Vec<String> {
        Task::ALL.into_iter().filter_map(|t| Some(format!("{} {:.*}", t.metric_name(), digits, self.metric(t)?))).collect()
    }

    /// The track score of a three-task run's evaluation (mean of mAP50, mIoU and top-1).
    pub fn track_score(&self) -> Option<f64> {
        Some(crate::eval::track_score(self.map50?, self.miou?, self.top1?))
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
            losses: PerTask::from_fn(|task| match task {
                Task::Det => Some(1.5),
                Task::Seg => None,
                Task::Cls => cls,
            }),
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
}
