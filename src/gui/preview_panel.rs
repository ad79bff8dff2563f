//! The Preview panel: the focused run's last checkpoint on the user's own
//! images (dropped on the window or picked with "Open images…"), drawn with
//! the same overlay controls as Inspect, and the overlay saved as a PNG under
//! `<runs>/exports/`. Predicting, the file dialog and saving run as jobs, so the
//! window keeps painting.

use std::path::{Path, PathBuf};

use anyhow::Context;
use eframe::egui::{self, Vec2};

use super::class_view::top5_ui;
use super::image_view::{ClassNames, Layers, OverlayOptions, TextureCache};
use super::inference::{checkpoint_combo, predict_with, spawn_file_predictions, FilePredictions, PredictedFile, PredictorCache};
use super::job::Job;
use crate::session::Notice;
use super::shared::Shared;
use crate::model::postprocess::Detection;
use crate::train::checkpoint::CheckpointKind;

/// Tallest a preview is drawn.
const VIEW_HEIGHT: f32 = 600.0;
/// Room kept right of the image for the top-5 classes.
const TOP5_WIDTH: f32 = 280.0;

/// The image types the file dialog offers (those the image decoder is built with).
const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

#[derive(Default)]
pub struct PreviewPanel {
    predictors: PredictorCache,
    /// Files to predict, in the order given.
    waiting: Vec<PathBuf>,
    /// The files of the running prediction job, waiting again if it fails.
    in_flight: Vec<PathBuf>,
    predict: Option<Job<FilePredictions>>,
    open: Option<Job<Vec<PathBuf>>>,
    save: Option<Job<PathBuf>>,
    files: Vec<PredictedFile>,
    selected: usize,
    /// The checkpoint predicted with (the last one unless picked).
    kind: CheckpointKind,
    /// The run and checkpoint the files were last sent to: focusing another
    /// run or picking another checkpoint predicts them again.
    predicted_with: Option<(String, CheckpointKind)>,
    /// One whose last attempt failed or was cancelled (no checkpoint yet, say):
    /// not retried on its own, so an error is not repeated every frame.
    failed_with: Option<(String, CheckpointKind)>,
    options: OverlayOptions,
    textures: TextureCache,
}

impl PreviewPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        enqueue(&mut self.waiting, shared.dropped_files.drain(..));
        self.poll(shared);
        self.schedule(shared);

        ui.heading("Preview");
        match shared.selection.focused.as_ref().and_then(|run| shared.session.record(run)) {
            Some(record) => {
                ui.horizontal(|ui| {
                    ui.label(format!("Predicting with {}", record.name));
                    checkpoint_combo(ui, &mut self.kind, record);
                });
            }
            None => {
                ui.label("No run selected: pick a run in the list to predict with.");
            }
        }
        self.buttons(ui, shared);
        self.status(ui);
        if self.files.is_empty() {
            ui.label("Drop image files on the window, or open them.");
            return;
        }
        self.selected = self.selected.min(self.files.len() - 1);
        let model = self.files[self.selected].model.clone();
        self.options.controls(ui, &model.det_classes, &model.seg_classes);
        if self.files.len() > 1 {
            self.thumbnails(ui);
        }
        self.selected_file(ui, shared);
    }

    /// Folds in what the jobs finished.
    fn poll(&mut self, shared: &mut Shared) {
        if let Some(result) = self.open.as_mut().and_then(Job::poll) {
            self.open = None;
            match result {
                Ok(paths) => enqueue(&mut self.waiting, paths),
                Err(error) => shared.notifications.push(Notice::error(format!("Open images: {error:#}"))),
            }
        }
        if let Some(result) = self.predict.as_mut().and_then(Job::poll) {
            self.predict = None;
            let sent = std::mem::take(&mut self.in_flight);
            match result {
                Ok(predictions) => self.absorb(predictions, shared),
                Err(error) => {
                    shared.notifications.push(Notice::error(format!("Preview: {error:#}")));
                    self.failed_with = self.predicted_with.clone();
                    // The files sent wait again, ahead of any that came meanwhile.
                    let mut again = sent;
                    enqueue(&mut again, std::mem::take(&mut self.waiting));
                    self.waiting = again;
                }
            }
        }
        if let Some(result) = self.save.as_mut().and_then(Job::poll) {
            self.save = None;
            shared.notifications.push(match result {
                Ok(path) => Notice::info(format!("Saved the overlay to {}", path.display())),
                Err(error) => Notice::error(format!("Save overlay PNG: {error:#}")),
            });
        }
    }

    fn absorb(&mut self, predictions: FilePredictions, shared: &mut Shared) {
        shared.notifications.extend(predictions.failures.iter().map(|problem| Notice::error(problem.to_string())));
        for file in &predictions.files {
            self.textures.forget(&texture_key(&file.path));
        }
        if let Some(first) = merge(&mut self.files, predictions.files) {
            self.selected = first;
        }
    }

    /// Starts predicting the waiting files when a run can take them; when the
    /// focus moved to another run, the files shown are predicted again with it.
    fn schedule(&mut self, shared: &Shared) {
        let Some(name) = shared.selection.focused.clone() else {
            return;
        };
        let run = (name.clone(), self.kind.clone());
        if self.predicted_with.as_ref() != Some(&run) {
            enqueue(&mut self.waiting, self.files.iter().map(|f| f.path.clone()));
        }
        if self.predict.is_some() || self.waiting.is_empty() || self.failed_with.as_ref() == Some(&run) {
            return;
        }
        let Some(with) = predict_with(shared, &self.predictors, &name) else {
            return;
        };
        self.in_flight = std::mem::take(&mut self.waiting);
        self.predict = Some(spawn_file_predictions(with, name, self.kind.clone(), self.in_flight.clone(), shared.repaint.callback()));
        self.predicted_with = Some(run);
        self.failed_with = None;
    }

    fn buttons(&mut self, ui: &mut egui::Ui, shared: &Shared) {
        ui.horizontal(|ui| {
            if ui.add_enabled(self.open.is_none(), egui::Button::new("Open images…")).clicked() {
                self.open = Some(Job::spawn("open images", shared.repaint.callback(), |_| {
                    Ok(rfd::FileDialog::new().set_title("Open images").add_filter("Images", &IMAGE_EXTENSIONS).pick_files().unwrap_or_default())
                }));
            }
            let idle = self.predict.is_none() && !self.files.is_empty();
            let again = ui.add_enabled(idle, egui::Button::new("Predict again"));
            if again.on_hover_text("With the checkpoint as it is on disk now").clicked() {
                enqueue(&mut self.waiting, self.files.iter().map(|f| f.path.clone()));
                self.failed_with = None;
            }
            if ui.add_enabled(idle, egui::Button::new("Clear")).clicked() {
                self.files.clear();
                self.textures.clear();
            }
        });
    }

    fn status(&mut self, ui: &mut egui::Ui) {
        if let Some(job) = &self.predict {
            let (done, total) = job.progress;
            job.progress_row(ui, format!("Predicting: {done}/{total} images"), true);
        }
        if !self.waiting.is_empty() && self.failed_with.is_some() {
            ui.horizontal(|ui| {
                ui.label(format!("{} image(s) not predicted", self.waiting.len()));
                if ui.button("Try again").clicked() {
                    self.failed_with = None;
                }
            });
        }
    }

    fn thumbnails(&mut self, ui: &mut egui::Ui) {
        egui::ScrollArea::horizontal().id_salt("preview thumbnails").show(ui, |ui| {
            ui.horizontal(|ui| {
                for (i, file) in self.files.iter().enumerate() {
                    let response = self.textures.thumbnail(ui, &texture_key(&file.path), &file.image, 56.0, i == self.selected, &file_name(&file.path));
                    if response.clicked() {
                        self.selected = i;
                    }
                }
            });
        });
    }

    fn selected_file(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        let file = &self.files[self.selected];
        let shown = self.options.visible(&file.prediction.detections, true).count();
        ui.horizontal(|ui| {
            // Plain label: the GUI tests look for "{file name}: ".
            ui.label(format!("{}: {shown} boxes", file_name(&file.path)));
            ui.label(format!("· {}", file.model.describe()));
            if ui.add_enabled(self.save.is_none(), egui::Button::new("Save overlay PNG")).clicked() {
                let out = export_path(shared.session.runs_root(), &file.path);
                let (image, prediction, options) = (file.image.clone(), file.prediction.clone(), self.options.clone());
                self.save = Some(Job::spawn("save overlay", shared.repaint.callback(), move |_| {
                    let dir = out.parent().context("export path has a folder")?;
                    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
                    options.render(&image, &prediction).save(&out).with_context(|| format!("{}: cannot write", out.display()))?;
                    Ok(out)
                }));
            }
        });
        if self.options.show_errors && file.truth.is_none() {
            ui.weak("No ground truth beside this image: errors show for images from a VOC (JPEGImages/) or ADE20K (images/<split>/) folder.");
        }
        let layers = Layers {
            name: "prediction",
            mask: file.prediction.mask.as_ref(),
            boxes: &file.prediction.detections,
            scored: true,
            errors: file.truth.as_ref(),
        };
        let probabilities = &file.prediction.class_probabilities;
        // A three-task network's top-5 stands beside the image.
        let beside = if probabilities.is_empty() { 0.0 } else { TOP5_WIDTH };
        let max = Vec2::new(ui.available_width() - beside, VIEW_HEIGHT);
        let key = texture_key(&file.path);
        let names = ClassNames { det: &file.model.det_classes, seg: &file.model.seg_classes };
        ui.horizontal_top(|ui| {
            self.textures.show(ui, &key, &file.image, &layers, &self.options, names, max);
            ui.vertical(|ui| top5_ui(ui, probabilities, &file.model.cls_classes, None));
        });
        let boxes: Vec<&Detection> = self.options.visible(&file.prediction.detections, true).collect();
        self.textures.legend(ui, &key, &["prediction"], &boxes, names);
    }
}

/// Appends the paths not already listed.
fn enqueue(list: &mut Vec<PathBuf>, paths: impl IntoIterator<Item = PathBuf>) {
    for path in paths {
        if !list.contains(&path) {
            list.push(path);
        }
    }
}

/// Puts each new file in place of the one with its path, or at the end; returns
/// the index of the first, to show it.
fn merge(files: &mut Vec<PredictedFile>, new: Vec<PredictedFile>) -> Option<usize> {
    let mut first = None;
    for file in new {
        let index = match files.iter().position(|f| f.path == file.path) {
            Some(i) => {
                files[i] = file;
                i
            }
            None => {
                files.push(file);
                files.len() - 1
            }
        };
        first.get_or_insert(index);
    }
    first
}

fn texture_key(path: &Path) -> String {
    path.display().to_string()
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// `<runs>/exports/preview-<image stem>.png`.
pub fn export_path(runs_root: &Path, image: &Path) -> PathBuf {
    let stem = image.file_stem().map_or_else(|| "image".into(), |s| s.to_string_lossy());
    runs_root.join("exports").join(format!("preview-{stem}.png"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::gui::inference::ModelInfo;
    use crate::predictor::Prediction;

    fn file(path: &str, step: usize) -> PredictedFile {
        let model = ModelInfo { run: "r".into(), kind: CheckpointKind::Last, step, det_classes: vec![], seg_classes: vec![], cls_classes: vec![] };
        PredictedFile {
            path: path.into(),
            image: image::RgbImage::new(2, 2),
            prediction: Prediction { mask: Some(image::GrayImage::new(2, 2)), ..Prediction::default() },
            model: Arc::new(model),
            truth: None,
        }
    }

    #[test]
    fn enqueue_keeps_order_and_skips_repeats() {
        let mut list = vec![PathBuf::from("a.png")];
        enqueue(&mut list, ["b.png", "a.png", "b.png", "c.png"].map(PathBuf::from));
        assert_eq!(list, ["a.png", "b.png", "c.png"].map(PathBuf::from));
    }

    #[test]
    fn predicted_again_files_replace_their_old_prediction_in_place() {
        let mut files = vec![file("a.png", 1), file("b.png", 1)];
        assert_eq!(merge(&mut files, vec![file("b.png", 2), file("c.png", 2)]), Some(1));
        let seen: Vec<(String, usize)> = files.iter().map(|f| (f.path.display().to_string(), f.model.step)).collect();
        assert_eq!(seen, [("a.png".into(), 1), ("b.png".into(), 2), ("c.png".into(), 2)]);
        assert_eq!(merge(&mut files, vec![]), None);
    }

    #[test]
    fn exports_are_named_after_the_image() {
        assert_eq!(export_path(Path::new("runs"), Path::new("/x/cat.photo.jpg")), Path::new("runs/exports/preview-cat.photo.png"));
        assert_eq!(file_name(Path::new("/x/cat.jpg")), "cat.jpg");
    }
}
