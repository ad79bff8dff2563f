//! The Inspect panel: the focused run's checkpoint on the first images of each
//! validation split, ground truth beside prediction, with per-class AP50 and
//! IoU measured on those images (the eval module's VOC AP and confusion
//! matrix, with the post-processing the run's own evaluations use); in a
//! three-task run also the classification images with their true class and
//! top-5, right or wrong, filterable to the mistakes.


use anyhow::Result;
use eframe::egui::{self, Vec2};
use image::{GrayImage, RgbImage};

use super::class_view::top5_ui;
use super::error_view::{annotation_boxes, ErrorLayer};
use super::image_view::{ClassNames, Layers, OverlayOptions, TextureCache};
use super::inference::{checkpoint_combo, ModelInfo, PredictorCache, Source};
use super::inspect_export::{ExportRequest, ExportRow};
use super::inspect_compare::{CompareView, Pair};
use super::inspect_metrics::MetricsView;
use super::inspect_timeline::TimelineView;
use super::job::{Job, Progress};
use super::shared::Shared;
use crate::data::coco::CocoIds;
use crate::data::voc::VocRecord;
use crate::data::Problem;
use crate::eval::cls::is_right;
use crate::eval::{evaluate_voc, ground_truth_from_voc, mean_of_defined, ConfusionMatrix, VocMetric};
use crate::inspection::{self, Samples};
use crate::model::postprocess::Detection;
use crate::model::Task;
use crate::predictor::Prediction;
use crate::session::run_record::RunRecord;
use crate::train::checkpoint::CheckpointKind;
use crate::train::config::TrainConfig;

/// Tallest the side-by-side images are drawn.
const VIEW_HEIGHT: f32 = 420.0;

/// The validation images browsed: one task's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum SampleSet {
    #[default]
    Detection,
    Segmentation,
    Classification,
}

impl SampleSet {
    fn task(self) -> Task {
        match self {
            Self::Detection => Task::Det,
            Self::Segmentation => Task::Seg,
            Self::Classification => Task::Cls,
        }
    }

    /// Prefix of the set's texture keys.
    fn key(self) -> &'static str {
        match self {
            Self::Detection => "det",
            Self::Segmentation => "seg",
            Self::Classification => "cls",
        }
    }
}

/// A classification image, its true class and the head's probabilities.
struct ClsSample {
    id: String,
    image: RgbImage,
    truth: usize,
    probabilities: Vec<f32>,
}

enum Truth {
    Boxes(Vec<Detection>),
    Mask(GrayImage),
}

struct Sample {
    id: String,
    image: RgbImage,
    truth: Truth,
    prediction: Prediction,
    /// The prediction judged against the truth, for the error view.
    errors: ErrorLayer,
}

impl Sample {
    fn new(id: String, image: RgbImage, truth: Truth, difficult: Vec<bool>, prediction: Prediction) -> Self {
        let errors = match &truth {
            Truth::Boxes(boxes) => {
                let truth_boxes = boxes.iter().copied().zip(difficult).collect();
                ErrorLayer::new(Some(truth_boxes), None, &prediction.detections, prediction.mask.as_ref())
            }
            Truth::Mask(mask) => ErrorLayer::new(None, Some(mask.clone()), &prediction.detections, prediction.mask.as_ref()),
        };
        Self { id, image, truth, prediction, errors }
    }

    fn truth_layers(&self) -> Layers<'_> {
        let (mask, boxes) = match &self.truth {
            Truth::Boxes(boxes) => (None, boxes.as_slice()),
            Truth::Mask(mask) => (Some(mask), &[][..]),
        };
        Layers { name: "truth", mask, boxes, scored: false, errors: None }
    }

    fn prediction_layers(&self) -> Layers<'_> {
        Layers { name: "prediction", mask: self.prediction.mask.as_ref(), boxes: &self.prediction.detections, scored: true, errors: Some(&self.errors) }
    }
}

/// A per-class metric on the sampled images.
#[derive(Debug, Clone, PartialEq)]
struct Table {
    /// "AP50" or "IoU".
    metric: &'static str,
    mean: Option<f64>,
    /// Classes with a value, in class order.
    rows: Vec<(String, f64)>,
    /// Classes without one (not in the ground truth of these images).
    absent: usize,
}

impl Table {
    fn new(metric: &'static str, names: &[String], values: &[Option<f64>]) -> Self {
        let rows: Vec<(String, f64)> = names.iter().zip(values).filter_map(|(name, v)| v.map(|v| (name.clone(), v))).collect();
        Self { metric, mean: mean_of_defined(values), absent: values.len() - rows.len(), rows }
    }
}

struct Inspection {
    model: ModelInfo,
    det: Vec<Sample>,
    seg: Vec<Sample>,
    /// Empty in a run without classification.
    cls: Vec<ClsSample>,
    det_table: Table,
    seg_table: Table,
    /// Sampled images that could not be read, left out.
    skipped: Vec<Problem>,
    /// The detection images' and classes' ids in exported COCO results.
    coco_ids: CocoIds,
}

/// What the user browses: the set, the image, how it is drawn.
#[derive(Default)]
struct Browser {
    set: SampleSet,
    index: usize,
    /// Classification: only the images whose top-1 is wrong.
    only_mistakes: bool,
    options: OverlayOptions,
    textures: TextureCache,
}

/// What Inspect shows of the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum View {
    /// Sampled images, ground truth beside prediction.
    #[default]
    Images,
    /// PR curves, confusion matrices and per-class tables on the full splits.
    Metrics,
    /// The predictions stored at every evaluation, with a step slider.
    Timeline,
    /// Against another run or checkpoint, image by image.
    Compare,
}

pub struct InspectPanel {
    view: View,
    metrics: MetricsView,
    timeline: TimelineView,
    export: ExportRow,
    predictors: PredictorCache,
    kind: CheckpointKind,
    /// The run and checkpoint the inspection shown (or being made) is for.
    target: Option<(String, CheckpointKind)>,
    /// How many times that checkpoint had been written when it was read: a
    /// newer write (a training run's `last`) is inspected again.
    writes_seen: usize,
    job: Option<Job<Inspection>>,
    inspection: Option<Inspection>,
    error: Option<String>,
    browser: Browser,
    compare: CompareView,
    /// The run (B) and its checkpoint to compare the inspected one with.
    compare_with: Option<String>,
    compare_kind: CheckpointKind,
}

impl Default for InspectPanel {
    fn default() -> Self {
        Self {
            view: View::default(),
            metrics: MetricsView::default(),
            timeline: TimelineView::default(),
            export: ExportRow::default(),
            predictors: PredictorCache::default(),
            kind: CheckpointKind::Last,
            target: None,
            writes_seen: 0,
            job: None,
            inspection: None,
            error: None,
            browser: Browser::default(),
            compare: CompareView::default(),
            compare_with: None,
            compare_kind: CheckpointKind::Last,
        }
    }
}

impl InspectPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        self.poll();
        let Some(name) = shared.selection.focused.clone() else {
            ui.label("No run selected: pick a run in the list to inspect its predictions.");
            return;
        };
        let Some(record) = shared.session.record(&name) else {
            ui.label(format!("{name}: no such run"));
            return;
        };
        let reload = self.header(ui, &name, record);
        let writes = record.checkpoint_writes.get(&self.kind.name()).copied().unwrap_or(0);
        let rewritten = writes != self.writes_seen && self.job.is_none();
        let wanted = (name.clone(), self.kind.clone());
        if reload || rewritten || self.target.as_ref() != Some(&wanted) {
            self.writes_seen = writes;
            self.metrics.reset();
            match Source::of(record, shared, &self.predictors) {
                Some(source) => self.start(wanted, source, &record.config, shared.repaint.callback()),
                None => self.error = Some(format!("{name}: its server is not connected")),
            }
        }
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.view, View::Images, "Images");
            ui.selectable_value(&mut self.view, View::Metrics, "Metrics (full validation splits)");
            ui.selectable_value(&mut self.view, View::Timeline, "Timeline");
            ui.selectable_value(&mut self.view, View::Compare, "Compare image by image");
        });
        ui.separator();
        let exports = shared.session.runs_root().join("exports");
        match self.view {
            View::Images => {
                self.status(ui);
                if let Some(inspection) = &self.inspection {
                    let request = || ExportRequest {
                        det: inspection.det.iter().map(|s| (s.id.clone(), s.prediction.clone())).collect(),
                        seg: inspection.seg.iter().map(|s| (s.id.clone(), s.prediction.clone())).collect(),
                        det_classes: inspection.model.det_classes.clone(),
                        voc_split: record.config.data.voc_val_split.clone(),
                        coco_ids: inspection.coco_ids.clone(),
                        label: format!("{}-{}", inspection.model.run, inspection.model.kind.name()),
                    };
                    if let Some(notice) = self.export.ui(ui, &exports, inspection.model.tasks(), request, shared.repaint.callback()) {
                        shared.notifications.push(notice);
                    }
                    self.browser.ui(ui, inspection);
                }
            }
            View::Metrics => {
                if self.metrics.is_idle() {
                    match Source::of(record, shared, &self.predictors) {
                        Some(source) => self.metrics.start(source, &record.config, self.kind.clone(), shared.repaint.callback()),
                        None => self.metrics.fail(format!("{name}: its server is not connected")),
                    }
                }
                let run = record.name.clone();
                let notice = egui::ScrollArea::vertical().id_salt("inspect metrics").show(ui, |ui| self.metrics.ui(ui, &exports, &run)).inner;
                if let Some(notice) = notice {
                    shared.notifications.push(notice);
                }
            }
            View::Compare => self.compare_ui(ui, shared, &name, &exports),
            View::Timeline => match &self.inspection {
                Some(inspection) => {
                    let model = &inspection.model;
                    let names = ClassNames { det: &model.det_classes, seg: &model.seg_classes };
                    self.timeline.ui(ui, record, names, &model.cls_classes, shared.repaint.callback());
                }
                None => self.status(ui),
            },
        }
    }

    /// The comparison's pickers (run B and its checkpoint, or the run's
    /// `switch` against its `last`) and the comparison itself.
    fn compare_ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared, name: &str, exports: &std::path::Path) {
        let Some(record) = shared.session.record(name) else { return };
        if record.remote.is_some() {
            ui.label("Comparing image by image works on runs on this machine: copy a server's runs with `twinhead runs pull`.");
            return;
        }
        let a_dir = record.dir.clone();
        let mut pair = None;
        ui.horizontal(|ui| {
            ui.label(format!("A: {name} {}", self.kind.name()));
            let local: Vec<String> = shared.session.records.iter().filter(|r| r.remote.is_none()).map(|r| r.name.clone()).collect();
            let chosen = self.compare_with.clone().unwrap_or_else(|| "(pick a run)".into());
            egui::ComboBox::new("compare run", "run B").selected_text(chosen).show_ui(ui, |ui| {
                for run in local {
                    ui.selectable_value(&mut self.compare_with, Some(run.clone()), run);
                }
            });
            let b_dir = self.compare_with.as_deref().and_then(|b| shared.session.record(b)).map(|r| r.dir.clone());
            egui::ComboBox::new("compare checkpoint", "checkpoint B").selected_text(self.compare_kind.name()).show_ui(ui, |ui| {
                for kind in b_dir.as_deref().map_or_else(Vec::new, crate::train::checkpoint::available) {
                    let label = kind.name();
                    ui.selectable_value(&mut self.compare_kind, kind, label);
                }
            });
            if let Some(b_dir) = b_dir {
                if ui.add_enabled(!self.compare.is_busy(), egui::Button::new("Compare A with B")).clicked() {
                    pair = Some(Pair { a: (a_dir.clone(), self.kind.clone()), b: (b_dir, self.compare_kind.clone()) });
                }
            }
            if crate::train::checkpoint::find(&a_dir, &CheckpointKind::Switch).is_ok()
                && ui.button("Forgetting: switch against last").on_hover_text("The checkpoint at the task switch (A) against the last (B): what the run forgot comes first").clicked()
            {
                pair = Some(Pair { a: (a_dir.clone(), CheckpointKind::Switch), b: (a_dir.clone(), CheckpointKind::Last) });
            }
        });
        if let Some(pair) = pair {
            self.compare.b_first = false;
            self.compare.start(pair, &self.predictors, &record.config, shared.device(), shared.repaint.callback());
        }
        let label = |(dir, kind): &(std::path::PathBuf, CheckpointKind)| format!("{} {}", dir.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()), kind.name());
        let names = self.compare.pair().map(|p| (label(&p.a), label(&p.b))).unwrap_or_default();
        let (det, seg, cls) = match &self.inspection {
            Some(inspection) => (inspection.model.det_classes.clone(), inspection.model.seg_classes.clone(), inspection.model.cls_classes.clone()),
            None => Default::default(),
        };
        let classes = (ClassNames { det: &det, seg: &seg }, cls.as_slice());
        if let Some(notice) = self.compare.ui(ui, exports, (&names.0, &names.1), classes, shared.repaint.callback()) {
            shared.notifications.push(notice);
        }
    }

    /// The title, the checkpoint combo and "Reload"; true when reloading was asked for.
    fn header(&mut self, ui: &mut egui::Ui, name: &str, record: &RunRecord) -> bool {
        ui.horizontal(|ui| {
            ui.heading(format!("Inspect {name}"));
            checkpoint_combo(ui, &mut self.kind, record);
            ui.button("Reload").on_hover_text("Predict again with the checkpoint as it is on disk now").clicked()
        })
        .inner
    }

    fn start(&mut self, target: (String, CheckpointKind), source: Source, config: &TrainConfig, repaint: impl Fn() + Send + Sync + 'static) {
        if let Some(old) = self.job.take() {
            old.cancel();
        }
        if self.target.as_ref() != Some(&target) {
            // Another run or checkpoint: what is shown no longer belongs to it.
            self.inspection = None;
            self.browser.index = 0;
            self.browser.textures.clear();
        }
        self.error = None;
        let (config, (run, kind)) = (config.clone(), target.clone());
        self.job = Some(Job::spawn(format!("inspect {run}"), repaint, move |progress| inspect(source, &run, kind, &config, progress)));
        self.target = Some(target);
    }

    fn poll(&mut self) {
        let Some(result) = self.job.as_mut().and_then(Job::poll) else {
            return;
        };
        self.job = None;
        match result {
            Ok(inspection) => {
                self.browser.textures.clear();
                self.inspection = Some(inspection);
            }
            Err(error) => self.error = Some(format!("{error:#}")),
        }
    }

    fn status(&self, ui: &mut egui::Ui) {
        if let Some(job) = &self.job {
            let (done, total) = job.progress;
            job.progress_row(ui, format!("Predicting validation images: {done}/{total}"), false);
        }
        if let Some(error) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
    }
}

impl Browser {
    fn ui(&mut self, ui: &mut egui::Ui, inspection: &Inspection) {
        let model = &inspection.model;
        ui.label(format!("{} · metrics are measured on these images only", model.describe()));
        if let Some(first) = inspection.skipped.first() {
            let text = format!("{} image(s) left out, first: {first}", inspection.skipped.len());
            ui.colored_label(ui.visuals().warn_fg_color, text);
        }
        // The sets of the network's tasks; the first of them until one is picked.
        let tasks = model.tasks();
        if !tasks.contains(self.set.task()) {
            self.set = [SampleSet::Detection, SampleSet::Segmentation, SampleSet::Classification]
                .into_iter()
                .find(|set| tasks.contains(set.task()))
                .unwrap_or_default();
        }
        ui.horizontal(|ui| {
            if tasks.contains(Task::Det) {
                ui.selectable_value(&mut self.set, SampleSet::Detection, format!("Detection set ({} images)", inspection.det.len()));
            }
            if tasks.contains(Task::Seg) {
                ui.selectable_value(&mut self.set, SampleSet::Segmentation, format!("Segmentation set ({} images)", inspection.seg.len()));
            }
            if !inspection.cls.is_empty() {
                let wrong = inspection.cls.iter().filter(|s| !is_right(&s.probabilities, s.truth)).count();
                let label = format!("Classification set ({} images, {wrong} wrong)", inspection.cls.len());
                ui.selectable_value(&mut self.set, SampleSet::Classification, label);
            }
        });
        if self.set == SampleSet::Classification {
            return self.classification(ui, inspection);
        }
        self.options.controls(ui, &model.det_classes, &model.seg_classes);
        let (samples, table) = match self.set {
            SampleSet::Detection => (&inspection.det, &inspection.det_table),
            _ => (&inspection.seg, &inspection.seg_table),
        };
        if samples.is_empty() {
            ui.label("This validation split has no images.");
            return;
        }
        self.index = self.index.min(samples.len() - 1);
        self.navigation(ui, samples);
        self.side_by_side(ui, &samples[self.index], ClassNames { det: &model.det_classes, seg: &model.seg_classes });
        self.thumbnails(ui, samples);
        ui.separator();
        table_ui(ui, table, self.set.key());
    }

    /// The classification images (or only the mistakes): the image beside its
    /// true class and top-5, thumbnails, and the accuracy on these images.
    fn classification(&mut self, ui: &mut egui::Ui, inspection: &Inspection) {
        let names = &inspection.model.cls_classes;
        ui.checkbox(&mut self.only_mistakes, "only mistakes").on_hover_text("Browse the images whose top-1 class is wrong");
        let shown: Vec<usize> =
            (0..inspection.cls.len()).filter(|&i| !self.only_mistakes || !is_right(&inspection.cls[i].probabilities, inspection.cls[i].truth)).collect();
        let right = inspection.cls.iter().filter(|s| is_right(&s.probabilities, s.truth)).count();
        ui.strong(format!("Top-1 right on {right} of these {} images", inspection.cls.len()));
        if shown.is_empty() {
            ui.label("No mistakes among these images.");
            return;
        }
        let position = shown.iter().position(|&i| i >= self.index).unwrap_or(shown.len() - 1);
        self.index = shown[position];
        ui.horizontal(|ui| {
            if ui.add_enabled(position > 0, egui::Button::new("Previous")).clicked() {
                self.index = shown[position - 1];
            }
            ui.label(format!("{} / {}: {}", position + 1, shown.len(), inspection.cls[self.index].id));
            if ui.add_enabled(position + 1 < shown.len(), egui::Button::new("Next")).clicked() {
                self.index = shown[position + 1];
            }
        });
        let sample = &inspection.cls[self.index];
        let key = format!("cls/{}", self.index);
        let image = Layers { name: "image", mask: None, boxes: &[], scored: false, errors: None };
        let classes = ClassNames { det: &inspection.model.det_classes, seg: &inspection.model.seg_classes };
        ui.columns(2, |columns| {
            let max = Vec2::new(columns[0].available_width(), VIEW_HEIGHT);
            self.textures.show(&mut columns[0], &key, &sample.image, &image, &OverlayOptions::default(), classes, max);
            top5_ui(&mut columns[1], &sample.probabilities, names, Some(sample.truth));
        });
        egui::ScrollArea::horizontal().id_salt("inspect cls thumbnails").show(ui, |ui| {
            ui.horizontal(|ui| {
                for &i in &shown {
                    let sample = &inspection.cls[i];
                    let mark = if is_right(&sample.probabilities, sample.truth) { "✔" } else { "✖" };
                    let hover = format!("{} {mark} {}", sample.id, names[sample.truth]);
                    if self.textures.thumbnail(ui, &format!("cls/{i}"), &sample.image, 56.0, i == self.index, &hover).clicked() {
                        self.index = i;
                    }
                }
            });
        });
    }

    fn navigation(&mut self, ui: &mut egui::Ui, samples: &[Sample]) {
        ui.horizontal(|ui| {
            if ui.add_enabled(self.index > 0, egui::Button::new("Previous")).clicked() {
                self.index -= 1;
            }
            ui.label(format!("{} / {}: {}", self.index + 1, samples.len(), samples[self.index].id));
            if ui.add_enabled(self.index + 1 < samples.len(), egui::Button::new("Next")).clicked() {
                self.index += 1;
            }
        });
    }

    fn side_by_side(&mut self, ui: &mut egui::Ui, sample: &Sample, names: ClassNames) {
        let key = format!("{}/{}", self.set.key(), self.index);
        let (textures, options) = (&mut self.textures, &self.options);
        let (truth, prediction) = (sample.truth_layers(), sample.prediction_layers());
        ui.columns(2, |columns| {
            let max = Vec2::new(columns[0].available_width(), VIEW_HEIGHT);
            columns[0].label("Ground truth");
            textures.show(&mut columns[0], &key, &sample.image, &truth, options, names, max);
            let shown = options.visible(&sample.prediction.detections, true).count();
            let what = if options.show_errors { "errors" } else { "prediction" };
            columns[1].label(format!("Prediction: {shown} boxes ({what})"));
            textures.show(&mut columns[1], &key, &sample.image, &prediction, options, names, max);
        });
        let boxes: Vec<&Detection> = options.visible(truth.boxes, false).chain(options.visible(prediction.boxes, true)).collect();
        textures.legend(ui, &key, &["truth", "prediction"], &boxes, names);
    }

    fn thumbnails(&mut self, ui: &mut egui::Ui, samples: &[Sample]) {
        egui::ScrollArea::horizontal().id_salt("inspect thumbnails").show(ui, |ui| {
            ui.horizontal(|ui| {
                for (i, sample) in samples.iter().enumerate() {
                    let key = format!("{}/{i}", self.set.key());
                    if self.textures.thumbnail(ui, &key, &sample.image, 56.0, i == self.index, &sample.id).clicked() {
                        self.index = i;
                    }
                }
            });
        });
    }
}

fn table_ui(ui: &mut egui::Ui, table: &Table, id: &str) {
    let mean = table.mean.map_or("–".to_string(), |m| format!("{m:.3}"));
    ui.strong(format!("Mean {} {mean} over {} classes", table.metric, table.rows.len()));
    egui::Grid::new(("inspect table", id)).striped(true).show(ui, |ui| {
        ui.strong("Class");
        ui.strong(table.metric);
        ui.end_row();
        for (name, value) in &table.rows {
            ui.label(name);
            ui.add(egui::ProgressBar::new(*value as f32).desired_width(160.0).text(format!("{value:.3}")));
            ui.end_row();
        }
    });
    if table.absent > 0 {
        ui.label(format!("{} classes have no ground truth in these images", table.absent));
    }
}

/// The inspection's work, on the job's thread: the samples (predicted here,
/// or on the run's server), then measured.
fn inspect(source: Source, run: &str, kind: CheckpointKind, config: &TrainConfig, progress: &Progress) -> Result<Inspection> {
    let samples = match source {
        Source::Here { predictors, run_dir, device } => inspection::sample(&predictors, run, (&run_dir, kind, device), config, progress)?,
        Source::Server { client, run: on_server } => {
            progress.set(0, 1);
            let samples = client.inspect(&on_server, &kind)?;
            Samples { model: ModelInfo { run: run.to_string(), ..samples.model }, ..samples }
        }
    };
    Ok(measure(samples))
}

/// The samples judged: each prediction against its truth, per-class AP50 and IoU on these images.
fn measure(samples: Samples) -> Inspection {
    let Samples { model, det, seg, cls, mut skipped, coco_ids } = samples;
    let det_records: Vec<VocRecord> = det.iter().map(|s| s.record.clone()).collect();
    let detections: Vec<_> = det.iter().enumerate().flat_map(|(i, s)| s.prediction.detections.iter().map(move |d| d.to_eval(i))).collect();
    let ap = evaluate_voc(&ground_truth_from_voc(&det_records), &detections, model.det_classes.len(), VocMetric::Area);
    let mut confusion = ConfusionMatrix::new(model.seg_classes.len());
    for sample in &seg {
        // The reader checked both sizes from the headers; a file changed since is left out, not a panic.
        match (&sample.truth, &sample.prediction.mask) {
            (Some(truth), Some(mask)) if truth.dimensions() == mask.dimensions() => confusion.accumulate(truth.as_raw(), mask.as_raw()),
            _ => skipped.push(Problem::new(&sample.record.mask_path, "mask and image sizes differ")),
        }
    }
    let det = det
        .into_iter()
        .map(|s| {
            let (boxes, difficult) = annotation_boxes(&s.record.annotation).into_iter().unzip();
            Sample::new(s.record.id, s.image, Truth::Boxes(boxes), difficult, s.prediction)
        })
        .collect();
    let seg = seg
        .into_iter()
        .map(|s| {
            let truth = s.truth.unwrap_or_else(|| GrayImage::new(s.image.width(), s.image.height()));
            Sample::new(s.record.id, s.image, Truth::Mask(truth), Vec::new(), s.prediction)
        })
        .collect();
    let cls = cls
        .into_iter()
        .map(|s| ClsSample { id: s.record.id, image: s.image, truth: s.record.class, probabilities: s.prediction.class_probabilities })
        .collect();
    Inspection {
        det_table: Table::new("AP50", &model.det_classes, &ap.per_class),
        seg_table: Table::new("IoU", &model.seg_classes, &confusion.per_class_iou()),
        model,
        det,
        seg,
        cls,
        skipped,
        coco_ids,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_list_measured_classes_and_count_the_rest() {
        let names: Vec<String> = ["person", "car", "dog"].map(String::from).to_vec();
        let table = Table::new("AP50", &names, &[Some(0.5), None, Some(1.0)]);
        assert_eq!(table.rows, vec![("person".to_string(), 0.5), ("dog".to_string(), 1.0)]);
        assert_eq!(table.mean, Some(0.75));
        assert_eq!(table.absent, 1);
        let empty = Table::new("IoU", &names, &[None, None, None]);
        assert_eq!((empty.mean, empty.rows.len(), empty.absent), (None, 0, 3));
    }
}
