//! Inference for the Inspect and Preview panels, off the UI thread. The last
//! loaded checkpoint stays cached, so more images dropped on the same run do
//! not reload it; predictions keep detections down to a low score, so the
//! score slider filters them when drawing instead of predicting again.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use image::RgbImage;
use rayon::prelude::*;

use super::error_view::{truth_parts, ErrorLayer};
use super::job::Job;
use super::shared::Shared;
use crate::data::batch::decode_rgb;
use crate::data::truth::truth_beside;
use crate::data::ClassList;
use crate::data::Problem;
use crate::backend::device::DeviceSpec;
pub use crate::predictor::{display_postprocess, ModelInfo, PredictorCache};
use crate::predictor::Prediction;
use crate::serve::client::Client;
use crate::session::run_record::RunRecord;
use crate::train::checkpoint::{self, CheckpointKind};

/// Where a run's checkpoint is run for Inspect: here, or on the run's server
/// (where its datasets are).
pub enum Source {
    Here { predictors: PredictorCache, run_dir: PathBuf, device: DeviceSpec },
    Server { client: Arc<Client>, run: String },
}

impl Source {
    /// Where `record`'s checkpoints run; `None` for a server's run whose server is not connected.
    pub fn of(record: &RunRecord, shared: &Shared, predictors: &PredictorCache) -> Option<Self> {
        match &record.remote {
            Some(remote) => shared.servers.get(&remote.server).map(|client| Source::Server { client: client.clone(), run: remote.run.clone() }),
            None => Some(Source::Here { predictors: predictors.clone(), run_dir: record.dir.clone(), device: shared.device() }),
        }
    }
}

/// The checkpoint picker of Inspect and Preview: the run's training
/// checkpoints and its compressed models (a server's run: those training writes).
pub fn checkpoint_combo(ui: &mut eframe::egui::Ui, kind: &mut CheckpointKind, record: &RunRecord) {
    eframe::egui::ComboBox::from_label("Checkpoint").selected_text(kind.name()).show_ui(ui, |ui| {
        let choices = match record.remote {
            Some(_) => CheckpointKind::TRAINED.to_vec(),
            None => checkpoint::available(&record.dir),
        };
        for choice in choices {
            let label = choice.name();
            ui.selectable_value(kind, choice, label);
        }
    });
}

/// One image file with its prediction.
pub struct PredictedFile {
    pub path: PathBuf,
    pub image: RgbImage,
    pub prediction: Prediction,
    pub model: Arc<ModelInfo>,
    /// The ground truth found beside the file (an image from a dataset folder), judged.
    pub truth: Option<ErrorLayer>,
}

/// What a file-prediction job gives back: the files that decoded, predicted,
/// and a problem for each one that did not.
pub struct FilePredictions {
    pub files: Vec<PredictedFile>,
    pub failures: Vec<Problem>,
}

/// Where a run's checkpoint predicts: loaded here (from its folder, on a
/// device), or on the server that has the run.
#[derive(Clone)]
pub enum PredictWith {
    Here { cache: PredictorCache, run_dir: PathBuf, device: DeviceSpec },
    Server { client: Arc<Client>, run: String },
}

/// Where run `name` of the session predicts: on the device the workbench
/// predicts on, or on its server (`None` while that server is not connected).
pub fn predict_with(shared: &Shared, cache: &PredictorCache, name: &str) -> Option<PredictWith> {
    let record = shared.session.record(name)?;
    match &record.remote {
        Some(remote) => Some(PredictWith::Server { client: shared.servers.get(&remote.server)?.clone(), run: remote.run.clone() }),
        None => Some(PredictWith::Here { cache: cache.clone(), run_dir: record.dir.clone(), device: shared.device() }),
    }
}

/// A job predicting image files with run `run`'s `kind` checkpoint.
pub fn spawn_file_predictions(with: PredictWith, run: String, kind: CheckpointKind, paths: Vec<PathBuf>, repaint: impl Fn() + Send + Sync + 'static) -> Job<FilePredictions> {
    Job::spawn(format!("predict {} image(s) with {run}", paths.len()), repaint, move |progress| {
        progress.set(0, paths.len());
        let decoded: Vec<Result<RgbImage, Problem>> = paths.par_iter().map(|p| decode_rgb(p)).collect();
        let (mut failures, mut readable, mut images) = (Vec::new(), Vec::new(), Vec::new());
        for (path, image) in paths.into_iter().zip(decoded) {
            match image {
                Ok(image) => {
                    readable.push(path);
                    images.push(image);
                }
                Err(problem) => failures.push(problem),
            }
        }
        let mut done = failures.len();
        let total = done + images.len();
        let (model, predictions) = match with {
            PredictWith::Here { cache, run_dir, device } => {
                let predictor = cache.load(&run_dir, &kind, device)?;
                let predictions = crate::inspection::predict(&predictor, &images, &display_postprocess(), progress, &mut done, total)?;
                (ModelInfo::of(&run, kind, &predictor), predictions)
            }
            PredictWith::Server { client, run: on_server } => {
                let mut model = None;
                let mut predictions = Vec::with_capacity(readable.len());
                for path in &readable {
                    if progress.is_cancelled() {
                        bail!("cancelled");
                    }
                    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
                    let answer = client.predict(&on_server, &kind, &bytes)?;
                    model = Some(ModelInfo { run: run.clone(), ..answer.model });
                    predictions.push(answer.prediction);
                    done += 1;
                    progress.set(done, total);
                }
                let Some(model) = model else { return Ok(FilePredictions { files: Vec::new(), failures }) };
                (model, predictions)
            }
        };
        let model = Arc::new(model);
        let det_classes = ClassList::new(model.det_classes.clone());
        let files = readable
            .into_iter()
            .zip(images)
            .zip(predictions)
            .map(|((path, image), prediction)| {
                let truth = match truth_beside(&path, &det_classes, model.seg_classes.len()) {
                    Some(Ok(truth)) => {
                        let (boxes, mask) = truth_parts(truth);
                        Some(ErrorLayer::new(boxes, mask, &prediction.detections, prediction.mask.as_ref()))
                    }
                    Some(Err(problem)) => {
                        failures.push(problem);
                        None
                    }
                    None => None,
                };
                PredictedFile { path, image, prediction, model: model.clone(), truth }
            })
            .collect();
        Ok(FilePredictions { files, failures })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_without_a_checkpoint_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let error = PredictorCache::default().load(dir.path(), &CheckpointKind::Last, DeviceSpec::Cpu).err().unwrap();
        assert!(format!("{error:#}").contains("no last checkpoint"), "{error:#}");
    }

    #[test]
    fn a_file_job_without_a_checkpoint_ends_in_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let with = PredictWith::Here { cache: PredictorCache::default(), run_dir: dir.path().to_path_buf(), device: DeviceSpec::Cpu };
        let job = spawn_file_predictions(with, "x".into(), CheckpointKind::BestDet, vec![dir.path().join("a.png")], || {});
        let error = job.wait().err().unwrap();
        assert!(format!("{error:#}").contains("no best-det checkpoint"), "{error:#}");
    }
}
