//! ONNX export: a trained (or compressed) network as an ONNX graph at opset
//! [`OPSET`], for ONNX Runtime, TensorRT and OpenVINO.
//!
//! The graph reads [`INPUT`] `[N, 3, S, S]` float32: RGB, `(v / 255 − mean) / std`
//! with ImageNet's mean and std, each image letterboxed (aspect kept, centred,
//! padded with grey 114) into S×S, S the run's image size. It writes the raw
//! outputs of the network's heads ([`CLS_LOGITS`] and [`BOX_RAW`], [`SEG_LOGITS`],
//! [`CLASS_LOGITS`]), and with `decode` also [`BOXES`] (input pixels),
//! [`SCORES`] (sigmoids), [`SEG_CLASSES`] (the argmax) and [`CLASS_SCORES`]. The same contract is in the file's
//! `doc_string` and `metadata_props`, so it can be fed without Twinhead.

mod graph;
mod net;
pub mod proto;

use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::tensor::backend::Backend;
use prost::Message;

pub use graph::{Batch, BATCH_DIM};
use graph::{Attr, Graph, Value};
use proto::{DataType, ModelProto, OperatorSetIdProto, StringStringEntryProto};

use crate::data::preprocess::{IMAGENET_MEAN, IMAGENET_STD, PAD_IMAGE};
use crate::model::anchors::Anchors;
use crate::model::{TwinNet, DET_STRIDES};

/// The ONNX operator set the graph is written for.
pub const OPSET: i64 = 17;
/// The IR version that goes with [`OPSET`].
const IR_VERSION: i64 = 8;

/// The input: letterboxed, normalised images.
pub const INPUT: &str = "images";
/// `[N, A, det_classes]` class logits per anchor.
pub const CLS_LOGITS: &str = "det_cls_logits";
/// `[N, A, 4]` raw box distances per anchor (left, top, right, bottom).
pub const BOX_RAW: &str = "det_box_raw";
/// `[N, seg_classes, S, S]` segmentation logits.
pub const SEG_LOGITS: &str = "seg_logits";
/// `[N, cls_classes]` classification logits.
pub const CLASS_LOGITS: &str = "cls_logits";
/// `[N, cls_classes]` classification probabilities (`decode`).
pub const CLASS_SCORES: &str = "cls_scores";
/// `[N, A, 4]` decoded boxes `x0, y0, x1, y1` in input pixels (`decode`).
pub const BOXES: &str = "det_boxes";
/// `[N, A, det_classes]` class probabilities (`decode`).
pub const SCORES: &str = "det_scores";
/// `[N, S, S]` int64 segmentation class per pixel, 0-based (`decode`).
pub const SEG_CLASSES: &str = "seg_classes";

/// What to write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExportOptions {
    /// The input side S (a multiple of 32).
    pub image_size: usize,
    pub batch: Batch,
    /// Adds box decoding and the segmentation argmax.
    pub decode: bool,
}

/// The class names the outputs index (empty for a task the network has no head for).
pub struct Classes<'a> {
    pub det: &'a [String],
    pub seg: &'a [String],
    pub cls: &'a [String],
}

/// The ONNX model of `net`.
pub fn export<B: Backend>(net: &TwinNet<B>, classes: &Classes, options: &ExportOptions) -> Result<ModelProto> {
    let size = options.image_size;
    if size == 0 || size % 32 != 0 {
        bail!("image size {size}: the network needs a multiple of 32 (its coarsest stride)");
    }
    let largest = crate::train::config::MAX_IMAGE_SIZE as usize;
    if size > largest {
        bail!("image size {size}: at most {largest} pixels (as data.image_size)");
    }
    let mut g = Graph::new(options.batch);
    let images = Value { name: INPUT.to_string(), dims: vec![g.batch(), 3, size, size] };
    let raw = net::twin_net(&mut g, net, &images)?;
    // The raw outputs first, then the decoded ones (the order two-task files always had).
    let (mut outputs, mut decoded) = (Vec::new(), Vec::new());
    if let Some((cls_logits, box_raw)) = raw.det {
        let cls_logits = g.rename(cls_logits, CLS_LOGITS);
        let box_raw = g.rename(box_raw, BOX_RAW);
        outputs.push(g.value_info(&cls_logits, DataType::Float, "class logits per anchor; sigmoid gives the probability"));
        outputs.push(g.value_info(&box_raw, DataType::Float, "raw distances to the left, top, right, bottom sides: softplus(raw) * stride"));
        if options.decode {
            let (boxes, scores) = decode_boxes(&mut g, &cls_logits, &box_raw, size);
            decoded.push(g.value_info(&boxes, DataType::Float, "boxes x0, y0, x1, y1 in input pixels"));
            decoded.push(g.value_info(&scores, DataType::Float, "class probabilities per anchor"));
        }
    }
    if let Some(seg_logits) = raw.seg_logits {
        let seg_logits = g.rename(seg_logits, SEG_LOGITS);
        outputs.push(g.value_info(&seg_logits, DataType::Float, "segmentation logits at the input size"));
        if options.decode {
            let [n, _, h, w] = seg_logits.dims[..] else { unreachable!("segmentation logits are 4-D") };
            let attrs = vec![("axis", Attr::Int(1)), ("keepdims", Attr::Int(0))];
            let seg_classes = g.node("ArgMax", SEG_CLASSES, &[&seg_logits.name], attrs, vec![n, h, w]);
            decoded.push(g.value_info(&seg_classes, DataType::Int64, "segmentation class per pixel, 0-based"));
        }
    }
    outputs.append(&mut decoded);
    if let Some(logits) = raw.class_logits {
        let logits = g.rename(logits, CLASS_LOGITS);
        outputs.push(g.value_info(&logits, DataType::Float, "classification logits; softmax gives the probabilities"));
        if options.decode {
            let attrs = vec![("axis", Attr::Int(1))];
            let scores = g.node("Softmax", CLASS_SCORES, &[&logits.name], attrs, logits.dims.clone());
            outputs.push(g.value_info(&scores, DataType::Float, "classification probabilities"));
        }
    }
    let inputs = vec![g.value_info(&images, DataType::Float, &input_doc(size))];
    let graph = g.finish("twinhead", inputs, outputs);
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET) }],
        producer_name: Some("twinhead".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(input_doc(size)),
        graph: Some(graph),
        metadata_props: metadata(classes, options),
    })
}

/// The decoded detections: boxes `centres + softplus(raw) · stride · [−1, −1, 1, 1]`
/// (as `crate::model::anchors::decode_boxes`) and sigmoid scores.
fn decode_boxes(g: &mut Graph, cls_logits: &Value, box_raw: &Value, size: usize) -> (Value, Value) {
    let anchors = Anchors::new(size, &DET_STRIDES);
    let a = anchors.len();
    let centres: Vec<f32> = anchors.points.iter().flat_map(|&[x, y]| [x, y, x, y]).collect();
    let steps: Vec<f32> = anchors.strides.iter().flat_map(|&s| [-s, -s, s, s]).collect();
    let centres = g.constant_f32("decode.anchor_centres", &[1, a, 4], &centres);
    let steps = g.constant_f32("decode.anchor_strides", &[1, a, 4], &steps);
    let distances = g.node("Softplus", "decode.softplus", &[&box_raw.name], vec![], box_raw.dims.clone());
    let offsets = g.node("Mul", "decode.scale", &[&distances.name, &steps.name], vec![], box_raw.dims.clone());
    let boxes = g.node("Add", BOXES, &[&offsets.name, &centres.name], vec![], box_raw.dims.clone());
    let scores = g.node("Sigmoid", SCORES, &[&cls_logits.name], vec![], cls_logits.dims.clone());
    (boxes, scores)
}

fn input_doc(size: usize) -> String {
    format!(
        "{INPUT}: [N, 3, {size}, {size}] float32, RGB, NCHW, (v / 255 - mean) / std with mean {IMAGENET_MEAN:?}, \
         std {IMAGENET_STD:?}; each image resized keeping its aspect so its long side is {size}, centred, \
         padded with grey {PAD_IMAGE}. Anchors: strides {DET_STRIDES:?}, one per cell at ((x + 0.5)·stride, (y + 0.5)·stride), \
         levels concatenated, cells row-major."
    )
}

fn metadata(classes: &Classes, options: &ExportOptions) -> Vec<StringStringEntryProto> {
    let entry = |key: &str, value: String| StringStringEntryProto { key: Some(key.into()), value: Some(value) };
    let json = |v: serde_json::Value| v.to_string();
    vec![
        entry("det_classes", json(serde_json::json!(classes.det))),
        entry("seg_classes", json(serde_json::json!(classes.seg))),
        entry("cls_classes", json(serde_json::json!(classes.cls))),
        entry("image_size", options.image_size.to_string()),
        entry("strides", json(serde_json::json!(DET_STRIDES))),
        entry("mean", json(serde_json::json!(IMAGENET_MEAN))),
        entry("std", json(serde_json::json!(IMAGENET_STD))),
        entry("pad_value", PAD_IMAGE.to_string()),
        entry("letterbox", "centred".into()),
        entry("channel_order", "RGB".into()),
    ]
}

/// Writes `model` to `path` through a temporary file, so a killed export leaves no half file.
pub fn write(path: &Path, model: &ModelProto) -> Result<()> {
    crate::train::run_dir::write_atomic(path, &model.encode_to_vec())
}

/// A declared value's dimensions: sizes, or the name of a size chosen at run time.
pub fn dims_text(value: &proto::ValueInfoProto) -> Vec<String> {
    let shape = value.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()).and_then(|t| t.shape.as_ref());
    let text = |d: &proto::Dimension| match &d.value {
        Some(proto::DimensionValue::DimValue(v)) => v.to_string(),
        Some(proto::DimensionValue::DimParam(p)) => p.clone(),
        None => "?".into(),
    };
    shape.map(|s| s.dim.iter().map(text).collect()).unwrap_or_default()
}

/// Reads an ONNX file.
pub fn read(path: &Path) -> Result<ModelProto> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    ModelProto::decode(bytes.as_slice()).with_context(|| format!("{}: not an ONNX model", path.display()))
}

#[cfg(test)]
mod tests {
    use super::proto::GraphProto;
    use super::*;
    use crate::compress::{int8, lowrank, prune};
    use crate::model::EditableLayers;
    use burn::backend::Flex;

    fn net() -> TwinNet<Flex> {
        crate::train::trainee::Trainee::tiny_test_net(&Default::default())
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("class{i}")).collect()
    }

    fn exported(net: &TwinNet<Flex>, options: &ExportOptions) -> GraphProto {
        let (det, seg) = (names(3), names(5));
        let cls = names(net.cls_head.as_ref().map_or(0, |head| head.num_classes()));
        let model = export(net, &Classes { det: &det, seg: &seg, cls: &cls }, options).unwrap();
        // What a reader of the file gets back.
        let read = ModelProto::decode(model.encode_to_vec().as_slice()).unwrap();
        assert_eq!(read, model);
        read.graph.unwrap()
    }


    fn ops(graph: &GraphProto, op: &str) -> usize {
        graph.node.iter().filter(|n| n.op_type.as_deref() == Some(op)).count()
    }

    /// (convolutions, conv–norm–act layers) of a network.
    fn layer_counts(net: &mut TwinNet<Flex>) -> (usize, usize) {
        let (mut convs, mut layers) = (0, 0);
        net.visit_layers("", &mut |_, layer| {
            layers += 1;
            convs += layer.convs_mut().len();
        });
        // The heads' prediction convolutions: cls_out and box_out per level, the classifier.
        (convs + 3 * 2 + 1, layers)
    }

    /// Every node reads the input, a constant or an earlier node's output,
    /// and no two write one name: the order is topological.
    fn assert_topological(graph: &GraphProto) {
        let mut known: std::collections::HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_deref().unwrap()).collect();
        known.extend(graph.input.iter().map(|v| v.name.as_deref().unwrap()));
        known.insert("");
        for node in &graph.node {
            for input in &node.input {
                assert!(known.contains(input.as_str()), "{:?} reads {input:?} before it is written", node.name);
            }
            for output in &node.output {
                assert!(known.insert(output), "{output:?} written twice");
            }
        }
        for output in &graph.output {
            assert!(known.contains(output.name.as_deref().unwrap()), "no node writes {:?}", output.name);
        }
    }

    #[test]
    fn sizes_the_network_cannot_take_are_refused_before_any_allocation() {
        let classes = Classes { det: &names(3), seg: &names(5), cls: &[] };
        for size in [0, 48, 4096 + 32, 1_099_511_627_776] {
            let error = export(&net(), &classes, &ExportOptions { image_size: size, batch: Batch::Fixed(1), decode: false }).unwrap_err().to_string();
            assert!(error.starts_with(&format!("image size {size}:")), "{error}");
        }
    }

    #[test]
    fn a_classification_head_adds_its_logits_and_probabilities() {
        let mut config = crate::model::ModelConfig::new(crate::model::ModelSize::N, 3, 5);
        config.width = Some(0.25);
        config.cls_classes = 4;
        let three_task = TwinNet::<Flex>::new(&config, &Default::default());
        let graph = exported(&three_task, &ExportOptions { image_size: 64, batch: Batch::Fixed(2), decode: true });
        let outputs: Vec<(&str, Vec<String>)> = graph.output.iter().map(|v| (v.name.as_deref().unwrap(), dims_text(v))).collect();
        assert_eq!(outputs[outputs.len() - 2..], [(CLASS_LOGITS, vec!["2".into(), "4".into()]), (CLASS_SCORES, vec!["2".into(), "4".into()])]);
        assert_eq!((ops(&graph, "GlobalAveragePool"), ops(&graph, "Gemm"), ops(&graph, "Softmax")), (1, 2, 1));
        assert_topological(&graph);
        let without = exported(&net(), &ExportOptions { image_size: 64, batch: Batch::Fixed(2), decode: true });
        assert!(without.output.iter().all(|v| !v.name.as_deref().unwrap().starts_with("cls_")));
        // Classification alone: its outputs, and no neck in the graph.
        config.det_classes = 0;
        config.seg_classes = 0;
        let cls_only = TwinNet::<Flex>::new(&config, &Default::default());
        let graph = exported(&cls_only, &ExportOptions { image_size: 64, batch: Batch::Fixed(2), decode: true });
        let outputs: Vec<&str> = graph.output.iter().map(|v| v.name.as_deref().unwrap()).collect();
        assert_eq!(outputs, [CLASS_LOGITS, CLASS_SCORES]);
        assert!(graph.node.iter().all(|n| !n.name.as_deref().unwrap().starts_with("neck.")));
        assert_topological(&graph);
    }

    #[test]
    fn the_graph_declares_its_contract_and_one_node_per_operation() {
        let mut net = net();
        let graph = exported(&net, &ExportOptions { image_size: 64, batch: Batch::Dynamic, decode: true });
        let io: Vec<(&str, Vec<String>)> =
            graph.input.iter().chain(&graph.output).map(|v| (v.name.as_deref().unwrap(), dims_text(v))).collect();
        let dims = |d: &[&str]| d.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // 64 px: 8² + 4² + 2² anchors.
        assert_eq!(
            io,
            vec![
                (INPUT, dims(&["batch", "3", "64", "64"])),
                (CLS_LOGITS, dims(&["batch", "84", "3"])),
                (BOX_RAW, dims(&["batch", "84", "4"])),
                (SEG_LOGITS, dims(&["batch", "5", "64", "64"])),
                (BOXES, dims(&["batch", "84", "4"])),
                (SCORES, dims(&["batch", "84", "3"])),
                (SEG_CLASSES, dims(&["batch", "64", "64"])),
            ]
        );
        assert_topological(&graph);
        let (convs, layers) = layer_counts(&mut net);
        assert_eq!(ops(&graph, "Conv"), convs);
        assert_eq!(ops(&graph, "InstanceNormalization"), layers);
        // SiLU after every GroupNorm: a Sigmoid each, and one for the scores.
        assert_eq!(ops(&graph, "Sigmoid"), layers + 1);
        // Upsampling: 3 in the neck, 1 + 2 + 3 in the segmentation branches.
        assert_eq!(ops(&graph, "Resize"), 9);
        assert_eq!(ops(&graph, "MaxPool"), 3);
        assert_eq!(ops(&graph, "DequantizeLinear"), 0);
        let fixed = exported(&net, &ExportOptions { image_size: 96, batch: Batch::Fixed(4), decode: false });
        assert_eq!(fixed.output.len(), 3);
        assert_eq!(dims_text(&fixed.output[2]), dims(&["4", "5", "96", "96"]));
        assert_eq!(fixed.node.len() + 5, graph.node.len(), "decoding adds five nodes");
    }

    #[test]
    fn pruned_factorized_and_int8_networks_export_with_their_real_shapes() {
        let mut net = net();
        prune::prune(&mut net, 0.3);
        lowrank::factorize(&mut net, 0.9, false).unwrap();
        let mut shapes = std::collections::HashMap::new();
        net.visit_layers("", &mut |path, layer| {
            shapes.insert(format!("{path}.conv"), layer.input_conv().weight.dims());
            if layer.is_factorized() {
                shapes.insert(format!("{path}.pointwise"), layer.output_conv().weight.dims());
            }
        });
        let float = exported(&net, &ExportOptions { image_size: 64, batch: Batch::Fixed(1), decode: false });
        assert_topological(&float);
        for (path, dims) in &shapes {
            let weight = float.initializer.iter().find(|t| t.name.as_deref() == Some(&format!("{path}.weight"))).unwrap();
            assert_eq!(weight.dims, dims.map(|d| d as i64), "{path}");
        }
        let (convs, _) = layer_counts(&mut net);
        assert_eq!(ops(&float, "Conv"), convs);

        let quantized = int8::quantize(&mut net);
        let graph = exported(&net, &ExportOptions { image_size: 64, batch: Batch::Fixed(1), decode: false });
        assert_topological(&graph);
        assert_eq!(ops(&graph, "DequantizeLinear"), quantized);
        assert_eq!(ops(&graph, "Conv"), convs);
    }

    #[test]
    fn a_size_the_strides_do_not_divide_is_refused() {
        let (det, seg) = (names(3), names(5));
        let options = ExportOptions { image_size: 100, batch: Batch::Fixed(1), decode: false };
        let error = export(&net(), &Classes { det: &det, seg: &seg, cls: &[] }, &options).unwrap_err().to_string();
        assert!(error.contains("multiple of 32"), "{error}");
    }
}
