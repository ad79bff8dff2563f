//! `twinhead serve`: a headless server that owns a runs folder and a device
//! queue (the workbench's [`Session`], the same code) and speaks the HTTP API
//! of [`super::api`] to the workbench and to scripts.
//!
//! It listens on loopback unless told otherwise; any other address needs a
//! token file and TLS (or an explicit `--allow-plain-http`). Every request
//! then carries the token; paths in requests lie under the folders it was
//! given; bodies are bounded in size and time; connections are bounded in
//! number and must send their headers within seconds. A client that goes
//! away, or never speaks, costs a task and nothing else: runs train on their
//! own threads and never wait for a client.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::api::{self, ControlAnswer, ControlRequest, Device, ErrorBody, RunFile, RunSummary, ServerInfo, Started};
use super::guard::{Outside, Roots, Token};
use super::predictions;
use crate::backend::device::DeviceSpec;
use crate::session::Session;
use crate::train::checkpoint::CheckpointKind;
use crate::train::config::TrainConfig;
use crate::train::control_file;
use crate::train::log_tail::LogTail;
use crate::train::parallel::Placement;

/// The largest request body: a configuration, a control, a check.
const BODY_LIMIT: usize = 1 << 20;
/// The largest image uploaded for a prediction.
const IMAGE_LIMIT: usize = 64 << 20;
/// How long a client may take to send its request's headers, or its body.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Connections served at once; more wait in the kernel's queue.
const MAX_CONNECTIONS: usize = 256;
/// How often a followed log is looked at, and a silent stream gets a heartbeat (an empty line).
const FOLLOW_POLL: Duration = Duration::from_millis(200);
const HEARTBEAT: Duration = Duration::from_secs(10);
/// How long a follower of a run without a log yet waits for it before the answer starts.
const NO_LOG_WAIT: Duration = Duration::from_secs(20);

/// How `serve` was asked to run.
pub struct Options {
    pub listen: SocketAddr,
    pub runs: PathBuf,
    pub token: Option<Token>,
    /// The folders dataset and weight paths must lie under.
    pub datasets: Vec<PathBuf>,
    /// Certificate chain and private key (PEM), for HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub allow_plain_http: bool,
    /// Where runs train unless a request names devices.
    pub devices: Vec<DeviceSpec>,
}

impl Options {
    /// Refuses what would expose runs or the token to a network.
    pub fn check(&self) -> Result<()> {
        if self.listen.ip().is_loopback() {
            return Ok(());
        }
        if self.token.is_none() {
            bail!(
                "--listen {}: a server reachable from other machines needs --token-file (or listen on 127.0.0.1 and use an SSH tunnel: docs/remote.md)",
                self.listen
            );
        }
        if self.tls.is_none() && !self.allow_plain_http {
            bail!(
                "--listen {}: the token would cross the network in clear: give --tls-cert and --tls-key, or --allow-plain-http on a network you trust",
                self.listen
            );
        }
        Ok(())
    }
}

/// What every request handler shares.
struct Server {
    session: Mutex<Session>,
    token: Option<Token>,
    /// Dataset folders, and the runs folder (`model.init` names a checkpoint in it).
    datasets: Roots,
    runs: Roots,
    devices: Vec<DeviceSpec>,
    predictors: predictions::Cache,
    info: ServerInfo,
}

impl Server {
    fn session(&self) -> MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The folder of run `name`, if the server knows it.
    fn run_dir(&self, name: &str) -> Result<PathBuf, ApiError> {
        if !api::valid_run_name(name) {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("{name:?} is not a run name")));
        }
        self.session().record(name).map(|r| r.dir.clone()).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no run {name}")))
    }
}

/// An error answered as `{"error": "..."}` with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    fn bad(error: anyhow::Error) -> Self {
        Self::new(StatusCode::BAD_REQUEST, format!("{error:#}"))
    }
}

impl From<Outside> for ApiError {
    fn from(outside: Outside) -> Self {
        Self::new(StatusCode::FORBIDDEN, outside.0)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.message })).into_response()
    }
}

type Answer<T> = Result<T, ApiError>;

/// Serves until the process is stopped.
pub fn serve(options: Options) -> Result<()> {
    options.check()?;
    std::fs::create_dir_all(&options.runs).with_context(|| format!("--runs {}: cannot create", options.runs.display()))?;
    let datasets = if options.datasets.is_empty() { vec![PathBuf::from(".")] } else { options.datasets.clone() };
    let (session, notices) = Session::open(&options.runs, || {});
    for notice in notices {
        tracing::warn!("{}", notice.text);
    }
    let server = Arc::new(Server {
        session: Mutex::new(session),
        token: options.token,
        datasets: Roots::new(&datasets)?,
        runs: Roots::new(std::slice::from_ref(&options.runs))?,
        devices: options.devices.clone(),
        predictors: predictions::Cache::default(),
        info: ServerInfo {
            api: api::VERSION,
            twinhead: env!("CARGO_PKG_VERSION").to_string(),
            runs: options.runs.clone(),
            datasets: datasets.clone(),
        },
    });
    // The queue starts runs, and folds their events, whether or not a client asks.
    let poller = Arc::downgrade(&server);
    std::thread::Builder::new().name("session".into()).spawn(move || {
        while let Some(server) = poller.upgrade() {
            for notice in server.session().poll() {
                tracing::info!("{}", notice.text);
            }
            drop(server);
            std::thread::sleep(Duration::from_millis(200));
        }
    })?;
    let tls = options.tls.as_ref().map(|(cert, key)| super::tls::acceptor(cert, key)).transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("--listen {}: cannot listen there", options.listen))?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        eprintln!("serving {} on {scheme}://{}{}", options.runs.display(), listener.local_addr()?, api::PREFIX);
        super::listen::accept(listener, tls, router(server), MAX_CONNECTIONS, REQUEST_TIMEOUT).await
    })
}

fn router(server: Arc<Server>) -> Router {
    let json_limit = axum::extract::DefaultBodyLimit::max(BODY_LIMIT);
    Router::new()
        .route("/api/v1/version", get(version))
        .route("/api/v1/devices", get(devices))
        .route("/api/v1/runs", get(list_runs).post(start_run).layer(json_limit))
        .route("/api/v1/runs/{name}/events", get(events))
        .route("/api/v1/runs/{name}/control", post(control).layer(json_limit))
        .route("/api/v1/runs/{name}/continue", post(continue_run))
        .route("/api/v1/runs/{name}/files", get(list_files))
        .route("/api/v1/runs/{name}/files/{*path}", get(file))
        .route("/api/v1/runs/{name}/predict", post(predict).layer(axum::extract::DefaultBodyLimit::max(IMAGE_LIMIT)))
        .route("/api/v1/runs/{name}/inspect", get(inspect))
        .route("/api/v1/runs/{name}/validate", post(validate))
        .route("/api/v1/check", post(check).layer(json_limit))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint (see docs/remote.md)") })
        .layer(middleware::from_fn_with_state(server.clone(), authenticate))
        .with_state(server)
}

/// Every request carries the token, when the server has one.
async fn authenticate(State(server): State<Arc<Server>>, request: Request, next: Next) -> Response {
    if let Some(token) = &server.token {
        let given = request.headers().get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
        if !token.admits(given) {
            let mut response = ApiError::new(StatusCode::UNAUTHORIZED, "this server needs `Authorization: Bearer TOKEN`").into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    next.run(request).await
}

/// Reads a request body within [`REQUEST_TIMEOUT`].
async fn read_body(body: Body, limit: usize) -> Answer<Bytes> {
    match tokio::time::timeout(REQUEST_TIMEOUT, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("a request body of at most {limit} bytes"))),
        Err(_) => Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, "the request body did not arrive in time")),
    }
}

/// Work that reads files or computes, off the server's tasks.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Answer<T> + Send + 'static) -> Answer<T> {
    tokio::task::spawn_blocking(work).await.map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

async fn version(State(server): State<Arc<Server>>) -> Json<ServerInfo> {
    Json(server.info.clone())
}

async fn devices() -> Answer<Json<Vec<Device>>> {
    let found = blocking(|| Ok(DeviceSpec::available())).await?;
    Ok(Json(found.into_iter().map(|(spec, description)| Device { name: spec.to_string(), description }).collect()))
}

async fn list_runs(State(server): State<Arc<Server>>) -> Json<Vec<RunSummary>> {
    Json(server.session().records.iter().map(RunSummary::of).collect())
}

#[derive(Deserialize)]
struct DevicesQuery {
    /// `cuda:0` or a list `cuda:0,cuda:1`.
    devices: Option<String>,
}

impl DevicesQuery {
    fn resolve(&self, default: &[DeviceSpec]) -> Answer<Vec<DeviceSpec>> {
        match &self.devices {
            Some(list) => Placement::parse_devices(list).map_err(ApiError::bad),
            None => Ok(default.to_vec()),
        }
    }
}

/// `POST /api/v1/runs`: a run from a configuration (TOML as in a run's
/// config.toml, or the same as JSON), queued on the server's devices.
async fn start_run(State(server): State<Arc<Server>>, Query(query): Query<DevicesQuery>, body: Body) -> Answer<(StatusCode, Json<Started>)> {
    let devices = query.resolve(&server.devices)?;
    let bytes = read_body(body, BODY_LIMIT).await?;
    let text = std::str::from_utf8(&bytes).map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "the configuration is not UTF-8 text"))?;
    let mut config = TrainConfig::parse(text).map_err(ApiError::bad)?;
    admit_paths(&server, &mut config)?;
    let name = server.session().enqueue(config, &devices).map_err(ApiError::bad)?;
    Ok((StatusCode::CREATED, Json(Started { name })))
}

/// Every path of a configuration resolved, if it lies under the server's folders.
fn admit_paths(server: &Server, config: &mut TrainConfig) -> Answer<()> {
    let data = &mut config.data;
    for (key, path) in [("data.voc", &mut data.voc), ("data.ade", &mut data.ade), ("data.cls", &mut data.cls), ("data.seg_classes", &mut data.seg_classes)] {
        if let Some(path) = path {
            *path = server.datasets.admit(key, path)?;
        }
    }
    if let Some(synthetic) = &mut data.synthetic {
        if let Some(dir) = &mut synthetic.dir {
            *dir = server.datasets.admit("data.synthetic.dir", dir)?;
        }
    }
    // Where a synthetic set would be generated, when the folders imply it.
    if let Some((dir, _)) = config.data.synthetic_set().map_err(ApiError::bad)? {
        server.datasets.admit("data.synthetic", &dir)?;
    }
    if let Some(weights) = &mut config.model.pretrained {
        *weights = server.datasets.admit("model.pretrained", weights)?;
    }
    if let Some(init) = &mut config.model.init {
        *init = server.runs.admit("model.init", init)?;
    }
    Ok(())
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default)]
    from: usize,
    #[serde(default)]
    follow: bool,
}

/// `GET /api/v1/runs/{name}/events?from=N&follow=true`: the log's records from
/// record N, as the file holds them, one per line; with `follow`, and while
/// the run is live, the records appended later too, and an empty line when
/// nothing was appended for a while. The stream ends when the log is replaced
/// (a resumed run): the `x-twinhead-log` header then changes.
async fn events(State(server): State<Arc<Server>>, UrlPath(name): UrlPath<String>, Query(query): Query<EventsQuery>) -> Answer<Response> {
    let dir = server.run_dir(&name)?;
    let (mut tail, first) = blocking({
        let dir = dir.clone();
        let follow = query.follow;
        move || {
            let mut tail = LogTail::new(&dir.join(crate::train::run_dir::METRICS_FILE));
            // A run just queued has no log yet: a follower waits a little for it, so its records come with the log's identity.
            let waited = std::time::Instant::now();
            while follow && tail.identity().is_none() && waited.elapsed() < NO_LOG_WAIT {
                let lines = tail.read_lines().map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
                if tail.identity().is_some() {
                    return Ok((tail, lines.lines));
                }
                std::thread::sleep(FOLLOW_POLL);
            }
            let lines = tail.read_lines().map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            Ok((tail, lines.lines))
        }
    })
    .await?;
    let identity = tail.identity().map(|i| i.token()).unwrap_or_else(|| "none".into());
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(64);
    let skip = query.from;
    let live = move |server: &Server| server.session().record(&name).is_some_and(|r| r.status.is_live() || r.status == crate::session::run_record::RunStatus::Queued);
    let server = server.clone();
    std::thread::Builder::new()
        .name("events".into())
        .spawn(move || {
            let mut sent = 0usize;
            let mut send = |lines: Vec<Option<Vec<u8>>>| -> bool {
                for line in lines {
                    sent += 1;
                    if sent <= skip {
                        continue;
                    }
                    // A line too long to keep is sent as `{}`: it keeps its number, and parses as no event.
                    let mut bytes = line.unwrap_or_else(|| b"{}".to_vec());
                    bytes.push(b'\n');
                    if sender.blocking_send(Bytes::from(bytes)).is_err() {
                        return false;
                    }
                }
                true
            };
            if !send(first) || !query.follow {
                return;
            }
            let mut quiet = std::time::Instant::now();
            loop {
                std::thread::sleep(FOLLOW_POLL);
                let was_live = live(&server);
                let Ok(read) = tail.read_lines() else { return };
                if read.replaced {
                    return; // the client reconnects and sees the new log's identity
                }
                let appended = !read.lines.is_empty();
                if appended {
                    quiet = std::time::Instant::now();
                    if !send(read.lines) {
                        return;
                    }
                } else if quiet.elapsed() >= HEARTBEAT {
                    quiet = std::time::Instant::now();
                    if sender.blocking_send(Bytes::from_static(b"\n")).is_err() {
                        return;
                    }
                }
                if !was_live && !appended {
                    return; // the run ended and its last records are sent
                }
            }
        })
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut response = ndjson(receiver);
    response.headers_mut().insert(api::LOG_HEADER, HeaderValue::from_str(&identity).unwrap_or(HeaderValue::from_static("none")));
    Ok(response)
}

/// `POST /api/v1/runs/{name}/control`: a control for a live run, through its
/// control file (the trainer logs `control_received` with the id when it takes it).
async fn control(State(server): State<Arc<Server>>, UrlPath(name): UrlPath<String>, body: Body) -> Answer<(StatusCode, Json<ControlAnswer>)> {
    let dir = server.run_dir(&name)?;
    let bytes = read_body(body, BODY_LIMIT).await?;
    let request: ControlRequest = serde_json::from_slice(&bytes).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("not a control: {e}")))?;
    if !control_file::valid_id(&request.id) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "id: 1-64 letters, digits, '-' or '_'"));
    }
    if let crate::train::Control::SetStrategy(strategy) = &request.control {
        let shape = server.session().record(&name).map(|r| r.config.run_shape());
        if let Some(shape) = shape {
            strategy.validate(shape).map_err(ApiError::bad)?;
        }
    }
    if !server.session().is_steerable(&name) {
        return Err(ApiError::new(StatusCode::CONFLICT, format!("{name} is not training")));
    }
    let id = request.id.clone();
    let fresh = blocking(move || control_file::send(&dir, &request.id, &request.control).map_err(ApiError::bad)).await?;
    let outcome = if fresh { "sent" } else { "duplicate" };
    Ok((StatusCode::ACCEPTED, Json(ControlAnswer { id, outcome: outcome.into() })))
}

/// `POST /api/v1/runs/{name}/continue`: a stopped or interrupted run continues from its last checkpoint.
async fn continue_run(State(server): State<Arc<Server>>, UrlPath(name): UrlPath<String>, Query(query): Query<DevicesQuery>) -> Answer<StatusCode> {
    server.run_dir(&name)?;
    let devices = query.resolve(&server.devices)?;
    server.session().enqueue_resume(&name, &devices).map_err(|e| ApiError::new(StatusCode::CONFLICT, format!("{e:#}")))?;
    Ok(StatusCode::ACCEPTED)
}

/// `GET /api/v1/runs/{name}/files`: every file of the run folder (what `runs pull` copies).
async fn list_files(State(server): State<Arc<Server>>, UrlPath(name): UrlPath<String>) -> Answer<Json<Vec<RunFile>>> {
    let dir = server.run_dir(&name)?;
    blocking(move || Ok(Json(run_files(&dir)))).await
}

/// The files under `dir`, links left out (they could point anywhere).
pub fn run_files(dir: &Path) -> Vec<RunFile> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let Ok(kind) = entry.file_type() else { continue };
            let path = entry.path();
            if kind.is_dir() {
                folders.push(path);
            } else if kind.is_file() {
                let Ok(relative) = path.strip_prefix(dir) else { continue };
                let Some(text) = relative.to_str() else { continue };
                files.push(RunFile { path: text.replace(std::path::MAIN_SEPARATOR, "/"), bytes: entry.metadata().map_or(0, |m| m.len()) });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// `GET /api/v1/runs/{name}/files/{path}`: one file of the run folder.
async fn file(State(server): State<Arc<Server>>, UrlPath((name, path)): UrlPath<(String, String)>) -> Answer<Response> {
    let dir = server.run_dir(&name)?;
    let inside = Path::new(&path);
    if path.is_empty() || inside.is_absolute() || inside.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, format!("{path}: a path inside the run folder")));
    }
    let full = server.runs.admit("path", &dir.join(inside))?;
    let file = tokio::fs::File::open(&full).await.map_err(|_| ApiError::new(StatusCode::NOT_FOUND, format!("{name}: no file {path}")))?;
    let length = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let stream = file_chunks(file);
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    response.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Ok(response)
}

/// A file's bytes as a stream of chunks.
fn file_chunks(file: tokio::fs::File) -> impl futures::Stream<Item = std::io::Result<Bytes>> {
    futures::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buffer = vec![0u8; 256 << 10];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(Bytes::from(buffer)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    })
}

#[derive(Deserialize)]
struct CheckpointQuery {
    #[serde(default)]
    checkpoint: Option<String>,
}

impl CheckpointQuery {
    fn kind(&self) -> Answer<CheckpointKind> {
        CheckpointKind::parse(self.checkpoint.as_deref().unwrap_or("last")).map_err(ApiError::bad)
    }
}

/// `POST /api/v1/runs/{name}/predict?checkpoint=last`: the prediction of an
/// uploaded image (the body: JPEG, PNG…), computed here.
async fn predict(State(server): State<Arc<Server>>, UrlPath(name): UrlPath<String>, Query(query): Query<CheckpointQuery>, body: Body) -> Answer<Response> {
    let dir = server.run_dir(&name)?;
    let kind = query.kind()?;
    let bytes = read_body(body, IMAGE_LIMIT).await?;
    let device = server.devices[0];
    let answer = blocking(move || predictions::predict_upload(&server.predictors, &dir, &kind, device, &bytes).map_err(ApiError::bad)).await?;
    Ok(Json(answer).into_response())
}

/// `GET /api/v1/runs/{name}/inspect?checkpoint=last`: the first validation
/// images of each task with their ground truth and the checkpoint's
/// predictions, computed here (what the workbench's Inspect shows).
async fn inspect(State(server): State<Arc<Server>>, UrlPath(name): UrlPath<String>, Query(query): Query<CheckpointQuery>) -> Answer<Response> {
    let dir = server.run_dir(&name)?;
    let kind = query.kind()?;
    let config = server.session().record(&name).map(|r| r.config.clone()).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no run {name}")))?;
    let device = server.devices[0];
    let samples = blocking(move || {
        crate::inspection::sample(&server.predictors, &name, (&dir, kind, device), &config, &crate::inspection::Unwatched).map_err(ApiError::bad)
    })
    .await?;
    Ok(Json(samples).into_response())
}

/// `POST /api/v1/runs/{name}/validate?checkpoint=last`: the checkpoint scored
/// on the run's full validation splits here, where its datasets are (Inspect's
/// metrics view). The answer streams [`api::ValidateLine`]s; a client that
/// goes away stops the scoring at the next batch.
async fn validate(State(server): State<Arc<Server>>, UrlPath(name): UrlPath<String>, Query(query): Query<CheckpointQuery>) -> Answer<Response> {
    let dir = server.run_dir(&name)?;
    let kind = query.kind()?;
    let config = server.session().record(&name).map(|r| r.config.clone()).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no run {name}")))?;
    let device = server.devices[0];
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(16);
    let line = |line: &api::ValidateLine| Bytes::from(serde_json::to_string(line).unwrap_or_default() + "\n");
    tokio::task::spawn_blocking(move || {
        // A first line at once: loading and listing may take longer than a client waits in silence.
        if sender.blocking_send(line(&api::ValidateLine::Progress { done: 0, total: 0 })).is_err() {
            return;
        }
        let scored = server.predictors.load(&dir, &kind, device).and_then(|predictor| {
            predictor.validate_full(&config, &mut |done, total| match sender.blocking_send(line(&api::ValidateLine::Progress { done, total })) {
                Ok(()) => std::ops::ControlFlow::Continue(()),
                Err(_) => std::ops::ControlFlow::Break(()),
            })
        });
        let last = match scored {
            Ok(full) => api::ValidateLine::Scores(Box::new(full)),
            Err(error) => api::ValidateLine::Error(format!("{error:#}")),
        };
        let _ = sender.blocking_send(line(&last));
    });
    Ok(ndjson(receiver))
}

/// A response streaming what `receiver` gets, as JSON lines.
fn ndjson(receiver: tokio::sync::mpsc::Receiver<Bytes>) -> Response {
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|bytes| (Ok::<_, std::convert::Infallible>(bytes), receiver))
    });
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    response
}

/// `POST /api/v1/check`: `data check` of dataset folders on the server.
async fn check(State(server): State<Arc<Server>>, body: Body) -> Answer<Response> {
    let bytes = read_body(body, BODY_LIMIT).await?;
    let request: api::CheckRequest = serde_json::from_slice(&bytes).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("not a check request: {e}")))?;
    let admit = |key: &str, path: &Option<PathBuf>| path.as_ref().map(|p| server.datasets.admit(key, p)).transpose();
    let (voc, ade, cls) = (admit("voc", &request.voc)?, admit("ade", &request.ade)?, admit("cls", &request.cls)?);
    if voc.is_none() && ade.is_none() && cls.is_none() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "give voc, ade and/or cls"));
    }
    let report = blocking(move || {
        let request = crate::data::check::CheckRequest {
            det: voc.map(|dir| crate::data::format::DetSpec::new(&dir, None)),
            seg: ade.map(|dir| crate::data::format::SegSpec::new(&dir, None, Default::default())),
            cls: cls.map(|dir| (dir, None)),
            det_split: request.voc_split,
            seg_split: request.ade_split,
            cls_split: request.cls_split,
            det_classes: None,
        };
        crate::data::check::check(&request, &|| {}).map_err(ApiError::bad)
    })
    .await?;
    Ok(Json(report).into_response())
}

