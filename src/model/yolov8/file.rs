//! The tensors of a YOLOv8 checkpoint by their state-dict names
//! (`model.2.m.0.cv1.bn.running_var`), read without Python.
//!
//! Ultralytics' `.pt` is a `torch.save` zip archive whose pickle holds the
//! model *object* (a `DetectionModel`, often half precision) in a dict under
//! `model` and `ema`. burn-store's pickle reader rebuilds the tensors and
//! keeps every class it does not know as a generic object; the glue here walks
//! the modules' `_parameters`, `_buffers` and `_modules` to name them. A plain
//! state dict (`torch.save(model.state_dict())`, or `.safetensors`) is read by
//! burn-store's own readers.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, ensure, Context};
use burn_store::pytorch::lazy_data::LazyDataSource;
use burn_store::pytorch::pickle_reader::{read_pickle_with_data, Object};
use burn_store::{ModuleStore, PytorchStore, SafetensorsStore, TensorSnapshot};

/// What a checkpoint file holds.
pub struct CheckpointTensors {
    /// Every tensor by its state-dict name.
    pub tensors: BTreeMap<String, TensorSnapshot>,
    /// The pickled model's class (`ultralytics.nn.tasks.DetectionModel`); absent for state dicts.
    pub model_class: Option<String>,
}

/// Reads `path`: an Ultralytics `.pt`, or a state dict as `.pt`/`.pth` or `.safetensors`.
pub fn read(path: &Path) -> anyhow::Result<CheckpointTensors> {
    ensure!(path.is_file(), "no such file");
    let mut read = match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => {
            let mut store = SafetensorsStore::from_file(path);
            let tensors = store.get_all_snapshots().map_err(|e| anyhow!("not a readable safetensors file: {e}"))?.clone();
            CheckpointTensors { tensors, model_class: None }
        }
        Some("pt" | "pth") => read_torch(path)?,
        _ => bail!("expected an Ultralytics .pt checkpoint, or a state dict as .pt or .safetensors"),
    };
    // DataParallel's prefix, and BatchNorm's step counter (no use here).
    read.tensors = std::mem::take(&mut read.tensors)
        .into_iter()
        .filter(|(name, _)| !name.ends_with(".num_batches_tracked"))
        .map(|(name, tensor)| (name.strip_prefix("module.").map(str::to_string).unwrap_or(name), tensor))
        .collect();
    ensure!(!read.tensors.is_empty(), "the file holds no tensors");
    Ok(read)
}

fn read_torch(path: &Path) -> anyhow::Result<CheckpointTensors> {
    let pickle = data_pickle(path).context("not a checkpoint written by torch.save (torch 1.6 or later)")?;
    let source = Arc::new(LazyDataSource::from_zip(path)?);
    let object = read_pickle_with_data(&mut pickle.as_slice(), source).map_err(|e| anyhow!("unreadable pickle: {e}"))?;
    let Object::Dict(top) = &object else { bail!("the pickle holds no dict") };
    // Ultralytics: the averaged weights when the file has them (as its loader does).
    let model = ["ema", "model"].into_iter().find_map(|key| top.get(key).filter(|o| matches!(o, Object::Build { .. })));
    match model {
        Some(model) => {
            let mut tensors = BTreeMap::new();
            module_tensors(model, "", &mut tensors);
            Ok(CheckpointTensors { tensors, model_class: class_name(model) })
        }
        None => {
            // A state dict, directly or under one key (`state_dict`, `model`).
            let nested = ["state_dict", "model"].into_iter().find(|key| matches!(top.get(*key), Some(Object::Dict(_))));
            // Keep the indices: YOLOv8's layers 10, 11, … hold no weights, so
            // renumbering would shift every later layer.
            let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
            if let Some(key) = nested {
                store = store.with_top_level_key(key);
            }
            let tensors = store.get_all_snapshots().map_err(|e| anyhow!("not a readable state dict: {e}"))?.clone();
            Ok(CheckpointTensors { tensors, model_class: None })
        }
    }
}

/// The most bytes of pickle read from an archive (the largest Ultralytics
/// model's is a few MB); a zip bomb's would be unbounded.
const MAX_PICKLE: u64 = 1 << 30;

/// The bytes of the archive's `…/data.pkl`.
fn data_pickle(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut archive = zip::ZipArchive::new(BufReader::new(File::open(path)?))?;
    let name = archive.file_names().find(|n| n.ends_with("data.pkl")).map(str::to_string).context("no data.pkl inside")?;
    let mut bytes = Vec::new();
    archive.by_name(&name)?.take(MAX_PICKLE + 1).read_to_end(&mut bytes)?;
    ensure!(bytes.len() as u64 <= MAX_PICKLE, "{name} unpacks to more than {} MiB", MAX_PICKLE >> 20);
    Ok(bytes)
}

/// A pickled `nn.Module` is its class rebuilt, then its `__dict__` set: the
/// tensors sit in `_parameters` and `_buffers`, the children in `_modules`.
fn module_tensors(module: &Object, prefix: &str, out: &mut BTreeMap<String, TensorSnapshot>) {
    let Object::Build { args, .. } = module else { return };
    let Object::Dict(state) = args.as_ref() else { return };
    let dict = |key: &str| -> Option<&HashMap<String, Object>> {
        match state.get(key) {
            Some(Object::Dict(d)) => Some(d),
            _ => None,
        }
    };
    for (name, value) in ["_parameters", "_buffers"].into_iter().filter_map(dict).flatten() {
        if let Object::TorchParam(tensor) = value {
            out.insert(format!("{prefix}{name}"), tensor.clone());
        }
    }
    for (name, child) in dict("_modules").into_iter().flatten() {
        module_tensors(child, &format!("{prefix}{name}."), out);
    }
}

/// `module.Class` of a pickled object.
fn class_name(object: &Object) -> Option<String> {
    match object {
        Object::Class { module_name, name } => Some(format!("{module_name}.{name}")),
        Object::Build { callable, .. } | Object::Reduce { callable, .. } => class_name(callable),
        _ => None,
    }
}
