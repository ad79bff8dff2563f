//! Pseudo-label cross-supervision (as MuST does across datasets): a teacher
//! labels every training image for the task its dataset lacks, and the student
//! trains on both labels of the image. On a segmentation image the teacher's
//! confident boxes become detection targets; on a detection image its confident
//! pixels become segmentation targets (the others, and the letterbox padding,
//! are ignored). The teacher is a fixed network (the switch snapshot of the
//! sequential family, the weight EMA of `alternate`/`joint`, or specialists
//! loaded from other runs' checkpoints: `det_teacher`, `seg_teacher`), so the
//! labels are a deterministic function of the images: a resumed run makes the
//! same ones.

use std::path::PathBuf;

use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::loss::det::ImageTargets;
use crate::backend::TwinBackend;
use crate::data::preprocess::{Letterbox, IGNORE};
use crate::model::anchors::Anchors;
use crate::model::postprocess::{postprocess_batch, PostprocessConfig};
use crate::model::{Task, TwinNet, DET_STRIDES};

/// The decay of `alternate`/`joint`'s teacher EMA (Mean Teacher's 0.99): it
/// follows the network within about a hundred steps, smoothing out single steps.
pub const TEACHER_EMA_DECAY: f64 = 0.99;

/// What makes a teacher's prediction a label, and how much the labels weigh
/// (a strategy's `pseudo_labels` settings; f64, so a config reads back as written).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PseudoLabels {
    /// Factor of the pseudo-label losses (the true labels' losses weigh 1).
    pub weight: f64,
    /// A box becomes a target when its score is above this (after NMS).
    pub box_score: f64,
    /// A pixel becomes a target when the teacher's class probability there is at least this.
    pub pixel_confidence: f64,
    /// When set, anchors whose best teacher score is from this up to
    /// `box_score` are ignored by the pseudo-label detection loss (neither
    /// object nor background), so objects the teacher half-sees are not taught
    /// as background. Off by default: on the synthetic default it did not help.
    pub background_score: Option<f64>,
    /// No pseudo-labels before this step: a burn-in for a teacher that starts
    /// untrained (the weight EMA of `alternate`/`joint`), as Unbiased Teacher does.
    pub start_step: usize,
    /// A checkpoint folder (another run's `checkpoints/<name>`) whose frozen
    /// network makes the boxes on segmentation images, in place of the
    /// strategy's own teacher: a detection specialist, as MuST's teachers are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub det_teacher: Option<PathBuf>,
    /// The same for the masks on other tasks' images: a segmentation specialist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seg_teacher: Option<PathBuf>,
    /// The same for the soft class distributions: a classification specialist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cls_teacher: Option<PathBuf>,
}

impl Default for PseudoLabels {
    fn default() -> Self {
        Self {
            weight: 1.0,
            box_score: 0.4,
            pixel_confidence: 0.7,
            background_score: None,
            start_step: 0,
            det_teacher: None,
            seg_teacher: None,
            cls_teacher: None,
        }
    }
}

impl PseudoLabels {
    /// Whether a specialist from another run replaces the strategy's own teacher for any task.
    pub fn has_specialist(&self) -> bool {
        Task::ALL.into_iter().any(|task| self.teacher(task).is_some())
    }

    /// The specialist's checkpoint folder named for `task`.
    pub fn teacher(&self, task: Task) -> Option<&PathBuf> {
        match task {
            Task::Det => self.det_teacher.as_ref(),
            Task::Seg => self.seg_teacher.as_ref(),
            Task::Cls => self.cls_teacher.as_ref(),
        }
    }

    /// The errors these settings can have, named by their key under `strategy.pseudo_labels`.
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::bail;
        for task in Task::ALL {
            if let Some(dir) = self.teacher(task).filter(|dir| !dir.is_dir()) {
                bail!(
                    "strategy.pseudo_labels.{}_teacher: {} is not a folder (a checkpoint folder, e.g. runs/NAME/checkpoints/best-{})",
                    task.key(),
                    dir.display(),
                    task.key()
                );
            }
        }
        let Self { weight, box_score, pixel_confidence, background_score, .. } = *self;
        if !(weight >= 0.0 && weight.is_finite()) {
            bail!("strategy.pseudo_labels.weight: must be ≥ 0, got {weight}");
        }
        if !(box_score > 0.0 && box_score < 1.0) {
            bail!("strategy.pseudo_labels.box_score: a score in (0, 1), got {box_score}");
        }
        if let Some(floor) = background_score.filter(|floor| !(0.0..=box_score).contains(floor)) {
            bail!("strategy.pseudo_labels.background_score: must be in [0, box_score = {box_score}], got {floor}");
        }
        if !(pixel_confidence > 0.0 && pixel_confidence <= 1.0) {
            bail!("strategy.pseudo_labels.pixel_confidence: a probability in (0, 1], got {pixel_confidence}");
        }
        Ok(())
    }
}

/// Detection pseudo-labels of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct PseudoBoxes {
    /// Per image, the teacher's boxes scoring above `box_score`.
    pub targets: Vec<ImageTargets>,
    /// Per image and anchor (`N·A`, or empty without a `background_score`):
    /// the teacher's best score lies in `[background_score, box_score]`, so the
    /// anchor is left out of the classification loss.
    pub unsure: Vec<bool>,
}

/// The teacher's boxes scoring above `box_score` on each image, as detection
/// targets (input pixels, clipped to the image; the same class-wise NMS as the
/// workbench's display of detections), and the anchors it is unsure about.
pub fn pseudo_boxes<B: TwinBackend>(teacher: &TwinNet<B>, images: Tensor<B, 4>, box_score: f32, background_score: Option<f32>) -> PseudoBoxes {
    let [_, _, _, size] = images.dims();
    let output = teacher.forward_det(images);
    let unsure = match background_score {
        Some(floor) => {
            let best = sigmoid(output.cls_logits.clone()).max_dim(2).into_data().convert::<f32>().into_vec::<f32>().expect("float tensor");
            best.iter().map(|&s| s >= floor && s <= box_score).collect()
        }
        None => Vec::new(),
    };
    let anchors = Anchors::new(size, &DET_STRIDES);
    let config = PostprocessConfig { score_threshold: box_score, ..PostprocessConfig::display() };
    let edge = size as f32;
    let targets = postprocess_batch(output.cls_logits, output.box_raw, &anchors, &config)
        .into_iter()
        .map(|detections| {
            detections
                .into_iter()
                .map(|d| (d.bbox.map(|v| v.clamp(0.0, edge)), d.class))
                // A box squeezed to under a pixel by the clipping is no target.
                .filter(|(b, _)| b[2] - b[0] >= 1.0 && b[3] - b[1] >= 1.0)
                .unzip()
        })
        .collect();
    PseudoBoxes { targets, unsure }
}

/// The teacher's class at every pixel where its probability reaches
/// `pixel_confidence`, [`IGNORE`] elsewhere and on the padding: `N·H·W` class
/// indices in the layout of `SegBatch::masks`.
pub fn pseudo_masks<B: TwinBackend>(teacher: &TwinNet<B>, images: Tensor<B, 4>, letterboxes: &[Letterbox], pixel_confidence: f32) -> Vec<u8> {
    let logits = teacher.forward_seg(images);
    let [n, _, h, w] = logits.dims();
    let (best, class) = softmax(logits, 1).max_dim_with_indices(1);
    let best: Vec<f32> = best.into_data().convert::<f32>().into_vec().expect("float tensor");
    let class: Vec<i64> = class.into_data().convert::<i64>().into_vec().expect("int tensor");
    let mut masks = vec![IGNORE; n * h * w];
    for (i, letterbox) in letterboxes.iter().enumerate().take(n) {
        let [x0, y0, x1, y1] = letterbox.content_rect().map(|v| v as usize);
        for y in y0..y1.min(h) {
            for x in x0..x1.min(w) {
                let p = (i * h + y) * w + x;
                if best[p] >= pixel_confidence {
                    masks[p] = class[p] as u8;
                }
            }
        }
    }
    masks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::predict::detect_batch;
    use crate::model::{ModelConfig, ModelSize};
    use crate::train::trainee::Trainee;
    use burn::backend::Flex;

    fn teacher() -> TwinNet<Flex> {
        let mut config = ModelConfig::new(ModelSize::N, 3, 5);
        config.width = Some(0.125);
        Trainee::<Flex>::seeded(&config, 4, &Default::default()).net
    }

    /// Drawn from a local generator: the backend's global one is shared by
    /// tests running in parallel, so a draw from it is not reproducible here.
    fn images() -> Tensor<Flex, 4> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let values: Vec<f32> = (0..2 * 3 * 64 * 64).map(|_| rng.random_range(-2.0..2.0)).collect();
        Tensor::from_data(burn::tensor::TensorData::new(values, [2, 3, 64, 64]), &Default::default())
    }

    /// The image fills the input except 8 padding rows at the top and bottom.
    fn letterbox() -> Letterbox {
        Letterbox::fit(64, 48, 64)
    }

    #[test]
    fn pseudo_boxes_are_the_teachers_detections_above_the_threshold() {
        let net = teacher();
        // Everything the predictor shows at a score floor of 0; the untrained
        // head's scores sit near its prior, so pick a threshold among them.
        let all = detect_batch(&net, images(), &[Letterbox::fit(64, 64, 64); 2], &PostprocessConfig { score_threshold: 0.0, ..PostprocessConfig::display() });
        let mut scores: Vec<f32> = all.iter().flatten().map(|d| d.score).collect();
        scores.sort_by(f32::total_cmp);
        let threshold = scores[scores.len() / 2];
        assert!(pseudo_boxes(&net, images(), threshold, None).unsure.is_empty());
        let labels = pseudo_boxes(&net, images(), threshold, Some(0.0));
        let expected: Vec<ImageTargets> = detect_batch(&net, images(), &[Letterbox::fit(64, 64, 64); 2], &PostprocessConfig { score_threshold: threshold, ..PostprocessConfig::display() })
            .into_iter()
            .map(|d| d.iter().map(|d| (d.bbox, d.class)).filter(|(b, _)| b[2] - b[0] >= 1.0 && b[3] - b[1] >= 1.0).unzip())
            .collect();
        let kept: usize = labels.targets.iter().map(|(b, _)| b.len()).sum();
        assert!(kept > 0 && kept < scores.len(), "{kept} of {} boxes kept", scores.len());
        assert_eq!(labels.targets, expected);
        // Unsure: the anchors whose best class probability is at most the threshold (the floor is 0 here).
        let output = net.forward_det(images());
        let [n, a, c] = output.cls_logits.dims();
        let logits: Vec<f32> = output.cls_logits.into_data().convert::<f32>().into_vec().unwrap();
        let unsure: Vec<bool> = (0..n * a)
            .map(|row| logits[row * c..(row + 1) * c].iter().map(|&x| 1.0 / (1.0 + (-x).exp())).fold(0.0, f32::max) <= threshold)
            .collect();
        let differing = unsure.iter().zip(&labels.unsure).filter(|(p, q)| p != q).count();
        assert!(differing <= 2, "{differing} anchors judged differently (rounding at the threshold at most)");
        assert!(unsure.iter().any(|&u| u) && unsure.iter().any(|&u| !u));
        for (boxes, classes) in &labels.targets {
            assert!(boxes.iter().all(|b| b.iter().all(|&v| (0.0..=64.0).contains(&v))) && classes.iter().all(|&c| c < 3));
        }
    }

    #[test]
    fn pseudo_masks_are_the_teachers_confident_classes_inside_the_image() {
        let net = teacher();
        let logits = net.forward_seg(images());
        let [n, c, h, w] = logits.dims();
        let values: Vec<f32> = logits.into_data().convert::<f32>().into_vec().unwrap();
        // By hand: the softmax's largest probability and its class at each pixel.
        let best: Vec<(f32, usize)> = (0..n * h * w)
            .map(|p| {
                let (i, pixel) = (p / (h * w), p % (h * w));
                let z: Vec<f32> = (0..c).map(|k| values[(i * c + k) * h * w + pixel]).collect();
                let max = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = z.iter().map(|v| (v - max).exp()).sum();
                let k = z.iter().position(|&v| v == max).unwrap();
                (1.0 / sum, k)
            })
            .collect();
        let mut sorted: Vec<f32> = best.iter().map(|b| b.0).collect();
        sorted.sort_by(f32::total_cmp);
        let confidence = sorted[sorted.len() / 2];
        let masks = pseudo_masks(&net, images(), &[letterbox(); 2], confidence);
        let mut labelled = 0;
        for (p, &(prob, class)) in best.iter().enumerate() {
            let y = (p % (h * w)) / w;
            let in_image = (8..56).contains(&y);
            let expected = if in_image && prob >= confidence + 1e-6 { Some(class as u8) } else if !in_image || prob < confidence - 1e-6 { Some(IGNORE) } else { None };
            if let Some(e) = expected {
                assert_eq!(masks[p], e, "pixel {p}: probability {prob}, class {class}");
            }
            labelled += (masks[p] != IGNORE) as usize;
        }
        assert!(labelled > 0 && labelled < n * 48 * w, "{labelled} pixels labelled: some, not all of the image");
    }
}
