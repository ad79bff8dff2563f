//! GroupNorm followed by SiLU on the CPU backend, fused: per (sample, group)
//! row, one pass for the statistics and one for the output; backward, one
//! more pass accumulating the group sums. The rows are spread over the rayon
//! pool. The maths is `group_norm.rs`'s.
//!
//! The row loops keep [`LANES`] independent running sums and compute SiLU's
//! exponential with arithmetic only (`math::exp`), so they vectorise; they run
//! with the widest SIMD the CPU has (pulp's runtime dispatch: AVX2 + FMA on
//! most x86-64), where the default target is SSE2. Scalar sums and libm's
//! `expf` had made this a sixth of a training step.

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::f32_tensor;
use super::math::exp;

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

/// Running sums per loop: independent ones, so the row loops vectorise.
const LANES: usize = 8;

/// Σ f(v) over `values` in f64, as `LANES` running sums.
#[inline(always)]
fn sum_f64(values: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    let mut sums = [0.0f64; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder().iter().map(|&v| f(v as f64)).sum::<f64>();
    for chunk in chunks {
        for (sum, &v) in sums.iter_mut().zip(chunk) {
            *sum += f(v as f64);
        }
    }
    sums.iter().sum::<f64>() + rest
}

/// Mean and 1/σ of one row (two passes, f64 sums).
#[inline(always)]
fn statistics(row: &[f32], epsilon: f64) -> (f32, f32) {
    let count = row.len() as f64;
    let mean = sum_f64(row, |v| v) / count;
    let var = sum_f64(row, |v| (v - mean).powi(2)) / count;
    (mean as f32, (1.0 / (var + epsilon).sqrt()) as f32)
}

#[inline(always)]
fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + exp(-z))
}

/// One (sample, group) row of the input, with what normalising it needs.
struct Row<'a> {
    rows: &'a Rows,
    index: usize,
    gamma: &'a [f32],
    beta: &'a [f32],
    epsilon: f64,
    x: &'a [f32],
}

impl Row<'_> {
    /// γ and β of the row's `k`-th channel, and that channel's span of the row.
    #[inline(always)]
    fn channel(&self, k: usize) -> (f32, f32, std::ops::Range<usize>) {
        let channel = self.rows.channel(self.index, k);
        (self.gamma[channel], self.beta[channel], k * self.rows.pixels..(k + 1) * self.rows.pixels)
    }
}

/// One row's output `z·sigmoid(z)`, `z = x̂·γ + β`; a pulp op so that it is
/// compiled for the SIMD [`pulp::Arch`] finds (`with_simd` and everything it
/// calls inline into the target-feature function).
struct ForwardRow<'a> {
    row: Row<'a>,
    out: &'a mut [f32],
}

impl pulp::WithSimd for ForwardRow<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Self { row, out } = self;
        let (mean, inv_std) = statistics(row.x, row.epsilon);
        for k in 0..row.rows.per_group {
            let (gamma, beta, span) = row.channel(k);
            let (scale, shift) = (gamma * inv_std, beta - mean * gamma * inv_std);
            for (y, &v) in out[span.clone()].iter_mut().zip(&row.x[span]) {
                let z = v * scale + shift;
                *y = z * sigmoid(z);
            }
        }
    }
}

pub fn forward(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, groups: usize, epsilon: f64) -> FlexTensor {
    let rows = Rows::new(&x, groups);
    let shape = x.layout().shape().to_vec();
    let (x, gamma, beta) = (x.to_contiguous(), gamma.to_contiguous(), beta.to_contiguous());
    let (x, gamma, beta) = (x.storage::<f32>(), gamma.storage::<f32>(), beta.storage::<f32>());
    let mut out = vec![0.0f32; x.len()];
    let simd = pulp::Arch::new();
    out.par_chunks_mut(rows.len()).zip(x.par_chunks(rows.len())).enumerate().for_each(|(index, (out, x))| {
        let row = Row { rows: &rows, index, gamma, beta, epsilon, x };
        simd.dispatch(ForwardRow { row, out });
    });
    f32_tensor(out, shape)
}

/// Σ a and Σ a·b over two slices, as `LANES` running sums each.
#[inline(always)]
fn sum_and_dot(a: &[f32], b: impl Fn(usize) -> f32) -> (f32, f32) {
    let (mut sum, mut dot) = ([0.0f32; LANES], [0.0f32; LANES]);
    let chunks = a.chunks_exact(LANES);
    let start = a.len() - chunks.remainder().len();
    for (c, chunk) in chunks.enumerate() {
        for i in 0..LANES {
            sum[i] += chunk[i];
            dot[i] += chunk[i] * b(c * LANES + i);
        }
    }
    let (mut sum, mut dot) = (sum.iter().sum::<f32>(), dot.iter().sum::<f32>());
    for (i, &v) in a.iter().enumerate().skip(start) {
        sum += v;
        dot += v * b(i);
    }
    (sum, dot)
}

/// One row's input gradient into `dx` (with `dy` the output gradient), and
/// its channels' partial dγ and dβ; a pulp op like [`ForwardRow`]. Three
/// element-wise passes per channel (dz; the sums Σdz and Σdz·x̂; dx) instead
/// of one with four running sums: each is a loop the compiler vectorises.
struct BackwardRow<'a> {
    row: Row<'a>,
    dy: &'a [f32],
    dx: &'a mut [f32],
}

impl pulp::WithSimd for BackwardRow<'_> {
    type Output = (Vec<f32>, Vec<f32>);

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> Self::Output {
        let Self { row, dy, dx } = self;
        let (mean, inv_std) = statistics(row.x, row.epsilon);
        let x_hat = |v: f32| (v - mean) * inv_std;
        let per_group = row.rows.per_group;
        let (mut d_gamma, mut d_beta) = (vec![0.0f32; per_group], vec![0.0f32; per_group]);
        // With g = dz·γ: Σg = γ·Σdz and Σg·x̂ = γ·Σdz·x̂ over the group.
        let (mut sum_g, mut sum_g_x_hat) = (0.0f64, 0.0f64);
        for k in 0..per_group {
            let (gamma, beta, span) = row.channel(k);
            let (x, dz) = (&row.x[span.clone()], &mut dx[span.clone()]);
            for ((d, &v), &dy) in dz.iter_mut().zip(x).zip(&dy[span]) {
                let z = x_hat(v) * gamma + beta;
                let s = sigmoid(z);
                *d = dy * s * (1.0 + z * (1.0 - s));
            }
            let (sum_dz, sum_dz_x_hat) = sum_and_dot(dz, |i| x_hat(x[i]));
            d_beta[k] = sum_dz;
            d_gamma[k] = sum_dz_x_hat;
            sum_g += (gamma * sum_dz) as f64;
            sum_g_x_hat += (gamma * sum_dz_x_hat) as f64;
        }
        let count = row.rows.len() as f64;
        let (mean_g, mean_g_x_hat) = ((sum_g / count) as f32, (sum_g_x_hat / count) as f32);
        for k in 0..per_group {
            let (gamma, _, span) = row.channel(k);
            for (d, &v) in dx[span.clone()].iter_mut().zip(&row.x[span]) {
                *d = (*d * gamma - mean_g - x_hat(v) * mean_g_x_hat) * inv_std;
            }
        }
        (d_gamma, d_beta)
    }
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
    let simd = pulp::Arch::new();
    // Per row: its channels' partial dγ and dβ (summed over the samples below).
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(rows.len())
        .zip(x.par_chunks(rows.len()))
        .zip(dy.par_chunks(rows.len()))
        .enumerate()
        .map(|(index, ((dx, x), dy))| simd.dispatch(BackwardRow { row: Row { rows: &rows, index, gamma, beta, epsilon, x }, dy, dx }))
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
