//! `replay` (rehearsal): `sequential`; in each later phase every `every`-th
//! step also trains an earlier task again (in turn), on a batch from a fixed
//! buffer of its training images.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::{list, Number, RunShape, Sequence, Setting, StepPlan, Strategy, Task};

/// Replay's default buffer: 5 % of each earlier task's training images.
pub const REPLAY_BUFFER: f64 = 0.05;
/// Replay's default period: an earlier task's batch added to every 4th later-phase step.
pub const REPLAY_EVERY: usize = 4;

fn replay_buffer() -> f64 {
    REPLAY_BUFFER
}
fn replay_every() -> usize {
    REPLAY_EVERY
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    #[serde(flatten)]
    pub sequence: Sequence,
    /// Each earlier task's buffer: a count of images (≥ 1) or a fraction of its training split (< 1).
    #[serde(default = "replay_buffer")]
    pub buffer: f64,
    #[serde(default = "replay_every")]
    pub every: usize,
}

impl Strategy for Replay {
    fn name(&self) -> &'static str {
        "replay"
    }

    fn with_sequence(sequence: Sequence) -> Self {
        Self { sequence, buffer: REPLAY_BUFFER, every: REPLAY_EVERY }
    }

    shared_settings!(sequence, sequence_mut: Sequence);

    /// The sequence's plan; a replay step adds a batch from an earlier task's
    /// buffer (the earlier tasks in turn), and the new task keeps every step.
    fn plan(&self, step: usize, run: RunShape) -> StepPlan {
        let schedule = self.sequence.schedule(run);
        let plan = schedule.plan(step);
        if plan.phase == 0 {
            return plan;
        }
        let since = step.saturating_sub(schedule.switches[plan.phase - 1]);
        let every = self.every.max(1);
        if since % every != every - 1 {
            return plan;
        }
        let earlier = schedule.order[(since / every) % plan.phase.min(schedule.order.len())];
        StepPlan { tasks: plan.tasks.with(earlier), replay: Some(earlier), ..plan }
    }

    fn phase_detail(&self, earlier: &[Task]) -> Option<String> {
        let buffer = if self.buffer >= 1.0 { format!("{} images", self.buffer) } else { format!("{}%", self.buffer * 100.0) };
        Some(format!("1 step in {} also replays {} from a buffer of {buffer}", self.every, list(earlier.iter())))
    }

    fn replay_buffer(&self) -> Option<f64> {
        Some(self.buffer)
    }

    fn validate_own(&self, _: RunShape) -> Result<()> {
        if self.every == 0 {
            bail!("strategy.every: must be at least 1 (1: every second-phase step replays)");
        }
        if !(self.buffer > 0.0 && (self.buffer < 1.0 || self.buffer.fract() == 0.0)) {
            bail!("strategy.buffer: a fraction in (0, 1) of the first task's images, or a whole count ≥ 1; got {}", self.buffer);
        }
        Ok(())
    }

    fn settings(&mut self) -> Vec<Setting<'_>> {
        vec![
            Setting::Sequence(&mut self.sequence),
            Number::double("buffer", "Replay buffer", &mut self.buffer, 1e6, 0.01)
                .hint("Per earlier task. Below 1: a fraction of its training images; 1 or more: a count")
                .into(),
            Number::count("every", "Replay on 1 step in", &mut self.every, 10_000)
                .suffix(" steps")
                .hint("With several earlier tasks, each replay step takes the next one's buffer in turn")
                .into(),
        ]
    }
}
