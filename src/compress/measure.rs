//! What a model costs and scores, measured the same way for the baseline and
//! a compressed variant, their timings interleaved: parameters, weight file size, convolution MACs
//! per image, CPU latency at batch 1 and throughput at batch 16 (the network's
//! forward pass, every head), and every task on the full validation splits.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Result};
use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::model::{macs, Task, TwinNet};
use crate::predictor::{InferenceBackend, Predictor};
use crate::train::checkpoint;
use crate::train::config::TrainConfig;

/// Timed batch-1 passes after [`WARM_UP`] untimed ones.
pub const LATENCY_RUNS: usize = 30;
pub const WARM_UP: usize = 3;
/// The batch of the throughput figure, and how many timed batches.
pub const THROUGHPUT_BATCH: usize = 16;
const THROUGHPUT_RUNS: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub params: usize,
    /// The weight file predictions load (bytes).
    pub file_bytes: u64,
    /// Convolution multiply-accumulates for one image at the run's size.
    pub macs: usize,
    pub latency_ms_median: f64,
    pub latency_ms_p90: f64,
    /// Images per second at batch [`THROUGHPUT_BATCH`].
    pub images_per_sec: f64,
    /// VOC-area AP50 over the detection validation split; each task's metric
    /// only in a run with the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map50: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miou: Option<f64>,
    /// Classification top-1 over its validation split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top1: Option<f64>,
}

impl Measurement {
    /// `task`'s metric (mAP50, mIoU, top-1), when the run has the task.
    pub fn metric(&self, task: Task) -> Option<f64> {
        match task {
            Task::Det => self.map50,
            Task::Seg => self.miou,
            Task::Cls => self.top1,
        }
    }
}

/// Reports (stage, done, total); `Break` cancels.
pub type OnProgress<'a> = &'a mut dyn FnMut(&str, usize, usize) -> ControlFlow<()>;

/// Measures the baseline and a variant (each as loaded from its checkpoint
/// folder, which gives the file size). Their passes are timed interleaved, in
/// alternating order, so both see the same machine: on a shared, noisy CPU a
/// ratio of separately timed medians swings by ±20 %.
pub fn measure_pair(baseline: &Predictor, variant: &Predictor, config: &TrainConfig, progress: OnProgress) -> Result<[Measurement; 2]> {
    let size = baseline.state.image_size as usize;
    let input = |batch: usize| probe_images(batch, size);
    let nets = [baseline.cpu_net()?, variant.cpu_net()?];
    let total = WARM_UP + LATENCY_RUNS + 1 + THROUGHPUT_RUNS;
    let mut latencies = [Vec::with_capacity(LATENCY_RUNS), Vec::with_capacity(LATENCY_RUNS)];
    let (one, batch) = (input(1), input(THROUGHPUT_BATCH));
    let mut batch_seconds = [0.0; 2];
    for run in 0..total {
        if progress("timing (baseline and variant, interleaved)", run, total).is_break() {
            bail!("cancelled");
        }
        for which in if run % 2 == 0 { [0, 1] } else { [1, 0] } {
            if run < WARM_UP + LATENCY_RUNS {
                let seconds = time_pass(nets[which], one.clone());
                if run >= WARM_UP {
                    latencies[which].push(seconds * 1e3);
                }
            } else {
                let seconds = time_pass(nets[which], batch.clone());
                // The first batch-16 pass warms up.
                if run > WARM_UP + LATENCY_RUNS {
                    batch_seconds[which] += seconds;
                }
            }
        }
    }
    let mut measured = Vec::new();
    for (which, (predictor, label)) in [(baseline, "baseline"), (variant, "variant")].into_iter().enumerate() {
        let net = predictor.cpu_net()?;
        let ((), work) = macs::count(|| {
            net.forward_heads(input(1), net.tasks());
        });
        let macs = work.macs;
        let stage = format!("{label}: validating");
        let full = predictor.validate_full(config, &mut |done, total| progress(&stage, done, total))?;
        let latencies = &mut latencies[which];
        latencies.sort_by(f64::total_cmp);
        measured.push(Measurement {
            params: net.num_params(),
            file_bytes: weight_file_bytes(&predictor.checkpoint),
            macs,
            latency_ms_median: percentile(latencies, 0.5),
            latency_ms_p90: percentile(latencies, 0.9),
            images_per_sec: (THROUGHPUT_RUNS * THROUGHPUT_BATCH) as f64 / batch_seconds[which],
            map50: full.validation.metric(Task::Det),
            miou: full.validation.metric(Task::Seg),
            top1: full.validation.metric(Task::Cls),
        });
    }
    let variant = measured.pop().expect("two");
    let baseline = measured.pop().expect("two");
    Ok([baseline, variant])
}

/// A fixed batch of `batch` images of `size`² pixels, values in [-1, 1): the
/// input of every timed pass (timing does not depend on what the images show).
pub fn probe_images(batch: usize, size: usize) -> Tensor<InferenceBackend, 4> {
    let values: Vec<f32> = (0..batch * 3 * size * size).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
    Tensor::from_data(TensorData::new(values, [batch, 3, size, size]), &Default::default())
}

/// Seconds for one forward pass of every head, outputs read back.
pub fn time_pass(net: &TwinNet<InferenceBackend>, images: Tensor<InferenceBackend, 4>) -> f64 {
    let start = Instant::now();
    let heads = net.forward_heads(images, net.tasks());
    let _ = heads.det.map(|det| (det.cls_logits.into_data(), det.box_raw.into_data()));
    let _ = (heads.seg.map(Tensor::into_data), heads.cls.map(Tensor::into_data));
    start.elapsed().as_secs_f64()
}

/// The nearest-rank percentile `q` of ascending `values`.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// Size of the weight file a checkpoint folder's predictions load.
fn weight_file_bytes(dir: &Path) -> u64 {
    let file = checkpoint::inference_weights_file(dir);
    std::fs::metadata(file).map(|m| m.len()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=30).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 15.0);
        assert_eq!(percentile(&values, 0.9), 27.0);
        assert_eq!(percentile(&[4.0], 0.9), 4.0);
    }
}
