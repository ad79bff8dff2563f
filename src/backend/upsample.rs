//! Nearest-neighbour 2× upsampling in burn's tensor ops (what every backend
//! without a kernel of its own runs): a broadcast over inserted axes, and its
//! gradient as the sum over them. Differentiable-by-construction on every
//! backend (burn-cuda's `interpolate` has no backward).

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::Tensor;

use super::group_norm::tensor;

pub fn forward_primitive<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let x: Tensor<B, 4> = tensor(x);
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h, 1, w, 1]).expand([n, c, h, 2, w, 2]).reshape([n, c, h * 2, w * 2]).into_primitive().tensor()
}

pub fn backward_primitive<B: Backend>(output_grad: FloatTensor<B>) -> FloatTensor<B> {
    let dy: Tensor<B, 4> = tensor(output_grad);
    let [n, c, h2, w2] = dy.dims();
    let (h, w) = (h2 / 2, w2 / 2);
    dy.reshape([n, c, h, 2, w, 2]).sum_dim(3).sum_dim(5).reshape([n, c, h, w]).into_primitive().tensor()
}
