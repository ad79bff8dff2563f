//! How the tasks' gradients of one step become the step's gradient: summed
//! (one backward pass of the summed loss, the default), or combined by a
//! gradient-surgery method on the weights the tasks share (backbone and neck),
//! each task's gradient taken from a backward pass of its own. A method is one
//! file here and one variant of [`GradientCombination`].

pub mod pcgrad;

use std::collections::HashSet;

use burn::module::{list_param_ids, Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::trainee::Trainee;

/// `strategy.gradients` of `joint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GradientCombination {
    /// The weighted task losses summed, one backward pass.
    #[default]
    Sum,
    /// [`pcgrad`]: conflicting task gradients projected off each other on the shared weights.
    Pcgrad,
}

impl GradientCombination {
    pub const ALL: [GradientCombination; 2] = [GradientCombination::Sum, GradientCombination::Pcgrad];

    pub fn key(self) -> &'static str {
        match self {
            GradientCombination::Sum => "sum",
            GradientCombination::Pcgrad => "pcgrad",
        }
    }

    pub fn is_sum(&self) -> bool {
        *self == GradientCombination::Sum
    }
}

/// What one step's combination did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Combined {
    /// Projections made (pairs of tasks in conflict, counted once per direction).
    pub projections: usize,
}

/// The step's gradient on every parameter of `trainee` from each task's own
/// gradients (`tasks`, in the run's task order) and `unshared` (a term that
/// belongs to no task, such as a penalty, added as it is): on the backbone and
/// neck combined by `method`, elsewhere summed. The order in which a task is
/// projected off the others is drawn from `seed` and `step`, so that a resumed
/// run draws the same.
pub fn combine<B: AutodiffBackend>(
    trainee: &Trainee<B>,
    tasks: &[GradientsParams],
    unshared: Option<&GradientsParams>,
    method: GradientCombination,
    seed: u64,
    step: usize,
) -> (GradientsParams, Combined) {
    let shared: HashSet<ParamId> = list_param_ids(&trainee.net.backbone).into_iter().chain(list_param_ids(&trainee.net.neck)).collect();
    let mut flatten = Flatten { shared: &shared, tasks, parts: vec![Vec::new(); tasks.len()] };
    trainee.visit(&mut flatten);
    let flat: Vec<Tensor<B::InnerBackend, 1>> = flatten.parts.into_iter().filter(|p| !p.is_empty()).map(|p| Tensor::cat(p, 0)).collect();
    let (combined, info) = match (method, flat.len()) {
        (_, 0) => (None, Combined::default()),
        (GradientCombination::Sum, _) => (Some(flat.into_iter().reduce(|a, b| a + b).expect("one or more")), Combined::default()),
        (GradientCombination::Pcgrad, n) => {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let orders: Vec<Vec<usize>> = (0..n)
                .map(|i| {
                    let mut others: Vec<usize> = (0..n).filter(|&j| j != i).collect();
                    others.shuffle(&mut rng);
                    others
                })
                .collect();
            let (sum, projections) = pcgrad::project_conflicts(&flat, &orders);
            (Some(sum), Combined { projections })
        }
    };
    let mut rebuild = Rebuild { shared: &shared, tasks, unshared, combined, offset: 0, out: GradientsParams::new() };
    trainee.visit(&mut rebuild);
    (rebuild.out, info)
}

/// Each task's gradients on the shared parameters, flattened in visiting
/// order, zeros where a task has none; parameters no task reaches are left out.
struct Flatten<'a, B: AutodiffBackend> {
    shared: &'a HashSet<ParamId>,
    tasks: &'a [GradientsParams],
    parts: Vec<Vec<Tensor<B::InnerBackend, 1>>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Flatten<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !self.shared.contains(&param.id) {
            return;
        }
        let grads: Vec<Option<Tensor<B::InnerBackend, D>>> = self.tasks.iter().map(|t| t.get::<B::InnerBackend, D>(param.id)).collect();
        if grads.iter().all(Option::is_none) {
            return;
        }
        let value = param.val();
        let elements = value.shape().num_elements();
        for (part, grad) in self.parts.iter_mut().zip(grads) {
            part.push(match grad {
                Some(g) => g.reshape([elements]),
                None => Tensor::zeros([elements], &value.device()),
            });
        }
    }
}

/// The step's gradients: the shared parameters' slices of the combined
/// vector (in [`Flatten`]'s order), the others' task gradients summed, and the
/// unshared term on top.
struct Rebuild<'a, B: AutodiffBackend> {
    shared: &'a HashSet<ParamId>,
    tasks: &'a [GradientsParams],
    unshared: Option<&'a GradientsParams>,
    combined: Option<Tensor<B::InnerBackend, 1>>,
    offset: usize,
    out: GradientsParams,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Rebuild<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let own = |grads: &GradientsParams| grads.get::<B::InnerBackend, D>(param.id);
        let reached = self.tasks.iter().any(|t| own(t).is_some());
        let mut gradient = match (self.shared.contains(&param.id), &self.combined) {
            (true, Some(combined)) if reached => {
                let dims = param.val().dims();
                let elements: usize = dims.iter().product();
                let slice = combined.clone().slice(self.offset..self.offset + elements).reshape(dims);
                self.offset += elements;
                Some(slice)
            }
            _ => self.tasks.iter().filter_map(own).reduce(|a, b| a + b),
        };
        if let Some(extra) = self.unshared.and_then(own) {
            gradient = Some(match gradient {
                Some(g) => g + extra,
                None => extra,
            });
        }
        if let Some(gradient) = gradient {
            self.out.register::<B::InnerBackend, D>(param.id, gradient);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelConfig, ModelSize};
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::Distribution;

    type B = Autodiff<Flex>;
    type Inner = Flex;

    fn trainee() -> Trainee<B> {
        let mut config = ModelConfig::new(ModelSize::N, 3, 4);
        config.width = Some(0.25);
        Trainee::<B>::seeded(&config, 5, &Default::default())
    }

    fn task_gradients(trainee: &Trainee<B>, images: &Tensor<B, 4>) -> [GradientsParams; 2] {
        let det = trainee.net.forward_det(images.clone());
        let det = det.cls_logits.powi_scalar(2).mean() + det.box_raw.mean();
        let seg = trainee.net.forward_seg(images.clone()).slice([0..2, 0..1]).mean().neg();
        [det, seg].map(|loss| GradientsParams::from_grads(loss.backward(), trainee))
    }

    /// The gradients of the parameters `ids` in visiting order, zeros where `grads` has none.
    fn flat(grads: &GradientsParams, trainee: &Trainee<B>, ids: &[ParamId]) -> Vec<f32> {
        struct Collect<'a> {
            grads: &'a GradientsParams,
            ids: &'a [ParamId],
            values: Vec<f32>,
        }
        impl ModuleVisitor<B> for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                if self.ids.contains(&param.id) {
                    match self.grads.get::<Inner, D>(param.id) {
                        Some(g) => self.values.extend(g.into_data().to_vec::<f32>().unwrap()),
                        None => self.values.extend(vec![0.0; param.val().shape().num_elements()]),
                    }
                }
            }
        }
        let mut collect = Collect { grads, ids, values: Vec::new() };
        trainee.visit(&mut collect);
        collect.values
    }

    #[test]
    fn summing_equals_the_summed_losses_and_pcgrad_changes_only_the_shared_weights() {
        let trainee = trainee();
        let images = Tensor::<B, 4>::random([2, 3, 64, 64], Distribution::Normal(0.0, 1.0), &Default::default());
        let tasks = task_gradients(&trainee, &images);
        let shared: Vec<ParamId> = list_param_ids(&trainee.net.backbone).into_iter().chain(list_param_ids(&trainee.net.neck)).collect();
        let heads: Vec<ParamId> = list_param_ids(&trainee.net.det_head).into_iter().chain(list_param_ids(&trainee.net.seg_head)).collect();

        let (sum, info) = combine(&trainee, &tasks, None, GradientCombination::Sum, 1, 0);
        assert_eq!(info.projections, 0);
        let by_hand: Vec<f32> = flat(&tasks[0], &trainee, &shared).iter().zip(flat(&tasks[1], &trainee, &shared)).map(|(a, b)| a + b).collect();
        let summed = flat(&sum, &trainee, &shared);
        assert_eq!(summed.len(), by_hand.len());
        assert!(summed.iter().zip(&by_hand).all(|(a, b)| (a - b).abs() <= 1e-6 * (1.0 + b.abs())));

        let (surgery, _) = combine(&trainee, &tasks, None, GradientCombination::Pcgrad, 1, 0);
        // Each head has its own task's gradient only: untouched.
        assert_eq!(flat(&surgery, &trainee, &heads), flat(&sum, &trainee, &heads));
        // Every parameter a task reached has a gradient, and no other.
        assert_eq!(surgery.len(), sum.len());

        // A task against twice its own negative, g and -2g: summed, -g; each projected
        // off the other, zero on the shared weights.
        // (A forward pass each: a backward pass frees its graph.)
        let loss = || {
            let det = trainee.net.forward_det(images.clone());
            det.cls_logits.powi_scalar(2).mean() + det.box_raw.mean()
        };
        let opposed = [loss(), loss().mul_scalar(-2.0)].map(|loss| GradientsParams::from_grads(loss.backward(), &trainee));
        let (surgery, info) = combine(&trainee, &opposed, None, GradientCombination::Pcgrad, 1, 0);
        assert_eq!(info.projections, 2);
        let largest = flat(&opposed[0], &trainee, &shared).iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(largest > 0.0 && flat(&surgery, &trainee, &shared).iter().all(|v| v.abs() <= 1e-3 * largest));
        let (summed_opposed, _) = combine(&trainee, &opposed, None, GradientCombination::Sum, 1, 0);
        assert!(flat(&summed_opposed, &trainee, &shared).iter().any(|v| v.abs() > 0.5 * largest));
        // An unshared term is added as it is.
        let (with_extra, _) = combine(&trainee, &tasks[..1], Some(&tasks[1]), GradientCombination::Pcgrad, 1, 0);
        assert!(flat(&with_extra, &trainee, &shared).iter().zip(&summed).all(|(p, s)| (p - s).abs() <= 1e-6 * (1.0 + s.abs())));
    }
}
