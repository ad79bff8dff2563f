//! `twinhead bench runs-list`: the workbench's runs list over hundreds of
//! generated run folders, drawn headless frame after frame (the whole
//! list, searched, grouped), with the median and p95 frame time of each.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use eframe::egui;

use crate::compress::measure::percentile;
use crate::gui::runs_panel::RunsPanel;
use crate::gui::settings::Settings;
use crate::gui::shared::Shared;
use crate::model::task::PerTask;
use crate::model::{Task, TaskSet};
use crate::train::events::{EvalRecord, Event, FinishReason};
use crate::train::run_dir;
use crate::train::TrainConfig;

#[derive(Debug, clap::Args)]
pub struct RunsListArgs {
    /// Run folders generated.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    runs: u32,
    /// Frames timed per view of the list.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    frames: u32,
}

/// The strategies the generated runs cycle through.
const KINDS: [&str; 4] = ["joint", "alternate", "replay", "lwf"];

pub fn run_runs_list(args: RunsListArgs) -> Result<ExitCode> {
    super::in_scratch("runs", |scratch| measure(&args, scratch))
}

fn measure(args: &RunsListArgs, scratch: &Path) -> Result<ExitCode> {
    let runs = scratch.join("runs");
    let started = Instant::now();
    for i in 0..args.runs as usize {
        write_run(&runs, i)?;
    }
    println!("{} run folders written in {:.1} s", args.runs, started.elapsed().as_secs_f64());
    let started = Instant::now();
    let mut shared = Shared::new(Settings { runs_dir: runs, ..Settings::default() });
    println!("read into the session in {:.1} s ({} runs)", started.elapsed().as_secs_f64(), shared.session.records.len());
    let ctx = egui::Context::default();
    let input = || egui::RawInput { screen_rect: Some(egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(1400.0, 1000.0))), ..Default::default() };
    let views: [(&str, &str, &str); 4] = [
        ("the whole list", "", ""),
        ("searched (strategy.kind=replay lr<0.001)", "strategy.kind=replay lr<0.001", ""),
        ("grouped by strategy.kind", "", "strategy.kind"),
        ("grouped by tag, searched (sweep)", "sweep", "tag"),
    ];
    let mut panel = RunsPanel::default();
    for (what, search, group) in views {
        panel.list.set_search(search);
        panel.list.group_by = group.to_string();
        let mut times = Vec::new();
        for frame in 0..args.frames + 3 {
            let started = Instant::now();
            let _ = ctx.run_ui(input(), |ui| {
                egui::Panel::left("runs").default_size(300.0).show(ui, |ui| panel.ui(ui, &mut shared));
            });
            let ms = started.elapsed().as_secs_f64() * 1e3;
            // The first frames lay the panel out (the very first computes every run's facts); the rest are timed.
            if frame == 0 && what == views[0].0 {
                println!("first frame, every run's facts computed: {ms:.1} ms");
            }
            if frame >= 3 {
                times.push(ms);
            }
        }
        times.sort_by(f64::total_cmp);
        println!("{what}: median {:.2} ms, p95 {:.2} ms a frame ({} frames)", percentile(&times, 0.5), percentile(&times, 0.95), times.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// Run folder `run-{i:04}`: the quick preset with one of [`KINDS`], a
/// learning rate of four, some tags, and a finished log of 50 steps and 5 evaluations.
fn write_run(runs: &Path, i: usize) -> Result<()> {
    let dir = runs.join(format!("run-{i:04}"));
    let kind = KINDS[i % KINDS.len()];
    let lr = [0.0005, 0.001, 0.002, 0.004][(i / KINDS.len()) % 4];
    let overrides = [format!("strategy.kind={kind}"), format!("optim.lr={lr}"), "steps=50".into()];
    let mut overrides = overrides.to_vec();
    if kind == "replay" || kind == "lwf" {
        overrides.push("strategy.switch_step=25".into());
    }
    let config = TrainConfig::load_preset("quick", &overrides)?;
    run_dir::create(&dir, &config)?;
    if i % 3 == 0 {
        let mut notes = crate::session::run_notes::RunNotes::default();
        notes.set_tags(if i % 2 == 0 { "sweep, baseline" } else { "sweep" });
        notes.write(&dir)?;
    }
    let mut log = std::io::BufWriter::new(std::fs::File::create(dir.join(run_dir::METRICS_FILE))?);
    let mut event = |event: Event| -> Result<()> { Ok(writeln!(log, "{}", serde_json::to_string(&event)?)?) };
    event(Event::Started { step: 0, total_steps: 50, run_dir: dir.clone(), resumed: false, device: "cpu".into() })?;
    for step in 1..=50 {
        let loss = Some(2.0 / step as f32 + (i % 7) as f32 * 0.01);
        event(Event::Step { step, tasks: TaskSet::DET_SEG, losses: PerTask::from_fn(|task| loss.filter(|_| task != Task::Cls)), penalty: None, lr, images_per_sec: 90.0, device_memory: None })?;
        if step % 10 == 0 {
            let quality = step as f64 / 60.0 * (1.0 - (i % 11) as f64 * 0.02);
            event(Event::Eval(EvalRecord { step, metric: PerTask::from([Some(quality), Some(quality * 0.9), None]), ..Default::default() }))?;
        }
    }
    event(Event::Finished { step: 50, reason: FinishReason::Completed, wall_seconds: 60.0 })?;
    Ok(())
}
