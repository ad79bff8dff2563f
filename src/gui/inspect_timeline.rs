//! Inspect's timeline view: the predictions the trainer stored at every
//! evaluation for a few fixed validation images (`train::timeline`), scrubbed
//! with a step slider beside the ground truth, so a user watches one task
//! degrade while the other trains (and a mitigation hold it); classification
//! images show their top-5 at the step beside the true class.

use std::path::{Path, PathBuf};

use anyhow::Result;
use eframe::egui::{self, Vec2};
use image::{GrayImage, RgbImage};

use super::error_view::{truth_parts, ErrorLayer};
use super::class_view::top5_ui;
use super::image_view::{ClassNames, Layers, OverlayOptions, TextureCache};
use super::job::Job;
use crate::session::run_record::RunRecord;
use crate::data::batch::decode_rgb;
use crate::data::truth::truth_beside;
use crate::data::ClassList;
use crate::model::postprocess::{Detection, DISPLAY_SCORE_FLOOR};
use crate::train::timeline::{self, TimelinePrediction, TimelineStep};

const VIEW_HEIGHT: f32 = 380.0;

/// One timeline image: the picture and its ground truth, read once.
struct TimelineSubject {
    id: String,
    image: RgbImage,
    /// `None` for a segmentation image (no box labels).
    truth_boxes: Option<Vec<(Detection, bool)>>,
    truth_mask: Option<GrayImage>,
}

struct Loaded {
    steps: Vec<TimelineStep>,
    det: Vec<TimelineSubject>,
    seg: Vec<TimelineSubject>,
    cls: Vec<TimelineSubject>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Task {
    #[default]
    Detection,
    Segmentation,
    Classification,
}

#[derive(Default)]
pub struct TimelineView {
    /// The run and how many evaluations it had when loading started.
    loaded_for: Option<(PathBuf, usize)>,
    job: Option<Job<Loaded>>,
    loaded: Option<Loaded>,
    error: Option<String>,
    step_index: usize,
    /// Follows the newest step as evaluations arrive, until the user moves the slider.
    follow_newest: bool,
    task: Task,
    image_index: usize,
    options: OverlayOptions,
    textures: TextureCache,
    /// The step and image on show, with what drawing them needs.
    shown: Option<Shown>,
}

/// What the image on show needs drawn, made when the step or the image changes
/// rather than every frame: the truth boxes and the prediction judged against them.
struct Shown {
    key: (usize, Task, usize),
    truth_boxes: Vec<Detection>,
    errors: ErrorLayer,
}

impl Shown {
    fn new(key: (usize, Task, usize), subject: &TimelineSubject, prediction: &TimelinePrediction) -> Self {
        let truth_boxes = subject.truth_boxes.iter().flatten().map(|(d, _)| *d).collect();
        let errors = match prediction {
            TimelinePrediction::Boxes(boxes) => ErrorLayer::new(subject.truth_boxes.clone(), None, boxes, None),
            TimelinePrediction::Mask(mask) => ErrorLayer::new(None, subject.truth_mask.clone(), &[], Some(mask)),
            TimelinePrediction::Classes { .. } => ErrorLayer::new(None, None, &[], None),
        };
        Self { key, truth_boxes, errors }
    }
}

impl TimelineView {
    /// `cls_classes`: empty for a network without a classification head.
    pub fn ui(&mut self, ui: &mut egui::Ui, record: &RunRecord, names: ClassNames, cls_classes: &[String], repaint: impl Fn() + Send + Sync + 'static) {
        self.reload_if_grown(record, names, repaint);
        if let Some(result) = self.job.as_mut().and_then(Job::poll) {
            self.job = None;
            match result {
                Ok(loaded) => {
                    if self.follow_newest || self.loaded.is_none() {
                        self.step_index = loaded.steps.len().saturating_sub(1);
                        self.follow_newest = true;
                    }
                    self.loaded = Some(loaded);
                    self.shown = None;
                }
                Err(error) => self.error = Some(format!("{error:#}")),
            }
        }
        if let Some(job) = &self.job {
            let (done, total) = job.progress;
            job.progress_row(ui, format!("Reading the timeline: {done}/{total} steps"), false);
        }
        if let Some(error) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        let Some(loaded) = &self.loaded else {
            if self.job.is_none() {
                ui.label("No timeline yet: the trainer stores predictions at every evaluation.");
            }
            return;
        };
        if loaded.steps.is_empty() {
            ui.label("No timeline yet: the trainer stores predictions at every evaluation.");
            return;
        }
        self.controls(ui, record, loaded.steps.len());
        let loaded = self.loaded.as_ref().expect("checked above");
        let step = &loaded.steps[self.step_index.min(loaded.steps.len() - 1)];
        let (subjects, predictions) = match self.task {
            Task::Detection => (&loaded.det, &step.det),
            Task::Segmentation => (&loaded.seg, &step.seg),
            Task::Classification => (&loaded.cls, &step.cls),
        };
        if subjects.is_empty() {
            ui.label("No images of this task in the timeline.");
            return;
        }
        self.image_index = self.image_index.min(subjects.len() - 1);
        let subject = &subjects[self.image_index];
        let Some(prediction) = predictions.iter().find(|p| p.id == subject.id) else {
            ui.label(format!("{}: not stored at step {}", subject.id, step.step));
            return;
        };
        let key = (step.step, self.task, self.image_index);
        if self.shown.as_ref().map(|s| s.key) != Some(key) {
            // Only this step's textures are kept: scrubbing a long run would fill the GPU.
            self.textures.clear();
            self.shown = Some(Shown::new(key, subject, &prediction.prediction));
        }
        thumbnails(ui, &mut self.textures, self.task, &mut self.image_index, subjects);
        if let TimelinePrediction::Classes { probabilities, truth } = &prediction.prediction {
            let key = format!("timeline/{}", subject.id);
            let image = Layers { name: "image", mask: None, boxes: &[], scored: false, errors: None };
            ui.columns(2, |columns| {
                let max = Vec2::new(columns[0].available_width(), VIEW_HEIGHT);
                columns[0].label(subject.id.as_str());
                self.textures.show(&mut columns[0], &key, &subject.image, &image, &self.options, names, max);
                columns[1].label(format!("Classification at step {}", step.step));
                top5_ui(&mut columns[1], probabilities, cls_classes, Some(*truth));
            });
            return;
        }
        let shown = self.shown.as_ref().expect("made above");
        side_by_side(ui, &mut self.textures, &self.options, subject, &prediction.prediction, shown, names, step.step);
    }

    /// Starts (re)loading when the run changed or has evaluated again (the trainer
    /// writes a step's predictions before its evaluation event), without touching
    /// the disk otherwise.
    fn reload_if_grown(&mut self, record: &RunRecord, names: ClassNames, repaint: impl Fn() + Send + Sync + 'static) {
        let run_dir = record.dir.as_path();
        let wanted = (run_dir.to_path_buf(), record.evals.len());
        if self.loaded_for.as_ref() == Some(&wanted) || self.job.is_some() {
            return;
        }
        if self.loaded_for.as_ref().is_some_and(|(dir, _)| dir != run_dir) {
            self.loaded = None;
            self.follow_newest = true;
        }
        self.loaded_for = Some(wanted);
        self.error = None;
        let (run_dir, det_classes, seg_classes) = (run_dir.to_path_buf(), ClassList::new(names.det.to_vec()), names.seg.len());
        self.job = Some(Job::spawn("read timeline", repaint, move |progress| {
            load(&run_dir, &timeline::stored_steps(&run_dir), &det_classes, seg_classes, progress)
        }));
    }

    fn controls(&mut self, ui: &mut egui::Ui, record: &RunRecord, count: usize) {
        let loaded = self.loaded.as_ref().expect("called with a timeline");
        let step = loaded.steps[self.step_index.min(count - 1)].step;
        ui.horizontal(|ui| {
            ui.label("Step");
            let mut index = self.step_index.min(count - 1);
            let slider = egui::Slider::new(&mut index, 0..=count - 1).show_value(false);
            if ui.add(slider).changed() {
                self.follow_newest = index + 1 == count;
            }
            if ui.add_enabled(index > 0, egui::Button::new("◀")).clicked() {
                index -= 1;
                self.follow_newest = false;
            }
            if ui.add_enabled(index + 1 < count, egui::Button::new("▶")).clicked() {
                index += 1;
                self.follow_newest = index + 1 == count;
            }
            self.step_index = index;
            let metrics = record.evals.iter().find(|e| e.step == step).map_or(String::new(), |e| {
                e.metric_texts(3).iter().map(|text| format!(" · {text}")).collect()
            });
            ui.label(format!("step {step} ({} of {count}){metrics}", self.step_index + 1));
            let marker = record.markers.iter().rev().find(|m| m.step <= step);
            if let Some(marker) = marker {
                ui.weak(format!("· since step {}: {}", marker.step, marker.label));
            }
        });
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.task, Task::Detection, format!("Detection images ({})", loaded.det.len()));
            ui.selectable_value(&mut self.task, Task::Segmentation, format!("Segmentation images ({})", loaded.seg.len()));
            if !loaded.cls.is_empty() {
                ui.selectable_value(&mut self.task, Task::Classification, format!("Classification images ({})", loaded.cls.len()));
            }
            ui.separator();
            ui.add(egui::Slider::new(&mut self.options.score_threshold, DISPLAY_SCORE_FLOOR..=1.0).text("Score threshold"));
            ui.checkbox(&mut self.options.show_errors, "Show errors");
        });
    }

}

fn thumbnails(ui: &mut egui::Ui, textures: &mut TextureCache, task: Task, index: &mut usize, subjects: &[TimelineSubject]) {
    ui.horizontal(|ui| {
        for (i, subject) in subjects.iter().enumerate() {
            let key = format!("timeline-thumb/{task:?}/{i}");
            if textures.thumbnail(ui, &key, &subject.image, 48.0, i == *index, &subject.id).clicked() {
                *index = i;
            }
        }
    });
}

#[allow(clippy::too_many_arguments)]
fn side_by_side(
    ui: &mut egui::Ui,
    textures: &mut TextureCache,
    options: &OverlayOptions,
    subject: &TimelineSubject,
    prediction: &TimelinePrediction,
    shown: &Shown,
    names: ClassNames,
    step: usize,
) {
    let (boxes, mask) = match prediction {
        TimelinePrediction::Boxes(boxes) => (boxes.as_slice(), None),
        TimelinePrediction::Mask(mask) => (&[][..], Some(mask)),
        TimelinePrediction::Classes { .. } => (&[][..], None),
    };
    let truth = Layers { name: "truth", mask: subject.truth_mask.as_ref(), boxes: &shown.truth_boxes, scored: false, errors: None };
    let predicted = Layers { name: "prediction", mask, boxes, scored: true, errors: Some(&shown.errors) };
    let key = format!("timeline/{}", subject.id);
    ui.columns(2, |columns| {
        let max = Vec2::new(columns[0].available_width(), VIEW_HEIGHT);
        columns[0].label(format!("Ground truth: {}", subject.id));
        textures.show(&mut columns[0], &key, &subject.image, &truth, options, names, max);
        columns[1].label(format!("Prediction at step {step}"));
        textures.show(&mut columns[1], &key, &subject.image, &predicted, options, names, max);
    });
    let drawn: Vec<&Detection> = options.visible(&shown.truth_boxes, false).chain(options.visible(boxes, true)).collect();
    textures.legend(ui, &key, &["truth", "prediction"], &drawn, names);
}

/// Reads every stored step, and each image with its ground truth once.
fn load(run_dir: &Path, steps: &[usize], det_classes: &ClassList, seg_classes: usize, progress: &super::job::Progress) -> Result<Loaded> {
    let mut loaded = Loaded { steps: Vec::with_capacity(steps.len()), det: Vec::new(), seg: Vec::new(), cls: Vec::new() };
    for (i, &step) in steps.iter().enumerate() {
        loaded.steps.push(timeline::read_step(run_dir, step, seg_classes)?);
        progress.set(i + 1, steps.len());
    }
    if let Some(first) = loaded.steps.first() {
        loaded.det = first.det.iter().map(|p| subject(&p.id, &p.image, det_classes, seg_classes)).collect::<Result<_>>()?;
        loaded.seg = first.seg.iter().map(|p| subject(&p.id, &p.image, det_classes, seg_classes)).collect::<Result<_>>()?;
        loaded.cls = first.cls.iter().map(|p| subject(&p.id, &p.image, det_classes, seg_classes)).collect::<Result<_>>()?;
    }
    Ok(loaded)
}

fn subject(id: &str, image: &Path, det_classes: &ClassList, seg_classes: usize) -> Result<TimelineSubject> {
    let picture = decode_rgb(image).map_err(|p| anyhow::anyhow!("{p}"))?;
    let (truth_boxes, truth_mask) = match truth_beside(image, det_classes, seg_classes) {
        Some(truth) => truth_parts(truth.map_err(|problem| anyhow::anyhow!("{problem}"))?),
        None => (None, None),
    };
    Ok(TimelineSubject { id: id.to_string(), image: picture, truth_boxes, truth_mask })
}
