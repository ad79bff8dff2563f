//! A `twinhead serve` server as a [`Remote`] of the workbench's session: a
//! thread lists its runs every couple of seconds, one thread per run follows
//! its log ([`Follow`]: a dropped connection resumes after the last record,
//! so the curves have no gap and no point twice), and one thread carries the
//! session's requests. The window's thread never waits on the network.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::api::RunSummary;
use super::client::{Client, Follow, Followed};
use crate::session::remote::{Remote, RemoteNews, RemoteRequest, RemoteRun};
use crate::session::run_record::{RunRecord, RunStatus};
use crate::session::Notice;
use crate::train::control_file;

/// How often the server's run list is read, and a lost server tried again.
const LIST_EVERY: Duration = Duration::from_secs(2);
/// How often its devices are asked for.
const DEVICES_EVERY: Duration = Duration::from_secs(30);
/// Tries of a request whose connection failed (a control keeps its id, so it applies at most once).
const TRIES: usize = 3;

pub struct RemoteServer {
    label: String,
    news: Receiver<RemoteNews>,
    requests: Sender<RemoteRequest>,
    stop: Arc<AtomicBool>,
}

impl RemoteServer {
    /// Starts listing and following the runs of the server `client` talks to,
    /// shown as `run@label`, each with a mirror folder under `mirror` (its
    /// configuration, and the timeline as evaluations write it); `repaint` is
    /// called after news.
    pub fn connect(label: &str, client: Client, mirror: PathBuf, repaint: Arc<dyn Fn() + Send + Sync>) -> Self {
        let (news_tx, news) = crossbeam_channel::unbounded();
        let (requests, request_rx) = crossbeam_channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let watch = Watch { label: label.to_string(), client: Arc::new(client), mirror, news: news_tx, repaint, stop: stop.clone() };
        let carrier = watch.clone();
        std::thread::Builder::new().name(format!("server {label}")).spawn(move || watch.list()).expect("a thread for the server");
        std::thread::Builder::new().name(format!("requests to {label}")).spawn(move || carrier.carry(request_rx)).expect("a thread for requests");
        Self { label: label.to_string(), news, requests, stop }
    }
}

impl Remote for RemoteServer {
    fn label(&self) -> &str {
        &self.label
    }

    fn news(&mut self) -> Vec<RemoteNews> {
        self.news.try_iter().collect()
    }

    fn ask(&self, request: RemoteRequest) {
        let _ = self.requests.send(request);
    }
}

impl Drop for RemoteServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What the threads share.
#[derive(Clone)]
struct Watch {
    label: String,
    client: Arc<Client>,
    /// Where each run's mirror folder is made.
    mirror: PathBuf,
    news: Sender<RemoteNews>,
    repaint: Arc<dyn Fn() + Send + Sync>,
    stop: Arc<AtomicBool>,
}

impl Watch {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn tell(&self, news: RemoteNews) {
        let _ = self.news.send(news);
        (self.repaint)();
    }

    fn run_name(&self, run: &str) -> String {
        RemoteRun { server: self.label.clone(), run: run.to_string() }.record_name()
    }

    /// Lists the server's runs until stopped; starts a follower for each run
    /// whose log may have grown since it was last followed.
    fn list(self) {
        let mut connected: Option<bool> = None;
        let mut followers: HashMap<String, Arc<AtomicBool>> = HashMap::new();
        let mut known: HashMap<String, RunSummary> = HashMap::new();
        let mut devices_at: Option<Instant> = None;
        while !self.stopped() {
            match self.client.runs() {
                Ok(runs) => {
                    if connected != Some(true) {
                        self.tell(RemoteNews::Notice(Notice::info(format!("connected to {} ({})", self.label, self.client.address()))));
                        connected = Some(true);
                    }
                    if devices_at.is_none_or(|at| at.elapsed() >= DEVICES_EVERY) {
                        if let Ok(devices) = self.client.devices() {
                            let parsed = devices.into_iter().filter_map(|d| Some((d.name.parse().ok()?, d.description))).collect();
                            self.tell(RemoteNews::Devices(parsed));
                            devices_at = Some(Instant::now());
                        }
                    }
                    for summary in &runs {
                        let seen = known.get(&summary.name);
                        if seen != Some(summary) {
                            self.tell(RemoteNews::Status { run: summary.name.clone(), status: status_of(summary), elsewhere: summary.elsewhere });
                        }
                        // A follower per run that may grow: new, or live again.
                        let running = followers.get(&summary.name).is_some_and(|done| !done.load(Ordering::Relaxed));
                        let grew = seen.is_none_or(|seen| seen.step != summary.step || seen.status != summary.status);
                        if !running && grew {
                            let done = Arc::new(AtomicBool::new(false));
                            followers.insert(summary.name.clone(), done.clone());
                            let (watch, run, live) = (self.clone(), summary.name.clone(), summary.is_live());
                            let _ = std::thread::Builder::new().name(format!("follow {run}")).spawn(move || watch.follow(&run, live, &done));
                        }
                        known.insert(summary.name.clone(), summary.clone());
                    }
                    known.retain(|name, _| {
                        let there = runs.iter().any(|r| r.name == *name);
                        if !there {
                            self.tell(RemoteNews::Gone(name.clone()));
                        }
                        there
                    });
                }
                Err(error) => {
                    if connected != Some(false) {
                        self.tell(RemoteNews::Notice(Notice::warning(format!("{}: {error:#}; trying again", self.label))));
                        connected = Some(false);
                    }
                }
            }
            std::thread::sleep(LIST_EVERY);
        }
    }

    /// Follows one run's log: its record from its configuration and every
    /// event, then the events appended while it is live. Reconnects after a
    /// dropped connection from the record after the last one received.
    fn follow(&self, run: &str, live: bool, done: &AtomicBool) {
        let mirror = self.mirror.join(run);
        let fresh = || -> Option<RunRecord> {
            let config = self.client.config(run).ok()?;
            let _ = crate::train::run_dir::create(&mirror, &config);
            let mut record = RunRecord::new(&mirror, config, RunStatus::Interrupted);
            record.name = self.run_name(run);
            record.remote = Some(RemoteRun { server: self.label.clone(), run: run.to_string() });
            Some(record)
        };
        let Some(record) = fresh() else {
            done.store(true, Ordering::Relaxed);
            return;
        };
        self.tell(RemoteNews::Run(Box::new(record)));
        let mut follow = Follow::new(self.client.clone(), run);
        let mut batch = Vec::new();
        let mut timeline_pulled = false;
        loop {
            let pumped = follow.pump(live, &mut |followed| {
                match followed {
                    Followed::Reset => {
                        if let Some(record) = fresh() {
                            self.tell(RemoteNews::Run(Box::new(record)));
                        }
                    }
                    Followed::Record(Some(event)) => {
                        // The timeline before the evaluations that show it: at each one while
                        // the run is live, all of it at once when catching up with a past run.
                        if matches!(event, crate::train::Event::Eval(_)) && (live || !timeline_pulled) {
                            let _ = self.client.pull(run, &mirror, Some(crate::train::timeline::TIMELINE_DIR), &|_, _| {});
                            timeline_pulled = true;
                        }
                        batch.push(event);
                        // Flush a step at a time while live; a whole log in a few messages.
                        if live || batch.len() >= 512 {
                            self.tell(RemoteNews::Events(run.to_string(), std::mem::take(&mut batch)));
                        }
                    }
                    Followed::Record(None) => {}
                }
                !self.stopped()
            });
            if !batch.is_empty() {
                self.tell(RemoteNews::Events(run.to_string(), std::mem::take(&mut batch)));
            }
            if self.stopped() || (pumped.is_ok() && !live) {
                break;
            }
            // A live run's stream ended: it finished (the list sees it), or the connection dropped.
            match self.client.runs() {
                Ok(runs) if runs.iter().find(|r| r.name == run).is_none_or(|r| !r.is_live()) => {
                    // Its last records, then done.
                    let _ = follow.pump(false, &mut |followed| {
                        if let Followed::Record(Some(event)) = followed {
                            self.tell(RemoteNews::Events(run.to_string(), vec![event]));
                        }
                        true
                    });
                    break;
                }
                _ => std::thread::sleep(Duration::from_secs(1)),
            }
        }
        done.store(true, Ordering::Relaxed);
    }

    /// Carries the session's requests to the server, one at a time, and tells their outcome.
    fn carry(self, requests: Receiver<RemoteRequest>) {
        while let Ok(request) = requests.recv() {
            if self.stopped() {
                return;
            }
            let outcome = match &request {
                RemoteRequest::Control { run, control } => {
                    // One id for every try: a control the server took once is not applied again.
                    let id = control_file::new_id();
                    self.retry(|| self.client.control(run, &id, control)).map(|answer| format!("{:?} sent to {} ({})", control_name(control), self.run_name(run), answer.outcome))
                }
                RemoteRequest::Start { config, devices } => {
                    let list = devices_text(devices);
                    self.client.start(config, Some(&list)).map(|name| format!("{} queued on {list}", self.run_name(&name)))
                }
                RemoteRequest::Resume { run, devices } => {
                    self.client.resume(run, Some(&devices_text(devices))).map(|()| format!("{} continues", self.run_name(run)))
                }
            };
            self.tell(RemoteNews::Notice(match outcome {
                Ok(text) => Notice::info(text),
                Err(error) => Notice::error(format!("{}: not done: {error:#}", self.label)),
            }));
        }
    }

    /// `call`, tried again after a failed connection (not after the server's refusal).
    fn retry<T>(&self, call: impl Fn() -> anyhow::Result<T>) -> anyhow::Result<T> {
        let mut last = None;
        for attempt in 0..TRIES {
            match call() {
                Ok(value) => return Ok(value),
                Err(error) if is_refusal(&error) => return Err(error),
                Err(error) => last = Some(error),
            }
            std::thread::sleep(Duration::from_millis(500 << attempt));
        }
        Err(last.expect("tried"))
    }
}

/// An answer from the server (a status code), as opposed to a failed connection.
fn is_refusal(error: &anyhow::Error) -> bool {
    let text = format!("{error:#}");
    text.split(": ").nth(1).is_some_and(|code| code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()))
}

fn devices_text(devices: &[crate::backend::device::DeviceSpec]) -> String {
    devices.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

fn control_name(control: &crate::train::Control) -> &'static str {
    use crate::train::Control;
    match control {
        Control::Pause => "pause",
        Control::Resume => "resume",
        Control::Stop => "stop",
        Control::CheckpointNow => "checkpoint now",
        Control::SetStrategy(_) => "strategy",
        Control::SetLearningRate(_) => "learning rate",
    }
}

/// The status a server lists, as the session keeps it.
fn status_of(summary: &RunSummary) -> RunStatus {
    match summary.status.as_str() {
        "queued" => RunStatus::Queued,
        "running" => RunStatus::Running,
        "paused" => RunStatus::Paused,
        "completed" => RunStatus::Completed,
        "stopped" => RunStatus::Stopped,
        "failed" => RunStatus::Failed(summary.error.clone().unwrap_or_else(|| "failed".into())),
        _ => RunStatus::Interrupted,
    }
}
