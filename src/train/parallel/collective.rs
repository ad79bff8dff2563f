//! One replica's side of burn-collective: its all-reduce, and what Twinhead
//! builds on it. burn-collective's multi-node level implements all-reduce
//! only, so the broadcast of bytes (rank 0's control messages, its start
//! snapshot) and the gather of numbers (each replica's step time and memory,
//! its weight hash) are all-reduces too: every replica adds zeros except
//! where it owns the slot, and a sum of one value and zeros is that value, exactly.

use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use burn::module::{list_param_ids, AutodiffModule};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Shape, Tensor, TensorData, TensorMetadata, TensorPrimitive};
use burn_collective::{CollectiveConfig, PeerId, ReduceOperation};

/// Bytes carried per f32 in a broadcast: integers below 2^24 are exact.
const BYTES_PER_FLOAT: usize = 3;

/// Where a replica stands among all of a run's replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rank {
    /// 0 for the replica that evaluates, logs and checkpoints.
    pub global: usize,
    /// Replicas in the whole run (every node's).
    pub world: usize,
    /// This process's node, and its replica on the node.
    pub node: usize,
    pub local: usize,
}

/// A registered replica: its collective calls go through the process's
/// burn-collective server for the backend `B` (the inner backend: gradients
/// and weights live there).
pub struct Replica<B: Backend> {
    pub rank: Rank,
    device: B::Device,
    /// Seconds spent waiting in all-reduce since [`Self::take_all_reduce_seconds`].
    all_reduce_seconds: f64,
}

impl<B: Backend> Replica<B> {
    /// Registers the replica; returns once every replica of the run has (on
    /// every node: burn-collective's global orchestrator gathers the nodes).
    pub fn register(rank: Rank, device: B::Device, config: CollectiveConfig) -> Result<Self> {
        burn_collective::register::<B>(PeerId::from(rank.global), device.clone(), config)
            .map_err(|e| anyhow!("replica {} cannot join the collective: {e:?}", rank.global))?;
        Ok(Self { rank, device, all_reduce_seconds: 0.0 })
    }

    pub fn is_leader(&self) -> bool {
        self.rank.global == 0
    }

    /// Seconds this replica waited in all-reduce since the last call.
    pub fn take_all_reduce_seconds(&mut self) -> f64 {
        std::mem::take(&mut self.all_reduce_seconds)
    }

    fn all_reduce(&mut self, tensor: FloatTensor<B>, op: ReduceOperation) -> Result<FloatTensor<B>> {
        let started = Instant::now();
        let out = burn_collective::all_reduce::<B>(PeerId::from(self.rank.global), tensor, op)
            .map_err(|e| anyhow!("replica {}: all-reduce failed ({e:?}): another replica stopped", self.rank.global));
        self.all_reduce_seconds += started.elapsed().as_secs_f64();
        out
    }

    /// The element-wise sum of every replica's `values`.
    pub fn sum(&mut self, values: &[f32]) -> Result<Vec<f32>> {
        let tensor = B::float_from_data(TensorData::new(values.to_vec(), [values.len()]), &self.device);
        let summed = self.all_reduce(tensor, ReduceOperation::Sum)?;
        Ok(Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(summed)).into_data().into_vec::<f32>().map_err(|e| anyhow!("{e:?}"))?)
    }

    /// Every replica's `values` (the same length everywhere), by global rank.
    pub fn gather(&mut self, values: &[f32]) -> Result<Vec<Vec<f32>>> {
        let (n, world) = (values.len(), self.rank.world);
        let mut slots = vec![0.0; n * world];
        slots[self.rank.global * n..(self.rank.global + 1) * n].copy_from_slice(values);
        let all = self.sum(&slots)?;
        Ok(all.chunks(n.max(1)).map(<[f32]>::to_vec).collect())
    }

    /// Rank 0's `bytes` on every replica (the others pass `None`).
    pub fn broadcast(&mut self, bytes: Option<Vec<u8>>) -> Result<Vec<u8>> {
        let length = bytes.as_ref().map_or(0, Vec::len);
        let length_slots = [(length >> 24) as f32, (length & 0xFF_FFFF) as f32];
        let summed = self.sum(&length_slots)?;
        let length = ((summed[0] as usize) << 24) | summed[1] as usize;
        if length == 0 {
            return Ok(Vec::new());
        }
        let floats = length.div_ceil(BYTES_PER_FLOAT);
        let packed: Vec<f32> = match &bytes {
            Some(bytes) => (0..floats)
                .map(|i| {
                    let chunk = &bytes[i * BYTES_PER_FLOAT..((i + 1) * BYTES_PER_FLOAT).min(length)];
                    chunk.iter().enumerate().fold(0u32, |acc, (k, &b)| acc | (b as u32) << (8 * k)) as f32
                })
                .collect(),
            None => vec![0.0; floats],
        };
        let received = self.sum(&packed)?;
        let mut out = Vec::with_capacity(length);
        for value in received {
            let word = value as u32;
            out.extend((0..BYTES_PER_FLOAT).map(|k| (word >> (8 * k)) as u8));
        }
        out.truncate(length);
        Ok(out)
    }

    /// Every replica's `tensors` summed, in one all-reduce.
    pub fn sum_tensors<const D: usize>(&mut self, tensors: Vec<Tensor<B, D>>) -> Result<Vec<Tensor<B, D>>> {
        let primitives = tensors.into_iter().map(|t| t.into_primitive().tensor()).collect();
        let summed = self.all_reduce_each(primitives, ReduceOperation::Sum)?;
        Ok(summed.into_iter().map(|t| Tensor::from_primitive(TensorPrimitive::Float(t))).collect())
    }

    /// Replaces each group's gradients by their mean over the replicas, in one
    /// all-reduce, in the order of `module`'s parameters (the same on every replica).
    pub fn mean_gradients<A, M>(&mut self, module: &M, groups: &mut [&mut GradientsParams]) -> Result<()>
    where
        A: AutodiffBackend<InnerBackend = B>,
        M: AutodiffModule<A>,
    {
        let ids = list_param_ids(module);
        let mut owners = Vec::new();
        let mut grads = Vec::new();
        for (g, group) in groups.iter_mut().enumerate() {
            for &id in &ids {
                // The rank is the primitive's own; `1` only names the type.
                if let Some(grad) = group.remove::<B, 1>(id) {
                    let TensorPrimitive::Float(grad) = grad.into_primitive() else {
                        bail!("a quantized gradient cannot be all-reduced");
                    };
                    owners.push((g, id));
                    grads.push(grad);
                }
            }
        }
        let means = self.all_reduce_each(grads, ReduceOperation::Mean)?;
        for ((g, id), mean) in owners.into_iter().zip(means) {
            groups[g].register::<B, 1>(id, Tensor::from_primitive(TensorPrimitive::Float(mean)));
        }
        Ok(())
    }

    /// Each tensor reduced over the replicas, all in one all-reduce of their
    /// concatenation (one round trip per step, not one per tensor).
    fn all_reduce_each(&mut self, tensors: Vec<FloatTensor<B>>, op: ReduceOperation) -> Result<Vec<FloatTensor<B>>> {
        if tensors.is_empty() {
            return Ok(Vec::new());
        }
        let shapes: Vec<Shape> = tensors.iter().map(TensorMetadata::shape).collect();
        let flat = tensors.into_iter().zip(&shapes).map(|(t, shape)| B::float_reshape(t, Shape::new([shape.num_elements()]))).collect();
        let reduced = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(self.all_reduce(B::float_cat(flat, 0), op)?));
        let mut at = 0;
        Ok(shapes
            .into_iter()
            .map(|shape| {
                let len = shape.num_elements();
                let piece = reduced.clone().slice([at..at + len]).into_primitive().tensor();
                at += len;
                B::float_reshape(piece, shape)
            })
            .collect())
    }

    /// Leaves the collective (every replica does, at the end of a run).
    pub fn finish(self) {
        if let Err(error) = burn_collective::finish_collective::<B>(PeerId::from(self.rank.global)) {
            tracing::warn!("replica {} leaving the collective: {error:?}", self.rank.global);
        }
    }
}

/// Ends every pending collective call of this process with an error (a
/// replica failed: the others must not wait for it forever).
pub fn abort<B: Backend>() {
    burn_collective::reset_collective::<B>();
}
