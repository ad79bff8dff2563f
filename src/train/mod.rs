//! Training: configuration, strategies, losses and target assignment, the
//! trainer loop, its events, checkpoints and run folders.

pub mod assigner;
pub mod checkpoint;
pub mod config;
pub mod config_diff;
pub mod conflict;
pub mod datasets;
pub mod control_file;
pub mod ema;
pub mod evaluate;
pub mod events;
pub mod log_tail;
pub mod loss;
pub mod memory;
pub mod optim;
pub mod parallel;
pub mod penalty;
pub mod presets;
pub mod pseudo;
pub mod replay;
pub mod run;
pub mod run_dir;
pub mod lr_schedule;
pub mod strategy;
pub mod task_data;
pub mod task_gradients;
pub mod task_losses;
pub mod tensorboard_log;
pub mod timeline;
pub mod trainee;
pub mod trainer;

pub use config::TrainConfig;
pub use events::{Control, Event, FinishReason};
pub use run::{start, start_on, RunHandle};
pub use strategy::{StrategyConfig, Task};
