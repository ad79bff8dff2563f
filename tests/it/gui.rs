//! The workbench driven as a person would, through egui_kittest (widgets found
//! by their labels, no display needed): start a run on tiny synthetic data and
//! see the curves fill, switch the strategy mid-run and see the marker, stop
//! the run; a broken dataset folder shows its problems; a run trains on the
//! wgpu device picked from Setup's list.

use std::path::Path;
use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;
use twinhead::backend::device::DeviceSpec;
use twinhead::session::run_record::RunStatus;
use twinhead::gui::settings::Settings;
use twinhead::gui::Workbench;
use twinhead::train::{StrategyConfig, Task, TrainConfig};

/// A run small enough to train in seconds, over synthetic data in `dir`.
fn tiny_config(dir: &Path) -> TrainConfig {
    let text = format!(
        r#"
name = "gui-test"
seed = 1
steps = 400
[data]
voc = "{voc}"
ade = "{ade}"
image_size = 64
batch_size = 2
threads = 1
[data.synthetic]
det_images = 24
seg_images = 24
size = 64
[model]
size = "n"
width = 0.25
[optim]
lr = 0.002
warmup_steps = 5
[strategy]
kind = "alternate"
[eval]
every = 5
det_images = 4
seg_images = 4
[checkpoint]
every = 50
"#,
        voc = dir.join("synth/voc").display(),
        ade = dir.join("synth/ade").display(),
    );
    TrainConfig::from_toml(&text, &[]).unwrap()
}

/// A workbench whose runs go under `dir`, with the datasets counted as configured
/// (so no first-launch generation).
fn workbench(dir: &Path) -> Harness<'static, Workbench> {
    let settings = Settings {
        runs_dir: dir.join("runs"),
        voc_dir: Some(dir.join("synth/voc")),
        ade_dir: Some(dir.join("synth/ade")),
        ..Settings::default()
    };
    let mut workbench = Workbench::new(settings);
    workbench.setup.draft = tiny_config(dir);
    Harness::builder().with_size([1400.0, 1000.0]).build_ui_state(|ui, wb: &mut Workbench| wb.ui(ui), workbench)
}

/// Steps the UI until a label containing `text` shows, failing (saying `what`) after a minute.
fn wait_for_label(harness: &mut Harness<'static, Workbench>, text: &str, what: &str) {
    let started = Instant::now();
    while harness.query_by_label_contains(text).is_none() {
        assert!(started.elapsed() < Duration::from_secs(60), "{what}");
        harness.step();
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Steps the UI until `done` holds, failing after `limit`.
fn step_until(harness: &mut Harness<'static, Workbench>, limit: Duration, what: &str, done: impl Fn(&Workbench) -> bool) {
    let started = Instant::now();
    while !done(harness.state()) {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        harness.step();
        std::thread::sleep(Duration::from_millis(50));
    }
    harness.step();
    harness.step();
}

#[test]
fn a_run_trains_plots_changes_strategy_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = workbench(dir.path());
    harness.step();
    harness.get_by_label("Start").click();
    harness.step();
    assert_eq!(harness.state().shared.session.records.len(), 1, "Start queues one run");

    // Start switches to Curves; points appear as the run trains and evaluates.
    step_until(&mut harness, Duration::from_secs(600), "two evaluations", |wb| {
        wb.shared.session.records[0].evals.len() >= 2
    });
    let record = &harness.state().shared.session.records[0];
    assert!(record.series.loss[Task::Det].len() >= 5 && record.series.loss[Task::Seg].len() >= 5);
    harness.get_by_label_contains("1 runs ·");
    assert!(harness.query_by_label_contains("· 0 points").is_none());

    // Switch to joint with pseudo-labels while it trains: a marker at the step it took effect.
    harness.get_by_label("Setup").click();
    harness.step();
    harness.get_by_label("Strategy").click();
    harness.step();
    harness.get_by_label("joint").click();
    harness.step();
    assert!(harness.query_by_label("Pseudo-label weight").is_none(), "pseudo-label settings show only when switched on");
    harness.get_by_label("label each batch for the other tasks (teacher: weight EMA)").click();
    harness.step();
    harness.get_by_label("Pseudo-label weight");
    // A specialist teacher that is no folder is named as such; emptied, the EMA teaches again.
    harness.get_by_label("Detection teacher").focus();
    harness.step();
    harness.get_by_label("Detection teacher").type_text("no/such/checkpoint");
    // One frame takes the text, the next validates it.
    harness.step();
    harness.step();
    // Beside the field, and where the strategy would be applied.
    assert!(harness.query_all_by_label_contains("no/such/checkpoint is not a folder").count() >= 1);
    let teacher = |wb: &Workbench| wb.setup.draft.strategy.pseudo_labels(0).and_then(|l| l.det_teacher);
    assert_eq!(teacher(harness.state()), Some("no/such/checkpoint".into()));
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.key_press(egui::Key::Backspace);
    harness.step();
    harness.step();
    assert_eq!(teacher(harness.state()), None);
    assert!(harness.query_by_label_contains("is not a folder").is_none());
    harness.get_by_label("Apply strategy to the running run").click();
    step_until(&mut harness, Duration::from_secs(120), "the strategy change", |wb| {
        wb.shared.session.records[0].markers.iter().any(|m| m.label.contains("joint"))
    });
    let strategy = &harness.state().shared.session.records[0].strategy;
    assert_eq!(strategy.label(), "joint + pseudo-labels");
    assert!(strategy.pseudo_labels(0).is_some());
    harness.get_by_label("Curves").click();
    harness.step();
    // The default font has no arrow glyph: markers read "strategy: joint + pseudo-labels".
    harness.get_by_label_contains("strategy: joint + pseudo-labels");

    // Stop: the run ends stopped, with its last checkpoint saved.
    harness.get_by_label("Stop").click();
    step_until(&mut harness, Duration::from_secs(120), "the run to stop", |wb| {
        wb.shared.session.records[0].status == RunStatus::Stopped
    });
    let record = &harness.state().shared.session.records[0];
    assert!(record.step < 400, "stopped early, at step {}", record.step);
    assert!(record.dir.join("checkpoints/last").is_dir(), "the last checkpoint is kept");
    harness.get_by_label("Continue");
}

#[test]
fn a_broken_dataset_folder_shows_its_problems() {
    let dir = tempfile::tempdir().unwrap();
    let config = twinhead::data::synth::SynthConfig { det_images: 12, seg_images: 0, size: 64, ..Default::default() };
    let summary = twinhead::data::synth::generate(&dir.path().join("bad"), &config, |_, _| {}).unwrap();
    let voc = summary.voc_root;
    // One corrupt JPEG, one malformed annotation.
    let ids = std::fs::read_to_string(voc.join("ImageSets/Main/train.txt")).unwrap();
    let ids: Vec<&str> = ids.lines().collect();
    std::fs::write(voc.join(format!("JPEGImages/{}.jpg", ids[0])), b"not a jpeg").unwrap();
    std::fs::write(voc.join(format!("Annotations/{}.xml", ids[1])), b"<annotation><object>").unwrap();

    let mut harness = workbench(dir.path());
    harness.step();
    let field = harness.get_by_label("Detection dataset (VOC, COCO, YOLO)");
    field.focus();
    harness.step();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.get_by_label("Detection dataset (VOC, COCO, YOLO)").type_text(&voc.display().to_string());
    harness.step();
    harness.key_press(egui::Key::Enter);
    harness.step();
    step_until(&mut harness, Duration::from_secs(60), "the folder check", |wb| {
        wb.setup.draft.data.voc.as_ref() == Some(&voc) && wb.setup.draft.data.synthetic.is_none()
    });
    wait_for_label(&mut harness, "problems (these records are left out)", "no problems shown");
    harness.get_by_label_contains("2 problems");
    harness.get_by_label_contains(&format!("{}.jpg", ids[0]));
    harness.get_by_label_contains(&format!("{}.xml", ids[1]));
    // The records that passed have their statistics, as charts.
    harness.get_by_label("Detection statistics").click();
    harness.step();
    harness.get_by_label("Objects per class (difficult ones darker)");
    harness.get_by_label_contains("Box sizes (");
    harness.get_by_label_contains("Image sizes (");

    // A folder that is not a dataset at all is explained too.
    harness.get_by_label("Segmentation dataset (ADE20K, masks)").focus();
    harness.step();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.get_by_label("Segmentation dataset (ADE20K, masks)").type_text("/nonexistent/ade");
    harness.key_press(egui::Key::Enter);
    wait_for_label(&mut harness, "unusable:", "no error shown for a missing folder");
    assert!(harness.get_by_label_contains("unusable:").value().unwrap_or_default().contains("/nonexistent/ade"));
}

/// The optional classification field: a folder makes the run three-task and
/// shows its check (format, a broken image named) and images per class; an
/// emptied field makes it a detection and segmentation run again.
#[test]
fn a_classification_folder_gives_the_run_its_third_task_and_shows_its_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let config = twinhead::data::synth::SynthConfig { det_images: 0, seg_images: 0, cls_images: 24, size: 48, ..Default::default() };
    let cls = twinhead::data::synth::generate(&dir.path().join("crops"), &config, |_, _| {}).unwrap().cls_root;
    std::fs::write(cls.join("images/000001.jpg"), b"not a jpeg").unwrap();
    const FIELD: &str = "Classification dataset (image list, class folders)";

    let mut harness = workbench(dir.path());
    harness.step();
    assert_eq!(harness.state().setup.draft.data.cls, None);
    harness.get_by_label(FIELD).focus();
    harness.step();
    harness.get_by_label(FIELD).type_text(&cls.display().to_string());
    harness.step();
    harness.key_press(egui::Key::Enter);
    step_until(&mut harness, Duration::from_secs(60), "the classification folder", |wb| wb.setup.draft.data.cls.as_ref() == Some(&cls));
    wait_for_label(&mut harness, "problems (these records are left out)", "no check summary shown");
    harness.get_by_label_contains("list format: 20 images in train of 12 classes");
    harness.get_by_label_contains("000001.jpg");
    assert_eq!(harness.state().setup.draft.run_shape().tasks.len(), 3);
    // The strategy editor spells out the three-task order, reordered with ⬆, and a weight per task.
    harness.get_by_label("Strategy").click();
    harness.step();
    harness.get_by_label("sequential").click();
    harness.step();
    harness.get_by_label("Task order");
    harness.get_by_label("3. classification");
    let raise: Vec<_> = harness.query_all_by_label("⬆").collect();
    assert_eq!(raise.len(), 2);
    // (Through accesskit: the rows may lie below the window's bottom edge.)
    raise[1].click_accesskit();
    // The click swaps the two during the frame that handles it; the next frame shows it.
    harness.step();
    harness.step();
    harness.get_by_label("2. classification");
    let order = |wb: &Workbench| wb.setup.draft.strategy.schedule(wb.setup.draft.run_shape()).unwrap().order;
    assert_eq!(order(harness.state()), [Task::Det, Task::Cls, Task::Seg]);
    assert!(harness.state().setup.draft.validate().is_ok());
    harness.get_by_label("Strategy").click();
    harness.step();
    harness.get_by_label("joint").click();
    harness.step();
    harness.get_by_label("Weights");
    harness.get_by_label("cls");
    harness.get_by_label("Classification statistics").click();
    harness.step();
    harness.get_by_label("Images per class (12 classes)");


    harness.get_by_label(FIELD).focus();
    harness.step();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.key_press(egui::Key::Backspace);
    harness.key_press(egui::Key::Enter);
    step_until(&mut harness, Duration::from_secs(10), "the emptied field", |wb| wb.setup.draft.data.cls.is_none());
    assert!(harness.query_by_label("Classification statistics").is_none());

    // Unticking a task leaves it out (a specialist run of the other); a
    // sequence then has one task too few, and says so.
    let trains: Vec<_> = harness.query_all_by_label("train").collect();
    assert_eq!(trains.len(), 3);
    trains[0].click_accesskit();
    harness.step();
    harness.step();
    let draft = &harness.state().setup.draft;
    assert_eq!((draft.data.tasks, draft.run_shape().tasks), (Some(Task::Seg.into()), Task::Seg.into()));
    // The selector offers no sequence to a run of one task; a config that
    // names one anyway (a preset, a file) is refused beside the field.
    harness.get_by_label("Strategy").click();
    harness.step();
    assert!(harness.get_by_label("sequential").accesskit_node().is_disabled());
    assert!(!harness.get_by_label("joint").accesskit_node().is_disabled());
    harness.get_by_label("sequential").click();
    harness.step();
    assert_eq!(harness.state().setup.draft.strategy.name(), "joint");
    let draft = &mut harness.state_mut().setup.draft;
    draft.strategy = StrategyConfig::of_kind("sequential", &draft.strategy, draft.steps).unwrap();
    harness.step();
    harness.step();
    harness.get_by_label_contains("a sequence needs two or more tasks");
    harness.query_all_by_label("train").next().unwrap().click_accesskit();
    harness.step();
    harness.step();
    assert_eq!(harness.state().setup.draft.data.tasks, None);
}

/// The pretrained-weights field reads the file into the draft's network at
/// once: the import report for an Ultralytics checkpoint that fits, the
/// reason beside the field for one that does not.
#[test]
fn the_pretrained_weights_field_shows_what_a_checkpoint_loads() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/yolov8");
    let mut harness = workbench(dir.path());
    // The fixture's width (channels 8–64).
    harness.state_mut().setup.draft.model.width = Some(0.0625);
    harness.step();
    for (file, shown) in [("tiny_yolov8_seg.pt", "instance-segmentation"), ("tiny_yolov8.pt", "start fresh (no YOLOv8 counterpart)")] {
        let path = fixtures.join(file);
        harness.get_by_label("Pretrained weights").focus();
        harness.step();
        harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
        harness.get_by_label("Pretrained weights").type_text(&path.display().to_string());
        harness.key_press(egui::Key::Enter);
        step_until(&mut harness, Duration::from_secs(60), "the weights report", |_| true);
        wait_for_label(&mut harness, shown, &format!("{file}: nothing says {shown:?}"));
        assert_eq!(harness.state().setup.draft.model.pretrained.as_deref(), Some(path.as_path()));
        // Start waits for a file that fits.
        let refused = harness.query_by_label_contains("the file does not fit this network").is_some();
        assert_eq!(refused, file == "tiny_yolov8_seg.pt", "{file}");
    }
    harness.get_by_label_contains("loaded ");
}

#[test]
fn a_run_that_cannot_start_is_marked_failed_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = workbench(dir.path());
    {
        let draft = &mut harness.state_mut().setup.draft;
        draft.data.synthetic = None;
        draft.data.voc = Some(dir.path().join("no-such-voc"));
    }
    harness.step();
    harness.get_by_label("Start").click();
    step_until(&mut harness, Duration::from_secs(60), "the run to fail", |wb| {
        matches!(wb.shared.session.records.first().map(|r| &r.status), Some(RunStatus::Failed(_)))
    });
    let RunStatus::Failed(message) = harness.state().shared.session.records[0].status.clone() else { unreachable!() };
    assert!(message.contains("no-such-voc"), "{message}");
    // The window goes on: the run is marked, and an error notification names the problem.
    // (the status in the list, the focused run's message, the toast)
    assert!(harness.query_all_by_label_contains("failed").count() >= 2);
    assert!(harness.state().shared.notifications.items.iter().any(|(n, _)| n.text.contains("no-such-voc")));
}

/// Two CPU replicas on Setup train one run: a batch that does not split over
/// them is refused beside its field, and the run's row lists both replicas.
#[test]
fn a_run_trains_on_two_cpu_replicas_chosen_on_setup() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = workbench(dir.path());
    let replicas = harness.get_by_label("replicas");
    replicas.focus();
    harness.step();
    harness.get_by_label("replicas").type_text("2");
    harness.key_press(egui::Key::Enter);
    harness.step();
    assert_eq!(harness.state().shared.devices, [DeviceSpec::Cpu; 2]);
    {
        let draft = &mut harness.state_mut().setup.draft;
        draft.steps = 4;
        draft.data.batch_size = 3;
    }
    harness.step();
    // Beside the batch size and beside Start (which is disabled).
    assert_eq!(harness.query_all_by_label_contains("does not split evenly over 2 replicas").count(), 2);
    harness.get_by_value("cpu,cpu");
    harness.state_mut().setup.draft.data.batch_size = 4;
    harness.step();
    harness.get_by_label("Start").click();
    step_until(&mut harness, Duration::from_secs(300), "the two-replica run to finish", |wb| {
        matches!(wb.shared.session.records.first().map(|r| &r.status), Some(RunStatus::Completed | RunStatus::Failed(_)))
    });
    let record = &harness.state().shared.session.records[0];
    assert_eq!(record.status, RunStatus::Completed);
    assert_eq!(record.device.as_deref(), Some("cpu,cpu"));
    assert_eq!(record.replicas.iter().map(|r| r.rank).collect::<Vec<_>>(), [0, 1]);
    harness.get_by_label_contains("· 2 replicas: cpu, cpu");
}

#[test]
fn a_run_trains_on_the_gpu_chosen_on_setup() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = workbench(dir.path());
    // The shapes of tests/it/wgpu.rs's runs (width 0.125, batch 4, 64 px): the
    // software adapter autotunes them once, in the first of those runs
    // (.config/nextest.toml runs them one at a time; CubeCL keeps the results
    // in target/autotune).
    let draft = &mut harness.state_mut().setup.draft;
    draft.steps = 2;
    draft.model.width = Some(0.125);
    draft.data.batch_size = 4;
    // The device list fills once the start-up probe has answered.
    let started = Instant::now();
    while harness.query_by_label_contains("looking for GPUs").is_some() {
        assert!(started.elapsed() < Duration::from_secs(120), "the device probe did not answer");
        harness.step();
        std::thread::sleep(Duration::from_millis(50));
    }
    harness.get_by_label("Device").click();
    harness.step();
    let Some(adapter) = harness.query_by_label_contains("wgpu:0: ") else {
        assert_ne!(std::env::var("TWINHEAD_REQUIRE_WGPU").as_deref(), Ok("1"), "no wgpu adapter listed on Setup");
        eprintln!("skipped: no wgpu adapter on this machine");
        return;
    };
    adapter.click();
    harness.step();
    assert_eq!(harness.state().shared.devices_text(), "wgpu:0");
    harness.get_by_label("Start").click();
    // Two steps take about 80 s with warm caches here, 380 s from cold, and a
    // CI machine has been 2.6 times slower than that: the limit only catches a
    // run that never ends.
    step_until(&mut harness, Duration::from_secs(1800), "the run on wgpu to finish", |wb| {
        matches!(wb.shared.session.records.first().map(|r| &r.status), Some(RunStatus::Completed | RunStatus::Failed(_)))
    });
    let record = &harness.state().shared.session.records[0];
    assert_eq!(record.status, RunStatus::Completed);
    assert_eq!(record.device.as_deref(), Some("wgpu:0"));
    assert!(record.device_memory.is_some_and(|m| m.in_use > 0), "the GPU's memory is reported");
    harness.get_by_label_contains("· wgpu:0");
}

/// A run `twinhead train` trains in another process shows in the runs list as
/// running elsewhere, its step and curves follow its log live, and the
/// workbench pauses it and stops it through the run's control file.
#[test]
fn a_run_of_another_process_is_followed_live_and_paused_from_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = workbench(dir.path());
    harness.step();
    let config = dir.path().join("cli.toml");
    std::fs::write(&config, tiny_config(dir.path()).to_toml().unwrap().replace("name = \"gui-test\"", "name = \"cli\"").replace("steps = 400", "steps = 100000")).unwrap();
    let mut trainer = KilledOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_twinhead"))
            .args(["train", "--preset"])
            .arg(&config)
            .arg("--out")
            .arg(dir.path().join("runs/cli"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // It appears without a restart, and its step climbs as the log grows.
    step_until(&mut harness, Duration::from_secs(120), "the CLI run to show, running elsewhere", |wb| {
        wb.shared.session.record("cli").is_some_and(|r| r.elsewhere && r.status == RunStatus::Running && r.step >= 3)
    });
    wait_for_label(&mut harness, "running elsewhere", "the runs list marks the run as trained elsewhere");
    let first = harness.state().shared.session.record("cli").unwrap().step;
    step_until(&mut harness, Duration::from_secs(60), "more steps", |wb| wb.shared.session.record("cli").is_some_and(|r| r.step > first + 2));
    assert!(harness.state().shared.session.record("cli").unwrap().series.loss[Task::Det].len() >= 2);

    // Focused, it can be paused from the window (the run's buttons show from the next frame).
    harness.get_by_label("run cli").click();
    harness.step();
    harness.step();
    harness.get_by_label("Pause").click();
    harness.step();
    step_until(&mut harness, Duration::from_secs(60), "the run to pause", |wb| wb.shared.session.record("cli").is_some_and(|r| r.status == RunStatus::Paused));
    wait_for_label(&mut harness, "paused elsewhere", "the runs list shows the pause");
    let paused_at = harness.state().shared.session.record("cli").unwrap().step;
    std::thread::sleep(Duration::from_millis(800));
    harness.step();
    assert_eq!(harness.state().shared.session.record("cli").unwrap().step, paused_at, "a paused run takes no step");
    // And stopped: the process saves its checkpoint and exits.
    harness.get_by_label("Stop").click();
    harness.step();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = trainer.0.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the trainer did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success());
    step_until(&mut harness, Duration::from_secs(30), "the run to be stopped", |wb| {
        wb.shared.session.record("cli").is_some_and(|r| r.status == RunStatus::Stopped && !r.elsewhere)
    });
    let log = std::fs::read_to_string(dir.path().join("runs/cli/metrics.jsonl")).unwrap();
    assert_eq!(log.matches("\"control_received\"").count(), 2, "the pause and the stop, each once");
}

/// A `twinhead serve` server's runs are listed beside the local ones once it
/// is connected: Setup trains a run there, its curves fill from the server's
/// stream, and the window pauses and stops it through the server.
#[test]
fn a_servers_run_is_started_followed_and_steered_from_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = KilledOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_twinhead"))
            .args(["serve", "--listen", "127.0.0.1:0", "--runs", "server-runs"])
            .current_dir(dir.path())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = std::io::BufReader::new(server.0.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    let address = line[line.find("http").expect("the server says where it listens")..].split_whitespace().next().unwrap().trim_end_matches("/api/v1").to_string();
    let mut harness = workbench(dir.path());
    let entry = twinhead::gui::settings::ServerEntry { label: "box".into(), address, token_file: None, ca_file: None };
    harness.state_mut().shared.connect(&entry).unwrap();
    step_until(&mut harness, Duration::from_secs(60), "the server's devices", |wb| !wb.shared.session.remote_devices("box").is_empty());

    // Setup: train on the server.
    harness.get_by_label("Train on").click();
    harness.step();
    harness.get_by_label("box").click();
    harness.step();
    harness.step();
    harness.get_by_label("Start").click();
    harness.step();
    step_until(&mut harness, Duration::from_secs(120), "the server's run to train and show its curves", |wb| {
        wb.shared.session.record("gui-test@box").is_some_and(|r| r.status == RunStatus::Running && r.series.loss[Task::Det].len() >= 3 && r.remote.is_some())
    });
    assert!(dir.path().join("server-runs/gui-test/metrics.jsonl").is_file(), "the run trains in the server's folder");

    // Steered from the window, through the server (the run's name is on Curves' check boxes too).
    harness.get_by_label("run gui-test@box").click();
    harness.step();
    harness.step();
    harness.get_by_label("Pause").click();
    harness.step();
    step_until(&mut harness, Duration::from_secs(60), "the run to pause", |wb| wb.shared.session.record("gui-test@box").is_some_and(|r| r.status == RunStatus::Paused));
    harness.get_by_label("Stop").click();
    harness.step();
    step_until(&mut harness, Duration::from_secs(60), "the run to stop", |wb| wb.shared.session.record("gui-test@box").is_some_and(|r| r.status == RunStatus::Stopped));
    let log = std::fs::read_to_string(dir.path().join("server-runs/gui-test/metrics.jsonl")).unwrap();
    assert_eq!(log.matches("\"control_received\"").count(), 2);

    // Inspect's metrics: the full validation splits, scored on the server.
    harness.state_mut().shared.settings.tab = twinhead::gui::settings::Tab::Inspect;
    harness.step();
    harness.get_by_label("Metrics (full validation splits)").click();
    harness.step();
    wait_for_label(&mut harness, "Full validation splits:", "the server's scores of the full validation splits");
    harness.get_by_label_contains("Per-class AP50");
}

/// A child process that goes with the test, whether it passes or fails.
struct KilledOnDrop(std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The runs list searched by a configuration key, grouped with one group put
/// on Curves and Compare in one click, a run tagged and archived from the
/// window (its notes written into its folder).
#[test]
fn the_runs_list_searches_groups_tags_and_archives() {
    let dir = tempfile::tempdir().unwrap();
    for (name, kind) in [("a-joint", "joint"), ("b-replay", "replay"), ("c-joint", "joint")] {
        let mut overrides = vec![format!("strategy.kind={kind}")];
        if kind == "replay" {
            overrides.push("strategy.switch_step=100".into());
        }
        let config = TrainConfig::load_preset("quick", &overrides).unwrap();
        twinhead::train::run_dir::create(&dir.path().join("runs").join(name), &config).unwrap();
    }
    let mut harness = workbench(dir.path());
    harness.step();
    for name in ["a-joint", "b-replay", "c-joint"] {
        harness.get_by_label(&format!("run {name}"));
    }

    // Searched by a key of the configuration.
    harness.get_by_label("search runs").focus();
    harness.get_by_label("search runs").type_text("kind=replay");
    harness.step();
    harness.step();
    assert!(harness.query_by_label("run a-joint").is_none() && harness.query_by_label("run c-joint").is_none());
    harness.get_by_label("run b-replay");
    harness.get_by_label_contains("1 of 3 runs");

    // Grouped by strategy: one click puts the joint group on Curves and Compare.
    harness.state_mut().runs.list.set_search("");
    harness.state_mut().runs.list.group_by = "strategy.kind".into();
    harness.step();
    harness.get_by_label("group joint");
    harness.get_by_label("compare group joint").click();
    harness.step();
    let checked: Vec<String> = harness.state().shared.selection.checked.iter().cloned().collect();
    assert_eq!(checked, ["a-joint", "c-joint"]);
    harness.get_by_label("group joint").click();
    harness.step();
    harness.step();
    assert!(harness.query_by_label("run a-joint").is_none(), "a folded group hides its runs");

    // Tagged and archived from the focused run's row: kept in its folder.
    harness.get_by_label("run b-replay").click();
    harness.step();
    harness.step();
    harness.get_by_label("run tags").focus();
    harness.get_by_label("run tags").type_text("baseline, sweep");
    harness.key_press(egui::Key::Enter);
    harness.step();
    harness.get_by_label("Archive").click();
    harness.step();
    harness.step();
    let notes = twinhead::session::run_notes::RunNotes::read(&dir.path().join("runs/b-replay")).unwrap();
    assert_eq!((notes.tags.clone(), notes.archived), (vec!["baseline".to_string(), "sweep".to_string()], true));
    assert!(harness.query_by_label("run b-replay").is_none(), "archived runs leave the list");
    harness.state_mut().runs.list.show_archived = true;
    harness.step();
    harness.get_by_label("run b-replay");
}
