//! ResNet backbone import from torchvision-named checkpoints.
//!
//! Fixtures in tests/fixtures/resnet come from `tools/resnet_reference.py` (real torch
//! and torchvision): tiny width-4 resnet18-layout and Bottleneck models as `.pth` and
//! `.safetensors`, plus their c2..c5 features for a fixed input.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor, TensorData};
use burn_store::{ModuleSnapshot, ModuleStore, SafetensorsStore};
use serde::Deserialize;
use twinhead::model::features::Features;
use twinhead::model::resnet::{ResNetConfig, ResNetDepth};

type B = Flex;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/resnet").join(name)
}

fn flatten(features: Features<B>) -> Vec<(&'static str, Vec<usize>, Vec<f32>)> {
    [("c2", features.c2), ("c3", features.c3), ("c4", features.c4), ("c5", features.c5)]
        .into_iter()
        .map(|(name, t)| (name, t.dims().to_vec(), t.into_data().to_vec().unwrap()))
        .collect()
}

/// Replaces every vector parameter (all of them belong to BatchNorms) with values in
/// [0.5, 1.5]: a fresh FrozenBatchNorm2d is the identity, which would let a
/// round trip that dropped the BN tensors pass unnoticed.
struct RandomizeNorms;

impl<Be: Backend> ModuleMapper<Be> for RandomizeNorms {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<Be, D>>) -> Param<Tensor<Be, D>> {
        if D == 1 {
            param.map(|t| t.random_like(Distribution::Uniform(0.5, 1.5)))
        } else {
            param
        }
    }
}

#[test]
fn round_trip_through_a_torchvision_named_safetensors_file() {
    let device = Default::default();
    let dir = tempfile::tempdir().unwrap();
    let configs = [
        ResNetConfig::new(ResNetDepth::R18).with_base_width(8),
        ResNetConfig::new(ResNetDepth::R50).with_base_width(8).with_blocks([1, 1, 1, 1]),
    ];
    let images = Tensor::<B, 4>::random([2, 3, 48, 64], Distribution::Normal(0.0, 1.0), &device);
    for (i, config) in configs.iter().enumerate() {
        let source = config.init::<B>(&device).map(&mut RandomizeNorms);
        let path = dir.path().join(format!("model{i}.safetensors"));
        source.save_into(&mut SafetensorsStore::from_file(&path)).unwrap();

        // The file speaks torchvision: no burn-specific path segments.
        let keys = SafetensorsStore::from_file(&path).keys().unwrap();
        for key in ["conv1.weight", "bn1.running_var", "layer1.0.conv2.weight", "layer2.0.downsample.0.weight"] {
            assert!(keys.iter().any(|k| k == key), "{key} not in {keys:?}");
        }
        assert!(keys.contains(&"layer4.0.downsample.1.running_mean".to_string()));
        assert_eq!(keys.iter().any(|k| k.contains("conv3")), config.bottleneck);

        let loaded = config.init::<B>(&device).load_torchvision(&path).unwrap();
        let expected = flatten(source.forward(images.clone()));
        let actual = flatten(loaded.forward(images.clone()));
        assert_eq!(actual, expected, "round trip changed the features of {config:?}");
    }
}

#[derive(Deserialize)]
struct Reference {
    torch: String,
    block: String,
    blocks: [usize; 4],
    base_width: usize,
    input_shape: [usize; 4],
    features: HashMap<String, FeatureReference>,
}

#[derive(Deserialize)]
struct FeatureReference {
    shape: Vec<usize>,
    sum: f64,
    values: Vec<f32>,
}

/// The script's input: x.flatten()[i] = sin(0.731 i), in f64 then cast.
fn reference_input(shape: [usize; 4]) -> Tensor<B, 4> {
    let n = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|i| (0.731 * i as f64).sin() as f32).collect();
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

#[test]
fn matches_torchvision_on_real_pth_and_safetensors_checkpoints() {
    let device = Default::default();
    for name in ["tiny_resnet18", "tiny_bottleneck"] {
        let json = std::fs::read_to_string(fixture(&format!("{name}.json"))).unwrap();
        let reference: Reference = serde_json::from_str(&json).unwrap();
        let config = ResNetConfig {
            blocks: reference.blocks,
            bottleneck: reference.block == "Bottleneck",
            base_width: reference.base_width,
        };
        if name == "tiny_resnet18" {
            assert_eq!(config, ResNetConfig::new(ResNetDepth::R18).with_base_width(4));
        }
        for ext in ["pth", "safetensors"] {
            let file = format!("{name}.{ext}");
            let model = config.init::<B>(&device).load_torchvision(fixture(&file)).unwrap();
            let features = flatten(model.forward(reference_input(reference.input_shape)));
            for (level, shape, values) in features {
                let want = &reference.features[level];
                assert_eq!(shape, want.shape, "{file} {level} shape");
                // Relative to the map's scale: post-ReLU maps are full of exact zeros.
                let scale = want.values.iter().fold(0f32, |m, v| m.max(v.abs()));
                let worst = values.iter().zip(&want.values).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(
                    worst <= 1e-4 * scale,
                    "{file} {level}: max |diff| {worst} vs scale {scale} (torch {})",
                    reference.torch
                );
                let sum: f64 = values.iter().map(|&v| v as f64).sum();
                assert!((sum - want.sum).abs() <= 1e-4 * want.sum.abs(), "{file} {level}: sum {sum} vs {}", want.sum);
            }
        }
    }
}

/// The top-level message names the file; `{:#}` adds the cause.
fn load_error(config: &ResNetConfig, path: &Path) -> (String, String) {
    let err = config.init::<B>(&Default::default()).load_torchvision(path).unwrap_err();
    let (top, full) = (err.to_string(), format!("{err:#}"));
    let file = path.file_name().unwrap().to_str().unwrap();
    assert!(top.contains(file), "error does not name {file}: {top}");
    (top, full)
}

#[test]
fn clear_errors_for_missing_broken_and_mismatched_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = |depth| ResNetConfig::new(depth).with_base_width(4);

    let (_, full) = load_error(&tiny(ResNetDepth::R18), &dir.path().join("resnet18-missing.pth"));
    assert!(full.contains("no such file"), "{full}");

    for name in ["junk.pth", "junk.safetensors"] {
        let path = dir.path().join(name);
        std::fs::write(&path, "this is not a checkpoint").unwrap();
        let (_, full) = load_error(&tiny(ResNetDepth::R18), &path);
        assert!(full.contains("not a readable checkpoint"), "{full}");
    }
    let path = dir.path().join("weights.bin");
    std::fs::write(&path, "").unwrap();
    let (_, full) = load_error(&tiny(ResNetDepth::R18), &path);
    assert!(full.contains(".safetensors"), "{full}");

    // A resnet18 checkpoint lacks the blocks a resnet34 needs.
    let (_, full) = load_error(&tiny(ResNetDepth::R34), &fixture("tiny_resnet18.pth"));
    assert!(full.contains("another depth") && full.contains("missing from the file"), "{full}");
    assert!(full.contains("layer1.2."), "{full}");
    // Bottleneck weights do not fit basic blocks.
    let (_, full) = load_error(&tiny(ResNetDepth::R18), &fixture("tiny_bottleneck.safetensors"));
    assert!(full.contains("of the wrong shape") && full.contains("resnet18"), "{full}");
    // A deeper checkpoint leaves blocks over: refused rather than silently truncated.
    let shallow = tiny(ResNetDepth::R18).with_blocks([1, 1, 1, 1]);
    let (_, full) = load_error(&shallow, &fixture("tiny_resnet18.safetensors"));
    assert!(full.contains("in the file but not in the model") && full.contains("layer1.1."), "{full}");
}
