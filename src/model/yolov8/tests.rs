//! The import against Ultralytics itself: fixtures in tests/fixtures/yolov8
//! from `tools/yolov8_reference.py` (ultralytics and torch from PyPI), a
//! width-reduced YOLOv8 (channels 8–64, 20 classes) with randomised
//! BatchNorms saved by Ultralytics' own checkpoint writer, and the outputs
//! Ultralytics computes for its layers 4, 6, 9, 15, 18 and 21.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::module::{Module, Param};
use burn::tensor::{Distribution, Tensor, TensorData};
use serde::Deserialize;

use super::*;
use crate::model::{ModelConfig, ModelSize, Reshape};

type B = Flex;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/yolov8").join(name)
}

#[derive(Deserialize)]
struct Reference {
    ultralytics: String,
    input_shape: [usize; 4],
    classes: usize,
    width: f32,
    outputs: HashMap<String, Output>,
}

#[derive(Deserialize)]
struct Output {
    shape: Vec<usize>,
    values: Vec<f32>,
}

fn reference() -> Reference {
    serde_json::from_str(&std::fs::read_to_string(fixture("tiny_yolov8.json")).unwrap()).unwrap()
}

/// The network the fixtures fit: size n at the fixture's width.
fn config(reference: &Reference) -> ModelConfig {
    ModelConfig { width: Some(reference.width), ..ModelConfig::new(ModelSize::N, reference.classes, 5) }
}

/// The script's input: x.flatten()[i] = sin(0.731 i), in f64 then cast.
fn input(shape: [usize; 4]) -> Tensor<B, 4> {
    let n = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|i| (0.731 * i as f64).sin() as f32).collect();
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

/// Our outputs under Ultralytics' layer names.
fn outputs(net: &TwinNet<B>, images: Tensor<B, 4>) -> Vec<(&'static str, Tensor<B, 4>)> {
    let features = net.backbone.forward(images);
    let (c3, c4, c5) = (features.c3.clone(), features.c4.clone(), features.c5.clone());
    let pyramid = net.neck.forward(features, false);
    vec![("model.4", c3), ("model.6", c4), ("model.9", c5), ("model.15", pyramid.p3), ("model.18", pyramid.p4), ("model.21", pyramid.p5)]
}

/// Our outputs match each layer the reference has to 1e-4 of its largest value.
fn assert_matches_ultralytics(net: &TwinNet<B>, reference: &Reference, file: &str) {
    let layers = outputs(net, input(reference.input_shape)).into_iter().filter(|(layer, _)| reference.outputs.contains_key(*layer));
    for (layer, tensor) in layers {
        let want = &reference.outputs[layer];
        assert_eq!(tensor.dims().to_vec(), want.shape, "{file} {layer}");
        let values: Vec<f32> = tensor.into_data().to_vec().unwrap();
        let scale = want.values.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = values.iter().zip(&want.values).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= 1e-4 * scale, "{file} {layer}: max |diff| {worst}, scale {scale} (ultralytics {})", reference.ultralytics);
    }
}

#[test]
fn an_ultralytics_checkpoint_computes_what_ultralytics_computes() {
    let reference = reference();
    let config = config(&reference);
    let mut net = TwinNet::<B>::new(&config, &Default::default());
    let report = import(&mut net, &fixture("tiny_yolov8.pt")).unwrap();
    assert_matches_ultralytics(&net, &reference, "tiny_yolov8.pt");

    // Every backbone and neck layer but the stride-4 path, and the head's
    // class branch (20 classes: 20 channels in both), are loaded; the box
    // branch (YOLOv8's 64 channels, our 32), the predictions, the stride-4
    // path and the segmentation head start fresh, each with its reason.
    let fresh = |layer: &str| report.fresh.iter().find(|f| f.layer == layer).map(|f| f.reason.as_str());
    assert!(report.loaded.contains(&"backbone.stage3.blocks.1.cv2".to_string()));
    assert!(report.loaded.contains(&"neck.bottom_up5.cv2".to_string()));
    assert!(report.loaded.contains(&"det_head.levels.2.cls2".to_string()));
    assert_eq!(fresh("det_head.levels.0.box1"), Some("the file's widths differ (they follow its class count)"));
    assert_eq!(fresh("neck.top_down2.cv1"), Some("no YOLOv8 counterpart"));
    assert!(fresh("det_head.levels.1.cls_out").is_some());
    assert!(report.fresh.iter().any(|f| f.layer.starts_with("seg_head.")));
    assert!(!report.loaded.iter().any(|l| l.starts_with("seg_head.") || l.starts_with("neck.top_down2")));
    let summary = report.summary();
    assert!(summary.starts_with(&format!("loaded {} layers from ", report.loaded.len())), "{summary}");
    assert!(summary.contains("neck.top_down2") && summary.contains("det_head.levels.0.box1"), "{summary}");

    // A network rebuilt from the configuration with the recorded edit (what a
    // checkpoint, resume, predict and eval do) computes the same after loading.
    let edited = ModelConfig { reshape: vec![Reshape::BatchNorm { layers: report.loaded.iter().cloned().collect() }], ..config };
    let rebuilt = TwinNet::<B>::new(&edited, &Default::default()).load_record(net.clone().into_record());
    let images = input(reference.input_shape);
    for ((layer, a), (_, b)) in outputs(&net, images.clone()).into_iter().zip(outputs(&rebuilt, images)) {
        assert_eq!(a.into_data(), b.into_data(), "{layer} after the record round trip");
    }
}

#[test]
fn fp32_state_dicts_in_pt_and_safetensors_load_the_same() {
    let reference = reference();
    for file in ["tiny_yolov8_state.pt", "tiny_yolov8.safetensors"] {
        let mut net = TwinNet::<B>::new(&config(&reference), &Default::default());
        let report = import(&mut net, &fixture(file)).unwrap();
        assert_matches_ultralytics(&net, &reference, file);
        // These hold layers 0–21: the head starts fresh.
        assert!(report.fresh.iter().any(|f| f.layer == "det_head.levels.0.cls1" && f.reason == "not in the file"), "{file}");
    }
}

fn import_error(config: &ModelConfig, path: &Path) -> String {
    let mut net = TwinNet::<B>::new(config, &Default::default());
    let error = format!("{:#}", import(&mut net, path).unwrap_err());
    let file = path.file_name().unwrap().to_str().unwrap();
    assert!(error.contains(file) && error.starts_with("model.pretrained"), "error does not name {file}: {error}");
    error
}

#[test]
fn other_tasks_generations_sizes_and_broken_files_are_refused_by_name() {
    let reference = reference();
    let tiny = config(&reference);
    let dir = tempfile::tempdir().unwrap();

    let error = import_error(&tiny, &fixture("tiny_yolov8_seg.pt"));
    assert!(error.contains("SegmentationModel") && error.contains("instance-segmentation"), "{error}");
    let error = import_error(&tiny, &fixture("tiny_yolo11.pt"));
    assert!(error.contains("`model.2.") && error.contains("YOLO11"), "{error}");
    // The same file into a network of the size-n width: the first layer is named.
    let wider = ModelConfig { width: None, ..tiny.clone() };
    let error = import_error(&wider, &fixture("tiny_yolov8.pt"));
    assert!(error.contains("`model.0.conv.weight` is [8, 3, 3, 3] in the file, [16, 3, 3, 3] here (backbone.stem)"), "{error}");
    // A deeper network lacks nothing the file has but needs what it lacks.
    let deeper = ModelConfig { depth: Some(0.67), ..tiny.clone() };
    let error = import_error(&deeper, &fixture("tiny_yolov8.pt"));
    assert!(error.contains("is not in the file") || error.contains("in the file,"), "{error}");
    // A shallower one would leave blocks of the file unused.
    let shallow = ModelConfig { depth: Some(0.1), ..tiny.clone() };
    let error = import_error(&shallow, &fixture("tiny_yolov8.pt"));
    assert!(error.contains("model.4.") || error.contains("model.2."), "{error}");

    // Stride-32 layers capped narrower than the file's (YOLOv8m against our m): the key is named.
    let capped = ModelConfig { max_channels: Some(32), ..tiny.clone() };
    let error = import_error(&capped, &fixture("tiny_yolov8.pt"));
    assert!(error.contains("(backbone.down5)") && error.contains("set model.max_channels = 64"), "{error}");

    let error = import_error(&tiny, &dir.path().join("yolov8n-missing.pt"));
    assert!(error.contains("no such file"), "{error}");
    for name in ["junk.pt", "junk.safetensors"] {
        std::fs::write(dir.path().join(name), "this is not a checkpoint").unwrap();
        let error = import_error(&tiny, &dir.path().join(name));
        assert!(error.contains("not a checkpoint written by torch.save") || error.contains("not a readable safetensors"), "{error}");
    }
    std::fs::write(dir.path().join("weights.bin"), "").unwrap();
    assert!(import_error(&tiny, &dir.path().join("weights.bin")).contains("expected an Ultralytics .pt"));
}

/// Writes `net` out as an Ultralytics state dict and imports it into a fresh
/// network of `config`.
fn written_and_read_back(net: &mut TwinNet<B>, config: &ModelConfig, calibration: &[Tensor<B, 4>]) -> (export::StateDict, TwinNet<B>) {
    let state = export::state_dict(net, calibration.iter().cloned()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exported.safetensors");
    std::fs::write(&path, state.to_safetensors().unwrap()).unwrap();
    let mut back = TwinNet::<B>::new(config, &Default::default());
    import(&mut back, &path).unwrap();
    (state, back)
}

#[test]
fn an_imported_network_written_out_reads_back_with_ultralytics_names_and_outputs() {
    let reference = reference();
    let config = config(&reference);
    let mut net = TwinNet::<B>::new(&config, &Default::default());
    import(&mut net, &fixture("tiny_yolov8.pt")).unwrap();
    let images = input(reference.input_shape);
    let (state, back) = written_and_read_back(&mut net, &config, std::slice::from_ref(&images));
    // Layers 0–21 under exactly the names (and shapes) Ultralytics' state dict has.
    let theirs = file::read(&fixture("tiny_yolov8.safetensors")).unwrap().tensors;
    let ours: Vec<(&String, &[usize])> = state.tensors.iter().filter(|(n, _)| layer_index(n).is_some_and(|i| i <= 21)).map(|(n, t)| (n, t.shape.as_slice())).collect();
    let expected: Vec<(&String, &[usize])> = theirs.iter().map(|(n, t)| (n, t.shape.as_slice())).collect();
    assert_eq!(ours, expected);
    // Folded layers are written exactly: the import of the export still computes what Ultralytics does.
    assert_matches_ultralytics(&back, &reference, "the exported tiny_yolov8.pt");
    assert!(export::neck_difference(&net, &back, images).unwrap().iter().all(|&d| d < 1e-5));
}

#[test]
fn group_norm_layers_are_written_as_batch_norms_of_their_calibration_statistics() {
    let reference = reference();
    let config = config(&reference);
    let device = Default::default();
    let mut net = TwinNet::<B>::new(&config, &device);
    // Non-trivial GroupNorm affines, and one factorized layer (multiplied back on export).
    net.visit_layers("", &mut |path, layer| {
        if let Some(norm) = layer.norm.as_mut() {
            norm.gamma = Some(Param::from_tensor(Tensor::random([norm.num_channels], Distribution::Uniform(0.5, 1.5), &device)));
            norm.beta = Some(Param::from_tensor(Tensor::random([norm.num_channels], Distribution::Normal(0.0, 0.5), &device)));
        }
        if path == "backbone.down3" {
            let [out, inputs, k, _] = layer.input_conv().weight.dims();
            let first = Tensor::random([4, inputs, k, k], Distribution::Normal(0.0, 0.2), &device);
            layer.factorize(first, Tensor::random([out, 4, 1, 1], Distribution::Normal(0.0, 0.5), &device));
        }
    });
    // Calibrated on one image, the BatchNorms normalise that image exactly as the GroupNorms do.
    let image = input([1, 3, 64, 96]);
    let (state, back) = written_and_read_back(&mut net, &config, std::slice::from_ref(&image));
    assert_eq!(state.calibration_images, 1);
    assert!(state.layers.contains(&"backbone.down3".to_string()) && !state.layers.iter().any(|l| l.starts_with("seg_head.")));
    let difference = export::neck_difference(&net, &back, image.clone()).unwrap();
    assert!(difference.iter().all(|&d| d < 1e-4), "{difference:?}");
    // Another image is normalised by the first one's statistics, not its own
    // (in a random network the difference grows layer by layer).
    let other = image.clone().flip([3]).mul_scalar(0.8);
    let difference = export::neck_difference(&net, &back, other).unwrap();
    assert!(difference.iter().all(|&d| d > 1e-3), "{difference:?}");
}

/// YOLOv8m caps its channels before the width multiplier (768 → 576), ours
/// after: `max_channels` builds its widths, and its weights compute what Ultralytics computes.
#[test]
fn a_capped_checkpoint_loads_with_max_channels() {
    let reference: Reference = serde_json::from_str(&std::fs::read_to_string(fixture("tiny_yolov8m.json")).unwrap()).unwrap();
    let config = ModelConfig { width: Some(reference.width), max_channels: Some(48), ..ModelConfig::new(ModelSize::M, reference.classes, 5) };
    let mut net = TwinNet::<B>::new(&config, &Default::default());
    import(&mut net, &fixture("tiny_yolov8m.safetensors")).unwrap();
    assert_matches_ultralytics(&net, &reference, "tiny_yolov8m.safetensors");
    // Without the cap the file is refused, the key named.
    let uncapped = ModelConfig { max_channels: None, ..config };
    assert!(import_error(&uncapped, &fixture("tiny_yolov8m.safetensors")).contains("set model.max_channels = 48"));
}
