//! The client of `twinhead serve`: blocking calls (made on background threads:
//! the workbench's remote runs, `runs pull`), and [`Follow`], which streams a
//! run's log records and, when a connection drops, resumes from the record
//! after the last one received, so a follower sees every record once.

use std::io::{BufRead, BufReader, Read, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;

use super::api::{self, ControlAnswer, ControlRequest, Device, ErrorBody, RunFile, RunSummary, ServerInfo, Started};
use super::predictions::UploadPrediction;
use crate::predictor::FullValidation;
use crate::train::checkpoint::CheckpointKind;
use crate::train::config::TrainConfig;
use crate::train::events::{Control, Event};

/// How long a request may take, and a followed stream may stay silent (the
/// server sends an empty line every 10 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const STREAM_SILENCE: Duration = Duration::from_secs(35);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read into memory (a run list, a prediction).
const ANSWER_LIMIT: u64 = 256 << 20;

/// Where a server is and how to talk to it.
#[derive(Clone)]
pub struct Client {
    /// `http://host:port` or `https://host:port`, without a trailing `/`.
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the server at `url` (`host:port` means `http://host:port`),
    /// sending `token` with every request, trusting `ca_file` for HTTPS when given.
    pub fn new(url: &str, token: Option<String>, ca_file: Option<&Path>) -> Result<Self> {
        let url = url.trim().trim_end_matches('/');
        let base = if url.contains("://") { url.to_string() } else { format!("http://{url}") };
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("{url}: a server address is http://HOST:PORT or https://HOST:PORT");
        }
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout_read(STREAM_SILENCE)
            // A redirect could carry the token elsewhere.
            .redirects(0)
            .tls_config(super::tls::client_config(ca_file)?)
            .build();
        Ok(Self { base, token, agent })
    }

    /// A client whose token is read from `token_file` (its first line).
    pub fn with_token_file(url: &str, token_file: Option<&Path>, ca_file: Option<&Path>) -> Result<Self> {
        let token = match token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("token file {}: cannot read", path.display()))?;
                Some(text.lines().next().unwrap_or_default().trim().to_string())
            }
            None => None,
        };
        Self::new(url, token, ca_file)
    }

    pub fn address(&self) -> &str {
        &self.base
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let request = self.agent.request(method, &format!("{}{}{path}", self.base, api::PREFIX));
        match &self.token {
            Some(token) => request.set("Authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    /// Sends a request; a non-2xx answer becomes an error with the server's message.
    fn send(&self, request: ureq::Request, body: Option<(&str, &[u8])>) -> Result<ureq::Response> {
        let url = request.url().to_string();
        let outcome = match body {
            Some((content_type, bytes)) => request.set("Content-Type", content_type).send_bytes(bytes),
            None => request.call(),
        };
        match outcome {
            Ok(response) => Ok(response),
            Err(ureq::Error::Status(code, response)) => {
                let text = response.into_string().unwrap_or_default();
                let message = serde_json::from_str::<ErrorBody>(&text).map_or(text, |body| body.error);
                bail!("{}: {code}: {message}", self.base_of(&url))
            }
            Err(ureq::Error::Transport(transport)) => bail!("{}: {transport}", self.base),
        }
    }

    fn base_of(&self, url: &str) -> String {
        url.strip_prefix(&self.base).map_or(url.to_string(), |path| format!("{}{path}", self.base))
    }

    fn json<T: DeserializeOwned>(&self, response: ureq::Response) -> Result<T> {
        let mut text = String::new();
        response.into_reader().take(ANSWER_LIMIT).read_to_string(&mut text).with_context(|| format!("{}: the answer broke off", self.base))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not the answer of a twinhead server", self.base))
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let response = self.send(self.request("GET", path).timeout(REQUEST_TIMEOUT), None)?;
        self.json(response)
    }

    fn post<T: DeserializeOwned>(&self, path: &str, content_type: &str, body: &[u8]) -> Result<T> {
        let response = self.send(self.request("POST", path).timeout(REQUEST_TIMEOUT), Some((content_type, body)))?;
        self.json(response)
    }

    /// The server's version and folders; an error when it speaks another API version.
    pub fn info(&self) -> Result<ServerInfo> {
        let info: ServerInfo = self.get("/version")?;
        if info.api != api::VERSION {
            bail!("{}: speaks API version {}, this twinhead {}", self.base, info.api, api::VERSION);
        }
        Ok(info)
    }

    pub fn runs(&self) -> Result<Vec<RunSummary>> {
        self.get("/runs")
    }

    pub fn devices(&self) -> Result<Vec<Device>> {
        self.get("/devices")
    }

    /// The run's configuration (its config.toml).
    pub fn config(&self, run: &str) -> Result<TrainConfig> {
        let response = self.send(self.request("GET", &format!("/runs/{run}/files/config.toml")).timeout(REQUEST_TIMEOUT), None)?;
        let mut text = String::new();
        response.into_reader().take(ANSWER_LIMIT).read_to_string(&mut text)?;
        TrainConfig::from_toml(&text, &[]).with_context(|| format!("{}: {run}'s config.toml", self.base))
    }

    /// Starts a run of `config` on the server (on `devices`, e.g. `cuda:0`, or its default); returns its name.
    pub fn start(&self, config: &TrainConfig, devices: Option<&str>) -> Result<String> {
        let path = match devices {
            Some(devices) => format!("/runs?devices={devices}"),
            None => "/runs".to_string(),
        };
        let started: Started = self.post(&path, "application/toml", config.to_toml()?.as_bytes())?;
        Ok(started.name)
    }

    /// Continues a stopped or interrupted run on the server.
    pub fn resume(&self, run: &str, devices: Option<&str>) -> Result<()> {
        let path = match devices {
            Some(devices) => format!("/runs/{run}/continue?devices={devices}"),
            None => format!("/runs/{run}/continue"),
        };
        self.send(self.request("POST", &path).timeout(REQUEST_TIMEOUT), Some(("application/json", b"")))?;
        Ok(())
    }

    /// Sends a control under `id`; the same id sent again applies nothing.
    pub fn control(&self, run: &str, id: &str, control: &Control) -> Result<ControlAnswer> {
        let body = serde_json::to_vec(&ControlRequest { id: id.to_string(), control: control.clone() })?;
        self.post(&format!("/runs/{run}/control"), "application/json", &body)
    }

    /// `data check` of dataset folders on the server.
    pub fn check(&self, request: &api::CheckRequest) -> Result<crate::data::check::CheckReport> {
        self.post("/check", "application/json", &serde_json::to_vec(request)?)
    }

    /// The prediction of `run`'s `kind` checkpoint for an image file's bytes, computed on the server.
    pub fn predict(&self, run: &str, kind: &CheckpointKind, image: &[u8]) -> Result<UploadPrediction> {
        self.post(&format!("/runs/{run}/predict?checkpoint={}", kind.name()), "application/octet-stream", image)
    }

    /// The sampled validation images of `run` with their truth and the
    /// `kind` checkpoint's predictions, computed on the server (Inspect).
    pub fn inspect(&self, run: &str, kind: &CheckpointKind) -> Result<crate::inspection::Samples> {
        let response = self.send(self.request("GET", &format!("/runs/{run}/inspect?checkpoint={}", kind.name())).timeout(Duration::from_secs(600)), None)?;
        self.json(response)
    }

    /// `run`'s `kind` checkpoint scored on its full validation splits by the
    /// server, where the datasets are (Inspect's metrics view). `progress`
    /// hears each batch; `Break` hangs up, which stops the server's scoring.
    pub fn validate(&self, run: &str, kind: &CheckpointKind, progress: &mut dyn FnMut(usize, usize) -> ControlFlow<()>) -> Result<FullValidation> {
        let path = format!("/runs/{run}/validate?checkpoint={}", kind.name());
        let response = self.send(self.request("POST", &path), Some(("application/json", b"")))?;
        let mut reader = BufReader::new(response.into_reader().take(ANSWER_LIMIT));
        let mut line = Vec::new();
        loop {
            line.clear();
            reader.read_until(b'\n', &mut line).with_context(|| format!("{}: the answer broke off", self.base))?;
            if line.last() != Some(&b'\n') {
                bail!("{}: the answer broke off before the scores", self.base);
            }
            let read: api::ValidateLine = serde_json::from_slice(&line).with_context(|| format!("{}: not the answer of a twinhead server", self.base))?;
            match read {
                api::ValidateLine::Progress { done, total } => {
                    if progress(done, total).is_break() {
                        bail!("cancelled");
                    }
                }
                api::ValidateLine::Scores(full) => {
                    full.check_received().with_context(|| format!("{}: scores that do not hold together", self.base))?;
                    return Ok(*full);
                }
                api::ValidateLine::Error(error) => bail!("{}: {error}", self.base),
            }
        }
    }

    pub fn files(&self, run: &str) -> Result<Vec<RunFile>> {
        self.get(&format!("/runs/{run}/files"))
    }

    /// Streams the run's log records from record `from`.
    pub fn events(&self, run: &str, from: usize, follow: bool) -> Result<EventStream> {
        let response = self.send(self.request("GET", &format!("/runs/{run}/events?from={from}&follow={follow}")), None)?;
        let log = response.header(api::LOG_HEADER).unwrap_or("none").to_string();
        Ok(EventStream { log, reader: Box::new(BufReader::new(response.into_reader())) })
    }

    /// Copies run `run`'s folder (or its files under `only`, e.g. `timeline/`)
    /// into `into`, made or completed where a file is missing or of another
    /// size; `progress(done, total)` after each file. Each file is written
    /// through a temporary name. Returns the files copied.
    pub fn pull(&self, run: &str, into: &Path, only: Option<&str>, progress: &dyn Fn(usize, usize)) -> Result<usize> {
        let mut files = self.files(run)?;
        if let Some(prefix) = only {
            files.retain(|f| f.path.starts_with(prefix));
        }
        let mut copied = 0;
        for (done, file) in files.iter().enumerate() {
            let relative = Path::new(&file.path);
            if relative.is_absolute() || relative.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
                bail!("{}: the server listed a file outside the run folder: {}", self.base, file.path);
            }
            let target = into.join(relative);
            if std::fs::metadata(&target).is_ok_and(|m| m.len() == file.bytes) && file.path != crate::train::run_dir::METRICS_FILE {
                progress(done + 1, files.len());
                continue;
            }
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).with_context(|| format!("{}: cannot create", parent.display()))?;
            }
            let response = self.send(self.request("GET", &format!("/runs/{run}/files/{}", file.path)), None)?;
            let partial = target.with_extension("part");
            let mut out = std::fs::File::create(&partial).with_context(|| format!("{}: cannot write", partial.display()))?;
            let written = std::io::copy(&mut response.into_reader().take(file.bytes + 1), &mut out)?;
            out.flush()?;
            drop(out);
            if written != file.bytes && file.path != crate::train::run_dir::METRICS_FILE {
                let _ = std::fs::remove_file(&partial);
                bail!("{}: {run}/{}: {written} bytes arrived of {}", self.base, file.path, file.bytes);
            }
            std::fs::rename(&partial, &target).with_context(|| format!("{}: cannot move into place", target.display()))?;
            copied += 1;
            progress(done + 1, files.len());
        }
        Ok(copied)
    }
}

/// A run's log records as the server streams them.
pub struct EventStream {
    /// Which log they come from (changes when a resumed run writes it anew).
    pub log: String,
    reader: Box<dyn BufRead + Send>,
}

/// One line of an [`EventStream`].
#[derive(Debug, PartialEq)]
pub enum StreamLine {
    /// A record: its event, or `None` for a line that is no event this build knows.
    Record(Option<Event>),
    /// The server's sign of life on a quiet stream.
    Heartbeat,
}

impl EventStream {
    /// The next line; `None` when the stream ended.
    pub fn next_line(&mut self) -> Result<Option<StreamLine>> {
        let mut line = Vec::new();
        let read = (&mut self.reader).take(crate::train::log_tail::MAX_LINE as u64 + 2).read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(None);
        }
        if line.last() != Some(&b'\n') {
            // Cut off mid-line: the connection dropped. The record is read again on reconnecting.
            return Ok(None);
        }
        let text = &line[..line.len() - 1];
        if text.iter().all(u8::is_ascii_whitespace) {
            return Ok(Some(StreamLine::Heartbeat));
        }
        Ok(Some(StreamLine::Record(serde_json::from_slice(text).ok())))
    }
}

/// What following a run found.
#[derive(Debug, PartialEq)]
pub enum Followed {
    /// The run's log was written anew: what was received of the old one no longer holds.
    Reset,
    /// The next record (its event, if this build knows it).
    Record(Option<Event>),
}

/// Follows one run's log on a server, resuming after a dropped connection
/// from the record after the last one received.
pub struct Follow {
    client: Arc<Client>,
    run: String,
    /// The log followed, and how many of its records were received.
    log: Option<String>,
    pub received: usize,
}

impl Follow {
    pub fn new(client: Arc<Client>, run: &str) -> Self {
        Self { client, run: run.to_string(), log: None, received: 0 }
    }

    /// Connects, and hands `on` every record from the last one received on,
    /// until the stream ends (the run finished, the log was replaced, the
    /// connection dropped) or `on` says stop. Call it again to go on.
    pub fn pump(&mut self, follow: bool, on: &mut dyn FnMut(Followed) -> bool) -> Result<()> {
        let mut stream = self.client.events(&self.run, self.received, follow)?;
        // Before its first record a run may have no log yet: any log is its log then.
        if self.received > 0 && self.log.as_ref().is_some_and(|log| *log != stream.log) {
            // A new log: start it from its first record.
            self.received = 0;
            self.log = Some(stream.log.clone());
            if !on(Followed::Reset) {
                return Ok(());
            }
            stream = self.client.events(&self.run, 0, follow)?;
            if stream.log != *self.log.as_ref().expect("set") {
                return Ok(()); // replaced again meanwhile: the next pump starts over
            }
        }
        self.log = Some(stream.log.clone());
        while let Some(line) = stream.next_line()? {
            if let StreamLine::Record(event) = line {
                self.received += 1;
                if !on(Followed::Record(event)) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}
