//! Each GroupNorm's statistics averaged over a set of images, recorded as
//! forward passes run: per group, the mean and the variance GroupNorm divides
//! by, averaged over the images. A BatchNorm with these as its running
//! statistics normalises an average image as the GroupNorm does, which is how
//! [`yolov8::export`](super::yolov8::export) writes our layers in a BatchNorm
//! layout. Only the thread running [`record`]'s closure records (a rayon
//! worker, where the CPU backend runs forward passes: see
//! [`macs`](super::macs), which counts work the same way).

use std::cell::RefCell;
use std::collections::HashMap;

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;


/// One GroupNorm's statistics, per group, averaged over the images seen.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupStatistics {
    pub mean: Vec<f64>,
    pub variance: Vec<f64>,
    pub images: usize,
}

/// Sums over images, per layer (the GroupNorm's address while the network is alive).
type Sums = HashMap<usize, GroupStatistics>;

thread_local! {
    static RECORDING: RefCell<Option<Sums>> = const { RefCell::new(None) };
}

/// Runs `f` and returns, for each GroupNorm its forward passes went through,
/// the averaged statistics, keyed by [`key`]. The network must not move
/// between `f` and the look-ups.
pub fn record<R: Send>(f: impl FnOnce() -> R + Send) -> (R, HashMap<usize, GroupStatistics>) {
    rayon::scope(|_| {
        let outer = RECORDING.replace(Some(Sums::new()));
        let result = f();
        let sums = RECORDING.replace(outer).unwrap_or_default();
        let averages = sums
            .into_iter()
            .map(|(key, mut sums)| {
                let images = sums.images as f64;
                sums.mean.iter_mut().chain(sums.variance.iter_mut()).for_each(|v| *v /= images);
                (key, sums)
            })
            .collect();
        (result, averages)
    })
}

/// Adds the statistics of `x` over `groups` channel groups, the input of the
/// layer `key` names, when this thread records.
pub(super) fn observe<B: Backend>(key: usize, groups: usize, x: &Tensor<B, 4>) {
    if RECORDING.with_borrow(Option::is_none) {
        return;
    }
    let [images, channels, height, width] = x.dims();
    let grouped = x.clone().detach().reshape([images, groups, channels / groups * height * width]);
    let mean = grouped.clone().mean_dim(2);
    let variance = (grouped - mean.clone()).powi_scalar(2).mean_dim(2);
    let values = |t: Tensor<B, 3>| -> Vec<f32> { t.into_data().convert::<f32>().into_vec().expect("f32 statistics") };
    let (mean, variance) = (values(mean), values(variance));
    RECORDING.with_borrow_mut(|recording| {
        let Some(sums) = recording else { return };
        let entry = sums.entry(key).or_insert_with(|| GroupStatistics {
            mean: vec![0.0; groups],
            variance: vec![0.0; groups],
            images: 0,
        });
        for (i, (m, v)) in mean.iter().zip(&variance).enumerate() {
            entry.mean[i % groups] += *m as f64;
            entry.variance[i % groups] += *v as f64;
        }
        entry.images += images;
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::norm::GroupNorm;
    use burn::backend::Flex;
    use burn::tensor::{Distribution, TensorData};

    #[test]
    fn averages_each_groups_mean_and_variance_over_images() {
        let device = Default::default();
        let norm = GroupNorm::<Flex>::new(2, 4, &device);
        // Image 0: group 0 all 1, group 1 alternating 0/2; image 1: group 0 all 3, group 1 all 5.
        let image0 = [[1.0; 4], [1.0; 4], [0.0, 2.0, 0.0, 2.0], [2.0, 0.0, 2.0, 0.0]];
        let image1 = [[3.0; 4], [3.0; 4], [5.0; 4], [5.0; 4]];
        let values: Vec<f32> = image0.iter().chain(&image1).flatten().copied().collect();
        let x = Tensor::<Flex, 4>::from_data(TensorData::new(values, [2, 4, 2, 2]), &device);
        let ((), statistics) = record(|| {
            norm.forward_silu(x.clone());
        });
        assert_eq!(statistics.len(), 1);
        let recorded = &statistics[&norm.statistics_key()];
        assert_eq!(recorded.images, 2);
        assert_eq!(recorded.mean, vec![2.0, 3.0]);
        assert_eq!(recorded.variance, vec![0.0, 0.5]);
        // A pass outside `record` is not recorded, and a record sees only its own passes.
        norm.forward_silu(Tensor::random([1, 4, 2, 2], Distribution::Default, &device));
        let ((), again) = record(|| ());
        assert!(again.is_empty());
    }
}
