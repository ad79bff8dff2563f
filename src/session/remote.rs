//! Runs on another machine, listed beside this session's own: a [`Remote`]
//! (a `twinhead serve` server, reached by [`crate::serve::client`]) reports
//! its runs and their events over its own thread, and takes requests (a
//! control, a new run, a continue) without making the caller wait.

use crate::backend::device::DeviceSpec;
use crate::train::config::TrainConfig;
use crate::train::events::{Control, Event};

use super::run_record::{RunRecord, RunStatus};
use super::Notice;
pub use super::run_record::RemoteRun;

/// What a remote reports.
#[derive(Debug)]
pub enum RemoteNews {
    /// A run first seen, or whose log was written anew: the record its log made so far.
    Run(Box<RunRecord>),
    /// Events appended to a run's log, in order, each once.
    Events(String, Vec<Event>),
    /// A run's status as the server sees it.
    Status { run: String, status: RunStatus, elsewhere: bool },
    /// A run no longer on the server.
    Gone(String),
    /// The devices runs can train on there.
    Devices(Vec<(DeviceSpec, String)>),
    /// What the user should know (connected, lost, a control refused…).
    Notice(Notice),
}

/// What the session asks of a remote.
#[derive(Debug, Clone)]
pub enum RemoteRequest {
    Control { run: String, control: Control },
    Start { config: Box<TrainConfig>, devices: Vec<DeviceSpec> },
    Resume { run: String, devices: Vec<DeviceSpec> },
}

/// A server whose runs the session lists.
pub trait Remote: Send {
    /// Its name in the runs list (`gpu-box`).
    fn label(&self) -> &str;
    /// What happened since the last call.
    fn news(&mut self) -> Vec<RemoteNews>;
    /// Queues a request; its outcome comes back as news.
    fn ask(&self, request: RemoteRequest);
}
