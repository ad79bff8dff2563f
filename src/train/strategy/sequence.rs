//! The sequential family's shared settings: the tasks in training order, the
//! steps at which each later phase starts, and the later phases' learning-rate
//! factor; and the task schedule they resolve to over a run.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::{RunShape, StepPlan};
use crate::model::task::{Task, TaskSet};

fn det() -> Task {
    Task::Det
}
fn tenth() -> f64 {
    0.1
}

/// `first`, `switch_step`, `order`, `switch_steps` and `lr_factor` of a
/// sequential strategy (written among its own keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sequence {
    /// The task of the first phase; the run's other tasks follow.
    #[serde(default = "det")]
    pub first: Task,
    /// The step the second phase starts at.
    #[serde(default)]
    pub switch_step: usize,
    /// Three or more phases: the tasks in training order (then `first` is unused).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order: Vec<Task>,
    /// The step each later phase of `order` starts at (then `switch_step` is unused).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub switch_steps: Vec<usize>,
    /// The learning rate's factor in every later phase.
    #[serde(default = "tenth")]
    pub lr_factor: f64,
}

impl Sequence {
    /// Detection first, switching halfway through a run of `steps`.
    pub fn halfway(steps: usize) -> Self {
        Self { first: Task::Det, switch_step: steps / 2, order: Vec::new(), switch_steps: Vec::new(), lr_factor: 0.1 }
    }

    /// The switch steps moved by `scale` into a run of `steps`: inside it
    /// and increasing (a `switch_step` of 0, unused beside `switch_steps`, stays 0).
    pub fn rescale(&mut self, scale: impl Fn(usize) -> usize, steps: usize) {
        if self.switch_step > 0 && steps > 1 {
            self.switch_step = scale(self.switch_step).clamp(1, steps - 1);
        }
        let mut last = 0;
        for switch in self.switch_steps.iter_mut() {
            *switch = scale(*switch).max(last + 1);
            last = *switch;
        }
    }

    /// The task trained first, as written (`order`'s first when given).
    pub fn first_task(&self) -> Task {
        self.order.first().copied().unwrap_or(self.first)
    }

    /// The first switch, as written (`switch_steps`' first when given).
    pub fn first_switch(&self) -> usize {
        self.switch_steps.first().copied().unwrap_or(self.switch_step)
    }

    /// The same sequence with `task` first (moved to the front of an explicit order).
    pub fn put_first(&mut self, task: Task) {
        self.first = task;
        if let Some(at) = self.order.iter().position(|&t| t == task) {
            self.order.remove(at);
            self.order.insert(0, task);
        }
    }

    /// The schedule over `run`'s tasks: `order`, else `first` and then the
    /// run's other tasks; `switch_steps`, else `switch_step` and the rest of
    /// the run split evenly between the later phases.
    pub fn schedule(&self, run: RunShape) -> TaskSchedule {
        let order: Vec<Task> = match self.order.as_slice() {
            [] => std::iter::once(self.first).chain(run.tasks.iter().filter(|&t| t != self.first)).collect(),
            given => given.to_vec(),
        };
        let switches = match self.switch_steps.as_slice() {
            [] => {
                let later = order.len().saturating_sub(1).max(1);
                let span = run.steps.saturating_sub(self.switch_step) / later;
                (0..later).map(|k| self.switch_step + k * span).collect()
            }
            given => given.to_vec(),
        };
        TaskSchedule { order, switches, lr_factor: self.lr_factor }
    }

    /// "lwf detection", "freeze segmentation (lr ×0.2)", with the strategy's
    /// own `detail` of a later phase given the tasks trained before it.
    pub fn describe(&self, name: &str, phase: usize, run: RunShape, detail: impl FnOnce(&[Task]) -> Option<String>) -> String {
        let schedule = self.schedule(run);
        let task = schedule.task_of(phase);
        if phase == 0 {
            return format!("{name} {task}");
        }
        let earlier = &schedule.order[..phase.min(schedule.order.len())];
        match detail(earlier) {
            Some(detail) => format!("{name} {task} (lr ×{}; {detail})", schedule.lr_factor),
            None => format!("{name} {task} (lr ×{})", schedule.lr_factor),
        }
    }

    /// The errors a sequence can have over `run`, named by key; `name` is the strategy's.
    pub fn validate(&self, name: &str, run: RunShape) -> Result<()> {
        let steps = run.steps;
        if run.tasks.len() < 2 {
            bail!(
                "strategy.kind = \"{name}\": a sequence needs two or more tasks; this run has one ({}): train it with kind = \"joint\"",
                String::from(run.tasks)
            );
        }
        let schedule = self.schedule(run);
        if self.switch_steps.is_empty() && (self.switch_step == 0 || self.switch_step >= steps) {
            bail!("strategy.switch_step: must be between 1 and steps - 1 ({}), got {}", steps.saturating_sub(1), self.switch_step);
        }
        if let Some(task) = schedule.order.iter().find(|&&t| !run.tasks.contains(t)) {
            bail!("strategy.order: the run has no {task} dataset (its tasks: {})", String::from(run.tasks));
        }
        if TaskSet::of(&schedule.order).len() != schedule.order.len() || schedule.order.len() < 2 {
            bail!("strategy.order: at least two tasks, each once; got {:?}", schedule.order.iter().map(|t| t.key()).collect::<Vec<_>>());
        }
        let (order, switch_steps) = (&self.order, &self.switch_steps);
        if !order.is_empty() && !switch_steps.is_empty() && switch_steps.len() + 1 != order.len() {
            bail!("strategy.switch_steps: one step per switch ({} for {} tasks), got {}", order.len() - 1, order.len(), switch_steps.len());
        }
        if !schedule.switches.windows(2).all(|w| w[0] < w[1]) || schedule.switches.iter().any(|&s| s == 0 || s >= steps) {
            bail!("strategy.switch_steps: increasing steps between 1 and steps - 1 ({}), got {:?}", steps.saturating_sub(1), schedule.switches);
        }
        if !(schedule.lr_factor > 0.0 && schedule.lr_factor <= 10.0) {
            bail!("strategy.lr_factor: must be in (0, 10], got {}", schedule.lr_factor);
        }
        Ok(())
    }
}

/// A sequence resolved for a run: the tasks in training order and the step
/// each later phase starts at.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSchedule {
    pub order: Vec<Task>,
    /// `switches[k]` starts phase `k + 1`.
    pub switches: Vec<usize>,
    pub lr_factor: f64,
}

impl TaskSchedule {
    pub fn phase_at(&self, step: usize) -> usize {
        self.switches.iter().filter(|&&switch| step >= switch).count()
    }

    /// What `step` trains: the task of its phase, at the phase's rate.
    pub fn plan(&self, step: usize) -> StepPlan {
        let phase = self.phase_at(step);
        let lr_factor = if phase == 0 { 1.0 } else { self.lr_factor };
        StepPlan { tasks: self.task_of(phase).into(), phase, lr_factor, replay: None }
    }

    /// The task `phase` trains.
    pub fn task_of(&self, phase: usize) -> Task {
        self.order[phase.min(self.order.len() - 1)]
    }

    /// The tasks trained before `phase`.
    pub fn earlier(&self, phase: usize) -> TaskSet {
        TaskSet::of(&self.order[..phase.min(self.order.len())])
    }
}
