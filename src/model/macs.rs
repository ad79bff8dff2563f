//! Work counted as the convolutions run: every convolution of the network goes
//! through `blocks::conv_forward`, which reports its multiply-accumulates
//! (output size × the taps per output) and its output size. Only the thread
//! running [`count`]'s closure counts: a rayon worker, where the CPU backend
//! runs a forward pass too (`TwinBackend::twin_run`; from any other thread it
//! would move there).

use std::cell::Cell;

/// What a forward pass's convolutions did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    pub macs: usize,
    /// Output values of every convolution (each is followed by a normalisation
    /// and an activation, whose outputs are as many again).
    pub outputs: usize,
}

thread_local! {
    static COUNTER: Cell<Option<Work>> = const { Cell::new(None) };
}

/// Runs `f` and returns its result with the work its convolutions performed
/// (the rest of the network, element-wise work and the segmentation head's
/// bilinear upsampling, is not counted).
pub fn count<R: Send>(f: impl FnOnce() -> R + Send) -> (R, Work) {
    rayon::scope(|_| {
        let outer = COUNTER.replace(Some(Work::default()));
        let result = f();
        let counted = COUNTER.replace(outer).unwrap_or_default();
        (result, counted)
    })
}

/// Adds one convolution's work to the count in progress on this thread, if any.
pub fn add(macs: usize, outputs: usize) {
    COUNTER.with(|c| {
        if let Some(work) = c.get() {
            c.set(Some(Work { macs: work.macs + macs, outputs: work.outputs + outputs }));
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
        let (y, work) = count(|| Flex::twin_run(|| conv_forward(&conv, x)));
        assert_eq!(y.dims(), [1, 3, 5, 5]);
        assert_eq!(work, super::Work { macs: 75 * 18, outputs: 75 });
        assert_eq!(count(|| ()).1, super::Work::default());
    }
}
