//! Setup's pretrained-weights field: `model.pretrained`, read into the
//! draft's network as soon as it is chosen (a YOLOv8 checkpoint for the CSP
//! network, torchvision weights for a ResNet), with the import report or the
//! reason the file does not fit.

use std::path::{Path, PathBuf};

use eframe::egui;

use super::job::Job;
use super::shared::Shared;
use crate::model::{ModelConfig, TwinNet};
use crate::session::Notice;
use crate::train::config::TrainConfig;

/// The text the user edits, and what reading it into the draft's network found.
pub struct WeightsField {
    text: String,
    check: Option<Job<String>>,
    result: Option<Result<String, String>>,
    /// The network the result is for: a change of size or backbone reads the file again.
    checked_for: Option<ModelConfig>,
    dialog: Option<Job<Option<PathBuf>>>,
}

impl WeightsField {
    pub fn new(path: Option<&Path>) -> Self {
        let text = path.map(|p| p.display().to_string()).unwrap_or_default();
        Self { text, check: None, result: None, checked_for: None, dialog: None }
    }

    /// Whether the file was read and does not fit the draft's network (a run would fail at once).
    pub fn does_not_fit(&self) -> bool {
        matches!(self.result, Some(Err(_)))
    }

    /// Takes the results of the file check and of the file dialog.
    pub fn poll(&mut self, draft: &mut TrainConfig, shared: &mut Shared) {
        if let Some(result) = self.check.as_mut().and_then(Job::poll) {
            self.check = None;
            self.result = Some(result.map_err(|e| format!("{e:#}")));
        }
        if let Some(result) = self.dialog.as_mut().and_then(Job::poll) {
            self.dialog = None;
            match result {
                Ok(Some(file)) => {
                    self.text = file.display().to_string();
                    self.apply(draft, shared);
                }
                Ok(None) => {}
                Err(error) => shared.notifications.push(Notice::error(format!("file dialog: {error:#}"))),
            }
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, draft: &mut TrainConfig, shared: &mut Shared) {
        let label = "Pretrained weights";
        let mut edited = false;
        let mut browse = false;
        ui.horizontal(|ui| {
            let label_response = ui.label(label);
            let edit = egui::TextEdit::singleline(&mut self.text).hint_text("none: random initialisation").desired_width(320.0);
            edited = ui.add(edit).labelled_by(label_response.id).lost_focus();
            browse = ui.add_enabled(self.dialog.is_none(), egui::Button::new("Choose file…")).clicked();
        });
        let stale = draft.model.pretrained.is_some() && self.check.is_none() && self.checked_for.as_ref() != Some(&network(draft));
        if edited || stale {
            self.apply(draft, shared);
        }
        if browse {
            self.dialog = Some(Job::spawn("file dialog", shared.repaint.callback(), move |_| {
                let dialog = rfd::FileDialog::new().set_title(label).add_filter("checkpoints", &["pt", "pth", "safetensors"]);
                Ok(dialog.pick_file())
            }));
        }
        ui.indent(label, |ui| match (&self.check, &self.result) {
            (Some(_), _) => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("reading the weights…");
                });
            }
            (None, Some(Ok(report))) => {
                ui.weak(report);
            }
            (None, Some(Err(error))) => {
                ui.colored_label(ui.visuals().error_fg_color, error);
            }
            (None, None) => {}
        });
    }

    /// Points the draft at the weights file in the field, and reads it.
    fn apply(&mut self, draft: &mut TrainConfig, shared: &Shared) {
        let text = self.text.trim();
        draft.model.pretrained = (!text.is_empty()).then(|| PathBuf::from(text));
        self.result = None;
        let Some(path) = draft.model.pretrained.clone() else {
            self.check = None;
            return;
        };
        let model = network(draft);
        self.checked_for = Some(model.clone());
        self.check = Some(Job::spawn("weights check", shared.repaint.callback(), move |_| pretrained_report(&model, &path)));
    }
}

/// The draft's network; the class counts (VOC's, ADE20K's) only decide
/// whether the head's class branch fits.
fn network(draft: &TrainConfig) -> ModelConfig {
    draft.model_config(20, 150, 0)
}

/// What starting `model` from the weights at `path` would load (read on the CPU).
fn pretrained_report(model: &ModelConfig, path: &Path) -> anyhow::Result<String> {
    let (_, report) = TwinNet::<burn::backend::Flex>::new(model, &Default::default()).load_pretrained(path)?;
    Ok(match report {
        Some(report) => report.summary(),
        None => format!("{}: torchvision weights for the {} backbone", path.display(), model.backbone.label()),
    })
}
