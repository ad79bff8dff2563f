//! 2-D convolution and its two gradients on the CPU backend, as im2col + GEMM
//! per image, the images spread over the rayon pool.
//!
//! For image `n`, with `col[n]` the `[Cin·kh·kw, Hout·Wout]` patch matrix of
//! its input and `W` the weight viewed as `[Cout, Cin·kh·kw]`:
//! - forward: `y[n] = W · col[n]`;
//! - input gradient: `dx[n] = col2im(Wᵀ · dy[n])`;
//! - weight gradient: `dW = Σₙ dy[n] · col[n]ᵀ`.
//!
//! Only groups = 1 and f32 are handled here; callers fall back to burn's own
//! kernels otherwise ([`supported`]).

use burn::tensor::ops::ConvOptions;
use burn::tensor::Shape;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{all_f32, f32_tensor};

/// Whether these kernels handle the convolution.
pub fn supported(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> bool {
    options.groups == 1 && all_f32(&[x, weight])
}

/// Sizes of one convolution, from its input and weight shapes.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    batch: usize,
    channels_in: usize,
    height: usize,
    width: usize,
    channels_out: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    height_out: usize,
    width_out: usize,
}

impl Geometry {
    fn new(x: &Shape, weight: &Shape, options: &ConvOptions<2>) -> Self {
        let [batch, channels_in, height, width] = [x[0], x[1], x[2], x[3]];
        let [channels_out, _, kh, kw] = [weight[0], weight[1], weight[2], weight[3]];
        let out = |size: usize, k: usize, axis: usize| {
            (size + 2 * options.padding[axis] - options.dilation[axis] * (k - 1) - 1) / options.stride[axis] + 1
        };
        Self {
            batch,
            channels_in,
            height,
            width,
            channels_out,
            kernel: [kh, kw],
            stride: options.stride,
            padding: options.padding,
            dilation: options.dilation,
            height_out: out(height, kh, 0),
            width_out: out(width, kw, 1),
        }
    }

    /// Rows of the patch matrix: Cin·kh·kw.
    fn patch_rows(&self) -> usize {
        self.channels_in * self.kernel[0] * self.kernel[1]
    }

    fn pixels_in(&self) -> usize {
        self.height * self.width
    }

    fn pixels_out(&self) -> usize {
        self.height_out * self.width_out
    }

    /// Values of one input image, and of one output image.
    fn image_len(&self) -> usize {
        self.channels_in * self.pixels_in()
    }

    fn output_len(&self) -> usize {
        self.channels_out * self.pixels_out()
    }

    /// A buffer for one image's patch matrix (none for pointwise convolutions, which need none).
    fn patch_buffer(&self) -> Vec<f32> {
        vec![0.0; if self.is_pointwise() { 0 } else { self.patch_rows() * self.pixels_out() }]
    }

    /// A 1×1, stride-1, unpadded convolution: the image itself is its patch matrix.
    fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }

    /// For a kernel tap along `axis`: the output positions `lo..hi` whose input
    /// position `o·stride + tap·dilation − padding` lies inside the image, and
    /// the input position of `lo`. (Closed form, so the loops below stay
    /// branch-free and vectorise even in the unoptimised test build.)
    fn span(&self, axis: usize, tap: usize) -> (usize, usize, usize) {
        let (size, size_out) = if axis == 0 { (self.height, self.height_out) } else { (self.width, self.width_out) };
        let (stride, offset) = (self.stride[axis], tap * self.dilation[axis]);
        let pad = self.padding[axis];
        let lo = pad.saturating_sub(offset).div_ceil(stride);
        let hi = if size + pad > offset { ((size + pad - offset - 1) / stride + 1).min(size_out) } else { 0 };
        let lo = lo.min(hi);
        (lo, hi, (lo * stride + offset).saturating_sub(pad))
    }

    /// Writes image `image`'s patch matrix `[Cin·kh·kw, Hout·Wout]` into `col`.
    fn im2col(&self, image: &[f32], col: &mut [f32]) {
        let [kh, kw] = self.kernel;
        let (wo_len, pixels_out) = (self.width_out, self.pixels_out());
        let (stride_h, stride_w) = (self.stride[0], self.stride[1]);
        for c in 0..self.channels_in {
            let plane = &image[c * self.pixels_in()..(c + 1) * self.pixels_in()];
            for i in 0..kh {
                let (h_lo, h_hi, h_start) = self.span(0, i);
                for j in 0..kw {
                    let (w_lo, w_hi, w_start) = self.span(1, j);
                    let row = &mut col[((c * kh + i) * kw + j) * pixels_out..][..pixels_out];
                    row[..h_lo * wo_len].fill(0.0);
                    row[h_hi * wo_len..].fill(0.0);
                    for oh in h_lo..h_hi {
                        let h = h_start + (oh - h_lo) * stride_h;
                        let in_row = &plane[h * self.width..(h + 1) * self.width];
                        let out_row = &mut row[oh * wo_len..(oh + 1) * wo_len];
                        out_row[..w_lo].fill(0.0);
                        out_row[w_hi..].fill(0.0);
                        let out_span = &mut out_row[w_lo..w_hi];
                        if stride_w == 1 {
                            out_span.copy_from_slice(&in_row[w_start..w_start + out_span.len()]);
                        } else {
                            for (k, value) in out_span.iter_mut().enumerate() {
                                *value = in_row[w_start + k * stride_w];
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds the patch-matrix gradient `col` back onto the image gradient `image` (col2im).
    fn col2im(&self, col: &[f32], image: &mut [f32]) {
        let [kh, kw] = self.kernel;
        let (wo_len, pixels_out) = (self.width_out, self.pixels_out());
        let (stride_h, stride_w) = (self.stride[0], self.stride[1]);
        image.fill(0.0);
        for c in 0..self.channels_in {
            let plane = &mut image[c * self.pixels_in()..(c + 1) * self.pixels_in()];
            for i in 0..kh {
                let (h_lo, h_hi, h_start) = self.span(0, i);
                for j in 0..kw {
                    let (w_lo, w_hi, w_start) = self.span(1, j);
                    let row = &col[((c * kh + i) * kw + j) * pixels_out..][..pixels_out];
                    for oh in h_lo..h_hi {
                        let h = h_start + (oh - h_lo) * stride_h;
                        let in_row = &mut plane[h * self.width..(h + 1) * self.width];
                        let values = &row[oh * wo_len + w_lo..oh * wo_len + w_hi];
                        if stride_w == 1 {
                            for (target, value) in in_row[w_start..w_start + values.len()].iter_mut().zip(values) {
                                *target += value;
                            }
                        } else {
                            for (k, value) in values.iter().enumerate() {
                                in_row[w_start + k * stride_w] += value;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `dst[m×n] = (accumulate ? dst : 0) + lhs · rhs`, every matrix row-major unless
/// `lhs_transposed` / `rhs_transposed` (then stored as `[k×m]` / `[n×k]`).
#[allow(clippy::too_many_arguments)]
fn gemm(dst: &mut [f32], lhs: &[f32], lhs_transposed: bool, rhs: &[f32], rhs_transposed: bool, m: usize, n: usize, k: usize, accumulate: bool) {
    debug_assert!(dst.len() >= m * n && lhs.len() >= m * k && rhs.len() >= k * n);
    let (lhs_cs, lhs_rs) = if lhs_transposed { (m as isize, 1) } else { (1, k as isize) };
    let (rhs_cs, rhs_rs) = if rhs_transposed { (k as isize, 1) } else { (1, n as isize) };
    // SAFETY: the slices hold the m×n, m×k and k×n matrices the strides describe
    // (checked above in debug builds, guaranteed by the callers' shapes).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs,
            lhs_rs,
            rhs.as_ptr(),
            rhs_cs,
            rhs_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

pub fn conv2d(x: FlexTensor, weight: FlexTensor, options: &ConvOptions<2>) -> FlexTensor {
    let g = Geometry::new(x.layout().shape(), weight.layout().shape(), options);
    let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
    let (x, weight) = (x.storage::<f32>(), weight.storage::<f32>());
    let (rows, pixels_out, image_len, out_len) = (g.patch_rows(), g.pixels_out(), g.image_len(), g.output_len());
    let mut out = vec![0.0f32; g.batch * out_len];
    out.par_chunks_mut(out_len).enumerate().for_each_init(
        || g.patch_buffer(),
        |col, (n, y)| {
            let image = &x[n * image_len..(n + 1) * image_len];
            let patches = if g.is_pointwise() {
                image
            } else {
                g.im2col(image, col);
                col
            };
            gemm(y, weight, false, patches, false, g.channels_out, pixels_out, rows, false);
        },
    );
    f32_tensor(out, [g.batch, g.channels_out, g.height_out, g.width_out])
}

pub fn conv2d_x_backward(x: FlexTensor, weight: FlexTensor, output_grad: FlexTensor, options: &ConvOptions<2>) -> FlexTensor {
    let g = Geometry::new(x.layout().shape(), weight.layout().shape(), options);
    let (weight, output_grad) = (weight.to_contiguous(), output_grad.to_contiguous());
    let (weight, dy) = (weight.storage::<f32>(), output_grad.storage::<f32>());
    let (rows, pixels_out, image_len, out_len) = (g.patch_rows(), g.pixels_out(), g.image_len(), g.output_len());
    let mut dx = vec![0.0f32; g.batch * image_len];
    dx.par_chunks_mut(image_len).enumerate().for_each_init(
        || g.patch_buffer(),
        |col, (n, dx)| {
            let dy = &dy[n * out_len..(n + 1) * out_len];
            if g.is_pointwise() {
                gemm(dx, weight, true, dy, false, rows, pixels_out, g.channels_out, false);
            } else {
                gemm(col, weight, true, dy, false, rows, pixels_out, g.channels_out, false);
                g.col2im(col, dx);
            }
        },
    );
    f32_tensor(dx, [g.batch, g.channels_in, g.height, g.width])
}

/// How many runs the weight gradient splits the images into: a constant, so
/// that the result does not depend on the machine's thread count.
const WEIGHT_GRADIENT_RUNS: usize = 8;

pub fn conv2d_weight_backward(x: FlexTensor, weight: FlexTensor, output_grad: FlexTensor, options: &ConvOptions<2>) -> FlexTensor {
    let g = Geometry::new(x.layout().shape(), weight.layout().shape(), options);
    let (x, output_grad) = (x.to_contiguous(), output_grad.to_contiguous());
    let (x, dy) = (x.storage::<f32>(), output_grad.storage::<f32>());
    let (rows, pixels_out, image_len, out_len) = (g.patch_rows(), g.pixels_out(), g.image_len(), g.output_len());
    let weight_len = g.channels_out * rows;
    // The images are split into a fixed number of runs, each summed into its
    // own buffer in parallel, the buffers then added in order: the sum's order,
    // and so the rounding, is the same however rayon schedules the work
    // (a work-stealing fold would make training runs differ).
    let run_len = g.batch.div_ceil(WEIGHT_GRADIENT_RUNS).max(1);
    let partials: Vec<Vec<f32>> = (0..g.batch.div_ceil(run_len))
        .into_par_iter()
        .map(|run| {
            let start = run * run_len;
            let (mut dw, mut col) = (vec![0.0f32; weight_len], g.patch_buffer());
            for n in start..(start + run_len).min(g.batch) {
                let image = &x[n * image_len..(n + 1) * image_len];
                let patches = if g.is_pointwise() {
                    image
                } else {
                    g.im2col(image, &mut col);
                    &col
                };
                gemm(&mut dw, &dy[n * out_len..(n + 1) * out_len], false, patches, true, g.channels_out, rows, pixels_out, n > start);
            }
            dw
        })
        .collect();
    let mut partials = partials.into_iter();
    let mut dw = partials.next().unwrap_or_else(|| vec![0.0f32; weight_len]);
    for partial in partials {
        dw.iter_mut().zip(&partial).for_each(|(a, b)| *a += b);
    }
    f32_tensor(dw, [g.channels_out, g.channels_in, g.kernel[0], g.kernel[1]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::ops::ModuleOps;
    use burn::tensor::{Distribution, Tensor, TensorPrimitive};

    fn random(shape: [usize; 4], seed: u64) -> FlexTensor {
        let device = Default::default();
        <Flex as burn::tensor::backend::Backend>::seed(&device, seed);
        Tensor::<Flex, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device).into_primitive().tensor()
    }

    fn max_diff(a: FlexTensor, b: FlexTensor) -> f32 {
        let a = Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(a));
        let b = Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(b));
        assert_eq!(a.dims(), b.dims());
        (a - b).abs().max().into_scalar()
    }

    /// Forward and both gradients equal burn's own kernels for every
    /// convolution configuration the network uses (and dilation, odd sizes).
    #[test]
    fn equals_burn_kernels_forward_and_backward() {
        let cases = [
            // (input, weight, stride, padding, dilation)
            ([2, 3, 9, 11], [5, 3, 3, 3], 2, 1, 1),
            ([3, 4, 8, 8], [6, 4, 3, 3], 1, 1, 1),
            ([2, 6, 7, 5], [4, 6, 1, 1], 1, 0, 1),
            ([1, 4, 6, 6], [3, 4, 3, 3], 1, 2, 2),
            ([2, 2, 10, 10], [2, 2, 7, 7], 2, 3, 1),
        ];
        for (i, (xs, ws, s, p, d)) in cases.into_iter().enumerate() {
            let options = ConvOptions::new([s, s], [p, p], [d, d], 1);
            let (x, w) = (random(xs, 2 * i as u64), random(ws, 2 * i as u64 + 1));
            let y = conv2d(x.clone(), w.clone(), &options);
            let expected = Flex::conv2d(x.clone(), w.clone(), None, options.clone());
            let shape = y.layout().shape().clone();
            let dy = random([shape[0], shape[1], shape[2], shape[3]], 100 + i as u64);
            let scale = 1e-5 * (xs[1] * ws[2] * ws[3]) as f32;
            assert!(max_diff(y, expected) < scale, "case {i}: forward");
            let dx = conv2d_x_backward(x.clone(), w.clone(), dy.clone(), &options);
            let dx_expected = Flex::conv2d_x_backward(x.clone(), w.clone(), dy.clone(), options.clone());
            assert!(max_diff(dx, dx_expected) < 1e-5 * (ws[0] * ws[2] * ws[3]) as f32, "case {i}: input gradient");
            let dw = conv2d_weight_backward(x.clone(), w.clone(), dy.clone(), &options);
            let dw_expected = Flex::conv2d_weight_backward(x, w, dy, options);
            assert!(max_diff(dw, dw_expected) < 1e-5 * (xs[0] * xs[2] * xs[3]) as f32, "case {i}: weight gradient");
        }
    }

    /// The weight gradient is the same to the bit whatever the number of
    /// threads: its images are summed in a fixed order.
    #[test]
    fn weight_gradient_does_not_depend_on_the_thread_count() {
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let (x, w, dy) = (random([16, 8, 12, 12], 7), random([8, 8, 3, 3], 8), random([16, 8, 12, 12], 9));
        let with_threads = |threads: usize| -> Vec<u32> {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let dw = pool.install(|| conv2d_weight_backward(x.clone(), w.clone(), dy.clone(), &options));
            let dw = Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(dw));
            dw.into_data().to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
        };
        let one = with_threads(1);
        for threads in [2, 3, 5] {
            assert!(with_threads(threads) == one, "{threads} threads summed the weight gradient differently from one");
        }
    }
}
