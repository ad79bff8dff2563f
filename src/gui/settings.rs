//! What the workbench remembers between launches (eframe's storage keeps it,
//! next to the window's size and panel layout).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The storage key.
pub const KEY: &str = "twinhead-settings";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The user's VOC-format detection dataset, once chosen.
    pub voc_dir: Option<PathBuf>,
    /// The user's ADE20K-format segmentation dataset, once chosen.
    pub ade_dir: Option<PathBuf>,
    /// The preset the Setup panel had last.
    pub preset: String,
    /// Where runs are written.
    pub runs_dir: PathBuf,
    /// The panel shown in the middle.
    pub tab: Tab,
}

impl Default for Settings {
    fn default() -> Self {
        Self { voc_dir: None, ade_dir: None, preset: "quick".into(), runs_dir: "runs".into(), tab: Tab::Setup }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tab {
    Setup,
    Curves,
    Compare,
    Inspect,
    Preview,
}

impl Tab {
    pub const ALL: [Tab; 5] = [Tab::Setup, Tab::Curves, Tab::Compare, Tab::Inspect, Tab::Preview];

    pub fn label(self) -> &'static str {
        match self {
            Tab::Setup => "Setup",
            Tab::Curves => "Curves",
            Tab::Compare => "Compare",
            Tab::Inspect => "Inspect",
            Tab::Preview => "Preview",
        }
    }
}
