//! GroupNorm followed by SiLU on the CPU backend, fused: per (sample, group)
//! row, one pass for the statistics and one for the output; backward, one
//! more pass accumulating the group sums. The rows are spread over the rayon
//! pool. The maths is `group_norm.rs`'s.

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::f32_tensor;

/// Sizes of one normalisation: rows are (sample, group) pairs of `channels/groups · pixels` values.
struct Rows {
    groups: usize,
    per_group: usize,
    pixels: usize,
}

impl Rows {
    fn new(x: &FlexTensor, groups: usize) -> Self {
        let shape = x.layout().shape();
        Self { groups, per_group: shape[1] / groups, pixels: shape[2] * shape[3] }
    }

    fn len(&self) -> usize {
        self.per_group * self.pixels
    }

    /// The channel of row `row`'s `k`-th channel.
    fn channel(&self, row: usize, k: usize) -> usize {
        (row % self.groups) * self.per_group + k
    }
}

/// Mean and 1/σ of one row (two passes, f64 sums).
fn statistics(row: &[f32], epsilon: f64) -> (f32, f32) {
    let count = row.len() as f64;
    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / count;
    let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / count;
    (mean as f32, (1.0 / (var + epsilon).sqrt()) as f32)
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

pub fn forward(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, groups: usize, epsilon: f64) -> FlexTensor {
    let rows = Rows::new(&x, groups);
    let shape = x.layout().shape().to_vec();
    let (x, gamma, beta) = (x.to_contiguous(), gamma.to_contiguous(), beta.to_contiguous());
    let (x, gamma, beta) = (x.storage::<f32>(), gamma.storage::<f32>(), beta.storage::<f32>());
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(rows.len()).zip(x.par_chunks(rows.len())).enumerate().for_each(|(r, (out, x))| {
        let (mean, inv_std) = statistics(x, epsilon);
        for k in 0..rows.per_group {
            let channel = rows.channel(r, k);
            let scale = gamma[channel] * inv_std;
            let shift = beta[channel] - mean * scale;
            let span = k * rows.pixels..(k + 1) * rows.pixels;
            for (y, &v) in out[span.clone()].iter_mut().zip(&x[span]) {
                let z = v * scale + shift;
                *y = z * sigmoid(z);
            }
        }
    });
    f32_tensor(out, shape)
}

/// Gradients with respect to x, γ and β.
pub fn backward(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    groups: usize,
    epsilon: f64,
    output_grad: FlexTensor,
) -> [FlexTensor; 3] {
    let rows = Rows::new(&x, groups);
    let shape = x.layout().shape().to_vec();
    let channels = shape[1];
    let (x, gamma, beta, dy) = (x.to_contiguous(), gamma.to_contiguous(), beta.to_contiguous(), output_grad.to_contiguous());
    let (x, gamma, beta, dy) = (x.storage::<f32>(), gamma.storage::<f32>(), beta.storage::<f32>(), dy.storage::<f32>());
    let mut dx = vec![0.0f32; x.len()];
    // Per row: its channels' partial dγ and dβ (summed over the samples below).
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(rows.len())
        .zip(x.par_chunks(rows.len()))
        .zip(dy.par_chunks(rows.len()))
        .enumerate()
        .map(|(r, ((dx, x), dy))| {
            let (mean, inv_std) = statistics(x, epsilon);
            let (mut d_gamma, mut d_beta) = (vec![0.0f32; rows.per_group], vec![0.0f32; rows.per_group]);
            let (mut sum_g, mut sum_g_x_hat) = (0.0f64, 0.0f64);
            for k in 0..rows.per_group {
                let channel = rows.channel(r, k);
                let (g_scale, b_shift) = (gamma[channel], beta[channel]);
                let (mut db, mut dg, mut sg, mut sgx) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
                let span = k * rows.pixels..(k + 1) * rows.pixels;
                for ((d, &v), &dy) in dx[span.clone()].iter_mut().zip(&x[span.clone()]).zip(&dy[span]) {
                    let x_hat = (v - mean) * inv_std;
                    let z = x_hat * g_scale + b_shift;
                    let s = sigmoid(z);
                    let dz = dy * s * (1.0 + z * (1.0 - s));
                    db += dz;
                    dg += dz * x_hat;
                    let g = dz * g_scale;
                    sg += g;
                    sgx += g * x_hat;
                    *d = g;
                }
                d_beta[k] = db;
                d_gamma[k] = dg;
                sum_g += sg as f64;
                sum_g_x_hat += sgx as f64;
            }
            let count = rows.len() as f64;
            let (mean_g, mean_g_x_hat) = ((sum_g / count) as f32, (sum_g_x_hat / count) as f32);
            for (d, &v) in dx.iter_mut().zip(x) {
                let x_hat = (v - mean) * inv_std;
                *d = (*d - mean_g - x_hat * mean_g_x_hat) * inv_std;
            }
            (d_gamma, d_beta)
        })
        .collect();
    let (mut d_gamma, mut d_beta) = (vec![0.0f32; channels], vec![0.0f32; channels]);
    for (r, (dg, db)) in partials.iter().enumerate() {
        for k in 0..rows.per_group {
            d_gamma[rows.channel(r, k)] += dg[k];
            d_beta[rows.channel(r, k)] += db[k];
        }
    }
    [f32_tensor(dx, shape), f32_tensor(d_gamma, vec![channels]), f32_tensor(d_beta, vec![channels])]
}
