//! Starting a data-parallel run on this node: one thread per device, each a
//! [`Trainer`] joined to the others through burn-collective. Replica 0 starts
//! (or resumes) the run as a trainer alone would and sends the others its
//! snapshot; the first replica to fail ends the others.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::{Receiver, Sender};

use super::collective::{abort, Rank, Replica};
use super::nodes::{self, OnFailure};
use super::placement::Placement;
use super::snapshot;
use crate::backend::device::OnDevices;
use crate::backend::{TwinAutodiffBackend, TwinBackend};
use crate::train::config::TrainConfig;
use crate::train::events::{Control, Event, FinishReason};
use crate::backend::ENGINE_THREAD_STACK;
use crate::train::run_dir::record_failure;
use crate::train::run_dir::EventLog;
use crate::train::trainer::Trainer;

/// burn-collective serves one collective per backend and process.
static TRAINING: AtomicBool = AtomicBool::new(false);

/// A data-parallel run to train on this node's devices.
pub struct Launch {
    /// The run's configuration (node 0; the other nodes get node 0's).
    pub config: Option<TrainConfig>,
    pub run_dir: PathBuf,
    pub resume: bool,
    pub placement: Placement,
    pub events: Sender<Event>,
    pub control: Receiver<Control>,
}

impl OnDevices for Launch {
    type Output = Result<FinishReason>;
    fn run<B: TwinBackend>(self, devices: Vec<B::Device>) -> Result<FinishReason> {
        if TRAINING.swap(true, Ordering::SeqCst) {
            bail!("another data-parallel run is training in this process (burn-collective serves one at a time)");
        }
        let result = self.train::<B>(devices);
        TRAINING.store(false, Ordering::SeqCst);
        result
    }
}

impl Launch {
    fn train<B: TwinBackend>(self, devices: Vec<B::Device>) -> Result<FinishReason> {
        let Launch { config, run_dir, resume, placement, events, control } = self;
        let leads = placement.node_rank() == 0;
        // Nodes join first: node 0 hands out the configuration.
        let (config, resume, host, watch) = match &placement.nodes {
            Some(spec) => {
                let (dir, listener) = (run_dir.clone(), events.clone());
                let on_failure: OnFailure = Arc::new(move |message: String| {
                    // Replicas may wait inside burn-collective for the lost node, with no way out but this.
                    eprintln!("error: {message}");
                    if leads {
                        let _ = record_failure(&dir, Some(listener.clone()), &message);
                    }
                    std::process::exit(1);
                });
                placement.check_ports()?;
                let joined = nodes::join(spec, devices.len(), config.map(|c| (c, resume)), on_failure)?;
                (joined.config, joined.resume, joined.host, Some(joined.watch))
            }
            None => (config.context("no configuration for a new run")?, resume, String::new(), None),
        };
        placement.check_batch(config.data.batch_size)?;
        let collective = placement.collective_config(&host)?;
        let names: Vec<String> = placement.devices.iter().map(ToString::to_string).collect();
        let description = placement.describe();
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let mut threads = Vec::new();
        for (local, device) in devices.into_iter().enumerate() {
            let rank = placement.rank(local);
            let replica = ReplicaRun {
                rank,
                config: config.clone(),
                run_dir: run_dir.clone(),
                resume,
                collective: collective.clone(),
                // This node's progress goes to its listener through its first replica.
                events: (local == 0).then(|| events.clone()),
                control: control.clone(),
                devices: names.clone(),
                description: description.clone(),
            };
            let done = done_tx.clone();
            let thread = std::thread::Builder::new().name(format!("replica-{local}")).stack_size(ENGINE_THREAD_STACK).spawn(move || {
                let result = B::twin_run_training(ENGINE_THREAD_STACK, || replica.train::<burn::backend::Autodiff<B>>(device));
                let _ = done.send((local, result));
            });
            threads.push(thread.context("cannot start a replica's thread")?);
        }
        drop(done_tx);
        let mut results: Vec<Option<Result<FinishReason>>> = threads.iter().map(|_| None).collect();
        let mut first_error: Option<(usize, String)> = None;
        for (local, result) in done_rx.iter() {
            if let (Err(error), None) = (&result, &first_error) {
                let rank = placement.rank(local).global;
                first_error = Some((rank, format!("{error:#}")));
                // The others wait for this replica in their next all-reduce: end those calls.
                abort::<B>();
                if let Some(watch) = &watch {
                    watch.fail(&format!("replica {rank}: {error:#}"));
                }
            }
            results[local] = Some(result);
        }
        for thread in threads {
            let _ = thread.join();
        }
        if let Some((rank, message)) = first_error {
            let error = anyhow!("replica {rank}: {message}");
            if leads {
                record_failure(&run_dir, Some(events), &format!("{error:#}"))?;
            }
            return Err(error);
        }
        drop(watch);
        results.into_iter().next().flatten().unwrap_or_else(|| Err(anyhow!("no replica ran")))
    }
}

/// One replica's part of the run.
struct ReplicaRun {
    rank: Rank,
    config: TrainConfig,
    run_dir: PathBuf,
    resume: bool,
    collective: burn_collective::CollectiveConfig,
    events: Option<Sender<Event>>,
    control: Receiver<Control>,
    devices: Vec<String>,
    description: String,
}

impl ReplicaRun {
    fn train<A: TwinAutodiffBackend>(self, device: A::Device) -> Result<FinishReason> {
        let mut replica = Replica::<A::InnerBackend>::register(self.rank, device.clone(), self.collective.clone())?;
        let turn = A::device_turn(&device);
        if replica.is_leader() {
            let log = EventLog::open(&self.run_dir, self.events.clone())?;
            let trainer = Trainer::<A>::new(self.config.clone(), &self.run_dir, self.resume, device, log)?;
            drop(turn);
            replica.broadcast(Some(trainer.start_snapshot()?))?;
            return trainer.join(replica, self.devices.clone()).run(&self.control, &self.description);
        }
        drop(turn);
        let folder = snapshot::scratch_dir("replica")?;
        let result = self.follow::<A>(replica, device, &folder);
        let _ = std::fs::remove_dir_all(&folder);
        result
    }

    /// A replica other than 0: starts from replica 0's snapshot, unpacked in `folder`.
    fn follow<A: TwinAutodiffBackend>(&self, mut replica: Replica<A::InnerBackend>, device: A::Device, folder: &Path) -> Result<FinishReason> {
        snapshot::unpack(&replica.broadcast(None)?, folder)?;
        let log = EventLog::replica(self.events.clone());
        let turn = A::device_turn(&device);
        let trainer = Trainer::<A>::new(self.config.clone(), folder, true, device, log)?;
        drop(turn);
        trainer.join(replica, self.devices.clone()).run(&self.control, &self.description)
    }
}
