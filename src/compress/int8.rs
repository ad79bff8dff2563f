//! Post-training int8 quantization of the convolution weights: symmetric,
//! one scale per output channel (a quantization block over each output
//! channel's C_in·k·k weights, split in equal parts where burn's block sizes,
//! at most 255 per dimension, require). The first convolution, the heads'
//! final prediction convolutions, biases and GroupNorm parameters stay float.
//!
//! burn 0.21 dequantizes a weight before every convolution: int8 makes the
//! file about 4× smaller, not the network faster.

use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::quantization::{BlockSize, QuantLevel, QuantScheme, QuantStore, QuantValue};
use burn::tensor::{DType, Tensor};

use crate::model::EditableLayers;

/// The layer kept float: the stem reads raw pixels, where quantization error costs most.
const FLOAT_LAYERS: [&str; 1] = ["backbone.stem"];

/// The quantization scheme of a weight [C_out, C_in, kh, kw].
pub fn scheme(dims: [usize; 4]) -> QuantScheme {
    let [_, channels_in, kh, kw] = dims;
    // The largest divisor of C_in that fits a block dimension.
    let block_in = (1..=channels_in.min(255)).rev().find(|d| channels_in % d == 0).expect("1 divides");
    let block = BlockSize::new([1, block_in as u8, kh as u8, kw as u8]);
    QuantScheme::default().with_value(QuantValue::Q8S).with_store(QuantStore::Native).with_level(QuantLevel::Block(block))
}

/// Whether a tensor holds quantized values.
pub fn is_quantized<B: Backend, const D: usize>(tensor: &Tensor<B, D>) -> bool {
    matches!(tensor.dtype(), DType::QFloat(_))
}

/// Whether any convolution of `net` is already quantized.
pub fn any_quantized<B: Backend>(net: &mut impl EditableLayers<B>) -> bool {
    let mut found = false;
    net.visit_layers("", &mut |_, layer| {
        found |= layer.convs_mut().iter().any(|conv| is_quantized(&conv.weight.val()));
    });
    found
}

/// Quantizes the convolution weights of every layer but [`FLOAT_LAYERS`]; returns how many weights.
pub fn quantize<B: Backend>(net: &mut impl EditableLayers<B>) -> usize {
    let mut count = 0;
    net.visit_layers("", &mut |path, layer| {
        if FLOAT_LAYERS.contains(&path) {
            return;
        }
        for conv in layer.convs_mut() {
            let weight = conv.weight.val();
            let scheme = scheme(weight.dims());
            conv.weight = Param::from_tensor(weight.quantize_dynamic(&scheme));
            count += 1;
        }
    });
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TwinNet;
    use burn::backend::Flex;
    use burn::module::Module;
    use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
    use burn::tensor::TensorData;

    fn net() -> TwinNet<Flex> {
        crate::train::trainee::Trainee::tiny_test_net(&Default::default())
    }

    /// Every layer's weights, as float values, by path.
    fn weights(net: &mut TwinNet<Flex>) -> Vec<(String, [usize; 4], Vec<f32>)> {
        let mut all = Vec::new();
        net.visit_layers("", &mut |path, layer| {
            for conv in layer.convs_mut() {
                let w = conv.weight.val();
                all.push((path.to_string(), w.dims(), w.dequantize().into_data().convert::<f32>().into_vec().unwrap()));
            }
        });
        all
    }

    #[test]
    fn dequantized_weights_are_within_half_a_step_of_the_originals() {
        let mut float = net();
        let mut quantized = float.clone();
        assert!(!any_quantized(&mut quantized));
        let count = quantize(&mut quantized);
        assert!(any_quantized(&mut quantized));
        let (before, after) = (weights(&mut float), weights(&mut quantized));
        assert_eq!(count, before.len() - 1, "all but the stem");
        for ((path, dims, w), (_, _, q)) in before.iter().zip(&after) {
            if path == "backbone.stem" {
                assert_eq!(w, q);
                continue;
            }
            let per_channel = dims[1] * dims[2] * dims[3];
            for (c, (wc, qc)) in w.chunks(per_channel).zip(q.chunks(per_channel)).enumerate() {
                let step = wc.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0;
                let worst = wc.iter().zip(qc).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(worst <= step / 2.0 * 1.001 + 1e-7, "{path} channel {c}: error {worst}, step {step}");
            }
        }
    }

    #[test]
    fn the_file_shrinks_and_the_outputs_stay_close() {
        let float = net();
        let mut quantized = float.clone();
        quantize(&mut quantized);
        let dir = tempfile::tempdir().unwrap();
        let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        float.clone().save_file(dir.path().join("float"), &recorder).unwrap();
        quantized.clone().save_file(dir.path().join("int8"), &recorder).unwrap();
        let size = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().len() as f64;
        let ratio = size("int8.mpk") / size("float.mpk");
        assert!(ratio <= 0.35, "the int8 file is {ratio:.3}× the float file");
        // Loaded back into a float-shaped network, the weights are the quantized ones.
        let loaded = net().load_file(dir.path().join("int8"), &recorder, &Default::default()).unwrap();
        let values: Vec<f32> = (0..2 * 3 * 64 * 64).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
        let images = Tensor::<Flex, 4>::from_data(TensorData::new(values, [2, 3, 64, 64]), &Default::default());
        let (det, seg) = float.forward_both(images.clone());
        let (qdet, qseg) = quantized.forward_both(images.clone());
        let (ldet, lseg) = loaded.forward_both(images);
        assert_eq!((qseg.clone() - lseg).abs().max().into_scalar(), 0.0);
        assert_eq!((qdet.cls_logits.clone() - ldet.cls_logits).abs().max().into_scalar(), 0.0);
        // Close to float: per-weight errors of at most half a step (0.4 % of a
        // channel's largest weight) compound over ~30 layers of an untrained
        // network; the outputs' relative L2 error stays within 6 % (3–5 % seen:
        // the untrained weights vary with what other test threads draw from
        // burn-flex's global generator meanwhile; once 5.2 %).
        let relative = |a: Tensor<Flex, 4>, b: Tensor<Flex, 4>| ((a.clone() - b).powf_scalar(2.0).sum().sqrt() / a.powf_scalar(2.0).sum().sqrt()).into_scalar();
        let seg_error = relative(seg, qseg);
        let box_error = relative(det.box_raw.unsqueeze(), qdet.box_raw.unsqueeze());
        assert!(seg_error <= 0.06 && box_error <= 0.06, "relative error: segmentation logits {seg_error}, box outputs {box_error}");
    }
}
