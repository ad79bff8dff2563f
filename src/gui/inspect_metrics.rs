//! Inspect's metrics view: the checkpoint scored on the FULL validation splits
//! (a background job with progress and cancel): per-class precision–recall
//! curves at IoU 0.5 with the VOC area AP shaded, the detection and pixel
//! confusion matrices with the top pixel confusions by name, and per-class
//! AP50 / IoU tables, sortable and exportable to CSV; in a three-task run also
//! the classification confusion matrix and per-class accuracy.

use std::fmt::Write as _;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use eframe::egui;
use egui_plot::{FilledArea, Legend, Line, Plot};

use super::confusion_view::{CellText, Matrix};
use super::inference::Source;
use super::job::Job;
use crate::session::Notice;
use crate::data::classes::mask_label_name;
use crate::eval::{PrCurve, VocMetric};
use crate::model::Task;
use crate::predictor::FullValidation;
use crate::train::checkpoint::CheckpointKind;
use crate::train::config::TrainConfig;

/// How many pixel confusions are listed by name.
const TOP_CONFUSIONS: usize = 12;

/// What the job hands back: the scores and the names they refer to.
pub struct Scores {
    pub det_classes: Vec<String>,
    pub seg_classes: Vec<String>,
    /// Empty without a classification head.
    pub cls_classes: Vec<String>,
    pub full: FullValidation,
    /// `[classes…, background]` and `counts[gt][pred]` of the detection matrix.
    det_labels: Vec<String>,
    det_counts: Vec<Vec<u64>>,
    /// The pixel matrix over the classes: unlabelled ground truth is ignored
    /// (as in the mIoU) and the network never predicts "unlabelled".
    seg_counts: Vec<Vec<u64>>,
}

impl Scores {
    fn new(full: FullValidation) -> Self {
        let det_classes = full.det_classes.clone();
        let det_labels = det_classes.iter().cloned().chain(["background".to_string()]).collect();
        let det_counts = full.validation.det.as_ref().map_or_else(Vec::new, |det| det.confusion.rows());
        let seg_counts = match &full.validation.seg {
            Some(seg) => seg.rows().into_iter().skip(1).map(|row| row[1..].to_vec()).collect(),
            None => Vec::new(),
        };
        let (seg_classes, cls_classes) = (full.seg_classes.clone(), full.cls_classes.clone());
        Self { det_classes, seg_classes, cls_classes, full, det_labels, det_counts, seg_counts }
    }
}

/// Which column a per-class table is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    #[default]
    Class,
    ValueDescending,
    ValueAscending,
}

#[derive(Default)]
pub struct MetricsView {
    job: Option<Job<Scores>>,
    scores: Option<Scores>,
    error: Option<String>,
    /// The detection class whose PR curve is drawn.
    pr_class: usize,
    det_sort: SortBy,
    seg_sort: SortBy,
    cls_sort: SortBy,
}

impl MetricsView {
    /// Drops what was computed for another checkpoint.
    pub fn reset(&mut self) {
        if let Some(job) = self.job.take() {
            job.cancel();
        }
        self.scores = None;
        self.error = None;
    }

    /// Scores `kind` on the run's full validation splits, here or on its server.
    pub fn start(&mut self, source: Source, config: &TrainConfig, kind: CheckpointKind, repaint: impl Fn() + Send + Sync + 'static) {
        self.reset();
        let config = config.clone();
        self.job = Some(Job::spawn("score validation splits", repaint, move |progress| {
            let mut on_batch = |done, total| {
                progress.set(done, total);
                if progress.is_cancelled() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
            };
            let full = match source {
                Source::Here { predictors, run_dir, device } => predictors.load(&run_dir, &kind, device)?.validate_full(&config, &mut on_batch)?,
                Source::Server { client, run } => client.validate(&run, &kind, &mut on_batch)?,
            };
            Ok(Scores::new(full))
        }));
    }

    /// Shows `error` in place of the scores.
    pub fn fail(&mut self, error: String) {
        self.reset();
        self.error = Some(error);
    }

    pub fn is_idle(&self) -> bool {
        self.job.is_none() && self.scores.is_none() && self.error.is_none()
    }

    /// Draws the view; returns notices (CSV written or not).
    pub fn ui(&mut self, ui: &mut egui::Ui, exports: &Path, run: &str) -> Option<Notice> {
        if let Some(result) = self.job.as_mut().and_then(Job::poll) {
            self.job = None;
            match result {
                Ok(scores) => self.scores = Some(scores),
                Err(error) => self.error = Some(format!("{error:#}")),
            }
        }
        if let Some(job) = &self.job {
            let (done, total) = job.progress;
            job.progress_row(ui, format!("Scoring the full validation splits: {done}/{total} images"), true);
        }
        if let Some(error) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        let scores = self.scores.as_ref()?;
        let mut notice = None;
        let v = &scores.full.validation;
        let mut splits = Vec::new();
        if let Some(det) = &v.det {
            splits.push(format!("{} detection images (mAP50 {})", scores.full.images[Task::Det], format_metric(det.ap.mean())));
        }
        if let Some(seg) = &v.seg {
            splits.push(format!("{} segmentation images (mIoU {})", scores.full.images[Task::Seg], format_metric(seg.miou())));
        }
        if !splits.is_empty() {
            ui.label(format!("Full validation splits: {}", splits.join(", ")));
        }
        if let Some(det) = &v.det {
            egui::CollapsingHeader::new("Precision–recall curve (IoU 0.5)").id_salt("pr").default_open(true).show(ui, |ui| {
                pr_plot(ui, &scores.det_classes, &det.curves, &mut self.pr_class);
            });
            egui::CollapsingHeader::new("Detection confusion matrix").id_salt("det-confusion").show(ui, |ui| {
                ui.label(format!(
                    "Detections scoring ≥ {} paired with objects of any class at IoU ≥ 0.5; background row: false positives, background column: missed objects",
                    crate::eval::CONFUSION_SCORE_THRESHOLD
                ));
                Matrix { labels: &scores.det_labels, counts: &scores.det_counts, text: CellText::Counts }.ui(ui, "det-matrix");
            });
        }
        if let Some(seg) = &v.seg {
            egui::CollapsingHeader::new("Pixel confusion matrix").id_salt("seg-confusion").show(ui, |ui| {
                ui.strong("Most confused (share of the true class's pixels)");
                for (gt, pred, share) in seg.top_confusions(TOP_CONFUSIONS) {
                    ui.label(format!("{} predicted as {}: {:.1}%", mask_label_name(&scores.seg_classes, gt), mask_label_name(&scores.seg_classes, pred), 100.0 * share));
                }
                ui.label("Unlabelled ground-truth pixels are left out, as in the mIoU; cells give the row's share in %.");
                let text = if scores.seg_classes.len() <= 24 { CellText::RowPercent } else { CellText::None };
                Matrix { labels: &scores.seg_classes, counts: &scores.seg_counts, text }.ui(ui, "seg-matrix");
            });
        }
        let det_rows = v.det.as_ref().map(|det| class_rows(&scores.det_classes, &det.ap.per_class));
        let seg_rows = v.seg.as_ref().map(|seg| class_rows(&scores.seg_classes, &seg.per_class_iou()));
        let tables = [("AP50", "ap50", det_rows, &mut self.det_sort), ("IoU", "iou", seg_rows, &mut self.seg_sort)];
        let tables: Vec<_> = tables.into_iter().filter_map(|(title, file, rows, sort)| Some((title, file, rows?, sort))).collect();
        if !tables.is_empty() {
            ui.columns(tables.len(), |columns| {
                for (column, (title, file, rows, sort)) in columns.iter_mut().zip(tables) {
                    if class_table(column, title, &rows, sort).is_some() {
                        notice = Some(export_csv(&export_path(exports, run, file), file, &rows));
                    }
                }
            });
        }
        if let Some(cls) = &v.cls {
            ui.separator();
            ui.label(format!(
                "Classification: {} images, top-1 {}, top-5 {}",
                scores.full.images[Task::Cls],
                format_metric(cls.top1()),
                format_metric(cls.top5())
            ));
            egui::CollapsingHeader::new("Classification confusion matrix").id_salt("cls-confusion").default_open(true).show(ui, |ui| {
                ui.label("Columns: the top-1 class; cells give the row's share in %.");
                let text = if scores.cls_classes.len() <= 24 { CellText::RowPercent } else { CellText::None };
                Matrix { labels: &scores.cls_classes, counts: &cls.rows(), text }.ui(ui, "cls-matrix");
            });
            let cls_rows = class_rows(&scores.cls_classes, &cls.per_class_accuracy());
            if class_table(ui, "accuracy", &cls_rows, &mut self.cls_sort).is_some() {
                notice = Some(export_csv(&export_path(exports, run, "accuracy"), "accuracy", &cls_rows));
            }
        }
        notice
    }
}

fn format_metric(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{v:.4}"))
}

/// The class picker and one class's curve: raw precision–recall points, the
/// monotone envelope, and the area under it (the VOC area AP) shaded.
fn pr_plot(ui: &mut egui::Ui, classes: &[String], curves: &[Option<PrCurve>], picked: &mut usize) {
    *picked = (*picked).min(classes.len().saturating_sub(1));
    let curve = curves.get(*picked).and_then(Option::as_ref);
    ui.horizontal(|ui| {
        egui::ComboBox::from_label("Class").selected_text(classes.get(*picked).map_or("", String::as_str)).show_ui(ui, |ui| {
            for (i, name) in classes.iter().enumerate() {
                let ap = curves[i].as_ref().map(|c| format!("  AP50 {:.3}", c.ap(VocMetric::Area))).unwrap_or_default();
                ui.selectable_value(picked, i, format!("{name}{ap}"));
            }
        });
        match curve {
            Some(c) => ui.label(format!("AP50 (area) {:.4} · {} detections counted", c.ap(VocMetric::Area), c.recall.len())),
            None => ui.label("no non-difficult object of this class: no curve"),
        };
    });
    let Some(curve) = curve else { return };
    let envelope = curve.envelope();
    let xs: Vec<f64> = envelope.iter().map(|p| p[0]).collect();
    let ys: Vec<f64> = envelope.iter().map(|p| p[1]).collect();
    let zeros = vec![0.0; xs.len()];
    let raw: Vec<[f64; 2]> = curve.recall.iter().zip(&curve.precision).map(|(&r, &p)| [r, p]).collect();
    Plot::new("pr-curve")
        .height(320.0)
        .width(ui.available_width().min(520.0))
        .include_x(0.0)
        .include_x(1.0)
        .include_y(0.0)
        .include_y(1.05)
        .x_axis_label("recall")
        .y_axis_label("precision")
        .allow_scroll(false)
        .legend(Legend::default())
        .show(ui, |plot_ui| {
            let fill = egui::Color32::from_rgba_unmultiplied(78, 121, 167, 60);
            plot_ui.add(FilledArea::new("AP (area)", &xs, &zeros, &ys).fill_color(fill).allow_hover(false));
            plot_ui.line(Line::new("envelope", envelope.clone()).color(egui::Color32::from_rgb(78, 121, 167)));
            plot_ui.line(Line::new("precision", raw).color(egui::Color32::from_rgb(242, 142, 43)));
        });
}

/// `(class, value)` for the classes that have a value.
fn class_rows(names: &[String], values: &[Option<f64>]) -> Vec<(String, f64)> {
    names.iter().zip(values).filter_map(|(name, v)| v.map(|v| (name.clone(), v))).collect()
}

pub fn sorted(rows: &[(String, f64)], sort: SortBy) -> Vec<&(String, f64)> {
    let mut rows: Vec<&(String, f64)> = rows.iter().collect();
    match sort {
        SortBy::Class => {}
        SortBy::ValueDescending => rows.sort_by(|a, b| b.1.total_cmp(&a.1)),
        SortBy::ValueAscending => rows.sort_by(|a, b| a.1.total_cmp(&b.1)),
    }
    rows
}

/// A sortable per-class table; `Some(())` when its "Export CSV" was clicked.
fn class_table(ui: &mut egui::Ui, metric: &str, rows: &[(String, f64)], sort: &mut SortBy) -> Option<()> {
    let mut export = None;
    ui.horizontal(|ui| {
        ui.strong(format!("Per-class {metric} ({} classes)", rows.len()));
        if ui.button(format!("Export {metric} CSV")).clicked() {
            export = Some(());
        }
    });
    egui::ScrollArea::vertical().id_salt(("class table", metric)).max_height(320.0).show(ui, |ui| {
        egui::Grid::new(("class table grid", metric)).striped(true).show(ui, |ui| {
            if ui.button("class").on_hover_text("Sort by class order").clicked() {
                *sort = SortBy::Class;
            }
            let arrow = match sort {
                SortBy::ValueDescending => " ⬇",
                SortBy::ValueAscending => " ⬆",
                SortBy::Class => "",
            };
            if ui.button(format!("{metric}{arrow}")).on_hover_text("Sort by value; again to reverse").clicked() {
                *sort = if *sort == SortBy::ValueDescending { SortBy::ValueAscending } else { SortBy::ValueDescending };
            }
            ui.end_row();
            for (name, value) in sorted(rows, *sort) {
                ui.label(name);
                ui.add(egui::ProgressBar::new(*value as f32).desired_width(140.0).text(format!("{value:.4}")));
                ui.end_row();
            }
        });
    });
    export
}

fn export_path(exports: &Path, run: &str, metric: &str) -> PathBuf {
    let seconds = super::unix_seconds();
    exports.join(format!("{run}-{metric}-{seconds}.csv"))
}

pub fn csv_text(metric: &str, rows: &[(String, f64)]) -> String {
    let mut text = format!("class,{metric}\n");
    for (name, value) in rows {
        let _ = writeln!(text, "{},{value}", super::csv_field(name));
    }
    text
}

fn export_csv(path: &Path, metric: &str, rows: &[(String, f64)]) -> Notice {
    super::save_csv(path, &csv_text(metric, rows), &format!("per-class {metric}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_sort_both_ways_and_export_quoted_names() {
        let rows = vec![("a".to_string(), 0.2), ("b, c".to_string(), 0.9), ("d".to_string(), 0.5)];
        let names = |sort| sorted(&rows, sort).iter().map(|r| r.0.as_str()).collect::<Vec<_>>();
        assert_eq!(names(SortBy::Class), ["a", "b, c", "d"]);
        assert_eq!(names(SortBy::ValueDescending), ["b, c", "d", "a"]);
        assert_eq!(names(SortBy::ValueAscending), ["a", "d", "b, c"]);
        assert_eq!(csv_text("ap50", &rows), "class,ap50\na,0.2\n\"b, c\",0.9\nd,0.5\n");
        assert_eq!(class_rows(&["x".into(), "y".into()], &[None, Some(0.5)]), vec![("y".to_string(), 0.5)]);
    }
}
