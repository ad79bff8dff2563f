//! The devices Twinhead computes on: the CPU (burn-flex), CUDA GPUs (feature
//! `cuda`) and whatever GPU wgpu reaches through Vulkan, Metal or DX12
//! (feature `wgpu`), the software Vulkan adapter (Mesa's lavapipe) included.
//! One [`DeviceSpec`] names a device on the command line, in the workbench and
//! in run records; [`DeviceSpec::with_backend`] runs generic code on it.

use std::str::FromStr;

use anyhow::{bail, Result};

use super::TwinBackend;

/// A device as the user names it: `cpu`, `cuda[:N]`, `wgpu[:N]` or `wgpu:cpu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
    Wgpu(WgpuChoice),
}

/// Which wgpu adapter: the N-th of [`wgpu_adapters`] (discrete GPUs first,
/// integrated next, the CPU adapter last), or the software (CPU) adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WgpuChoice {
    Index(usize),
    Software,
}

impl FromStr for DeviceSpec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let index = |rest: &str| rest.parse::<usize>().ok();
        Ok(match s.split_once(':') {
            None if s == "cpu" => Self::Cpu,
            None if s == "cuda" => Self::Cuda(0),
            None if s == "wgpu" => Self::Wgpu(WgpuChoice::Index(0)),
            Some(("cuda", rest)) if index(rest).is_some() => Self::Cuda(index(rest).unwrap_or(0)),
            Some(("wgpu", "cpu")) => Self::Wgpu(WgpuChoice::Software),
            Some(("wgpu", rest)) if index(rest).is_some() => Self::Wgpu(WgpuChoice::Index(index(rest).unwrap_or(0))),
            _ => bail!("device {s:?}: expected cpu, cuda, cuda:N, wgpu, wgpu:N or wgpu:cpu"),
        })
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
            Self::Wgpu(WgpuChoice::Index(i)) => write!(f, "wgpu:{i}"),
            Self::Wgpu(WgpuChoice::Software) => f.write_str("wgpu:cpu"),
        }
    }
}

/// Generic work to run on whichever backend a [`DeviceSpec`] names.
pub trait OnBackend {
    type Output;
    fn run<B: TwinBackend>(self, device: B::Device) -> Self::Output;
}

/// Generic work to run on several devices of one backend (data-parallel replicas).
pub trait OnDevices {
    type Output;
    fn run<B: TwinBackend>(self, devices: Vec<B::Device>) -> Self::Output;
}

impl DeviceSpec {
    /// Whether both devices run on one backend (both CPU, both CUDA or both wgpu).
    pub fn same_kind(self, other: DeviceSpec) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&other)
    }

    /// Runs `work` on the backend of `specs`, which are all of one kind.
    pub fn with_backend_devices<W: OnDevices>(specs: &[DeviceSpec], work: W) -> Result<W::Output> {
        let Some(&first) = specs.first() else { bail!("no device to run on") };
        if specs.iter().any(|d| !d.same_kind(first)) {
            bail!("one run's devices are all of one kind (cpu, cuda or wgpu)");
        }
        match first {
            Self::Cpu => Ok(work.run::<burn::backend::Flex>(specs.iter().map(|_| Default::default()).collect())),
            #[cfg(feature = "cuda")]
            Self::Cuda(_) => {
                let index = |d: &DeviceSpec| if let Self::Cuda(i) = d { *i } else { 0 };
                Ok(work.run::<burn::backend::Cuda>(specs.iter().map(|d| burn::backend::cuda::CudaDevice::new(index(d))).collect()))
            }
            #[cfg(not(feature = "cuda"))]
            Self::Cuda(_) => bail!("{first}: this build has no CUDA support (rebuild with `--features cuda`)"),
            #[cfg(feature = "wgpu")]
            Self::Wgpu(_) => {
                let device = |d: &DeviceSpec| match d {
                    Self::Wgpu(choice) => wgpu_device(*choice),
                    other => bail!("{other}: not a wgpu device"),
                };
                Ok(work.run::<burn::backend::Wgpu>(specs.iter().map(device).collect::<Result<_>>()?))
            }
            #[cfg(not(feature = "wgpu"))]
            Self::Wgpu(_) => bail!("{first}: this build has no wgpu support (rebuild with `--features wgpu`)"),
        }
    }

    /// Checks the device can be used, with a clear message when it cannot (the
    /// GPU runtimes only panic later, deep inside, when no device exists).
    pub fn probe(self) -> Result<()> {
        match self.with_backend(Probe)? {
            Some(sum) if sum == 4.0 => Ok(()),
            Some(sum) => bail!("{self}: a probe computation gave {sum} instead of 4"),
            None => bail!("{self}: no usable device (is a GPU and its driver present?)"),
        }
    }

    /// Runs `work` on this device's backend (inference's; training wraps it in autodiff).
    pub fn with_backend<W: OnBackend>(self, work: W) -> Result<W::Output> {
        Self::with_backend_devices(&[self], OneDevice(work))
    }

    /// Every device of this machine that answers a probe, with a description:
    /// the CPU first, then CUDA GPUs, then wgpu adapters in [`wgpu_adapters`]' order.
    pub fn available() -> Vec<(DeviceSpec, String)> {
        let mut devices = vec![(DeviceSpec::Cpu, "cpu: the CPU (burn-flex)".to_string())];
        if cfg!(feature = "cuda") {
            let cuda = (0..4).map(DeviceSpec::Cuda).take_while(|d| d.probe().is_ok());
            devices.extend(cuda.map(|d| (d, format!("{d}: CUDA GPU"))));
        }
        for (index, adapter) in wgpu_adapters().into_iter().enumerate() {
            let device = DeviceSpec::Wgpu(WgpuChoice::Index(index));
            if device.probe().is_ok() {
                devices.push((device, format!("{device}: {adapter}")));
            }
        }
        devices
    }
}

/// Work on one device, run as work on a list of one.
struct OneDevice<W>(W);

impl<W: OnBackend> OnDevices for OneDevice<W> {
    type Output = W::Output;
    fn run<B: TwinBackend>(self, devices: Vec<B::Device>) -> W::Output {
        let device = devices.into_iter().next().expect("a list of one device");
        self.0.run::<B>(device)
    }
}

/// Sums four ones on the device; `None` when the runtime panics.
struct Probe;

impl OnBackend for Probe {
    type Output = Option<f32>;
    fn run<B: TwinBackend>(self, device: B::Device) -> Option<f32> {
        use burn::tensor::{ElementConversion, Tensor};
        // A missing device surfaces as a panic inside the GPU runtimes: catch it quietly.
        let previous_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Tensor::<B, 1>::ones([4], &device).sum().into_scalar().elem::<f32>()));
        std::panic::set_hook(previous_hook);
        attempt.ok()
    }
}

/// One wgpu adapter, as the `wgpu:N` list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgpuAdapter {
    pub name: String,
    pub kind: &'static str,
    pub api: String,
}

impl std::fmt::Display for WgpuAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {})", self.name, self.kind, self.api)
    }
}

#[cfg(feature = "wgpu")]
mod wgpu_adapter {
    use anyhow::{bail, Result};
    use burn::backend::wgpu::graphics::{AutoGraphicsApi, GraphicsApi};
    use burn::backend::wgpu::WgpuDevice;

    use super::{WgpuAdapter, WgpuChoice};

    /// The adapters of the graphics API burn-wgpu uses here, in `wgpu:N` order
    /// (adapters of no known kind are left out: burn-wgpu cannot select them).
    pub fn adapters() -> Vec<(WgpuAdapter, WgpuDevice)> {
        let backend = AutoGraphicsApi::backend();
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: backend.into(),
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let infos: Vec<wgpu::AdapterInfo> =
            burn::cubecl::future::block_on(instance.enumerate_adapters(backend.into())).iter().map(|a| a.get_info()).collect();
        let order = [wgpu::DeviceType::DiscreteGpu, wgpu::DeviceType::IntegratedGpu, wgpu::DeviceType::VirtualGpu, wgpu::DeviceType::Cpu];
        let mut listed = Vec::new();
        for (rank, kind) in order.into_iter().enumerate() {
            let of_kind = infos.iter().filter(|i| i.device_type == kind);
            for (k, info) in of_kind.enumerate() {
                // burn-wgpu selects the n-th adapter of a kind, and only the first CPU one.
                let device = match rank {
                    0 => WgpuDevice::DiscreteGpu(k),
                    1 => WgpuDevice::IntegratedGpu(k),
                    2 => WgpuDevice::VirtualGpu(k),
                    _ if k == 0 => WgpuDevice::Cpu,
                    _ => continue,
                };
                let kind = ["discrete GPU", "integrated GPU", "virtual GPU", "CPU"][rank];
                listed.push((WgpuAdapter { name: info.name.clone(), kind, api: format!("{:?}", info.backend) }, device));
            }
        }
        listed
    }

    pub fn device(choice: WgpuChoice) -> Result<WgpuDevice> {
        let adapters = adapters();
        let found = match choice {
            WgpuChoice::Index(i) => adapters.get(i),
            WgpuChoice::Software => adapters.iter().find(|(_, d)| *d == WgpuDevice::Cpu),
        };
        match found {
            Some((_, device)) => Ok(device.clone()),
            None => {
                let name = super::DeviceSpec::Wgpu(choice);
                let listed: Vec<String> = adapters.iter().enumerate().map(|(i, (a, _))| format!("wgpu:{i} {a}")).collect();
                match listed.is_empty() {
                    true => bail!(
                        "{name}: no wgpu adapter on this machine (no Vulkan/Metal/DX12 driver answers; for the software \
                         Vulkan adapter install Mesa's, e.g. `apt-get install mesa-vulkan-drivers libvulkan1`)"
                    ),
                    false => bail!("{name}: no such wgpu adapter; this machine has {}", listed.join(", ")),
                }
            }
        }
    }
}

/// The wgpu adapters in `wgpu:N` order: discrete GPUs, integrated, virtual, the CPU adapter.
pub fn wgpu_adapters() -> Vec<WgpuAdapter> {
    #[cfg(feature = "wgpu")]
    return wgpu_adapter::adapters().into_iter().map(|(a, _)| a).collect();
    #[cfg(not(feature = "wgpu"))]
    Vec::new()
}

/// The burn device of a wgpu choice, or why there is none.
#[cfg(feature = "wgpu")]
pub fn wgpu_device(choice: WgpuChoice) -> Result<burn::backend::wgpu::WgpuDevice> {
    wgpu_adapter::device(choice)
}

/// The right to compute on one GPU, held for a unit of work: a training step,
/// an evaluation, a checkpoint, an inference batch. burn 0.21's fusion and
/// CubeCL streams have open races when two threads drive one device at once
/// (tracel-ai/burn#4328), so every unit of work on a GPU takes its device's
/// turn first (see [`super::TwinBackend::device_turn`]): a trainer and the
/// workbench's predictor on one GPU take turns, unit by unit, and each sees
/// exactly what it would see alone. The turn is reentrant: work that holds it
/// may call work that takes it again (an evaluation inside a trainer's turn).
pub struct DeviceTurn {
    /// Waits for the work queued in this turn, before the next holder's work can start.
    finish: Box<dyn Fn()>,
    _held: parking_lot::ReentrantMutexGuard<'static, ()>,
}

impl Drop for DeviceTurn {
    fn drop(&mut self) {
        // GPU work is queued (and fused) lazily: a turn ends when its work is done.
        (self.finish)();
    }
}

impl DeviceTurn {
    /// Waits until no other thread holds `device` (named `key`), then holds it
    /// until the turn is dropped, which waits for the work queued meanwhile.
    pub fn take<B: burn::tensor::backend::Backend>(key: &str, device: &B::Device) -> Self {
        static DEVICES: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, &'static parking_lot::ReentrantMutex<()>>>> =
            std::sync::OnceLock::new();
        let lock = {
            let mut devices = DEVICES.get_or_init(Default::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // One lock per device for the life of the process: a handful at most.
            *devices.entry(key.to_string()).or_insert_with(|| Box::leak(Box::new(parking_lot::ReentrantMutex::new(()))))
        };
        let held = lock.lock();
        let device = device.clone();
        Self {
            finish: Box::new(move || {
                if let Err(error) = B::sync(&device) {
                    tracing::warn!("waiting for the device's work at the end of a turn: {error:?}");
                }
            }),
            _held: held,
        }
    }
}

/// Device memory as the GPU runtime's pool reports it, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceMemory {
    /// Held by live tensors.
    pub in_use: u64,
    /// Reserved by the pool (what the device has given the process).
    pub reserved: u64,
}

/// Bytes in MiB, as device memory is shown.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The calling thread's stream's pool on a CubeCL device.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub(super) fn pool_memory<R: burn::cubecl::Runtime>(device: &R::Device) -> Option<DeviceMemory> {
    let usage = R::client(device).memory_usage().ok()?;
    Some(DeviceMemory { in_use: usage.bytes_in_use, reserved: usage.bytes_reserved })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_and_print_back() {
        for name in ["cpu", "cuda:0", "cuda:3", "wgpu:0", "wgpu:2", "wgpu:cpu"] {
            assert_eq!(name.parse::<DeviceSpec>().unwrap().to_string(), name);
        }
        assert_eq!("wgpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Wgpu(WgpuChoice::Index(0)));
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        for bad in ["gpu", "wgpu:", "wgpu:x", "cuda:cpu", "cpu:0", "wgpu:-1"] {
            let error = bad.parse::<DeviceSpec>().unwrap_err().to_string();
            assert!(error.contains(bad) && error.contains("wgpu:cpu"), "{error}");
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        let error = DeviceSpec::Cuda(0).probe().unwrap_err().to_string();
        assert!(error.contains("cuda:0") && error.contains("--features cuda"), "{error}");
    }

    #[test]
    fn a_device_turn_waits_for_the_holder_and_nests_on_its_thread() {
        let take = |key: &str| DeviceTurn::take::<burn::backend::Flex>(key, &Default::default());
        let turn = take("test-device");
        let nested = take("test-device");
        let (taken_tx, taken_rx) = std::sync::mpsc::channel();
        let other = std::thread::spawn(move || {
            let _turn = DeviceTurn::take::<burn::backend::Flex>("test-device", &Default::default());
            taken_tx.send(()).unwrap();
        });
        // Another device is free meanwhile.
        drop(take("another-device"));
        assert!(taken_rx.recv_timeout(std::time::Duration::from_millis(200)).is_err(), "the other thread took a held device");
        drop(nested);
        assert!(taken_rx.recv_timeout(std::time::Duration::from_millis(200)).is_err(), "one of two nested turns still holds it");
        drop(turn);
        taken_rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the other thread's turn once released");
        other.join().unwrap();
    }

    #[cfg(feature = "wgpu")]
    #[test]
    fn an_adapter_past_the_list_names_the_ones_there_are() {
        let count = wgpu_adapters().len();
        let error = DeviceSpec::Wgpu(WgpuChoice::Index(count + 7)).probe().unwrap_err().to_string();
        assert!(error.contains(&format!("wgpu:{}", count + 7)), "{error}");
        assert!(error.contains("no such wgpu adapter") || error.contains("no wgpu adapter"), "{error}");
    }
}
