//! Learning-rate schedule: linear warm-up, then cosine decay to a floor.

use super::config::OptimConfig;

/// The learning rate at `step` of a `total`-step run (before strategy and user factors).
pub fn learning_rate(optim: &OptimConfig, step: usize, total: usize) -> f64 {
    if step < optim.warmup_steps {
        return optim.lr * (step + 1) as f64 / optim.warmup_steps as f64;
    }
    let span = total.saturating_sub(optim.warmup_steps).max(1) as f64;
    let progress = ((step - optim.warmup_steps) as f64 / span).min(1.0);
    let floor = optim.lr * optim.min_lr_factor;
    floor + (optim.lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_linearly_then_decays_by_cosine_to_the_floor() {
        let optim = OptimConfig { lr: 1.0, warmup_steps: 10, min_lr_factor: 0.1, ..Default::default() };
        assert!((learning_rate(&optim, 0, 110) - 0.1).abs() < 1e-12);
        assert!((learning_rate(&optim, 9, 110) - 1.0).abs() < 1e-12);
        assert!((learning_rate(&optim, 10, 110) - 1.0).abs() < 1e-12);
        // Half-way through the decay: floor + (peak - floor) / 2.
        assert!((learning_rate(&optim, 60, 110) - 0.55).abs() < 1e-12);
        assert!((learning_rate(&optim, 110, 110) - 0.1).abs() < 1e-12);
    }
}
