//! The task-conflict meter: how far two tasks' gradients on the shared
//! weights point the same way, as the cosine of the angle between them (1: the
//! tasks agree, 0: unrelated, < 0: each step for one undoes the other), for
//! every pair of the run's tasks. Measured at every evaluation on one fixed
//! batch of each task, with no optimiser step, over the backbone and the neck
//! apart and together. Classification reads the backbone only, so its pairs
//! share the backbone alone.

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor};
use serde::{Deserialize, Serialize};

use super::trainee::shared_gradient_parts;
use crate::model::{Task, TwinNet};

/// Gradient cosines between two tasks on the shared weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TaskConflict {
    /// Over the shared weights both tasks reach: the backbone and the neck
    /// together (the backbone alone when one of the tasks is classification).
    pub shared: f64,
    pub backbone: f64,
    pub neck: f64,
}

/// The meter of one pair of tasks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairConflict {
    pub tasks: [Task; 2],
    #[serde(flatten)]
    pub cosines: TaskConflict,
}

/// One task's gradient on the shared weights, from its loss computed with
/// `net` (one task after the other: a backward pass frees its graph).
pub fn shared_gradient<B: AutodiffBackend>(net: &TwinNet<B>, loss: Tensor<B, 1>) -> Parts<B::InnerBackend> {
    shared_gradient_parts(net, &loss.backward())
}

/// The meter of every pair of the tasks' gradients, in the order given
/// (detection, segmentation, classification: det–seg, det–cls, seg–cls).
pub fn pairs<B: burn::tensor::backend::Backend>(gradients: &[(Task, Parts<B>)]) -> Vec<PairConflict> {
    let mut pairs = Vec::new();
    for (i, (a, ga)) in gradients.iter().enumerate() {
        for (b, gb) in &gradients[i + 1..] {
            pairs.push(PairConflict { tasks: [*a, *b], cosines: cosines(ga, gb) });
        }
    }
    pairs
}

/// The backbone's and the neck's gradient tensors (see [`shared_gradient_parts`]).
pub type Parts<B> = (Vec<Tensor<B, 1>>, Vec<Tensor<B, 1>>);

/// The meter from the two tasks' gradients on the shared weights.
fn cosines<B: burn::tensor::backend::Backend>(det: &Parts<B>, seg: &Parts<B>) -> TaskConflict {
    let sums = |a: &[Tensor<B, 1>], b: &[Tensor<B, 1>]| -> [f64; 3] {
        let mut sums = [0.0; 3];
        for (x, y) in a.iter().zip(b) {
            let total = |t: Tensor<B, 1>| t.sum().into_scalar().elem::<f64>();
            sums[0] += total(x.clone() * y.clone());
            sums[1] += total(x.clone().powi_scalar(2));
            sums[2] += total(y.clone().powi_scalar(2));
        }
        sums
    };
    let backbone = sums(&det.0, &seg.0);
    let neck = sums(&det.1, &seg.1);
    // A task that does not reach the neck (classification) shares the backbone alone.
    let shared = match neck[1] > 0.0 && neck[2] > 0.0 {
        true => [backbone[0] + neck[0], backbone[1] + neck[1], backbone[2] + neck[2]],
        false => backbone,
    };
    TaskConflict { shared: cosine(shared), backbone: cosine(backbone), neck: cosine(neck) }
}

/// `a·b / (|a| |b|)` from `[a·b, |a|², |b|²]`; 0 when either gradient is zero.
fn cosine([dot, aa, bb]: [f64; 3]) -> f64 {
    let norms = (aa * bb).sqrt();
    if norms > 0.0 { dot / norms } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelConfig, ModelSize};
    use crate::train::trainee::Trainee;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::Distribution;

    type B = Autodiff<Flex>;

    /// Two losses of a tiny model that use the shared weights differently.
    fn det_loss(net: &TwinNet<B>, images: &Tensor<B, 4>) -> Tensor<B, 1> {
        let det = net.forward_det(images.clone());
        det.cls_logits.powi_scalar(2).mean() + det.box_raw.mean()
    }

    fn seg_loss(net: &TwinNet<B>, images: &Tensor<B, 4>) -> Tensor<B, 1> {
        net.forward_seg(images.clone()).slice([0..2, 0..1]).mean().neg()
    }

    type Inner = <B as AutodiffBackend>::InnerBackend;

    fn flat(grads: Vec<Tensor<Inner, 1>>) -> Vec<f64> {
        grads.into_iter().flat_map(|g| g.into_data().to_vec::<f32>().unwrap()).map(f64::from).collect()
    }

    /// On fixed gradients (two backward passes of a random tiny network are
    /// not bit-for-bit repeatable when other work shares the thread pool).
    #[test]
    fn the_meter_is_the_cosine_of_the_two_gradients() {
        let mut config = ModelConfig::new(ModelSize::N, 3, 4);
        config.width = Some(0.25);
        config.cls_classes = 3;
        let trainee = Trainee::<B>::seeded(&config, 5, &Default::default());
        let net = &trainee.net;
        let images = Tensor::<B, 4>::random([2, 3, 64, 64], Distribution::Normal(0.0, 1.0), &Default::default());
        let det = shared_gradient_parts(net, &det_loss(net, &images).backward());
        let seg = shared_gradient_parts(net, &seg_loss(net, &images).backward());
        let meter = cosines(&det, &seg);

        // By hand: both gradients as plain vectors, their cosine in f64.
        let join = |parts: &Parts<Inner>| flat(parts.0.iter().chain(&parts.1).cloned().collect());
        let (a, b) = (join(&det), join(&seg));
        let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let by_hand = dot / (norm(&a) * norm(&b));
        assert!((meter.shared - by_hand).abs() < 1e-6, "meter {}, by hand {by_hand}", meter.shared);
        assert!(meter.shared.abs() < 0.99, "two different losses do not point the same way: {meter:?}");
        assert!([meter.backbone, meter.neck].iter().all(|c| c.abs() <= 1.0 + 1e-9));

        // A gradient against itself agrees fully; against its negative, fully opposes.
        let negated: Parts<Inner> = (det.0.iter().map(|t| t.clone().neg()).collect(), det.1.iter().map(|t| t.clone().neg()).collect());
        let (same, opposite) = (cosines(&det, &det), cosines(&det, &negated));
        assert!((same.shared - 1.0).abs() < 1e-6 && (opposite.shared + 1.0).abs() < 1e-6, "{same:?} {opposite:?}");
        // And the meter as the trainer calls it, from the losses of every task.
        let cls_loss = net.forward_cls(images.clone()).slice([0..2, 0..1]).mean();
        let gradients = [(Task::Det, det_loss(net, &images)), (Task::Seg, seg_loss(net, &images)), (Task::Cls, cls_loss)]
            .map(|(task, loss)| (task, shared_gradient(net, loss)));
        let measured = pairs(&gradients);
        let tasks: Vec<[Task; 2]> = measured.iter().map(|p| p.tasks).collect();
        assert_eq!(tasks, [[Task::Det, Task::Seg], [Task::Det, Task::Cls], [Task::Seg, Task::Cls]]);
        assert!(measured.iter().all(|p| (-1.0..=1.0).contains(&p.cosines.shared)));
        // Classification does not reach the neck: its pairs share the backbone alone.
        assert_eq!(measured[1].cosines.neck, 0.0);
        assert_eq!(measured[1].cosines.shared, measured[1].cosines.backbone);
        assert_ne!(measured[0].cosines.shared, measured[0].cosines.backbone);
    }
}
