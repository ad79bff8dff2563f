//! The window: tabs over the central panel, the runs list at the left, a
//! status line with notifications at the bottom. Each frame it first folds in
//! what the background threads reported, then draws.

use std::time::Instant;

use eframe::egui;

use super::compare_panel::ComparePanel;
use super::compress_panel::CompressPanel;
use super::curves_panel::CurvesPanel;
use super::inspect_panel::InspectPanel;
use super::job::Job;
use super::preview_panel::PreviewPanel;
use super::runs_panel::RunsPanel;
use crate::session::{Notice, NoticeLevel};
use super::settings::{Settings, Tab, KEY};
use super::setup_panel::SetupPanel;
use super::shared::Shared;
use crate::data::synth::{self, SynthSummary};
use crate::train::config::TrainConfig;

pub struct Workbench {
    pub shared: Shared,
    pub runs: RunsPanel,
    pub setup: SetupPanel,
    pub curves: CurvesPanel,
    pub compare: ComparePanel,
    pub inspect: InspectPanel,
    pub preview: PreviewPanel,
    pub compress: CompressPanel,
    /// Generating the synthetic datasets on first launch.
    first_launch: Option<Job<SynthSummary>>,
    /// Layout-and-draw time of our own code per frame.
    pub frame_times: FrameTimes,
    /// eframe's measure of a whole frame's CPU time (ours plus tessellation and painting).
    pub frame_cpu: FrameTimes,
}

impl Workbench {
    /// The workbench with `settings`; on a first launch (no dataset configured)
    /// it starts generating the synthetic datasets of the `quick` preset.
    pub fn new(settings: Settings) -> Self {
        let mut shared = Shared::new(settings);
        let setup = SetupPanel::new(&mut shared);
        let mut workbench = Self {
            shared,
            runs: RunsPanel::default(),
            setup,
            curves: CurvesPanel::default(),
            compare: ComparePanel::default(),
            inspect: InspectPanel::default(),
            preview: PreviewPanel::default(),
            compress: CompressPanel::default(),
            first_launch: None,
            frame_times: FrameTimes::default(),
            frame_cpu: FrameTimes::default(),
        };
        if workbench.shared.settings.voc_dir.is_none() && workbench.shared.settings.ade_dir.is_none() {
            workbench.first_launch = first_launch_job(&workbench.shared);
        }
        workbench
    }

    /// True while the first-launch datasets are being generated.
    pub fn is_preparing(&self) -> bool {
        self.first_launch.is_some()
    }

    /// One frame.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let started = Instant::now();
        self.shared.repaint.set_context(ui.ctx());
        self.absorb_background_news();
        self.take_dropped_files(ui.ctx());

        egui::Panel::top("tabs").show(ui, |ui| self.tab_bar(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_line(ui));
        egui::Panel::left("runs").resizable(true).default_size(300.0).show(ui, |ui| {
            self.runs.ui(ui, &mut self.shared);
        });
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().id_salt("central").auto_shrink([false, false]).show(ui, |ui| match self.shared.settings.tab {
                Tab::Setup => self.setup.ui(ui, &mut self.shared, self.first_launch.is_some()),
                Tab::Curves => self.curves.ui(ui, &mut self.shared),
                Tab::Compare => self.compare.ui(ui, &mut self.shared),
                Tab::Inspect => self.inspect.ui(ui, &mut self.shared),
                Tab::Preview => self.preview.ui(ui, &mut self.shared),
                Tab::Compress => self.compress.ui(ui, &mut self.shared),
            });
        });
        self.toasts(ui.ctx());
        if !self.shared.session.active_names().is_empty() || self.first_launch.is_some() {
            // Live runs send events; this keeps progress bars moving between them too.
            ui.ctx().request_repaint_after(std::time::Duration::from_millis(250));
        }
        self.frame_times.record(started.elapsed().as_secs_f32());
    }

    fn absorb_background_news(&mut self) {
        let notices = self.shared.session.poll();
        self.shared.notifications.extend(notices);
        self.shared.notifications.expire();
        if let Some(job) = &mut self.first_launch {
            if let Some(result) = job.poll() {
                self.first_launch = None;
                match result {
                    Ok(summary) => {
                        self.shared.settings.voc_dir = Some(summary.voc_root.clone());
                        self.shared.settings.ade_dir = Some(summary.ade_root.clone());
                        self.shared.notifications.push(Notice::info(format!(
                            "synthetic datasets ready: {} detection and {} segmentation images",
                            summary.det_train + summary.det_val,
                            summary.seg_train + summary.seg_val
                        )));
                    }
                    Err(error) => self.shared.notifications.push(Notice::error(format!("synthetic datasets: {error:#}"))),
                }
            }
        }
    }

    fn take_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped: Vec<_> = ctx.input(|i| i.raw.dropped_files.iter().filter_map(|f| f.path.clone()).collect());
        if !dropped.is_empty() {
            self.shared.dropped_files.extend(dropped);
            self.shared.settings.tab = Tab::Preview;
        }
    }

    fn tab_bar(&mut self, ui: &mut egui::Ui) {
        // Ctrl+1 … Ctrl+6 switch tabs; Ctrl+Q closes the window (stopping runs cleanly).
        const KEYS: [egui::Key; 6] = [egui::Key::Num1, egui::Key::Num2, egui::Key::Num3, egui::Key::Num4, egui::Key::Num5, egui::Key::Num6];
        for (tab, key) in Tab::ALL.into_iter().zip(KEYS) {
            if ui.ctx().input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, key)) {
                self.shared.settings.tab = tab;
            }
        }
        if ui.ctx().input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::Q)) {
            ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
        }
        ui.horizontal(|ui| {
            ui.heading("Twinhead");
            ui.separator();
            for tab in Tab::ALL {
                let shortcut = format!("Ctrl+{}", Tab::ALL.iter().position(|t| *t == tab).unwrap_or(0) + 1);
                if ui.selectable_label(self.shared.settings.tab == tab, tab.label()).on_hover_text(shortcut).clicked() {
                    self.shared.settings.tab = tab;
                }
            }
        });
        if let Some(job) = &self.first_launch {
            let (done, total) = job.progress;
            job.progress_row(ui, format!("Generating the synthetic datasets: {done}/{total} images"), true);
        }
    }

    fn status_line(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let active = self.shared.session.active_names();
            let training = if active.is_empty() { "idle".to_string() } else { format!("training {}", active.join(", ")) };
            ui.label(format!("{training} · {} queued", self.shared.session.queued()));
            ui.separator();
            let (p50, p95) = self.frame_times.percentiles();
            let (cpu50, cpu95) = self.frame_cpu.percentiles();
            ui.label(format!("UI {:.1} ms (p95 {:.1}) · frame CPU {:.1} ms (p95 {:.1})", p50 * 1e3, p95 * 1e3, cpu50 * 1e3, cpu95 * 1e3))
                .on_hover_text("Over the last 240 frames: the workbench's own layout time, and eframe's whole-frame CPU time (layout, tessellation, painting)");
        });
    }

    fn toasts(&mut self, ctx: &egui::Context) {
        if self.shared.notifications.items.is_empty() {
            return;
        }
        let mut dismiss = None;
        egui::Area::new(egui::Id::new("toasts"))
            .anchor(egui::Align2::RIGHT_BOTTOM, egui::vec2(-12.0, -36.0))
            .show(ctx, |ui| {
                ui.set_max_width(420.0);
                for (index, (notice, _)) in self.shared.notifications.items.iter().enumerate().rev().take(5) {
                    let color = match notice.level {
                        NoticeLevel::Info => ui.visuals().text_color(),
                        NoticeLevel::Warning => ui.visuals().warn_fg_color,
                        NoticeLevel::Error => ui.visuals().error_fg_color,
                    };
                    egui::Frame::popup(ui.style()).show(ui, |ui| {
                        ui.horizontal(|ui| {
                            ui.colored_label(color, &notice.text);
                            if notice.level != NoticeLevel::Info && ui.small_button("✖").on_hover_text("Dismiss").clicked() {
                                dismiss = Some(index);
                            }
                        });
                    });
                }
            });
        if let Some(index) = dismiss {
            self.shared.notifications.items.remove(index);
        }
    }
}

/// Generates the datasets of the `quick` preset unless they are there already
/// (a set with classification crops serves it as it is).
fn first_launch_job(shared: &Shared) -> Option<Job<SynthSummary>> {
    let preset = TrainConfig::load_preset("quick", &[]).ok()?;
    let (out, config) = preset.data.synthetic_set().ok()??;
    Some(Job::spawn("synthetic datasets", shared.repaint.callback(), move |progress| {
        synth::ensure_generated_with_cancel(&out, &config, |done, total| progress.set(done, total), progress.cancel_flag())
    }))
}

/// The last frames' layout-and-draw times, for the status line and the log.
#[derive(Default)]
pub struct FrameTimes {
    seconds: std::collections::VecDeque<f32>,
}

impl FrameTimes {
    const KEEP: usize = 240;

    pub fn record(&mut self, seconds: f32) {
        if self.seconds.len() == Self::KEEP {
            self.seconds.pop_front();
        }
        self.seconds.push_back(seconds);
    }

    /// Median and 95th percentile in seconds (0 before the first frame).
    pub fn percentiles(&self) -> (f32, f32) {
        let mut sorted: Vec<f32> = self.seconds.iter().copied().collect();
        if sorted.is_empty() {
            return (0.0, 0.0);
        }
        sorted.sort_by(f32::total_cmp);
        let at = |q: f32| sorted[((sorted.len() - 1) as f32 * q).round() as usize];
        (at(0.5), at(0.95))
    }
}

/// eframe's side: settings persistence and a clean shutdown.
pub struct App {
    workbench: Workbench,
}

impl App {
    pub fn new(cc: &eframe::CreationContext<'_>) -> Self {
        let settings: Settings = cc.storage.and_then(|s| eframe::get_value(s, KEY)).unwrap_or_default();
        Self { workbench: Workbench::new(settings) }
    }
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        if let Some(seconds) = frame.info().cpu_usage {
            self.workbench.frame_cpu.record(seconds);
        }
        self.workbench.ui(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        self.workbench.setup.remember(&mut self.workbench.shared.settings);
        eframe::set_value(storage, KEY, &self.workbench.shared.settings);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        // Stopping saves each live run's last checkpoint: `Resume` continues it.
        self.workbench.shared.session.shutdown();
        let (p50, p95) = self.workbench.frame_times.percentiles();
        let (cpu50, cpu95) = self.workbench.frame_cpu.percentiles();
        tracing::info!(
            "UI layout time: median {:.2} ms, p95 {:.2} ms; whole-frame CPU: median {:.2} ms, p95 {:.2} ms",
            p50 * 1e3,
            p95 * 1e3,
            cpu50 * 1e3,
            cpu95 * 1e3
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_time_percentiles() {
        let mut times = FrameTimes::default();
        assert_eq!(times.percentiles(), (0.0, 0.0));
        for i in 1..=100 {
            times.record(i as f32);
        }
        assert_eq!(times.percentiles(), (51.0, 95.0));
        for _ in 0..300 {
            times.record(1.0);
        }
        assert_eq!(times.percentiles(), (1.0, 1.0));
    }
}
