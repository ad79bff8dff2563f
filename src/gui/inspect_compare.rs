//! Inspect's comparison view: the inspected checkpoint (A) against another
//! run's or checkpoint (B) on the same validation images, image by image
//! (`image_comparison`): a table per task sorted by where A beats B most, or
//! B beats A most, exportable to CSV; a row opens the image with the truth
//! and both predictions side by side. A sequential run's `switch` against its
//! `last` checkpoint shows what it forgot, picture by picture.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use eframe::egui::{self, Vec2};
use image::{GrayImage, RgbImage};

use super::error_view::annotation_boxes;
use super::image_view::{ClassNames, Layers, OverlayOptions, TextureCache};
use super::inference::PredictorCache;
use super::job::Job;
use crate::backend::device::DeviceSpec;
use crate::data::batch::decode_rgb;
use crate::image_comparison::{compare, sort_by_difference, write_csv, ImageRow};
use crate::model::postprocess::Detection;
use crate::model::Task;
use crate::predictor::{Prediction, Predictor};
use crate::session::Notice;
use crate::train::checkpoint::CheckpointKind;
use crate::train::config::TrainConfig;
use crate::train::evaluate::ValidationSplits;

/// Images of each validation split compared (both checkpoints predict each).
pub const COMPARED_IMAGES: usize = 200;
const VIEW_HEIGHT: f32 = 300.0;

/// Which checkpoints are compared: `(run folder, checkpoint)` of A and B.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub a: (PathBuf, CheckpointKind),
    pub b: (PathBuf, CheckpointKind),
}

struct Compared {
    pair: Pair,
    rows: Vec<ImageRow>,
    skipped: usize,
    predictors: (Arc<Predictor>, Arc<Predictor>),
    splits: Arc<ValidationSplits>,
    postprocess: crate::model::postprocess::PostprocessConfig,
}

/// One image with its truth and both predictions.
struct Shown {
    row: usize,
    image: RgbImage,
    truth_boxes: Vec<Detection>,
    truth_mask: Option<GrayImage>,
    a: Prediction,
    b: Prediction,
}

#[derive(Default)]
pub struct CompareView {
    job: Option<Job<Compared>>,
    compared: Option<Compared>,
    error: Option<String>,
    pub task: Option<Task>,
    /// Where B beats A most first (else where A beats B most).
    pub b_first: bool,
    preview: Option<Job<Shown>>,
    shown: Option<Shown>,
    textures: TextureCache,
    options: OverlayOptions,
}

impl CompareView {
    /// The pair compared now, or being compared.
    pub fn pair(&self) -> Option<&Pair> {
        self.compared.as_ref().map(|c| &c.pair)
    }

    pub fn is_busy(&self) -> bool {
        self.job.is_some()
    }

    /// Compares `pair` on the validation images `config` names (A's run's).
    pub fn start(&mut self, pair: Pair, predictors: &PredictorCache, config: &TrainConfig, device: DeviceSpec, repaint: impl Fn() + Send + Sync + 'static) {
        if let Some(job) = self.job.take() {
            job.cancel();
        }
        (self.compared, self.error, self.shown, self.preview) = (None, None, None, None);
        self.textures.clear();
        let (predictors, config) = (predictors.clone(), config.clone());
        self.job = Some(Job::spawn("compare images", repaint, move |progress| {
            let a = predictors.load(&pair.a.0, &pair.a.1, device)?;
            let b = Arc::new(Predictor::load_on(&pair.b.0, &pair.b.1, device)?);
            // Opened once: compared, then kept for the truth of the image a row opens.
            let splits = Arc::new(ValidationSplits::open(&config.data)?);
            let postprocess = config.eval.postprocess();
            let (mut rows, skipped) = compare((&a, &b), &splits, &postprocess, COMPARED_IMAGES, &mut |done, total| {
                progress.set(done, total);
                if progress.is_cancelled() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
            })?;
            sort_by_difference(&mut rows);
            Ok(Compared { pair, rows, skipped: skipped.len(), predictors: (a, b), splits, postprocess })
        }));
    }

    fn poll(&mut self) {
        if let Some(result) = self.job.as_mut().and_then(Job::poll) {
            self.job = None;
            match result {
                Ok(compared) => {
                    self.task = self.task.filter(|t| compared.rows.iter().any(|r| r.task == *t)).or_else(|| compared.rows.first().map(|r| r.task));
                    self.compared = Some(compared);
                }
                Err(error) => self.error = Some(format!("{error:#}")),
            }
        }
        if let Some(result) = self.preview.as_mut().and_then(Job::poll) {
            self.preview = None;
            match result {
                Ok(shown) => {
                    self.textures.clear();
                    self.shown = Some(shown);
                }
                Err(error) => self.error = Some(format!("{error:#}")),
            }
        }
    }

    /// The rows of the chosen task, in the chosen order.
    pub fn ordered_rows(&self) -> Vec<usize> {
        let Some(compared) = &self.compared else { return Vec::new() };
        let mut rows: Vec<usize> = (0..compared.rows.len()).filter(|&i| Some(compared.rows[i].task) == self.task).collect();
        if self.b_first {
            // B's wins first, the images without both scores still last.
            let scored = rows.iter().take_while(|&&i| compared.rows[i].difference().is_some()).count();
            rows[..scored].reverse();
        }
        rows
    }

    /// Draws the view; returns a notice when a CSV was written.
    pub fn ui(&mut self, ui: &mut egui::Ui, exports: &Path, names: (&str, &str), classes: (ClassNames, &[String]), repaint: impl Fn() + Send + Sync + 'static) -> Option<Notice> {
        self.poll();
        if let Some(job) = &self.job {
            let (done, total) = job.progress;
            job.progress_row(ui, format!("Predicting the validation images with both checkpoints: {done}/{total}"), true);
        }
        if let Some(error) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        let compared = self.compared.as_ref()?;
        let mut notice = None;
        ui.horizontal(|ui| {
            for task in Task::ALL.into_iter().filter(|t| compared.rows.iter().any(|r| r.task == *t)) {
                ui.selectable_value(&mut self.task, Some(task), task.to_string());
            }
            ui.separator();
            ui.selectable_value(&mut self.b_first, false, format!("where A ({}) beats B most", names.0));
            ui.selectable_value(&mut self.b_first, true, format!("where B ({}) beats A most", names.1));
            if ui.button("Export CSV").clicked() {
                let path = exports.join(format!("compare-{}-{}.csv", names.0.replace([' ', '/'], "-"), super::unix_seconds()));
                notice = Some(match std::fs::create_dir_all(exports).map_err(anyhow::Error::from).and_then(|()| write_csv(&compared.rows, &path)) {
                    Ok(()) => Notice::info(format!("image comparison saved to {}", path.display())),
                    Err(error) => Notice::error(format!("Export CSV: {error:#}")),
                });
            }
        });
        let rows = self.ordered_rows();
        let compared = self.compared.as_ref()?;
        let wins = |a: bool| rows.iter().filter(|&&i| compared.rows[i].difference().is_some_and(|d| if a { d > 0.0 } else { d < 0.0 })).count();
        ui.label(format!(
            "{} images: A better on {}, B better on {}{}",
            rows.len(),
            wins(true),
            wins(false),
            if compared.skipped > 0 { format!("; {} images did not read", compared.skipped) } else { String::new() }
        ));
        let mut clicked = None;
        egui::ScrollArea::vertical().id_salt("compare rows").max_height(220.0).show_rows(ui, 18.0, rows.len(), |ui, range| {
            for &i in &rows[range] {
                let row = &compared.rows[i];
                let number = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.3}"));
                let text = format!("{}   A {} ({})   B {} ({})   Δ {}", row.id, number(row.a), row.a_detail, number(row.b), row.b_detail, number(row.difference()));
                let selected = self.shown.as_ref().is_some_and(|s| s.row == i);
                let label = ui.selectable_label(selected, text);
                label.widget_info(|| egui::WidgetInfo::labeled(egui::WidgetType::SelectableLabel, true, format!("compared image {}", row.id)));
                if label.clicked() {
                    clicked = Some(i);
                }
            }
        });
        if let Some(i) = clicked {
            self.preview = Some(self.show_row(i, repaint));
        }
        if self.preview.is_some() {
            ui.label("Predicting the image with both checkpoints…");
        }
        self.side_by_side(ui, names, classes);
        notice
    }

    /// Predicts row `i`'s image with both checkpoints and reads its truth.
    fn show_row(&self, i: usize, repaint: impl Fn() + Send + Sync + 'static) -> Job<Shown> {
        let compared = self.compared.as_ref().expect("rows are shown only when compared");
        let row = compared.rows[i].clone();
        let (a, b, splits, postprocess) = (compared.predictors.0.clone(), compared.predictors.1.clone(), compared.splits.clone(), compared.postprocess.clone());
        Job::spawn("compare one image", repaint, move |_| {
            let image = decode_rgb(&row.image).map_err(|p| anyhow::anyhow!("{p}"))?;
            let (mut truth_boxes, mut truth_mask) = (Vec::new(), None);
            match row.task {
                Task::Det => {
                    if let Some(record) = splits.det().and_then(|d| d.records.iter().find(|r| r.id == row.id)) {
                        truth_boxes = annotation_boxes(&record.annotation).into_iter().map(|(d, _)| d).collect();
                    }
                }
                Task::Seg => {
                    if let Some(split) = splits.seg() {
                        if let Some(record) = split.records.iter().find(|r| r.id == row.id) {
                            truth_mask = Some(record.read_mask(split.classes.len()).map_err(|p| anyhow::anyhow!("{p}"))?);
                        }
                    }
                }
                Task::Cls => {}
            }
            let images = std::slice::from_ref(&image);
            let predict = |p: &Predictor| -> anyhow::Result<Prediction> {
                if row.task == Task::Cls {
                    let class_probabilities = p.classify_images(images)?.pop().unwrap_or_default();
                    return Ok(Prediction { class_probabilities, ..Default::default() });
                }
                p.predict_images(images, &postprocess).pop().ok_or_else(|| anyhow::anyhow!("no prediction"))
            };
            Ok(Shown { row: i, truth_boxes, truth_mask, a: predict(&a)?, b: predict(&b)?, image })
        })
    }

    fn side_by_side(&mut self, ui: &mut egui::Ui, names: (&str, &str), (classes, cls_classes): (ClassNames, &[String])) {
        let Some(shown) = &self.shown else { return };
        let key = format!("compare/{}", shown.row);
        let (textures, options) = (&mut self.textures, &self.options);
        let truth = Layers { name: "truth", mask: shown.truth_mask.as_ref(), boxes: &shown.truth_boxes, scored: false, errors: None };
        let a = Layers { name: "A", mask: shown.a.mask.as_ref(), boxes: &shown.a.detections, scored: true, errors: None };
        let b = Layers { name: "B", mask: shown.b.mask.as_ref(), boxes: &shown.b.detections, scored: true, errors: None };
        let top = |p: &Prediction| p.class_probabilities.iter().enumerate().max_by(|x, y| x.1.total_cmp(y.1)).map(|(c, _)| c);
        ui.columns(3, |columns| {
            let max = Vec2::new(columns[0].available_width(), VIEW_HEIGHT);
            for (column, (title, layers, prediction)) in columns.iter_mut().zip([("Ground truth", &truth, None), (names.0, &a, Some(&shown.a)), (names.1, &b, Some(&shown.b))]) {
                let class = prediction.and_then(top).map_or(String::new(), |c| format!(": {}", cls_classes.get(c).cloned().unwrap_or_default()));
                column.label(format!("{title}{class}"));
                textures.show(column, &key, &shown.image, layers, options, classes, max);
            }
        });
    }
}
