//! What a backbone gives the neck and the heads: four feature maps, finest
//! first, and their channel counts (the CSP backbone and the ResNets alike).

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// Backbone features, finest first.
pub struct Features<B: Backend> {
    pub c2: Tensor<B, 4>,
    pub c3: Tensor<B, 4>,
    pub c4: Tensor<B, 4>,
    pub c5: Tensor<B, 4>,
}

/// Channel counts of [`Features`].
#[derive(Debug, Clone, Copy)]
pub struct FeatureChannels {
    pub c2: usize,
    pub c3: usize,
    pub c4: usize,
    pub c5: usize,
}
