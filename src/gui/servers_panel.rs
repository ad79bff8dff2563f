//! The Servers window: the `twinhead serve` servers whose runs the runs list
//! shows beside this machine's (each marked `@label`), their address, the
//! file their token is in (the token itself is never saved), and the
//! certificate to trust for HTTPS. Saved in the settings, connected at start.

use std::path::PathBuf;

use eframe::egui;

use super::settings::ServerEntry;
use super::shared::Shared;
use crate::session::Notice;

/// The fields of a server being added.
#[derive(Default)]
pub struct ServersPanel {
    pub open: bool,
    label: String,
    address: String,
    token_file: String,
    ca_file: String,
}

impl ServersPanel {
    pub fn window(&mut self, ctx: &egui::Context, shared: &mut Shared) {
        let mut open = self.open;
        egui::Window::new("Servers").open(&mut open).resizable(true).default_width(560.0).show(ctx, |ui| self.ui(ui, shared));
        self.open = open;
    }

    fn ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.label("Runs of a `twinhead serve` server (a GPU machine, reached through an SSH tunnel or HTTPS) are listed beside this machine's.");
        let mut remove = None;
        egui::Grid::new("servers").striped(true).num_columns(4).show(ui, |ui| {
            for entry in shared.settings.servers.clone() {
                ui.strong(&entry.label);
                ui.label(&entry.address);
                let connected = shared.servers.contains_key(&entry.label);
                if connected {
                    if ui.button("Disconnect").clicked() {
                        shared.disconnect(&entry.label);
                    }
                } else if ui.button("Connect").clicked() {
                    if let Err(error) = shared.connect(&entry) {
                        shared.notifications.push(Notice::error(format!("{}: {error:#}", entry.label)));
                    }
                }
                if ui.button("Remove").clicked() {
                    remove = Some(entry.label.clone());
                }
                ui.end_row();
            }
        });
        if let Some(label) = remove {
            shared.disconnect(&label);
            shared.settings.servers.retain(|s| s.label != label);
        }
        ui.separator();
        ui.strong("Add a server");
        egui::Grid::new("new server").num_columns(2).show(ui, |ui| {
            for (name, text, hint) in [
                ("Label", &mut self.label, "gpu-box"),
                ("Address", &mut self.address, "http://127.0.0.1:7878"),
                ("Token file", &mut self.token_file, "~/.twinhead-token (optional)"),
                ("Certificate", &mut self.ca_file, "the server's cert.pem, for HTTPS (optional)"),
            ] {
                let label = ui.label(name);
                ui.add(egui::TextEdit::singleline(text).hint_text(hint).desired_width(360.0)).labelled_by(label.id);
                ui.end_row();
            }
        });
        let entry = self.entry();
        let problem = if entry.label.is_empty() || entry.address.is_empty() {
            Some("a label and an address")
        } else if shared.settings.servers.iter().any(|s| s.label == entry.label) {
            Some("that label is taken")
        } else {
            None
        };
        let add = ui.add_enabled(problem.is_none(), egui::Button::new("Add and connect"));
        if let Some(problem) = problem {
            add.on_disabled_hover_text(problem);
        } else if add.clicked() {
            match shared.connect(&entry) {
                Ok(()) => {
                    shared.settings.servers.push(entry);
                    *self = Self { open: true, ..Self::default() };
                }
                Err(error) => shared.notifications.push(Notice::error(format!("{error:#}"))),
            }
        }
    }

    fn entry(&self) -> ServerEntry {
        let path = |text: &str| Some(text.trim()).filter(|t| !t.is_empty()).map(PathBuf::from);
        ServerEntry {
            label: self.label.trim().to_string(),
            address: self.address.trim().to_string(),
            token_file: path(&self.token_file),
            ca_file: path(&self.ca_file),
        }
    }
}
