//! What the optimiser updates: the network plus the learned task weights of
//! uncertainty weighting, and the freezing/unfreezing of its parts.

use burn::backend::Flex;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::model::{transfer, ModelConfig, Task, TwinNet};

/// What a phase holds fixed (the `freeze` strategy's later phases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum FreezeScope {
    /// The stem and the first `k` backbone stages (1–4).
    Stages(usize),
    Backbone,
    BackboneAndNeck,
}

impl FreezeScope {
    pub const ALL: [FreezeScope; 6] = [
        FreezeScope::Stages(1),
        FreezeScope::Stages(2),
        FreezeScope::Stages(3),
        FreezeScope::Stages(4),
        FreezeScope::Backbone,
        FreezeScope::BackboneAndNeck,
    ];
}

impl TryFrom<String> for FreezeScope {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "backbone" => Ok(Self::Backbone),
            "backbone+neck" => Ok(Self::BackboneAndNeck),
            other => other
                .strip_prefix("stages:")
                .and_then(|k| k.parse().ok())
                .filter(|k| (1..=4).contains(k))
                .map(Self::Stages)
                .ok_or_else(|| format!("{other:?} is not one of \"backbone\", \"backbone+neck\", \"stages:1\"..\"stages:4\"")),
        }
    }
}

impl From<FreezeScope> for String {
    fn from(scope: FreezeScope) -> String {
        match scope {
            FreezeScope::Stages(k) => format!("stages:{k}"),
            FreezeScope::Backbone => "backbone".into(),
            FreezeScope::BackboneAndNeck => "backbone+neck".into(),
        }
    }
}

#[derive(Module, Debug)]
pub struct Trainee<B: Backend> {
    pub net: TwinNet<B>,
    /// `log σ²` per task, indexed in [`Task`] order up to the network's last
    /// task (detection, segmentation, classification), for uncertainty weighting.
    pub log_vars: Param<Tensor<B, 1>>,
}

/// One learned task weight per task up to `net`'s last (the slot of a task
/// before it that the network lacks stays unused; a two-task network has 2).
fn task_log_vars<B: Backend>(net: &TwinNet<B>, device: &B::Device) -> Param<Tensor<B, 1>> {
    let slots = net.tasks().iter().map(|task| task as usize + 1).max().unwrap_or(0);
    Param::from_tensor(Tensor::zeros([slots], device))
}

impl<B: Backend> Trainee<B> {
    pub fn new(config: &ModelConfig, device: &B::Device) -> Self {
        Self::from_net(TwinNet::new(config, device), device)
    }

    /// A trainee starting from `net`'s weights (task weighting at its start).
    pub fn from_net(net: TwinNet<B>, device: &B::Device) -> Self {
        let log_vars = task_log_vars(&net, device);
        Self { net, log_vars }
    }

    /// A freshly initialised trainee whose weights depend only on `seed`, the
    /// same on every device: they are drawn on the CPU and moved to `device`.
    /// The CPU backend's random generator is global and parameters initialise
    /// lazily, so seeding and drawing every weight happen together under one lock.
    pub fn seeded(config: &ModelConfig, seed: u64, device: &B::Device) -> Self {
        static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
        let cpu = Default::default();
        Flex::seed(&cpu, seed);
        let on_cpu = Trainee::<Flex>::new(config, &cpu);
        on_cpu.visit(&mut Materialize);
        // The same structure on both sides: the copy cannot fail.
        transfer::from_cpu(on_cpu, Self::new(config, device), device).expect("a trainee's weights fit the same trainee")
    }

    /// A small network with materialised weights (3 detection, 5 segmentation
    /// classes, width 0.25) for unit tests: clones of an unmaterialised network
    /// would draw weights of their own.
    #[cfg(test)]
    pub(crate) fn tiny_test_net(device: &B::Device) -> crate::model::TwinNet<B> {
        let mut config = ModelConfig::new(crate::model::ModelSize::N, 3, 5);
        config.width = Some(0.25);
        Self::seeded(&config, 7, device).net
    }

    /// `0.5·exp(−s)·L + 0.5·s` for the task's learned `s = log σ²` (Kendall et al.).
    pub fn uncertainty_weighted(&self, task: Task, loss: Tensor<B, 1>) -> Tensor<B, 1> {
        let index = task as usize;
        let s = self.log_vars.val().slice([index..index + 1]);
        (s.clone().neg().exp() * loss + s).mul_scalar(0.5)
    }

    /// Freezes `scope` (no gradients flow into it).
    pub fn freeze(mut self, scope: FreezeScope) -> Self {
        match scope {
            FreezeScope::Stages(k) => self.net.backbone = self.net.backbone.freeze_stages(k),
            FreezeScope::Backbone => self.net.backbone = self.net.backbone.no_grad(),
            FreezeScope::BackboneAndNeck => {
                self.net.backbone = self.net.backbone.no_grad();
                self.net.neck = self.net.neck.no_grad();
            }
        }
        self
    }

    /// Makes every parameter trainable again (after a strategy change), except
    /// the ResNet's frozen BatchNorm, which is never trained.
    pub fn unfreeze(self) -> Self {
        self.map(&mut RequireGrad { inside_frozen_norm: 0 })
    }
}

impl<B: Backend> Trainee<B> {
    /// A hash of every weight's bits (data-parallel replicas compare theirs at each checkpoint).
    pub fn weights_hash(&self) -> [u8; 32] {
        let mut hasher = WeightHasher(blake3::Hasher::new());
        self.visit(&mut hasher);
        *hasher.0.finalize().as_bytes()
    }
}

struct WeightHasher(blake3::Hasher);

impl<B: Backend> ModuleVisitor<B> for WeightHasher {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.update(param.val().into_data().as_bytes());
    }
}

/// Touches every parameter so its lazy initialisation runs now.
struct Materialize;

impl<B: Backend> ModuleVisitor<B> for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let _ = param.val();
    }
}

struct RequireGrad {
    inside_frozen_norm: usize,
}

const FROZEN_NORM: &str = "Struct:FrozenBatchNorm2d";

impl<B: Backend> ModuleMapper<B> for RequireGrad {
    fn enter_module(&mut self, _name: &str, container_type: &str) {
        if container_type == FROZEN_NORM {
            self.inside_frozen_norm += 1;
        }
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        if container_type == FROZEN_NORM {
            self.inside_frozen_norm -= 1;
        }
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        param.set_require_grad(self.inside_frozen_norm == 0)
    }
}

/// The parameters shared by both tasks (backbone and neck), each flattened, in a
/// fixed order: what EWC anchors and weighs.
pub fn shared_parameters<B: Backend>(net: &TwinNet<B>) -> Vec<Tensor<B, 1>> {
    let mut collect = Flatten { tensors: Vec::new() };
    visit_shared(net, &mut collect);
    collect.tensors
}

/// Visits the modules both tasks share, in the order EWC pairs them up.
fn visit_shared<B: Backend, V: ModuleVisitor<B>>(net: &TwinNet<B>, visitor: &mut V) {
    net.backbone.visit(visitor);
    net.neck.visit(visitor);
}

/// The gradients of [`shared_parameters`] in `grads`, flattened, in the same
/// order; zeros for a weight the loss did not reach. (The flattened parameters
/// themselves are new graph nodes, so their `grad` would always be `None`.)
pub fn shared_gradients<B: AutodiffBackend>(net: &TwinNet<B>, grads: &B::Gradients) -> Vec<Tensor<B::InnerBackend, 1>> {
    let mut collect = FlattenGradients { grads, tensors: Vec::new() };
    visit_shared(net, &mut collect);
    collect.tensors
}

/// [`shared_gradients`] split into the backbone's and the neck's.
pub fn shared_gradient_parts<B: AutodiffBackend>(
    net: &TwinNet<B>,
    grads: &B::Gradients,
) -> (Vec<Tensor<B::InnerBackend, 1>>, Vec<Tensor<B::InnerBackend, 1>>) {
    let mut backbone = FlattenGradients { grads, tensors: Vec::new() };
    net.backbone.visit(&mut backbone);
    let mut neck = FlattenGradients { grads, tensors: Vec::new() };
    net.neck.visit(&mut neck);
    (backbone.tensors, neck.tensors)
}

struct FlattenGradients<'a, B: AutodiffBackend> {
    grads: &'a B::Gradients,
    tensors: Vec<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for FlattenGradients<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val();
        let gradient = match value.grad(self.grads) {
            Some(g) => g.flatten(0, D - 1),
            None => Tensor::zeros([value.shape().num_elements()], &value.device()),
        };
        self.tensors.push(gradient);
    }
}

/// Every float parameter of `module`, flattened, in the order `Module::map` visits them.
pub fn flat_parameters<B: Backend, M: Module<B>>(module: &M) -> Vec<Tensor<B, 1>> {
    let mut collect = Flatten { tensors: Vec::new() };
    module.visit(&mut collect);
    collect.tensors
}

struct Flatten<B: Backend> {
    tensors: Vec<Tensor<B, 1>>,
}

impl<B: Backend> ModuleVisitor<B> for Flatten<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.tensors.push(param.val().flatten(0, D - 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use crate::model::ModelSize;

    type B = Autodiff<Flex>;

    fn tiny() -> Trainee<B> {
        let mut config = ModelConfig::new(ModelSize::N, 3, 4);
        config.width = Some(0.125);
        Trainee::new(&config, &Default::default())
    }

    fn backbone_grads(trainee: &Trainee<B>) -> (usize, usize) {
        let images = Tensor::<B, 4>::ones([1, 3, 64, 64], &Default::default());
        let grads = trainee.net.forward_seg(images).sum().backward();
        let mut count = CountGrads { grads: &grads, with: 0, without: 0 };
        trainee.net.backbone.visit(&mut count);
        (count.with, count.without)
    }

    struct CountGrads<'a> {
        grads: &'a <B as burn::tensor::backend::AutodiffBackend>::Gradients,
        with: usize,
        without: usize,
    }

    impl ModuleVisitor<B> for CountGrads<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if param.val().grad(self.grads).is_some() {
                self.with += 1;
            } else {
                self.without += 1;
            }
        }
    }

    #[test]
    fn freezing_stops_gradients_and_unfreezing_restores_them() {
        let trainee = tiny();
        let (with, without) = backbone_grads(&trainee);
        assert!(with > 0 && without == 0);
        let frozen = trainee.freeze(FreezeScope::Backbone);
        assert_eq!(backbone_grads(&frozen).0, 0);
        let partly = frozen.unfreeze().freeze(FreezeScope::Stages(2));
        let (with, without) = backbone_grads(&partly);
        assert!(with > 0 && without > 0);
        assert_eq!(backbone_grads(&partly.unfreeze()).1, 0);
    }

    #[test]
    fn unfreezing_a_resnet_keeps_its_batchnorm_frozen() {
        let mut config = ModelConfig::new(ModelSize::N, 3, 4);
        config.backbone = crate::model::BackboneKind::Resnet18;
        let trainee = Trainee::<B>::new(&config, &Default::default());
        let (with, without) = backbone_grads(&trainee);
        // Per block-level conv 1 weight vs 4 frozen norm tensors: both kinds present.
        assert!(with > 0 && without > 0);
        let again = trainee.freeze(FreezeScope::Backbone).unfreeze();
        assert_eq!(backbone_grads(&again), (with, without));
    }

    #[test]
    fn uncertainty_weighting_starts_as_half_the_loss() {
        let trainee = tiny();
        let loss = Tensor::<B, 1>::from_floats([4.0], &Default::default());
        let weighted: f32 = trainee.uncertainty_weighted(Task::Seg, loss).into_scalar();
        assert!((weighted - 2.0).abs() < 1e-6);
    }
}
