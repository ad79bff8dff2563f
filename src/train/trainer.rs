//! The training loop: one network, a dataset per task (detection and
//! segmentation, and classification when configured), a strategy that decides
//! which tasks train at each step, validation of every task every few steps,
//! typed events out and control messages in.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};
use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::checkpoint::{self, CheckpointKind, TrainerState};
use super::config::TrainConfig;
use super::conflict::{self, PairConflict};
use super::control_file::ControlReader;
use super::ema::WeightEma;
use super::config::DataConfig;
use super::datasets::{open_datasets, Datasets};
use super::evaluate::{validate, ValidationSettings};
use super::events::{Control, EvalRecord, Event, FinishReason, ReplicaStep};
use super::memory;
use super::parallel::{snapshot, Replica};
use super::penalty::Ewc;
use super::pseudo::{PseudoLabels, TEACHER_EMA_DECAY};
use super::replay::{buffer_file, make_buffer, BufferSource};
use super::run_dir::EventLog;
use super::tensorboard_log::TensorboardLog;
use super::timeline;
use super::lr_schedule::learning_rate;
use super::strategy::{AtSwitch, GradientCombination, RunShape, Task, TaskSet, Weighting};
use super::task_data::{TaskBatch, TaskSource};
use super::task_gradients;
use super::task_losses::{CrossKind, CrossTask, TaskLoss, TaskLosses};
use super::trainee::Trainee;
use super::optim::TwinOptimizer;
use crate::backend::device::{mib, DeviceMemory};
use crate::backend::TwinAutodiffBackend;
use crate::data::loader::{Loader, LoaderConfig, Position, Shard};
use crate::model::task::PerTask;
use crate::model::{Reshape, TwinNet};

/// How often a paused run looks at its control file.
const CONTROL_POLL: Duration = Duration::from_millis(200);

/// What one step computed, for the step event.
struct StepLosses {
    tasks: PerTask<Option<f32>>,
    penalty: Option<f32>,
}

/// Sources of the extra penalty of the sequential strategies' later phases.
enum Mitigation<B: AutodiffBackend> {
    None,
    /// `lwf`: the switch snapshot's outputs for the earlier `tasks`.
    Distill { teacher: TwinNet<B::InnerBackend>, tasks: TaskSet, weight: f32, temperature: f32 },
    Ewc(Ewc<B>),
    /// `pseudo`: the switch snapshot labels the images for the earlier `tasks`.
    Pseudo { teacher: TwinNet<B::InnerBackend>, tasks: TaskSet, labels: PseudoLabels },
}

/// A frozen pseudo-label teacher loaded from another run's checkpoint folder.
struct Specialist<B: Backend> {
    dir: PathBuf,
    net: TwinNet<B>,
}

pub struct Trainer<B: TwinAutodiffBackend> {
    config: TrainConfig,
    run_dir: PathBuf,
    device: B::Device,
    trainee: Trainee<B>,
    optim: TwinOptimizer<B>,
    state: TrainerState,
    data: Datasets,
    log: EventLog,
    losses: TaskLosses,
    /// Phase the trainer has set itself up for; `None` forces a set-up.
    phase: Option<usize>,
    mitigation: Mitigation<B>,
    /// The weight EMA, when `optim.ema_decay > 0`.
    ema: Option<WeightEma<B::InnerBackend>>,
    /// The pseudo-label teacher of `alternate`/`joint` with `pseudo_labels`: its own weight EMA.
    teacher: Option<WeightEma<B::InnerBackend>>,
    /// The specialists the pseudo-label settings name, per task in [`Task::ALL`] order.
    specialists: [Option<Specialist<B::InnerBackend>>; 3],
    /// The fixed batch of each task the task-conflict meter uses, read at the first evaluation.
    conflict_batches: Option<Vec<TaskBatch>>,
    /// This trainer's place among the replicas of a data-parallel run; `None` trains alone.
    replica: Option<Replica<B::InnerBackend>>,
    /// The devices of this node's replicas, by local rank (for the per-replica step record).
    replica_devices: Vec<String>,
}

impl<B: TwinAutodiffBackend> Trainer<B> {
    /// A new run in `run_dir`, or the continuation of the one there (`resume`).
    pub fn new(config: TrainConfig, run_dir: &Path, resume: bool, device: B::Device, mut log: EventLog) -> Result<Self> {
        let mut messages = Vec::new();
        let data = open_datasets(&config, &mut |m| messages.push(m))?;
        let classes = PerTask::from_fn(|task| data.validation.class_names(task));
        let mut model = config.model_config(classes[Task::Det].len(), classes[Task::Seg].len(), classes[Task::Cls].len());
        if B::device_memory(&device).is_none() {
            // On the CPU a step's activations live in this machine's memory.
            memory::check_fits(&model, &config.data, memory::available_bytes())?;
        }
        let mut optim = TwinOptimizer::new(&config.optim);
        let (mut ema_net, mut teacher_net) = (None, None);
        // A run killed before its first checkpoint has nothing to resume: it starts over.
        let resume_from = match resume {
            true => checkpoint::find(run_dir, &CheckpointKind::Last).ok(),
            false => None,
        };
        if resume && resume_from.is_none() {
            if let Some(kept) = log.restart()? {
                messages.push(format!(
                    "no checkpoint to resume from: starting over from step 0 (the killed attempt's events moved to {})",
                    kept.display()
                ));
            }
        }
        let mut pretrained = None;
        let (trainee, state) = if let Some(dir) = resume_from {
            let (trainee, state) = checkpoint::load_trainee::<B>(&dir, &device)?;
            if state.classes != classes {
                bail!("{}: the checkpoint's class lists differ from the datasets'", dir.display());
            }
            optim = optim.load(&dir, &device)?;
            ema_net = checkpoint::load_net(&dir, checkpoint::EMA_FILE, &state, &device)?;
            teacher_net = checkpoint::load_net(&dir, checkpoint::TEACHER_FILE, &state, &device)?;
            // Events after the checkpoint belong to the killed run's lost steps.
            log.truncate_after(state.step)?;
            (trainee, state)
        } else {
            let state = TrainerState {
                step: 0,
                positions: PerTask::default(),
                replay_position: Position::default(),
                replay_later_positions: Vec::new(),
                best: PerTask::default(),
                lr_scale: 1.0,
                strategy: config.strategy.clone(),
                strategy_since: 0,
                wall_seconds: 0.0,
                model: model.clone(),
                classes,
                image_size: config.data.image_size,
                pretrained: None,
            };
            let trainee = match &config.model.init {
                Some(dir) => {
                    let (net, init) = checkpoint::load_inference_net::<B>(dir, &device)
                        .with_context(|| format!("model.init: {} is not a readable checkpoint folder", dir.display()))?;
                    if init.classes != state.classes {
                        bail!("model.init: {}: its class lists differ from the datasets'", dir.display());
                    }
                    model = init.model;
                    Trainee::from_net(net, &device)
                }
                None => {
                    let mut trainee = Trainee::seeded(&model, config.seed, &device);
                    if let Some(path) = &config.model.pretrained {
                        let (net, report) = trainee.net.load_pretrained(path)?;
                        trainee.net = net;
                        if let Some(report) = report {
                            messages.push(format!("model.pretrained: {}", report.summary()));
                            // Checkpoints rebuild the imported layers without their GroupNorm.
                            model.reshape.push(Reshape::BatchNorm { layers: report.loaded.iter().cloned().collect() });
                            pretrained = Some(report);
                        }
                    }
                    trainee
                }
            };
            (trainee, TrainerState { model: model.clone(), pretrained, ..state })
        };
        if config.log.tensorboard && log.writes() {
            log.attach_tensorboard(TensorboardLog::rebuild(run_dir, &super::run_dir::read_events(run_dir)?.0, state.classes[Task::Seg].len())?);
        }
        let losses = TaskLosses::new(&config.loss);
        let ema = (config.optim.ema_decay > 0.0)
            .then(|| WeightEma::new(ema_net.unwrap_or_else(|| trainee.net.valid()), config.optim.ema_decay));
        let mut trainer = Self {
            config,
            run_dir: run_dir.to_path_buf(),
            device,
            trainee,
            optim,
            state,
            data,
            log,
            losses,
            phase: None,
            mitigation: Mitigation::None,
            ema,
            teacher: teacher_net.map(|net| WeightEma::new(net, TEACHER_EMA_DECAY)),
            specialists: [None, None, None],
            conflict_batches: None,
            replica: None,
            replica_devices: Vec::new(),
        };
        for message in messages {
            trainer.emit(Event::Warning { step: trainer.state.step, message })?;
        }
        Ok(trainer)
    }

    pub fn state(&self) -> &TrainerState {
        &self.state
    }

    /// Makes this trainer one replica of a data-parallel run; `devices` names
    /// this node's replicas' devices by local rank.
    pub fn join(mut self, replica: Replica<B::InnerBackend>, devices: Vec<String>) -> Self {
        self.replica = Some(replica);
        self.replica_devices = devices;
        self
    }

    /// Whether this trainer evaluates, logs and checkpoints (alone, or replica 0).
    fn is_leader(&self) -> bool {
        self.replica.as_ref().is_none_or(Replica::is_leader)
    }

    /// Everything another replica needs to continue exactly from here: a
    /// `last` checkpoint, and the run's `switch` checkpoint if it has one, packed.
    pub fn start_snapshot(&self) -> Result<Vec<u8>> {
        let folder = snapshot::scratch_dir("replica-snapshot")?;
        self.save_resumable(&folder)?;
        let switch = checkpoint::checkpoint_dir(&self.run_dir, &CheckpointKind::Switch);
        if switch.is_dir() {
            let copy = checkpoint::checkpoint_dir(&folder, &CheckpointKind::Switch);
            std::fs::create_dir_all(&copy)?;
            for entry in std::fs::read_dir(&switch)? {
                let entry = entry?;
                std::fs::copy(entry.path(), copy.join(entry.file_name()))?;
            }
        }
        let packed = snapshot::pack(&folder);
        let _ = std::fs::remove_dir_all(&folder);
        packed
    }

    fn emit(&mut self, event: Event) -> Result<()> {
        self.log.emit(event)
    }

    /// Trains to the configured step count, or until stopped.
    pub fn run(&mut self, control: &Receiver<Control>, device_name: &str) -> Result<FinishReason> {
        let started = Instant::now();
        let wall_before = self.state.wall_seconds;
        let resumed = self.state.step > 0;
        self.emit(Event::Started {
            step: self.state.step,
            total_steps: self.config.steps,
            run_dir: self.run_dir.clone(),
            resumed,
            device: device_name.to_string(),
        })?;
        let size = self.config.data.image_size;
        let batch = self.config.data.batch_size;
        let threads = if self.config.data.threads == 0 { crate::data::loader::default_threads() } else { self.config.data.threads };
        // A replica loads its shard of each batch.
        let shard = self.replica.as_ref().map_or(Shard::default(), |r| Shard { index: r.rank.global, count: r.rank.world });
        let train_loader = |seed: u64| LoaderConfig { threads, shard, ..LoaderConfig::train(size, batch, seed) };
        let seed = |offset: u64| train_loader(self.config.seed.wrapping_add(offset));
        let mut loaders: PerTask<Option<Loader<TaskSource>>> = PerTask::default();
        for (task, source) in self.data.train.iter() {
            loaders[task] = source.clone().map(|source| Loader::starting_at(source, seed(loader_seed(task)), self.state.positions[task])).transpose()?;
        }
        // Replay's buffer loaders, made when first needed (the buffers depend on the strategy in force).
        let mut replays: PerTask<Option<Loader<TaskSource>>> = PerTask::default();
        let mut paused = false;
        let mut images_per_sec = 0.0f32;
        // Controls from other processes, sent from now on (the process with the run folder reads them).
        let mut control_file = self.log.writes().then(|| ControlReader::at_end(&self.run_dir));
        let reason = loop {
            // Control messages: replica 0 reads them (blocking while paused) and
            // passes those that change the run on to the other replicas.
            let mut stop = false;
            for message in self.receive_controls(control, control_file.as_mut(), &mut paused)? {
                match message {
                    Control::Pause | Control::Resume => {}
                    Control::Stop => stop = true,
                    Control::CheckpointNow => self.save_last()?,
                    Control::SetStrategy(strategy) => {
                        // A strategy the run cannot take (sent from elsewhere) does not end it.
                        if let Err(error) = strategy.validate(self.run_shape()) {
                            self.emit(Event::Warning { step: self.state.step, message: format!("ignored strategy {}: {error:#}", strategy.name()) })?;
                            continue;
                        }
                        self.state.strategy = strategy.clone();
                        self.state.strategy_since = self.state.step;
                        self.state.replay_position = Position::default();
                        self.state.replay_later_positions.clear();
                        replays = PerTask::default();
                        self.phase = None;
                        self.emit(Event::StrategyChanged { step: self.state.step, strategy })?;
                    }
                    Control::SetLearningRate(lr) => {
                        if !(lr > 0.0 && lr.is_finite()) {
                            self.emit(Event::Warning { step: self.state.step, message: format!("ignored learning rate {lr}") })?;
                            continue;
                        }
                        // The schedule's shape (and the phase's factor) continue from the new rate.
                        let factor = self.state.strategy.plan(self.state.step, self.run_shape()).lr_factor;
                        let scheduled = learning_rate(&self.config.optim, self.state.step, self.config.steps) * factor;
                        self.state.lr_scale = lr / scheduled;
                        self.emit(Event::LearningRateChanged { step: self.state.step, lr })?;
                    }
                }
            }
            if stop {
                break FinishReason::Stopped;
            }
            if self.state.step >= self.config.steps {
                break FinishReason::Completed;
            }

            // The device is this trainer's for one step (with its evaluation and checkpoint), never while paused.
            let _turn = B::device_turn(&self.device);
            let plan = self.state.strategy.plan(self.state.step, self.run_shape());
            if self.phase != Some(plan.phase) {
                self.enter_phase(plan.phase)?;
            }
            let lr = learning_rate(&self.config.optim, self.state.step, self.config.steps) * plan.lr_factor * self.state.lr_scale;
            let step_start = Instant::now();
            if let Some(replica) = &mut self.replica {
                // The wait for replica 0's controls is not the step's all-reduce.
                replica.take_all_reduce_seconds();
            }
            // In the run's task order: the step's losses sum in it.
            let mut batches = Vec::new();
            for task in plan.tasks.iter() {
                let batch = match (plan.replay == Some(task), loaders[task].as_mut(), &self.data.train[task]) {
                    (false, Some(loader), _) => next_batch(loader, &task.to_string())?,
                    (true, _, Some(source)) => next_batch(self.replay_loader(&mut replays[task], source, task)?, "replay")?,
                    _ => bail!("a {task} step in a run without a {task} dataset ({})", DataConfig::key(task)),
                };
                batches.push(batch);
            }
            for problem in batches.iter().flat_map(TaskBatch::skipped) {
                self.emit(Event::Warning { step: self.state.step, message: format!("skipped {problem}") })?;
            }
            let images = batches.iter().map(TaskBatch::len).sum();
            let losses = self.train_step(&batches, lr)?;
            for (task, loader) in loaders.iter() {
                if let Some(loader) = loader {
                    self.state.positions[task] = loader.position();
                }
            }
            if let Some(task) = plan.replay {
                let position = replays[task].as_ref().map(Loader::position);
                let index = self.order_index(task);
                self.state.set_replay_position(index, position.expect("the replay step made its loader"));
            }
            self.state.step += 1;
            let seconds = step_start.elapsed().as_secs_f32().max(1e-6);
            let device_memory = B::device_memory(&self.device);
            let replicas = self.gather_replica_steps(images, seconds, device_memory)?;
            let images = replicas.as_ref().map_or(images as f32, |all| all.iter().map(|r| r.images_per_sec * r.step_seconds).sum());
            let rate = images / seconds;
            images_per_sec = if images_per_sec == 0.0 { rate } else { 0.9 * images_per_sec + 0.1 * rate };
            self.state.wall_seconds = wall_before + started.elapsed().as_secs_f64();
            self.emit(Event::Step {
                step: self.state.step,
                tasks: plan.tasks,
                losses: losses.tasks,
                penalty: losses.penalty,
                lr,
                images_per_sec,
                device_memory,
            })?;
            if let Some(replicas) = replicas {
                self.emit(Event::Replicas { step: self.state.step, replicas })?;
            }
            let last = self.state.step == self.config.steps;
            if (self.state.step % self.config.eval.every == 0 || last) && self.is_leader() {
                self.evaluate()?;
            }
            if self.state.step % self.config.checkpoint.every == 0 || last {
                self.save_last()?;
            }
        };
        if reason == FinishReason::Stopped {
            self.save_last()?;
        }
        if let Some(replica) = self.replica.take() {
            replica.finish();
        }
        self.state.wall_seconds = wall_before + started.elapsed().as_secs_f64();
        self.emit(Event::Finished { step: self.state.step, reason, wall_seconds: self.state.wall_seconds })?;
        Ok(reason)
    }

    /// The control messages to act on before this step: replica 0 (or a
    /// trainer alone) reads them from its channel and the run's control file,
    /// waiting while paused, and sends the other replicas those that change
    /// the run; pause and resume stay its own.
    fn receive_controls(&mut self, control: &Receiver<Control>, mut file: Option<&mut ControlReader>, paused: &mut bool) -> Result<Vec<Control>> {
        let mut controls = Vec::new();
        if self.is_leader() {
            'receive: loop {
                let mut messages = Vec::new();
                for line in file.as_mut().map(|reader| reader.poll()).unwrap_or_default() {
                    match line {
                        Ok(line) => {
                            self.emit(Event::ControlReceived { step: self.state.step, id: line.id })?;
                            messages.push(line.control);
                        }
                        Err(why) => self.emit(Event::Warning { step: self.state.step, message: why })?,
                    }
                }
                messages.extend(control.try_recv().ok());
                if messages.is_empty() {
                    if !*paused {
                        break;
                    }
                    match control.recv_timeout(CONTROL_POLL) {
                        Ok(message) => messages.push(message),
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => {
                            controls.push(Control::Stop); // the controller is gone
                            break;
                        }
                    }
                }
                for message in messages {
                    match message {
                        Control::Pause => {
                            *paused = true;
                            self.emit(Event::Paused { step: self.state.step })?;
                        }
                        Control::Resume => {
                            *paused = false;
                            self.emit(Event::Resumed { step: self.state.step })?;
                        }
                        Control::Stop => {
                            controls.push(Control::Stop);
                            break 'receive;
                        }
                        other => controls.push(other),
                    }
                }
            }
        }
        if let Some(replica) = &mut self.replica {
            let sent = match replica.is_leader() {
                true if controls.is_empty() => Some(Vec::new()),
                true => Some(serde_json::to_vec(&controls)?),
                false => None,
            };
            let received = replica.broadcast(sent)?;
            if !received.is_empty() {
                controls = serde_json::from_slice(&received).context("replica 0's control messages")?;
            }
        }
        Ok(controls)
    }

    /// Each replica's images, step time, all-reduce time and memory, gathered
    /// on every replica; `None` for a trainer alone.
    fn gather_replica_steps(&mut self, images: usize, seconds: f32, memory: Option<DeviceMemory>) -> Result<Option<Vec<ReplicaStep>>> {
        let Some(replica) = &mut self.replica else { return Ok(None) };
        let all_reduce = replica.take_all_reduce_seconds() as f32;
        let (in_use, reserved) = memory.map_or((-1.0, -1.0), |m| (mib(m.in_use) as f32, mib(m.reserved) as f32));
        let all = replica.gather(&[images as f32, seconds, all_reduce, in_use, reserved])?;
        let own_node = replica.rank.node;
        let per_node = self.replica_devices.len().max(1);
        let bytes = |mib: f32| (mib as f64 * 1024.0 * 1024.0) as u64;
        let steps = all.iter().enumerate().map(|(rank, v)| {
            let (node, local) = (rank / per_node, rank % per_node);
            let device = match node == own_node {
                true => self.replica_devices.get(local).cloned().unwrap_or_default(),
                false => format!("device {local}"),
            };
            ReplicaStep {
                rank,
                node,
                device,
                images_per_sec: v[0] / v[1].max(1e-6),
                step_seconds: v[1],
                all_reduce_seconds: v[2],
                device_memory: (v[3] >= 0.0).then(|| DeviceMemory { in_use: bytes(v[3]), reserved: bytes(v[4]) }),
            }
        });
        Ok(Some(steps.collect()))
    }

    /// Data-parallel replicas compare a hash of their weights: a mismatch ends the run.
    fn check_replicas_agree(&mut self) -> Result<()> {
        if self.replica.is_none() {
            return Ok(());
        }
        let hash = self.trainee.weights_hash();
        let words: Vec<f32> = hash[..16].chunks(2).map(|w| u16::from_le_bytes([w[0], w[1]]) as f32).collect();
        let all = self.replica.as_mut().expect("checked above").gather(&words)?;
        if let Some(rank) = all.iter().position(|w| *w != all[0]) {
            bail!("step {}: replica {rank}'s weights differ from replica 0's: the replicas no longer train one network", self.state.step);
        }
        Ok(())
    }

    /// Sets the network up for a phase of the strategy in force: freezing,
    /// the switch snapshot, the distillation or pseudo-label teacher, the EWC anchor.
    fn enter_phase(&mut self, phase: usize) -> Result<()> {
        self.trainee = self.trainee.clone().unfreeze();
        self.mitigation = Mitigation::None;
        let strategy = self.state.strategy.clone();
        let labels = strategy.pseudo_labels(phase);
        self.load_specialists(labels.as_ref())?;
        // `alternate`/`joint` with pseudo-labels: a teacher EMA from the current
        // weights (kept when resuming, or when the strategy is only retuned),
        // unless specialists teach every task of the run.
        let specialists_only = self.run_shape().tasks.iter().all(|task| self.specialists[task as usize].is_some());
        match labels.filter(|_| strategy.sequence().is_none() && !specialists_only) {
            Some(_) => {
                if self.teacher.is_none() {
                    self.teacher = Some(WeightEma::new(self.trainee.net.valid(), TEACHER_EMA_DECAY));
                }
            }
            None => self.teacher = None,
        }
        if let Some(schedule) = strategy.schedule(self.run_shape()).filter(|_| phase >= 1) {
            let earlier = schedule.earlier(phase);
            let snapshot = self.switch_snapshot(schedule.switches[phase - 1])?;
            match strategy.get().at_switch() {
                AtSwitch::Nothing => {}
                AtSwitch::Freeze(scope) => self.trainee = self.trainee.clone().freeze(scope),
                AtSwitch::Distill { weight, temperature } => {
                    self.mitigation = Mitigation::Distill { teacher: snapshot.net.valid(), tasks: earlier, weight, temperature };
                }
                AtSwitch::Anchor { lambda, batches } => {
                    let ewc = self.estimate_fisher(&snapshot, earlier, lambda, batches)?;
                    self.mitigation = Mitigation::Ewc(ewc);
                }
                AtSwitch::PseudoLabel(labels) => {
                    self.mitigation = Mitigation::Pseudo { teacher: snapshot.net.valid(), tasks: earlier, labels };
                }
            }
        }
        self.phase = Some(phase);
        let description = strategy.describe_phase(phase, self.run_shape());
        self.emit(Event::Phase { step: self.state.step, phase, description })
    }

    /// Loads the specialists `labels` name (kept while the folder stays the
    /// same), and drops those it no longer names.
    fn load_specialists(&mut self, labels: Option<&PseudoLabels>) -> Result<()> {
        for task in Task::ALL {
            let slot = &mut self.specialists[task as usize];
            *slot = match labels.and_then(|labels| labels.teacher(task)) {
                None => None,
                Some(dir) if slot.as_ref().is_some_and(|s| &s.dir == dir) => slot.take(),
                Some(dir) => {
                    let key = task.key();
                    let (net, teacher) = checkpoint::load_inference_net::<B::InnerBackend>(dir, &self.device)
                        .with_context(|| format!("strategy.pseudo_labels.{key}_teacher: {} is not a readable checkpoint folder", dir.display()))?;
                    if teacher.classes[task].is_empty() {
                        bail!("strategy.pseudo_labels.{key}_teacher: {}: the network has no {task} head (its run did not train {task})", dir.display());
                    }
                    if teacher.classes[task] != self.state.classes[task] {
                        bail!("strategy.pseudo_labels.{key}_teacher: {}: its {task} classes differ from the dataset's", dir.display());
                    }
                    Some(Specialist { dir: dir.clone(), net })
                }
            };
        }
        Ok(())
    }

    /// Pseudo-label teachers of `tasks`: the specialists where named, else `default`.
    fn pseudo_teachers<'a>(
        &'a self,
        tasks: TaskSet,
        default: Option<&'a TwinNet<B::InnerBackend>>,
        labels: PseudoLabels,
    ) -> CrossTask<'a, B::InnerBackend> {
        let teachers = Task::ALL.map(|task| self.specialists[task as usize].as_ref().map(|s| &s.net).or(default));
        CrossTask { tasks, kind: CrossKind::Pseudo { teachers, labels } }
    }

    /// Where `task` stands in the sequential order of the strategy in force.
    fn order_index(&self, task: Task) -> usize {
        let schedule = self.state.strategy.schedule(self.run_shape());
        schedule.and_then(|s| s.order.iter().position(|&t| t == task)).unwrap_or(0)
    }

    /// Replay's buffer loader of `task` in `slot`, made on first use from the
    /// strategy's buffer of `source` (listed in the run folder), at the saved position.
    fn replay_loader<'a, S: BufferSource>(&self, slot: &'a mut Option<Loader<S>>, source: &S, task: Task) -> Result<&'a mut Loader<S>> {
        if slot.is_none() {
            let Some(buffer) = self.state.strategy.get().replay_buffer() else {
                bail!("a replay step without a replay buffer");
            };
            let index = self.order_index(task);
            let seed = self.config.seed.wrapping_add(2);
            let subset = make_buffer(source, buffer, seed, &buffer_file(&self.run_dir, task, index))?;
            let (size, batch) = (self.config.data.image_size, self.config.data.batch_size);
            // A buffer smaller than a batch still gives (short) batches.
            let config = LoaderConfig { threads: 1, drop_last: false, ..LoaderConfig::train(size, batch, seed) };
            *slot = Some(Loader::starting_at(subset, config, self.state.replay_position_of(index))?);
        }
        Ok(slot.as_mut().expect("made above"))
    }

    /// The network as it was at the latest task switch (`switch_step`, or
    /// when the strategy took over, if later): saved when the switch happens,
    /// read back when a run resumes after it.
    fn switch_snapshot(&mut self, switch_step: usize) -> Result<Trainee<B>> {
        let switch = checkpoint::checkpoint_dir(&self.run_dir, &CheckpointKind::Switch);
        let phase_start = switch_step.max(self.state.strategy_since);
        if let Ok(state) = checkpoint::read_state(&switch) {
            let same_strategy = state.strategy == self.state.strategy && state.strategy_since == self.state.strategy_since;
            if same_strategy && (phase_start..=self.state.step).contains(&state.step) {
                return Ok(checkpoint::load_trainee::<B>(&switch, &self.device)?.0);
            }
        }
        let path = checkpoint::save(&self.run_dir, &CheckpointKind::Switch, &self.trainee, &self.state, |_| Ok(()))?;
        self.emit(Event::Checkpoint { step: self.state.step, kind: "switch".into(), path })?;
        Ok(self.trainee.clone())
    }

    /// EWC's Fisher estimate at the switch, on `fisher_batches` of each
    /// earlier task; data-parallel replicas take turns at the batches and sum
    /// their estimates.
    fn estimate_fisher(&mut self, snapshot: &Trainee<B>, tasks: TaskSet, lambda: f32, batches: usize) -> Result<Ewc<B>> {
        let size = self.config.data.image_size;
        // A fixed, separate sample stream, so a resumed run estimates the same Fisher.
        let loader = |seed| LoaderConfig { threads: 1, ..LoaderConfig::train(size, self.config.data.batch_size, seed) };
        let seed = self.config.seed.wrapping_add(17);
        let (rank, world) = self.replica.as_ref().map_or((0, 1), |r| (r.rank.global, r.rank.world));
        let mut losses = Vec::new();
        for task in tasks.iter() {
            let task_batches = self.training_batches(task, loader(seed), batches)?;
            let mine = task_batches.iter().enumerate().filter(|(i, _)| i % world == rank);
            let task_losses = mine.map(|(_, batch)| self.task_loss_of(&snapshot.net, batch)).collect();
            losses.push((task, task_batches.len(), task_losses));
        }
        let replica = &mut self.replica;
        Ewc::estimate(&snapshot.net, losses, lambda, &mut |estimate| match replica {
            Some(replica) => replica.sum_tensors(estimate),
            None => Ok(estimate),
        })
    }

    /// The first `count` batches of `task`'s training set, as `config` loads them.
    fn training_batches(&self, task: Task, config: LoaderConfig, count: usize) -> Result<Vec<TaskBatch>> {
        let source = self.data.train[task].clone();
        let source = source.with_context(|| format!("the run has no {task} dataset ({})", DataConfig::key(task)))?;
        Ok(Loader::new(source, config)?.take(count).collect())
    }

    /// `batch`'s loss on its labels, computed with `net` (EWC's Fisher, the conflict meter).
    fn task_loss_of(&self, net: &TwinNet<B>, batch: &TaskBatch) -> Tensor<B, 1> {
        let mut heads = net.forward_heads(batch.inputs().images::<B>(&self.device), batch.task().into());
        self.losses.labelled(batch, &mut heads, &self.device).value
    }

    /// The run's tasks and length, as the strategy schedules them.
    fn run_shape(&self) -> RunShape {
        self.config.run_shape()
    }

    /// What supervises the heads each batch has no labels for this step, if anything.
    fn cross_task(&self) -> Option<CrossTask<'_, B::InnerBackend>> {
        let cross = match &self.mitigation {
            Mitigation::Distill { teacher, tasks, weight, temperature } => {
                Some(CrossTask { tasks: *tasks, kind: CrossKind::Distill { teacher, weight: *weight, temperature: *temperature } })
            }
            Mitigation::Pseudo { teacher, tasks, labels } => Some(self.pseudo_teachers(*tasks, Some(teacher), labels.clone())),
            // `alternate`/`joint` (the sequential family has no pseudo-labels in phase 0): every task of the run.
            _ => self.state.strategy.pseudo_labels(0).map(|labels| {
                self.pseudo_teachers(self.run_shape().tasks, self.teacher.as_ref().map(|ema| &ema.net), labels)
            }),
        };
        cross.filter(|cross| !matches!(&cross.kind, CrossKind::Pseudo { labels, .. } if self.state.step < labels.start_step))
    }

    fn train_step(&mut self, batches: &[TaskBatch], lr: f64) -> Result<StepLosses> {
        let strategy = self.state.strategy.clone();
        let weigh = |trainee: &Trainee<B>, task: Task, loss: Tensor<B, 1>| match strategy.weighting() {
            Weighting::Fixed => loss.mul_scalar(strategy.weight(task)),
            Weighting::Uncertainty => trainee.uncertainty_weighted(task, loss),
        };
        let net = &self.trainee.net;
        let mut penalty: Option<Tensor<B, 1>> = None;
        let cross = self.cross_task();
        // Per batch: its task, its labelled loss and value, and the cross-task terms on its images.
        let mut labelled = Vec::new();
        for batch in batches {
            let task = batch.task();
            // With teachers for other tasks, one shared pass gives every head's outputs on the same images.
            let others = cross.as_ref().map_or(TaskSet::default(), |cross| cross.tasks.without(task));
            let images = batch.inputs().images::<B>(&self.device);
            let mut heads = net.forward_heads(images.clone(), others.with(task));
            let loss = self.losses.labelled(batch, &mut heads, &self.device);
            let value = scalar(&loss.value)?;
            let mut terms = None;
            if let Some(cross) = &cross {
                for term in self.losses.cross(cross, others, heads, images.inner(), batch.inputs(), &self.device) {
                    accumulate(&mut penalty, term.clone());
                    accumulate(&mut terms, term);
                }
            }
            labelled.push((task, loss, value, terms));
        }
        let ewc = match &self.mitigation {
            Mitigation::Ewc(ewc) => Some(ewc.penalty(net)),
            _ => None,
        };
        if let Some(ewc) = &ewc {
            accumulate(&mut penalty, ewc.clone());
        }
        let penalty_value = penalty.as_ref().map(scalar).transpose()?;
        let values: Vec<(Task, &TaskLoss<B>, f32)> = labelled.iter().map(|(task, loss, value, _)| (*task, loss, *value)).collect();
        let (scales, values, penalty_value) = self.whole_batch_losses(&values, penalty_value)?;
        let mut out = StepLosses { tasks: PerTask::default(), penalty: penalty_value };
        // Each task's weighted loss with the cross-task terms on its images.
        let mut objectives = Vec::new();
        for (((task, loss, _, terms), scale), value) in labelled.into_iter().zip(scales).zip(values) {
            out.tasks[task] = Some(value);
            let loss = match scale {
                Some(scale) => loss.value.mul_scalar(scale),
                None => loss.value,
            };
            objectives.push((weigh(&self.trainee, task, loss), terms));
        }
        let method = strategy.gradients();
        if method.is_sum() || objectives.len() < 2 {
            let mut total: Option<Tensor<B, 1>> = None;
            for (objective, _) in objectives {
                accumulate(&mut total, objective);
            }
            if let Some(p) = penalty {
                accumulate(&mut total, p);
            }
            let grads = total.context("a step with no task")?.backward();
            self.trainee = self.optim.step(lr, self.trainee.clone(), grads, self.replica.as_mut())?;
        } else {
            self.surgery_step(objectives, ewc, method, lr)?;
        }
        for ema in self.ema.iter_mut().chain(self.teacher.iter_mut()) {
            ema.update(&self.trainee.net.valid(), self.state.step + 1);
        }
        Ok(out)
    }

    /// A step whose task gradients are combined by a gradient-surgery method:
    /// one backward pass per task (its objective with the cross-task terms on
    /// its images) and one for a penalty, averaged over the replicas before
    /// they are combined, so that a data-parallel run combines the whole batch's.
    fn surgery_step(&mut self, objectives: Vec<(Tensor<B, 1>, Option<Tensor<B, 1>>)>, ewc: Option<Tensor<B, 1>>, method: GradientCombination, lr: f64) -> Result<()> {
        let backward = |loss: Tensor<B, 1>| GradientsParams::from_grads(loss.backward(), &self.trainee);
        let mut tasks: Vec<GradientsParams> = objectives
            .into_iter()
            .map(|(objective, terms)| backward(match terms {
                Some(terms) => objective + terms,
                None => objective,
            }))
            .collect();
        let mut unshared = ewc.map(backward);
        if let Some(replica) = &mut self.replica {
            let mut groups: Vec<&mut GradientsParams> = tasks.iter_mut().chain(unshared.iter_mut()).collect();
            replica.mean_gradients::<B, _>(&self.trainee, &mut groups)?;
        }
        let (grads, _) = task_gradients::combine(&self.trainee, &tasks, unshared.as_ref(), method, self.config.seed, self.state.step);
        self.trainee = self.optim.step_params(lr, self.trainee.clone(), grads);
        Ok(())
    }

    /// In a data-parallel run, what makes the replicas' mean gradient the
    /// whole batch's: per task the factor on this replica's loss
    /// (`replicas · own normaliser / whole batch's normaliser`), the whole
    /// batch's loss values, and the penalty averaged over the replicas, from
    /// one sum over the replicas. Alone: no factor, the values as they are.
    fn whole_batch_losses(&mut self, labelled: &[(Task, &TaskLoss<B>, f32)], penalty: Option<f32>) -> Result<(Vec<Option<f32>>, Vec<f32>, Option<f32>)> {
        let Some(replica) = &mut self.replica else {
            return Ok((vec![None; labelled.len()], labelled.iter().map(|(.., value)| *value).collect(), penalty));
        };
        let mut sums = vec![0.0; 2 * Task::ALL.len() + 1];
        for (task, loss, value) in labelled {
            let i = 2 * *task as usize;
            sums[i] = loss.normaliser;
            sums[i + 1] = value * loss.normaliser.max(1.0);
        }
        sums[2 * Task::ALL.len()] = penalty.unwrap_or(0.0);
        let sums = replica.sum(&sums)?;
        let world = replica.rank.world as f32;
        let mut scales = Vec::new();
        let mut values = Vec::new();
        for (task, loss, _) in labelled {
            let i = 2 * *task as usize;
            let whole = sums[i].max(1.0);
            scales.push(Some(world * loss.normaliser.max(1.0) / whole));
            values.push(sums[i + 1] / whole);
        }
        Ok((scales, values, penalty.map(|_| sums[2 * Task::ALL.len()] / world)))
    }

    fn evaluate(&mut self) -> Result<()> {
        let settings = ValidationSettings {
            image_size: self.config.data.image_size,
            batch_size: self.config.data.batch_size,
            threads: self.config.data.threads,
            postprocess: self.config.eval.postprocess(),
            keep_predictions: timeline::TIMELINE_IMAGES,
        };
        let net = match &self.ema {
            Some(ema) => ema.net.clone(),
            None => self.trainee.net.valid(),
        };
        let result = validate(&net, &self.data.validation, &settings, &self.device, &mut |_, _| std::ops::ControlFlow::Continue(()))?;
        timeline::write_step(&self.run_dir, self.state.step, &self.data.validation, &result.kept)?;
        let metrics = PerTask::from_fn(|task| result.metric(task));
        let improved = metrics.map(|task, metric| metric.is_some_and(|metric| metric > self.state.best[task]));
        for (task, best) in self.state.best.iter_mut() {
            *best = best.max(metrics[task].unwrap_or(0.0));
        }
        let mut pairs = self.measure_conflict()?;
        let det_seg = pairs.iter().position(|pair| pair.tasks == [Task::Det, Task::Seg]).map(|i| pairs.remove(i).cosines);
        let record = EvalRecord {
            step: self.state.step,
            metric: metrics,
            forgetting: metrics.map(|task, metric| metric.map(|metric| self.state.best[task] - metric)),
            per_class: PerTask::from_fn(|task| {
                let values = result.per_class(task).unwrap_or_default();
                self.state.classes[task].iter().cloned().zip(values).collect()
            }),
            pixel_acc: result.seg.as_ref().map(|seg| seg.pixel_accuracy().unwrap_or(0.0)),
            top5: result.cls.as_ref().and_then(|cls| cls.top5()),
            conflict: det_seg,
            cls_conflicts: pairs,
        };
        self.emit(Event::Eval(record))?;
        for task in metrics.tasks().iter() {
            let kind = CheckpointKind::best(task);
            // A task's first evaluation writes its best checkpoint whatever it
            // scored, so a short run has every `best-<task>` a command may name.
            let first = checkpoint::find(&self.run_dir, &kind).is_err();
            if improved[task] || first {
                let ema = &self.ema;
                let path = checkpoint::save(&self.run_dir, &kind, &self.trainee, &self.state, |dir| save_kept(dir, checkpoint::EMA_FILE, ema))?;
                self.emit(Event::Checkpoint { step: self.state.step, kind: kind.name().into(), path })?;
            }
        }
        Ok(())
    }

    /// The task-conflict meter of every pair of the run's tasks on the network
    /// as it trains (not the EMA), on one fixed batch of each task's training
    /// images (the first, unaugmented).
    fn measure_conflict(&mut self) -> Result<Vec<PairConflict>> {
        let tasks = self.run_shape().tasks;
        if tasks.len() < 2 {
            return Ok(Vec::new());
        }
        if self.conflict_batches.is_none() {
            let config = LoaderConfig { threads: 1, ..LoaderConfig::eval(self.config.data.image_size, self.config.data.batch_size) };
            let mut batches = Vec::new();
            for task in tasks.iter() {
                let batch = self.training_batches(task, config.clone(), 1)?.pop();
                batches.push(batch.with_context(|| format!("no {task} batch for the conflict meter"))?);
            }
            self.conflict_batches = Some(batches);
        }
        let net = &self.trainee.net;
        let batches = self.conflict_batches.as_ref().expect("loaded above").iter();
        let gradients: Vec<_> = batches.map(|batch| (batch.task(), conflict::shared_gradient(net, self.task_loss_of(net, batch)))).collect();
        Ok(conflict::pairs(&gradients))
    }

    fn save_last(&mut self) -> Result<()> {
        // Reads every weight back from the device (also between steps: Checkpoint now, Stop).
        let _turn = B::device_turn(&self.device);
        self.check_replicas_agree()?;
        if !self.is_leader() {
            return Ok(());
        }
        let path = self.save_resumable(&self.run_dir)?;
        self.emit(Event::Checkpoint { step: self.state.step, kind: "last".into(), path })
    }

    /// Writes the `last` checkpoint of `run_dir` with everything a resumed run
    /// needs: weights, optimiser state, the weight EMA and the teacher.
    fn save_resumable(&self, run_dir: &Path) -> Result<PathBuf> {
        let (optim, ema, teacher) = (&self.optim, &self.ema, &self.teacher);
        checkpoint::save(run_dir, &CheckpointKind::Last, &self.trainee, &self.state, |dir| {
            optim.save(dir)?;
            save_kept(dir, checkpoint::EMA_FILE, ema)?;
            save_kept(dir, checkpoint::TEACHER_FILE, teacher)
        })
    }
}

/// What each task's training loader adds to the run's seed (as runs have always drawn them).
fn loader_seed(task: Task) -> u64 {
    match task {
        Task::Det => 0,
        Task::Seg => 1,
        Task::Cls => 3,
    }
}

/// Writes a weight average the trainer keeps (if it keeps one) as `file`.
fn save_kept<B: Backend>(dir: &Path, file: &str, ema: &Option<WeightEma<B>>) -> Result<()> {
    match ema {
        Some(ema) => checkpoint::save_net(dir, file, &ema.net),
        None => Ok(()),
    }
}

/// Adds `term` to the sum in `slot` (the first term starts it).
fn accumulate<B: Backend>(slot: &mut Option<Tensor<B, 1>>, term: Tensor<B, 1>) {
    *slot = Some(match slot.take() {
        Some(sum) => sum + term,
        None => term,
    });
}

fn next_batch<T>(loader: &mut impl Iterator<Item = T>, what: &str) -> Result<T> {
    loader.next().with_context(|| format!("the {what} loader ran dry (every sample failed to load?)"))
}

fn scalar<B: AutodiffBackend>(t: &Tensor<B, 1>) -> Result<f32> {
    let value: f32 = t.clone().into_scalar().elem();
    if !value.is_finite() {
        bail!("the loss became {value}: lower the learning rate (optim.lr) or enable clipping (optim.grad_clip)");
    }
    Ok(value)
}
