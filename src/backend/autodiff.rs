//! [`TwinBackend`] under autodiff: the forward pass runs the inner backend's
//! kernel and records a backward step that runs its gradient kernels (the
//! structure of burn-autodiff's own convolution op).

use burn::tensor::ops::{ConvOptions, FloatTensor, IntTensor};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::CheckpointStrategy;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_autodiff::{Autodiff, NodeId};

use super::TwinBackend;

#[derive(Debug)]
struct Conv2dBackward;

impl<B: TwinBackend> Backward<B, 2> for Conv2dBackward {
    type State = (NodeId, NodeId, ConvOptions<2>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_weight] = ops.parents;
        let output_grad = grads.consume::<B>(&ops.node);
        let (x_state, weight_state, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x_state);
        let weight = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(weight_state);
        if let Some(node) = node_x {
            let grad = B::twin_conv2d_x_backward(x.clone(), weight.clone(), output_grad.clone(), options.clone());
            grads.register::<B>(node.id, grad);
        }
        if let Some(node) = node_weight {
            grads.register::<B>(node.id, B::twin_conv2d_weight_backward(x, weight, output_grad, options));
        }
    }
}

#[derive(Debug)]
struct GroupNormSiluBackward;

impl<B: TwinBackend> Backward<B, 3> for GroupNormSiluBackward {
    /// x, γ, β, groups, epsilon.
    type State = (NodeId, NodeId, NodeId, usize, f64);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let output_grad = grads.consume::<B>(&ops.node);
        let (x, gamma, beta, groups, epsilon) = ops.state;
        let [x, gamma, beta] = [x, gamma, beta].map(|id| checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(id));
        let gradients = B::twin_group_norm_silu_backward(x, gamma, beta, groups, epsilon, output_grad);
        for (parent, grad) in ops.parents.into_iter().zip(gradients) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

#[derive(Debug)]
struct Upsample2xBackward;

impl<B: TwinBackend> Backward<B, 1> for Upsample2xBackward {
    type State = ();

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let output_grad = grads.consume::<B>(&ops.node);
        if let [Some(node)] = ops.parents {
            grads.register::<B>(node.id, B::twin_upsample2x_backward(output_grad));
        }
    }
}

#[derive(Debug)]
struct ClassLogProbBackward;

impl<B: TwinBackend> Backward<B, 1> for ClassLogProbBackward {
    /// The logits, and the classes (not differentiated).
    type State = (NodeId, IntTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let output_grad = grads.consume::<B>(&ops.node);
        let (logits, classes) = ops.state;
        let logits = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(logits);
        if let [Some(node)] = ops.parents {
            grads.register::<B>(node.id, B::twin_class_log_prob_backward(logits, classes, output_grad));
        }
    }
}

/// `twin_run` stays the default (the calling thread), whatever the inner
/// backend: a trainer runs inside its own pool already (the inner backend's
/// `twin_run_training`); the shared pool would deadlock two trainers there.
impl<B: TwinBackend, C: CheckpointStrategy> TwinBackend for Autodiff<B, C> {
    fn device_memory(device: &Self::Device) -> Option<super::device::DeviceMemory> {
        B::device_memory(device)
    }

    fn device_turn(device: &Self::Device) -> Option<super::device::DeviceTurn> {
        B::device_turn(device)
    }

    fn twin_group_norm_silu(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let parents = [x.node.clone(), gamma.node.clone(), beta.node.clone()];
        match GroupNormSiluBackward.prepare::<C>(parents).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&gamma), prep.checkpoint(&beta), groups, epsilon);
                prep.finish(state, B::twin_group_norm_silu(x.primitive, gamma.primitive, beta.primitive, groups, epsilon))
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::twin_group_norm_silu(x.primitive, gamma.primitive, beta.primitive, groups, epsilon))
            }
        }
    }

    fn twin_class_log_prob(logits: FloatTensor<Self>, classes: IntTensor<Self>) -> FloatTensor<Self> {
        match ClassLogProbBackward.prepare::<C>([logits.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&logits), classes.clone());
                prep.finish(state, B::twin_class_log_prob(logits.primitive, classes))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::twin_class_log_prob(logits.primitive, classes)),
        }
    }

    fn twin_upsample2x(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Upsample2xBackward.prepare::<C>([x.node.clone()]).compute_bound().stateless(B::twin_upsample2x(x.primitive))
    }

    fn twin_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        match Conv2dBackward.prepare::<C>([x.node.clone(), weight.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let output = B::twin_conv2d(x.primitive, weight.primitive, options.clone());
                prep.finish((x_state, weight_state, options), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::twin_conv2d(x.primitive, weight.primitive, options)),
        }
    }
}
