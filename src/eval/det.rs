//! Detection-evaluation inputs as plain data, without file I/O, so the trainer can
//! score its own predictions in memory; the metrics live in `voc_ap` and `coco`.

use std::collections::HashMap;

use crate::data::voc::{VocBox, VocRecord};

/// One ground-truth object. `image` is any per-image key (the CLI uses the record's
/// position in the split); `bbox` is in VOC pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroundTruth {
    pub image: usize,
    pub class: usize,
    pub bbox: VocBox,
    pub difficult: bool,
}

/// One scored detection, keyed like [`GroundTruth`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub image: usize,
    pub class: usize,
    pub bbox: VocBox,
    pub score: f32,
}

/// Per-class AP. `None` marks a class with no non-difficult ground truth: its AP is
/// undefined (recall divides by zero), so it is left out of the mean, as pycocotools does.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassAp {
    pub per_class: Vec<Option<f64>>,
}

impl ClassAp {
    /// Mean over the classes that have an AP; `None` when no class has one.
    pub fn mean(&self) -> Option<f64> {
        super::mean_of_defined(&self.per_class)
    }

    /// The classes left out of the mean.
    pub fn left_out(&self) -> Vec<usize> {
        self.per_class.iter().enumerate().filter(|(_, ap)| ap.is_none()).map(|(c, _)| c).collect()
    }
}

/// The ground truth of a VOC split; `image` is the record's index in `records`.
pub fn ground_truth_from_voc(records: &[VocRecord]) -> Vec<GroundTruth> {
    records
        .iter()
        .enumerate()
        .flat_map(|(image, r)| {
            r.annotation.objects.iter().map(move |o| GroundTruth {
                image,
                class: o.class,
                bbox: o.bbox,
                difficult: o.difficult,
            })
        })
        .collect()
}

/// Ground-truth indices grouped by `(class, image)`, in input order: a detection
/// is only ever compared with the objects of its own class in its own image.
pub(crate) fn group_by_class_and_image(gts: &[GroundTruth]) -> HashMap<(usize, usize), Vec<usize>> {
    let mut groups: HashMap<(usize, usize), Vec<usize>> = HashMap::new();
    for (i, g) in gts.iter().enumerate() {
        groups.entry((g.class, g.image)).or_default().push(i);
    }
    groups
}

/// Number of non-difficult objects of each class (the positives recall divides by).
pub(crate) fn positives_per_class(gts: &[GroundTruth], num_classes: usize) -> Vec<usize> {
    let mut npos = vec![0; num_classes];
    for g in gts.iter().filter(|g| !g.difficult) {
        npos[g.class] += 1;
    }
    npos
}

/// Panics with a clear message when an input names a class outside `0..num_classes`;
/// the readers validate user input, so this only catches programming errors.
pub(crate) fn check_classes(gts: &[GroundTruth], dets: &[Detection], num_classes: usize) {
    let max = gts.iter().map(|g| g.class).chain(dets.iter().map(|d| d.class)).max();
    if let Some(max) = max {
        assert!(max < num_classes, "class {max} is out of range for {num_classes} classes");
    }
}

/// Single-class ground truth and detections for the metric tests.
#[cfg(test)]
pub(crate) mod test_cases {
    use super::{Detection, GroundTruth};
    use crate::data::voc::VocBox;

    pub fn gt(image: usize, bbox: VocBox, difficult: bool) -> GroundTruth {
        GroundTruth { image, class: 0, bbox, difficult }
    }

    pub fn det(image: usize, bbox: VocBox, score: f32) -> Detection {
        Detection { image, class: 0, bbox, score }
    }
}
