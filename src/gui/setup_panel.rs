//! The Setup panel: what the next run trains on and how (preset, dataset
//! folders checked at once, strategy and its parameters, optimiser, model,
//! device), and, while a run trains, changing its strategy and learning rate.
//! The dataset folders, the strategy editor and the pretrained-weights field
//! are files of their own.


use eframe::egui;

use super::dataset_fields::DatasetFields;
use super::job::Job;
use crate::session::Notice;
use super::settings::{Settings, Tab};
use super::shared::Shared;
use super::strategy_editor::{field_error, strategy_editor};
use super::weights_field::WeightsField;
use crate::model::{BackboneKind, ModelSize};
use crate::train::config::TrainConfig;
use crate::train::parallel::Placement;
use crate::train::presets::preset_names;
use crate::train::events::Control;
use crate::backend::device::DeviceSpec;

pub struct SetupPanel {
    preset: String,
    /// The configuration the next Start launches.
    pub draft: TrainConfig,
    preset_error: Option<String>,
    /// The devices that answered a probe, with their descriptions.
    devices: Vec<(DeviceSpec, String)>,
    device_probe: Option<Job<Vec<(DeviceSpec, String)>>>,
    datasets: DatasetFields,
    weights: WeightsField,
    /// The learning rate to send to the focused live run.
    live_lr: f64,
    /// The server the next run trains on (its label), or this machine. On a
    /// server, dataset folders are its paths, checked there, and the devices its own.
    target: Option<String>,
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
            datasets: DatasetFields::new(&draft),
            weights: WeightsField::new(draft.model.pretrained.as_deref()),
            draft,
            preset_error,
            target: None,
        };
        panel.datasets.apply_saved(&mut panel.draft, &shared.settings);
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
                self.datasets.forget_checks();
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

    fn load(&mut self, config: TrainConfig, shared: &Shared) {
        self.live_lr = config.optim.lr;
        self.datasets = DatasetFields::new(&config);
        self.weights = WeightsField::new(config.model.pretrained.as_deref());
        self.draft = config;
        self.datasets.apply_saved(&mut self.draft, &shared.settings);
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
        self.datasets.ui(ui, &mut self.draft, self.target.as_deref(), shared);
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
        self.weights.ui(ui, &mut self.draft, shared);
        ui.separator();
        // A weights file that does not fit would fail the run at once.
        let weights_error = self.weights.does_not_fit()
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
        self.weights.poll(&mut self.draft, shared);
        self.datasets.poll(&mut self.draft, self.target.as_deref(), shared);
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
            egui::ComboBox::from_id_salt("backbone").selected_text(draft.model.backbone.label()).show_ui(ui, |ui| {
                for kind in [BackboneKind::Csp, BackboneKind::Resnet18, BackboneKind::Resnet34, BackboneKind::Resnet50] {
                    ui.selectable_value(&mut draft.model.backbone, kind, kind.label());
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
