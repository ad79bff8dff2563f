//! The log-probability of each pixel's class under a softmax over the
//! channels, and its gradient, in burn's tensor ops: what every backend
//! without a kernel of its own runs. The segmentation loss's core.
//!
//! With `p = softmax(z)` over the channels and `t` the pixel's class,
//! `∂ log p_t / ∂ z_c = [c = t] − p_c`.

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{IndexingUpdateOp, Int, Tensor};

use super::group_norm::tensor;

/// `[N, C, H, W]` logits and `[N, H, W]` classes → `[N, H, W]` log-probabilities.
pub fn forward_primitive<B: Backend>(logits: FloatTensor<B>, classes: IntTensor<B>) -> FloatTensor<B> {
    let logits: Tensor<B, 4> = tensor(logits);
    let [n, _, h, w] = logits.dims();
    let classes = Tensor::<B, 3, Int>::from_primitive(classes).reshape([n, 1, h, w]);
    log_softmax(logits, 1).gather(1, classes).reshape([n, h, w]).into_primitive().tensor()
}

/// The gradient with respect to the logits, given the output's `[N, H, W]`.
pub fn backward_primitive<B: Backend>(logits: FloatTensor<B>, classes: IntTensor<B>, output_grad: FloatTensor<B>) -> FloatTensor<B> {
    let logits: Tensor<B, 4> = tensor(logits);
    let [n, c, h, w] = logits.dims();
    let dy = tensor::<B, 3>(output_grad).reshape([n, 1, h, w]);
    let classes = Tensor::<B, 3, Int>::from_primitive(classes).reshape([n, 1, h, w]);
    let one_hot = Tensor::<B, 4>::zeros([n, c, h, w], &logits.device()).scatter(1, classes, dy.ones_like(), IndexingUpdateOp::Add);
    ((one_hot - softmax(logits, 1)) * dy).into_primitive().tensor()
}
