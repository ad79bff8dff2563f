//! How the nodes of a multi-node run find and watch each other, beside
//! burn-collective. Node 0 listens at the coordinator address; every other
//! node connects, says the protocol, its rank and device count (and, with a
//! shared secret, a proof of it), and gets node 0's configuration back (node
//! 0 holds the run folder), then `go` once all are there. Both ends of each
//! connection then write a heartbeat every second. A connection that closes
//! without `bye`, stays silent for the timeout or sends anything but the
//! protocol's lines ends the run on every node with the node's name:
//! burn-collective's calls have no timeout, and a replica waiting in one for a
//! dead node would wait forever.
//!
//! Anyone on the network can reach the coordinator port. A connection that
//! does not open with the protocol's greeting (junk, a port scanner, a
//! client that says nothing) is dropped with a warning naming its address,
//! and the run goes on; lines are bounded in length, greetings in time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::placement::NodeSpec;
use crate::train::config::TrainConfig;

const BEAT: Duration = Duration::from_secs(1);
/// What a node's greeting starts with: the protocol and its version.
const PROTOCOL: &str = "twinhead-nodes/1";
/// How long a connection may take to greet before it is dropped.
const GREETING_TIME: Duration = Duration::from_secs(5);
/// The longest greeting or heartbeat line read.
const MAX_LINE: u64 = 4096;
/// The longest start message (node 0's configuration).
const MAX_START: u64 = 4 << 20;

/// Called once, on the first failure seen: the message names the node.
pub type OnFailure = Arc<dyn Fn(String) + Send + Sync>;

/// What node 0 hands every node at the start.
#[derive(serde::Serialize, serde::Deserialize)]
struct Start {
    config: TrainConfig,
    resume: bool,
    /// The address node 0 saw the node's connection come from: how the others reach it.
    host: String,
}

/// The joined nodes: node 0's configuration, and the heartbeats that watch the others.
pub struct Rendezvous {
    pub config: TrainConfig,
    pub resume: bool,
    /// This node's address as the others reach it.
    pub host: String,
    pub watch: Watch,
}

/// A watched node's rank and the connection to it.
type Peer = (usize, Arc<Mutex<TcpStream>>);

/// The connections this node watches (node 0: one per other node; the others: node 0's).
pub struct Watch {
    peers: Vec<Peer>,
    ended: Arc<AtomicBool>,
}

impl Watch {
    /// Tells the watched nodes this one fails with `message` (they end the run too).
    pub fn fail(&self, message: &str) {
        if !self.ended.swap(true, Ordering::SeqCst) {
            send_all(&self.peers, &format!("fail {}", message.replace('\n', " ")));
        }
    }
}

/// Writes `line` to every peer (one that is gone is skipped: it is being watched).
fn send_all(peers: &[Peer], line: &str) {
    for (_, stream) in peers {
        let _ = writeln!(stream.lock().unwrap_or_else(|e| e.into_inner()), "{line}");
    }
}

impl Drop for Watch {
    /// A normal end: the others may see this node's connection close.
    fn drop(&mut self) {
        if !self.ended.swap(true, Ordering::SeqCst) {
            send_all(&self.peers, "bye");
        }
    }
}

/// Joins the run's nodes: node 0 passes its configuration and whether it
/// resumes; the others get them. Returns when every node is there.
pub fn join(spec: &NodeSpec, devices: usize, own: Option<(TrainConfig, bool)>, on_failure: OnFailure) -> Result<Rendezvous> {
    match spec.rank {
        0 => lead(spec, devices, own.context("node 0 needs the run's configuration")?, on_failure),
        _ => follow(spec, devices, on_failure),
    }
}

/// One line of at most `limit` bytes from `reader`, without its end; an
/// error for a longer one, a line that is not text, or none.
fn read_line(reader: &mut impl BufRead, limit: u64) -> std::io::Result<String> {
    let mut bytes = Vec::new();
    reader.by_ref().take(limit + 1).read_until(b'\n', &mut bytes)?;
    if bytes.last() != Some(&b'\n') {
        let why = if bytes.len() as u64 > limit { format!("sent a line longer than {limit} bytes") } else { "closed the connection".into() };
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, why));
    }
    bytes.pop();
    String::from_utf8(bytes).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "sent no text"))
}

/// The greeting node `rank` sends, with the proof of the shared secret when there is one.
fn greeting(spec: &NodeSpec, rank: usize, devices: usize) -> String {
    let hello = format!("hello {PROTOCOL} {rank} {devices}");
    match &spec.secret {
        Some(secret) => format!("{hello} {}", proof(secret, &hello)),
        None => hello,
    }
}

/// The secret's keyed hash of `text` (the secret never crosses the network).
fn proof(secret: &[u8], text: &str) -> String {
    blake3::keyed_hash(blake3::hash(secret).as_bytes(), text.as_bytes()).to_hex().to_string()
}

/// A node's greeting read from a new connection: its rank and device count,
/// or why the connection is no node of this run.
fn greeted(spec: &NodeSpec, stream: &TcpStream) -> Result<(usize, usize), String> {
    const NOT_A_GREETING: &str = "sent no twinhead node's greeting";
    stream.set_read_timeout(Some(GREETING_TIME)).map_err(|e| e.to_string())?;
    let said_nothing = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => format!("said nothing for {} s", GREETING_TIME.as_secs()),
        _ => e.to_string(),
    };
    let mut reader = BufReader::new(stream);
    // Junk is told from a greeting by its first bytes, without waiting for a line.
    let first = reader.fill_buf().map_err(said_nothing)?;
    let start = &first[..first.len().min(6)];
    if !b"hello ".starts_with(start) {
        return Err(NOT_A_GREETING.into());
    }
    let line = read_line(&mut reader, MAX_LINE).map_err(said_nothing)?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let (rank, devices, given) = match words.as_slice() {
        ["hello", protocol, rank, devices, rest @ ..] if *protocol == PROTOCOL && rest.len() <= 1 => {
            let number = |w: &str| w.parse::<usize>().map_err(|_| format!("{w:?} is not a number"));
            (number(rank)?, number(devices)?, rest.first().copied())
        }
        ["hello", protocol, ..] if protocol.starts_with("twinhead-nodes/") => return Err(format!("speaks {protocol}, this node {PROTOCOL}")),
        _ => return Err(NOT_A_GREETING.into()),
    };
    if let Some(secret) = &spec.secret {
        let expected = proof(secret, &format!("hello {PROTOCOL} {rank} {devices}"));
        let matches = given.is_some_and(|given| given.len() == expected.len() && bool::from(subtle::ConstantTimeEq::ct_eq(given.as_bytes(), expected.as_bytes())));
        if !matches {
            return Err("does not know the run's secret (--node-secret-file)".into());
        }
    }
    Ok((rank, devices))
}

fn lead(spec: &NodeSpec, devices: usize, (config, resume): (TrainConfig, bool), on_failure: OnFailure) -> Result<Rendezvous> {
    // Room for it checked by `port()`, and free by `Placement::check_ports`.
    let orchestrator = spec.port()? + 1;
    let listener = TcpListener::bind(&spec.coordinator).with_context(|| format!("--coordinator {}: cannot listen there", spec.coordinator))?;
    let deadline = Instant::now() + spec.timeout;
    // Each connection greets on a thread of its own: a silent one holds up nobody.
    let (greetings, arrivals) = crossbeam_channel::unbounded();
    let accepting = listener.try_clone()?;
    let checking = spec.clone();
    std::thread::Builder::new().name("rendezvous".into()).spawn(move || {
        for stream in accepting.incoming() {
            let Ok(stream) = stream else { continue };
            let (greetings, spec) = (greetings.clone(), checking.clone());
            let _ = std::thread::Builder::new().name("greeting".into()).spawn(move || {
                let from = stream.peer_addr().map_or_else(|_| "?".into(), |a| a.ip().to_string());
                let greeting = greeted(&spec, &stream);
                let _ = greetings.send((stream, from, greeting));
            });
        }
    })?;
    let mut joined: Vec<(usize, TcpStream, String)> = Vec::new();
    while joined.len() + 1 < spec.count {
        let wait = deadline.saturating_duration_since(Instant::now());
        match arrivals.recv_timeout(wait) {
            Ok((stream, from, Err(why))) => {
                tracing::warn!("{}: a connection from {from} {why}; dropped", spec.coordinator);
                drop(stream);
            }
            Ok((stream, from, Ok((rank, their_devices)))) => {
                stream.set_read_timeout(Some(spec.timeout))?;
                let refusal = if rank == 0 || rank >= spec.count {
                    Some(format!("node rank {rank} is not one of 1..{}", spec.count - 1))
                } else if joined.iter().any(|(r, ..)| *r == rank) {
                    Some(format!("node {rank} joined twice"))
                } else if their_devices != devices {
                    Some(format!("node {rank} has {their_devices} device(s), node 0 has {devices}: every node trains on as many"))
                } else {
                    None
                };
                if let Some(reason) = refusal {
                    let _ = writeln!(&stream, "refused {reason}");
                    bail!("{reason} (from {from})");
                }
                joined.push((rank, stream, from));
            }
            Err(_) => {
                let missing: Vec<String> = (1..spec.count).filter(|r| !joined.iter().any(|(j, ..)| j == r)).map(|r| r.to_string()).collect();
                bail!("node(s) {} did not join {} within {} s", missing.join(", "), spec.coordinator, spec.timeout.as_secs());
            }
        }
    }
    start_orchestrator(spec.host(), orchestrator, deadline)?;
    let mut peers = Vec::new();
    for (rank, stream, host) in joined {
        let start = serde_json::to_string(&Start { config: config.clone(), resume, host })?;
        writeln!(&stream, "go {start}")?;
        peers.push((rank, stream));
    }
    let watch = watch(peers, spec.timeout, on_failure)?;
    Ok(Rendezvous { config, resume, host: spec.host().to_string(), watch })
}

fn follow(spec: &NodeSpec, devices: usize, on_failure: OnFailure) -> Result<Rendezvous> {
    let deadline = Instant::now() + spec.timeout;
    let unreachable = || format!("node 0 at {} cannot be reached within {} s", spec.coordinator, spec.timeout.as_secs());
    let stream = connect_until(&spec.coordinator, deadline).with_context(unreachable)?;
    stream.set_read_timeout(Some(spec.timeout))?;
    writeln!(&stream, "{}", greeting(spec, spec.rank, devices))?;
    let line = read_line(&mut BufReader::new(stream.try_clone()?), MAX_START).with_context(|| format!("node 0 at {} did not answer", spec.coordinator))?;
    let start: Start = match line.split_once(' ') {
        Some(("go", start)) => serde_json::from_str(start).context("node 0's start message")?,
        Some(("refused", reason)) => bail!("node 0 refused node {}: {reason}", spec.rank),
        _ => bail!("node 0 at {} closed the connection before the start", spec.coordinator),
    };
    let watch = watch(vec![(0, stream)], spec.timeout, on_failure)?;
    Ok(Rendezvous { config: start.config, resume: start.resume, host: start.host, watch })
}

/// burn-collective's global orchestrator on node 0, on a runtime of its own;
/// returns once it accepts connections.
fn start_orchestrator(host: &str, port: u16, deadline: Instant) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    std::thread::Builder::new().name("orchestrator".into()).spawn(move || runtime.block_on(burn_collective::start_global_orchestrator(port)))?;
    connect_until(&format!("{host}:{port}"), deadline).with_context(|| format!("burn-collective's orchestrator did not start on port {port}"))?;
    Ok(())
}

/// A connection to `address` (`HOST:PORT`), tried again until `deadline`
/// while nothing listens there yet.
fn connect_until(address: &str, deadline: Instant) -> std::io::Result<TcpStream> {
    loop {
        let attempt = match address.to_socket_addrs()?.next() {
            Some(resolved) => TcpStream::connect_timeout(&resolved, Duration::from_millis(500)),
            None => Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("{address}: no such address"))),
        };
        match attempt {
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            done => return done,
        }
    }
}

/// Heartbeats to and from each of `peers`, on threads of their own. The
/// first failure seen is passed on to every watched node, then to `on_failure`.
fn watch(peers: Vec<(usize, TcpStream)>, timeout: Duration, on_failure: OnFailure) -> Result<Watch> {
    let ended = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for (rank, stream) in peers {
        stream.set_read_timeout(Some(timeout))?;
        let address = stream.peer_addr().map_or_else(|_| "?".into(), |a| a.to_string());
        readers.push((rank, address, BufReader::new(stream.try_clone()?)));
        writers.push((rank, Arc::new(Mutex::new(stream))));
    }
    let watch = Watch { peers: writers, ended: ended.clone() };
    let relay: Vec<_> = watch.peers.clone();
    let fail: Arc<dyn Fn(String) + Send + Sync> = Arc::new(move |message: String| {
        if !ended.swap(true, Ordering::SeqCst) {
            send_all(&relay, &format!("fail {message}"));
            on_failure(message);
        }
    });
    for (rank, address, mut reader) in readers {
        let (fail, ended) = (fail.clone(), watch.ended.clone());
        std::thread::Builder::new().name(format!("node-{rank}-watch")).spawn(move || {
            loop {
                match read_line(&mut reader, MAX_LINE) {
                    Ok(line) if line == "beat" => {}
                    Ok(line) if line == "bye" => return,
                    Ok(line) if line.starts_with("fail ") => return fail(format!("node {rank} ({address}): {}", &line[5..])),
                    Ok(line) => {
                        let shown: String = line.chars().take(80).collect();
                        return fail(format!("node {rank} ({address}) sent what no node sends: {shown:?}"));
                    }
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        return fail(format!("node {rank} ({address}) sent nothing for {} s", timeout.as_secs()));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidData && e.to_string().starts_with("a line longer") => {
                        return fail(format!("node {rank} ({address}) sent {e}"));
                    }
                    Err(_) => break,
                }
            }
            if !ended.load(Ordering::SeqCst) {
                fail(format!("node {rank} ({address}) stopped: its connection closed"));
            }
        })?;
    }
    for (rank, stream) in watch.peers.clone() {
        let ended = watch.ended.clone();
        std::thread::Builder::new().name(format!("node-{rank}-beat")).spawn(move || {
            while !ended.load(Ordering::SeqCst) {
                if writeln!(stream.lock().unwrap_or_else(|e| e.into_inner()), "beat").is_err() {
                    return;
                }
                std::thread::sleep(BEAT);
            }
        })?;
    }
    Ok(watch)
}
