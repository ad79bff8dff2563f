//! Structured channel pruning: whole GroupNorm groups removed from every
//! prunable layer (see [`EditableLayers::visit_prunable`]) together with the
//! inputs that read them, so the network really gets smaller.
//!
//! Criterion: a group's Σ|γ| (network slimming's scale factor, per group). A
//! group whose γ is near zero contributes little more than a constant after
//! its normalisation; fine-tuning recovers the rest. Layers with a folded
//! BatchNorm (imported weights) have no groups to rank and are left alone.

use std::collections::BTreeMap;

use burn::tensor::backend::Backend;

use crate::model::{EditableLayers, Reshape};

/// Groups removed from a layer of `groups` groups: `ratio` of them, rounded,
/// leaving at least one.
pub fn groups_removed(groups: usize, ratio: f64) -> usize {
    ((groups as f64 * ratio).round() as usize).min(groups - 1)
}

/// What pruning did.
#[derive(Debug, Clone, PartialEq)]
pub struct Pruned {
    /// The edit to record in the model configuration.
    pub reshape: Reshape,
    /// Output channels of the prunable layers before and after.
    pub channels_before: usize,
    pub channels_after: usize,
    /// Prunable layers left alone: their BatchNorm is folded in, no GroupNorm.
    pub left_alone: usize,
}

/// Removes `ratio` of every prunable layer's groups, those with the smallest Σ|γ|.
pub fn prune<B: Backend>(net: &mut impl EditableLayers<B>, ratio: f64) -> Pruned {
    let (mut channels, mut before, mut after, mut left_alone) = (BTreeMap::new(), 0, 0, 0);
    net.visit_prunable("", &mut |path, layer| {
        let Some(norm) = layer.producer.norm() else {
            left_alone += 1;
            return;
        };
        let (width, groups) = (norm.num_channels, norm.num_groups);
        let group_size = width / groups;
        let gamma: Vec<f32> = match &norm.gamma {
            Some(g) => g.val().into_data().convert::<f32>().into_vec().expect("float γ"),
            None => vec![1.0; width],
        };
        let mut order: Vec<(f32, usize)> =
            (0..groups).map(|g| (gamma[g * group_size..(g + 1) * group_size].iter().map(|v| v.abs()).sum(), g)).collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut kept_groups: Vec<usize> = order[groups_removed(groups, ratio)..].iter().map(|&(_, g)| g).collect();
        kept_groups.sort_unstable();
        let keep: Vec<usize> = kept_groups.iter().flat_map(|g| g * group_size..(g + 1) * group_size).collect();
        before += width;
        after += keep.len();
        channels.insert(path.to_string(), keep.len());
        layer.keep(&keep);
    });
    if left_alone > 0 {
        tracing::info!("prune: {left_alone} layer(s) with a folded BatchNorm left alone (no GroupNorm groups to rank)");
    }
    Pruned { reshape: Reshape::Prune { channels }, channels_before: before, channels_after: after, left_alone }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::blocks::Bottleneck;
    use crate::model::{ModelConfig, ModelSize, TwinNet};
    use burn::backend::Flex;
    use burn::module::{Module, Param};
    use burn::tensor::{Tensor, TensorData};

    fn tiny() -> ModelConfig {
        let mut config = ModelConfig::new(ModelSize::N, 3, 5);
        config.width = Some(0.25);
        config
    }

    fn images() -> Tensor<Flex, 4> {
        let values: Vec<f32> = (0..2 * 3 * 64 * 64).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
        Tensor::from_data(TensorData::new(values, [2, 3, 64, 64]), &Default::default())
    }

    /// Zeroes the filters, γ and β of the `ratio` share of each prunable layer's
    /// groups with the highest index: those groups output silu(0) = 0.
    fn zero_groups(net: &mut TwinNet<Flex>, ratio: f64) {
        net.visit_prunable("", &mut |_, layer| {
            let norm = layer.producer.norm().unwrap();
            let (width, groups) = (norm.num_channels, norm.num_groups);
            let dead = groups_removed(groups, ratio) * (width / groups);
            let zero_rows = |t: Tensor<Flex, 4>| {
                let [c, i, h, w] = t.dims();
                t.slice_assign([width - dead..c, 0..i, 0..h, 0..w], Tensor::zeros([dead, i, h, w], &Default::default()))
            };
            let conv = layer.producer.output_conv();
            conv.weight = Param::from_tensor(zero_rows(conv.weight.val()));
            let mut norm = layer.producer.norm().unwrap().clone();
            let zero_tail = |p: &Param<Tensor<Flex, 1>>| Param::from_tensor(p.val().slice_assign([width - dead..width], Tensor::zeros([dead], &Default::default())));
            norm.gamma = norm.gamma.as_ref().map(zero_tail);
            norm.beta = norm.beta.as_ref().map(zero_tail);
            layer.producer.set_norm(norm);
        });
    }

    #[test]
    fn pruning_groups_whose_weights_are_zero_leaves_the_outputs_unchanged() {
        let mut net = TwinNet::<Flex>::new(&tiny(), &Default::default());
        zero_groups(&mut net, 0.5);
        let (det, seg) = net.forward_both(images());
        let params = net.num_params();
        let pruned = prune(&mut net, 0.5);
        assert!(net.num_params() < params * 3 / 4, "{} of {params} parameters left", net.num_params());
        let (det2, seg2) = net.forward_both(images());
        // Equal up to float rounding: the narrower convolutions sum in another order.
        let assert_close = |a: Tensor<Flex, 3>, b: Tensor<Flex, 3>, what: &str| {
            let (diff, scale) = ((a.clone() - b).abs().max().into_scalar(), a.abs().max().into_scalar());
            assert!(diff <= 1e-5 * (1.0 + scale), "{what} moved by {diff} (largest {scale})");
        };
        assert_close(det.cls_logits, det2.cls_logits, "class logits");
        assert_close(det.box_raw, det2.box_raw, "box outputs");
        let [n, c, h, w] = seg.dims();
        assert_close(seg.reshape([n, c, h * w]), seg2.reshape([n, c, h * w]), "segmentation logits");
        // Rebuilt from the recorded edit, the network has the same shapes.
        let mut config = tiny();
        config.reshape = vec![pruned.reshape.clone()];
        let rebuilt = TwinNet::<Flex>::new(&config, &Default::default());
        assert_eq!(rebuilt.num_params(), net.num_params());
        assert!(pruned.channels_after < pruned.channels_before);
    }

    /// Layers with a folded BatchNorm (the whole backbone here) keep their
    /// channels; the rest is pruned, and the network rebuilt from both edits
    /// has the same shapes.
    #[test]
    fn pruning_leaves_layers_with_a_folded_batch_norm_alone() {
        let mut config = tiny();
        let mut backbone = std::collections::BTreeSet::new();
        TwinNet::<Flex>::new(&config, &Default::default()).visit_layers("", &mut |path, _| {
            if path.starts_with("backbone.") {
                backbone.insert(path.to_string());
            }
        });
        config.reshape = vec![Reshape::BatchNorm { layers: backbone }];
        let mut net = TwinNet::<Flex>::new(&config, &Default::default());
        let mut prunable_in_backbone = 0;
        net.visit_prunable("", &mut |path, _| prunable_in_backbone += usize::from(path.starts_with("backbone.")));
        let params = net.num_params();
        let pruned = prune(&mut net, 0.5);
        assert_eq!(pruned.left_alone, prunable_in_backbone);
        let Reshape::Prune { channels } = &pruned.reshape else { panic!("a prune edit") };
        assert!(!channels.is_empty() && channels.keys().all(|path| !path.starts_with("backbone.")), "{channels:?}");
        assert!(net.num_params() < params);
        config.reshape.push(pruned.reshape);
        assert_eq!(TwinNet::<Flex>::new(&config, &Default::default()).num_params(), net.num_params());
    }

    #[test]
    fn prune_removes_the_stated_channels_and_parameters_by_hand() {
        // One bottleneck of 16 channels: 4 groups of 4; removing half leaves 8 hidden channels.
        let mut block = Bottleneck::<Flex>::new(16, true, &Default::default());
        assert_eq!(block.num_params(), 2 * (16 * 16 * 9 + 2 * 16));
        let pruned = prune(&mut block, 0.5);
        let Reshape::Prune { channels } = &pruned.reshape else { panic!("a prune edit") };
        assert_eq!(channels.get("cv1"), Some(&8));
        assert_eq!((pruned.channels_before, pruned.channels_after), (16, 8));
        // cv1: 16 → 8 (3×3) + γβ of 8; cv2: 8 → 16 (3×3) + γβ of 16.
        assert_eq!(block.num_params(), 16 * 8 * 9 + 2 * 8 + 8 * 16 * 9 + 2 * 16);
        let x = Tensor::<Flex, 4>::ones([1, 16, 5, 5], &Default::default());
        assert_eq!(block.forward(x).dims(), [1, 16, 5, 5]);
    }

    #[test]
    fn the_groups_with_the_smallest_gamma_go() {
        let mut block = Bottleneck::<Flex>::new(16, false, &Default::default());
        block.visit_prunable("", &mut |_, layer| {
            let mut norm = layer.producer.norm().unwrap().clone();
            let gamma: Vec<f32> = (0..16).map(|c| [3.0, 0.1, 2.0, 0.2][c / 4]).collect();
            norm.gamma = Some(Param::from_tensor(Tensor::from_data(TensorData::new(gamma, [16]), &Default::default())));
            layer.producer.set_norm(norm);
        });
        prune(&mut block, 0.5);
        block.visit_prunable("", &mut |_, layer| {
            let gamma: Vec<f32> = layer.producer.norm().unwrap().gamma.as_ref().unwrap().val().into_data().to_vec().unwrap();
            assert_eq!(gamma, [[3.0; 4], [2.0; 4]].concat());
        });
    }
}
