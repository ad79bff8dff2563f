//! The Compress panel: compress the focused run's checkpoint (int8, pruning,
//! low-rank, chained) as a background job with progress and cancel, then the
//! run's measured table and two trade-off plots (accuracy against latency and
//! against file size, every task, the baseline marked). The table is the run's
//! `compressed/report.json`, so results reappear on the next launch.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use eframe::egui;
use egui_plot::{Corner, Legend, MarkerShape, Plot, PlotPoint, Points, Text};

use super::job::Job;
use crate::session::Notice;
use super::shared::Shared;
use crate::compress::job::{compress, CompressRequest, DEFAULT_FINETUNE_STEPS};
use crate::compress::measure::Measurement;
use crate::compress::report::{Report, Variant};
use crate::compress::Recipe;
use crate::model::Task;
use crate::train::checkpoint::{self, CheckpointKind};

/// Recipes offered in the method list (any chain can be typed).
const SUGGESTED: [&str; 5] = ["int8", "prune:0.3", "prune:0.5", "lowrank:0.9", "prune:0.3+lowrank:0.9+int8"];
/// Each task's points in the plots.
fn task_color(task: Task) -> egui::Color32 {
    match task {
        Task::Det => egui::Color32::from_rgb(70, 130, 230),
        Task::Seg => egui::Color32::from_rgb(230, 120, 50),
        Task::Cls => egui::Color32::from_rgb(60, 170, 90),
    }
}

pub struct CompressPanel {
    method: String,
    source: CheckpointKind,
    /// None: the default for the recipe.
    finetune_steps: Option<usize>,
    job: Option<Job<Variant>>,
    /// The stage the job is in, written by its thread.
    stage: Arc<Mutex<String>>,
    /// The report shown, and the run folder it was read from.
    report: Option<(PathBuf, Report)>,
    error: Option<String>,
}

impl Default for CompressPanel {
    fn default() -> Self {
        Self {
            method: SUGGESTED[0].into(),
            source: CheckpointKind::Last,
            finetune_steps: None,
            job: None,
            stage: Arc::default(),
            report: None,
            error: None,
        }
    }
}

impl CompressPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        self.poll(shared);
        let Some(name) = shared.selection.focused.clone() else {
            ui.label("No run selected: pick a trained run in the list to compress it.");
            return;
        };
        let Some(record) = shared.session.record(&name) else {
            ui.label(format!("{name}: no such run"));
            return;
        };
        if let Some(remote) = &record.remote {
            ui.heading(format!("Compress {name}"));
            ui.label(format!(
                "{name} is on {}: compression works on a run folder here. Copy it with `twinhead runs pull --server ADDRESS {}`, then compress the copy.",
                remote.server, remote.run
            ));
            return;
        }
        let dir = record.dir.clone();
        if self.report.as_ref().is_none_or(|(shown, _)| *shown != dir) {
            self.load_report(&dir);
        }
        ui.heading(format!("Compress {name}"));
        self.controls(ui, &dir, shared);
        if let Some(job) = &self.job {
            let stage = self.stage.lock().map(|s| s.clone()).unwrap_or_default();
            let (done, total) = job.progress;
            job.progress_row(ui, format!("{stage}: {done}/{total}"), true);
        }
        if let Some(error) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        ui.separator();
        match &self.report {
            Some((_, report)) if !report.variants.is_empty() => {
                table(ui, report);
                ui.add_space(8.0);
                plots(ui, report);
            }
            _ => {
                ui.label("No compressed models of this run yet.");
            }
        }
    }

    fn controls(&mut self, ui: &mut egui::Ui, dir: &Path, shared: &mut Shared) {
        let recipe = Recipe::parse(&self.method);
        ui.horizontal(|ui| {
            ui.label("Method");
            ui.add(egui::TextEdit::singleline(&mut self.method).desired_width(260.0).id_salt("compress-method"));
            egui::ComboBox::from_label("suggestions").selected_text("pick").show_ui(ui, |ui| {
                for suggestion in SUGGESTED {
                    if ui.selectable_label(self.method == suggestion, suggestion).clicked() {
                        self.method = suggestion.into();
                    }
                }
            });
            egui::ComboBox::from_label("from checkpoint").selected_text(self.source.name()).show_ui(ui, |ui| {
                for kind in checkpoint::available(dir) {
                    let label = kind.name();
                    ui.selectable_value(&mut self.source, kind, label);
                }
            });
        });
        ui.horizontal(|ui| {
            let default = recipe.as_ref().map_or(0, |r| if r.is_structural() { DEFAULT_FINETUNE_STEPS } else { 0 });
            let mut custom = self.finetune_steps.is_some();
            ui.checkbox(&mut custom, "fine-tuning steps").on_hover_text(format!(
                "Training on the run's tasks after pruning / low-rank, to recover accuracy (default {DEFAULT_FINETUNE_STEPS} for those, 0 for int8 alone)"
            ));
            if !custom {
                self.finetune_steps = None;
                ui.label(format!("{default} (default)"));
            } else {
                let steps = self.finetune_steps.get_or_insert(default);
                ui.add(egui::DragValue::new(steps).range(0..=100_000));
            }
            let ready = recipe.is_ok() && self.job.is_none();
            if ui.add_enabled(ready, egui::Button::new("Compress")).clicked() {
                if let Ok(recipe) = &recipe {
                    self.start(dir, recipe.clone(), shared);
                }
            }
            if let Err(error) = &recipe {
                ui.colored_label(ui.visuals().error_fg_color, format!("{error:#}"));
            }
        });
    }

    fn start(&mut self, dir: &Path, recipe: Recipe, shared: &Shared) {
        let request = CompressRequest { run_dir: dir.to_path_buf(), source: self.source.clone(), recipe, finetune_steps: self.finetune_steps };
        let stage = self.stage.clone();
        self.error = None;
        self.job = Some(Job::spawn(format!("compress {}", request.recipe), shared.repaint.callback(), move |progress| {
            compress(&request, &mut |name, done, total| {
                if let Ok(mut s) = stage.lock() {
                    name.clone_into(&mut s);
                }
                progress.set(done, total);
                if progress.is_cancelled() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
            })
        }));
    }

    fn poll(&mut self, shared: &mut Shared) {
        let Some(result) = self.job.as_mut().and_then(Job::poll) else {
            return;
        };
        self.job = None;
        match result {
            Ok(variant) => {
                shared.notifications.push(Notice::info(format!("{} written and measured", variant.checkpoint)));
                if let Some(dir) = self.report.as_ref().map(|(d, _)| d.clone()) {
                    self.load_report(&dir);
                }
            }
            Err(error) => self.error = Some(format!("{error:#}")),
        }
    }

    fn load_report(&mut self, dir: &Path) {
        match Report::read(dir) {
            Ok(report) => self.report = Some((dir.to_path_buf(), report)),
            Err(error) => {
                self.error = Some(format!("{error:#}"));
                self.report = Some((dir.to_path_buf(), Report::default()));
            }
        }
        // A compressed folder without a row (its measuring was cancelled) is still a checkpoint Inspect can open.
        let measured = self.report.as_ref().map_or(0, |(_, r)| r.variants.len());
        let on_disk = checkpoint::compressed(dir).len();
        if on_disk > measured {
            self.error.get_or_insert(format!("{} compressed model(s) on disk have no measured row (compress them again to measure)", on_disk - measured));
        }
    }
}

/// The report as a grid: the baseline, then every variant with its ratios.
fn table(ui: &mut egui::Ui, report: &Report) {
    let latest = report.variants.last().expect("a variant");
    ui.label(format!(
        "CPU, {} threads, {} px. Latency: median / p90 of batch-1 passes; each variant timed interleaved with the baseline, its ratios against that baseline.",
        latest.threads, latest.image_size
    ));
    let (pair, cls) = report.task_columns();
    egui::Grid::new("compress-table").striped(true).spacing([14.0, 4.0]).show(ui, |ui| {
        let headers = ["model", "tuned", "params", "file MB", "GMACs", "latency ms", "img/s"].map(String::from).into_iter();
        let names = |tasks: &[Task], prefix: &str| tasks.iter().map(|t| format!("{prefix}{}", t.metric_name())).collect::<Vec<_>>();
        let headers = headers
            .chain(names(&pair, ""))
            .chain(["speed ×".to_string(), "size ÷".to_string()])
            .chain(names(&pair, "Δ "))
            .chain(names(&cls, ""))
            .chain(names(&cls, "Δ "));
        for header in headers {
            ui.strong(header);
        }
        ui.end_row();
        let values = |ui: &mut egui::Ui, tasks: &[Task], m: &Measurement| {
            for &task in tasks {
                ui.label(m.metric(task).map_or("-".into(), |v| format!("{v:.4}")));
            }
        };
        let changes = |ui: &mut egui::Ui, tasks: &[Task], v: Option<&Variant>| {
            for &task in tasks {
                ui.label(v.and_then(|v| v.change(task)).map_or("-".into(), |d| format!("{d:+.4}")));
            }
        };
        let cells = |ui: &mut egui::Ui, m: &Measurement| {
            ui.label(m.params.to_string());
            ui.label(format!("{:.2}", m.file_bytes as f64 / 1e6));
            ui.label(format!("{:.3}", m.macs as f64 / 1e9));
            ui.label(format!("{:.1} / {:.1}", m.latency_ms_median, m.latency_ms_p90));
            ui.label(format!("{:.1}", m.images_per_sec));
            values(ui, &pair, m);
        };
        ui.label(format!("baseline ({})", latest.source));
        ui.label("-");
        cells(ui, &latest.baseline);
        ui.label("-");
        ui.label("-");
        changes(ui, &pair, None);
        values(ui, &cls, &latest.baseline);
        changes(ui, &cls, None);
        ui.end_row();
        for v in &report.variants {
            ui.label(&v.method);
            ui.label(v.finetune_steps.to_string());
            cells(ui, &v.measured);
            ui.label(format!("{:.2}", v.speedup()));
            ui.label(format!("{:.2}", v.size_ratio()));
            changes(ui, &pair, Some(v));
            values(ui, &cls, &v.measured);
            changes(ui, &cls, Some(v));
            ui.end_row();
        }
    });
}

/// Accuracy against latency and against file size, one point per model and task.
fn plots(ui: &mut egui::Ui, report: &Report) {
    let latest = report.variants.last().expect("a variant");
    let width = (ui.available_width() / 2.0 - 8.0).max(200.0);
    let (pair, cls) = report.task_columns();
    let tasks: Vec<Task> = pair.into_iter().chain(cls).collect();
    let axes: [(&str, fn(&Measurement) -> f64); 2] =
        [("latency ms (batch 1, median)", |m| m.latency_ms_median), ("file MB", |m| m.file_bytes as f64 / 1e6)];
    ui.horizontal(|ui| {
        for (axis, x) in axes {
            // Room right of the farthest point for its label.
            let farthest = report.variants.iter().map(|v| x(&v.measured)).chain([x(&latest.baseline)]).fold(0.0, f64::max);
            Plot::new(("compress-plot", axis))
                .width(width)
                .height(300.0)
                .allow_scroll(false)
                .include_x(0.0)
                .include_x(farthest * 1.3)
                .x_axis_label(axis)
                .y_axis_label(tasks.iter().map(|t| t.metric_name()).collect::<Vec<_>>().join(" / "))
                .legend(Legend::default().position(Corner::LeftBottom))
                .show(ui, |plot_ui| {
                    for &measured in &tasks {
                        let (task, color) = (measured.metric_name(), task_color(measured));
                        let metric = |m: &Measurement| m.metric(measured).unwrap_or(0.0);
                        let variants: Vec<[f64; 2]> = report.variants.iter().map(|v| [x(&v.measured), metric(&v.measured)]).collect();
                        for (v, &[px, py]) in report.variants.iter().zip(&variants) {
                            plot_ui.text(Text::new("", PlotPoint::new(px, py), format!("  {}", v.method)).anchor(egui::Align2::LEFT_CENTER).color(color));
                        }
                        plot_ui.points(Points::new(task, variants).color(color).radius(4.0).shape(MarkerShape::Circle));
                        let baseline = vec![[x(&latest.baseline), metric(&latest.baseline)]];
                        plot_ui.points(Points::new(format!("{task} baseline"), baseline).color(color).radius(7.0).shape(MarkerShape::Diamond));
                    }
                });
        }
    });
}
