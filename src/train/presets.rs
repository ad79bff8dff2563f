//! The presets: built into the binary, so a copied or installed `twinhead`
//! works from any folder. A `presets/NAME.toml` in the working directory
//! overrides the built-in one of that name (or adds a new name), and any path
//! to a TOML file is read as it is.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The built-in presets, the files of the source tree's `presets/` folder
/// (a test checks that none is missing).
const BUILT_IN: &[(&str, &str)] = &[
    ("allinone", include_str!("../../presets/allinone.toml")),
    ("alternate", include_str!("../../presets/alternate.toml")),
    ("alternate-pseudo", include_str!("../../presets/alternate-pseudo.toml")),
    ("ewc", include_str!("../../presets/ewc.toml")),
    ("freeze", include_str!("../../presets/freeze.toml")),
    ("joint", include_str!("../../presets/joint.toml")),
    ("joint-pcgrad", include_str!("../../presets/joint-pcgrad.toml")),
    ("joint-uncertainty", include_str!("../../presets/joint-uncertainty.toml")),
    ("lwf", include_str!("../../presets/lwf.toml")),
    ("naive", include_str!("../../presets/naive.toml")),
    ("pseudo", include_str!("../../presets/pseudo.toml")),
    ("quick", include_str!("../../presets/quick.toml")),
    ("replay", include_str!("../../presets/replay.toml")),
    ("sequential", include_str!("../../presets/sequential.toml")),
    ("track1", include_str!("../../presets/track1.toml")),
    ("voc-ade", include_str!("../../presets/voc-ade.toml")),
    ("voc-ade-yolov8s", include_str!("../../presets/voc-ade-yolov8s.toml")),
];

/// The folder of user presets that override the built-in ones: `presets/` in the working directory.
const LOCAL_DIR: &str = "presets";

/// A preset's TOML text and where it came from (for error messages).
pub struct PresetSource {
    pub origin: String,
    pub text: String,
}

/// Names of every preset: built in, plus those in `./presets/`.
pub fn preset_names() -> Vec<String> {
    let mut names: Vec<String> = BUILT_IN.iter().map(|(name, _)| name.to_string()).collect();
    names.extend(
        std::fs::read_dir(LOCAL_DIR)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".toml").map(str::to_string)),
    );
    names.sort();
    names.dedup();
    names
}

/// Finds a preset: a path to a TOML file, `./presets/NAME.toml`, or a built-in name.
pub fn find_preset(preset: &str) -> Result<PresetSource> {
    let candidates = [PathBuf::from(preset), Path::new(LOCAL_DIR).join(format!("{preset}.toml"))];
    if let Some(path) = candidates.iter().find(|p| p.is_file()) {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("{}: cannot read preset", path.display()))?;
        return Ok(PresetSource { origin: path.display().to_string(), text });
    }
    if let Some((name, text)) = BUILT_IN.iter().find(|(name, _)| *name == preset) {
        return Ok(PresetSource { origin: format!("built-in preset {name}"), text: text.to_string() });
    }
    bail!("preset {preset:?} not found (a TOML file, or one of: {})", preset_names().join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of the source tree's `presets/` is built in, under its file name.
    #[test]
    fn every_preset_file_is_built_in() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("presets");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().to_str()?.strip_suffix(".toml").map(str::to_string))
            .collect();
        files.sort();
        let built_in: Vec<&str> = BUILT_IN.iter().map(|(name, _)| *name).collect();
        assert_eq!(files, built_in);
        for (name, text) in BUILT_IN {
            assert_eq!(std::fs::read_to_string(dir.join(format!("{name}.toml"))).unwrap(), *text);
        }
    }
}
