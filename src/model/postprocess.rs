//! Detections from the head's outputs: score threshold, a pre-NMS top-k cap,
//! class-wise non-maximum suppression and a cap on the detections kept; then
//! the map back from the network input to the original image.
//!
//! The top-k cap matters at the low thresholds mAP is measured at (0.001): an
//! untrained head passes almost every (anchor, class) pair, and NMS over all of
//! them is quadratic (the "validation runs out of memory" of YOLO issue trackers).

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::anchors::{decode_boxes, Anchors};
use crate::data::preprocess::{xyxy_to_voc, Letterbox};

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PostprocessConfig {
    /// Minimum class probability (sigmoid of the logit), exclusive.
    pub score_threshold: f32,
    /// Candidates kept, best first, before NMS.
    pub pre_nms_top_k: usize,
    /// A box is suppressed by a better one of its class with IoU above this.
    pub iou_threshold: f32,
    pub max_detections: usize,
    /// Every class above the threshold may give a detection of an anchor (the
    /// mAP setting); otherwise only the anchor's best class.
    pub multi_label: bool,
}

impl Default for PostprocessConfig {
    /// Settings for measuring mAP (YOLOv5/v8 validation).
    fn default() -> Self {
        Self { score_threshold: 0.001, pre_nms_top_k: 1000, iou_threshold: 0.6, max_detections: 300, multi_label: true }
    }
}

/// The lowest detection score any view keeps: the low end of the workbench's
/// score slider, and the floor of the boxes a run's timeline stores.
pub const DISPLAY_SCORE_FLOOR: f32 = 0.05;

impl PostprocessConfig {
    /// Settings for showing detections.
    pub fn display() -> Self {
        Self { score_threshold: 0.25, pre_nms_top_k: 1000, iou_threshold: 0.45, max_detections: 100, multi_label: false }
    }
}

/// One detection, `bbox` `x0, y0, x1, y1` (0-based, continuous pixels).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Detection {
    pub bbox: [f32; 4],
    pub class: usize,
    pub score: f32,
}

impl Detection {
    /// As the evaluator's detection of image `image` (VOC coordinates: 1-based, inclusive).
    pub fn to_eval(&self, image: usize) -> crate::eval::Detection {
        crate::eval::Detection { image, class: self.class, bbox: xyxy_to_voc(self.bbox), score: self.score }
    }
}

/// Detections of one image from its `A × C` class logits and `A × 4` decoded
/// boxes (anchor-major), best first.
pub fn postprocess(cls_logits: &[f32], boxes: &[f32], num_classes: usize, config: &PostprocessConfig) -> Vec<Detection> {
    let a = boxes.len() / 4;
    assert_eq!(boxes.len(), a * 4, "boxes must be A × 4");
    assert_eq!(cls_logits.len(), a * num_classes, "logits must be A × C");
    // sigmoid(x) > t  ⇔  x > ln(t / (1 - t)): no sigmoid for the pairs that fail.
    let t = config.score_threshold;
    let logit_threshold = if t <= 0.0 { f32::NEG_INFINITY } else { (t / (1.0 - t)).ln() };

    let mut candidates: Vec<(f32, usize, usize)> = Vec::new(); // (logit, anchor, class)
    for (anchor, row) in cls_logits.chunks_exact(num_classes.max(1)).enumerate().take(a) {
        if config.multi_label {
            for (class, &x) in row.iter().enumerate() {
                if x > logit_threshold {
                    candidates.push((x, anchor, class));
                }
            }
        } else if let Some((class, &x)) = row.iter().enumerate().max_by(|p, q| p.1.total_cmp(q.1).then(q.0.cmp(&p.0))) {
            if x > logit_threshold {
                candidates.push((x, anchor, class));
            }
        }
    }
    // Best first; ties by anchor then class, so the output is deterministic.
    let order = |p: &(f32, usize, usize), q: &(f32, usize, usize)| q.0.total_cmp(&p.0).then((p.1, p.2).cmp(&(q.1, q.2)));
    if candidates.len() > config.pre_nms_top_k {
        if config.pre_nms_top_k > 0 {
            candidates.select_nth_unstable_by(config.pre_nms_top_k - 1, order);
        }
        candidates.truncate(config.pre_nms_top_k);
    }
    candidates.sort_unstable_by(order);

    let detections = candidates.into_iter().map(|(x, anchor, class)| Detection {
        bbox: boxes[anchor * 4..anchor * 4 + 4].try_into().unwrap(),
        class,
        score: 1.0 / (1.0 + (-x).exp()),
    });
    nms_sorted(detections, config.iou_threshold, config.max_detections)
}

/// Class-wise greedy NMS of detections sorted best first, stopping at `max_detections`.
fn nms_sorted(sorted: impl Iterator<Item = Detection>, iou_threshold: f32, max_detections: usize) -> Vec<Detection> {
    let mut kept: Vec<Detection> = Vec::new();
    for d in sorted {
        if kept.len() >= max_detections {
            break;
        }
        let suppressed = kept.iter().any(|k| k.class == d.class && plain_iou(&k.bbox, &d.bbox) > iou_threshold);
        if !suppressed {
            kept.push(d);
        }
    }
    kept
}

/// Class-wise NMS of detections in any order; returns them best first.
pub fn nms(mut detections: Vec<Detection>, iou_threshold: f32, max_detections: usize) -> Vec<Detection> {
    detections.sort_by(|p, q| q.score.total_cmp(&p.score));
    nms_sorted(detections.into_iter(), iou_threshold, max_detections)
}

/// Detections of every image of a batch from the head's raw outputs
/// (`[N, A, C]` logits, `[N, A, 4]` raw boxes), in input pixels.
pub fn postprocess_batch<B: Backend>(
    cls_logits: Tensor<B, 3>,
    box_raw: Tensor<B, 3>,
    anchors: &Anchors,
    config: &PostprocessConfig,
) -> Vec<Vec<Detection>> {
    let [n, a, c] = cls_logits.dims();
    let boxes = decode_boxes(box_raw.detach(), anchors);
    let values = |t: Tensor<B, 3>| t.into_data().convert::<f32>().into_vec::<f32>().expect("float tensor");
    let (logits, boxes) = (values(cls_logits.detach()), values(boxes));
    (0..n)
        .map(|i| postprocess(&logits[i * a * c..(i + 1) * a * c], &boxes[i * a * 4..(i + 1) * a * 4], c, config))
        .collect()
}

/// Maps detections from the network input back to the original image (undoing
/// the letterbox, flip included), clipped to the image; boxes left with no area
/// (entirely in the padding) are dropped.
pub fn to_original(detections: &[Detection], letterbox: &Letterbox) -> Vec<Detection> {
    detections
        .iter()
        .map(|d| Detection { bbox: letterbox.box_to_original(d.bbox), ..*d })
        .filter(|d| d.bbox[2] > d.bbox[0] && d.bbox[3] > d.bbox[1])
        .collect()
}

/// Plain IoU of two `[x0, y0, x1, y1]` boxes (0 for an empty union): the one
/// non-maximum suppression, the assigner and the loss tests use.
pub fn plain_iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - iw * ih;
    if union > 0.0 {
        iw * ih / union
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    fn logit(p: f32) -> f32 {
        (p / (1.0 - p)).ln()
    }

    /// Boxes and one-hot-ish logits: anchor i has probability probs[i] for class classes[i], ~0 elsewhere.
    fn case(boxes: &[[f32; 4]], probs: &[f32], classes: &[usize], c: usize) -> (Vec<f32>, Vec<f32>) {
        let mut logits = vec![-30.0; boxes.len() * c];
        for (i, (&p, &k)) in probs.iter().zip(classes).enumerate() {
            logits[i * c + k] = logit(p);
        }
        (logits, boxes.concat())
    }

    #[test]
    fn overlapping_boxes_of_a_class_are_suppressed_other_classes_kept() {
        let boxes = [[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0], [0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]];
        let (logits, flat) = case(&boxes, &[0.9, 0.8, 0.7, 0.6], &[0, 0, 1, 0], 2);
        let dets = postprocess(&logits, &flat, 2, &PostprocessConfig::default());
        // Anchor 1 (IoU 9/11 with anchor 0, same class) goes; anchor 2 is another class; anchor 3 is far.
        let got: Vec<(usize, f32)> = dets.iter().map(|d| (d.class, d.bbox[0])).collect();
        assert_eq!(got, vec![(0, 0.0), (1, 0.0), (0, 20.0)]);
        assert!((dets[0].score - 0.9).abs() < 1e-6 && (dets[2].score - 0.6).abs() < 1e-6);
        // A looser threshold keeps the overlapping box.
        let loose = PostprocessConfig { iou_threshold: 0.9, ..Default::default() };
        assert_eq!(postprocess(&logits, &flat, 2, &loose).len(), 4);
    }

    #[test]
    fn threshold_top_k_and_max_detections() {
        // 50 disjoint boxes with decreasing scores.
        let boxes: Vec<[f32; 4]> = (0..50).map(|i| [i as f32 * 10.0, 0.0, i as f32 * 10.0 + 5.0, 5.0]).collect();
        let probs: Vec<f32> = (0..50).map(|i| 0.99 - i as f32 * 0.01).collect();
        let (logits, flat) = case(&boxes, &probs, &[0; 50], 1);
        let cfg = PostprocessConfig::default();
        assert_eq!(postprocess(&logits, &flat, 1, &cfg).len(), 50);
        let few = postprocess(&logits, &flat, 1, &PostprocessConfig { max_detections: 7, ..cfg });
        assert_eq!(few.len(), 7);
        assert!(few.windows(2).all(|w| w[0].score >= w[1].score));
        assert_eq!(few[6].bbox[0], 60.0);
        let capped = postprocess(&logits, &flat, 1, &PostprocessConfig { pre_nms_top_k: 5, ..cfg });
        assert_eq!(capped.iter().map(|d| d.bbox[0] as usize).collect::<Vec<_>>(), vec![0, 10, 20, 30, 40]);
        // Scores 0.99 .. 0.50: a threshold of 0.895 keeps 0.99 .. 0.90.
        let high = postprocess(&logits, &flat, 1, &PostprocessConfig { score_threshold: 0.895, ..cfg });
        assert_eq!(high.len(), 10);
    }

    #[test]
    fn multi_label_gives_one_detection_per_class_above_threshold() {
        let logits = vec![logit(0.8), logit(0.6), logit(0.1)];
        let flat = [0.0, 0.0, 4.0, 4.0];
        let multi = postprocess(&logits, &flat, 3, &PostprocessConfig { score_threshold: 0.3, ..Default::default() });
        assert_eq!(multi.iter().map(|d| d.class).collect::<Vec<_>>(), vec![0, 1]);
        let single = postprocess(&logits, &flat, 3, &PostprocessConfig { score_threshold: 0.3, ..PostprocessConfig::display() });
        assert_eq!(single.iter().map(|d| d.class).collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn nms_in_any_order() {
        let d = |x: f32, s: f32| Detection { bbox: [x, 0.0, x + 10.0, 10.0], class: 0, score: s };
        let kept = nms(vec![d(1.0, 0.5), d(0.0, 0.9), d(30.0, 0.1)], 0.5, 10);
        assert_eq!(kept, vec![d(0.0, 0.9), d(30.0, 0.1)]);
    }

    #[test]
    fn batch_postprocess_decodes_the_raw_boxes() {
        let anchors = Anchors::new(16, &[8]);
        let device = Default::default();
        let mut logits = vec![-10.0f32; 4 * 2];
        logits[3 * 2 + 1] = 2.0; // anchor 3 (12, 12), class 1
        let logits = Tensor::<Flex, 3>::from_data(TensorData::new(logits, [1, 4, 2]), &device);
        let raw = Tensor::<Flex, 3>::zeros([1, 4, 4], &device);
        let dets = postprocess_batch(logits, raw, &anchors, &PostprocessConfig::default());
        assert_eq!(dets.len(), 1);
        assert_eq!(dets[0].len(), 1);
        let d = 8.0 * std::f32::consts::LN_2;
        let want = [12.0 - d, 12.0 - d, 12.0 + d, 12.0 + d];
        assert!(dets[0][0].class == 1 && dets[0][0].bbox.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-4));
    }

    #[test]
    fn letterbox_undo_round_trips_and_clips() {
        // 200×100 image into 64×64: scale 0.32, 16 px of padding above and below.
        for lb in [Letterbox::fit(200, 100, 64), Letterbox::fit(200, 100, 64).hflip(), Letterbox::fit(90, 300, 64)] {
            let original = [20.0, 10.0, 80.0, 60.0];
            let on_input = Detection { bbox: lb.box_to_output(original), class: 3, score: 0.5 };
            let back = to_original(&[on_input], &lb);
            assert_eq!(back.len(), 1);
            assert!(back[0].bbox.iter().zip(original).all(|(g, w)| (g - w).abs() < 1e-3), "{lb:?}: {:?}", back[0]);
            assert_eq!((back[0].class, back[0].score), (3, 0.5));
        }
        let lb = Letterbox::fit(200, 100, 64);
        assert_eq!((lb.pad_x, lb.pad_y), (0.0, 16.0));
        // Sticking out of the image: clipped; entirely in the padding: dropped.
        let out = Detection { bbox: [-5.0, 10.0, 70.0, 30.0], class: 0, score: 1.0 };
        let pad = Detection { bbox: [5.0, 1.0, 20.0, 15.0], class: 0, score: 1.0 };
        let back = to_original(&[out, pad], &lb);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].bbox[0], 0.0);
        assert_eq!(back[0].bbox[2], 200.0);
        assert!((back[0].bbox[1] - 0.0).abs() < 1e-4 && (back[0].bbox[3] - 14.0 / 0.32).abs() < 1e-3);
        // In VOC coordinates for the evaluator.
        assert_eq!(back[0].to_eval(7).bbox[0], 1.0);
    }
}
