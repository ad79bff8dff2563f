//! Each task's loss on a batch: on its own labels, and the cross-task terms
//! (distillation, pseudo-labels) that supervise the other heads on images
//! that have no labels for them.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::config::LossConfig;
use super::loss::cls::cls_loss;
use super::loss::det::{det_loss, det_loss_ignoring, DetLossConfig, ImageTargets};
use super::loss::distill::{kd_det_loss, kd_softmax_loss};
use super::loss::seg::{seg_loss, OhemConfig, SegLossConfig, IGNORE_INDEX};
use super::pseudo::{pseudo_boxes, pseudo_masks, PseudoLabels};
use super::strategy::{Task, TaskSet};
use super::task_data::TaskBatch;
use crate::backend::TwinAutodiffBackend;
use crate::data::batch::{mask_tensor, DetBatch, ImageBatch};
use crate::model::anchors::Anchors;
use crate::model::{HeadOutputs, TwinNet, DET_STRIDES};

/// A task's loss on a batch, and what it is a mean over (the detection
/// loss's target-score sum, the scored pixels, the images): the loss divides by
/// `max(normaliser, 1)`.
pub struct TaskLoss<B: Backend> {
    pub value: Tensor<B, 1>,
    pub normaliser: f32,
}

/// What supervises the heads of `tasks` on a batch that has no labels for them.
pub struct CrossTask<'a, B: Backend> {
    pub tasks: TaskSet,
    pub kind: CrossKind<'a, B>,
}

pub enum CrossKind<'a, B: Backend> {
    Distill { teacher: &'a TwinNet<B>, weight: f32, temperature: f32 },
    /// Per task (in [`Task::ALL`] order), the network whose predictions become its labels.
    Pseudo { teachers: [Option<&'a TwinNet<B>>; 3], labels: PseudoLabels },
}

/// The tasks' losses as the run's `loss` table sets them.
pub struct TaskLosses {
    det: DetLossConfig,
    seg: SegLossConfig,
    cls_label_smoothing: f32,
}

impl TaskLosses {
    pub fn new(config: &LossConfig) -> Self {
        let det = DetLossConfig { cls_weight: config.det_cls_weight, box_weight: config.det_box_weight, ..DetLossConfig::default() };
        let seg = SegLossConfig {
            ohem: (config.seg_ohem_fraction > 0.0).then(|| OhemConfig { min_kept_fraction: config.seg_ohem_fraction, ..OhemConfig::default() }),
            dice_weight: config.seg_dice_weight,
        };
        Self { det, seg, cls_label_smoothing: config.cls_label_smoothing }
    }

    /// The loss of `batch`'s own task on its labels, from its head's output in `heads`.
    pub fn labelled<B: TwinAutodiffBackend>(&self, batch: &TaskBatch, heads: &mut HeadOutputs<B>, device: &B::Device) -> TaskLoss<B> {
        let missing = "forward_heads computed the batch's own head";
        match batch {
            TaskBatch::Det(batch) => {
                let output = heads.det.take().expect(missing);
                let anchors = Anchors::new(batch.size, &DET_STRIDES);
                let loss = det_loss(output.cls_logits, output.box_raw, &anchors, &training_targets(batch), &self.det);
                TaskLoss { value: loss.total, normaliser: loss.target_score_sum }
            }
            TaskBatch::Seg(batch) => {
                let value = seg_loss(heads.seg.take().expect(missing), batch.masks::<B>(device), &self.seg).total;
                TaskLoss { value, normaliser: batch.masks.iter().filter(|&&m| m as i64 != IGNORE_INDEX).count() as f32 }
            }
            TaskBatch::Cls(batch) => {
                let labels = batch.labels::<B>(device);
                let value = cls_loss(heads.cls.take().expect(missing), labels, self.cls_label_smoothing);
                TaskLoss { value, normaliser: batch.len() as f32 }
            }
        }
    }

    /// The weighted losses of the `others` heads' outputs (`student`) on images
    /// that have no labels for them, against the teachers' outputs or labels.
    pub fn cross<B: TwinAutodiffBackend>(
        &self,
        cross: &CrossTask<'_, B::InnerBackend>,
        others: TaskSet,
        mut student: HeadOutputs<B>,
        images: Tensor<B::InnerBackend, 4>,
        inputs: &ImageBatch,
        device: &B::Device,
    ) -> Vec<Tensor<B, 1>> {
        let missing = "forward_heads computed the cross-supervised heads";
        let mut terms = Vec::new();
        match &cross.kind {
            CrossKind::Distill { teacher, weight, temperature } => {
                let mut target = teacher.forward_heads(images, others);
                for task in others.iter() {
                    let term = match task {
                        Task::Det => {
                            let (student, target) = (student.det.take().expect(missing), target.det.take().expect(missing));
                            let (cls, boxes) = (Tensor::from_inner(target.cls_logits), Tensor::from_inner(target.box_raw));
                            let kd = kd_det_loss(student.cls_logits, cls, student.box_raw, boxes);
                            kd.cls + kd.boxes
                        }
                        Task::Seg => {
                            let target = Tensor::from_inner(target.seg.take().expect(missing));
                            kd_softmax_loss(student.seg.take().expect(missing), target, *temperature)
                        }
                        Task::Cls => {
                            let target = Tensor::from_inner(target.cls.take().expect(missing));
                            kd_softmax_loss(student.cls.take().expect(missing), target, *temperature)
                        }
                    };
                    terms.push(term.mul_scalar(*weight));
                }
            }
            CrossKind::Pseudo { teachers, labels } => {
                for task in others.iter() {
                    let Some(teacher) = teachers[task as usize] else { continue };
                    let term = match task {
                        Task::Det => {
                            let score = labels.background_score.map(|b| b as f32);
                            let boxes = pseudo_boxes(teacher, images.clone(), labels.box_score as f32, score);
                            let anchors = Anchors::new(inputs.size, &DET_STRIDES);
                            let output = student.det.take().expect(missing);
                            let (cls, raw) = (output.cls_logits, output.box_raw);
                            det_loss_ignoring(cls, raw, &anchors, &boxes.targets, &boxes.unsure, &self.det).total
                        }
                        Task::Seg => {
                            let confidence = labels.pixel_confidence as f32;
                            let masks = pseudo_masks(teacher, images.clone(), &inputs.letterboxes, confidence);
                            let targets = mask_tensor(&masks, inputs.len(), inputs.size, device);
                            seg_loss(student.seg.take().expect(missing), targets, &self.seg).total
                        }
                        // The teacher's soft class distribution (distillation at temperature 1).
                        Task::Cls => {
                            let target = Tensor::from_inner(teacher.forward_cls(images.clone()));
                            kd_softmax_loss(student.cls.take().expect(missing), target, 1.0)
                        }
                    };
                    terms.push(term.mul_scalar(labels.weight));
                }
            }
        }
        terms
    }
}

/// Training targets of a detection batch: difficult objects are left out (the
/// devkit does not score them, so the network need not learn them).
fn training_targets(batch: &DetBatch) -> Vec<ImageTargets> {
    (0..batch.len())
        .map(|i| {
            let keep: Vec<usize> = (0..batch.boxes[i].len()).filter(|&j| !batch.difficult[i][j]).collect();
            (keep.iter().map(|&j| batch.boxes[i][j]).collect(), keep.iter().map(|&j| batch.labels[i][j]).collect())
        })
        .collect()
}

