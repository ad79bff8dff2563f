//! The Setup panel: what the next run trains on and how (preset, dataset
//! folders checked at once, strategy and its parameters, optimiser, model,
//! device), and, while a run trains, changing its strategy and learning rate.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use eframe::egui;

use super::dataset_stats;
use super::job::Job;
use crate::session::Notice;
use super::settings::{Settings, Tab};
use super::shared::Shared;
use crate::data::check::{self, CheckReport, CheckRequest};
use crate::model::{BackboneKind, ModelConfig, ModelSize, TwinNet};
use crate::train::config::TrainConfig;
use crate::train::parallel::Placement;
use crate::train::presets::preset_names;
use crate::train::events::Control;
use crate::backend::device::DeviceSpec;
use crate::train::pseudo::PseudoLabels;
use crate::train::strategy::{
    FreezeScope, RunShape, SequenceMut, StrategyConfig, Task, TaskSet, TaskWeights, Weighting, EWC_LAMBDA, FISHER_BATCHES, REPLAY_BUFFER,
    REPLAY_EVERY,
};

/// The strategy kinds, in the order the selector lists them.
const STRATEGIES: [&str; 8] = ["alternate", "joint", "sequential", "freeze", "lwf", "ewc", "replay", "pseudo"];

pub struct SetupPanel {
    preset: String,
    /// The configuration the next Start launches.
    pub draft: TrainConfig,
    preset_error: Option<String>,
    /// The devices that answered a probe, with their descriptions.
    devices: Vec<(DeviceSpec, String)>,
    device_probe: Option<Job<Vec<(DeviceSpec, String)>>>,
    /// Each optional: an empty field leaves its task out of the run.
    voc: FolderField,
    ade: FolderField,
    cls: FolderField,
    weights: WeightsField,
    /// The learning rate to send to the focused live run.
    live_lr: f64,
    /// The server the next run trains on (its label), or this machine. On a
    /// server, dataset folders are its paths, checked there, and the devices its own.
    target: Option<String>,
}

/// The `model.pretrained` file: the text the user edits, and what reading it
/// into the draft's network found (the import report, or why it does not fit).
struct WeightsField {
    text: String,
    check: Option<Job<String>>,
    result: Option<Result<String, String>>,
    /// The network the result is for: a change of size or backbone reads the file again.
    checked_for: Option<ModelConfig>,
    dialog: Option<Job<Option<PathBuf>>>,
}

impl WeightsField {
    fn new(path: Option<&Path>) -> Self {
        let text = path.map(|p| p.display().to_string()).unwrap_or_default();
        Self { text, check: None, result: None, checked_for: None, dialog: None }
    }
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

impl SetupPanel {
    pub fn new(shared: &mut Shared) -> Self {
        let preset = shared.settings.preset.clone();
        let (draft, preset_error) = match TrainConfig::load_preset(&preset, &[]) {
            Ok(config) => (config, None),
            Err(error) => (
                TrainConfig::load_preset("quick", &[]).expect("the bundled quick preset parses"),
                Some(format!("{error:#}")),
            ),
        };
        let mut panel = Self {
            preset,
            live_lr: draft.optim.lr,
            devices: vec![(DeviceSpec::Cpu, "cpu: the CPU".into())],
            device_probe: Some(Job::spawn("device probe", shared.repaint.callback(), |_| Ok(DeviceSpec::available()))),
            voc: FolderField::new(draft.data.voc.as_deref()),
            ade: FolderField::new(draft.data.ade.as_deref()),
            cls: FolderField::new(draft.data.cls.as_deref()),
            weights: WeightsField::new(draft.model.pretrained.as_deref()),
            draft,
            preset_error,
            target: None,
        };
        panel.apply_saved_folders(&shared.settings);
        panel
    }

    /// "Train on": this machine, or a connected server.
    fn target_row(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        if shared.servers.is_empty() && self.target.is_none() {
            return;
        }
        if self.target.as_ref().is_some_and(|label| !shared.servers.contains_key(label)) {
            self.target = None;
            shared.devices = vec![DeviceSpec::Cpu];
        }
        let shown = self.target.clone().unwrap_or_else(|| "this machine".into());
        let mut chosen = None;
        ui.horizontal(|ui| {
            egui::ComboBox::from_label("Train on").selected_text(&shown).show_ui(ui, |ui| {
                if ui.selectable_label(self.target.is_none(), "this machine").clicked() {
                    chosen = Some(None);
                }
                for server in shared.session.remote_labels() {
                    if ui.selectable_label(self.target.as_ref() == Some(&server), &server).clicked() {
                        chosen = Some(Some(server));
                    }
                }
            });
            if let Some(server) = &self.target {
                ui.weak(format!("dataset folders are paths on {server}, checked there"));
            }
        });
        if let Some(target) = chosen {
            if target != self.target {
                // The devices of the place the run trains, its first one until others are picked.
                let offered = self.offered_devices(&target, shared);
                shared.devices = vec![offered.first().map_or(DeviceSpec::Cpu, |d| d.0)];
                self.target = target;
                for which in Dataset::ALL {
                    self.field(which).check = FolderCheck::None;
                }
            }
        }
    }

    /// The devices a run can train on where it would train.
    fn offered_devices(&self, target: &Option<String>, shared: &Shared) -> Vec<(DeviceSpec, String)> {
        match target {
            Some(server) => shared.session.remote_devices(server).to_vec(),
            None => self.devices.clone(),
        }
    }

    /// Stores what should survive a restart.
    pub fn remember(&self, settings: &mut Settings) {
        settings.preset = self.preset.clone();
    }

    /// A preset on synthetic data keeps its own folders; any other takes the user's.
    fn apply_saved_folders(&mut self, settings: &Settings) {
        if self.draft.data.synthetic.is_some() {
            return;
        }
        if let Some(dir) = settings.voc_dir.clone() {
            self.set_folder(Dataset::Voc, dir);
        }
        if let Some(dir) = settings.ade_dir.clone() {
            self.set_folder(Dataset::Ade, dir);
        }
        if let Some(dir) = settings.cls_dir.clone() {
            self.set_folder(Dataset::Cls, dir);
        }
    }

    fn load(&mut self, config: TrainConfig, shared: &Shared) {
        self.live_lr = config.optim.lr;
        self.voc = FolderField::new(config.data.voc.as_deref());
        self.ade = FolderField::new(config.data.ade.as_deref());
        self.cls = FolderField::new(config.data.cls.as_deref());
        self.weights = WeightsField::new(config.model.pretrained.as_deref());
        self.draft = config;
        self.apply_saved_folders(&shared.settings);
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared, preparing_data: bool) {
        if let Some(config) = shared.setup_request.take() {
            self.load(config, shared);
        }
        self.poll_jobs(shared);

        ui.heading("Setup");
        self.target_row(ui, shared);
        self.preset_row(ui, shared);
        ui.separator();
        ui.strong("Data");
        self.folder_row(ui, shared, Dataset::Voc);
        self.folder_row(ui, shared, Dataset::Ade);
        self.folder_row(ui, shared, Dataset::Cls);
        ui.separator();
        ui.strong("Forgetting mitigation");
        // A batch that does not split over the chosen devices is the batch size's error.
        let placement = Placement { devices: shared.devices.clone(), nodes: None };
        let error = self.draft.validate().and_then(|_| placement.check_batch(self.draft.data.batch_size)).err().map(|e| format!("{e:#}"));
        let run = self.draft.run_shape();
        strategy_editor(ui, &mut self.draft.strategy, run, error.as_deref());
        ui.separator();
        ui.strong("Training");
        let offered = self.offered_devices(&self.target, shared);
        self.training_grid(ui, &offered, &mut shared.devices, error.as_deref());
        self.weights_row(ui, shared);
        ui.separator();
        // A weights file that does not fit would fail the run at once.
        let weights_error = matches!(self.weights.result, Some(Err(_)))
            .then_some("model.pretrained: the file does not fit this network (see the field)");
        self.start_row(ui, shared, error.as_deref().or(weights_error), preparing_data);
        self.live_control(ui, shared);
    }

    fn poll_jobs(&mut self, shared: &mut Shared) {
        if let Some(job) = &mut self.device_probe {
            if let Some(result) = job.poll() {
                if let Ok(devices) = result {
                    self.devices = devices;
                }
                self.device_probe = None;
            }
        }
        if let Some(result) = self.weights.check.as_mut().and_then(Job::poll) {
            self.weights.check = None;
            self.weights.result = Some(result.map_err(|e| format!("{e:#}")));
        }
        if let Some(result) = self.weights.dialog.as_mut().and_then(Job::poll) {
            self.weights.dialog = None;
            match result {
                Ok(Some(file)) => {
                    self.weights.text = file.display().to_string();
                    self.set_weights(shared);
                }
                Ok(None) => {}
                Err(error) => shared.notifications.push(Notice::error(format!("file dialog: {error:#}"))),
            }
        }
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
                        self.set_folder(which, dir.clone());
                        self.start_check(which, shared);
                        remember_folder(&mut shared.settings, which, Some(dir));
                    }
                    Ok(None) => {}
                    Err(error) => shared.notifications.push(Notice::error(format!("folder dialog: {error:#}"))),
                }
            }
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
    fn set_folder(&mut self, which: Dataset, dir: PathBuf) {
        self.field(which).text = dir.display().to_string();
        let data = &mut self.draft.data;
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
    fn clear(&mut self, which: Dataset) {
        *self.field(which) = FolderField::new(None);
        let data = &mut self.draft.data;
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

    /// Trains `task` in the run or leaves it out (`data.tasks`, unset while
    /// it is every task with a dataset).
    fn set_task(&mut self, task: Task, trained: bool) {
        let data = &mut self.draft.data;
        let tasks = data.run_tasks();
        let tasks = if trained { tasks.with(task) } else { tasks.without(task) };
        data.tasks = (tasks != data.configured_tasks()).then_some(tasks);
    }

    fn start_check(&mut self, which: Dataset, shared: &Shared) {
        // A folder is checked whether or not its task is ticked.
        let data = &crate::train::config::DataConfig { tasks: None, ..self.draft.data.clone() };
        let request = match which {
            Dataset::Voc => CheckRequest { det: data.det_spec(), det_split: Some(data.voc_train_split.clone()), ..Default::default() },
            Dataset::Ade => CheckRequest { seg: data.seg_spec(), seg_split: Some(data.ade_train_split.clone()), ..Default::default() },
            Dataset::Cls => CheckRequest {
                cls: data.cls.clone().map(|dir| (dir, data.cls_format)),
                cls_split: Some(data.cls_train_split.clone()),
                ..Default::default()
            },
        };
        let server: Option<std::sync::Arc<crate::serve::client::Client>> = self.target.as_ref().and_then(|label| shared.servers.get(label).cloned());
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

    fn preset_row(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.horizontal(|ui| {
            let mut chosen = None;
            egui::ComboBox::from_label("Preset").selected_text(&self.preset).show_ui(ui, |ui| {
                for name in preset_names() {
                    if ui.selectable_label(name == self.preset, &name).clicked() {
                        chosen = Some(name);
                    }
                }
            });
            if let Some(name) = chosen {
                match TrainConfig::load_preset(&name, &[]) {
                    Ok(config) => {
                        self.preset = name;
                        self.preset_error = None;
                        self.load(config, shared);
                    }
                    Err(error) => self.preset_error = Some(format!("{error:#}")),
                }
            }
            ui.label("Run name");
            ui.add(egui::TextEdit::singleline(&mut self.draft.name).desired_width(160.0));
        });
        if let Some(error) = &self.preset_error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
    }

    fn folder_row(&mut self, ui: &mut egui::Ui, shared: &mut Shared, which: Dataset) {
        let label = match which {
            Dataset::Voc => "Detection dataset (VOC, COCO, YOLO)",
            Dataset::Ade => "Segmentation dataset (ADE20K, masks)",
            Dataset::Cls => "Classification dataset (image list, class folders)",
        };
        let synthetic = self.draft.data.synthetic.is_some();
        let mut edited = false;
        let mut browse = false;
        let mut check = false;
        let mut trained = self.draft.data.run_tasks().contains(which.task());
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
            self.set_task(which.task(), trained);
        }
        let folder = match which {
            Dataset::Voc => &self.draft.data.voc,
            Dataset::Ade => &self.draft.data.ade,
            Dataset::Cls => &self.draft.data.cls,
        };
        if edited && text.is_empty() && folder.is_some() {
            self.clear(which);
            remember_folder(&mut shared.settings, which, None);
        } else if edited && !text.is_empty() {
            let dir = PathBuf::from(text);
            let changed = folder.as_ref() != Some(&dir);
            if changed || matches!(self.field(which).check, FolderCheck::None) {
                self.set_folder(which, dir.clone());
                self.start_check(which, shared);
                remember_folder(&mut shared.settings, which, Some(dir));
            }
        }
        if check {
            self.start_check(which, shared);
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

    /// Pretrained weights: a YOLOv8 checkpoint for the CSP network, torchvision
    /// weights for a ResNet; read into the draft's network as soon as chosen.
    fn weights_row(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        let label = "Pretrained weights";
        let mut edited = false;
        let mut browse = false;
        ui.horizontal(|ui| {
            let label_response = ui.label(label);
            let edit = egui::TextEdit::singleline(&mut self.weights.text)
                .hint_text("none: random initialisation")
                .desired_width(320.0);
            edited = ui.add(edit).labelled_by(label_response.id).lost_focus();
            browse = ui.add_enabled(self.weights.dialog.is_none(), egui::Button::new("Choose file…")).clicked();
        });
        let stale = self.draft.model.pretrained.is_some()
            && self.weights.check.is_none()
            && self.weights.checked_for.as_ref() != Some(&self.weights_model());
        if edited || stale {
            self.set_weights(shared);
        }
        if browse {
            self.weights.dialog = Some(Job::spawn("file dialog", shared.repaint.callback(), move |_| {
                let dialog = rfd::FileDialog::new().set_title(label).add_filter("checkpoints", &["pt", "pth", "safetensors"]);
                Ok(dialog.pick_file())
            }));
        }
        ui.indent(label, |ui| match (&self.weights.check, &self.weights.result) {
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

    /// The draft's network; the class counts (VOC's, ADE20K's) only decide
    /// whether the head's class branch fits.
    fn weights_model(&self) -> ModelConfig {
        self.draft.model_config(20, 150, 0)
    }

    /// Points the draft at the weights file in the field, and reads it.
    fn set_weights(&mut self, shared: &Shared) {
        let text = self.weights.text.trim();
        self.draft.model.pretrained = (!text.is_empty()).then(|| PathBuf::from(text));
        self.weights.result = None;
        let Some(path) = self.draft.model.pretrained.clone() else {
            self.weights.check = None;
            return;
        };
        let model = self.weights_model();
        self.weights.checked_for = Some(model.clone());
        self.weights.check = Some(Job::spawn("weights check", shared.repaint.callback(), move |_| pretrained_report(&model, &path)));
    }

    fn training_grid(&mut self, ui: &mut egui::Ui, offered: &[(DeviceSpec, String)], devices: &mut Vec<DeviceSpec>, error: Option<&str>) {
        let draft = &mut self.draft;
        egui::Grid::new("training").num_columns(3).spacing([12.0, 4.0]).show(ui, |ui| {
            ui.label("Steps");
            ui.add(egui::DragValue::new(&mut draft.steps).range(1..=10_000_000));
            field_error(ui, error, "steps");
            ui.end_row();
            ui.label("Learning rate");
            ui.add(egui::DragValue::new(&mut draft.optim.lr).speed(1e-4).range(0.0..=10.0).max_decimals(6));
            field_error(ui, error, "optim.lr");
            ui.end_row();
            ui.label("Batch size");
            ui.add(egui::DragValue::new(&mut draft.data.batch_size).range(0..=1024));
            field_error(ui, error, "data.batch_size");
            ui.end_row();
            ui.label("Image size");
            ui.add(egui::DragValue::new(&mut draft.data.image_size).speed(1.0).range(0..=2048));
            field_error(ui, error, "data.image_size");
            ui.end_row();
            ui.label("Model size");
            ui.horizontal(|ui| {
                for (size, label) in [(ModelSize::N, "n"), (ModelSize::S, "s"), (ModelSize::M, "m")] {
                    ui.radio_value(&mut draft.model.size, size, label);
                }
            });
            ui.label("");
            ui.end_row();
            ui.label("Backbone");
            egui::ComboBox::from_id_salt("backbone").selected_text(backbone_label(draft.model.backbone)).show_ui(ui, |ui| {
                for kind in [BackboneKind::Csp, BackboneKind::Resnet18, BackboneKind::Resnet34, BackboneKind::Resnet50] {
                    ui.selectable_value(&mut draft.model.backbone, kind, backbone_label(kind));
                }
            });
            ui.label("");
            ui.end_row();
            ui.label("Evaluate every");
            ui.add(egui::DragValue::new(&mut draft.eval.every).range(0..=1_000_000).suffix(" steps"));
            field_error(ui, error, "eval.every");
            ui.end_row();
            // One run, several devices (data-parallel, one replica each): GPUs are
            // picked in the list, CPU replicas counted beside it.
            let label = ui.label("Device");
            ui.horizontal(|ui| {
                let shown = Placement { devices: devices.clone(), nodes: None }.describe();
                let combo = egui::ComboBox::from_id_salt("device").selected_text(shown).show_ui(ui, |ui| {
                    for (choice, description) in offered {
                        if ui.selectable_label(devices.contains(choice), description).clicked() {
                            toggle_device(devices, *choice);
                        }
                    }
                });
                combo.response.labelled_by(label.id).on_hover_text("Click more GPUs of one kind to train one run on all of them");
                if devices[0] == DeviceSpec::Cpu {
                    let mut replicas = devices.len();
                    let label = ui.label("replicas");
                    let count = ui.add(egui::DragValue::new(&mut replicas).range(1..=8).prefix("× "));
                    count.labelled_by(label.id).on_hover_text("CPU replicas (data-parallel on the CPU's cores)");
                    *devices = vec![DeviceSpec::Cpu; replicas];
                }
            });
            let built = match (cfg!(feature = "cuda"), cfg!(feature = "wgpu")) {
                (true, true) => "this build: CUDA and wgpu",
                (true, false) => "this build: CUDA (no wgpu)",
                (false, true) => "this build: wgpu (no CUDA; --features cuda)",
                (false, false) => "this build: CPU only (--features cuda, wgpu)",
            };
            match (&self.target, self.device_probe.is_some(), offered.len()) {
                (Some(server), _, 0) => ui.label(format!("waiting for {server}'s devices")),
                (Some(server), ..) => ui.label(format!("the devices of {server}")),
                (None, true, _) => ui.label("looking for GPUs…"),
                (None, false, 1) => ui.label(format!("no GPU answered ({built})")),
                (None, false, _) => ui.label(built),
            };
            ui.end_row();
        });
    }

    fn start_row(&mut self, ui: &mut egui::Ui, shared: &mut Shared, error: Option<&str>, preparing_data: bool) {
        ui.horizontal(|ui| {
            let ready = error.is_none() && !preparing_data;
            let busy = !shared.session.active_names().is_empty();
            let label = if busy { "Queue" } else { "Start" };
            let response = ui.add_enabled(ready, egui::Button::new(egui::RichText::new(label).strong()));
            let response = match (error, preparing_data) {
                (_, true) => response.on_disabled_hover_text("waiting for the synthetic datasets"),
                (Some(error), _) => response.on_disabled_hover_text(error),
                _ => response.on_hover_text("Train with this configuration (queued when a run is training on the device)"),
            };
            if response.clicked() && self.target.is_some() {
                let server = self.target.clone().expect("checked");
                match shared.session.enqueue_on(&server, self.draft.clone(), &shared.devices) {
                    Ok(()) => {
                        shared.notifications.push(Notice::info(format!("sent {} to {server}", self.draft.name)));
                        shared.settings.tab = Tab::Curves;
                    }
                    Err(error) => shared.notifications.push(Notice::error(format!("{error:#}"))),
                }
            } else if response.clicked() {
                match shared.session.enqueue(self.draft.clone(), &shared.devices) {
                    Ok(name) => {
                        shared.selection.checked.insert(name.clone());
                        shared.selection.focused = Some(name.clone());
                        shared.notifications.push(Notice::info(format!("queued {name}")));
                        shared.settings.tab = Tab::Curves;
                    }
                    Err(error) => shared.notifications.push(Notice::error(format!("{error:#}"))),
                }
            }
            if let Some(error) = error {
                ui.colored_label(ui.visuals().error_fg_color, error);
            }
        });
    }

    /// Strategy and learning-rate changes for the focused run while it trains.
    fn live_control(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        let Some(name) = shared.selection.focused.clone().filter(|n| shared.session.is_steerable(n)) else {
            return;
        };
        ui.separator();
        ui.strong(format!("Live control: {name}"));
        let mut outcome = Ok(());
        ui.horizontal(|ui| {
            let valid = self.draft.strategy.validate(self.draft.run_shape()).is_ok();
            if ui
                .add_enabled(valid, egui::Button::new("Apply strategy to the running run"))
                .on_hover_text(format!("Switch {name} to {} now", self.draft.strategy.name()))
                .clicked()
            {
                outcome = shared.session.control(&name, Control::SetStrategy(self.draft.strategy.clone()));
            }
        });
        ui.horizontal(|ui| {
            ui.label("Learning rate");
            ui.add(egui::DragValue::new(&mut self.live_lr).speed(1e-4).range(1e-8..=10.0).max_decimals(6));
            if ui.button("Set learning rate").clicked() {
                outcome = shared.session.control(&name, Control::SetLearningRate(self.live_lr));
            }
        });
        if let Err(error) = outcome {
            shared.notifications.push(Notice::error(format!("{error:#}")));
        }
    }
}

impl Drop for SetupPanel {
    /// The device probe runs inside the GPU drivers: a process that exits under
    /// it crashes in the driver's exit handlers (a SIGSEGV after a GUI test
    /// that ended within a second, on Mesa's lavapipe). So the window waits for
    /// the probe, which takes a second or two, before it lets the process end.
    fn drop(&mut self) {
        if let Some(probe) = &self.device_probe {
            if !probe.wait_within(std::time::Duration::from_secs(30)) {
                tracing::warn!("the device probe did not end within 30 s; closing without it");
            }
        }
    }
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

/// The strategy selector and its parameters.
fn strategy_editor(ui: &mut egui::Ui, strategy: &mut StrategyConfig, run: RunShape, error: Option<&str>) {
    ui.horizontal(|ui| {
        egui::ComboBox::from_label("Strategy").selected_text(strategy.name()).show_ui(ui, |ui| {
            for kind in STRATEGIES {
                if ui.selectable_label(strategy.name() == kind, kind).clicked() && strategy.name() != kind {
                    *strategy = default_strategy(kind, strategy, run.steps);
                }
            }
        });
    });
    // Three tasks: the order and every switch step are spelled out, to edit.
    let schedule = strategy.schedule(run).filter(|_| run.tasks.len() > 2);
    if let (Some(schedule), Some(sequence)) = (schedule, strategy.sequence_mut()) {
        if sequence.order.is_empty() {
            (*sequence.order, *sequence.switch_steps) = (schedule.order, schedule.switches);
        }
    }
    egui::Grid::new("strategy parameters").num_columns(3).spacing([12.0, 4.0]).show(ui, |ui| {
        if let Some(sequence) = strategy.sequence_mut() {
            sequence_rows(ui, sequence, run.tasks, error);
        }
        match strategy {
            StrategyConfig::Alternate { period, weighting, weights, det_weight, seg_weight, pseudo_labels } => {
                ui.label("Switch task every");
                ui.add(egui::DragValue::new(period).range(0..=100_000).suffix(" steps"));
                field_error(ui, error, "strategy.period");
                ui.end_row();
                weighting_rows(ui, weighting, weights, [det_weight, seg_weight], run.tasks, error);
                pseudo_option_rows(ui, pseudo_labels, run.tasks, error);
            }
            StrategyConfig::Joint { weighting, weights, det_weight, seg_weight, pseudo_labels } => {
                weighting_rows(ui, weighting, weights, [det_weight, seg_weight], run.tasks, error);
                pseudo_option_rows(ui, pseudo_labels, run.tasks, error);
            }
            StrategyConfig::Sequential { .. } => {}
            StrategyConfig::Freeze { freeze, .. } => {
                ui.label("Freeze in later phases");
                egui::ComboBox::from_id_salt("freeze").selected_text(String::from(*freeze)).show_ui(ui, |ui| {
                    for scope in [
                        FreezeScope::Stages(1),
                        FreezeScope::Stages(2),
                        FreezeScope::Stages(3),
                        FreezeScope::Stages(4),
                        FreezeScope::Backbone,
                        FreezeScope::BackboneAndNeck,
                    ] {
                        ui.selectable_value(freeze, scope, String::from(scope));
                    }
                });
                ui.label("");
                ui.end_row();
            }
            StrategyConfig::Lwf { weight, temperature, .. } => {
                ui.label("Distillation weight");
                ui.add(egui::DragValue::new(weight).speed(0.05).range(0.0..=1000.0));
                ui.label("");
                ui.end_row();
                ui.label("Temperature");
                ui.add(egui::DragValue::new(temperature).speed(0.05).range(0.0..=100.0));
                field_error(ui, error, "strategy.temperature");
                ui.end_row();
            }
            StrategyConfig::Ewc { lambda, fisher_batches, .. } => {
                ui.label("EWC λ");
                ui.add(egui::DragValue::new(lambda).speed(0.5).range(0.0..=1e9));
                ui.label("");
                ui.end_row();
                ui.label("Fisher batches");
                ui.add(egui::DragValue::new(fisher_batches).range(0..=10_000)).on_hover_text("Per earlier task");
                field_error(ui, error, "strategy.fisher_batches");
                ui.end_row();
            }
            StrategyConfig::Replay { buffer, every, .. } => {
                ui.label("Replay buffer");
                ui.add(egui::DragValue::new(buffer).speed(0.01).range(0.0..=1e6))
                    .on_hover_text("Per earlier task. Below 1: a fraction of its training images; 1 or more: a count");
                field_error(ui, error, "strategy.buffer");
                ui.end_row();
                ui.label("Replay on 1 step in");
                ui.add(egui::DragValue::new(every).range(0..=10_000).suffix(" steps"))
                    .on_hover_text("With several earlier tasks, each replay step takes the next one's buffer in turn");
                field_error(ui, error, "strategy.every");
                ui.end_row();
            }
            StrategyConfig::Pseudo { pseudo_labels, .. } => pseudo_rows(ui, pseudo_labels, run.tasks, error),
        }
    });
}

/// `alternate`/`joint`'s pseudo-label switch, and its settings when on.
fn pseudo_option_rows(ui: &mut egui::Ui, pseudo_labels: &mut Option<PseudoLabels>, tasks: TaskSet, error: Option<&str>) {
    ui.label("Pseudo-labels");
    let mut on = pseudo_labels.is_some();
    if ui.checkbox(&mut on, "label each batch for the other tasks (teacher: weight EMA)").changed() {
        *pseudo_labels = on.then(PseudoLabels::default);
    }
    ui.label("");
    ui.end_row();
    if let Some(settings) = pseudo_labels {
        pseudo_rows(ui, settings, tasks, error);
    }
}

fn pseudo_rows(ui: &mut egui::Ui, settings: &mut PseudoLabels, tasks: TaskSet, error: Option<&str>) {
    ui.label("Pseudo-label weight");
    ui.add(egui::DragValue::new(&mut settings.weight).speed(0.05).range(0.0..=100.0));
    field_error(ui, error, "strategy.pseudo_labels.weight");
    ui.end_row();
    ui.label("Box score above");
    ui.add(egui::DragValue::new(&mut settings.box_score).speed(0.01).range(0.0..=1.0))
        .on_hover_text("The teacher's boxes scoring above this become detection targets");
    field_error(ui, error, "strategy.pseudo_labels.box_score");
    ui.end_row();
    ui.label("Pixel confidence from");
    ui.add(egui::DragValue::new(&mut settings.pixel_confidence).speed(0.01).range(0.0..=1.0))
        .on_hover_text("Pixels where the teacher's class probability reaches this become segmentation targets; the rest are ignored");
    field_error(ui, error, "strategy.pseudo_labels.pixel_confidence");
    ui.end_row();
    ui.label("Ignore unsure boxes");
    ui.horizontal(|ui| {
        let mut on = settings.background_score.is_some();
        if ui.checkbox(&mut on, "scoring from").changed() {
            settings.background_score = on.then_some(0.1);
        }
        if let Some(floor) = &mut settings.background_score {
            ui.add(egui::DragValue::new(floor).speed(0.01).range(0.0..=1.0));
        }
    })
    .response
    .on_hover_text("Anchors the teacher scores between this and the box score are neither object nor background for the student");
    field_error(ui, error, "strategy.pseudo_labels.background_score");
    ui.end_row();
    ui.label("Pseudo-labels from step");
    ui.add(egui::DragValue::new(&mut settings.start_step).range(0..=10_000_000))
        .on_hover_text("A burn-in: no pseudo-labels before this step, while the teacher is still learning");
    ui.label("");
    ui.end_row();
    let teachers = [
        (Task::Det, "Detection teacher", "det_teacher", &mut settings.det_teacher, "best-det"),
        (Task::Seg, "Segmentation teacher", "seg_teacher", &mut settings.seg_teacher, "best-seg"),
        (Task::Cls, "Classification teacher", "cls_teacher", &mut settings.cls_teacher, "best-cls"),
    ];
    for (_, label, key, teacher, example) in teachers.into_iter().filter(|(task, ..)| tasks.contains(*task)) {
        let label = ui.label(label);
        let mut text = teacher.as_ref().map(|dir| dir.display().to_string()).unwrap_or_default();
        let edit = egui::TextEdit::singleline(&mut text).hint_text("the strategy's own teacher").desired_width(260.0);
        let response = ui.add(edit).labelled_by(label.id).on_hover_text(format!(
            "A checkpoint folder of another run (e.g. runs/NAME/checkpoints/{example}): its frozen network labels the other dataset's images, a specialist as in MuST"
        ));
        if response.changed() {
            *teacher = (!text.is_empty()).then(|| PathBuf::from(text));
        }
        field_error(ui, error, &format!("strategy.pseudo_labels.{key}"));
        ui.end_row();
    }
}

fn weighting_rows(
    ui: &mut egui::Ui,
    weighting: &mut Weighting,
    weights: &mut TaskWeights,
    older: [&mut f32; 2],
    tasks: TaskSet,
    error: Option<&str>,
) {
    ui.label("Loss weighting");
    ui.horizontal(|ui| {
        ui.radio_value(weighting, Weighting::Fixed, "fixed");
        ui.radio_value(weighting, Weighting::Uncertainty, "uncertainty (learned)");
    });
    ui.label("");
    ui.end_row();
    if *weighting == Weighting::Fixed {
        // A config in the older spelling (det_weight, seg_weight) is edited as the table.
        for (task, old) in [Task::Det, Task::Seg].into_iter().zip(older) {
            *weights.get_mut(task) *= std::mem::replace(old, 1.0);
        }
        ui.label("Weights");
        ui.horizontal(|ui| {
            for task in tasks.iter() {
                ui.label(task.key());
                ui.add(egui::DragValue::new(weights.get_mut(task)).speed(0.05).range(0.0..=100.0))
                    .on_hover_text(format!("The factor of the {task} loss"));
            }
        });
        field_error(ui, error, "strategy.weights");
        ui.end_row();
    }
}

/// The sequence: the first task and the switch step of two tasks, or the
/// whole order (reordered with ⬆) and a switch step per later phase.
fn sequence_rows(ui: &mut egui::Ui, sequence: SequenceMut, tasks: TaskSet, error: Option<&str>) {
    let SequenceMut { first, switch_step, order, switch_steps, lr_factor } = sequence;
    if order.is_empty() {
        // A run of two tasks other than detection and segmentation starts with one of its own.
        if let Some(task) = tasks.iter().next().filter(|_| !tasks.contains(*first)) {
            *first = task;
        }
        ui.label("First task");
        ui.horizontal(|ui| {
            for task in tasks.iter() {
                ui.radio_value(first, task, task.to_string());
            }
        });
        ui.label("");
        ui.end_row();
        ui.label("Switch at step");
        ui.add(egui::DragValue::new(switch_step).range(0..=10_000_000));
        field_error(ui, error, "strategy.switch_step");
        ui.end_row();
    } else {
        ui.label("Task order");
        ui.horizontal(|ui| {
            let mut raise = None;
            for (i, task) in order.iter().enumerate() {
                ui.label(format!("{}. {task}", i + 1));
                if i > 0 && ui.small_button("⬆").on_hover_text(format!("Train {task} before {}", order[i - 1])).clicked() {
                    raise = Some(i);
                }
                if i + 1 < order.len() {
                    ui.separator();
                }
            }
            if let Some(i) = raise {
                order.swap(i - 1, i);
            }
        });
        field_error(ui, error, "strategy.order");
        ui.end_row();
        ui.label("Switch at steps");
        ui.horizontal(|ui| {
            for (step, task) in switch_steps.iter_mut().zip(order.iter().skip(1)) {
                ui.add(egui::DragValue::new(step).range(0..=10_000_000)).on_hover_text(format!("{task} starts here"));
            }
        });
        field_error(ui, error, "strategy.switch_steps");
        ui.end_row();
    }
    ui.label("Later phases' LR factor");
    ui.add(egui::DragValue::new(lr_factor).speed(0.01).range(0.0..=10.0));
    field_error(ui, error, "strategy.lr_factor");
    ui.end_row();
}

/// The error next to the field it is about (errors name their key first).
fn field_error(ui: &mut egui::Ui, error: Option<&str>, key: &str) {
    match error.and_then(|e| e.strip_prefix(key)).and_then(|rest| rest.strip_prefix(": ")) {
        Some(why) => ui.colored_label(ui.visuals().error_fg_color, why),
        None => ui.label(""),
    };
}

/// Adds `choice` to the training devices, or takes it out (never the last
/// one); a device of another kind starts a new list (one run, one backend).
fn toggle_device(devices: &mut Vec<DeviceSpec>, choice: DeviceSpec) {
    if devices.contains(&choice) {
        if devices.iter().any(|d| *d != choice) {
            devices.retain(|d| *d != choice);
        }
    } else if choice.same_kind(devices[0]) && choice != DeviceSpec::Cpu {
        devices.push(choice);
    } else {
        *devices = vec![choice];
    }
}

/// A new strategy of `kind`, keeping the sequence settings of the current one.
fn default_strategy(kind: &str, current: &StrategyConfig, steps: usize) -> StrategyConfig {
    let sequence = current.sequence();
    let first = sequence.map_or(Task::Det, |s| s.first);
    let switch_step = sequence.map_or(steps / 2, |s| s.switch_step);
    let lr_factor = sequence.map_or(0.1, |s| s.lr_factor);
    let (order, switch_steps) = current.sequence_lists();
    match kind {
        "alternate" => StrategyConfig::alternate(),
        "joint" => StrategyConfig::joint(),
        "freeze" => StrategyConfig::Freeze { first, switch_step, order, switch_steps, lr_factor, freeze: FreezeScope::Backbone },
        "lwf" => StrategyConfig::Lwf { first, switch_step, order, switch_steps, lr_factor, weight: 1.0, temperature: 2.0 },
        "ewc" => StrategyConfig::Ewc {
            first,
            switch_step,
            order,
            switch_steps,
            lr_factor,
            lambda: EWC_LAMBDA,
            fisher_batches: FISHER_BATCHES,
        },
        "replay" => {
            StrategyConfig::Replay { first, switch_step, order, switch_steps, lr_factor, buffer: REPLAY_BUFFER, every: REPLAY_EVERY }
        }
        "pseudo" => StrategyConfig::Pseudo { first, switch_step, order, switch_steps, lr_factor, pseudo_labels: PseudoLabels::default() },
        _ => StrategyConfig::Sequential { first, switch_step, order, switch_steps, lr_factor },
    }
}

fn backbone_label(kind: BackboneKind) -> &'static str {
    match kind {
        BackboneKind::Csp => "CSP (scaled by size)",
        BackboneKind::Resnet18 => "ResNet-18",
        BackboneKind::Resnet34 => "ResNet-34",
        BackboneKind::Resnet50 => "ResNet-50",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_picks_add_gpus_of_one_kind_and_never_empty_the_list() {
        let (cpu, cuda0, cuda1, wgpu0) = (DeviceSpec::Cpu, DeviceSpec::Cuda(0), DeviceSpec::Cuda(1), "wgpu:0".parse().unwrap());
        let mut devices = vec![cpu, cpu];
        toggle_device(&mut devices, cuda0);
        assert_eq!(devices, [cuda0], "another kind starts a new list");
        toggle_device(&mut devices, cuda1);
        assert_eq!(devices, [cuda0, cuda1]);
        toggle_device(&mut devices, cuda0);
        assert_eq!(devices, [cuda1]);
        toggle_device(&mut devices, cuda1);
        assert_eq!(devices, [cuda1], "the last device stays");
        toggle_device(&mut devices, wgpu0);
        assert_eq!(devices, [wgpu0]);
        toggle_device(&mut devices, cpu);
        assert_eq!(devices, [cpu]);
    }

    #[test]
    fn a_new_strategy_keeps_the_sequence_and_defaults_the_rest() {
        let (order, switch_steps) = (Vec::new(), Vec::new());
        let current = StrategyConfig::Sequential { first: Task::Seg, switch_step: 40, order: order.clone(), switch_steps: switch_steps.clone(), lr_factor: 0.5 };
        assert_eq!(
            default_strategy("ewc", &current, 100),
            StrategyConfig::Ewc { first: Task::Seg, switch_step: 40, order, switch_steps, lr_factor: 0.5, lambda: EWC_LAMBDA, fisher_batches: FISHER_BATCHES }
        );
        let alternate = default_strategy("alternate", &current, 100);
        assert_eq!(default_strategy("lwf", &alternate, 100).sequence().unwrap().switch_step, 50);
        for kind in STRATEGIES {
            let strategy = default_strategy(kind, &alternate, 100);
            assert_eq!(strategy.name(), kind);
            strategy.validate(RunShape { tasks: TaskSet::DET_SEG, steps: 100 }).unwrap();
        }
    }
}

/// What starting `model` from the weights at `path` would load (read on the CPU).
fn pretrained_report(model: &ModelConfig, path: &Path) -> anyhow::Result<String> {
    let (_, report) = TwinNet::<burn::backend::Flex>::new(model, &Default::default()).load_pretrained(path)?;
    Ok(match report {
        Some(report) => report.summary(),
        None => format!("{}: torchvision weights for the {} backbone", path.display(), backbone_label(model.backbone)),
    })
}
