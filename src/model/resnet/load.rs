//! Loading torchvision checkpoints (`.pth` or `.safetensors` state dicts) into [`ResNet`].

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, ensure, Context};
use burn::tensor::backend::Backend;
use burn::tensor::DType;
use burn_store::{
    ApplyError, ApplyResult, KeyRemapper, ModuleSnapshot, ModuleStore, PytorchStore, SafetensorsStore, TensorSnapshot,
};

use super::{ResNet, ResNetConfig, ResNetDepth};

/// Checkpoint entries a backbone has no use for: the ImageNet classifier and
/// BatchNorm's step counter.
fn is_ignored(key: &str) -> bool {
    key.starts_with("fc.") || key.ends_with(".num_batches_tracked")
}

impl<B: Backend> ResNet<B> {
    /// Loads every parameter from a torchvision ResNet `state_dict`: a `.pth`/`.pt`
    /// written by `torch.save` (e.g. torchvision's `resnet50-0676ba61.pth`) or the
    /// same dict as `.safetensors`. Keys map 1:1 onto this module (a `module.`
    /// prefix from DataParallel is stripped); `fc.*` and `num_batches_tracked` are
    /// ignored. Fails, naming the file, unless every parameter is loaded and no
    /// other tensor is left over (so a checkpoint of another depth is refused).
    pub fn load_torchvision(mut self, path: impl AsRef<Path>) -> anyhow::Result<Self> {
        let path = path.as_ref();
        let loaded = load(&mut self, path)
            .with_context(|| format!("cannot load torchvision ResNet weights from {}", path.display()))?;
        tracing::info!("loaded {loaded} tensors into {} from {}", describe(&self.config()), path.display());
        Ok(self)
    }
}

/// Applies the checkpoint and returns how many tensors were loaded.
fn load<B: Backend>(model: &mut ResNet<B>, path: &Path) -> anyhow::Result<usize> {
    ensure!(path.is_file(), "no such file");
    let remapper = KeyRemapper::new().add_pattern(r"^module\.", "")?;
    // Validation and completeness are checked below, with a clearer report than
    // the stores' own (which would also miss left-over tensors).
    let result = match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => {
            apply(model, SafetensorsStore::from_file(path).remap(remapper).validate(false).allow_partial(true))?
        }
        Some("pth" | "pt") => apply(
            model,
            PytorchStore::from_file(path)
                .remap(remapper)
                // torchvision indices are already contiguous; renumbering could hide a mismatch.
                .map_indices_contiguous(false)
                .validate(false)
                .allow_partial(true),
        )?,
        _ => bail!("expected a .pth/.pt (torch.save) or .safetensors checkpoint"),
    };
    check_complete(&model.config(), &result)?;
    Ok(result.applied.len())
}

fn apply<B: Backend, S: ModuleStore>(model: &mut ResNet<B>, mut store: S) -> anyhow::Result<ApplyResult> {
    check_dtypes(store.get_all_snapshots().map_err(|e| anyhow!("not a readable checkpoint: {e}"))?)?;
    model.load_from(&mut store).map_err(|e| anyhow!("{e}"))
}

/// burn-store keeps the file's dtype; the model computes in f32 throughout.
fn check_dtypes(snapshots: &BTreeMap<String, TensorSnapshot>) -> anyhow::Result<()> {
    match snapshots.iter().find(|(key, s)| !is_ignored(key) && s.dtype != DType::F32) {
        Some((key, s)) => bail!("tensor `{key}` is {:?}; only float32 checkpoints are supported", s.dtype),
        None => Ok(()),
    }
}

fn check_complete(config: &ResNetConfig, result: &ApplyResult) -> anyhow::Result<()> {
    let mismatched: Vec<String> = result
        .errors
        .iter()
        .map(|e| match e {
            ApplyError::ShapeMismatch { path, expected, found } => {
                format!("{path} (model {:?}, file {:?})", expected.as_slice(), found.as_slice())
            }
            other => other.to_string(),
        })
        .collect();
    let missing: Vec<String> = result.missing.iter().map(|(path, _)| path.clone()).collect();
    let unexpected: Vec<String> = result.unused.iter().filter(|k| !is_ignored(k)).cloned().collect();
    if mismatched.is_empty() && missing.is_empty() && unexpected.is_empty() {
        return Ok(());
    }
    let mut message = format!("the checkpoint does not fit a {} (a checkpoint of another depth?):", describe(config));
    for (what, list) in [
        ("of the wrong shape", mismatched),
        ("missing from the file", missing),
        ("in the file but not in the model", unexpected),
    ] {
        if !list.is_empty() {
            let examples = list.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
            message += &format!("\n  {} tensor(s) {what}, e.g. {examples}", list.len());
        }
    }
    bail!(message)
}

/// "resnet50 (Bottleneck blocks [3, 4, 6, 3], base width 64)".
fn describe(config: &ResNetConfig) -> String {
    let name = [ResNetDepth::R18, ResNetDepth::R34, ResNetDepth::R50]
        .into_iter()
        .find(|&d| ResNetConfig { base_width: config.base_width, ..ResNetConfig::new(d) } == *config)
        .map_or("ResNet", |d| match d {
            ResNetDepth::R18 => "resnet18",
            ResNetDepth::R34 => "resnet34",
            ResNetDepth::R50 => "resnet50",
        });
    let block = if config.bottleneck { "Bottleneck" } else { "BasicBlock" };
    format!("{name} ({block} blocks {:?}, base width {})", config.blocks, config.base_width)
}
