//! `twinhead export onnx`: a run's network (a compressed one included) as an
//! ONNX file, and optionally Twinhead's own outputs on a probe batch for
//! `tools/onnx_check.py` to compare ONNX Runtime's with.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use burn::tensor::activation::sigmoid;
use burn::tensor::Tensor;
use serde_json::json;

use crate::compress::measure::probe_images;
use crate::model::anchors::{decode_boxes, Anchors};
use crate::model::{Task, DET_STRIDES};
use crate::onnx::{self, Batch, Classes, ExportOptions};
use crate::predictor::{InferenceBackend, Predictor};
use crate::train::config::MAX_BATCH_SIZE;
use super::run_args::RunCheckpoint;

#[derive(Debug, clap::Args)]
pub struct OnnxArgs {
    #[command(flatten)]
    run: RunCheckpoint,
    /// The ONNX file [default: RUN/onnx/<checkpoint>.onnx].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Images per run: a number, or `dynamic` (a `batch` dimension chosen at run time).
    #[arg(long, default_value = "1", value_parser = batch)]
    batch: Batch,
    /// Input side in pixels, a multiple of 32 [default: the run's image size].
    #[arg(long)]
    size: Option<usize>,
    /// Adds decoded boxes (input pixels), class probabilities and the segmentation argmax as outputs.
    #[arg(long)]
    decode: bool,
    /// Also writes Twinhead's outputs on a probe batch into this folder
    /// (reference.json and raw little-endian arrays), for tools/onnx_check.py.
    #[arg(long, value_name = "DIR")]
    reference: Option<PathBuf>,
}

fn batch(value: &str) -> Result<Batch, String> {
    match value {
        "dynamic" => Ok(Batch::Dynamic),
        n => match n.parse::<usize>() {
            Ok(n) if (1..=MAX_BATCH_SIZE).contains(&n) => Ok(Batch::Fixed(n)),
            _ => Err(format!("{n:?}: a number of images (1 to {MAX_BATCH_SIZE}) or \"dynamic\"")),
        },
    }
}

pub fn run_onnx(args: OnnxArgs) -> Result<ExitCode> {
    let kind = args.run.checkpoint.checkpoint.clone();
    let predictor = Predictor::load(&args.run.run, &kind)?;
    let net = predictor.cpu_net()?;
    let options = ExportOptions {
        image_size: args.size.unwrap_or(predictor.state.image_size as usize),
        batch: args.batch,
        decode: args.decode,
    };
    let classes = Classes { det: predictor.classes(Task::Det), seg: predictor.classes(Task::Seg), cls: predictor.classes(Task::Cls) };
    let model = onnx::export(net, &classes, &options)?;
    let out = args.out.clone().unwrap_or_else(|| args.run.run.join("onnx").join(format!("{}.onnx", kind.name().replace('/', "-"))));
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("{}: cannot create", parent.display()))?;
    }
    onnx::write(&out, &model)?;
    let graph = model.graph.as_ref().expect("an exported model has a graph");
    println!(
        "{} -> {} (opset {}, {} nodes, {} constants, {:.2} MB)",
        predictor.checkpoint.display(),
        out.display(),
        onnx::OPSET,
        graph.node.len(),
        graph.initializer.len(),
        std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) as f64 / 1e6
    );
    for value in graph.input.iter().chain(&graph.output) {
        println!("  {}: [{}]", value.name.as_deref().unwrap_or(""), onnx::dims_text(value).join(", "));
    }
    if let Some(dir) = &args.reference {
        let batch = match options.batch {
            Batch::Fixed(n) => n,
            Batch::Dynamic => 2,
        };
        write_reference(dir, net, &options, batch)?;
        println!("reference outputs of a batch of {batch} in {}", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}


/// Twinhead's outputs for [`probe_images`], each as a raw little-endian file
/// named in `reference.json` with its shape and type.
fn write_reference(dir: &Path, net: &crate::model::TwinNet<InferenceBackend>, options: &ExportOptions, batch: usize) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let images = probe_images(batch, options.image_size);
    let heads = net.forward_heads(images.clone(), net.tasks());
    let mut arrays = vec![(onnx::INPUT, floats(images))];
    if let Some(det) = heads.det {
        if options.decode {
            let anchors = Anchors::new(options.image_size, &DET_STRIDES);
            arrays.push((onnx::BOXES, floats(decode_boxes(det.box_raw.clone(), &anchors))));
            arrays.push((onnx::SCORES, floats(sigmoid(det.cls_logits.clone()))));
        }
        arrays.push((onnx::CLS_LOGITS, floats(det.cls_logits)));
        arrays.push((onnx::BOX_RAW, floats(det.box_raw)));
    }
    if let Some(seg) = heads.seg {
        if options.decode {
            let classes = seg.clone().argmax(1).squeeze_dim::<3>(1);
            let shape = classes.dims().to_vec();
            arrays.push((onnx::SEG_CLASSES, Array::Int64(classes.into_data().convert::<i64>().into_vec().expect("ints"), shape)));
        }
        arrays.push((onnx::SEG_LOGITS, floats(seg)));
    }
    if let Some(logits) = heads.cls {
        if options.decode {
            arrays.push((onnx::CLASS_SCORES, floats(burn::tensor::activation::softmax(logits.clone(), 1))));
        }
        arrays.push((onnx::CLASS_LOGITS, floats(logits)));
    }
    let mut manifest = serde_json::Map::new();
    for (name, array) in arrays {
        let file = format!("{name}.bin");
        let (bytes, dtype, shape): (Vec<u8>, &str, Vec<usize>) = match array {
            Array::Float32(values, shape) => (values.iter().flat_map(|v| v.to_le_bytes()).collect(), "float32", shape),
            Array::Int64(values, shape) => (values.iter().flat_map(|v| v.to_le_bytes()).collect(), "int64", shape),
        };
        crate::export::write_file(&dir.join(&file), &bytes)?;
        manifest.insert(name.to_string(), json!({"file": file, "dtype": dtype, "shape": shape}));
    }
    crate::export::write_file(&dir.join("reference.json"), serde_json::to_string_pretty(&manifest)?.as_bytes())
}

enum Array {
    Float32(Vec<f32>, Vec<usize>),
    Int64(Vec<i64>, Vec<usize>),
}

fn floats<const D: usize>(t: Tensor<InferenceBackend, D>) -> Array {
    let shape = t.dims().to_vec();
    Array::Float32(t.into_data().convert::<f32>().into_vec().expect("floats"), shape)
}
