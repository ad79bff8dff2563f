//! Multiply-accumulates counted as the convolutions run: every convolution of
//! the network goes through `blocks::conv_forward`, which reports its output
//! size × the taps per output. Only the thread running [`count`]'s closure
//! counts: a rayon worker, where the CPU backend runs a forward pass too
//! (`TwinBackend::twin_run`; from any other thread it would move there).

use std::cell::Cell;

thread_local! {
    static COUNTER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Runs `f` and returns its result with the multiply-accumulates its
/// convolutions performed (the rest of the network, element-wise work and
/// the segmentation head's bilinear upsampling, is not counted).
pub fn count<R: Send>(f: impl FnOnce() -> R + Send) -> (R, usize) {
    rayon::scope(|_| {
        let outer = COUNTER.replace(Some(0));
        let result = f();
        let counted = COUNTER.replace(outer).unwrap_or(0);
        (result, counted)
    })
}

/// Adds `macs` to the count in progress on this thread, if any.
pub fn add(macs: usize) {
    COUNTER.with(|c| {
        if let Some(total) = c.get() {
            c.set(Some(total + macs));
        }
    });
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::PaddingConfig2d;
    use burn::tensor::Tensor;

    use super::count;
    use crate::backend::TwinBackend;
    use crate::model::blocks::conv_forward;

    /// A 3×3 convolution from 2 to 3 channels over 5×5 pixels: 75 outputs of
    /// 18 taps, counted though the backend runs the pass on a pool thread.
    #[test]
    fn counts_a_convolution_run_on_the_backends_thread() {
        let device = Default::default();
        let conv = Conv2dConfig::new([2, 3], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init::<Flex>(&device);
        let x = Tensor::<Flex, 4>::ones([1, 2, 5, 5], &device);
        let (y, macs) = count(|| Flex::twin_run(|| conv_forward(&conv, x)));
        assert_eq!(y.dims(), [1, 3, 5, 5]);
        assert_eq!(macs, 75 * 18);
        assert_eq!(count(|| ()).1, 0);
    }
}
