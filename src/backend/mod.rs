//! The backends Twinhead runs on, extended with kernels of its own.
//!
//! burn 0.21's CPU backend computes a convolution's gradients through generic
//! fallbacks: the input gradient as a single-threaded transposed convolution,
//! the weight gradient as a convolution over transposed (strided, copied
//! element by element) views. Together they cost more than the forward pass.
//! [`TwinBackend`] is burn's backend-extension mechanism: ops whose default is
//! burn's own kernel (what every GPU backend uses), overridden for the CPU
//! backend by im2col + GEMM kernels parallel over the batch (`cpu_conv`), and
//! for autodiff by a backward step that calls the inner backend's gradients
//! (`autodiff`). GroupNorm + SiLU, the other half of every `ConvNormAct`, is
//! one such op too: burn-flex runs element-wise ops on one thread, a
//! broadcast at a time; the fused kernel makes two passes over each group,
//! all groups in parallel (`cpu_group_norm`; `group_norm` is the version in
//! burn's tensor ops every other backend runs). So is nearest 2× upsampling,
//! which burn-flex copies through a strided iterator (`cpu_upsample`), and the
//! segmentation loss's log-softmax at each pixel's class (`cpu_class_log_prob`).

mod autodiff;
pub mod autotune;
mod class_log_prob;
mod cpu_class_log_prob;
mod cpu_conv;
mod cpu_group_norm;
mod cpu_upsample;
pub mod device;
pub mod group_norm;
mod math;
mod upsample;

use burn::backend::Flex;
use burn::tensor::{DType, TensorData};
use burn_flex::FlexTensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::{ConvOptions, FloatTensor, IntTensor, ModuleOps};
use burn::tensor::{Int, Tensor, TensorPrimitive};

/// Stack size of the threads that load checkpoints: burn deserializes a whole
/// network's record within one stack frame of a few MiB, more than a spawned
/// thread's default 2 MiB (only touched memory is committed).
pub const ENGINE_THREAD_STACK: usize = 64 << 20;

/// A backend with Twinhead's kernels (burn's own where it has none better).
pub trait TwinBackend: Backend {
    /// 2-D convolution without bias.
    fn twin_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        Self::conv2d(x, weight, None, options)
    }

    /// The gradient of [`Self::twin_conv2d`] with respect to its input.
    fn twin_conv2d_x_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_x_backward(x, weight, output_grad, options)
    }

    /// The gradient of [`Self::twin_conv2d`] with respect to its weight.
    fn twin_conv2d_weight_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_weight_backward(x, weight, output_grad, options)
    }

    /// GroupNorm with per-channel γ, β over `groups` groups, then SiLU.
    fn twin_group_norm_silu(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        group_norm::forward_primitives::<Self>(x, gamma, beta, groups, epsilon)
    }

    /// Runs `work`, a sequence of ops, where this backend starts its kernels
    /// fastest; by default on the calling thread.
    fn twin_run<R: Send>(work: impl FnOnce() -> R + Send) -> R {
        work()
    }

    /// Runs `work`, a whole training run, on threads of its own with stacks of
    /// `stack_size` bytes where this backend's kernels want them; by default on
    /// the calling thread.
    fn twin_run_training<R: Send>(stack_size: usize, work: impl FnOnce() -> R + Send) -> R {
        let _ = stack_size;
        work()
    }

    /// Nearest-neighbour 2× upsampling of `[N, C, H, W]`.
    fn twin_upsample2x(x: FloatTensor<Self>) -> FloatTensor<Self> {
        upsample::forward_primitive::<Self>(x)
    }

    /// The gradient of [`Self::twin_upsample2x`] with respect to its input.
    fn twin_upsample2x_backward(output_grad: FloatTensor<Self>) -> FloatTensor<Self> {
        upsample::backward_primitive::<Self>(output_grad)
    }

    /// `log softmax(logits)` over the channels at each pixel's class:
    /// `[N, C, H, W]` logits, `[N, H, W]` classes → `[N, H, W]`.
    fn twin_class_log_prob(logits: FloatTensor<Self>, classes: IntTensor<Self>) -> FloatTensor<Self> {
        class_log_prob::forward_primitive::<Self>(logits, classes)
    }

    /// The gradient of [`Self::twin_class_log_prob`] with respect to the logits.
    fn twin_class_log_prob_backward(logits: FloatTensor<Self>, classes: IntTensor<Self>, output_grad: FloatTensor<Self>) -> FloatTensor<Self> {
        class_log_prob::backward_primitive::<Self>(logits, classes, output_grad)
    }

    /// This device's turn for one unit of work ([`device::DeviceTurn`]): every
    /// GPU is driven by one thread at a time; `None` on the CPU, whose backend
    /// is safe to share between threads.
    fn device_turn(_device: &Self::Device) -> Option<device::DeviceTurn> {
        None
    }

    /// The device's memory pool (GPU runtimes); `None` where there is none (the CPU).
    /// Read on the thread that computes: CubeCL keeps one pool per thread's stream.
    fn device_memory(_device: &Self::Device) -> Option<device::DeviceMemory> {
        None
    }

    /// The gradients of [`Self::twin_group_norm_silu`] with respect to x, γ and β.
    fn twin_group_norm_silu_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
        output_grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3] {
        group_norm::backward_primitives::<Self>(x, gamma, beta, groups, epsilon, output_grad)
    }
}

/// A backend the trainer differentiates through: autodiff over a [`TwinBackend`].
pub trait TwinAutodiffBackend: AutodiffBackend<InnerBackend: TwinBackend> + TwinBackend {}

impl<B> TwinAutodiffBackend for B where B: AutodiffBackend<InnerBackend: TwinBackend> + TwinBackend {}

impl TwinBackend for Flex {
    /// Inside the rayon pool: each kernel's parallel loop then starts on a
    /// worker at once, where from any other thread rayon wakes a worker and
    /// puts the caller to sleep until the loop is done, per op (a third of a
    /// batch-1 forward pass). Inference only: see the autodiff backend's.
    fn twin_run<R: Send>(work: impl FnOnce() -> R + Send) -> R {
        rayon::scope(|_| work())
    }

    /// Inside a rayon pool of the run's own, for the same reason as
    /// `twin_run`. Not the shared pool: burn-autodiff's backward holds a
    /// process-wide graph lock across parallel ops, and a worker waiting inside
    /// one could steal another trainer's pass that waits for that lock (two
    /// trainers deadlocked so). Own workers only ever hold their own run's work.
    fn twin_run_training<R: Send>(stack_size: usize, work: impl FnOnce() -> R + Send) -> R {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(rayon::current_num_threads())
            .stack_size(stack_size)
            .thread_name(|i| format!("trainer-{i}"))
            .build();
        match pool {
            Ok(pool) => pool.install(work),
            // No threads to spare: the run still trains, only slower.
            Err(_) => work(),
        }
    }

    fn twin_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        match cpu_conv::supported(&x, &weight, &options) {
            true => cpu_conv::conv2d(x, weight, &options),
            false => Self::conv2d(x, weight, None, options),
        }
    }

    fn twin_conv2d_x_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        match cpu_conv::supported(&x, &weight, &options) {
            true => cpu_conv::conv2d_x_backward(x, weight, output_grad, &options),
            false => Self::conv2d_x_backward(x, weight, output_grad, options),
        }
    }

    fn twin_conv2d_weight_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        match cpu_conv::supported(&x, &weight, &options) {
            true => cpu_conv::conv2d_weight_backward(x, weight, output_grad, &options),
            false => Self::conv2d_weight_backward(x, weight, output_grad, options),
        }
    }

    fn twin_group_norm_silu(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        match all_f32(&[&x, &gamma, &beta]) {
            true => cpu_group_norm::forward(x, gamma, beta, groups, epsilon),
            false => group_norm::forward_primitives::<Self>(x, gamma, beta, groups, epsilon),
        }
    }

    fn twin_group_norm_silu_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
        output_grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3] {
        match all_f32(&[&x, &gamma, &beta, &output_grad]) {
            true => cpu_group_norm::backward(x, gamma, beta, groups, epsilon, output_grad),
            false => group_norm::backward_primitives::<Self>(x, gamma, beta, groups, epsilon, output_grad),
        }
    }

    fn twin_upsample2x(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match all_f32(&[&x]) {
            true => cpu_upsample::forward(x),
            false => upsample::forward_primitive::<Self>(x),
        }
    }

    fn twin_upsample2x_backward(output_grad: FloatTensor<Self>) -> FloatTensor<Self> {
        match all_f32(&[&output_grad]) {
            true => cpu_upsample::backward(output_grad),
            false => upsample::backward_primitive::<Self>(output_grad),
        }
    }

    fn twin_class_log_prob(logits: FloatTensor<Self>, classes: IntTensor<Self>) -> FloatTensor<Self> {
        match cpu_class_log_prob::supported(&logits, &classes) {
            true => cpu_class_log_prob::forward(logits, classes),
            false => class_log_prob::forward_primitive::<Self>(logits, classes),
        }
    }

    fn twin_class_log_prob_backward(logits: FloatTensor<Self>, classes: IntTensor<Self>, output_grad: FloatTensor<Self>) -> FloatTensor<Self> {
        match cpu_class_log_prob::supported(&logits, &classes) && all_f32(&[&output_grad]) {
            true => cpu_class_log_prob::backward(logits, classes, output_grad),
            false => class_log_prob::backward_primitive::<Self>(logits, classes, output_grad),
        }
    }
}

/// Whether the CPU kernels take these tensors (they compute in f32 only).
fn all_f32(tensors: &[&FlexTensor]) -> bool {
    tensors.iter().all(|t| t.dtype() == DType::F32)
}

/// A CPU kernel's output, as the CPU backend's tensor.
fn f32_tensor(values: Vec<f32>, shape: impl Into<Vec<usize>>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.into()))
}

#[cfg(feature = "cuda")]
impl TwinBackend for burn::backend::Cuda {
    fn device_memory(device: &Self::Device) -> Option<device::DeviceMemory> {
        device::pool_memory::<burn::cubecl::cuda::CudaRuntime>(device)
    }

    fn device_turn(device: &Self::Device) -> Option<device::DeviceTurn> {
        Some(device::DeviceTurn::take::<Self>(&format!("cuda {device:?}"), device))
    }
}

#[cfg(feature = "wgpu")]
impl TwinBackend for burn::backend::Wgpu {
    fn device_memory(device: &Self::Device) -> Option<device::DeviceMemory> {
        device::pool_memory::<burn::backend::wgpu::WgpuRuntime>(device)
    }

    fn device_turn(device: &Self::Device) -> Option<device::DeviceTurn> {
        // wgpu:N and wgpu:cpu may name the same adapter: the key is the burn device they resolve to.
        Some(device::DeviceTurn::take::<Self>(&format!("wgpu {device:?}"), device))
    }
}

/// GroupNorm then SiLU through [`TwinBackend::twin_group_norm_silu`].
pub fn group_norm_silu<B: TwinBackend>(
    x: Tensor<B, 4>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    groups: usize,
    epsilon: f64,
) -> Tensor<B, 4> {
    let [x, gamma, beta] = [x.into_primitive().tensor(), gamma.into_primitive().tensor(), beta.into_primitive().tensor()];
    Tensor::from_primitive(TensorPrimitive::Float(B::twin_group_norm_silu(x, gamma, beta, groups, epsilon)))
}

/// Nearest-neighbour 2× upsampling through [`TwinBackend::twin_upsample2x`].
pub fn upsample2x<B: TwinBackend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    Tensor::from_primitive(TensorPrimitive::Float(B::twin_upsample2x(x.into_primitive().tensor())))
}

/// `log softmax(logits, 1)` at each pixel's class through [`TwinBackend::twin_class_log_prob`].
pub fn class_log_prob<B: TwinBackend>(logits: Tensor<B, 4>, classes: Tensor<B, 3, Int>) -> Tensor<B, 3> {
    let output = B::twin_class_log_prob(logits.into_primitive().tensor(), classes.into_primitive());
    Tensor::from_primitive(TensorPrimitive::Float(output))
}

/// 2-D convolution without bias through [`TwinBackend::twin_conv2d`].
pub fn conv2d<B: TwinBackend>(x: Tensor<B, 4>, weight: Tensor<B, 4>, options: ConvOptions<2>) -> Tensor<B, 4> {
    let output = B::twin_conv2d(x.into_primitive().tensor(), weight.into_primitive().tensor(), options);
    Tensor::from_primitive(TensorPrimitive::Float(output))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Autodiff;
    use burn::tensor::Distribution;

    type A = Autodiff<Flex>;

    /// Through autodiff, the convolution's output and both gradients equal
    /// burn's own convolution's (so the backward step is wired to the right
    /// parents with the right kernels).
    #[test]
    fn autodiff_convolution_equals_burns() {
        let device = Default::default();
        let options = ConvOptions::new([2, 2], [1, 1], [1, 1], 1);
        let x = Tensor::<Flex, 4>::random([2, 3, 9, 8], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<Flex, 4>::random([4, 3, 3, 3], Distribution::Normal(0.0, 1.0), &device);
        let dy = Tensor::<A, 4>::random([2, 4, 5, 4], Distribution::Normal(0.0, 1.0), &device);
        let run = |conv: &dyn Fn(Tensor<A, 4>, Tensor<A, 4>) -> Tensor<A, 4>| {
            let (x, w) = (Tensor::<A, 4>::from_inner(x.clone()).require_grad(), Tensor::<A, 4>::from_inner(w.clone()).require_grad());
            let y = conv(x.clone(), w.clone());
            let grads = (y.clone() * dy.clone()).sum().backward();
            [y.inner(), x.grad(&grads).unwrap(), w.grad(&grads).unwrap()]
        };
        let ours = run(&|x, w| conv2d(x, w, options.clone()));
        let burns = run(&|x, w| burn::tensor::module::conv2d(x, w, None, options.clone()));
        for ((a, b), what) in ours.into_iter().zip(burns).zip(["output", "input gradient", "weight gradient"]) {
            let diff: f32 = (a - b).abs().max().into_scalar();
            assert!(diff < 1e-4, "{what}: differs by {diff}");
        }
    }

    /// Through autodiff, the CPU upsampling kernels give burn's broadcast
    /// version's output and input gradient, exactly (copies and 4-term sums).
    /// The class log-probability and its gradient through autodiff equal
    /// burn's `log_softmax` + `gather` (its autodiff through six ops), for the
    /// CPU kernel and for the tensor-op version with its explicit gradient;
    /// 37 pixels per image, so the vector loops' tails run too.
    #[test]
    fn class_log_prob_equals_log_softmax_then_gather() {
        use burn::tensor::activation::log_softmax;
        let device = Default::default();
        let [n, c, h, w] = [3, 5, 37, 1];
        let logits = Tensor::<Flex, 4>::random([n, c, h, w], Distribution::Normal(0.5, 3.0), &device);
        let classes = Tensor::<Flex, 3, Int>::random([n, h, w], Distribution::Uniform(0.0, c as f64), &device);
        let dy = Tensor::<A, 3>::random([n, h, w], Distribution::Normal(0.0, 1.0), &device);
        let run = |op: &dyn Fn(Tensor<A, 4>, Tensor<A, 3, Int>) -> Tensor<A, 3>| {
            let z = Tensor::<A, 4>::from_inner(logits.clone()).require_grad();
            let y = op(z.clone(), Tensor::from_inner(classes.clone()));
            let grads = (y.clone() * dy.clone()).sum().backward();
            [y.inner().flatten::<1>(0, 2), z.grad(&grads).unwrap().flatten(0, 3)]
        };
        let reference = run(&|z, t| log_softmax(z, 1).gather(1, t.reshape([n, 1, h, w])).reshape([n, h, w]));
        let kernel = run(&|z, t| class_log_prob(z, t));
        // The tensor-op version, its gradient written out, on the inner backend.
        let generic = {
            let prim = |t: Tensor<Flex, 4>| t.into_primitive().tensor();
            let y = class_log_prob::forward_primitive::<Flex>(prim(logits.clone()), classes.clone().into_primitive());
            let dz = class_log_prob::backward_primitive::<Flex>(prim(logits.clone()), classes.clone().into_primitive(), dy.clone().inner().into_primitive().tensor());
            [Tensor::<Flex, 3>::from_primitive(TensorPrimitive::Float(y)).flatten::<1>(0, 2), Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(dz)).flatten(0, 3)]
        };
        for (version, values) in [("kernel", kernel), ("generic", generic)] {
            for ((a, b), what) in values.into_iter().zip(reference.clone()).zip(["output", "logit gradient"]) {
                let excess: f32 = (a.clone() - b.clone()).abs().sub(b.abs().add_scalar(1.0).mul_scalar(1e-5)).max().into_scalar();
                assert!(excess <= 0.0, "{version} {what}: off by {excess} beyond 1e-5");
            }
        }
    }

    #[test]
    fn autodiff_upsampling_equals_the_broadcast_version() {
        let device = Default::default();
        let x = Tensor::<Flex, 4>::random([2, 3, 5, 4], Distribution::Normal(0.0, 1.0), &device);
        let dy = Tensor::<A, 4>::random([2, 3, 10, 8], Distribution::Normal(0.0, 1.0), &device);
        let run = |upsample: &dyn Fn(Tensor<A, 4>) -> Tensor<A, 4>| {
            let x = Tensor::<A, 4>::from_inner(x.clone()).require_grad();
            let y = upsample(x.clone());
            let grads = (y.clone() * dy.clone()).sum().backward();
            [y.inner(), x.grad(&grads).unwrap()]
        };
        let ours = run(&|x| upsample2x(x));
        let broadcast = run(&|x| Tensor::from_primitive(TensorPrimitive::Float(upsample::forward_primitive::<A>(x.into_primitive().tensor()))));
        for ((a, b), what) in ours.into_iter().zip(broadcast).zip(["output", "input gradient"]) {
            let diff: f32 = (a - b).abs().max().into_scalar();
            assert_eq!(diff, 0.0, "{what}: differs by {diff}");
        }
    }
}
