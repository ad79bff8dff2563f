//! Twinhead's network as ONNX nodes: every module of [`TwinNet`] written with
//! standard operators, with the weights it has now (a pruned layer's kept
//! channels, a factorized layer's two convolutions, int8 weights as
//! `DequantizeLinear` of int8 constants).
//!
//! Each function mirrors the module's `forward` in `crate::model`; a change there
//! is a change here, and `tools/onnx_check.py` compares the two.

use anyhow::{bail, Result};
use burn::nn::conv::Conv2d;
use burn::nn::{Linear, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::quantization::{QuantLevel, QuantizedBytes};
use burn::tensor::{DType, Tensor};

use super::graph::{output_side, Attr, Graph, Value};
use crate::model::backbone::{Backbone, CspBackbone};
use crate::model::blocks::{Bottleneck, ConvNormAct, Sppf, C2f};
use crate::model::cls_head::ClsHead;
use crate::model::det_head::DetHead;
use crate::model::neck::PanFpn;
use crate::model::norm::GroupNorm;
use crate::model::resnet::{Block, FrozenBatchNorm2d, ResNet};
use crate::model::seg_head::{interpolation_weights, SegHead, OUTPUT_STRIDE};
use crate::model::TwinNet;

/// The raw outputs of the network's heads.
pub struct NetOutputs {
    /// `[N, A, det_classes]` class logits, anchors of all levels concatenated,
    /// and `[N, A, 4]` raw distances (left, top, right, bottom) to decode.
    pub det: Option<(Value, Value)>,
    /// `[N, seg_classes, H, W]` segmentation logits at the input size.
    pub seg_logits: Option<Value>,
    /// `[N, cls_classes]` classification logits.
    pub class_logits: Option<Value>,
}

/// The nodes of `net` reading `images` `[N, 3, H, W]`.
pub fn twin_net<B: Backend>(g: &mut Graph, net: &TwinNet<B>, images: &Value) -> Result<NetOutputs> {
    let features = match &net.backbone {
        Backbone::Csp(backbone) => csp_backbone(g, "backbone", backbone, images)?,
        Backbone::ResNet(backbone) => resnet(g, "backbone", backbone, images)?,
    };
    let class_logits = net.cls_head.as_ref().map(|head| cls_head(g, "cls_head", head, &features.c5));
    if net.det_head.is_none() && net.seg_head.is_none() {
        return Ok(NetOutputs { det: None, seg_logits: None, class_logits });
    }
    let pyramid = neck(g, "neck", &net.neck, &features)?;
    let det = net.det_head.as_ref().map(|head| det_head(g, "det_head", head, &pyramid)).transpose()?;
    let seg_logits = net.seg_head.as_ref().map(|head| seg_head(g, "seg_head", head, &pyramid)).transpose()?;
    Ok(NetOutputs { det, seg_logits, class_logits })
}

/// `crate::model::cls_head::ClsHead::forward`: the mean over the image, then
/// linear, SiLU, linear (`Gemm`; burn's `[in, out]` weights are Gemm's B as they are).
fn cls_head<B: Backend>(g: &mut Graph, path: &str, head: &ClsHead<B>, c5: &Value) -> Value {
    let [n, c, _, _] = dims4(c5);
    let pooled = g.node("GlobalAveragePool", &format!("{path}.pool"), &[&c5.name], vec![], vec![n, c, 1, 1]);
    let flat = g.node("Flatten", &format!("{path}.flatten"), &[&pooled.name], vec![("axis", Attr::Int(1))], vec![n, c]);
    let hidden = linear(g, &format!("{path}.hidden"), &head.hidden, &flat);
    let hidden = silu(g, &format!("{path}.silu"), &hidden);
    linear(g, &format!("{path}.classifier"), &head.classifier, &hidden)
}

fn linear<B: Backend>(g: &mut Graph, path: &str, layer: &Linear<B>, x: &Value) -> Value {
    let [d_in, d_out] = layer.weight.val().dims();
    let weight = g.constant_f32(&format!("{path}.weight"), &[d_in, d_out], &floats(layer.weight.val()));
    let mut inputs = vec![x.name.clone(), weight.name.clone()];
    if let Some(bias) = &layer.bias {
        inputs.push(g.constant_f32(&format!("{path}.bias"), &[d_out], &floats(bias.val())).name);
    }
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    g.node("Gemm", path, &inputs, vec![], vec![x.dims[0], d_out])
}

/// The backbone's features at strides 4, 8, 16 and 32.
struct Features {
    c2: Value,
    c3: Value,
    c4: Value,
    c5: Value,
}

fn csp_backbone<B: Backend>(g: &mut Graph, path: &str, b: &CspBackbone<B>, images: &Value) -> Result<Features> {
    let x = conv_norm_act(g, &format!("{path}.stem"), &b.stem, images)?;
    let x = conv_norm_act(g, &format!("{path}.down2"), &b.down2, &x)?;
    let c2 = c2f(g, &format!("{path}.stage2"), &b.stage2, &x)?;
    let x = conv_norm_act(g, &format!("{path}.down3"), &b.down3, &c2)?;
    let c3 = c2f(g, &format!("{path}.stage3"), &b.stage3, &x)?;
    let x = conv_norm_act(g, &format!("{path}.down4"), &b.down4, &c3)?;
    let c4 = c2f(g, &format!("{path}.stage4"), &b.stage4, &x)?;
    let x = conv_norm_act(g, &format!("{path}.down5"), &b.down5, &c4)?;
    let x = c2f(g, &format!("{path}.stage5"), &b.stage5, &x)?;
    let c5 = sppf(g, &format!("{path}.sppf"), &b.sppf, &x)?;
    Ok(Features { c2, c3, c4, c5 })
}

fn resnet<B: Backend>(g: &mut Graph, path: &str, r: &ResNet<B>, images: &Value) -> Result<Features> {
    let x = conv(g, &format!("{path}.conv1"), &r.conv1, images)?;
    let x = frozen_bn(g, &format!("{path}.bn1"), &r.bn1, &x);
    let x = relu(g, &format!("{path}.relu"), &x);
    let x = max_pool(g, &format!("{path}.maxpool"), &x, 3, 2, 1);
    let mut stage = |name: &str, blocks: &[Block<B>], x: Value| -> Result<Value> {
        blocks.iter().enumerate().try_fold(x, |x, (i, block)| resnet_block(g, &format!("{path}.{name}.{i}"), block, &x))
    };
    let c2 = stage("layer1", &r.layer1, x)?;
    let c3 = stage("layer2", &r.layer2, c2.clone())?;
    let c4 = stage("layer3", &r.layer3, c3.clone())?;
    let c5 = stage("layer4", &r.layer4, c4.clone())?;
    Ok(Features { c2, c3, c4, c5 })
}

fn resnet_block<B: Backend>(g: &mut Graph, path: &str, block: &Block<B>, x: &Value) -> Result<Value> {
    let y = conv(g, &format!("{path}.conv1"), &block.conv1, x)?;
    let y = frozen_bn(g, &format!("{path}.bn1"), &block.bn1, &y);
    let y = relu(g, &format!("{path}.relu1"), &y);
    let y = conv(g, &format!("{path}.conv2"), &block.conv2, &y)?;
    let mut out = frozen_bn(g, &format!("{path}.bn2"), &block.bn2, &y);
    if let (Some(conv3), Some(bn3)) = (&block.conv3, &block.bn3) {
        let y = relu(g, &format!("{path}.relu2"), &out);
        let y = conv(g, &format!("{path}.conv3"), conv3, &y)?;
        out = frozen_bn(g, &format!("{path}.bn3"), bn3, &y);
    }
    let identity = match &block.downsample {
        Some((down, bn)) => {
            let y = conv(g, &format!("{path}.downsample.0"), down, x)?;
            frozen_bn(g, &format!("{path}.downsample.1"), bn, &y)
        }
        None => x.clone(),
    };
    let sum = add(g, &format!("{path}.add"), &out, &identity);
    Ok(relu(g, &format!("{path}.relu"), &sum))
}

fn neck<B: Backend>(g: &mut Graph, path: &str, n: &PanFpn<B>, f: &Features) -> Result<Pyramid> {
    let up5 = upsample2x(g, &format!("{path}.up5"), &f.c5);
    let x = concat(g, &format!("{path}.cat4"), &[&up5, &f.c4]);
    let t4 = c2f(g, &format!("{path}.top_down4"), &n.top_down4, &x)?;
    let up4 = upsample2x(g, &format!("{path}.up4"), &t4);
    let x = concat(g, &format!("{path}.cat3"), &[&up4, &f.c3]);
    let p3 = c2f(g, &format!("{path}.top_down3"), &n.top_down3, &x)?;
    let up3 = upsample2x(g, &format!("{path}.up3"), &p3);
    let x = concat(g, &format!("{path}.cat2"), &[&up3, &f.c2]);
    let p2 = c2f(g, &format!("{path}.top_down2"), &n.top_down2, &x)?;
    let d3 = conv_norm_act(g, &format!("{path}.down3"), &n.down3, &p3)?;
    let x = concat(g, &format!("{path}.cat_up4"), &[&d3, &t4]);
    let p4 = c2f(g, &format!("{path}.bottom_up4"), &n.bottom_up4, &x)?;
    let d4 = conv_norm_act(g, &format!("{path}.down4"), &n.down4, &p4)?;
    let x = concat(g, &format!("{path}.cat_up5"), &[&d4, &f.c5]);
    let p5 = c2f(g, &format!("{path}.bottom_up5"), &n.bottom_up5, &x)?;
    Ok(Pyramid { p2, p3, p4, p5 })
}

/// The neck's outputs at strides 4, 8, 16 and 32.
struct Pyramid {
    p2: Value,
    p3: Value,
    p4: Value,
    p5: Value,
}

/// Class logits `[N, A, C]` and raw boxes `[N, A, 4]`: each level's `[N, K, H, W]`
/// map flattened to `[N, H·W, K]` (cells row-major), levels concatenated.
fn det_head<B: Backend>(g: &mut Graph, path: &str, head: &DetHead<B>, p: &Pyramid) -> Result<(Value, Value)> {
    let (mut cls, mut boxes) = (Vec::new(), Vec::new());
    for (i, (level, x)) in head.levels.iter().zip([&p.p3, &p.p4, &p.p5]).enumerate() {
        let at = format!("{path}.levels.{i}");
        let c = conv_norm_act(g, &format!("{at}.cls1"), &level.cls1, x)?;
        let c = conv_norm_act(g, &format!("{at}.cls2"), &level.cls2, &c)?;
        let c = conv(g, &format!("{at}.cls_out"), &level.cls_out, &c)?;
        cls.push(flatten_cells(g, &format!("{at}.cls_cells"), &c));
        let b = conv_norm_act(g, &format!("{at}.box1"), &level.box1, x)?;
        let b = conv_norm_act(g, &format!("{at}.box2"), &level.box2, &b)?;
        let b = conv(g, &format!("{at}.box_out"), &level.box_out, &b)?;
        boxes.push(flatten_cells(g, &format!("{at}.box_cells"), &b));
    }
    let cat = |g: &mut Graph, name: &str, parts: &[Value]| concat_axis(g, name, &parts.iter().collect::<Vec<_>>(), 1);
    Ok((cat(g, &format!("{path}.cls_logits"), &cls), cat(g, &format!("{path}.box_raw"), &boxes)))
}

fn flatten_cells(g: &mut Graph, path: &str, x: &Value) -> Value {
    let [n, k, h, w] = dims4(x);
    let shape = g.constant_i64(&format!("{path}.shape"), &[0, k as i64, (h * w) as i64]);
    let flat = g.node("Reshape", &format!("{path}.reshape"), &[&x.name, &shape.name], vec![], vec![n, k, h * w]);
    g.node("Transpose", &format!("{path}.transpose"), &[&flat.name], vec![("perm", Attr::Ints(vec![0, 2, 1]))], vec![n, h * w, k])
}

fn seg_head<B: Backend>(g: &mut Graph, path: &str, head: &SegHead<B>, p: &Pyramid) -> Result<Value> {
    let mut fused: Option<Value> = None;
    for (level, (branch, x)) in head.branches.iter().zip([&p.p2, &p.p3, &p.p4, &p.p5]).enumerate() {
        let mut y = x.clone();
        for (i, step) in branch.steps.iter().enumerate() {
            let at = format!("{path}.branches.{level}.steps.{i}");
            y = conv_norm_act(g, &at, step, &y)?;
            if level > 0 {
                y = upsample2x(g, &format!("{at}.up"), &y);
            }
        }
        fused = Some(match fused {
            Some(f) => add(g, &format!("{path}.branches.{level}.add"), &f, &y),
            None => y,
        });
    }
    let logits = conv(g, &format!("{path}.classifier"), &head.classifier, &fused.expect("four levels"))?;
    Ok(bilinear_upsample(g, &format!("{path}.upsample"), &logits, OUTPUT_STRIDE))
}

/// `crate::model::seg_head::bilinear_upsample` as two MatMuls with its constant matrices:
/// `rows · x · columnsᵀ`.
fn bilinear_upsample(g: &mut Graph, path: &str, x: &Value, factor: usize) -> Value {
    let [n, c, h, w] = dims4(x);
    let (wide, high) = (factor * w, factor * h);
    let rows = interpolation_weights(w, factor);
    // Columnsᵀ [w, factor·w] from the [factor·w, w] matrix.
    let columns: Vec<f32> = (0..w).flat_map(|i| (0..wide).map(move |o| (i, o))).map(|(i, o)| rows[o * w + i]).collect();
    let columns = g.constant_f32(&format!("{path}.columns"), &[w, wide], &columns);
    let rows = g.constant_f32(&format!("{path}.rows"), &[high, h], &interpolation_weights(h, factor));
    let x = g.node("MatMul", &format!("{path}.width"), &[&x.name, &columns.name], vec![], vec![n, c, h, wide]);
    g.node("MatMul", &format!("{path}.height"), &[&rows.name, &x.name], vec![], vec![n, c, high, wide])
}

fn c2f<B: Backend>(g: &mut Graph, path: &str, block: &C2f<B>, x: &Value) -> Result<Value> {
    let y = conv_norm_act(g, &format!("{path}.cv1"), &block.cv1, x)?;
    let [n, channels, h, w] = dims4(&y);
    let hidden = block.hidden;
    if channels != 2 * hidden {
        bail!("{path}: cv1 writes {channels} channels, two parts of {hidden} expected");
    }
    let split = g.constant_i64(&format!("{path}.split_sizes"), &[hidden as i64, hidden as i64]);
    let parts_dims = vec![vec![n, hidden, h, w]; 2];
    let mut parts = g.node_outputs("Split", &format!("{path}.split"), &[&y.name, &split.name], vec![("axis", Attr::Int(1))], parts_dims);
    for (i, bottleneck_block) in block.blocks.iter().enumerate() {
        let last = parts.last().expect("two parts").clone();
        parts.push(bottleneck(g, &format!("{path}.blocks.{i}"), bottleneck_block, &last)?);
    }
    let cat = concat(g, &format!("{path}.cat"), &parts.iter().collect::<Vec<_>>());
    conv_norm_act(g, &format!("{path}.cv2"), &block.cv2, &cat)
}

fn bottleneck<B: Backend>(g: &mut Graph, path: &str, block: &Bottleneck<B>, x: &Value) -> Result<Value> {
    let y = conv_norm_act(g, &format!("{path}.cv1"), &block.cv1, x)?;
    let y = conv_norm_act(g, &format!("{path}.cv2"), &block.cv2, &y)?;
    Ok(if block.shortcut { add(g, &format!("{path}.add"), x, &y) } else { y })
}

fn sppf<B: Backend>(g: &mut Graph, path: &str, block: &Sppf<B>, x: &Value) -> Result<Value> {
    let x = conv_norm_act(g, &format!("{path}.cv1"), &block.cv1, x)?;
    let y1 = max_pool(g, &format!("{path}.pool1"), &x, 5, 1, 2);
    let y2 = max_pool(g, &format!("{path}.pool2"), &y1, 5, 1, 2);
    let y3 = max_pool(g, &format!("{path}.pool3"), &y2, 5, 1, 2);
    let cat = concat(g, &format!("{path}.cat"), &[&x, &y1, &y2, &y3]);
    conv_norm_act(g, &format!("{path}.cv2"), &block.cv2, &cat)
}

fn conv_norm_act<B: Backend>(g: &mut Graph, path: &str, layer: &ConvNormAct<B>, x: &Value) -> Result<Value> {
    let y = conv(g, &format!("{path}.conv"), &layer.conv, x)?;
    let y = match &layer.pointwise {
        Some(pointwise) => conv(g, &format!("{path}.pointwise"), pointwise, &y)?,
        None => y,
    };
    match &layer.norm {
        Some(norm) => group_norm_silu(g, &format!("{path}.norm"), norm, &y),
        // A folded BatchNorm is already in the convolution's weight and bias.
        None => Ok(silu(g, path, &y)),
    }
}

/// `silu(GroupNorm(x))`, GroupNorm decomposed as ONNX exporters write it: the
/// groups as the channels of an `InstanceNormalization` (unit scale, zero
/// shift), then the per-channel γ and β.
fn group_norm_silu<B: Backend>(g: &mut Graph, path: &str, norm: &GroupNorm<B>, x: &Value) -> Result<Value> {
    let [n, c, h, w] = dims4(x);
    if c != norm.num_channels {
        bail!("{path}: GroupNorm over {} channels reads {c}", norm.num_channels);
    }
    let groups = norm.num_groups;
    let grouped_shape = g.constant_i64(&format!("{path}.grouped_shape"), &[0, groups as i64, -1]);
    let grouped = g.node("Reshape", &format!("{path}.grouped"), &[&x.name, &grouped_shape.name], vec![], vec![n, groups, c / groups * h * w]);
    let ones = g.constant_f32(&format!("{path}.unit_scale"), &[groups], &vec![1.0; groups]);
    let zeros = g.constant_f32(&format!("{path}.zero_shift"), &[groups], &vec![0.0; groups]);
    let normalised = g.node(
        "InstanceNormalization",
        &format!("{path}.normalise"),
        &[&grouped.name, &ones.name, &zeros.name],
        vec![("epsilon", Attr::Float(norm.epsilon as f32))],
        grouped.dims.clone(),
    );
    let shape = g.constant_i64(&format!("{path}.shape"), &[0, c as i64, h as i64, w as i64]);
    let y = g.node("Reshape", &format!("{path}.ungrouped"), &[&normalised.name, &shape.name], vec![], x.dims.clone());
    let gamma = norm.gamma.as_ref().map_or_else(|| vec![1.0; c], |p| floats(p.val()));
    let beta = norm.beta.as_ref().map_or_else(|| vec![0.0; c], |p| floats(p.val()));
    let gamma = g.constant_f32(&format!("{path}.gamma"), &[c, 1, 1], &gamma);
    let beta = g.constant_f32(&format!("{path}.beta"), &[c, 1, 1], &beta);
    let y = g.node("Mul", &format!("{path}.scale"), &[&y.name, &gamma.name], vec![], x.dims.clone());
    let y = g.node("Add", &format!("{path}.shift"), &[&y.name, &beta.name], vec![], x.dims.clone());
    Ok(silu(g, &format!("{path}.silu"), &y))
}

/// `x · scale + shift` per channel, as the module computes it.
fn frozen_bn<B: Backend>(g: &mut Graph, path: &str, bn: &FrozenBatchNorm2d<B>, x: &Value) -> Value {
    let (scale, shift) = bn.scale_shift();
    let c = x.dims[1];
    let scale = g.constant_f32(&format!("{path}.scale"), &[c, 1, 1], &floats(scale));
    let shift = g.constant_f32(&format!("{path}.shift"), &[c, 1, 1], &floats(shift));
    let y = g.node("Mul", &format!("{path}.mul"), &[&x.name, &scale.name], vec![], x.dims.clone());
    g.node("Add", &format!("{path}.add"), &[&y.name, &shift.name], vec![], x.dims.clone())
}

/// A convolution with its weights: float, or int8 dequantized in the graph (QDQ).
fn conv<B: Backend>(g: &mut Graph, path: &str, conv: &Conv2d<B>, x: &Value) -> Result<Value> {
    let [n, c_in, h, w] = dims4(x);
    let weight = conv.weight.val();
    let [c_out, per_group, kh, kw] = weight.dims();
    if per_group * conv.groups != c_in {
        bail!("{path}: the weight reads {} channels, the input has {c_in}", per_group * conv.groups);
    }
    let (top, left, bottom, right) = match conv.padding {
        PaddingConfig2d::Valid => (0, 0, 0, 0),
        PaddingConfig2d::Explicit(top, left, bottom, right) => (top, left, bottom, right),
        PaddingConfig2d::Same => bail!("{path}: \"same\" padding is not exported"),
    };
    let weight = conv_weight(g, path, weight)?;
    let mut inputs = vec![x.name.as_str(), weight.name.as_str()];
    let bias = conv.bias.as_ref().map(|b| g.constant_f32(&format!("{path}.bias"), &[c_out], &floats(b.val())));
    if let Some(bias) = &bias {
        inputs.push(&bias.name);
    }
    let [sh, sw] = conv.stride;
    let [dh, dw] = conv.dilation;
    let dims = vec![n, c_out, output_side(h, kh, sh, top + bottom, dh), output_side(w, kw, sw, left + right, dw)];
    let attrs = vec![
        ("kernel_shape", Attr::Ints(vec![kh as i64, kw as i64])),
        ("strides", Attr::Ints(vec![sh as i64, sw as i64])),
        ("pads", Attr::Ints([top, left, bottom, right].map(|p| p as i64).to_vec())),
        ("dilations", Attr::Ints(vec![dh as i64, dw as i64])),
        ("group", Attr::Int(conv.groups as i64)),
    ];
    Ok(g.node("Conv", path, &inputs, attrs, dims))
}

/// A weight `[C_out, C_in, kh, kw]` as a constant, or for an int8 weight the
/// `DequantizeLinear` of its int8 values: per output channel, or per block of
/// input channels where [`crate::compress::int8`] split a channel's weights,
/// as rows of a `[C_out·parts, C_in/parts, kh, kw]` view reshaped back.
fn conv_weight<B: Backend>(g: &mut Graph, path: &str, weight: Tensor<B, 4>) -> Result<Value> {
    let dims = weight.dims();
    let scheme = match weight.dtype() {
        DType::QFloat(scheme) => scheme,
        _ => return Ok(g.constant_f32(&format!("{path}.weight"), &dims, &floats(weight))),
    };
    let [c_out, c_in, kh, kw] = dims;
    let parts = match scheme.level {
        QuantLevel::Block(block) => match block.as_dim::<4>() {
            [1, block_in, bh, bw] if (bh as usize, bw as usize) == (kh, kw) && c_in % block_in as usize == 0 => {
                c_in / block_in as usize
            }
            other => bail!("{path}: int8 blocks {other:?} are not exported (per output channel or input block only)"),
        },
        QuantLevel::Tensor => 1,
    };
    let data = weight.into_data();
    let num_elements = data.num_elements();
    let (values, params) = QuantizedBytes { bytes: data.bytes, scheme, num_elements }.into_vec_i8();
    let rows = c_out * parts;
    let scales = match params.scales.len() {
        1 => vec![params.scales[0]; rows],
        n if n == rows => params.scales,
        n => bail!("{path}: {n} quantization scales for {rows} blocks"),
    };
    let view = [rows, c_in / parts, kh, kw];
    let values = g.constant_i8(&format!("{path}.weight_int8"), &view, &values);
    let scales = g.constant_f32(&format!("{path}.weight_scale"), &[rows], &scales);
    let zero = g.constant_i8(&format!("{path}.weight_zero_point"), &[rows], &vec![0; rows]);
    let dequantized = g.node(
        "DequantizeLinear",
        &format!("{path}.weight_dequantize"),
        &[&values.name, &scales.name, &zero.name],
        vec![("axis", Attr::Int(0))],
        view.to_vec(),
    );
    if parts == 1 {
        return Ok(dequantized);
    }
    let shape = g.constant_i64(&format!("{path}.weight_shape"), &dims.map(|d| d as i64));
    Ok(g.node("Reshape", &format!("{path}.weight"), &[&dequantized.name, &shape.name], vec![], dims.to_vec()))
}

fn silu(g: &mut Graph, path: &str, x: &Value) -> Value {
    let gate = g.node("Sigmoid", &format!("{path}.sigmoid"), &[&x.name], vec![], x.dims.clone());
    g.node("Mul", path, &[&x.name, &gate.name], vec![], x.dims.clone())
}

fn relu(g: &mut Graph, path: &str, x: &Value) -> Value {
    g.node("Relu", path, &[&x.name], vec![], x.dims.clone())
}

fn add(g: &mut Graph, path: &str, a: &Value, b: &Value) -> Value {
    g.node("Add", path, &[&a.name, &b.name], vec![], a.dims.clone())
}

fn concat(g: &mut Graph, path: &str, parts: &[&Value]) -> Value {
    concat_axis(g, path, parts, 1)
}

fn concat_axis(g: &mut Graph, path: &str, parts: &[&Value], axis: usize) -> Value {
    let mut dims = parts[0].dims.clone();
    dims[axis] = parts.iter().map(|p| p.dims[axis]).sum();
    let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
    g.node("Concat", path, &names, vec![("axis", Attr::Int(axis as i64))], dims)
}

fn max_pool(g: &mut Graph, path: &str, x: &Value, kernel: usize, stride: usize, pad: usize) -> Value {
    let [n, c, h, w] = dims4(x);
    let side = |s| output_side(s, kernel, stride, 2 * pad, 1);
    let attrs = vec![
        ("kernel_shape", Attr::Ints(vec![kernel as i64; 2])),
        ("strides", Attr::Ints(vec![stride as i64; 2])),
        ("pads", Attr::Ints(vec![pad as i64; 4])),
    ];
    g.node("MaxPool", path, &[&x.name], attrs, vec![n, c, side(h), side(w)])
}

/// Nearest-neighbour 2×: output pixel `o` reads input pixel `floor(o / 2)`.
fn upsample2x(g: &mut Graph, path: &str, x: &Value) -> Value {
    let [n, c, h, w] = dims4(x);
    let scales = g.constant_f32(&format!("{path}.scales"), &[4], &[1.0, 1.0, 2.0, 2.0]);
    let attrs = vec![
        ("mode", Attr::Str("nearest")),
        ("coordinate_transformation_mode", Attr::Str("asymmetric")),
        ("nearest_mode", Attr::Str("floor")),
    ];
    g.node("Resize", path, &[&x.name, "", &scales.name], attrs, vec![n, c, 2 * h, 2 * w])
}

fn dims4(x: &Value) -> [usize; 4] {
    x.dims.as_slice().try_into().unwrap_or_else(|_| panic!("{} is {:?}, not 4-D", x.name, x.dims))
}

fn floats<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec::<f32>().expect("a float tensor")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::int8;
    use crate::onnx::graph::Batch;
    use burn::backend::Flex;
    use burn::module::Param;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::Distribution;

    /// An int8 weight's constants, dequantized as ONNX's `DequantizeLinear`
    /// defines it (`(q − zero) · scale` per row), equal burn's dequantized
    /// weight: per output channel, and per block where C_in > 255 splits a channel.
    #[test]
    fn int8_weights_dequantize_to_burns_values() {
        let device = Default::default();
        for channels_in in [24, 510] {
            let mut conv = Conv2dConfig::new([channels_in, 6], [3, 3]).init::<Flex>(&device);
            let weight = Tensor::<Flex, 4>::random([6, channels_in, 3, 3], Distribution::Normal(0.0, 0.1), &device);
            conv.weight = Param::from_tensor(weight.clone().quantize_dynamic(&int8::scheme(weight.dims())));
            let expected = floats(conv.weight.val().dequantize());
            let mut g = Graph::new(Batch::Fixed(1));
            let value = conv_weight(&mut g, "w", conv.weight.val()).unwrap();
            assert_eq!(value.dims, vec![6, channels_in, 3, 3]);
            let graph = g.finish("test", vec![], vec![]);
            let constant = |name: &str| graph.initializer.iter().find(|t| t.name.as_deref() == Some(name)).unwrap();
            let (q, scale, zero) = (constant("w.weight_int8"), constant("w.weight_scale"), constant("w.weight_zero_point"));
            let parts = if channels_in > 255 { 2 } else { 1 };
            assert_eq!(q.dims, [6 * parts, channels_in / parts, 3, 3].map(|d| d as i64));
            let q: Vec<i8> = q.raw_data.as_ref().unwrap().iter().map(|&b| b as i8).collect();
            let scale: Vec<f32> = scale.raw_data.as_ref().unwrap().chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            assert!(zero.raw_data.as_ref().unwrap().iter().all(|&z| z == 0));
            let row = q.len() / scale.len();
            let dequantized: Vec<f32> = q.iter().enumerate().map(|(i, &v)| v as f32 * scale[i / row]).collect();
            assert_eq!(dequantized, expected, "C_in {channels_in}");
        }
    }
}
