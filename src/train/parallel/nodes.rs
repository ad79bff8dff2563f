//! How the nodes of a multi-node run find and watch each other, beside
//! burn-collective. Node 0 listens at the coordinator address; every other
//! node connects, says its rank and device count, and gets node 0's
//! configuration back (node 0 holds the run folder), then `go` once all are
//! there. Both ends of each connection then write a heartbeat every second.
//! A connection that closes without `bye`, or stays silent for the timeout,
//! ends the run on every node with the node's name: burn-collective's calls
//! have no timeout, and a replica waiting in one for a dead node would wait forever.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::placement::NodeSpec;
use crate::train::config::TrainConfig;

const BEAT: Duration = Duration::from_secs(1);

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

fn lead(spec: &NodeSpec, devices: usize, (config, resume): (TrainConfig, bool), on_failure: OnFailure) -> Result<Rendezvous> {
    let port = spec.port()?;
    let listener = TcpListener::bind(&spec.coordinator).with_context(|| format!("--coordinator {}: cannot listen there", spec.coordinator))?;
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + spec.timeout;
    let mut joined: Vec<(usize, TcpStream, String)> = Vec::new();
    while joined.len() + 1 < spec.count {
        match listener.accept() {
            Ok((stream, from)) => {
                stream.set_nonblocking(false)?;
                stream.set_read_timeout(Some(spec.timeout))?;
                let mut line = String::new();
                BufReader::new(stream.try_clone()?).read_line(&mut line)?;
                let hello: Vec<&str> = line.split_whitespace().collect();
                let (rank, their_devices) = match hello.as_slice() {
                    ["hello", rank, count] => (rank.parse::<usize>().unwrap_or(0), count.parse::<usize>().unwrap_or(0)),
                    _ => (0, 0),
                };
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
                    bail!("{reason}");
                }
                joined.push((rank, stream, from.ip().to_string()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    let missing: Vec<String> = (1..spec.count).filter(|r| !joined.iter().any(|(j, ..)| j == r)).map(|r| r.to_string()).collect();
                    bail!("node(s) {} did not join {} within {} s", missing.join(", "), spec.coordinator, spec.timeout.as_secs());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e).with_context(|| format!("{}: accepting a node", spec.coordinator)),
        }
    }
    start_orchestrator(spec.host(), port + 1, deadline)?;
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
    writeln!(&stream, "hello {} {devices}", spec.rank)?;
    let mut line = String::new();
    BufReader::new(stream.try_clone()?).read_line(&mut line).with_context(|| format!("node 0 at {} did not answer", spec.coordinator))?;
    let start: Start = match line.trim_end().split_once(' ') {
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
    for (rank, address, reader) in readers {
        let (fail, ended) = (fail.clone(), watch.ended.clone());
        std::thread::Builder::new().name(format!("node-{rank}-watch")).spawn(move || {
            for line in reader.lines() {
                match line {
                    Ok(line) if line == "bye" => return,
                    Ok(line) if line.starts_with("fail ") => return fail(format!("node {rank} ({address}): {}", &line[5..])),
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        return fail(format!("node {rank} ({address}) sent nothing for {} s", timeout.as_secs()));
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
