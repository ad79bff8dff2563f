//! Multiply-accumulates counted as the convolutions run: every convolution of
//! the network goes through `blocks::conv_forward`, which reports its output
//! size × the taps per output. Only the thread that asked counts.

use std::cell::Cell;

thread_local! {
    static COUNTER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Runs `f` and returns its result with the multiply-accumulates its
/// convolutions performed (the rest of the network, element-wise work and
/// the segmentation head's bilinear upsampling, is not counted).
pub fn count<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let outer = COUNTER.replace(Some(0));
    let result = f();
    let counted = COUNTER.replace(outer).unwrap_or(0);
    (result, counted)
}

/// Adds `macs` to the count in progress on this thread, if any.
pub fn add(macs: usize) {
    COUNTER.with(|c| {
        if let Some(total) = c.get() {
            c.set(Some(total + macs));
        }
    });
}
