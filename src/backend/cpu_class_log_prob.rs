//! The class log-probability per pixel on the CPU backend (the maths is
//! `class_log_prob.rs`'s). A pixel's channels lie `H·W` apart, so each image
//! is walked channel by channel with every pixel at once: one pass for the
//! largest logit, one for `Σ exp(z − max)`; the gradient recomputes both.
//! Loops vectorise (`math::exp`) and run with the CPU's widest SIMD (pulp);
//! images in parallel. burn's version is six broadcast ops forward and as
//! many backward, through burn-flex's strided iterator.

use burn::tensor::DType;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::f32_tensor;
use super::math::exp;

/// Whether this kernel takes these tensors: f32 logits, i32 or i64 classes.
pub fn supported(logits: &FlexTensor, classes: &FlexTensor) -> bool {
    logits.dtype() == DType::F32 && matches!(classes.dtype(), DType::I64 | DType::I32)
}

/// The classes as indices (the kernel's input is small: a value per pixel).
fn indices(classes: FlexTensor) -> Vec<usize> {
    let classes = classes.to_contiguous();
    match classes.dtype() {
        DType::I64 => classes.storage::<i64>().iter().map(|&c| c as usize).collect(),
        _ => classes.storage::<i32>().iter().map(|&c| c as usize).collect(),
    }
}

/// Per pixel of one image `[C, P]`: the largest logit, and `Σ exp(z − max)`.
#[inline(always)]
fn max_and_sum(z: &[f32], pixels: usize) -> (Vec<f32>, Vec<f32>) {
    let mut max = z[..pixels].to_vec();
    for channel in z.chunks_exact(pixels).skip(1) {
        for (m, &v) in max.iter_mut().zip(channel) {
            *m = m.max(v);
        }
    }
    let mut sum = vec![0.0f32; pixels];
    for channel in z.chunks_exact(pixels) {
        for ((s, &v), &m) in sum.iter_mut().zip(channel).zip(&max) {
            *s += exp(v - m);
        }
    }
    (max, sum)
}

/// One image's log-probabilities; a pulp op, so it is compiled for the SIMD
/// [`pulp::Arch`] finds (everything it calls inlines into it).
struct ForwardImage<'a> {
    z: &'a [f32],
    classes: &'a [usize],
    out: &'a mut [f32],
}

impl pulp::WithSimd for ForwardImage<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let pixels = self.out.len();
        let (max, sum) = max_and_sum(self.z, pixels);
        for (p, out) in self.out.iter_mut().enumerate() {
            *out = self.z[self.classes[p] * pixels + p] - max[p] - sum[p].ln();
        }
    }
}

/// One image's gradient `dy · ([c = t] − p_c)`; a pulp op like [`ForwardImage`].
struct BackwardImage<'a> {
    z: &'a [f32],
    classes: &'a [usize],
    dy: &'a [f32],
    dz: &'a mut [f32],
}

impl pulp::WithSimd for BackwardImage<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let pixels = self.dy.len();
        let (max, sum) = max_and_sum(self.z, pixels);
        // dy / Σ, so each element costs one exponential and a multiply.
        let scale: Vec<f32> = self.dy.iter().zip(&sum).map(|(&g, &s)| g / s).collect();
        for (dz, z) in self.dz.chunks_exact_mut(pixels).zip(self.z.chunks_exact(pixels)) {
            for (((d, &v), &m), &k) in dz.iter_mut().zip(z).zip(&max).zip(&scale) {
                *d = -exp(v - m) * k;
            }
        }
        for (p, &class) in self.classes.iter().enumerate() {
            self.dz[class * pixels + p] += self.dy[p];
        }
    }
}

/// `[N, C, H, W]` logits and `[N, H, W]` classes → `[N, H, W]` log-probabilities.
pub fn forward(logits: FlexTensor, classes: FlexTensor) -> FlexTensor {
    let shape = logits.layout().shape().to_vec();
    let (image, pixels) = (shape[1] * shape[2] * shape[3], shape[2] * shape[3]);
    let (logits, classes) = (logits.to_contiguous(), indices(classes));
    let z = logits.storage::<f32>();
    let mut out = vec![0.0f32; shape[0] * pixels];
    let simd = pulp::Arch::new();
    out.par_chunks_mut(pixels).zip(z.par_chunks(image)).zip(classes.par_chunks(pixels)).for_each(|((out, z), classes)| {
        simd.dispatch(ForwardImage { z, classes, out });
    });
    f32_tensor(out, [shape[0], shape[2], shape[3]])
}

/// The gradient with respect to the logits, given the output's `[N, H, W]`.
pub fn backward(logits: FlexTensor, classes: FlexTensor, output_grad: FlexTensor) -> FlexTensor {
    let shape = logits.layout().shape().to_vec();
    let (image, pixels) = (shape[1] * shape[2] * shape[3], shape[2] * shape[3]);
    let (logits, classes, output_grad) = (logits.to_contiguous(), indices(classes), output_grad.to_contiguous());
    let (z, dy) = (logits.storage::<f32>(), output_grad.storage::<f32>());
    let mut dz = vec![0.0f32; z.len()];
    let simd = pulp::Arch::new();
    dz.par_chunks_mut(image).zip(z.par_chunks(image)).zip(classes.par_chunks(pixels)).zip(dy.par_chunks(pixels)).for_each(
        |(((dz, z), classes), dy)| simd.dispatch(BackwardImage { z, classes, dy, dz }),
    );
    f32_tensor(dz, shape)
}
