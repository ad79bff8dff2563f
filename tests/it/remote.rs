//! `twinhead serve` and its client end to end, on loopback: a server process
//! in a scratch folder, runs started, followed and steered through the HTTP
//! API, a dropped connection resumed without a gap, the guards (token, paths,
//! TLS on a network address), a pulled run folder, a server killed and
//! restarted. Every wait is bounded in time.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use twinhead::serve::api::CheckRequest;
use twinhead::serve::client::{Client, Follow, Followed};
use twinhead::train::config::TrainConfig;
use twinhead::train::{Control, Event, FinishReason};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// A server process and the address it listens on.
struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `twinhead serve ARGS` in `dir` and waits (at most a minute) for the address it prints.
fn serve(dir: &Path, args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_twinhead"))
        .arg("serve")
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // "serving runs on http://127.0.0.1:PORT/api/v1"
            if let Some(at) = line.find("http") {
                let url = line[at..].split_whitespace().next().unwrap_or_default();
                let _ = tx.send(url.trim_end_matches("/api/v1").to_string());
            }
        }
    });
    let address = rx.recv_timeout(Duration::from_secs(60)).expect("the server says where it listens");
    Server { child, address }
}

/// A scratch folder with a token file and `runs/` and `datasets/` under it.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
    std::fs::create_dir_all(dir.path().join("datasets")).unwrap();
    dir
}

/// A tiny run of the `quick` preset on the server's synthetic data.
fn tiny(steps: usize, overrides: &[&str]) -> TrainConfig {
    let mut sets: Vec<String> = [
        "data.voc=datasets/synth/voc",
        "data.ade=datasets/synth/ade",
        "data.image_size=64",
        "data.batch_size=2",
        "data.threads=1",
        "data.synthetic.det_images=16",
        "data.synthetic.seg_images=16",
        "data.synthetic.size=64",
        "model.width=0.25",
        "eval.det_images=4",
        "eval.seg_images=4",
        "log.tensorboard=false",
    ]
    .map(String::from)
    .to_vec();
    sets.push(format!("steps={steps}"));
    sets.extend(overrides.iter().map(|s| s.to_string()));
    TrainConfig::load_preset("quick", &sets).unwrap()
}

/// Waits until `done` holds, at most `limit`.
fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn status_of(client: &Client, run: &str) -> String {
    client.runs().unwrap().into_iter().find(|r| r.name == run).map(|r| r.status).unwrap_or_default()
}

/// The records of a run's log file, as lines.
fn log_lines(run_dir: &Path) -> Vec<String> {
    std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap().lines().map(str::to_string).collect()
}

#[test]
fn a_server_starts_follows_steers_and_guards_its_runs() {
    let dir = scratch();
    let server = serve(dir.path(), &["--listen", "127.0.0.1:0", "--runs", "runs", "--datasets", "datasets", "--token-file", "token"]);
    let client = Arc::new(Client::new(&server.address, Some(TOKEN.into()), None).unwrap());
    assert_eq!(client.info().unwrap().api, 1);
    assert!(client.runs().unwrap().is_empty());

    // No token, or a wrong one: 401, whatever the endpoint.
    for token in [None, Some("wrong-token-wrong-token".to_string())] {
        let stranger = Client::new(&server.address, token, None).unwrap();
        let error = format!("{:#}", stranger.runs().unwrap_err());
        assert!(error.contains("401"), "{error}");
    }

    // Paths out of the served folders: 403, nothing queued.
    let mut outside = tiny(4, &[]);
    outside.data.voc = Some(PathBuf::from("/etc"));
    outside.data.synthetic = None;
    let error = format!("{:#}", client.start(&outside, None).unwrap_err());
    assert!(error.contains("403") && error.contains("data.voc = /etc"), "{error}");
    let mut climbing = tiny(4, &[]);
    climbing.data.ade = Some(PathBuf::from("datasets/../token"));
    let error = format!("{:#}", client.start(&climbing, None).unwrap_err());
    assert!(error.contains("403") && error.contains("`..`"), "{error}");
    let error = format!("{:#}", client.check(&CheckRequest { voc: Some("..".into()), ..Default::default() }).unwrap_err());
    assert!(error.contains("403"), "{error}");
    assert!(client.runs().unwrap().is_empty());

    // A run, followed while it trains, the connection dropped twice on the way.
    let name = client.start(&tiny(60, &["eval.every=20", "checkpoint.every=10"]), None).unwrap();
    let mut follow = Follow::new(client.clone(), &name);
    let mut events: Vec<Option<Event>> = Vec::new();
    for cut in [5, 25] {
        follow
            .pump(true, &mut |followed| {
                if let Followed::Record(event) = followed {
                    events.push(event);
                }
                events.len() < cut
            })
            .unwrap();
        assert_eq!(follow.received, events.len());
    }

    // Pause it through the API: the control arrives once, however often it is sent.
    let answer = client.control(&name, "pause-1", &Control::Pause).unwrap();
    assert_eq!(answer.outcome, "sent");
    assert_eq!(client.control(&name, "pause-1", &Control::Pause).unwrap().outcome, "duplicate");
    wait_for(Duration::from_secs(120), "the run to pause", || status_of(&client, &name) == "paused");
    let resumed = client.control(&name, "resume-1", &Control::Resume).unwrap();
    assert_eq!(resumed.outcome, "sent");
    // The rest of the log, to the end of the run.
    wait_for(Duration::from_secs(600), "the run to finish", || status_of(&client, &name) == "completed");
    follow
        .pump(true, &mut |followed| {
            if let Followed::Record(event) = followed {
                events.push(event);
            }
            true
        })
        .unwrap();
    // Every record of the file, once, in order: no gap and no duplicate across the drops.
    let run_dir = dir.path().join("runs").join(&name);
    let file: Vec<Option<Event>> = log_lines(&run_dir).iter().map(|l| serde_json::from_str(l).ok()).collect();
    assert_eq!(events, file);
    let received: Vec<&str> = file.iter().flatten().filter_map(|e| match e {
        Event::ControlReceived { id, .. } => Some(id.as_str()),
        _ => None,
    }).collect();
    assert_eq!(received, ["pause-1", "resume-1"]);
    assert!(file.iter().flatten().any(|e| matches!(e, Event::Paused { .. })));
    assert!(matches!(file.last(), Some(Some(Event::Finished { reason: FinishReason::Completed, step: 60, .. }))));
    // A control for a run that is not training is refused, not queued.
    let error = format!("{:#}", client.control(&name, "late", &Control::Stop).unwrap_err());
    assert!(error.contains("409"), "{error}");

    // `runs pull` copies the folder, byte for byte.
    let pulled = dir.path().join("pulled");
    let status = Command::new(env!("CARGO_BIN_EXE_twinhead"))
        .args(["runs", "pull", "--server", &server.address, "--token-file", "token", &name, "--out"])
        .arg(&pulled)
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    for file in ["config.toml", "metrics.jsonl", "checkpoints/last/state.json"] {
        assert_eq!(std::fs::read(pulled.join(file)).unwrap(), std::fs::read(run_dir.join(file)).unwrap(), "{file}");
    }
    // A file outside the run folder is not served.
    let host = server.address.trim_start_matches("http://");
    let answer = raw(host, &format!("GET /api/v1/runs/{name}/files/%2e%2e/%2e%2e/token HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"));
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");

    // An uploaded image is predicted on the server.
    let image = std::fs::read(dir.path().join("datasets/synth/voc/JPEGImages/000001.jpg")).unwrap();
    let predicted = client.predict(&name, &twinhead::train::checkpoint::CheckpointKind::Last, &image).unwrap();
    assert_eq!(predicted.model.step, 60);
    assert!(predicted.prediction.mask.is_some());
    let junk = format!("{:#}", client.predict(&name, &twinhead::train::checkpoint::CheckpointKind::Last, b"not an image").unwrap_err());
    assert!(junk.contains("400"), "{junk}");
    // Inspect's samples, computed on the server.
    let samples = client.inspect(&name, &twinhead::train::checkpoint::CheckpointKind::Last).unwrap();
    assert!(!samples.det.is_empty() && !samples.seg.is_empty());
    // Inspect's metrics: the full validation splits scored on the server, as `eval --run` scores them there.
    let mut batches = 0;
    let full = client
        .validate(&name, &twinhead::train::checkpoint::CheckpointKind::Last, &mut |_, _| {
            batches += 1;
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    assert!(batches > 1, "progress is streamed");
    let local = Command::new(env!("CARGO_BIN_EXE_twinhead")).args(["eval", "--run", &format!("runs/{name}"), "--json"]).current_dir(dir.path()).output().unwrap();
    assert!(local.status.success(), "{}", String::from_utf8_lossy(&local.stderr));
    let local: serde_json::Value = serde_json::from_slice(&local.stdout).unwrap();
    use twinhead::model::Task;
    for (task, key, metric) in [(Task::Det, "det", "map50"), (Task::Seg, "seg", "miou")] {
        let (remote, here) = (full.validation.metric(task).unwrap(), local[key][metric].as_f64().unwrap());
        assert!((remote - here).abs() < 1e-9, "{key}: {remote} on the server, {here} by eval --run");
    }
    assert_eq!(full.det_classes.len(), full.validation.det.as_ref().unwrap().ap.per_class.len());
    // Hanging up stops the scoring, and the server serves on.
    let Err(error) = client.validate(&name, &twinhead::train::checkpoint::CheckpointKind::Last, &mut |_, _| std::ops::ControlFlow::Break(())) else { panic!("not cancelled") };
    assert!(format!("{error:#}").contains("cancelled"), "{error:#}");
    assert!(client.runs().is_ok());
}

/// Sends `request` as it is and returns the answer.
fn raw(host: &str, request: &str) -> String {
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[test]
fn silent_and_junk_clients_do_not_hold_the_server() {
    let dir = scratch();
    let server = serve(dir.path(), &["--listen", "127.0.0.1:0", "--runs", "runs"]);
    let host = server.address.trim_start_matches("http://").to_string();
    // Connections that say nothing, or junk, or a body larger than allowed.
    let silent: Vec<std::net::TcpStream> = (0..8).map(|_| std::net::TcpStream::connect(&host).unwrap()).collect();
    let mut junk = std::net::TcpStream::connect(&host).unwrap();
    junk.write_all(&[0xff; 4096]).unwrap();
    let mut huge = std::net::TcpStream::connect(&host).unwrap();
    huge.write_all(b"POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n").unwrap();
    huge.write_all(&vec![b'x'; 2 << 20]).unwrap_or(());
    let mut answer = String::new();
    huge.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = huge.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Meanwhile the server answers at once.
    let client = Client::new(&server.address, None, None).unwrap();
    let start = Instant::now();
    assert!(client.runs().unwrap().is_empty());
    assert!(start.elapsed() < Duration::from_secs(5));
    drop(silent);
}

#[test]
fn a_network_address_needs_a_token_and_tls() {
    let dir = scratch();
    let refused = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_twinhead")).arg("serve").args(args).current_dir(dir.path()).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    assert!(refused(&["--listen", "0.0.0.0:0"]).contains("needs --token-file"));
    assert!(refused(&["--listen", "0.0.0.0:0", "--token-file", "token"]).contains("--tls-cert"));
    // With a certificate, HTTPS: a client that trusts it connects; plain HTTP does not.
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    let server = serve(
        dir.path(),
        &["--listen", "0.0.0.0:0", "--token-file", "token", "--tls-cert", "cert.pem", "--tls-key", "key.pem", "--runs", "runs"],
    );
    let port = server.address.rsplit(':').next().unwrap().to_string();
    let trusted = Client::new(&format!("https://127.0.0.1:{port}"), Some(TOKEN.into()), Some(&dir.path().join("cert.pem"))).unwrap();
    assert!(trusted.runs().unwrap().is_empty());
    let untrusted = Client::new(&format!("https://127.0.0.1:{port}"), Some(TOKEN.into()), None).unwrap();
    assert!(untrusted.runs().is_err());
    let plain = Client::new(&format!("http://127.0.0.1:{port}"), Some(TOKEN.into()), None).unwrap();
    assert!(plain.runs().is_err());
}

#[test]
fn a_server_killed_and_restarted_lists_its_run_interrupted_and_continues_it() {
    let dir = scratch();
    let args = ["--listen", "127.0.0.1:0", "--runs", "runs", "--datasets", "datasets"];
    let server = serve(dir.path(), &args);
    let client = Client::new(&server.address, None, None).unwrap();
    let name = client.start(&tiny(400, &["eval.every=1000", "checkpoint.every=5"]), None).unwrap();
    let run_dir = dir.path().join("runs").join(&name);
    wait_for(Duration::from_secs(300), "a checkpoint", || run_dir.join("checkpoints/last/state.json").is_file());
    drop(server);
    let server = serve(dir.path(), &args);
    let client = Client::new(&server.address, None, None).unwrap();
    assert_eq!(status_of(&client, &name), "interrupted");
    let checkpoint: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run_dir.join("checkpoints/last/state.json")).unwrap()).unwrap();
    client.resume(&name, None).unwrap();
    // It continues from its checkpoint's step, not from 0.
    let resumed = || {
        log_lines(&run_dir).iter().filter_map(|l| serde_json::from_str::<Event>(l).ok()).find_map(|e| match e {
            Event::Started { step, resumed: true, .. } => Some(step),
            _ => None,
        })
    };
    wait_for(Duration::from_secs(120), "the run to start again", || resumed().is_some());
    assert!(resumed().unwrap() as u64 >= checkpoint["step"].as_u64().unwrap() && resumed().unwrap() > 0);
    client.control(&name, "stop", &Control::Stop).unwrap();
    wait_for(Duration::from_secs(120), "the run to stop", || status_of(&client, &name) == "stopped");
}
