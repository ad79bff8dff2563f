//! The memory a training step needs, estimated before a run starts, so a batch
//! that cannot fit is refused with the figure (instead of the process aborting
//! on "memory allocation failed" minutes in).
//!
//! The estimate counts the network's convolution outputs (each followed by a
//! GroupNorm and a SiLU; autodiff keeps what the backward pass needs) at a
//! small input and scales them by the pixel count, which is exact for every
//! stride when the size is a multiple of 32.

use anyhow::{bail, Result};
use burn::backend::Flex;

use super::config::DataConfig;
use crate::model::{macs, ModelConfig, TwinNet};

/// Bytes one training step holds per convolution output value per image,
/// measured with `bench train` (peak resident set less the idle process, over
/// the counted outputs × 4 bytes) on model sizes n and s at 96–512 px.
const BYTES_PER_CONV_OUTPUT: f64 = 4.0 * 6.0;

/// The side of the input the network is counted at (a multiple of 32).
const PROBE_SIZE: u32 = 64;

/// Estimated bytes of one training step of `model` on a batch of `data`.
pub fn training_bytes(model: &ModelConfig, data: &DataConfig) -> f64 {
    let net = TwinNet::<Flex>::new(model, &Default::default());
    let probe = burn::tensor::Tensor::<Flex, 4>::zeros([1, 3, PROBE_SIZE as usize, PROBE_SIZE as usize], &Default::default());
    let ((), work) = macs::count(|| {
        net.forward_heads(probe, net.tasks());
    });
    let scale = (data.image_size as f64 / PROBE_SIZE as f64).powi(2);
    let per_image = work.outputs as f64 * scale * BYTES_PER_CONV_OUTPUT + 3.0 * (data.image_size as f64).powi(2) * 4.0;
    per_image * data.batch_size as f64
}

/// The memory this machine has available now (`MemAvailable`), Linux only.
pub fn available_bytes() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? * 1024.0)
}

/// Refuses a batch whose step would need more than `available` bytes.
pub fn check_fits(model: &ModelConfig, data: &DataConfig, available: Option<f64>) -> Result<()> {
    let Some(available) = available else { return Ok(()) };
    let needed = training_bytes(model, data);
    if needed > available {
        let gib = |b: f64| b / (1u64 << 30) as f64;
        bail!(
            "data.batch_size = {} at data.image_size = {}: a training step needs about {:.1} GiB, more than the {:.1} GiB \
             this machine has available; lower data.batch_size or data.image_size",
            data.batch_size,
            data.image_size,
            gib(needed),
            gib(available)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::TrainConfig;

    #[test]
    fn a_step_that_cannot_fit_is_refused_naming_its_keys() {
        let config = TrainConfig::load_preset("quick", &[]).unwrap();
        let model = config.model_config(6, 9, 0);
        let small = training_bytes(&model, &config.data);
        let mut bigger = config.data.clone();
        bigger.image_size *= 2;
        bigger.batch_size *= 2;
        // Twice the side and twice the batch: eight times the values.
        let ratio = training_bytes(&model, &bigger) / small;
        assert!((ratio - 8.0).abs() < 1e-9, "{ratio}");
        assert!(check_fits(&model, &config.data, Some(2.0 * small)).is_ok());
        assert!(check_fits(&model, &config.data, None).is_ok());
        let err = check_fits(&model, &config.data, Some(small / 2.0)).unwrap_err().to_string();
        assert!(err.contains("data.batch_size = 16 at data.image_size = 96") && err.contains("more than"), "{err}");
    }
}
