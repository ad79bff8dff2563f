//! Each replica's steps of a data-parallel run, summed for the closing
//! summary of `train` and `bench train`.

use crate::train::events::ReplicaStep;

/// Per replica (by rank): where it trains and its totals over the steps added.
#[derive(Default)]
pub struct ReplicaTotals {
    replicas: Vec<Totals>,
}

#[derive(Default)]
struct Totals {
    node: usize,
    device: String,
    steps: usize,
    images: f64,
    seconds: f64,
    all_reduce_seconds: f64,
}

impl ReplicaTotals {
    /// Adds one step of every replica (an `Event::Replicas`).
    pub fn add(&mut self, steps: &[ReplicaStep]) {
        self.replicas.resize_with(steps.len(), Default::default);
        for (total, step) in self.replicas.iter_mut().zip(steps) {
            let seconds = step.step_seconds as f64;
            total.node = step.node;
            total.device.clone_from(&step.device);
            total.steps += 1;
            total.images += step.images_per_sec as f64 * seconds;
            total.seconds += seconds;
            total.all_reduce_seconds += step.all_reduce_seconds as f64;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty()
    }

    /// One line per replica: its images/s, mean step time and mean all-reduce time.
    pub fn lines(&self) -> Vec<String> {
        let lines = self.replicas.iter().enumerate().map(|(rank, r)| {
            let per_step = |seconds: f64| 1000.0 * seconds / r.steps.max(1) as f64;
            format!(
                "replica {rank} (node {}, {}): {:.1} images/s, step {:.1} ms, all-reduce {:.1} ms per step",
                r.node,
                r.device,
                r.images / r.seconds.max(1e-9),
                per_step(r.seconds),
                per_step(r.all_reduce_seconds)
            )
        });
        lines.collect()
    }
}
