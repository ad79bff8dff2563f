//! Data-parallel training (burn-collective): two replicas at half the batch
//! train as one device at the whole batch, in one process (CPU replicas on
//! threads) and in two processes on loopback (two nodes); a node that dies
//! ends the other, and resuming both finishes the run.
//!
//! Tolerance: the replicas' mean gradient is the whole batch's up to the
//! order of the sums (each replica sums its half, the all-reduce adds the
//! halves) and the batched kernels' blocking over 8 instead of 16 images, so
//! values agree to float rounding, not bit for bit; 1e-4 relative on the step
//! losses and 1e-4 absolute on the weights after five Adam steps (lr 1e-3 at
//! most: a weight moves at most ~5e-3, so this is 2 % of the largest move)
//! leaves room for that rounding and none for a wrong scale or a missing shard.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use burn::backend::Flex;
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use twinhead::backend::device::DeviceSpec;
use twinhead::train::checkpoint;
use twinhead::train::events::Event;
use twinhead::train::parallel::Placement;
use twinhead::train::run_dir;
use twinhead::train::{start_on, FinishReason, TrainConfig};

/// A tiny joint run of `steps` at batch 8 over synthetic data in `data`.
fn config_text(data: &Path, steps: usize) -> String {
    format!(
        r#"
name = "dp"
seed = 5
steps = {steps}
[data]
voc = "{voc}"
ade = "{ade}"
image_size = 64
batch_size = 8
threads = 1
[data.synthetic]
det_images = 32
seg_images = 32
size = 64
[model]
size = "n"
width = 0.25
[optim]
lr = 0.001
warmup_steps = 2
[strategy]
kind = "joint"
[eval]
every = {steps}
det_images = 4
seg_images = 4
[checkpoint]
every = 5
"#,
        voc = data.join("voc").display(),
        ade = data.join("ade").display(),
    )
}

/// Trains in this process; returns each step's (detection, segmentation) loss.
fn train(config: TrainConfig, run_dir: &Path, placement: Placement) -> Vec<(f32, f32)> {
    let handle = start_on(Some(config), run_dir, false, placement).unwrap();
    let losses = handle
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Step { losses, .. } => Some((losses[twinhead::train::Task::Det].unwrap(), losses[twinhead::train::Task::Seg].unwrap())),
            Event::Error { message, .. } => panic!("training failed: {message}"),
            _ => None,
        })
        .collect();
    assert_eq!(handle.join().unwrap(), FinishReason::Completed);
    losses
}

/// The step losses a run's log holds.
fn logged_losses(run_dir: &Path) -> Vec<(f32, f32)> {
    let (events, _) = run_dir::read_events(run_dir).unwrap();
    events
        .iter()
        .filter_map(|e| match e {
            Event::Step { losses, .. } => Some((losses[twinhead::train::Task::Det].unwrap(), losses[twinhead::train::Task::Seg].unwrap())),
            _ => None,
        })
        .collect()
}

struct Weights(Vec<f32>);

impl ModuleVisitor<Flex> for Weights {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Flex, D>>) {
        self.0.extend(param.val().into_data().iter::<f32>());
    }
}

/// Every weight of a run's last checkpoint.
fn weights(run_dir: &Path) -> Vec<f32> {
    let dir = checkpoint::find(run_dir, &checkpoint::CheckpointKind::Last).unwrap();
    let (net, _) = checkpoint::load_inference_net::<Flex>(&dir, &Default::default()).unwrap();
    let mut weights = Weights(Vec::new());
    net.visit(&mut weights);
    weights.0
}

/// Every step's losses within `tolerance` (relative above 1).
fn assert_same_losses(one: &[(f32, f32)], two: &[(f32, f32)], tolerance: f32) {
    assert_eq!(one.len(), two.len());
    for (step, (a, b)) in one.iter().zip(two).enumerate() {
        for (x, y) in [(a.0, b.0), (a.1, b.1)] {
            assert!((x - y).abs() <= tolerance * x.abs().max(1.0), "step {}: loss {x} alone, {y} on two replicas", step + 1);
        }
    }
}

fn assert_same_training(one: &[(f32, f32)], two: &[(f32, f32)], one_dir: &Path, two_dir: &Path) {
    assert_same_losses(one, two, 1e-4);
    let (a, b) = (weights(one_dir), weights(two_dir));
    assert_eq!(a.len(), b.len());
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(worst <= 1e-4, "weights differ by up to {worst}");
    assert!(a.iter().zip(weights_at_start(one_dir)).any(|(x, y)| x != &y), "the weights did not move");
}

/// The run's weights before training (its seed's initialisation), to check training moved them.
fn weights_at_start(run_dir: &Path) -> Vec<f32> {
    let config = run_dir::read_config(run_dir).unwrap();
    let state = checkpoint::read_state(&checkpoint::find(run_dir, &checkpoint::CheckpointKind::Last).unwrap()).unwrap();
    let trainee = twinhead::train::trainee::Trainee::<Flex>::seeded(&state.model, config.seed, &Default::default());
    let mut weights = Weights(Vec::new());
    trainee.net.visit(&mut weights);
    weights.0
}

fn data_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn two_cpu_replicas_at_half_the_batch_train_as_one_device() {
    let dir = data_dir();
    let config = TrainConfig::from_toml(&config_text(&dir.path().join("synth"), 5), &[]).unwrap();
    let (one_dir, two_dir) = (dir.path().join("one"), dir.path().join("two"));
    let one = train(config.clone(), &one_dir, Placement::single(DeviceSpec::Cpu));
    let two = train(config, &two_dir, Placement { devices: vec![DeviceSpec::Cpu; 2], nodes: None });
    assert_same_training(&one, &two, &one_dir, &two_dir);
    // Replica 0's log records both replicas' steps.
    let (events, _) = run_dir::read_events(&two_dir).unwrap();
    let replicas = events.iter().filter_map(|e| if let Event::Replicas { replicas, .. } = e { Some(replicas.len()) } else { None });
    assert_eq!(replicas.collect::<Vec<_>>(), vec![2; 5]);
}

/// PCGrad projects the whole batch's task gradients (averaged over the
/// replicas first, then combined), so two replicas still train as one device.
#[test]
fn pcgrad_on_two_cpu_replicas_trains_as_one_device() {
    let dir = data_dir();
    let config = TrainConfig::from_toml(&config_text(&dir.path().join("synth"), 4), &["strategy.gradients=pcgrad".into()]).unwrap();
    assert_eq!(config.strategy.label(), "joint + pcgrad");
    let (one_dir, two_dir) = (dir.path().join("one"), dir.path().join("two"));
    let one = train(config.clone(), &one_dir, Placement::single(DeviceSpec::Cpu));
    let two = train(config, &two_dir, Placement { devices: vec![DeviceSpec::Cpu; 2], nodes: None });
    // Projections cancel some coordinates of the shared gradient to near zero,
    // where AdamW's first steps move by ±lr whatever the sign of a rounding
    // difference between one batch's gradient and the mean of its halves': the
    // losses agree to 1e-3, and 99 % of the weights to 1e-4 (0.17 % apart here).
    assert_same_losses(&one, &two, 1e-3);
    let (a, b) = (weights(&one_dir), weights(&two_dir));
    let apart = a.iter().zip(&b).filter(|(x, y)| (*x - *y).abs() > 1e-4).count();
    assert!(apart * 100 <= a.len(), "{apart} of {} weights differ by more than 1e-4", a.len());
    assert!(a.iter().zip(weights_at_start(&one_dir)).any(|(x, y)| x != &y), "the weights did not move");
}

/// A batch that does not split over the replicas is refused, naming the key.
#[test]
fn a_batch_that_does_not_split_over_the_replicas_is_refused() {
    let dir = data_dir();
    let config = TrainConfig::from_toml(&config_text(&dir.path().join("synth"), 5), &["data.batch_size=7".into()]).unwrap();
    let handle = start_on(Some(config), &dir.path().join("run"), false, Placement { devices: vec![DeviceSpec::Cpu; 2], nodes: None }).unwrap();
    let error = handle.join().unwrap_err().to_string();
    assert!(error.contains("data.batch_size") && error.contains("2 replicas"), "{error}");
}

/// A free port with the next three free too (the coordinator, the
/// orchestrator, two tensor services), on loopback.
fn free_ports() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if port < 60000 && (1..4).all(|k| std::net::TcpListener::bind(("127.0.0.1", port + k)).is_ok()) {
            return port;
        }
    }
}

/// One node's `twinhead train` process, in `cwd`.
fn node(cwd: &Path, rank: usize, port: u16, extra: &[&str]) -> Child {
    let coordinator = format!("127.0.0.1:{port}");
    let mut args = vec!["train", "--devices", "cpu", "--nodes", "2", "--node-rank", if rank == 0 { "0" } else { "1" }];
    args.extend(["--coordinator", &coordinator, "--node-timeout", "20"]);
    args.extend(extra);
    let log = std::fs::File::create(cwd.join(format!("node{rank}.log"))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_twinhead")).current_dir(cwd).args(&args).stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap()
}

/// Waits for `child` to end, at most `limit`.
fn wait(child: &mut Child, limit: Duration, what: &str, cwd: &Path) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let logs: Vec<String> = (0..2).map(|r| std::fs::read_to_string(cwd.join(format!("node{r}.log"))).unwrap_or_default()).collect();
            panic!("{what} did not end within {limit:?}; logs:\n{}", logs.join("\n---\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn node_log(cwd: &Path, rank: usize) -> String {
    std::fs::read_to_string(cwd.join(format!("node{rank}.log"))).unwrap()
}

#[test]
fn two_nodes_on_loopback_train_as_one_device_and_a_lost_node_ends_the_run() {
    let dir = data_dir();
    let cwd = dir.path();
    let preset = cwd.join("dp.toml");
    std::fs::write(&preset, config_text(&cwd.join("synth"), 5)).unwrap();
    let one_dir = cwd.join("one");
    let one = train(TrainConfig::load_preset(preset.to_str().unwrap(), &[]).unwrap(), &one_dir, Placement::single(DeviceSpec::Cpu));

    // Two processes, one replica each at batch 4.
    let port = free_ports();
    let mut lead = node(cwd, 0, port, &["--preset", preset.to_str().unwrap(), "--out", "nodes"]);
    let mut follow = node(cwd, 1, port, &[]);
    let limit = Duration::from_secs(240);
    assert!(wait(&mut lead, limit, "node 0", cwd).success(), "node 0: {}", node_log(cwd, 0));
    assert!(wait(&mut follow, limit, "node 1", cwd).success(), "node 1: {}", node_log(cwd, 1));
    let nodes_dir = cwd.join("nodes");
    assert_same_training(&one, &logged_losses(&nodes_dir), &one_dir, &nodes_dir);
    assert!(node_log(cwd, 1).contains("replica 1 (node 1"), "node 1 sums up its replica: {}", node_log(cwd, 1));

    // A longer run: node 1 is killed after a checkpoint; node 0 ends with an error naming it.
    let port = free_ports();
    let long = ["--preset", preset.to_str().unwrap(), "--set", "steps=120", "--out", "killed"];
    let mut lead = node(cwd, 0, port, &long);
    let mut follow = node(cwd, 1, port, &[]);
    let killed_dir = cwd.join("killed");
    let deadline = Instant::now() + limit;
    while !run_dir::read_events(&killed_dir).is_ok_and(|(events, _)| events.iter().any(|e| matches!(e, Event::Checkpoint { step, .. } if *step >= 10))) {
        assert!(Instant::now() < deadline, "no checkpoint at step 10: {}", node_log(cwd, 0));
        std::thread::sleep(Duration::from_millis(100));
    }
    follow.kill().unwrap();
    let _ = follow.wait();
    let status = wait(&mut lead, Duration::from_secs(30), "node 0 after node 1 was killed", cwd);
    assert!(!status.success());
    let log = node_log(cwd, 0);
    assert!(log.contains("error: node 1"), "{log}");
    let (events, _) = run_dir::read_events(&killed_dir).unwrap();
    assert!(matches!(events.last(), Some(Event::Finished { reason: FinishReason::Failed, .. })), "{:?}", events.last());

    // Resuming both nodes finishes the run.
    let port = free_ports();
    let mut lead = node(cwd, 0, port, &["--resume", "--out", "killed"]);
    let mut follow = node(cwd, 1, port, &[]);
    assert!(wait(&mut lead, limit, "resumed node 0", cwd).success(), "{}", node_log(cwd, 0));
    assert!(wait(&mut follow, limit, "resumed node 1", cwd).success(), "{}", node_log(cwd, 1));
    let (events, _) = run_dir::read_events(&killed_dir).unwrap();
    assert!(matches!(events.last(), Some(Event::Finished { reason: FinishReason::Completed, step: 120, .. })), "{:?}", events.last());
}

/// Anyone on the network can reach the coordinator port: junk, silence and a
/// wrong greeting there are dropped with a warning naming their address, and
/// the run goes on; a node without the run's secret is not let in.
#[test]
fn stray_and_junk_connections_do_not_end_a_multi_node_run() {
    let dir = data_dir();
    let cwd = dir.path();
    let preset = cwd.join("dp.toml");
    std::fs::write(&preset, config_text(&cwd.join("synth"), 3)).unwrap();
    std::fs::write(cwd.join("secret"), "0123456789abcdef-the-runs-secret").unwrap();
    let secret = ["--node-secret-file", "secret"];
    let port = free_ports();
    let mut lead = node(cwd, 0, port, &[&["--preset", preset.to_str().unwrap(), "--out", "strays"][..], &secret].concat());
    let coordinator = format!("127.0.0.1:{port}");
    let connect = || {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(stream) = std::net::TcpStream::connect(&coordinator) {
                return stream;
            }
            assert!(Instant::now() < deadline, "node 0 never listened: {}", node_log(cwd, 0));
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    use std::io::Write;
    let _silent = connect();
    connect().write_all(&[0x9c; 3000]).unwrap();
    connect().write_all(&vec![b'x'; 1 << 20]).unwrap_or(());
    connect().write_all(b"hello twinhead-nodes/1 1 1 not-the-proof\n").unwrap();
    connect().write_all(b"hello twinhead-nodes/1 1 1\n").unwrap();
    // The real node, with the secret, joins and the run completes on both.
    let mut follow = node(cwd, 1, port, &secret);
    let limit = Duration::from_secs(240);
    assert!(wait(&mut lead, limit, "node 0", cwd).success(), "node 0: {}", node_log(cwd, 0));
    assert!(wait(&mut follow, limit, "node 1", cwd).success(), "node 1: {}", node_log(cwd, 1));
    let log = node_log(cwd, 0);
    assert!(log.contains("a connection from 127.0.0.1 sent no twinhead node's greeting; dropped"), "{log}");
    assert!(log.contains("does not know the run's secret"), "{log}");
    assert!(log.matches("; dropped").count() >= 4, "{log}");
}

/// A port the run needs that another program holds is named at once, not waited on.
#[test]
fn a_taken_port_is_named_at_once() {
    let dir = data_dir();
    let cwd = dir.path();
    let preset = cwd.join("dp.toml");
    std::fs::write(&preset, config_text(&cwd.join("synth"), 3)).unwrap();
    let port = free_ports();
    let _squatter = std::net::TcpListener::bind(("0.0.0.0", port + 1)).unwrap();
    let started = Instant::now();
    let mut lead = node(cwd, 0, port, &["--preset", preset.to_str().unwrap(), "--out", "taken"]);
    let status = wait(&mut lead, Duration::from_secs(60), "node 0 with its orchestrator's port taken", cwd);
    assert_eq!(status.code(), Some(2), "{}", node_log(cwd, 0));
    assert!(started.elapsed() < Duration::from_secs(30));
    let log = node_log(cwd, 0);
    assert!(log.contains(&format!("port {} (burn-collective's orchestrator, PORT+1) is in use", port + 1)), "{log}");
}
