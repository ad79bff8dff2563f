//! The command line: `twinhead <command>`. Every command the workbench runs
//! is reachable here, so all of it can be run and tested without a display.
//!
//! Exit codes: 0 success, 2 usage error or bad input, 3 problems found in a dataset.

mod bench;
mod bench_follow;
mod bench_runs;
mod compare_images;
mod bench_infer;
mod bench_train;
mod compress;
mod data_check;
mod dataset_args;
mod data_export;
mod data_synth;
mod eval;
mod eval_run;
mod export_onnx;
mod export_ultralytics;
mod predict;
mod replica_totals;
mod run_args;
mod runs;
mod serve;
mod submit;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "twinhead", version, about = "Train one network for object detection, semantic segmentation and classification, each task from its own dataset")]
pub struct Cli {
    /// Without a command the workbench window opens.
    #[command(subcommand)]
    command: Option<Command>,
    /// Open the window and play a script of actions in it (widgets found by their labels; see tools/screenshots.demo).
    #[arg(long, value_name = "FILE")]
    demo_script: Option<PathBuf>,
    /// Where the script's `shot NAME` lines save NAME.png.
    #[arg(long, value_name = "DIR", requires = "demo_script", default_value = ".")]
    shots: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect and generate datasets.
    #[command(subcommand)]
    Data(DataCommand),
    /// Evaluate a trained run on every task it has (--run), or prediction files against a dataset (det/seg).
    Eval(EvalArgs),
    /// Predict with a trained run: boxes, a semantic mask and classes, as the network's heads give them.
    Predict(predict::Args),
    /// Train the multi-task network (headless).
    Train(train::Args),
    /// Measure throughput.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Compress a trained run (int8, prune:R, lowrank:E, chained with +) and measure it; `compress report` prints the table.
    Compress(CompressArgs),
    /// List the devices this build can compute on here (for --device).
    Devices,
    /// Export a trained run's network for other runtimes.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Look at run folders.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Write a challenge submission of a trained run.
    #[command(subcommand)]
    Submit(SubmitCommand),
    /// Serve a runs folder over HTTP to the workbench and scripts (start, follow, steer runs on this machine).
    Serve(serve::ServeArgs),
}

#[derive(Debug, Subcommand)]
enum ExportCommand {
    /// The network as an ONNX graph (ONNX Runtime, TensorRT, OpenVINO); compressed models included.
    Onnx(export_onnx::OnnxArgs),
    /// The backbone, neck and detection head's hidden layers as an Ultralytics YOLOv8 state dict (.safetensors).
    #[command(name = "ultralytics-state-dict")]
    UltralyticsStateDict(export_ultralytics::Args),
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// The configuration keys that differ between two or more runs.
    Diff(runs::DiffArgs),
    /// Writes runs' TensorBoard files anew from their metrics.jsonl and timeline
    /// (runs trained before Twinhead wrote them, or with log.tensorboard = false).
    Tensorboard(runs::TensorboardArgs),
    /// Copies a run folder from a `twinhead serve` server, for offline work (compression, export).
    Pull(serve::PullArgs),
    /// Two checkpoints on the same validation images, image by image: where one beats the other most first.
    CompareImages(compare_images::CompareImagesArgs),
}

#[derive(Debug, Subcommand)]
enum SubmitCommand {
    /// The CVPR23 Track1 (AllInOne) JSON: classification, detection and segmentation of its test images.
    Track1(submit::Track1Args),
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Check detection, segmentation and classification datasets (any layout read) and summarise them.
    Check(data_check::Args),
    /// Write the synthetic datasets: detection (VOC, and COCO or YOLO), segmentation (ADE20K, and mask folders), classification.
    Synth(data_synth::Args),
    /// Write a detection split's ground truth (VOC, COCO or YOLO) as COCO JSON (to score `predict --format coco` with pycocotools).
    ExportCoco(data_export::ExportCocoArgs),
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct EvalArgs {
    #[command(subcommand)]
    command: Option<EvalCommand>,
    #[command(flatten)]
    run: eval_run::Args,
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct CompressArgs {
    #[command(subcommand)]
    command: Option<CompressCommand>,
    #[command(flatten)]
    compress: compress::Args,
}

#[derive(Debug, Subcommand)]
enum CompressCommand {
    /// The table of the run's compressed models against their baseline (compressed/report.json).
    Report(compress::ReportArgs),
}

#[derive(Debug, Subcommand)]
enum EvalCommand {
    /// Detection AP (voc07, voc or coco) of a prediction file against a detection split (VOC, COCO or YOLO).
    Det(eval::DetArgs),
    /// Segmentation mIoU of prediction masks against a segmentation split (ADE20K or mask folders).
    Seg(eval::SegArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Decode + augment throughput of the data loader.
    Data(bench::DataArgs),
    /// Training images/s, step time after warm-up, and peak memory.
    Train(bench_train::TrainArgs),
    /// Forward-pass latency of a run's checkpoint on the CPU.
    Infer(bench_infer::InferArgs),
    /// How fast a step's record reaches the workbench from another process's run and from a server, and a long log's memory.
    Follow(bench_follow::FollowArgs),
    /// Frame times of the workbench's runs list over hundreds of generated run folders.
    RunsList(bench_runs::RunsListArgs),
}

/// Exit code for a usage error or bad input.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code when a dataset check found problems.
pub const EXIT_PROBLEMS: u8 = 3;

pub fn main() -> ExitCode {
    quiet_vulkan_layers_without_a_session();
    init_logging();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(EXIT_BAD_INPUT) } else { ExitCode::SUCCESS };
        }
    };
    if cli.command.is_some() {
        quiet_on_closed_pipe();
    }
    let result = match cli.command {
        None => {
            let demo = cli.demo_script.map(|script| crate::gui::Demo { script, shots: cli.shots });
            crate::gui::run(demo).map(|()| ExitCode::SUCCESS)
        }
        Some(_) if cli.demo_script.is_some() => Err(anyhow::anyhow!("--demo-script plays in the window: give it without a command")),
        Some(Command::Data(DataCommand::Check(args))) => data_check::run(args),
        Some(Command::Data(DataCommand::Synth(args))) => data_synth::run(args),
        Some(Command::Data(DataCommand::ExportCoco(args))) => data_export::run(args),
        Some(Command::Eval(EvalArgs { command: Some(EvalCommand::Det(args)), .. })) => eval::run_det(args),
        Some(Command::Eval(EvalArgs { command: Some(EvalCommand::Seg(args)), .. })) => eval::run_seg(args),
        Some(Command::Eval(EvalArgs { command: None, run })) => match run.run.clone() {
            Some(dir) => eval_run::run(run, dir),
            None => Err(anyhow::anyhow!("eval: give --run RUN_DIR, or use `eval det` / `eval seg`")),
        },
        Some(Command::Predict(args)) => predict::run(args),
        Some(Command::Bench(BenchCommand::Data(args))) => bench::run_data(args),
        Some(Command::Train(args)) => train::run(args),
        Some(Command::Bench(BenchCommand::Train(args))) => bench_train::run_train(args),
        Some(Command::Bench(BenchCommand::Infer(args))) => bench_infer::run_infer(args),
        Some(Command::Bench(BenchCommand::Follow(args))) => bench_follow::run_follow(args),
        Some(Command::Bench(BenchCommand::RunsList(args))) => bench_runs::run_runs_list(args),
        Some(Command::Export(ExportCommand::Onnx(args))) => export_onnx::run_onnx(args),
        Some(Command::Export(ExportCommand::UltralyticsStateDict(args))) => export_ultralytics::run(args),
        Some(Command::Runs(RunsCommand::Diff(args))) => runs::run_diff(args),
        Some(Command::Runs(RunsCommand::Tensorboard(args))) => runs::run_tensorboard(args),
        Some(Command::Runs(RunsCommand::Pull(args))) => serve::run_pull(args),
        Some(Command::Runs(RunsCommand::CompareImages(args))) => compare_images::run(args),
        Some(Command::Serve(args)) => serve::run_serve(args),
        Some(Command::Submit(SubmitCommand::Track1(args))) => submit::run_track1(args),
        Some(Command::Devices) => list_devices(),
        Some(Command::Compress(CompressArgs { command: Some(CompressCommand::Report(args)), .. })) => compress::run_report(args),
        Some(Command::Compress(CompressArgs { command: None, compress: args })) => compress::run(args),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(EXIT_BAD_INPUT)
    })
}

/// Mesa's Vulkan device-select layer orders GPUs by the desktop session's
/// display, and in a shell without one (no XDG_RUNTIME_DIR: ssh, cron, CI)
/// prints "XDG_RUNTIME_DIR is invalid" each time a device list is made; with
/// no session there is nothing to order by, so the layer is turned off there.
fn quiet_vulkan_layers_without_a_session() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() && std::env::var_os("NODEVICE_SELECT").is_none() {
        // Before any thread exists (the first thing main does).
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

/// A command whose output goes into a pipe that closes (`| head -1`) ends
/// quietly, as other command-line tools do, instead of panicking on the
/// write: Rust ignores SIGPIPE by default, so a write there fails and
/// `println!` panics. Sockets are unaffected (they write with MSG_NOSIGNAL).
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called once at start-up, before any thread that might write to a pipe.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn list_devices() -> anyhow::Result<ExitCode> {
    for (_, description) in crate::backend::device::DeviceSpec::available() {
        println!("{description}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A progress bar on stderr (hidden when stderr is not a terminal); `len` None = spinner.
/// Runs `work` in a fresh scratch folder (`twinhead-bench-NAME-PID` in the
/// system's temporary folder), removed afterwards whatever the outcome.
pub(crate) fn in_scratch<T>(name: &str, work: impl FnOnce(&std::path::Path) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let scratch = std::env::temp_dir().join(format!("twinhead-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let result = work(&scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

pub(crate) fn progress_bar(len: Option<u64>, message: &'static str) -> indicatif::ProgressBar {
    let bar = match len {
        Some(len) => indicatif::ProgressBar::new(len).with_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
                .expect("valid template")
                .progress_chars("=> "),
        ),
        None => indicatif::ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg}: {pos} files ({per_sec})").expect("valid template"),
        ),
    };
    bar.set_message(message);
    bar
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TWINHEAD_LOG")
        // The GPU runtimes log every adapter, kernel and cache step at info.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,cubecl_wgpu=warn,cubecl_runtime=warn,wgpu_core=warn,wgpu_hal=warn,naga=warn,burn_collective=warn,burn_communication=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
