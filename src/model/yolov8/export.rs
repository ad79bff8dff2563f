//! The inverse of [`import`](super::import): the layers of our CSP network
//! that have a YOLOv8 counterpart (backbone, neck, the detection head's hidden
//! layers) as an Ultralytics state dict (`model.2.m.0.cv1.conv.weight`,
//! `….bn.running_var`), for Ultralytics (`load_state_dict(…, strict=False)`)
//! or as another run's `model.pretrained`.
//!
//! YOLOv8 normalises with BatchNorm, we with GroupNorm, whose statistics come
//! from each image. A GroupNorm layer is written as a BatchNorm whose running
//! statistics are its groups' mean and variance averaged over calibration
//! images ([`group_statistics`]): it normalises an image with those average
//! statistics exactly as the GroupNorm does, any other image by the average
//! instead of its own (for a trained network a large difference: the export
//! command measures it). A layer holding a folded BatchNorm
//! (an imported one) is written exactly: unit statistics, its bias as the shift.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, ensure, Context};
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor, TensorData};

use super::names::{counterpart, Counterpart};
use super::EPSILON;
use crate::backend::TwinBackend;
use crate::model::backbone::Backbone;
use crate::model::blocks::ConvNormAct;
use crate::model::group_statistics::{self, GroupStatistics};
use crate::model::{EditableLayers, TwinNet};

/// An Ultralytics-layout state dict of our network.
pub struct StateDict {
    /// Every tensor by its Ultralytics name, f32.
    pub tensors: BTreeMap<String, TensorData>,
    /// Our layers written, in the network's order.
    pub layers: Vec<String>,
    /// Images the GroupNorm statistics were averaged over.
    pub calibration_images: usize,
}

/// `net`'s YOLOv8 layers, GroupNorms turned into BatchNorms by their statistics on `calibration`.
pub fn state_dict<B: TwinBackend>(
    net: &mut TwinNet<B>,
    calibration: impl Iterator<Item = Tensor<B, 4>> + Send,
) -> anyhow::Result<StateDict> {
    if let Backbone::ResNet(_) = net.backbone {
        bail!("the network has a ResNet backbone: only the CSP backbone has YOLOv8's layers");
    }
    let shared: &TwinNet<B> = net;
    let (calibration_images, statistics) = group_statistics::record(|| {
        calibration.map(|images| {
            let count = images.dims()[0];
            shared.forward_heads(images, shared.tasks());
            count
        })
        .sum::<usize>()
    });
    let mut tensors = BTreeMap::new();
    let mut layers = Vec::new();
    let mut failure = None;
    net.visit_layers("", &mut |path, layer| {
        let (Counterpart::Required(prefix) | Counterpart::Optional(prefix)) = counterpart(path) else { return };
        if failure.is_some() {
            return;
        }
        match conv_batch_norm(layer, &statistics) {
            Ok(parts) => {
                for (part, data) in parts {
                    tensors.insert(format!("{prefix}.{part}"), data);
                }
                layers.push(path.to_string());
            }
            Err(problem) => failure = Some(format!("{path}: {problem}")),
        }
    });
    if let Some(problem) = failure {
        bail!(problem);
    }
    Ok(StateDict { tensors, layers, calibration_images })
}

/// One layer as YOLOv8's `conv.weight` and `bn.*`.
fn conv_batch_norm<B: Backend>(
    layer: &ConvNormAct<B>,
    statistics: &HashMap<usize, GroupStatistics>,
) -> Result<[(&'static str, TensorData); 5], String> {
    let (weight, bias) = layer.merged_conv();
    let channels = weight.dims()[0];
    let values = |t: Tensor<B, 1>| -> Vec<f32> { t.into_data().convert::<f32>().into_vec().expect("f32 weights") };
    let bias = bias.map_or_else(|| vec![0.0; channels], values);
    let (scale, shift, mean, variance) = match layer.norm() {
        None => (vec![1.0; channels], bias, vec![0.0; channels], vec![(1.0 - EPSILON) as f32; channels]),
        Some(norm) => {
            let recorded = statistics.get(&norm.statistics_key()).ok_or("no calibration image went through it")?;
            let group_size = channels / norm.num_groups;
            let gamma = norm.gamma.as_ref().map_or_else(|| vec![1.0; channels], |g| values(g.val()));
            let beta = norm.beta.as_ref().map_or_else(|| vec![0.0; channels], |b| values(b.val()));
            // The statistics include the convolution's bias, which YOLOv8's convolutions lack.
            let mean = (0..channels).map(|c| (recorded.mean[c / group_size] - bias[c] as f64) as f32).collect();
            // √(σ² + ε_GroupNorm) as BatchNorm computes it with its own ε.
            let variance = (0..channels)
                .map(|c| (recorded.variance[c / group_size] + norm.epsilon - EPSILON).max(0.0) as f32)
                .collect();
            (gamma, beta, mean, variance)
        }
    };
    let vector = |v: Vec<f32>| TensorData::new(v, [channels]);
    Ok([
        ("conv.weight", weight.into_data().convert::<f32>()),
        ("bn.weight", vector(scale)),
        ("bn.bias", vector(shift)),
        ("bn.running_mean", vector(mean)),
        ("bn.running_var", vector(variance)),
    ])
}

impl StateDict {
    /// The tensors as a `.safetensors` file (what `safetensors.torch.load_file` reads).
    pub fn to_safetensors(&self) -> anyhow::Result<Vec<u8>> {
        let views = self
            .tensors
            .iter()
            .map(|(name, data)| {
                let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, data.shape.to_vec(), data.as_bytes())
                    .with_context(|| format!("{name}: not a tensor"))?;
                Ok((name.clone(), view))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::tensor::serialize(views, Some(metadata)).context("cannot write the safetensors data")
    }
}

/// How far `other`'s neck outputs at strides 8, 16 and 32 are from `net`'s on
/// `images`: ‖a − b‖ / ‖a‖ at each.
pub fn neck_difference<B: TwinBackend>(net: &TwinNet<B>, other: &TwinNet<B>, images: Tensor<B, 4>) -> anyhow::Result<[f64; 3]> {
    ensure!(images.dims()[0] > 0, "no images to compare on");
    let pyramid = |n: &TwinNet<B>| {
        let p = B::twin_run(|| n.neck.forward(n.backbone.forward(images.clone()), false));
        [p.p3, p.p4, p.p5]
    };
    let (ours, theirs) = (pyramid(net), pyramid(other));
    let norm = |t: Tensor<B, 4>| -> f64 { t.powi_scalar(2).sum().into_scalar().elem::<f64>().sqrt() };
    Ok(std::array::from_fn(|i| norm(ours[i].clone() - theirs[i].clone()) / norm(ours[i].clone()).max(f64::MIN_POSITIVE)))
}
