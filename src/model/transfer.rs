//! Moving weights between backends: a module built on the CPU, copied into the
//! same module built on another device. A seed then means the same initial
//! network on every device, and the backend parity tests compare like with like.

use anyhow::{Context, Result};
use burn::backend::Flex;
use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::Backend;

/// `target` (any backend) with `source`'s weights; both built from the same
/// configuration, so their records name the same fields with the same shapes.
pub fn from_cpu<B: Backend, M: Module<B>>(source: impl Module<Flex>, target: M, device: &B::Device) -> Result<M> {
    let recorder = NamedMpkBytesRecorder::<FullPrecisionSettings>::default();
    let bytes = Recorder::<Flex>::record(&recorder, source.into_record(), ()).context("weights: cannot serialise")?;
    let record = Recorder::<B>::load(&recorder, bytes, device).context("weights: the two modules differ in structure")?;
    Ok(target.load_record(record))
}
