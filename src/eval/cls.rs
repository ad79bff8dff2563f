//! Classification metrics over a split: top-1 and top-5 accuracy, per-class
//! accuracy (recall) and the confusion matrix `counts[true][predicted]`.
//! Top-k follows torchvision's reference scripts: a sample counts when its
//! class is among the k highest scores (ties broken by the lower class index).

use super::square_counts::SquareCounts;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "ClsWire")]
pub struct ClsMetrics {
    num_classes: usize,
    /// `counts[true * C + predicted]` of the top-1 prediction.
    counts: Vec<u64>,
    /// Samples whose class is among their five highest scores.
    top5_hits: u64,
}

/// [`ClsMetrics`] as received: checked by [`SquareCounts`], and no more top-5 hits than samples.
#[derive(serde::Deserialize)]
struct ClsWire {
    #[serde(flatten)]
    matrix: SquareCounts,
    top5_hits: u64,
}

impl TryFrom<ClsWire> for ClsMetrics {
    type Error = String;
    fn try_from(wire: ClsWire) -> Result<Self, String> {
        let (num_classes, counts) = wire.matrix.checked(0)?;
        let samples: u64 = counts.iter().sum();
        if wire.top5_hits > samples {
            return Err(format!("{} top-5 hits among {samples} samples", wire.top5_hits));
        }
        Ok(Self { num_classes, counts, top5_hits: wire.top5_hits })
    }
}

impl ClsMetrics {
    pub fn new(num_classes: usize) -> Self {
        Self { num_classes, counts: vec![0; num_classes * num_classes], top5_hits: 0 }
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Adds one sample: its class and its scores (any monotone form: logits or
    /// probabilities). Panics if the lengths or the class disagree with the
    /// class count (the readers validate files; this catches programming errors).
    pub fn add(&mut self, class: usize, scores: &[f32]) {
        assert_eq!(scores.len(), self.num_classes, "scores for {} classes, expected {}", scores.len(), self.num_classes);
        assert!(class < self.num_classes, "class {class} of {}", self.num_classes);
        let ranked = ranking(scores);
        self.counts[class * self.num_classes + ranked[0]] += 1;
        if ranked.iter().take(5).any(|&c| c == class) {
            self.top5_hits += 1;
        }
    }

    pub fn samples(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Samples of class `truth` predicted as `predicted`.
    pub fn count(&self, truth: usize, predicted: usize) -> u64 {
        self.counts[truth * self.num_classes + predicted]
    }

    /// Correct top-1 predictions over all samples; `None` without samples.
    pub fn top1(&self) -> Option<f64> {
        let correct: u64 = (0..self.num_classes).map(|c| self.count(c, c)).sum();
        self.rate(correct)
    }

    /// Samples whose class is among their five best scores, over all samples.
    pub fn top5(&self) -> Option<f64> {
        self.rate(self.top5_hits)
    }

    /// Recall per class: `None` for a class without samples.
    pub fn per_class_accuracy(&self) -> Vec<Option<f64>> {
        (0..self.num_classes)
            .map(|c| {
                let total: u64 = self.row(c).iter().sum();
                (total > 0).then(|| self.count(c, c) as f64 / total as f64)
            })
            .collect()
    }

    /// The matrix as rows (true classes), for JSON and the confusion view.
    pub fn rows(&self) -> Vec<Vec<u64>> {
        (0..self.num_classes).map(|c| self.row(c).to_vec()).collect()
    }

    fn row(&self, truth: usize) -> &[u64] {
        &self.counts[truth * self.num_classes..(truth + 1) * self.num_classes]
    }

    fn rate(&self, hits: u64) -> Option<f64> {
        let n = self.samples();
        (n > 0).then(|| hits as f64 / n as f64)
    }
}

/// Class indices by descending score, ties by ascending index (a stable sort).
pub fn ranking(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order
}

/// Whether the top-1 class of `scores` is `truth`.
pub fn is_right(scores: &[f32], truth: usize) -> bool {
    ranking(scores).first() == Some(&truth)
}

/// The `k` likeliest classes, named, with their scores, best first (none for no scores).
pub fn top_classes<'a>(scores: &[f32], names: &'a [String], k: usize) -> Vec<(&'a str, f32)> {
    ranking(scores).into_iter().take(k).map(|class| (names[class].as_str(), scores[class])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top1_top5_per_class_and_confusion_count_as_by_hand() {
        let mut m = ClsMetrics::new(7);
        // Class 0, right; class 1, predicted 2 but second best; class 1, class ranked 6th.
        m.add(0, &[0.9, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0]);
        m.add(1, &[0.0, 0.5, 0.6, 0.0, 0.0, 0.0, 0.0]);
        m.add(1, &[0.6, 0.1, 0.5, 0.4, 0.3, 0.2, 0.7]);
        // A tie between classes 3 and 4: the lower index wins.
        m.add(4, &[0.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.0]);
        assert_eq!(m.samples(), 4);
        assert_eq!(m.top1(), Some(0.25));
        assert_eq!(m.top5(), Some(0.75));
        assert_eq!(m.count(1, 2), 1);
        assert_eq!(m.count(1, 6), 1);
        assert_eq!(m.count(4, 3), 1);
        let per_class = m.per_class_accuracy();
        assert_eq!(&per_class[..3], &[Some(1.0), Some(0.0), None]);
        assert_eq!(m.rows()[1], vec![0, 0, 1, 0, 0, 0, 1]);
        assert_eq!(ClsMetrics::new(3).top1(), None);
    }
}
