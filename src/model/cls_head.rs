//! Classification head (the CVPR23 Track1 baseline's): the stride-32 backbone
//! features after SPPF, averaged over the image, then a hidden fully connected
//! layer with SiLU and a linear classifier. It reads the backbone only, so a
//! classification step skips the neck and the other heads.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

#[derive(Module, Debug)]
pub struct ClsHead<B: Backend> {
    pub(crate) hidden: Linear<B>,
    pub(crate) classifier: Linear<B>,
}

impl<B: Backend> ClsHead<B> {
    /// `features` channels in; the hidden layer is half as wide (Track1: 768 → 384 → classes).
    pub fn new(features: usize, num_classes: usize, device: &B::Device) -> Self {
        let hidden = (features / 2).max(8);
        Self {
            hidden: LinearConfig::new(features, hidden).init(device),
            classifier: LinearConfig::new(hidden, num_classes).init(device),
        }
    }

    /// Class logits [N, classes] from the stride-32 features [N, C, H, W].
    pub fn forward(&self, c5: Tensor<B, 4>) -> Tensor<B, 2> {
        let [n, c, _, _] = c5.dims();
        let pooled = c5.mean_dim(3).mean_dim(2).reshape([n, c]);
        self.classifier.forward(silu(self.hidden.forward(pooled)))
    }

    pub fn num_classes(&self) -> usize {
        self.classifier.weight.dims()[1]
    }
}
