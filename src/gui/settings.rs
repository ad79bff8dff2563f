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
    /// The user's classification dataset, once chosen.
    pub cls_dir: Option<PathBuf>,
    /// The preset the Setup panel had last.
    pub preset: String,
    /// Where runs are written.
    pub runs_dir: PathBuf,
    /// The panel shown in the middle.
    pub tab: Tab,
    /// `twinhead serve` servers whose runs are listed (connected at start).
    pub servers: Vec<ServerEntry>,
}

/// A server as the Servers window keeps it: where it is and where its
/// secrets are. The token itself is never stored here, only the file it is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerEntry {
    /// The name its runs carry in the list (`quick@gpu-box`).
    pub label: String,
    /// `http://127.0.0.1:7878` (an SSH tunnel) or `https://gpu-box:7878`.
    pub address: String,
    pub token_file: Option<PathBuf>,
    /// The server's certificate, when the web's authorities do not vouch for it.
    pub ca_file: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Self { voc_dir: None, ade_dir: None, cls_dir: None, preset: "quick".into(), runs_dir: "runs".into(), tab: Tab::Setup, servers: Vec::new() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tab {
    Setup,
    Curves,
    Compare,
    Inspect,
    Preview,
    Compress,
}

impl Tab {
    pub const ALL: [Tab; 6] = [Tab::Setup, Tab::Curves, Tab::Compare, Tab::Inspect, Tab::Preview, Tab::Compress];

    pub fn label(self) -> &'static str {
        match self {
            Tab::Setup => "Setup",
            Tab::Curves => "Curves",
            Tab::Compare => "Compare",
            Tab::Inspect => "Inspect",
            Tab::Preview => "Preview",
            Tab::Compress => "Compress",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// eframe's storage, in memory.
    #[derive(Default)]
    struct Memory(HashMap<String, String>);

    impl eframe::Storage for Memory {
        fn get_string(&self, key: &str) -> Option<String> {
            self.0.get(key).cloned()
        }
        fn set_string(&mut self, key: &str, value: String) {
            self.0.insert(key.to_string(), value);
        }
        fn remove_string(&mut self, key: &str) {
            self.0.remove(key);
        }
        fn flush(&mut self) {}
    }

    #[test]
    fn settings_survive_a_restart_and_old_ones_fill_in_defaults() {
        let mut storage = Memory::default();
        assert_eq!(eframe::get_value::<Settings>(&storage, KEY), None);
        let settings = Settings {
            voc_dir: Some("/data/VOCdevkit".into()),
            ade_dir: Some("/data/ADEChallengeData2016".into()),
            cls_dir: Some("/data/cars".into()),
            preset: "voc-ade".into(),
            runs_dir: "/data/runs".into(),
            tab: Tab::Compare,
            servers: vec![ServerEntry {
                label: "gpu-box".into(),
                address: "http://127.0.0.1:7878".into(),
                token_file: Some("/home/me/.twinhead-token".into()),
                ca_file: None,
            }],
        };
        eframe::set_value(&mut storage, KEY, &settings);
        assert_eq!(eframe::get_value::<Settings>(&storage, KEY), Some(settings));
        // Settings written by an older version, with fields missing.
        eframe::Storage::set_string(&mut storage, KEY, "(preset: \"joint\")".into());
        let read: Settings = eframe::get_value(&storage, KEY).unwrap();
        assert_eq!(read, Settings { preset: "joint".into(), ..Settings::default() });
    }
}
