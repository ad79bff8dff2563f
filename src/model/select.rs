//! The entries of a parameter that pruning keeps: what every prunable layer
//! (convolutions, GroupNorm's affine terms) does to its parameters.

use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

/// `param` with only the entries `keep` along `dim`.
pub fn select<B: Backend, const D: usize>(param: &Param<Tensor<B, D>>, dim: usize, keep: &[usize]) -> Param<Tensor<B, D>> {
    let value = param.val();
    let indices = Tensor::<B, 1, Int>::from_data(TensorData::new(keep.iter().map(|&i| i as i64).collect(), [keep.len()]), &value.device());
    // Detached: a parameter must be a leaf of the autodiff graph.
    Param::from_tensor(value.select(dim, indices).detach())
}
