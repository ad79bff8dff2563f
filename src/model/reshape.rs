//! Structural edits of the network (channel pruning, low-rank factorization,
//! BatchNorm folded into imported layers),
//! recorded in [`ModelConfig::reshape`](super::ModelConfig) so that every path
//! that builds the network from its configuration (loading a checkpoint,
//! resuming a fine-tuning run) builds the edited shapes, then loads the weights.
//!
//! Layers are named by their path in the module tree
//! (`backbone.stage2.blocks.0.cv1`); [`EditableLayers`] walks them in a fixed order.

use std::collections::{BTreeMap, BTreeSet};

use burn::nn::conv::Conv2d;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::conv_norm_act::ConvNormAct;
use super::select::select;

/// One structural edit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Reshape {
    /// Output channels kept, per pruned layer.
    Prune { channels: BTreeMap<String, usize> },
    /// Rank of the factorization, per factorized layer.
    LowRank { ranks: BTreeMap<String, usize> },
    /// Layers started from a BatchNorm network: the BatchNorm folded into the
    /// convolution (which gains a bias), no GroupNorm.
    #[serde(rename = "batchnorm")]
    BatchNorm { layers: BTreeSet<String> },
}

/// A layer whose output channels can be removed, and the convolutions that read them.
pub struct PrunableLayer<'a, B: Backend> {
    pub producer: &'a mut ConvNormAct<B>,
    pub consumers: Vec<Consumer<'a, B>>,
}

/// A convolution reading a producer's channels: `copies` consecutive blocks of
/// them (SPPF's pooled copies) starting at input channel `offset`, the rest of
/// its inputs coming from elsewhere.
pub struct Consumer<'a, B: Backend> {
    pub conv: &'a mut Conv2d<B>,
    pub offset: usize,
    pub copies: usize,
}

impl<'a, B: Backend> Consumer<'a, B> {
    /// A convolution whose inputs are exactly the producer's channels.
    pub fn all(conv: &'a mut Conv2d<B>) -> Self {
        Self { conv, offset: 0, copies: 1 }
    }
}

/// Walks a module's editable layers.
pub trait EditableLayers<B: Backend> {
    /// Every [`ConvNormAct`] with its path.
    fn visit_layers(&mut self, path: &str, visit: &mut dyn FnMut(&str, &mut ConvNormAct<B>));
    /// Every layer whose output channels can be pruned without touching a
    /// residual sum or a concatenation shared with other layers.
    fn visit_prunable(&mut self, path: &str, visit: &mut dyn FnMut(&str, PrunableLayer<'_, B>));
}

/// `parent.child` (or `child` at the root).
pub fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

impl<B: Backend> EditableLayers<B> for ConvNormAct<B> {
    fn visit_layers(&mut self, path: &str, visit: &mut dyn FnMut(&str, &mut ConvNormAct<B>)) {
        visit(path, self);
    }

    fn visit_prunable(&mut self, _path: &str, _visit: &mut dyn FnMut(&str, PrunableLayer<'_, B>)) {}
}

impl<B: Backend, M: EditableLayers<B>> EditableLayers<B> for Vec<M> {
    fn visit_layers(&mut self, path: &str, visit: &mut dyn FnMut(&str, &mut ConvNormAct<B>)) {
        for (i, m) in self.iter_mut().enumerate() {
            m.visit_layers(&join(path, &i.to_string()), visit);
        }
    }

    fn visit_prunable(&mut self, path: &str, visit: &mut dyn FnMut(&str, PrunableLayer<'_, B>)) {
        for (i, m) in self.iter_mut().enumerate() {
            m.visit_prunable(&join(path, &i.to_string()), visit);
        }
    }
}

impl<'a, B: Backend> PrunableLayer<'a, B> {
    /// Keeps the producer's output channels `keep` (ascending, whole groups)
    /// and the matching inputs of every consumer.
    pub fn keep(self, keep: &[usize]) {
        let width = self.producer.width();
        self.producer.keep_outputs(keep);
        for consumer in self.consumers {
            let inputs = consumer.conv.weight.dims()[1];
            let end = consumer.offset + consumer.copies * width;
            let kept: Vec<usize> = (0..consumer.offset)
                .chain((0..consumer.copies).flat_map(|copy| keep.iter().map(move |k| consumer.offset + copy * width + k)))
                .chain(end..inputs)
                .collect();
            consumer.conv.weight = select(&consumer.conv.weight, 1, &kept);
        }
    }
}

impl Reshape {
    /// Gives `net` this edit's shapes, with placeholder weights (the first
    /// channels kept, zero factors) that loading a checkpoint replaces.
    /// Returns the number of layer names that matched no layer.
    pub fn apply_shapes<B: Backend>(&self, net: &mut impl EditableLayers<B>) -> usize {
        let mut matched = 0;
        match self {
            Self::Prune { channels } => net.visit_prunable("", &mut |path, layer| {
                if let Some(&kept) = channels.get(path) {
                    matched += 1;
                    layer.keep(&(0..kept).collect::<Vec<_>>());
                }
            }),
            Self::LowRank { ranks } => net.visit_layers("", &mut |path, layer| {
                if let Some(&rank) = ranks.get(path) {
                    matched += 1;
                    let [channels_out, channels_in, kh, kw] = layer.input_conv().weight.dims();
                    let device = layer.input_conv().weight.device();
                    layer.factorize(Tensor::zeros([rank, channels_in, kh, kw], &device), Tensor::zeros([channels_out, rank, 1, 1], &device));
                }
            }),
            Self::BatchNorm { layers } => net.visit_layers("", &mut |path, layer| {
                if layers.contains(path) {
                    matched += 1;
                    let (width, device) = (layer.width(), layer.input_conv().weight.device());
                    layer.fold_batch_norm(Tensor::ones([width], &device), Tensor::zeros([width], &device));
                }
            }),
        }
        let named = match self {
            Self::Prune { channels } => channels.len(),
            Self::LowRank { ranks } => ranks.len(),
            Self::BatchNorm { layers } => layers.len(),
        };
        named - matched
    }
}
