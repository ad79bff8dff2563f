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
use super::strategy_editor::{field_error, strategy_editor};
use crate::data::check::{self, CheckReport, CheckRequest};
use crate::model::{BackboneKind, ModelConfig, ModelSize, TwinNet};
use crate::train::config::TrainConfig;
use crate::train::parallel::Placement;
use crate::train::presets::preset_names;
use crate::train::events::Control;
use crate::backend::device::DeviceSpec;
use crate::train::strategy::Task;

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

}

/// What starting `model` from the weights at `path` would load (read on the CPU).
fn pretrained_report(model: &ModelConfig, path: &Path) -> anyhow::Result<String> {
    let (_, report) = TwinNet::<burn::backend::Flex>::new(model, &Default::default()).load_pretrained(path)?;
    Ok(match report {
        Some(report) => report.summary(),
        None => format!("{}: torchvision weights for the {} backbone", path.display(), backbone_label(model.backbone)),
    })
}
