//! The Preview and Inspect panels on their own, driven through egui_kittest
//! (widgets found by their labels, no display needed) with a run trained for a
//! few steps on tiny synthetic data: a dropped image is predicted, shown and
//! its overlay saved, a file that does not decode is an error naming it;
//! Inspect shows both validation sets with the per-class table.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;
use twinhead::gui::compress_panel::CompressPanel;
use twinhead::gui::inspect_panel::InspectPanel;
use twinhead::gui::preview_panel::PreviewPanel;
use twinhead::session::NoticeLevel;
use twinhead::gui::settings::Settings;
use twinhead::gui::shared::Shared;

use crate::common::{trained, trained_three_task, RUN, THREE_TASK_RUN};

/// The shared state of a workbench over the trained run, with the run focused.
fn shared(dir: &Path) -> Shared {
    focused(dir, RUN)
}

/// The shared state of a workbench over the runs in `dir/runs`, with `run` focused.
fn focused(dir: &Path, run: &str) -> Shared {
    let settings = Settings { runs_dir: dir.join("runs"), ..Settings::default() };
    let mut shared = Shared::new(settings);
    assert!(shared.session.record(run).is_some(), "the trained run is listed");
    shared.selection.focused = Some(run.to_string());
    shared
}

/// Steps the UI (with short sleeps, as background jobs finish) until `done`, failing after `limit`.
fn step_until<S>(harness: &mut Harness<'static, S>, limit: Duration, what: &str, done: impl Fn(&Harness<'static, S>) -> bool) {
    let started = Instant::now();
    while !done(harness) {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        harness.step();
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct PreviewState {
    panel: PreviewPanel,
    shared: Shared,
}

#[test]
fn a_dropped_image_is_predicted_and_a_broken_one_named_in_an_error() {
    let dir = trained();
    let mut images: Vec<PathBuf> =
        std::fs::read_dir(dir.join("synth/voc/JPEGImages")).unwrap().map(|e| e.unwrap().path()).collect();
    images.sort();
    let image = images[0].clone();
    let name = image.file_name().unwrap().to_string_lossy().into_owned();

    let state = PreviewState { panel: PreviewPanel::default(), shared: shared(dir) };
    let mut harness = Harness::builder()
        .with_size([1200.0, 1000.0])
        .build_ui_state(|ui, state: &mut PreviewState| state.panel.ui(ui, &mut state.shared), state);
    harness.step();
    harness.get_by_label_contains("Drop image files on the window");
    // The checkpoint picker lists the run's checkpoints (compressed ones too, tested in the Compress test).
    harness.get_by_label("Checkpoint").click();
    harness.step();
    harness.get_by_label("best-seg");
    harness.get_by_label("last").click();
    harness.step();
    harness.state_mut().shared.dropped_files.push(image);
    let shown = format!("{name}: ");
    step_until(&mut harness, Duration::from_secs(120), "the preview", |h| h.query_by_label_contains(&shown).is_some());
    assert!(harness.state().shared.dropped_files.is_empty(), "the panel takes the dropped files");
    // A plain label keeps its text in AccessKit's value.
    let label = harness.get_by_label_contains(&shown).accesskit_node().value().unwrap_or_default();
    assert!(label.ends_with(" boxes"), "{label}");
    // The image comes from a VOC folder: its ground truth is found, so errors can show.
    harness.get_by_label("Show errors").click();
    harness.step();
    harness.step();
    assert!(harness.query_by_label_contains("No ground truth beside this image").is_none());
    harness.get_by_label("Save overlay PNG").click();
    let stem = Path::new(&name).file_stem().unwrap().to_string_lossy().into_owned();
    let export = dir.join("runs/exports").join(format!("preview-{stem}.png"));
    let saved = |h: &Harness<'static, PreviewState>| {
        h.state().shared.notifications.items.iter().any(|(n, _)| n.level == NoticeLevel::Info && n.text.contains(&*export.to_string_lossy()))
    };
    step_until(&mut harness, Duration::from_secs(60), "the saved overlay", saved);
    assert!(image::open(&export).is_ok(), "{} is a PNG", export.display());

    let broken = dir.join("broken.png");
    std::fs::write(&broken, b"not a png").unwrap();
    harness.state_mut().shared.dropped_files.push(broken);
    let named = |h: &Harness<'static, PreviewState>| {
        h.state().shared.notifications.items.iter().any(|(n, _)| n.level == NoticeLevel::Error && n.text.contains("broken.png"))
    };
    step_until(&mut harness, Duration::from_secs(120), "the error about broken.png", named);
    // The good image is still shown.
    harness.get_by_label_contains(&shown);
}

struct InspectState {
    panel: InspectPanel,
    shared: Shared,
}

#[test]
fn inspect_shows_both_validation_sets_with_their_metrics() {
    let state = InspectState { panel: InspectPanel::default(), shared: shared(trained()) };
    let mut harness = Harness::builder()
        .with_size([1200.0, 1400.0])
        .build_ui_state(|ui, state: &mut InspectState| state.panel.ui(ui, &mut state.shared), state);
    step_until(&mut harness, Duration::from_secs(120), "the inspection", |h| h.query_by_label_contains("Mean AP50").is_some());
    harness.get_by_label("Ground truth");
    harness.get_by_label_contains("1 / ");
    harness.get_by_label("Next").click();
    harness.step();
    harness.step();
    harness.get_by_label_contains("2 / ");
    harness.get_by_label_contains("Legend:");
    // Export: the inspected detection images' predictions as COCO results.
    harness.get_by_label("Export predictions").click();
    let exported = |h: &Harness<'static, InspectState>| {
        h.state().shared.notifications.items.iter().any(|(n, _)| n.level == NoticeLevel::Info && n.text.starts_with("exported "))
    };
    step_until(&mut harness, Duration::from_secs(60), "the export", exported);
    let exports = trained().join("runs/exports");
    let folder = std::fs::read_dir(&exports).unwrap().map(|e| e.unwrap().path()).find(|p| p.to_string_lossy().contains("-last-coco-")).unwrap();
    let coco: serde_json::Value = serde_json::from_slice(&std::fs::read(folder.join("predictions.coco.json")).unwrap()).unwrap();
    assert!(coco.is_array());
    // The error view: the prediction judged against the ground truth.
    harness.get_by_label("Show errors").click();
    harness.step();
    harness.step();
    harness.get_by_label_contains("boxes (errors)");
    harness.get_by_label("missed");
    harness.get_by_label_contains("Segmentation set").click();
    harness.step();
    harness.step();
    harness.get_by_label_contains("Mean IoU");
    harness.get_by_label_contains("boxes (errors)");
}

/// The metrics view scores the full validation splits in the background and
/// shows the PR curve, both confusion matrices and sortable, exportable tables.
#[test]
fn inspect_metrics_show_pr_curves_confusion_matrices_and_export_tables() {
    let state = InspectState { panel: InspectPanel::default(), shared: shared(trained()) };
    let mut harness = Harness::builder()
        .with_size([1200.0, 1400.0])
        .build_ui_state(|ui, state: &mut InspectState| state.panel.ui(ui, &mut state.shared), state);
    harness.step();
    harness.get_by_label("Metrics (full validation splits)").click();
    step_until(&mut harness, Duration::from_secs(120), "the full-split scores", |h| {
        h.query_by_label_contains("Full validation splits:").is_some()
    });
    harness.get_by_label("Precision–recall curve (IoU 0.5)");
    harness.get_by_label_contains("Per-class AP50");
    harness.get_by_label_contains("Per-class IoU");
    // Sorting by value, then exporting the table (before the matrices push them off screen).
    harness.get_by_label("AP50").click();
    harness.step();
    harness.step();
    harness.get_by_label("AP50 ⬇");
    harness.get_by_label("Export IoU CSV").click();
    harness.step();
    let notices = &harness.state().shared.notifications.items;
    let (notice, _) = notices.iter().find(|(n, _)| n.text.starts_with("per-class iou saved to")).expect("a notice");
    let path = notice.text.trim_start_matches("per-class iou saved to ").to_string();
    let csv = std::fs::read_to_string(&path).unwrap();
    assert!(csv.starts_with("class,iou\n") && csv.lines().count() > 1, "{csv}");
    harness.get_by_label("Detection confusion matrix").click();
    harness.step();
    harness.get_by_label_contains("background row: false positives");
    harness.get_by_label("Pixel confusion matrix").click();
    harness.step();
    harness.get_by_label("Most confused (share of the true class's pixels)");
}

/// The timeline view shows the predictions the trainer stored at each
/// evaluation, beside the ground truth, with a step slider.
#[test]
fn inspect_timeline_scrubs_the_stored_predictions() {
    let state = InspectState { panel: InspectPanel::default(), shared: shared(trained()) };
    let mut harness = Harness::builder()
        .with_size([1200.0, 1200.0])
        .build_ui_state(|ui, state: &mut InspectState| state.panel.ui(ui, &mut state.shared), state);
    harness.step();
    harness.get_by_label("Timeline").click();
    step_until(&mut harness, Duration::from_secs(120), "the timeline", |h| h.query_by_label_contains("Prediction at step 4").is_some());
    harness.get_by_label_contains("step 4 (1 of 1)");
    harness.get_by_label_contains("Ground truth: ");
    harness.get_by_label_contains("Segmentation images (").click();
    harness.step();
    harness.step();
    harness.get_by_label_contains("Prediction at step 4");
    harness.get_by_label_contains("Legend:");
}

/// A three-task run: Inspect browses the classification images with their
/// true class and top-5 (and only the mistakes), Metrics adds the
/// classification confusion matrix, the Timeline the classification images,
/// and Preview the top-5 beside boxes and mask.
#[test]
fn three_task_runs_show_classification_in_inspect_timeline_and_preview() {
    let dir = trained_three_task();
    let state = InspectState { panel: InspectPanel::default(), shared: focused(dir, THREE_TASK_RUN) };
    let mut harness = Harness::builder()
        .with_size([1200.0, 1400.0])
        .build_ui_state(|ui, state: &mut InspectState| state.panel.ui(ui, &mut state.shared), state);
    step_until(&mut harness, Duration::from_secs(120), "the inspection", |h| h.query_by_label_contains("Classification set (").is_some());
    harness.get_by_label_contains("Classification set (").click();
    harness.step();
    harness.step();
    harness.get_by_label("Top-5 classes");
    harness.get_by_label_contains("True class: ");
    let right = harness.query_by_label_contains("✔ right").is_some();
    assert!(right || harness.query_by_label_contains("✖ wrong").is_some());
    harness.get_by_label("only mistakes").click();
    harness.step();
    harness.step();
    assert!(harness.query_by_label_contains("✔ right").is_none(), "only mistakes are browsed");
    // Metrics: the classification confusion matrix and per-class accuracy.
    harness.get_by_label("Metrics (full validation splits)").click();
    step_until(&mut harness, Duration::from_secs(120), "the full-split scores", |h| h.query_by_label_contains("Classification: ").is_some());
    harness.get_by_label("Classification confusion matrix");
    harness.get_by_label_contains("Per-class accuracy");
    // Timeline: the classification images at the stored step.
    harness.get_by_label("Timeline").click();
    step_until(&mut harness, Duration::from_secs(120), "the timeline", |h| h.query_by_label_contains("Classification images (").is_some());
    harness.get_by_label_contains("top-1 ");
    harness.get_by_label_contains("Classification images (").click();
    harness.step();
    harness.step();
    harness.get_by_label("Classification at step 4");
    harness.get_by_label("Top-5 classes");

    // Preview: any image gets the top-5 beside its boxes and mask.
    let mut crops: Vec<PathBuf> = std::fs::read_dir(dir.join("synth/cls/images")).unwrap().map(|e| e.unwrap().path()).collect();
    crops.sort();
    let state = PreviewState { panel: PreviewPanel::default(), shared: focused(dir, THREE_TASK_RUN) };
    let mut harness = Harness::builder()
        .with_size([1200.0, 1000.0])
        .build_ui_state(|ui, state: &mut PreviewState| state.panel.ui(ui, &mut state.shared), state);
    harness.step();
    harness.state_mut().shared.dropped_files.push(crops[0].clone());
    step_until(&mut harness, Duration::from_secs(120), "the preview", |h| h.query_by_label_contains("Top-1 class: ").is_some());
    harness.get_by_label("Top-5 classes");
}

struct CompressState {
    panel: CompressPanel,
    shared: Shared,
}

#[test]
fn compress_runs_as_a_job_and_shows_the_measured_table_again_after_a_restart() {
    // A copy of the trained run: compressing writes into its folder.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("runs")).unwrap();
    let status = std::process::Command::new("cp").arg("-r").arg(trained().join("runs").join(RUN)).arg(dir.path().join("runs")).status().unwrap();
    assert!(status.success());
    let build = |shared: Shared| {
        let state = CompressState { panel: CompressPanel::default(), shared };
        Harness::builder().with_size([1400.0, 1000.0]).build_ui_state(|ui, state: &mut CompressState| state.panel.ui(ui, &mut state.shared), state)
    };
    let mut harness = build(shared(dir.path()));
    harness.step();
    harness.get_by_label_contains("No compressed models of this run yet.");
    harness.get_by_label("suggestions").click();
    harness.step();
    harness.get_by_label("lowrank:0.9").click();
    harness.step();
    harness.step();
    harness.get_by_label_contains("300 (default)");
    harness.get_by_label("suggestions").click();
    harness.step();
    harness.get_by_label("int8").click();
    harness.step();
    harness.step();
    harness.get_by_label_contains("0 (default)");
    harness.get_by_label("Compress").click();
    step_until(&mut harness, Duration::from_secs(600), "the measured table", |h| h.query_by_label_contains("baseline (last)").is_some());
    harness.get_by_label("speed ×");
    let notices = &harness.state().shared.notifications.items;
    assert!(notices.iter().any(|(n, _)| n.text.contains("compressed/int8 written")), "{:?}", notices.iter().map(|(n, _)| &n.text).collect::<Vec<_>>());
    // Preview predicts with the compressed model when it is picked.
    let image = std::fs::read_dir(trained().join("synth/voc/JPEGImages")).unwrap().flatten().next().unwrap().path();
    let preview = PreviewState { panel: PreviewPanel::default(), shared: shared(dir.path()) };
    let mut preview = Harness::builder()
        .with_size([1200.0, 1000.0])
        .build_ui_state(|ui, state: &mut PreviewState| state.panel.ui(ui, &mut state.shared), preview);
    preview.step();
    preview.get_by_label("Checkpoint").click();
    preview.step();
    preview.get_by_label("compressed/int8").click();
    preview.step();
    preview.state_mut().shared.dropped_files.push(image);
    step_until(&mut preview, Duration::from_secs(120), "the preview", |h| h.query_by_label_contains(" boxes").is_some());
    assert!(preview.state().shared.notifications.items.is_empty());
    // A new window reads the table back from the run folder.
    let mut harness = build(shared(dir.path()));
    harness.step();
    harness.get_by_label_contains("baseline (last)");
    harness.get_by_label("size ÷");
}

/// Inspect compares the inspected checkpoint with another run's image by
/// image: a copy of the run scores the same on every image, and a row opens
/// the image with the truth and both predictions.
/// Sets every checkpoint of `run` to label every pixel segmentation class
/// `class`: its classifier's bias far above any feature's reach (written as
/// the weight EMA, which predictions read first).
fn predict_everywhere(run: &Path, class: usize) {
    use burn::backend::Flex;
    use burn::module::{Module, Param};
    use burn::tensor::Tensor;
    use twinhead::train::checkpoint;
    let device = Default::default();
    for kind in checkpoint::available(run) {
        let dir = checkpoint::checkpoint_dir(run, &kind);
        let (net, _) = checkpoint::load_inference_net::<Flex>(&dir, &device).unwrap();
        let mut record = net.clone().into_record();
        let classifier = &mut record.seg_head.as_mut().expect("a segmentation head").classifier;
        let classes = classifier.bias.as_ref().expect("a bias").val().dims()[0];
        let mut bias = vec![0.0f32; classes];
        bias[class] = 1e4;
        classifier.bias = Some(Param::from_tensor(Tensor::<Flex, 1>::from_floats(bias.as_slice(), &device)));
        checkpoint::save_net(&dir, checkpoint::EMA_FILE, &net.load_record(record)).unwrap();
    }
}

#[test]
fn inspect_compares_two_runs_image_by_image() {
    use twinhead::train::evaluate::ValidationSplits;
    // Two runs on a copy of the data, one validation image planted where B wins:
    // its truth is all class 2, which B predicts everywhere and A (class 1) nowhere.
    let dir = tempfile::tempdir().unwrap();
    crate::common::copy_dir(&trained().join("synth"), &dir.path().join("synth"));
    for name in [RUN, "planted"] {
        let run = dir.path().join("runs").join(name);
        crate::common::copy_dir(&trained().join("runs").join(RUN), &run);
        let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
        let moved = config.replace(&trained().join("synth").display().to_string(), &dir.path().join("synth").display().to_string());
        assert_ne!(config, moved, "the config names the data");
        std::fs::write(run.join("config.toml"), moved).unwrap();
        predict_everywhere(&run, if name == RUN { 1 } else { 2 });
    }
    let config = twinhead::train::TrainConfig::parse(&std::fs::read_to_string(dir.path().join("runs").join(RUN).join("config.toml")).unwrap()).unwrap();
    let splits = ValidationSplits::open(&config.data).unwrap();
    let planted = splits.seg().unwrap().records.last().unwrap();
    let (width, height) = image::image_dimensions(&planted.mask_path).unwrap();
    image::GrayImage::from_pixel(width, height, image::Luma([3])).save(&planted.mask_path).unwrap();

    let state = InspectState { panel: InspectPanel::default(), shared: shared(dir.path()) };
    let mut harness = Harness::builder()
        .with_size([1400.0, 1400.0])
        .build_ui_state(|ui, state: &mut InspectState| state.panel.ui(ui, &mut state.shared), state);
    harness.step();
    harness.get_by_label("Compare image by image").click();
    harness.step();
    harness.get_by_label("run B").click();
    harness.step();
    harness.get_by_label("planted").click();
    harness.step();
    harness.get_by_label("Compare A with B").click();
    step_until(&mut harness, Duration::from_secs(120), "the comparison", |h| h.query_by_label_contains("A better on").is_some());
    // The comparison's own task row comes after Inspect's controls.
    harness.query_all_by_label("segmentation").last().expect("the segmentation rows").click();
    harness.step();
    harness.get_by_label_contains("where B (planted ").click();
    harness.step();
    let summary = harness.get_by_label_contains("A better on").accesskit_node().value().unwrap_or_default().to_string();
    assert!(!summary.contains("B better on 0"), "{summary}");
    let first = harness.query_all_by_label_contains("compared image ").next().expect("a row").accesskit_node().label().unwrap_or_default().to_string();
    assert_eq!(first, format!("compared image {}", planted.id), "the planted image first");
    // The row opens the image three times over: truth, A and B.
    harness.get_by_label(&first).click();
    step_until(&mut harness, Duration::from_secs(60), "the image with both predictions", |h| h.query_by_label("B image").is_some());
    harness.get_by_label("truth image");
    harness.get_by_label("A image");
    // Exported as CSV, every row, the planted one a full point to B.
    harness.get_by_label("Export CSV").click();
    harness.step();
    let notices = &harness.state().shared.notifications.items;
    let (notice, _) = notices.iter().find(|(n, _)| n.text.starts_with("image comparison saved to")).expect("a notice");
    let csv = std::fs::read_to_string(notice.text.trim_start_matches("image comparison saved to ")).unwrap();
    assert!(csv.starts_with("task,id,image,a,b,difference,a_detail,b_detail\n"), "{csv}");
    let row = csv.lines().find(|l| l.starts_with(&format!("seg,{},", planted.id))).expect("the planted row");
    assert!(row.contains(",0.000000,1.000000,-1.000000,"), "{row}");
}
