//! What burn's autotuner chose on the GPUs, read back from CubeCL's persistent
//! autotune cache: one JSON entry per tuned operation and shape, with every
//! candidate timed, fastest first. `bench train --kernels` lists them, so a
//! user can see which kernel runs each convolution (and that no direct
//! convolution is left where a faster one was measured).

use std::path::{Path, PathBuf};

/// The kernel autotuning kept for one operation on one shape.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelChoice {
    /// The tuned operation and its shape key, as CubeCL serialised it.
    pub operation: String,
    /// The fastest candidate's name.
    pub fastest: String,
    /// How many candidates were timed (or failed to run).
    pub candidates: usize,
}

impl KernelChoice {
    /// A convolution (forward, data or weight gradient), by its key.
    pub fn is_convolution(&self) -> bool {
        self.operation.to_ascii_lowercase().contains("conv")
    }
}

/// Where CubeCL keeps its autotune cache on this machine (its configuration's
/// cache root: by default the `target/` folder of the Cargo project around the
/// working directory, else the user's cache folder).
pub fn cache_dir() -> Option<PathBuf> {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    {
        use burn::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};
        Some(CubeClRuntimeConfig::get().autotune.cache.root().join("autotune"))
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    None
}

/// Every choice recorded under `dir` (its `*.json.log` files, one entry per line).
pub fn kernel_choices(dir: &Path) -> Vec<KernelChoice> {
    let mut files = Vec::new();
    collect_logs(dir, &mut files);
    files.sort();
    files
        .iter()
        .filter_map(|file| std::fs::read_to_string(file).ok())
        .flat_map(|text| text.lines().filter_map(parse_entry).collect::<Vec<_>>())
        .collect()
}

fn collect_logs(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for path in entries.flatten().map(|e| e.path()) {
        if path.is_dir() {
            collect_logs(&path, files);
        } else if path.to_string_lossy().ends_with(".json.log") {
            files.push(path);
        }
    }
}

/// One cache line: `{"key": {"key": K, "checksum": …}, "value": {"fastest_index": i, "results": [{"outcome": {"Ok": {"name": …}}}, …]}}`.
fn parse_entry(line: &str) -> Option<KernelChoice> {
    let entry: serde_json::Value = serde_json::from_str(line).ok()?;
    let results = entry.pointer("/value/results")?.as_array()?;
    let fastest = results.first()?.pointer("/outcome/Ok/name")?.as_str()?.to_string();
    let operation = entry.pointer("/key/key")?.to_string();
    Some(KernelChoice { operation, fastest, candidates: results.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fastest_candidate_of_each_entry() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("0.10.0/wgpu-cpu");
        std::fs::create_dir_all(&device).unwrap();
        let conv = r#"{"key":{"key":{"Conv2d":{"in_channels":16,"kernel":[3,3]}},"checksum":"ab"},"value":{"fastest_index":2,"results":[{"outcome":{"Ok":{"name":"conv_gemm_simple_sync","index":2}}},{"outcome":{"Ok":{"name":"conv_direct","index":0}}},{"outcome":{"Err":"Skip"}}]}}"#;
        let matmul = r#"{"key":{"key":{"Matmul":{"m":611,"n":40,"k":40}},"checksum":"cd"},"value":{"fastest_index":0,"results":[{"outcome":{"Ok":{"name":"matmul_simple_unit","index":0}}}]}}"#;
        std::fs::write(device.join("conv.json.log"), format!("{conv}\nnot json\n")).unwrap();
        std::fs::write(device.join("matmul.json.log"), format!("{matmul}\n")).unwrap();
        std::fs::write(device.join("notes.txt"), conv).unwrap();
        let choices = kernel_choices(dir.path());
        assert_eq!(choices.len(), 2, "{choices:?}");
        assert_eq!((choices[0].fastest.as_str(), choices[0].candidates, choices[0].is_convolution()), ("conv_gemm_simple_sync", 3, true));
        assert!(choices[0].operation.contains("in_channels"));
        assert_eq!((choices[1].fastest.as_str(), choices[1].is_convolution()), ("matmul_simple_unit", false));
        assert!(kernel_choices(&dir.path().join("missing")).is_empty());
    }
}
