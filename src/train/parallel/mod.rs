//! Data-parallel training on burn-collective: one replica of the network per
//! device (a thread each), on one machine or several (nodes).
//!
//! Every replica takes its slice of each step's batch (the loaders are
//! sharded by replica: the slices side by side are the batch one device would
//! load), computes its losses, and scales each task's loss so that the mean
//! of the replicas' gradients is the gradient of the whole batch's loss: a
//! task's loss is divided by the whole batch's normaliser (target-score sum,
//! scored pixels, images), gathered in one all-reduce before the backward pass.
//! The gradients are then averaged in one all-reduce and every replica takes
//! the same optimiser step, so all hold the same weights (their hashes are
//! compared at every checkpoint). Replica 0 evaluates, writes the events and
//! the checkpoints, and passes its control messages (stop, strategy, learning
//! rate) to the others at the start of each step; the others start from its
//! snapshot, so a resumed run continues on every replica exactly.

pub mod collective;
pub mod launch;
pub mod nodes;
pub mod placement;
pub mod slurm;
pub mod snapshot;

pub use collective::{Rank, Replica};
pub use placement::{NodeSpec, Placement};
