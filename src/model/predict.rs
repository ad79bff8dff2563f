//! Inference: from a batch of letterboxed images to detections and semantic
//! masks in each original image's coordinates.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use image::GrayImage;

use super::anchors::Anchors;
use super::postprocess::{postprocess_batch, to_original, Detection, PostprocessConfig};
use super::{TwinNet, DET_STRIDES};
use crate::backend::TwinBackend;
use crate::data::preprocess::{Letterbox, IGNORE};

/// Detections per image, mapped back to the original images (0-based continuous boxes).
pub fn detect_batch<B: TwinBackend>(
    net: &TwinNet<B>,
    images: Tensor<B, 4>,
    letterboxes: &[Letterbox],
    config: &PostprocessConfig,
) -> Vec<Vec<Detection>> {
    let [_, _, _, size] = images.dims();
    let output = net.forward_det(images);
    let anchors = Anchors::new(size, &DET_STRIDES);
    postprocess_batch(output.cls_logits, output.box_raw, &anchors, config)
        .iter()
        .zip(letterboxes)
        .map(|(detections, letterbox)| to_original(detections, letterbox))
        .collect()
}

/// Semantic masks per image at the original size, ADE encoding (class index + 1;
/// 0 where the input showed only padding).
pub fn segment_batch<B: TwinBackend>(net: &TwinNet<B>, images: Tensor<B, 4>, letterboxes: &[Letterbox]) -> Vec<GrayImage> {
    masks_from_logits(net.forward_seg(images), letterboxes)
}

/// Class probabilities per image (softmax of the classification head's logits).
pub fn classify_batch<B: TwinBackend>(net: &TwinNet<B>, images: Tensor<B, 4>) -> Vec<Vec<f32>> {
    probabilities(net.forward_cls(images))
}

/// What the network says about one image: what its heads give (a server
/// sends it as JSON, the mask as a PNG).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Prediction {
    /// Boxes `x0, y0, x1, y1` (0-based, continuous pixels), best first (none without a detection head).
    pub detections: Vec<Detection>,
    /// ADE encoding: class index + 1 (0 = nothing predicted); `None` without a segmentation head.
    #[serde(with = "crate::data::encoded::gray")]
    pub mask: Option<GrayImage>,
    /// The classification head's class probabilities (empty without that head).
    pub class_probabilities: Vec<f32>,
}

/// Every head of the network from one shared forward pass.
pub fn predict_batch<B: TwinBackend>(
    net: &TwinNet<B>,
    images: Tensor<B, 4>,
    letterboxes: &[Letterbox],
    config: &PostprocessConfig,
) -> Vec<Prediction> {
    let [n, _, _, size] = images.dims();
    let heads = net.forward_heads(images, net.tasks());
    let mut predictions = vec![Prediction::default(); n];
    if let Some(det) = heads.det {
        let anchors = Anchors::new(size, &DET_STRIDES);
        let found = postprocess_batch(det.cls_logits, det.box_raw, &anchors, config);
        for ((prediction, detections), letterbox) in predictions.iter_mut().zip(&found).zip(letterboxes) {
            prediction.detections = to_original(detections, letterbox);
        }
    }
    if let Some(seg) = heads.seg {
        for (prediction, mask) in predictions.iter_mut().zip(masks_from_logits(seg, letterboxes)) {
            prediction.mask = Some(mask);
        }
    }
    if let Some(cls) = heads.cls {
        for (prediction, probabilities) in predictions.iter_mut().zip(probabilities(cls)) {
            prediction.class_probabilities = probabilities;
        }
    }
    predictions
}

/// Softmax of class logits `[N, classes]`, per image.
fn probabilities<B: Backend>(logits: Tensor<B, 2>) -> Vec<Vec<f32>> {
    let probabilities = burn::tensor::activation::softmax(logits, 1);
    let [n, classes] = probabilities.dims();
    let values = probabilities.into_data().convert::<f32>().into_vec::<f32>().expect("float tensor");
    (0..n).map(|i| values[i * classes..(i + 1) * classes].to_vec()).collect()
}

fn masks_from_logits<B: Backend>(logits: Tensor<B, 4>, letterboxes: &[Letterbox]) -> Vec<GrayImage> {
    let [n, _, h, w] = logits.dims();
    let classes: Vec<i64> = logits.argmax(1).into_data().convert::<i64>().into_vec().expect("int tensor");
    (0..n)
        .map(|i| {
            let labels: Vec<u8> = classes[i * h * w..(i + 1) * h * w].iter().map(|&c| (c + 1).min(255) as u8).collect();
            let input_mask = GrayImage::from_raw(w as u32, h as u32, labels).expect("sized buffer");
            let mut mask = letterboxes[i].mask_to_original(&input_mask);
            mask.pixels_mut().filter(|p| p[0] == IGNORE).for_each(|p| p[0] = 0);
            mask
        })
        .collect()
}
