//! Runs on another machine: `twinhead serve` (a headless server owning a runs
//! folder and a device queue, speaking a small versioned HTTP API) and its
//! client (the workbench's remote runs, `twinhead runs pull`).

pub mod api;
pub mod client;
pub mod guard;
mod listen;
pub mod predictions;
pub mod remote;
pub mod server;
pub mod tls;
