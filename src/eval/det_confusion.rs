//! The detection confusion matrix: which class each confident detection was
//! given against the class of the object it found, plus a background row for
//! detections that found nothing (false positives) and a background column for
//! objects nobody found (misses). Rows are ground truth, as in the pixel matrix.
//!
//! Per image, detections scoring at least the threshold are paired one to one
//! with objects of ANY class at IoU >= 0.5, greedily by descending IoU (the
//! rule Ultralytics' and mmdetection's confusion matrices use), so a dog
//! detected as a cat lands in row dog, column cat. A pairing with a difficult
//! object counts nowhere, and an unpaired difficult object is not a miss.

use std::collections::HashMap;

use super::det::{check_classes, Detection, GroundTruth};
use super::square_counts::SquareCounts;
use super::voc_ap::{voc_iou, VOC_IOU_THRESHOLD};

/// Detections below this score are not counted (the display threshold).
pub const CONFUSION_SCORE_THRESHOLD: f32 = 0.25;

/// `counts[gt][pred]` over classes `0..N`, index `N` being the background.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "SquareCounts")]
pub struct DetConfusion {
    num_classes: usize,
    counts: Vec<u64>,
}

impl TryFrom<SquareCounts> for DetConfusion {
    type Error = String;
    fn try_from(wire: SquareCounts) -> Result<Self, String> {
        let (num_classes, counts) = wire.checked(1)?;
        Ok(Self { num_classes, counts })
    }
}

impl DetConfusion {
    /// Counts `dets` (those scoring at least `score_threshold`) against `gts`.
    pub fn new(gts: &[GroundTruth], dets: &[Detection], num_classes: usize, score_threshold: f32) -> Self {
        check_classes(gts, dets, num_classes);
        let side = num_classes + 1;
        let mut matrix = Self { num_classes, counts: vec![0; side * side] };
        let mut per_image: HashMap<usize, (Vec<&GroundTruth>, Vec<&Detection>)> = HashMap::new();
        for g in gts {
            per_image.entry(g.image).or_default().0.push(g);
        }
        for d in dets.iter().filter(|d| d.score >= score_threshold) {
            per_image.entry(d.image).or_default().1.push(d);
        }
        for (image_gts, image_dets) in per_image.values() {
            matrix.add_image(image_gts, image_dets);
        }
        matrix
    }

    fn add_image(&mut self, gts: &[&GroundTruth], dets: &[&Detection]) {
        let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
        for (gi, g) in gts.iter().enumerate() {
            for (di, d) in dets.iter().enumerate() {
                if let Some(iou) = voc_iou(&d.bbox, &g.bbox).filter(|&iou| iou >= VOC_IOU_THRESHOLD) {
                    pairs.push((iou, gi, di));
                }
            }
        }
        // Highest IoU first; ties in input order, so the result does not depend on hashing.
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
        let mut gt_paired = vec![false; gts.len()];
        let mut det_paired = vec![false; dets.len()];
        let background = self.num_classes;
        for (_, gi, di) in pairs {
            if gt_paired[gi] || det_paired[di] {
                continue;
            }
            gt_paired[gi] = true;
            det_paired[di] = true;
            if !gts[gi].difficult {
                self.add(gts[gi].class, dets[di].class);
            }
        }
        for (g, _) in gts.iter().zip(&gt_paired).filter(|(g, paired)| !**paired && !g.difficult) {
            self.add(g.class, background);
        }
        for (d, _) in dets.iter().zip(&det_paired).filter(|(_, paired)| !**paired) {
            self.add(background, d.class);
        }
    }

    fn add(&mut self, gt: usize, pred: usize) {
        self.counts[gt * (self.num_classes + 1) + pred] += 1;
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Objects of class `gt` (N = background: false positives) given class
    /// `pred` (N = background: missed).
    pub fn count(&self, gt: usize, pred: usize) -> u64 {
        self.counts[gt * (self.num_classes + 1) + pred]
    }

    /// The rows, `[N + 1][N + 1]`, for JSON and drawing.
    pub fn rows(&self) -> Vec<Vec<u64>> {
        self.counts.chunks(self.num_classes + 1).map(<[u64]>::to_vec).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [f32; 4] = [1.0, 1.0, 10.0, 10.0];
    const B: [f32; 4] = [21.0, 21.0, 40.0, 30.0];

    fn gt(image: usize, class: usize, bbox: [f32; 4], difficult: bool) -> GroundTruth {
        GroundTruth { image, class, bbox, difficult }
    }

    fn det(image: usize, class: usize, bbox: [f32; 4], score: f32) -> Detection {
        Detection { image, class, bbox, score }
    }

    #[test]
    fn counts_as_by_hand() {
        // Classes 0 and 1, background 2.
        let gts = [
            gt(0, 0, A, false), // found as 0: (0, 0)
            gt(0, 1, B, false), // found as 0, a confusion: (1, 0)
            gt(1, 0, A, false), // missed: (0, bg)
            gt(2, 1, A, true),  // difficult, found: counted nowhere
            gt(3, 1, B, true),  // difficult, missed: not a miss
        ];
        let dets = [
            det(0, 0, A, 0.9),
            det(0, 0, B, 0.8),
            det(0, 1, [1.0, 1.0, 11.0, 10.0], 0.7), // second on A, A taken: FP (bg, 1)
            det(1, 1, B, 0.9),                      // nothing there: FP (bg, 1)
            det(1, 0, A, 0.2),                      // below the threshold: not counted
            det(2, 1, A, 0.9),
        ];
        let m = DetConfusion::new(&gts, &dets, 2, CONFUSION_SCORE_THRESHOLD);
        assert_eq!(m.rows(), vec![vec![1, 0, 1], vec![1, 0, 0], vec![0, 2, 0]]);
        // 3 objects and 4 counted detections (the one on a difficult object is not),
        // 2 of them paired, each pair in one cell: 3 + 4 - 2 cells' worth.
        let total: u64 = m.rows().iter().flatten().sum();
        assert_eq!(total, 3 + 4 - 2);
    }

    #[test]
    fn the_best_overlap_wins_the_object() {
        // Two detections on one object: the better overlapping one takes it, even
        // scoring lower; the other is a false positive.
        let gts = [gt(0, 0, A, false)];
        let dets = [det(0, 1, [1.0, 1.0, 14.0, 10.0], 0.9), det(0, 0, A, 0.5)];
        let m = DetConfusion::new(&gts, &dets, 2, 0.0);
        assert_eq!(m.count(0, 0), 1);
        assert_eq!(m.count(2, 1), 1);
        assert_eq!(m.count(0, 1), 0);
    }
}
