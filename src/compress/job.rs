//! One compression, start to end: load a run's checkpoint, apply the recipe's
//! structural methods, fine-tune on both tasks, quantize, write the result as
//! a checkpoint folder `compressed/<method>/`, then measure it and its source
//! side by side and add the row to `compressed/report.json`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use crossbeam_channel::Receiver;

use super::measure::{measure_pair, OnProgress};
use super::method::{Method, Recipe};
use super::report::{Report, Variant};
use super::{int8, lowrank, prune};
use crate::predictor::{InferenceBackend, Predictor};
use crate::train::checkpoint::{self, CheckpointKind, TrainerState, COMPRESSED_DIR};
use crate::train::events::{Control, Event, FinishReason};
use crate::train::run_dir;
use crate::train::strategy::StrategyConfig;
use crate::train::trainee::Trainee;
use crate::backend::device::DeviceSpec;
use crate::train::{start, TrainConfig};

/// Fine-tuning steps when none are given: structural methods need some to
/// recover, int8 alone none.
pub const DEFAULT_FINETUNE_STEPS: usize = 300;
/// Fine-tuning's learning rate, as a fraction of the run's.
pub const FINETUNE_LR_FACTOR: f64 = 0.2;

#[derive(Debug, Clone)]
pub struct CompressRequest {
    pub run_dir: PathBuf,
    pub source: CheckpointKind,
    pub recipe: Recipe,
    /// None: [`DEFAULT_FINETUNE_STEPS`] for a structural recipe, 0 for int8 alone.
    pub finetune_steps: Option<usize>,
}

impl CompressRequest {
    pub fn finetune_steps(&self) -> usize {
        let steps = self.finetune_steps.unwrap_or(if self.recipe.is_structural() { DEFAULT_FINETUNE_STEPS } else { 0 });
        // A smoke test's cap (TWINHEAD_STEPS) holds here too; a bad value is refused when a run starts.
        crate::train::config::steps_cap().ok().flatten().map_or(steps, |cap| steps.min(cap))
    }

    pub fn target(&self) -> CheckpointKind {
        CheckpointKind::Compressed(self.recipe.folder())
    }
}

/// Runs `request`; `progress` hears each stage and may cancel. Returns the report row.
pub fn compress(request: &CompressRequest, progress: OnProgress) -> Result<Variant> {
    let run_dir = &request.run_dir;
    let config = run_dir::read_config(run_dir)?;
    // Loaded once: compressed from a copy, measured as it is.
    let source = Predictor::load(run_dir, &request.source)?;
    let (mut net, mut state) = (source.cpu_net()?.clone(), source.state.clone());
    if int8::any_quantized(&mut net) {
        bail!(
            "{}: this model's weights are already int8; compress a float checkpoint (last, best-det, best-seg or a variant without int8)",
            source.checkpoint.display()
        );
    }
    let steps = request.finetune_steps();
    let compressed_dir = run_dir.join(COMPRESSED_DIR);
    let work = compressed_dir.join(format!("{}.work", request.recipe.folder()));
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("{}: cannot clear", work.display()))?;
    }
    for method in &request.recipe.0 {
        if progress(&format!("applying {method}"), 0, 1).is_break() {
            bail!("cancelled");
        }
        match *method {
            Method::Prune { ratio } => state.model.reshape.push(prune::prune(&mut net, ratio).reshape),
            Method::LowRank { energy } => state.model.reshape.push(lowrank::factorize(&mut net, energy, true)?.reshape),
            Method::Int8 => {}
        }
    }
    if steps > 0 {
        let tuned = finetune(net, &state, &config, &work, steps, progress);
        if tuned.is_err() {
            // Cancelled or failed: nothing of it is kept (the next attempt starts over anyway).
            let _ = std::fs::remove_dir_all(&work);
        }
        net = tuned?;
    }
    if request.recipe.quantizes() {
        int8::quantize(&mut net);
    }
    let target = checkpoint::checkpoint_dir(run_dir, &request.target());
    std::fs::create_dir_all(&compressed_dir).with_context(|| format!("{}: cannot create", compressed_dir.display()))?;
    checkpoint::save_to(&target, &Trainee::from_net(net, &Default::default()), &state, |_| Ok(()))?;
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("{}: cannot remove", work.display()))?;
    }
    let predictor = Predictor::load(run_dir, &request.target())?;
    let [baseline, measured] = measure_pair(&source, &predictor, &config, progress)?;
    let variant = Variant {
        method: request.recipe.to_string(),
        checkpoint: request.target().name(),
        source: request.source.name(),
        finetune_steps: steps,
        measured,
        baseline,
        threads: rayon::current_num_threads(),
        image_size: predictor.state.image_size,
    };
    Report::record(run_dir, variant.clone())?;
    Ok(variant)
}

/// Trains the compressed network on both tasks (alternating) for `steps`, as
/// a run of its own in `work/finetune`, and returns its final weights.
fn finetune(
    net: crate::model::TwinNet<InferenceBackend>,
    state: &TrainerState,
    config: &TrainConfig,
    work: &Path,
    steps: usize,
    progress: OnProgress,
) -> Result<crate::model::TwinNet<InferenceBackend>> {
    let start_dir = work.join("start");
    std::fs::create_dir_all(work).with_context(|| format!("{}: cannot create", work.display()))?;
    checkpoint::save_to(&start_dir, &Trainee::from_net(net, &Default::default()), state, |_| Ok(()))?;
    let mut tune = config.clone();
    tune.name = format!("{} fine-tuning", config.name);
    tune.steps = steps;
    tune.strategy = StrategyConfig::alternate();
    tune.model.init = Some(std::path::absolute(&start_dir)?);
    tune.model.pretrained = None;
    tune.optim.lr *= FINETUNE_LR_FACTOR;
    tune.optim.warmup_steps = tune.optim.warmup_steps.min(steps / 10);
    tune.eval.every = steps;
    tune.checkpoint.every = steps;
    let run = work.join("finetune");
    let handle = start(Some(tune), &run, false, DeviceSpec::Cpu)?;
    let followed = follow(&handle.events, &handle.control, steps, progress);
    let finish = handle.join()?;
    if followed.stopped {
        bail!("cancelled");
    }
    if finish != FinishReason::Completed {
        bail!("fine-tuning did not complete ({finish:?}): {}", followed.error.unwrap_or_default());
    }
    let dir = checkpoint::find(&run, &CheckpointKind::Last)?;
    Ok(checkpoint::load_inference_net::<InferenceBackend>(&dir, &Default::default())?.0)
}

/// How following the fine-tuning run ended.
struct Followed {
    stopped: bool,
    /// The run's error message, if it failed.
    error: Option<String>,
}

/// Relays the fine-tuning run's steps as progress, stopping it when cancelled.
fn follow(events: &Receiver<Event>, control: &crossbeam_channel::Sender<Control>, steps: usize, progress: OnProgress) -> Followed {
    let mut followed = Followed { stopped: false, error: None };
    for event in events.iter() {
        match event {
            Event::Step { step, .. } => {
                if !followed.stopped && progress("fine-tuning", step, steps).is_break() {
                    followed.stopped = true;
                    let _ = control.send(Control::Stop);
                }
            }
            Event::Error { message, .. } => followed.error = Some(message),
            Event::Finished { .. } => break,
            _ => {}
        }
    }
    followed
}
