//! The Runs side panel: every run with its strategy, status, step and best
//! metrics; a check box overlays it on Curves and Compare, a click focuses it,
//! and the buttons act on the focused run (tags, archive). Above the list, a
//! search, grouping and order (`runs_list.rs`); in a list of a hundred runs
//! or more only the rows in view are drawn, so it scrolls smoothly.

use eframe::egui;

use crate::session::run_record::{RunRecord, RunStatus};
use crate::session::Notice;
use super::runs_list::{Line, RunsList};
use super::servers_panel::ServersPanel;
use super::shared::Shared;
use crate::train::events::Control;
use crate::backend::device::{mib, DeviceSpec};
use crate::train::events::ReplicaStep;
use crate::train::parallel::Placement;

/// A group's header line, in points; a run's row is measured as it is drawn.
const HEADER_HEIGHT: f32 = 22.0;
/// From this many lines on, only those in view are drawn. A shorter list is
/// drawn whole, so every row stays in the accessibility tree (screen readers,
/// demo scripts) as any scrolled widget does.
const DRAWN_IN_VIEW_FROM: usize = 100;

pub struct RunsPanel {
    /// A run waiting for the user to confirm its deletion.
    confirm_delete: Option<String>,
    servers: ServersPanel,
    pub list: RunsList,
    /// The height of a run's row, as last drawn.
    row_height: f32,
    /// The focused run's tags as being typed, and whose they are.
    tags_edit: Option<(String, String)>,
}

impl Default for RunsPanel {
    fn default() -> Self {
        Self { confirm_delete: None, servers: ServersPanel::default(), list: RunsList::default(), row_height: 96.0, tags_edit: None }
    }
}

impl RunsPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.horizontal(|ui| {
            ui.heading("Runs");
            let connected = shared.servers.len();
            let label = if connected > 0 { format!("Servers ({connected})") } else { "Servers…".to_string() };
            if ui.small_button(label).on_hover_text("List the runs of `twinhead serve` servers beside this machine's").clicked() {
                self.servers.open = true;
            }
        });
        self.servers.window(ui.ctx(), shared);
        if let Some(name) = shared.selection.focused.clone() {
            self.focused_actions(ui, shared, &name);
        }
        ui.separator();
        if shared.session.records.is_empty() {
            ui.label("No runs yet: press Start on the Setup tab.");
        }
        self.list.controls(ui);
        let lines = self.list.lines(&shared.session.records);
        let shown = lines.iter().filter(|line| matches!(line, Line::Run(_))).count();
        if shown < shared.session.records.len() {
            ui.label(egui::RichText::new(format!("{shown} of {} runs", shared.session.records.len())).small());
        }
        let row_height = self.row_height;
        let mut measured = None;
        egui::ScrollArea::vertical().id_salt("runs list").auto_shrink([false, false]).show_viewport(ui, |ui, viewport| {
            let gap = ui.spacing().item_spacing.y;
            let height = |line: &Line| gap + if matches!(line, Line::Group { .. }) { HEADER_HEIGHT } else { row_height };
            ui.set_height(lines.iter().map(height).sum::<f32>());
            let (top, x_range) = (ui.max_rect().top(), ui.max_rect().x_range());
            let mut y = 0.0;
            for line in &lines {
                let h = height(line);
                if lines.len() < DRAWN_IN_VIEW_FROM || (y + h >= viewport.min.y && y <= viewport.max.y) {
                    let rect = egui::Rect::from_x_y_ranges(x_range, top + y..=top + y + h - gap);
                    let salt = match line {
                        Line::Group { key, .. } => format!("group {key}"),
                        Line::Run(index) => shared.session.records[*index].name.clone(),
                    };
                    ui.scope_builder(egui::UiBuilder::new().max_rect(rect).id_salt(salt), |ui| match line {
                        Line::Group { key, runs, open } => self.group_header(ui, shared, key, runs, *open),
                        Line::Run(index) => measured = Some(run_row(ui, shared, *index)),
                    });
                }
                y += h;
            }
        });
        if let Some(height) = measured.filter(|h| (h - self.row_height).abs() > 0.5) {
            self.row_height = height;
            ui.ctx().request_repaint();
        }
        self.delete_confirmation(ui.ctx(), shared);
    }

    /// A group's header: fold it, or put its runs on Curves and Compare in one click.
    fn group_header(&mut self, ui: &mut egui::Ui, shared: &mut Shared, key: &str, runs: &[usize], open: bool) {
        ui.horizontal(|ui| {
            let arrow = if open { "⏷" } else { "⏵" };
            let header = ui.selectable_label(false, egui::RichText::new(format!("{arrow} {key} ({})", runs.len())).strong());
            header.widget_info(|| egui::WidgetInfo::labeled(egui::WidgetType::Button, true, format!("group {key}")));
            if header.clicked() && !self.list.folded.remove(key) {
                self.list.folded.insert(key.to_string());
            }
            let compare = ui.small_button("compare these").on_hover_text("Overlay exactly this group's runs on Curves and list them on Compare");
            compare.widget_info(|| egui::WidgetInfo::labeled(egui::WidgetType::Button, true, format!("compare group {key}")));
            if compare.clicked() {
                shared.selection.checked = runs.iter().map(|&i| shared.session.records[i].name.clone()).collect();
            }
        });
    }

    /// The buttons for the focused run, as far as its status allows.
    fn focused_actions(&mut self, ui: &mut egui::Ui, shared: &mut Shared, name: &str) {
        let Some(record) = shared.session.record(name) else {
            shared.selection.focused = None;
            return;
        };
        let status = record.status.clone();
        // A run continues on the devices it trained on (its log says which).
        let devices = record.device.as_deref().and_then(|d| Placement::parse_devices(d).ok()).unwrap_or(vec![DeviceSpec::Cpu]);
        let live = shared.session.is_steerable(name);
        ui.label(egui::RichText::new(name).strong());
        let mut outcome = Ok(());
        ui.horizontal_wrapped(|ui| {
            if live {
                if status == RunStatus::Paused {
                    if ui.button("Resume").clicked() {
                        outcome = shared.session.control(name, Control::Resume);
                    }
                } else if ui.button("Pause").clicked() {
                    outcome = shared.session.control(name, Control::Pause);
                }
                if ui.button("Stop").clicked() {
                    outcome = shared.session.control(name, Control::Stop);
                }
                if ui.button("Checkpoint now").clicked() {
                    outcome = shared.session.control(name, Control::CheckpointNow);
                }
            } else if status.is_resumable() {
                if ui.button("Continue").on_hover_text("Resume training from the last checkpoint").clicked() {
                    outcome = shared.session.enqueue_resume(name, &devices);
                }
            } else if status == RunStatus::Queued && ui.button("Unqueue").clicked() {
                shared.session.unqueue(name);
            }
            if ui.button("Duplicate config").on_hover_text("Load this run's configuration into Setup").clicked() {
                if let Some(record) = shared.session.record(name) {
                    let mut config = record.config.clone();
                    config.strategy = record.strategy.clone();
                    shared.setup_request = Some(config);
                    shared.settings.tab = super::settings::Tab::Setup;
                }
            }
            if !live && ui.button("Delete…").clicked() {
                self.confirm_delete = Some(name.to_string());
            }
        });
        outcome = outcome.and(self.notes_row(ui, shared, name));
        if let RunStatus::Failed(message) = &status {
            ui.colored_label(ui.visuals().error_fg_color, format!("failed: {message}"));
        }
        if let Err(error) = outcome {
            shared.notifications.push(Notice::error(format!("{error:#}")));
        }
    }

    /// The focused run's tags (comma-separated, saved on Enter or leaving the
    /// field) and its archive switch, both kept in its folder.
    fn notes_row(&mut self, ui: &mut egui::Ui, shared: &mut Shared, name: &str) -> anyhow::Result<()> {
        let Some(record) = shared.session.record(name) else { return Ok(()) };
        let mut notes = record.notes.clone();
        if self.tags_edit.as_ref().is_none_or(|(run, _)| run != name) {
            self.tags_edit = Some((name.to_string(), notes.tags.join(", ")));
        }
        let Some((_, text)) = self.tags_edit.as_mut() else { return Ok(()) };
        let mut save = false;
        ui.horizontal(|ui| {
            ui.label("tags");
            let field = ui.add(egui::TextEdit::singleline(text).hint_text("baseline, sweep-3").desired_width(140.0));
            field.widget_info(|| egui::WidgetInfo::labeled(egui::WidgetType::TextEdit, true, "run tags"));
            if field.lost_focus() && *text != notes.tags.join(", ") {
                notes.set_tags(text);
                save = true;
            }
            let archive = if notes.archived { "Unarchive" } else { "Archive" };
            if ui.button(archive).on_hover_text("Archived runs leave the list (\"show archived\" brings them back); nothing is deleted").clicked() {
                notes.archived = !notes.archived;
                save = true;
            }
        });
        if save {
            self.tags_edit = None;
            return shared.session.set_notes(name, notes);
        }
        Ok(())
    }

    fn delete_confirmation(&mut self, ctx: &egui::Context, shared: &mut Shared) {
        let Some(name) = self.confirm_delete.clone() else {
            return;
        };
        let mut keep_open = true;
        egui::Window::new("Delete run?").collapsible(false).resizable(false).anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0]).show(
            ctx,
            |ui| {
                ui.label(format!("Delete {name} and its folder (checkpoints, metrics)? This cannot be undone."));
                ui.horizontal(|ui| {
                    if ui.button("Delete").clicked() {
                        match shared.session.delete(&name) {
                            Ok(()) => {
                                shared.selection.checked.remove(&name);
                                shared.selection.focused = None;
                                shared.notifications.push(Notice::info(format!("deleted {name}")));
                            }
                            Err(error) => shared.notifications.push(Notice::error(format!("{error:#}"))),
                        }
                        keep_open = false;
                    }
                    if ui.button("Cancel").clicked() {
                        keep_open = false;
                    }
                });
            },
        );
        if !keep_open {
            self.confirm_delete = None;
        }
    }
}

/// One run: check box, name (click to focus), status, progress and best
/// metrics, one line each (cut short, so every row has one height); returns its height.
fn run_row(ui: &mut egui::Ui, shared: &mut Shared, index: usize) -> f32 {
    let record = &shared.session.records[index];
    let name = record.name.clone();
    let focused = shared.selection.focused.as_deref() == Some(name.as_str());
    let frame = egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.horizontal(|ui| {
            let mut checked = shared.selection.checked.contains(&name);
            let checkbox = ui.checkbox(&mut checked, "").on_hover_text("Overlay on Curves and list on Compare");
            // Its name for screen readers and scripts, which find widgets by label.
            checkbox.widget_info(|| egui::WidgetInfo::selected(egui::WidgetType::Checkbox, true, checked, format!("compare {name}")));
            if checkbox.changed() {
                if checked {
                    shared.selection.checked.insert(name.clone());
                } else {
                    shared.selection.checked.remove(&name);
                }
            }
            let button = ui.selectable_label(focused, egui::RichText::new(&name).strong());
            // Its identity for screen readers and scripts: "run NAME", which no
            // other widget carries (Curves' and Compare's check boxes name runs too).
            button.widget_info(|| egui::WidgetInfo::selected(egui::WidgetType::SelectableLabel, true, focused, format!("run {name}")));
            if button.clicked() {
                shared.selection.focused = Some(name.clone());
            }
            ui.colored_label(status_color(ui, &record.status), record.status_label());
        });
        let tags = if record.notes.tags.is_empty() { String::new() } else { format!(" · {}", record.notes.tags.join(", ")) };
        ui.add(egui::Label::new(egui::RichText::new(record.strategy_summary() + &tags).small()).truncate());
        ui.add(egui::ProgressBar::new(record.progress()).text(format!("step {}/{}", record.step, record.total_steps)));
        ui.add(egui::Label::new(metrics_line(record)).truncate());
    });
    frame.response.rect.height()
}

fn metrics_line(record: &RunRecord) -> String {
    let show = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.3}"));
    let tasks = record.config.data.run_tasks();
    let best: Vec<String> = tasks.iter().map(|t| format!("best {} {}", t.metric_name(), show(record.best(t)))).collect();
    let mut line = best.join(" · ");
    if !record.replicas.is_empty() {
        // A data-parallel run: each replica's device and memory.
        let replicas: Vec<String> = record.replicas.iter().map(replica_text).collect();
        return line + &format!(" · {} replicas: {}", replicas.len(), replicas.join(", "));
    }
    if let Some(device) = &record.device {
        line += &format!(" · {device}");
    }
    if let Some(memory) = record.device_memory {
        line += &format!(" {:.0} MiB", mib(memory.in_use));
    }
    line
}

/// `node 1 cuda:0 812 MiB`: a replica where it trains, with its GPU memory when it has one.
fn replica_text(replica: &ReplicaStep) -> String {
    let node = if replica.node > 0 { format!("node {} ", replica.node) } else { String::new() };
    let memory = replica.device_memory.map_or(String::new(), |m| format!(" {:.0} MiB", mib(m.in_use)));
    format!("{node}{}{memory}", replica.device)
}

fn status_color(ui: &egui::Ui, status: &RunStatus) -> egui::Color32 {
    match status {
        RunStatus::Running => egui::Color32::from_rgb(80, 200, 120),
        RunStatus::Paused | RunStatus::Queued => ui.visuals().warn_fg_color,
        RunStatus::Failed(_) => ui.visuals().error_fg_color,
        _ => ui.visuals().weak_text_color(),
    }
}
