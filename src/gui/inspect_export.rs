//! Inspect's export button: the predictions of the inspected images in a
//! standard format (COCO results or VOC devkit files for the detection images,
//! ADE-encoded mask PNGs for the segmentation images), written by a job to
//! `<runs>/exports/<run>-<checkpoint>-<format>-<time>/`.

use std::path::{Path, PathBuf};

use eframe::egui;

use super::job::Job;
use crate::session::Notice;
use crate::data::coco::CocoIds;
use crate::export::{write_standard, ExportFormat, ImagePrediction, Naming};
use crate::model::TaskSet;
use crate::predictor::Prediction;

/// The formats offered, with their names in the combo.
const FORMATS: [(ExportFormat, &str); 3] =
    [(ExportFormat::Coco, "COCO results JSON"), (ExportFormat::Voc, "VOC devkit files"), (ExportFormat::Png, "ADE mask PNGs")];

/// What an export writes: the images' ids and predictions, owned by the job.
pub struct ExportRequest {
    pub det: Vec<(String, Prediction)>,
    pub seg: Vec<(String, Prediction)>,
    pub det_classes: Vec<String>,
    pub voc_split: String,
    pub coco_ids: CocoIds,
    /// `<run>-<checkpoint>`, the start of the folder's name.
    pub label: String,
}

pub struct ExportRow {
    format: ExportFormat,
    job: Option<Job<Vec<PathBuf>>>,
}

impl Default for ExportRow {
    fn default() -> Self {
        Self { format: ExportFormat::Coco, job: None }
    }
}

impl ExportRow {
    /// The row; `request` is called only when the user exports.
    /// Offers the formats of the network's `tasks` (none for classification alone).
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        exports: &Path,
        tasks: TaskSet,
        request: impl FnOnce() -> ExportRequest,
        repaint: impl Fn() + Send + Sync + 'static,
    ) -> Option<Notice> {
        let mut notice = None;
        if let Some(result) = self.job.as_mut().and_then(Job::poll) {
            self.job = None;
            notice = Some(match result {
                Ok(files) => Notice::info(format!(
                    "exported {} file(s) to {}",
                    files.len(),
                    files.first().and_then(|f| f.parent()).map_or(String::new(), |d| d.display().to_string())
                )),
                Err(error) => Notice::error(format!("Export: {error:#}")),
            });
        }
        let offered: Vec<(ExportFormat, &str)> = FORMATS.into_iter().filter(|(f, _)| f.task().is_some_and(|t| tasks.contains(t))).collect();
        let Some(&(first, _)) = offered.first() else {
            return notice;
        };
        if !offered.iter().any(|(f, _)| *f == self.format) {
            self.format = first;
        }
        ui.horizontal(|ui| {
            let name = offered.iter().find(|(f, _)| *f == self.format).map_or("", |(_, n)| n);
            egui::ComboBox::from_id_salt("inspect export format").selected_text(name).show_ui(ui, |ui| {
                for &(format, name) in &offered {
                    ui.selectable_value(&mut self.format, format, name);
                }
            });
            let button = ui.add_enabled(self.job.is_none(), egui::Button::new("Export predictions"));
            if button.on_hover_text("The predictions of the images inspected here, in the chosen format").clicked() {
                let request = request();
                let format = self.format;
                let out = exports.join(format!("{}-{}-{}", request.label, format_name(format), super::unix_seconds()));
                self.job = Some(Job::spawn("export predictions", repaint, move |_| export(&request, format, &out)));
            }
        });
        notice
    }
}

fn export(request: &ExportRequest, format: ExportFormat, out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", out.display()))?;
    // Boxes are scored on the detection images, masks on the segmentation images.
    let images = if format == ExportFormat::Png { &request.seg } else { &request.det };
    let images: Vec<ImagePrediction> = images.iter().map(|(id, prediction)| ImagePrediction { id, prediction }).collect();
    let naming = Naming { det_classes: &request.det_classes, voc_split: &request.voc_split, coco_ids: &request.coco_ids };
    write_standard(&[format], out, &images, &naming)
}

/// The format's name as `predict --format` takes it.
fn format_name(format: ExportFormat) -> String {
    clap::ValueEnum::to_possible_value(&format).map_or_else(String::new, |v| v.get_name().to_string())
}
