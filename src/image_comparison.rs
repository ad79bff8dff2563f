//! Two checkpoints on the same validation images, image by image: each
//! image's score under each (the AP50 of its boxes, the mean IoU of its
//! pixels, whether its class is right, from `eval::image_score`) and the
//! difference, sorted so that the images where the first beats the second
//! most come first. Comparing a sequential run's `switch` checkpoint with its
//! `last` shows forgetting on the pictures: the first task's images whose
//! predictions were lost come first. `twinhead runs compare-images` prints
//! and writes it.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use image::RgbImage;
use rayon::prelude::*;

use crate::data::batch::decode_rgb;
use crate::eval::cls::is_right;
use crate::export::csv::csv_field;
use crate::eval::image_score::{det_image_score, seg_image_score};
use crate::eval::{ground_truth_from_voc, CONFUSION_SCORE_THRESHOLD};
use crate::model::postprocess::PostprocessConfig;
use crate::model::Task;
use crate::predictor::{Prediction, Predictor};
use crate::train::evaluate::ValidationSplits;

/// Images decoded and predicted at a time (memory stays bounded on a full split).
const CHUNK: usize = 16;

/// One image's scores under the two checkpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRow {
    pub task: Task,
    pub id: String,
    pub image: PathBuf,
    /// Detection: AP50 (`None`: no object that counts); segmentation: mean
    /// IoU; classification: 1 when the top class is right, else 0.
    pub a: Option<f64>,
    pub b: Option<f64>,
    /// What lies behind each score, for people: `3 matched, 1 missed, 0 false`.
    pub a_detail: String,
    pub b_detail: String,
}

impl ImageRow {
    /// `a − b`, when both have a score.
    pub fn difference(&self) -> Option<f64> {
        Some(self.a? - self.b?)
    }
}

/// Every image of the validation `splits` (the first `limit` of each),
/// scored under checkpoints `a` and `b` with `postprocess`; both must have the
/// datasets' classes. `progress(done, total)` hears each chunk; `Break` stops with an error.
pub fn compare(
    (a, b): (&Predictor, &Predictor),
    splits: &ValidationSplits,
    postprocess: &PostprocessConfig,
    limit: usize,
    progress: &mut dyn FnMut(usize, usize) -> ControlFlow<()>,
) -> Result<(Vec<ImageRow>, Vec<crate::data::Problem>)> {
    for (which, predictor) in [("first", a), ("second", b)] {
        if let Some((task, head, dataset)) = splits.class_mismatch(|task| predictor.classes(task).len()) {
            bail!("the {which} checkpoint's {task} head has {head} classes, the validation dataset {dataset}: compare checkpoints trained on the same datasets");
        }
    }
    let det = splits.det().map(|d| &d.records[..d.records.len().min(limit)]).unwrap_or_default();
    let seg = splits.seg().map(|d| &d.records[..d.records.len().min(limit)]).unwrap_or_default();
    let cls = splits.cls().map(|d| &d.records[..d.records.len().min(limit)]).unwrap_or_default();
    let (total, mut done) = (det.len() + seg.len() + cls.len(), 0);
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    let mut report = |done: usize| match progress(done, total) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => bail!("cancelled"),
    };
    let num_det = a.classes(Task::Det).len();
    for chunk in det.chunks(CHUNK) {
        let (records, images) = decoded(chunk, |r| &r.image_path, &mut skipped);
        let (pa, pb) = (a.predict_images(&images, postprocess), b.predict_images(&images, postprocess));
        for ((record, pa), pb) in records.into_iter().zip(pa).zip(pb) {
            let truth = ground_truth_from_voc(std::slice::from_ref(record));
            let score = |p: &Prediction| {
                let dets: Vec<_> = p.detections.iter().map(|d| d.to_eval(0)).collect();
                det_image_score(&truth, &dets, num_det, CONFUSION_SCORE_THRESHOLD)
            };
            let (sa, sb) = (score(&pa), score(&pb));
            let detail = |s: &crate::eval::image_score::DetImageScore| format!("{} matched, {} missed, {} false", s.matched, s.missed, s.false_positives);
            rows.push(ImageRow { task: Task::Det, id: record.id.clone(), image: record.image_path.clone(), a: sa.ap50, b: sb.ap50, a_detail: detail(&sa), b_detail: detail(&sb) });
        }
        done += chunk.len();
        report(done)?;
    }
    let num_seg = a.classes(Task::Seg).len();
    for chunk in seg.chunks(CHUNK) {
        let read: Vec<_> = chunk.par_iter().map(|r| Ok((r, decode_rgb(&r.image_path)?, r.read_mask(num_seg)?))).collect();
        let read: Vec<_> = read.into_iter().filter_map(|item: Result<_, crate::data::Problem>| item.map_err(|p| skipped.push(p)).ok()).collect();
        let images: Vec<RgbImage> = read.iter().map(|(_, image, _)| image.clone()).collect();
        let (pa, pb) = (a.predict_images(&images, postprocess), b.predict_images(&images, postprocess));
        for (((record, _, truth), pa), pb) in read.into_iter().zip(pa).zip(pb) {
            let score = |p: &Prediction| p.mask.as_ref().filter(|m| m.dimensions() == truth.dimensions()).map(|m| seg_image_score(truth.as_raw(), m.as_raw(), num_seg));
            let (sa, sb) = (score(&pa), score(&pb));
            let detail = |s: Option<crate::eval::image_score::SegImageScore>| match s.and_then(|s| s.pixel_accuracy) {
                Some(accuracy) => format!("pixel accuracy {accuracy:.3}"),
                None => "no labelled pixel".to_string(),
            };
            rows.push(ImageRow {
                task: Task::Seg,
                id: record.id.clone(),
                image: record.image_path.clone(),
                a: sa.and_then(|s| s.miou),
                b: sb.and_then(|s| s.miou),
                a_detail: detail(sa),
                b_detail: detail(sb),
            });
        }
        done += chunk.len();
        report(done)?;
    }
    for chunk in cls.chunks(CHUNK) {
        let (records, images) = decoded(chunk, |r| &r.image_path, &mut skipped);
        let (pa, pb) = (a.classify_images(&images)?, b.classify_images(&images)?);
        for ((record, pa), pb) in records.into_iter().zip(pa).zip(pb) {
            let right = |p: &[f32]| if is_right(p, record.class) { 1.0 } else { 0.0 };
            let detail = |p: &[f32]| if is_right(p, record.class) { "right".to_string() } else { "wrong".to_string() };
            rows.push(ImageRow { task: Task::Cls, id: record.id.clone(), image: record.image_path.clone(), a: Some(right(&pa)), b: Some(right(&pb)), a_detail: detail(&pa), b_detail: detail(&pb) });
        }
        done += chunk.len();
        report(done)?;
    }
    Ok((rows, skipped))
}

/// The records of `chunk` whose image decodes, with their images (the others are named in `skipped`).
fn decoded<'r, R: Sync>(chunk: &'r [R], path: fn(&R) -> &PathBuf, skipped: &mut Vec<crate::data::Problem>) -> (Vec<&'r R>, Vec<RgbImage>) {
    let read: Vec<_> = chunk.par_iter().map(|r| decode_rgb(path(r)).map(|image| (r, image))).collect();
    read.into_iter().filter_map(|item| item.map_err(|p| skipped.push(p)).ok()).unzip()
}

/// Where the first checkpoint beats the second most first, per task; rows
/// without both scores last.
pub fn sort_by_difference(rows: &mut [ImageRow]) {
    rows.sort_by(|x, y| {
        (x.task as usize).cmp(&(y.task as usize)).then_with(|| match (x.difference(), y.difference()) {
            (Some(dx), Some(dy)) => dy.total_cmp(&dx).then_with(|| x.id.cmp(&y.id)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => x.id.cmp(&y.id),
        })
    });
}

/// Writes `rows` as CSV: task, id, image, a, b, difference, a_detail, b_detail.
pub fn write_csv(rows: &[ImageRow], path: &Path) -> Result<()> {
    let number = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
    let mut text = String::from("task,id,image,a,b,difference,a_detail,b_detail\n");
    for row in rows {
        let fields = [
            row.task.key().to_string(),
            csv_field(&row.id),
            csv_field(&row.image.to_string_lossy()),
            number(row.a),
            number(row.b),
            number(row.difference()),
            csv_field(&row.a_detail),
            csv_field(&row.b_detail),
        ];
        text += &(fields.join(",") + "\n");
    }
    std::fs::write(path, text).with_context(|| format!("{}: cannot write", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(task: Task, id: &str, a: Option<f64>, b: Option<f64>) -> ImageRow {
        ImageRow { task, id: id.into(), image: PathBuf::from(format!("{id}.jpg")), a, b, a_detail: String::new(), b_detail: String::new() }
    }

    #[test]
    fn rows_sort_by_how_much_the_first_beats_the_second() {
        let mut rows = vec![
            row(Task::Seg, "s1", Some(0.5), Some(0.6)),
            row(Task::Det, "d1", Some(0.2), Some(0.9)),
            row(Task::Det, "d2", None, Some(0.3)),
            row(Task::Det, "d3", Some(1.0), Some(0.1)),
            row(Task::Det, "d4", Some(0.5), Some(0.5)),
        ];
        sort_by_difference(&mut rows);
        let order: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(order, ["d3", "d4", "d1", "d2", "s1"]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("images.csv");
        write_csv(&rows, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("task,id,image,a,b,difference,a_detail,b_detail\ndet,d3,d3.jpg,1.000000,0.100000,0.900000,,\n"), "{text}");
    }
}
