//! Setup's dataset folders, one per task: the folder the user types or
//! picks, `data check` run on it at once (on the server the run will train on,
//! when it is one), its statistics and problems, and whether the run trains
//! that task (`data.tasks`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use eframe::egui;

use super::dataset_stats;
use super::job::Job;
use super::settings::Settings;
use super::shared::Shared;
use crate::data::check::{self, CheckReport, CheckRequest};
use crate::session::Notice;
use crate::train::config::TrainConfig;
use crate::train::strategy::Task;

/// The three folder fields (each optional: an empty field leaves its task out of the run).
pub struct DatasetFields {
    voc: FolderField,
    ade: FolderField,
    cls: FolderField,
}

/// A dataset folder: the text the user edits, and what checking it found.
struct FolderField {
    text: String,
    check: FolderCheck,
    dialog: Option<Job<Option<PathBuf>>>,
}

enum FolderCheck {
    None,
    Running(Job<CheckReport>),
    Done(Result<CheckReport, String>),
}

#[derive(Clone, Copy, PartialEq)]
enum Dataset {
    Voc,
    Ade,
    Cls,
}

impl Dataset {
    const ALL: [Dataset; 3] = [Dataset::Voc, Dataset::Ade, Dataset::Cls];

    fn task(self) -> Task {
        match self {
            Dataset::Voc => Task::Det,
            Dataset::Ade => Task::Seg,
            Dataset::Cls => Task::Cls,
        }
    }

    fn short_name(self) -> &'static str {
        match self {
            Dataset::Voc => "detection",
            Dataset::Ade => "segmentation",
            Dataset::Cls => "classification",
        }
    }
}

impl DatasetFields {
    /// The fields of `draft`'s folders.
    pub fn new(draft: &TrainConfig) -> Self {
        let data = &draft.data;
        Self { voc: FolderField::new(data.voc.as_deref()), ade: FolderField::new(data.ade.as_deref()), cls: FolderField::new(data.cls.as_deref()) }
    }

    /// A preset on synthetic data keeps its own folders; any other takes the user's.
    pub fn apply_saved(&mut self, draft: &mut TrainConfig, settings: &Settings) {
        if draft.data.synthetic.is_some() {
            return;
        }
        if let Some(dir) = settings.voc_dir.clone() {
            self.set_folder(draft, Dataset::Voc, dir);
        }
        if let Some(dir) = settings.ade_dir.clone() {
            self.set_folder(draft, Dataset::Ade, dir);
        }
        if let Some(dir) = settings.cls_dir.clone() {
            self.set_folder(draft, Dataset::Cls, dir);
        }
    }

    /// Drops what the checks found (the folders now name another machine's).
    pub fn forget_checks(&mut self) {
        for which in Dataset::ALL {
            self.field(which).check = FolderCheck::None;
        }
    }

    /// Takes the results of the checks and of the folder dialogs.
    pub fn poll(&mut self, draft: &mut TrainConfig, target: Option<&str>, shared: &mut Shared) {
        for which in Dataset::ALL {
            let field = self.field(which);
            if let FolderCheck::Running(job) = &mut field.check {
                if let Some(result) = job.poll() {
                    field.check = FolderCheck::Done(result.map_err(|e| format!("{e:#}")));
                }
            }
            let chosen = field.dialog.as_mut().and_then(Job::poll);
            if let Some(result) = chosen {
                field.dialog = None;
                match result {
                    Ok(Some(dir)) => {
                        self.set_folder(draft, which, dir.clone());
                        self.start_check(draft, target, which, shared);
                        remember_folder(&mut shared.settings, which, Some(dir));
                    }
                    Ok(None) => {}
                    Err(error) => shared.notifications.push(Notice::error(format!("folder dialog: {error:#}"))),
                }
            }
        }
    }

    /// A row per dataset, with its check's summary below it.
    pub fn ui(&mut self, ui: &mut egui::Ui, draft: &mut TrainConfig, target: Option<&str>, shared: &mut Shared) {
        for which in Dataset::ALL {
            self.row(ui, draft, target, shared, which);
        }
    }

    fn field(&mut self, which: Dataset) -> &mut FolderField {
        match which {
            Dataset::Voc => &mut self.voc,
            Dataset::Ade => &mut self.ade,
            Dataset::Cls => &mut self.cls,
        }
    }

    /// Points the draft at a dataset folder (no longer the generated one).
    fn set_folder(&mut self, draft: &mut TrainConfig, which: Dataset, dir: PathBuf) {
        self.field(which).text = dir.display().to_string();
        let data = &mut draft.data;
        let changed = match which {
            Dataset::Voc => data.voc.replace(dir.clone()) != Some(dir),
            Dataset::Ade => data.ade.replace(dir.clone()) != Some(dir),
            Dataset::Cls => data.cls.replace(dir.clone()) != Some(dir),
        };
        if changed {
            data.synthetic = None;
        }
    }

    /// Drops a dataset: the run leaves its task out.
    fn clear(&mut self, draft: &mut TrainConfig, which: Dataset) {
        *self.field(which) = FolderField::new(None);
        let data = &mut draft.data;
        match which {
            Dataset::Voc => data.voc = None,
            Dataset::Ade => data.ade = None,
            Dataset::Cls => {
                data.cls = None;
                if let Some(synthetic) = &mut data.synthetic {
                    synthetic.cls_images = 0;
                }
            }
        }
        if let Some(tasks) = data.tasks {
            data.tasks = Some(tasks.without(which.task()));
        }
    }

    fn start_check(&mut self, draft: &TrainConfig, target: Option<&str>, which: Dataset, shared: &Shared) {
        // A folder is checked whether or not its task is ticked.
        let data = &crate::train::config::DataConfig { tasks: None, ..draft.data.clone() };
        let request = match which {
            Dataset::Voc => CheckRequest { det: data.det_spec(), det_split: Some(data.voc_train_split.clone()), ..Default::default() },
            Dataset::Ade => CheckRequest { seg: data.seg_spec(), seg_split: Some(data.ade_train_split.clone()), ..Default::default() },
            Dataset::Cls => CheckRequest {
                cls: data.cls.clone().map(|dir| (dir, data.cls_format)),
                cls_split: Some(data.cls_train_split.clone()),
                ..Default::default()
            },
        };
        let server: Option<std::sync::Arc<crate::serve::client::Client>> = target.and_then(|label| shared.servers.get(label).cloned());
        let job = Job::spawn("dataset check", shared.repaint.callback(), move |progress| match server {
            // The folders are the server's: checked there.
            Some(client) => client.check(&crate::serve::api::CheckRequest {
                voc: request.det.map(|spec| spec.dir),
                ade: request.seg.map(|spec| spec.dir),
                cls: request.cls.map(|(dir, _)| dir),
                voc_split: request.det_split,
                ade_split: request.seg_split,
                cls_split: request.cls_split,
            }),
            None => {
                let files = AtomicUsize::new(0);
                check::check(&request, &|| progress.set(files.fetch_add(1, Ordering::Relaxed) + 1, 0))
            }
        });
        self.field(which).check = FolderCheck::Running(job);
    }

    fn row(&mut self, ui: &mut egui::Ui, draft: &mut TrainConfig, target: Option<&str>, shared: &mut Shared, which: Dataset) {
        let label = match which {
            Dataset::Voc => "Detection dataset (VOC, COCO, YOLO)",
            Dataset::Ade => "Segmentation dataset (ADE20K, masks)",
            Dataset::Cls => "Classification dataset (image list, class folders)",
        };
        let synthetic = draft.data.synthetic.is_some();
        let mut edited = false;
        let mut browse = false;
        let mut check = false;
        let mut trained = draft.data.run_tasks().contains(which.task());
        let mut toggled = false;
        ui.horizontal(|ui| {
            toggled = ui
                .checkbox(&mut trained, "train")
                .on_hover_text(format!("Train {} in this run (data.tasks); unticked, the run leaves it out", which.short_name()))
                .changed();
            let label_response = ui.label(label);
            let field = self.field(which);
            let response = ui.add(egui::TextEdit::singleline(&mut field.text).desired_width(320.0)).labelled_by(label_response.id);
            edited = response.lost_focus();
            browse = ui.add_enabled(field.dialog.is_none(), egui::Button::new("Choose…")).clicked();
            let running = matches!(field.check, FolderCheck::Running(_));
            check = ui
                .add_enabled(!running && !field.text.trim().is_empty(), egui::Button::new(format!("Check {}", which.short_name())))
                .on_hover_text("Validate every record and show the dataset's statistics")
                .clicked();
            if synthetic && !field.text.trim().is_empty() {
                ui.weak("(synthetic, generated on first use)");
            }
        });
        let text = self.field(which).text.trim().to_string();
        if toggled {
            set_task(draft, which.task(), trained);
        }
        let folder = match which {
            Dataset::Voc => &draft.data.voc,
            Dataset::Ade => &draft.data.ade,
            Dataset::Cls => &draft.data.cls,
        };
        if edited && text.is_empty() && folder.is_some() {
            self.clear(draft, which);
            remember_folder(&mut shared.settings, which, None);
        } else if edited && !text.is_empty() {
            let dir = PathBuf::from(text);
            let changed = folder.as_ref() != Some(&dir);
            if changed || matches!(self.field(which).check, FolderCheck::None) {
                self.set_folder(draft, which, dir.clone());
                self.start_check(draft, target, which, shared);
                remember_folder(&mut shared.settings, which, Some(dir));
            }
        }
        if check {
            self.start_check(draft, target, which, shared);
        }
        if browse {
            let start = PathBuf::from(&self.field(which).text);
            self.field(which).dialog = Some(Job::spawn("folder dialog", shared.repaint.callback(), move |_| {
                let mut dialog = rfd::FileDialog::new().set_title(label);
                if start.is_dir() {
                    dialog = dialog.set_directory(&start);
                }
                Ok(dialog.pick_folder())
            }));
        }
        ui.indent(label, |ui| check_summary(ui, &self.field(which).check));
    }
}

/// Trains `task` in the run or leaves it out (`data.tasks`, unset while
/// it is every task with a dataset).
fn set_task(draft: &mut TrainConfig, task: Task, trained: bool) {
    let data = &mut draft.data;
    let tasks = data.run_tasks();
    let tasks = if trained { tasks.with(task) } else { tasks.without(task) };
    data.tasks = (tasks != data.configured_tasks()).then_some(tasks);
}

impl FolderField {
    /// The field of a dataset: empty when there is none.
    fn new(dir: Option<&Path>) -> Self {
        Self { text: dir.map(|d| d.display().to_string()).unwrap_or_default(), check: FolderCheck::None, dialog: None }
    }
}

/// Keeps the folder for the next launch (`None`: the user emptied the field).
fn remember_folder(settings: &mut Settings, which: Dataset, dir: Option<PathBuf>) {
    match which {
        Dataset::Voc => settings.voc_dir = dir,
        Dataset::Ade => settings.ade_dir = dir,
        Dataset::Cls => settings.cls_dir = dir,
    }
}

/// The `data check` summary of a folder, inline.
fn check_summary(ui: &mut egui::Ui, check: &FolderCheck) {
    match check {
        FolderCheck::None => {}
        FolderCheck::Running(job) => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(format!("checking… {} files", job.progress.0));
            });
        }
        FolderCheck::Done(Err(error)) => {
            ui.colored_label(ui.visuals().error_fg_color, format!("unusable: {error}"));
        }
        FolderCheck::Done(Ok(report)) => {
            if let Some(voc) = &report.voc {
                ui.label(format!(
                    "{} format: {} images in {}, {} objects ({} difficult) of {} classes; splits: {}",
                    voc.format.name().to_uppercase(),
                    voc.images,
                    voc.checked_split,
                    voc.objects,
                    voc.difficult,
                    voc.per_class.len(),
                    splits_text(&voc.splits)
                ));
            }
            if let Some(ade) = &report.ade {
                ui.label(format!(
                    "{} format ({} masks): {} images in {}, {:.1}% unlabelled pixels; splits: {}",
                    ade.format.name().to_uppercase(),
                    ade.encoding.name(),
                    ade.images,
                    ade.checked_split,
                    ade.unlabelled_fraction * 100.0,
                    splits_text(&ade.splits)
                ));
            }
            if let Some(cls) = &report.cls {
                ui.label(format!(
                    "{} format: {} images in {} of {} classes; splits: {}",
                    cls.format.name(),
                    cls.images,
                    cls.checked_split,
                    cls.per_class.len(),
                    splits_text(&cls.splits)
                ));
            }
            if let Some(voc) = &report.voc {
                dataset_stats::voc_charts(ui, voc);
            }
            if let Some(cls) = &report.cls {
                dataset_stats::cls_charts(ui, cls);
            }
            if let Some(ade) = &report.ade {
                dataset_stats::ade_charts(ui, ade);
            }
            if report.problems.is_empty() {
                ui.label("no problems found");
            } else {
                let color = ui.visuals().warn_fg_color;
                ui.colored_label(color, format!("{} problems (these records are left out):", report.problems.len()));
                for problem in report.problems.iter().take(5) {
                    ui.colored_label(color, problem.to_string());
                }
                if report.problems.len() > 5 {
                    ui.colored_label(color, format!("… and {} more", report.problems.len() - 5));
                }
            }
        }
    }
}

fn splits_text(splits: &std::collections::BTreeMap<String, usize>) -> String {
    splits.iter().map(|(name, n)| format!("{name} {n}")).collect::<Vec<_>>().join(", ")
}
