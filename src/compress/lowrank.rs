//! Low-rank factorization: a convolution's weight W [C_out, C_in·k·k] is
//! replaced by its truncated SVD U_r Σ_r V_rᵀ, run as a k×k convolution to r
//! channels (√Σ_r V_rᵀ) followed by a 1×1 convolution (U_r √Σ_r). The rank
//! keeps a stated fraction of W's energy (Σσ²), and a layer is factorized only
//! where the pair costs fewer multiply-accumulates: r·(C_in·k² + C_out) < C_out·C_in·k².

use std::collections::BTreeMap;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use faer::Mat;

use crate::model::{EditableLayers, Reshape};

/// The smallest rank whose singular values (descending) keep `energy` of Σσ².
pub fn rank_for_energy(singular: &[f64], energy: f64) -> usize {
    let total: f64 = singular.iter().map(|s| s * s).sum();
    let mut kept = 0.0;
    for (i, s) in singular.iter().enumerate() {
        kept += s * s;
        if kept >= energy * total * (1.0 - 1e-12) {
            return i + 1;
        }
    }
    singular.len().max(1)
}

/// A matrix [rows, cols] (row-major) split by its SVD: the singular values
/// (descending) and, at rank r, `first` [r, cols] = √Σ_r V_rᵀ and `second`
/// [rows, r] = U_r √Σ_r, so that `second · first` is the best rank-r approximation.
pub struct Factors {
    pub singular: Vec<f64>,
    svd: faer::linalg::solvers::Svd<f64>,
    rows: usize,
    cols: usize,
}

impl Factors {
    pub fn of(values: &[f32], rows: usize, cols: usize) -> anyhow::Result<Self> {
        let matrix = Mat::<f64>::from_fn(rows, cols, |i, j| values[i * cols + j] as f64);
        let svd = matrix.thin_svd().map_err(|e| anyhow::anyhow!("the SVD did not converge: {e:?}"))?;
        let singular = (0..rows.min(cols)).map(|i| svd.S()[i]).collect();
        Ok(Self { singular, svd, rows, cols })
    }

    /// (`first` [r·cols], `second` [rows·r]), row-major.
    pub fn at_rank(&self, rank: usize) -> (Vec<f32>, Vec<f32>) {
        let (u, v) = (self.svd.U(), self.svd.V());
        let root: Vec<f64> = self.singular[..rank].iter().map(|s| s.sqrt()).collect();
        let root = &root;
        let first = (0..rank).flat_map(|k| (0..self.cols).map(move |j| (root[k] * v[(j, k)]) as f32)).collect();
        let second = (0..self.rows).flat_map(|i| (0..rank).map(move |k| (u[(i, k)] * root[k]) as f32)).collect();
        (first, second)
    }
}

/// Whether a rank-`rank` pair costs fewer multiply-accumulates than the convolution.
pub fn is_cheaper(rank: usize, channels_out: usize, taps_in: usize) -> bool {
    rank * (taps_in + channels_out) < channels_out * taps_in
}

/// What factorizing did.
pub struct Factorized {
    pub reshape: Reshape,
    /// Layers looked at and layers factorized.
    pub layers: usize,
    pub factorized: usize,
}

/// Factorizes every not yet factorized layer at the rank keeping `energy`,
/// where that is cheaper (`only_if_cheaper`; tests turn it off).
pub fn factorize<B: Backend>(net: &mut impl EditableLayers<B>, energy: f64, only_if_cheaper: bool) -> anyhow::Result<Factorized> {
    let (mut ranks, mut layers, mut failure) = (BTreeMap::new(), 0, None);
    net.visit_layers("", &mut |path, layer| {
        if layer.is_factorized() || failure.is_some() {
            return;
        }
        layers += 1;
        let weight = layer.input_conv().weight.val();
        let [channels_out, channels_in, kh, kw] = weight.dims();
        let taps = channels_in * kh * kw;
        let values: Vec<f32> = weight.to_data().convert::<f32>().into_vec().expect("float weights");
        let factors = match Factors::of(&values, channels_out, taps) {
            Ok(f) => f,
            Err(e) => return failure = Some(e.context(format!("{path}: cannot factorize"))),
        };
        let rank = rank_for_energy(&factors.singular, energy);
        if only_if_cheaper && !is_cheaper(rank, channels_out, taps) {
            return;
        }
        let (first, second) = factors.at_rank(rank);
        let device = weight.device();
        let first = Tensor::from_data(TensorData::new(first, [rank, channels_in, kh, kw]), &device);
        let second = Tensor::from_data(TensorData::new(second, [channels_out, rank, 1, 1]), &device);
        layer.factorize(first, second);
        ranks.insert(path.to_string(), rank);
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let factorized = ranks.len();
    Ok(Factorized { reshape: Reshape::LowRank { ranks }, layers, factorized })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelConfig, ModelSize, TwinNet};
    use burn::backend::Flex;

    #[test]
    fn the_weight_error_at_rank_r_is_the_discarded_energy() {
        let (rows, cols) = (6, 10);
        let values: Vec<f32> = (0..rows * cols).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
        let factors = Factors::of(&values, rows, cols).unwrap();
        assert!(factors.singular.windows(2).all(|w| w[0] >= w[1]));
        for rank in 1..=rows {
            let (first, second) = factors.at_rank(rank);
            let mut error = 0.0;
            for i in 0..rows {
                for j in 0..cols {
                    let approx: f64 = (0..rank).map(|k| second[i * rank + k] as f64 * first[k * cols + j] as f64).sum();
                    error += (values[i * cols + j] as f64 - approx).powi(2);
                }
            }
            let discarded: f64 = factors.singular[rank..].iter().map(|s| s * s).sum();
            assert!((error - discarded).abs() < 1e-4 * (1.0 + discarded), "rank {rank}: error {error}, discarded energy {discarded}");
        }
        assert_eq!(rank_for_energy(&[3.0, 2.0, 1.0], 1.0), 3);
        assert_eq!(rank_for_energy(&[3.0, 2.0, 1.0], 0.9), 2); // 9 + 4 of 14 = 0.93
        assert_eq!(rank_for_energy(&[3.0, 2.0, 1.0], 0.6), 1); // 9 of 14 = 0.64
    }

    #[test]
    fn full_rank_leaves_the_outputs_unchanged_and_the_edit_rebuilds_the_shapes() {
        let mut config = ModelConfig::new(ModelSize::N, 3, 5);
        config.width = Some(0.125);
        let mut net = TwinNet::<Flex>::new(&config, &Default::default());
        let values: Vec<f32> = (0..3 * 64 * 64).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
        let images = Tensor::<Flex, 4>::from_data(TensorData::new(values, [1, 3, 64, 64]), &Default::default());
        let (det, seg) = net.forward_both(images.clone());
        let done = factorize(&mut net, 1.0, false).unwrap();
        assert_eq!(done.factorized, done.layers);
        let (det2, seg2) = net.forward_both(images);
        let diff = |a: Tensor<Flex, 3>, b: Tensor<Flex, 3>| (a - b).abs().max().into_scalar();
        assert!(diff(det.cls_logits, det2.cls_logits) < 1e-4 && diff(det.box_raw, det2.box_raw) < 1e-4);
        assert!((seg - seg2).abs().max().into_scalar() < 1e-4);
        config.reshape = vec![done.reshape];
        use burn::module::Module;
        assert_eq!(TwinNet::<Flex>::new(&config, &Default::default()).num_params(), net.num_params());
    }

    #[test]
    fn only_layers_made_cheaper_are_factorized() {
        assert!(is_cheaper(10, 64, 64 * 9));
        assert!(!is_cheaper(60, 64, 64));
        let mut config = ModelConfig::new(ModelSize::N, 3, 5);
        config.width = Some(0.25);
        let mut net = TwinNet::<Flex>::new(&config, &Default::default());
        use burn::module::Module;
        let params = net.num_params();
        let done = factorize(&mut net, 0.9, true).unwrap();
        assert!(done.factorized > 0 && done.factorized < done.layers, "{} of {}", done.factorized, done.layers);
        assert!(net.num_params() < params);
    }
}
