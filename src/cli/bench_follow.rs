//! `twinhead bench follow`: how long a step's record takes from being written
//! to a run's log to being in the session the workbench draws from, followed
//! locally (another process's run) and through `twinhead serve` over
//! loopback HTTP; and the memory of a client that follows a long log.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::serve::client::Client;
use crate::serve::remote::RemoteServer;
use crate::serve::server::{self, Options};
use crate::session::Session;
use crate::train::events::Event;
use crate::train::run_dir;
use crate::model::task::PerTask;
use crate::model::{Task, TaskSet};
use crate::train::TrainConfig;

#[derive(Debug, clap::Args)]
pub struct FollowArgs {
    /// Records timed on each path.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    records: u32,
    /// Mean milliseconds between two records written (a training step's pace), each wait drawn
    /// uniformly from 0 to twice it, so records fall anywhere between two looks at the log.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    interval_ms: u64,
    /// Records of the long log whose following client's memory is measured (0: skip it).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(0..=10_000_000))]
    long_log: u32,
}

pub fn run_follow(args: FollowArgs) -> Result<ExitCode> {
    super::in_scratch("follow", |scratch| measure(&args, scratch))
}

fn measure(args: &FollowArgs, scratch: &Path) -> Result<ExitCode> {
    let interval = Duration::from_millis(args.interval_ms);
    // Local: the workbench's session following a run another process writes.
    let local = scratch.join("local");
    let log = new_run(&local, "run")?;
    let (mut session, _) = Session::open(&local, || {});
    let latencies = time_records(&log, args.records, interval, |step| {
        session.poll();
        session.record("run").is_some_and(|r| r.step >= step)
    })?;
    report("local follow (a run of another process)", &latencies);

    // Through a server on loopback: the same, as the workbench sees a server's run.
    let served = scratch.join("served");
    let log = new_run(&served, "run")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let options = Options {
        listen: ([127, 0, 0, 1], port).into(),
        runs: served.clone(),
        token: None,
        datasets: vec![served.clone()],
        tls: None,
        allow_plain_http: false,
        devices: vec![crate::backend::device::DeviceSpec::Cpu],
    };
    std::thread::spawn(move || server::serve(options));
    let address = format!("http://127.0.0.1:{port}");
    let client = Client::new(&address, None, None)?;
    wait(Duration::from_secs(30), || client.info().is_ok()).context("the server did not answer")?;
    let (mut session, _) = Session::open(&scratch.join("empty"), || {});
    session.attach(Box::new(RemoteServer::connect("bench", client, scratch.join("mirror"), Arc::new(|| {}))));
    wait(Duration::from_secs(30), || {
        session.poll();
        session.record("run@bench").is_some()
    })
    .context("the server's run did not show")?;
    let latencies = time_records(&log, args.records, interval, |step| {
        session.poll();
        session.record("run@bench").is_some_and(|r| r.step >= step)
    })?;
    report("served over loopback HTTP", &latencies);
    drop(session);

    if args.long_log > 0 {
        let log = new_run(&served, "long")?;
        write_records(&log, args.long_log as usize)?;
        let before = resident_mib();
        let client = Client::new(&address, None, None)?;
        let (mut session, _) = Session::open(&scratch.join("empty"), || {});
        session.attach(Box::new(RemoteServer::connect("bench", client, scratch.join("mirror-long"), Arc::new(|| {}))));
        let started = Instant::now();
        wait(Duration::from_secs(600), || {
            session.poll();
            session.record("long@bench").is_some_and(|r| r.step >= args.long_log as usize)
        })
        .context("the long log was not followed to its end")?;
        let points: usize = session.record("long@bench").map_or(0, |r| r.series.loss[Task::Det].len() + r.series.lr.len());
        println!(
            "a client following a {}-record log: {:.0} MiB more resident ({} points held), caught up in {:.1} s",
            args.long_log,
            resident_mib() - before,
            points,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A run folder `runs/NAME` with the quick preset's configuration and an empty log.
fn new_run(runs: &Path, name: &str) -> Result<std::fs::File> {
    let dir = runs.join(name);
    let mut config = TrainConfig::load_preset("quick", &[])?;
    config.steps = usize::MAX / 2;
    run_dir::create(&dir, &config)?;
    let path = dir.join(run_dir::METRICS_FILE);
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
    let started = Event::Started { step: 0, total_steps: config.steps, run_dir: dir.clone(), resumed: false, device: "cpu".into() };
    writeln!(log, "{}", serde_json::to_string(&started)?)?;
    Ok(log)
}

fn step_event(step: usize) -> Event {
    Event::Step {
        step,
        tasks: TaskSet::DET_SEG,
        losses: PerTask::from_fn(|task| (task == Task::Det).then_some(1.0 / step as f32)),
        penalty: None,
        lr: 1e-3,
        images_per_sec: 100.0,
        device_memory: None,
    }
}

/// Writes step records 1, 2, … about every `interval`, and times each until `seen(step)`.
fn time_records(log: &std::fs::File, records: u32, interval: Duration, mut seen: impl FnMut(usize) -> bool) -> Result<Vec<f64>> {
    use rand::{Rng, SeedableRng};
    let mut pace = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut log = log;
    let mut latencies = Vec::with_capacity(records as usize);
    for step in 1..=records as usize {
        std::thread::sleep(interval.mul_f64(pace.random_range(0.0..2.0)));
        let written = Instant::now();
        writeln!(log, "{}", serde_json::to_string(&step_event(step))?)?;
        while !seen(step) {
            if written.elapsed() > Duration::from_secs(30) {
                bail!("step {step} did not arrive within 30 s");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        latencies.push(written.elapsed().as_secs_f64() * 1e3);
    }
    Ok(latencies)
}

fn write_records(log: &std::fs::File, records: usize) -> Result<()> {
    let mut out = std::io::BufWriter::new(log);
    for step in 1..=records {
        writeln!(out, "{}", serde_json::to_string(&step_event(step))?)?;
    }
    out.flush()?;
    Ok(())
}

fn report(what: &str, latencies: &[f64]) {
    let mut sorted = latencies.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    println!("{what}: {} records, record written to record in the session: median {:.0} ms, p95 {:.0} ms", sorted.len(), at(0.5), at(0.95));
}

fn wait(limit: Duration, mut done: impl FnMut() -> bool) -> Result<()> {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > limit {
            bail!("timed out after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// This process's resident memory, in MiB (0 where /proc is missing).
fn resident_mib() -> f64 {
    let pages = std::fs::read_to_string("/proc/self/statm").ok().and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok()).unwrap_or(0.0);
    pages * 4096.0 / (1 << 20) as f64
}
