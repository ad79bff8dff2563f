//! [`TwinBackend`] under autodiff: the forward pass runs the inner backend's
//! kernel and records a backward step that runs its gradient kernels (the
//! structure of burn-autodiff's own convolution op).

use burn::tensor::ops::ConvOptions;
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

impl<B: TwinBackend, C: CheckpointStrategy> TwinBackend for Autodiff<B, C> {
    fn twin_conv2d(
        x: burn::tensor::ops::FloatTensor<Self>,
        weight: burn::tensor::ops::FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> burn::tensor::ops::FloatTensor<Self> {
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
