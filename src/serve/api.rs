//! The HTTP API of `twinhead serve`, version 1: its paths and the JSON it
//! speaks, shared by the server and its client (the workbench, `runs pull`).
//! docs/remote.md documents each endpoint with a curl example.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::session::run_record::RunRecord;
use crate::train::events::Control;

/// The API version in every path (`/api/v1/...`).
pub const VERSION: u32 = 1;

/// The prefix of every path.
pub const PREFIX: &str = "/api/v1";

/// The header naming which log a response's records come from: a resumed run
/// writes its log anew, and a client that followed the old one starts over.
pub const LOG_HEADER: &str = "x-twinhead-log";

/// The port `serve` listens on unless told.
pub const DEFAULT_PORT: u16 = 7878;

/// `GET /api/v1/version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub api: u32,
    pub twinhead: String,
    /// The server's runs folder, as it names it.
    pub runs: PathBuf,
    /// The folders dataset paths in requests must lie under.
    pub datasets: Vec<PathBuf>,
}

/// One run of `GET /api/v1/runs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub name: String,
    /// `queued`, `running`, `paused`, `completed`, `stopped`, `failed`, `interrupted`.
    pub status: String,
    /// Trained by a process other than the server (a `twinhead train` in its runs folder).
    pub elsewhere: bool,
    pub step: usize,
    pub total_steps: usize,
    /// The run's tasks (`det+seg`).
    pub tasks: String,
    /// The device it trains on, as its log says (`cuda:0`), once it started.
    pub device: Option<String>,
    pub strategy: String,
    /// Each task's best metric so far (mAP50, mIoU, top-1), by task key (`det`, `seg`, `cls`).
    pub best: BTreeMap<String, f64>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RunSummary {
    pub fn of(record: &RunRecord) -> Self {
        let tasks = record.config.data.run_tasks();
        Self {
            name: record.name.clone(),
            status: record.status.label().to_string(),
            elsewhere: record.elsewhere,
            step: record.step,
            total_steps: record.total_steps,
            tasks: tasks.into(),
            device: record.device.clone(),
            strategy: record.strategy.name().to_string(),
            best: tasks.iter().filter_map(|t| Some((t.key().to_string(), record.best(t)?))).collect(),
            error: match &record.status {
                crate::session::run_record::RunStatus::Failed(message) => Some(message.clone()),
                _ => None,
            },
        }
    }

    /// Whether a trainer runs it now (its events still grow).
    pub fn is_live(&self) -> bool {
        matches!(self.status.as_str(), "running" | "paused" | "queued")
    }
}

/// `POST /api/v1/runs` answers with the new run's folder name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Started {
    pub name: String,
}

/// `POST /api/v1/runs/{name}/control`: a control, with the sender's id for
/// it. Sending the same id again is answered as a duplicate and applies nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlRequest {
    pub id: String,
    pub control: Control,
}

/// The answer to a control: `sent` (the trainer logs `control_received` with
/// the id when it takes it; a run that finishes first never applies it) or
/// `duplicate` (that id was sent before).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlAnswer {
    pub id: String,
    pub outcome: String,
}

/// `POST /api/v1/check`: folders on the server to check, as `data check` does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    #[serde(default)]
    pub voc: Option<PathBuf>,
    #[serde(default)]
    pub ade: Option<PathBuf>,
    #[serde(default)]
    pub cls: Option<PathBuf>,
    /// The split of each to check (default: every split).
    #[serde(default)]
    pub voc_split: Option<String>,
    #[serde(default)]
    pub ade_split: Option<String>,
    #[serde(default)]
    pub cls_split: Option<String>,
}

/// One line of `POST /api/v1/runs/{name}/validate`'s answer (JSON lines):
/// progress while the server scores, then the scores or the error.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidateLine {
    Progress { done: usize, total: usize },
    Scores(Box<crate::predictor::FullValidation>),
    Error(String),
}

/// One file of `GET /api/v1/runs/{name}/files`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFile {
    /// Relative to the run folder, `/`-separated.
    pub path: String,
    pub bytes: u64,
}

/// An error, as every endpoint answers one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// One device of `GET /api/v1/devices`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// As `--device` takes it (`cuda:0`).
    pub name: String,
    pub description: String,
}

/// Whether `name` can be a run folder's name: one path component of letters,
/// digits, `-`, `_` and `.`, not `.` or `..`.
pub fn valid_run_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}
