//! The workbench: an eframe window that trains, plots, compares strategies and
//! shows predictions. `twinhead` with no arguments opens it. Training and
//! inference run on background threads; panels only read state and send
//! messages, so a frame never waits on the engine.
//!
//! One file per panel; state shared between them lives in [`shared`], the runs
//! and their trainer threads in [`crate::session`].

mod app;
mod class_view;
mod compare_panel;
pub mod compress_panel;
mod confusion_view;
mod curves_panel;
mod error_view;
mod dataset_stats;
pub mod demo_script;
mod image_view;
mod inference;
mod inspect_compare;
mod inspect_export;
mod inspect_metrics;
pub mod inspect_panel;
mod inspect_timeline;
pub mod job;
pub mod preview_panel;
pub mod runs_list;
pub mod runs_panel;
mod servers_panel;
pub mod settings;
mod dataset_fields;
mod setup_panel;
mod strategy_editor;
mod weights_field;
pub mod shared;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context as _, Result};
use eframe::egui;

pub use app::{App, Workbench};

/// A script for the window to play (`twinhead --demo-script FILE --shots DIR`).
pub struct Demo {
    pub script: PathBuf,
    /// Where `shot NAME` saves `NAME.png`.
    pub shots: PathBuf,
}

/// Opens the workbench window and returns when it is closed. With a demo
/// script the window plays it ([`demo_script`]); a script that failed, or a
/// window closed before the script's end, is an error.
pub fn run(demo: Option<Demo>) -> Result<()> {
    let script = match &demo {
        Some(demo) => {
            let text = std::fs::read_to_string(&demo.script).with_context(|| format!("cannot read {}", demo.script.display()))?;
            Some((demo_script::parse(&text, &demo.script)?, demo.shots.clone()))
        }
        None => None,
    };
    let outcome = Arc::new(Mutex::new(demo_script::Outcome::default()));
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Twinhead")
            .with_inner_size([1360.0, 860.0])
            .with_min_inner_size([900.0, 600.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    let played = outcome.clone();
    eframe::run_native(
        "twinhead",
        options,
        Box::new(move |cc| {
            if let Some((lines, shots)) = script {
                cc.egui_ctx.add_plugin(demo_script::DemoScript::new(lines, shots, played));
            }
            Ok(Box::new(App::new(cc)))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the workbench window: {e} (no display? the CLI commands work without one: `twinhead --help`)"))?;
    if let Some(demo) = demo {
        let outcome = outcome.lock().expect("outcome lock");
        if let Some(failure) = &outcome.failure {
            bail!("{failure}");
        }
        if !outcome.finished {
            bail!("the window closed before {} ended", demo.script.display());
        }
    }
    Ok(())
}

pub(crate) use crate::export::csv::csv_field;

/// An x-axis formatter naming categories at the integer positions 0, 1, 2, …
/// (bar charts over classes or runs) and nothing between them.
pub(crate) fn category_axis(names: Vec<String>) -> impl Fn(egui_plot::GridMark, &std::ops::RangeInclusive<f64>) -> String {
    move |mark, _| {
        let i = mark.value.round();
        if (mark.value - i).abs() < 1e-6 && i >= 0.0 { names.get(i as usize).cloned().unwrap_or_default() } else { String::new() }
    }
}

/// Seconds since the Unix epoch: what names the files exported to `runs/exports/`.
pub(crate) fn unix_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Writes an exported CSV (creating its folder) and says where in a notice,
/// `"{what} saved to {path}"`, or why not.
pub(crate) fn save_csv(path: &std::path::Path, text: &str, what: &str) -> crate::session::Notice {
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(path, text))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()));
    match written {
        Ok(()) => crate::session::Notice::info(format!("{what} saved to {}", path.display())),
        Err(error) => crate::session::Notice::error(format!("Export CSV: {error:#}")),
    }
}
