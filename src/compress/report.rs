//! The table of a run's compressed models: `compressed/report.json`, one row
//! per variant, each with the baseline measured beside it in the same process
//! (latency ratios are only meaningful side by side on a noisy machine).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::measure::{Measurement, LATENCY_RUNS, THROUGHPUT_BATCH};
use crate::model::Task;
use crate::train::checkpoint::COMPRESSED_DIR;
use crate::tensorboard::EventWriter;
use crate::train::run_dir::{read_config, write_atomic};
use crate::train::tensorboard_log::{EVENTS_FILE, TENSORBOARD_DIR};

pub const REPORT_FILE: &str = "report.json";

/// One compressed variant and the baseline it was measured against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// The method chain, e.g. `prune:0.3+lowrank:0.9+int8`.
    pub method: String,
    /// `compressed/<folder>`: what `--checkpoint` takes.
    pub checkpoint: String,
    /// The checkpoint it was made from (`last`, `best-det`, …).
    pub source: String,
    pub finetune_steps: usize,
    pub measured: Measurement,
    pub baseline: Measurement,
    /// CPU threads the timings used.
    pub threads: usize,
    pub image_size: u32,
}

impl Variant {
    /// Baseline latency ÷ this latency (batch-1 medians).
    pub fn speedup(&self) -> f64 {
        self.baseline.latency_ms_median / self.measured.latency_ms_median
    }

    /// Baseline file size ÷ this file size.
    pub fn size_ratio(&self) -> f64 {
        self.baseline.file_bytes as f64 / self.measured.file_bytes.max(1) as f64
    }

    /// The change of `task`'s metric from the baseline, in a run with the task.
    pub fn change(&self, task: Task) -> Option<f64> {
        Some(self.measured.metric(task)? - self.baseline.metric(task)?)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub variants: Vec<Variant>,
}

pub fn report_path(run_dir: &Path) -> PathBuf {
    run_dir.join(COMPRESSED_DIR).join(REPORT_FILE)
}

impl Report {
    /// The run's report; empty when nothing was compressed yet.
    pub fn read(run_dir: &Path) -> Result<Self> {
        let path = report_path(run_dir);
        if !path.is_file() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a compression report", path.display()))
    }

    /// Adds `variant`, replacing an earlier row of the same checkpoint, and writes the file atomically.
    pub fn record(run_dir: &Path, variant: Variant) -> Result<Self> {
        let mut report = Self::read(run_dir)?;
        report.variants.retain(|v| v.checkpoint != variant.checkpoint);
        report.variants.push(variant);
        let path = report_path(run_dir);
        write_atomic(&path, serde_json::to_string_pretty(&report)?.as_bytes())?;
        if read_config(run_dir).map_or(true, |config| config.log.tensorboard) {
            report.write_tensorboard(run_dir)?;
        }
        Ok(report)
    }

    /// The table as TensorBoard scalars in `tensorboard/compress/` (a run of its
    /// own there, beside the training curves): one tag per figure and model (`baseline` or the method chain), at step 0.
    fn write_tensorboard(&self, run_dir: &Path) -> Result<()> {
        let dir = run_dir.join(TENSORBOARD_DIR).join("compress");
        std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
        let figures = |name: &str, m: &Measurement| {
            [
                ("params", m.params as f64),
                ("file_mb", m.file_bytes as f64 / 1e6),
                ("gmacs", m.macs as f64 / 1e9),
                ("latency_ms", m.latency_ms_median),
                ("images_per_sec", m.images_per_sec),
            ]
            .into_iter()
            .chain([("map50", m.map50), ("miou", m.miou), ("top1", m.top1)].into_iter().filter_map(|(figure, v)| Some((figure, v?))))
            .map(|(figure, value)| (format!("compress/{name}/{figure}"), value as f32))
            .collect::<Vec<_>>()
        };
        let mut scalars = Vec::new();
        if let Some(latest) = self.variants.last() {
            scalars.extend(figures("baseline", &latest.baseline));
        }
        for variant in &self.variants {
            scalars.extend(figures(&variant.method, &variant.measured));
            scalars.push((format!("compress/{}/speedup", variant.method), variant.speedup() as f32));
            scalars.push((format!("compress/{}/size_ratio", variant.method), variant.size_ratio() as f32));
        }
        EventWriter::replace(&dir.join(EVENTS_FILE), |writer| writer.scalars(0, &scalars))
    }

    /// The tasks of the table's metric columns, those the latest baseline was
    /// measured on: detection's and segmentation's (before the ratios), and
    /// classification's (at the end).
    pub fn task_columns(&self) -> (Vec<Task>, Vec<Task>) {
        let measured = |tasks: &[Task]| match self.variants.last() {
            Some(latest) => tasks.iter().copied().filter(|&t| latest.baseline.metric(t).is_some()).collect(),
            None => Vec::new(),
        };
        (measured(&[Task::Det, Task::Seg]), measured(&[Task::Cls]))
    }

    /// The plain-text table: the latest baseline, then every variant with its ratios.
    pub fn table(&self) -> String {
        let Some(latest) = self.variants.last() else {
            return "no compressed models yet (twinhead compress --run RUN --method M)".into();
        };
        let mut out = format!(
            "CPU, {} threads, {} px; latency: median and p90 of {LATENCY_RUNS} batch-1 passes; throughput at batch {THROUGHPUT_BATCH}; \
             each variant timed interleaved with the baseline, its ratios against that baseline\n",
            latest.threads, latest.image_size
        );
        let (pair, cls) = self.task_columns();
        let names = |tasks: &[Task], prefix: &str, width: usize| -> String {
            tasks.iter().map(|t| format!(" {:>width$}", format!("{prefix}{}", t.metric_name()))).collect()
        };
        out += &format!(
            "{:<28} {:>6} {:>9} {:>9} {:>8} {:>14} {:>8}{} {:>7} {:>7}{}{}{}\n",
            "model",
            "tuned",
            "params",
            "file MB",
            "GMACs",
            "latency ms",
            "img/s",
            names(&pair, "", 7),
            "speed×",
            "size÷",
            names(&pair, "Δ", 8),
            names(&cls, "", 7),
            names(&cls, "Δ", 8),
        );
        let row = |name: &str, tuned: String, m: &Measurement, ratios: Option<&Variant>| {
            let values = |tasks: &[Task]| -> String {
                tasks.iter().map(|&t| format!(" {:>7}", m.metric(t).map_or("-".to_string(), |v| format!("{v:.4}")))).collect()
            };
            let changes = |tasks: &[Task]| -> String {
                tasks.iter().map(|&t| format!(" {:>8}", ratios.and_then(|v| v.change(t)).map_or("-".to_string(), |d| format!("{d:+.4}")))).collect()
            };
            format!(
                "{:<28} {:>6} {:>9} {:>9.3} {:>8.3} {:>14} {:>8.1}{} {:>7} {:>7}{}{}{}\n",
                name,
                tuned,
                m.params,
                m.file_bytes as f64 / 1e6,
                m.macs as f64 / 1e9,
                format!("{:.1} / {:.1}", m.latency_ms_median, m.latency_ms_p90),
                m.images_per_sec,
                values(&pair),
                ratios.map_or("-".into(), |v| format!("{:.2}", v.speedup())),
                ratios.map_or("-".into(), |v| format!("{:.2}", v.size_ratio())),
                changes(&pair),
                values(&cls),
                changes(&cls),
            )
        };
        out += &row(&format!("baseline ({})", latest.source), "-".into(), &latest.baseline, None);
        for v in &self.variants {
            out += &row(&v.method, v.finetune_steps.to_string(), &v.measured, Some(v));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurement(latency: f64, top1: Option<f64>) -> Measurement {
        Measurement {
            params: 1000,
            file_bytes: 4000,
            macs: 1_000_000,
            latency_ms_median: latency,
            latency_ms_p90: latency,
            images_per_sec: 100.0,
            map50: Some(0.5),
            miou: Some(0.4),
            top1,
        }
    }

    fn report(top1: [Option<f64>; 2]) -> Report {
        let variant = Variant {
            method: "int8".into(),
            checkpoint: "compressed/int8".into(),
            source: "last".into(),
            finetune_steps: 0,
            measured: measurement(5.0, top1[1]),
            baseline: measurement(10.0, top1[0]),
            threads: 2,
            image_size: 96,
        };
        Report { variants: vec![variant] }
    }

    #[test]
    fn a_three_task_table_adds_top1_and_its_change() {
        let table = report([Some(0.6), Some(0.55)]).table();
        let header = table.lines().nth(1).unwrap();
        assert!(header.ends_with("top-1   Δtop-1"), "{header}");
        let row = table.lines().last().unwrap();
        assert!(row.starts_with("int8") && row.contains(" 2.00 ") && row.ends_with(" 0.5500  -0.0500"), "{row}");
        assert_eq!(report([Some(0.6), Some(0.55)]).variants[0].change(Task::Cls).map(|d| (d * 1e4).round()), Some(-500.0));
        let two_task = report([None, None]).table();
        assert!(!two_task.contains("top-1"), "{two_task}");
    }
}
