//! Semantic-segmentation metrics from a pixel confusion matrix accumulated over a
//! whole split (per-class IoU over the split, not averaged per image).
//! Labels: 0 = unlabelled, 1..=N = classes. Pixels whose ground truth is 0 are
//! ignored; a prediction of 0 on a labelled pixel is simply wrong.

use super::square_counts::SquareCounts;

/// `counts[gt][pred]` over labels `0..=num_classes`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "SquareCounts")]
pub struct ConfusionMatrix {
    num_classes: usize,
    counts: Vec<u64>,
}

impl TryFrom<SquareCounts> for ConfusionMatrix {
    type Error = String;
    fn try_from(wire: SquareCounts) -> Result<Self, String> {
        let (num_classes, counts) = wire.checked(1)?;
        Ok(Self { num_classes, counts })
    }
}

impl ConfusionMatrix {
    pub fn new(num_classes: usize) -> Self {
        let side = num_classes + 1;
        Self { num_classes, counts: vec![0; side * side] }
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Pixels with ground truth `gt` predicted as `pred` (labels, 0 = unlabelled).
    pub fn count(&self, gt: usize, pred: usize) -> u64 {
        self.counts[gt * (self.num_classes + 1) + pred]
    }

    /// Adds one image. Panics if the lengths differ or a label exceeds `num_classes`
    /// (the mask readers validate files; this catches programming errors).
    pub fn accumulate(&mut self, gt: &[u8], pred: &[u8]) {
        assert_eq!(gt.len(), pred.len(), "ground truth and prediction differ in size");
        let side = self.num_classes + 1;
        for (&g, &p) in gt.iter().zip(pred) {
            let (g, p) = (g as usize, p as usize);
            assert!(g < side && p < side, "label {} above {} classes", g.max(p), self.num_classes);
            self.counts[g * side + p] += 1;
        }
    }

    /// Adds another matrix (e.g. from another thread). Panics on a class-count mismatch.
    pub fn merge(&mut self, other: &Self) {
        assert_eq!(self.num_classes, other.num_classes, "merging confusion matrices of different sizes");
        self.counts.iter_mut().zip(&other.counts).for_each(|(a, b)| *a += b);
    }

    /// IoU of classes 1..=N (index 0 is class 1): `None` when the class is in
    /// neither the labelled ground truth nor the predictions on labelled pixels.
    /// A class predicted but never in the ground truth has IoU 0 and counts in the mean.
    pub fn per_class_iou(&self) -> Vec<Option<f64>> {
        (1..=self.num_classes)
            .map(|c| {
                let intersection = self.count(c, c);
                let union = self.gt_pixels(c) + self.predicted_pixels(c) - intersection;
                (union > 0).then(|| intersection as f64 / union as f64)
            })
            .collect()
    }

    /// Recall of classes 1..=N: `None` when the class has no ground-truth pixels.
    pub fn per_class_accuracy(&self) -> Vec<Option<f64>> {
        (1..=self.num_classes)
            .map(|c| {
                let total = self.gt_pixels(c);
                (total > 0).then(|| self.count(c, c) as f64 / total as f64)
            })
            .collect()
    }

    /// The counts as rows (ground-truth labels `0..=N`), for JSON.
    pub fn rows(&self) -> Vec<Vec<u64>> {
        self.counts.chunks(self.num_classes + 1).map(<[u64]>::to_vec).collect()
    }

    /// Row `gt` (a label, 0 = unlabelled) divided by its total: where that
    /// class's pixels went. All zeros for a class absent from the ground truth.
    pub fn row_normalised(&self, gt: usize) -> Vec<f64> {
        let side = self.num_classes + 1;
        let row = &self.counts[gt * side..(gt + 1) * side];
        let total: u64 = row.iter().sum();
        row.iter().map(|&c| if total == 0 { 0.0 } else { c as f64 / total as f64 }).collect()
    }

    /// The `k` largest off-diagonal cells among labelled pixels, as
    /// `(gt label, predicted label, share of the gt class's pixels)`, largest share first.
    pub fn top_confusions(&self, k: usize) -> Vec<(usize, usize, f64)> {
        let mut cells: Vec<(usize, usize, f64)> = (1..=self.num_classes)
            .flat_map(|gt| {
                let row = self.row_normalised(gt);
                row.into_iter().enumerate().filter(move |&(p, share)| p != gt && share > 0.0).map(move |(p, share)| (gt, p, share))
            })
            .collect();
        cells.sort_by(|a, b| b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
        cells.truncate(k);
        cells
    }

    /// Mean IoU over classes with a non-empty union; `None` if there are none.
    pub fn miou(&self) -> Option<f64> {
        super::mean_of_defined(&self.per_class_iou())
    }

    /// Mean class accuracy over classes with ground-truth pixels.
    pub fn mean_accuracy(&self) -> Option<f64> {
        super::mean_of_defined(&self.per_class_accuracy())
    }

    /// Correct labelled pixels over all labelled pixels.
    pub fn pixel_accuracy(&self) -> Option<f64> {
        let correct: u64 = (1..=self.num_classes).map(|c| self.count(c, c)).sum();
        let labelled: u64 = (1..=self.num_classes).map(|c| self.gt_pixels(c)).sum();
        (labelled > 0).then(|| correct as f64 / labelled as f64)
    }

    /// Pixels whose ground truth is `c`, whatever was predicted (0 included).
    fn gt_pixels(&self, c: usize) -> u64 {
        (0..=self.num_classes).map(|p| self.count(c, p)).sum()
    }

    /// Labelled pixels predicted as `c`.
    fn predicted_pixels(&self, c: usize) -> u64 {
        (1..=self.num_classes).map(|g| self.count(g, c)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn hand_checked_four_by_four() {
        // 3 classes. Ground truth (0 = unlabelled):   Prediction:
        //   1 1 2 2                                   1 1 2 1
        //   1 1 2 2                                   1 3 2 2
        //   0 0 2 2                                   3 3 0 2
        //   0 0 1 1                                   2 2 1 0
        let gt = [1, 1, 2, 2, 1, 1, 2, 2, 0, 0, 2, 2, 0, 0, 1, 1];
        let pred = [1, 1, 2, 1, 1, 3, 2, 2, 3, 3, 0, 2, 2, 2, 1, 0];
        let mut m = ConfusionMatrix::new(3);
        m.accumulate(&gt, &pred);
        // The 4 unlabelled pixels (predicted 3, 3, 2, 2) are ignored.
        // Class 1: GT 6 pixels (4 top-left + 2 bottom-right); predicted 1 on 4 of them,
        //   3 once, 0 once. Predicted 1 on labelled pixels: those 4 + one GT-2 pixel = 5.
        //   IoU = 4 / (6 + 5 - 4) = 4/7; accuracy 4/6.
        // Class 2: GT 6; predicted 2 on 4 (rows 0-1: 3, row 2: 1), 1 once, 0 once.
        //   Predicted 2 on labelled pixels: 4. IoU = 4 / (6 + 4 - 4) = 4/6; accuracy 4/6.
        // Class 3: no GT; predicted on one labelled pixel: IoU 0 / 1 = 0, in the mean.
        assert_eq!((m.count(1, 1), m.count(1, 3), m.count(1, 0), m.count(2, 1)), (4, 1, 1, 1));
        let iou = m.per_class_iou();
        assert!(close(iou[0], 4.0 / 7.0) && close(iou[1], 4.0 / 6.0) && iou[2] == Some(0.0), "{iou:?}");
        assert!(close(m.miou(), (4.0 / 7.0 + 4.0 / 6.0 + 0.0) / 3.0));
        // Pixel accuracy: 8 correct of 12 labelled. Mean accuracy over classes 1, 2 only.
        assert!(close(m.pixel_accuracy(), 8.0 / 12.0));
        assert_eq!(m.per_class_accuracy()[2], None);
        assert!(close(m.mean_accuracy(), 4.0 / 6.0));
        // Rows normalised: class 1's pixels went 1/6 to unlabelled, 4/6 to 1, 1/6 to 3.
        assert_eq!(m.row_normalised(1), [1.0 / 6.0, 4.0 / 6.0, 0.0, 1.0 / 6.0]);
        assert_eq!(m.row_normalised(3), [0.0; 4]);
        // Four confusions of 1/6 each; ties by (gt, pred).
        let top = m.top_confusions(3);
        assert_eq!(top.iter().map(|&(g, p, _)| (g, p)).collect::<Vec<_>>(), [(1, 0), (1, 3), (2, 0)]);
        assert!(top.iter().all(|&(_, _, share)| share == 1.0 / 6.0));
    }

    #[test]
    fn classes_absent_from_both_are_left_out() {
        let mut m = ConfusionMatrix::new(4);
        m.accumulate(&[1, 1, 2, 0], &[1, 1, 2, 4]);
        // Class 4 is only predicted on an unlabelled pixel: still absent. Class 3 never appears.
        assert_eq!(m.per_class_iou(), vec![Some(1.0), Some(1.0), None, None]);
        assert_eq!((m.miou(), m.pixel_accuracy(), m.mean_accuracy()), (Some(1.0), Some(1.0), Some(1.0)));
    }

    #[test]
    fn accumulates_over_the_split_not_per_image() {
        // Image a: class 1 on 1 pixel, missed. Image b: class 1 on 3 pixels, all found.
        // Split IoU = 3 / 4 (per-image averaging would give (0 + 1) / 2).
        let mut a = ConfusionMatrix::new(1);
        a.accumulate(&[1], &[0]);
        let mut b = ConfusionMatrix::new(1);
        b.accumulate(&[1, 1, 1], &[1, 1, 1]);
        a.merge(&b);
        assert_eq!(a.miou(), Some(0.75));
        let mut whole = ConfusionMatrix::new(1);
        whole.accumulate(&[1, 1, 1, 1], &[0, 1, 1, 1]);
        assert_eq!(a, whole);
    }

    #[test]
    fn nothing_labelled_means_no_metric() {
        let mut m = ConfusionMatrix::new(2);
        m.accumulate(&[0, 0], &[1, 2]);
        assert_eq!((m.miou(), m.pixel_accuracy(), m.mean_accuracy()), (None, None, None));
    }
}
