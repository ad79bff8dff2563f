//! The Compare panel: the selected runs side by side in a sortable table
//! (strategy, progress, final and best metrics, forgetting, wall time), and the
//! strategy sweep that queues one preset once per mitigation strategy.

use std::cmp::Ordering;

use anyhow::{Context, Result};
use eframe::egui;

use crate::session::run_record::{RunRecord, RunStatus};
use crate::session::Notice;
use super::shared::Shared;
use crate::train::config::TrainConfig;
use crate::train::config_diff::config_diff;
use crate::train::events::EvalRecord;
use crate::train::presets::preset_names;
use crate::model::task::PerTask;
use crate::train::strategy::{Task, TaskSet};

/// The presets the sweep takes its strategies from, in the order they are queued.
const SWEEP_STRATEGIES: [&str; 12] = [
    "alternate",
    "alternate-pseudo",
    "joint",
    "joint-pcgrad",
    "joint-uncertainty",
    "naive",
    "sequential",
    "freeze",
    "lwf",
    "ewc",
    "replay",
    "pseudo",
];

const CONFLICT_HELP: &str = "Mean over the evaluations of the cosine between the detection and segmentation gradients on the shared backbone and neck (1: the tasks agree, below 0: they pull the shared weights apart); the lowest value in brackets";

const FORGETTING_HELP: &str =
    "The largest best-minus-current drop seen at any evaluation: how much the task lost at its worst, even if it recovered later";

/// The widest the strategy column gets, in points; longer descriptions are cut (whole on hover).
const STRATEGY_CELL_WIDTH: f32 = 360.0;

#[derive(Default)]
pub struct ComparePanel {
    /// The column sorted by and whether descending; unsorted, runs keep the list's order.
    sort: Option<(Column, bool)>,
    /// The sweep's base preset; `None` until the user picks one (then the Setup preset).
    sweep_base: Option<String>,
    /// The sweep runs the sequential family segmentation-first too.
    sweep_both_orders: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Run,
    Strategy,
    Status,
    Step,
    /// A figure of one task's metric (runs without the task have none).
    Task(Task, Figure),
    FinalTrackScore,
    BestTrackScore,
    Conflict,
    WallTime,
}

/// What the table shows of each task's metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Figure {
    /// At the last evaluation.
    Final,
    Best,
    /// The largest drop below the best so far, over the evaluations.
    Forgetting,
    /// The drop at the last evaluation.
    ForgettingEnd,
}

impl Figure {
    const ALL: [Figure; 4] = [Figure::Final, Figure::Best, Figure::Forgetting, Figure::ForgettingEnd];
}

impl Column {
    /// Every column, in table order: each task's four after the run's own.
    fn all() -> Vec<Column> {
        let tasks = Task::ALL.into_iter().flat_map(|task| Figure::ALL.map(|figure| Column::Task(task, figure)));
        [Column::Run, Column::Strategy, Column::Status, Column::Step]
            .into_iter()
            .chain(tasks)
            .chain([Column::FinalTrackScore, Column::BestTrackScore, Column::Conflict, Column::WallTime])
            .collect()
    }

    /// The columns of a table of `rows`: a task's only when a run has the
    /// task, the track score's when a run has all three (detection's and
    /// segmentation's in an empty table).
    fn shown(rows: &[Row]) -> Vec<Column> {
        let tasks = match rows {
            [] => TaskSet::DET_SEG,
            _ => rows.iter().flat_map(|r| r.tasks.iter()).collect(),
        };
        let track = rows.iter().any(|r| r.tasks == TaskSet::ALL);
        Self::all()
            .into_iter()
            .filter(|c| c.tasks().is_none_or(|needed| if needed == TaskSet::ALL { track } else { needed.iter().all(|t| tasks.contains(t)) }))
            .collect()
    }

    /// The tasks a column is about (`None`: every run has it).
    fn tasks(self) -> Option<TaskSet> {
        match self {
            Column::Task(task, _) => Some(task.into()),
            Column::FinalTrackScore | Column::BestTrackScore => Some(TaskSet::ALL),
            _ => None,
        }
    }

    fn header(self) -> String {
        match self {
            Column::Run => "run".into(),
            Column::Strategy => "strategy".into(),
            Column::Status => "status".into(),
            Column::Step => "step".into(),
            Column::Task(task, Figure::Final) => format!("final {}", task.metric_name()),
            Column::Task(task, Figure::Best) => format!("best {}", task.metric_name()),
            Column::Task(task, Figure::Forgetting) => format!("{task} forgetting"),
            Column::Task(_, Figure::ForgettingEnd) => "at end".into(),
            Column::FinalTrackScore => "final track score".into(),
            Column::BestTrackScore => "best track score".into(),
            Column::Conflict => "task conflict".into(),
            Column::WallTime => "wall time".into(),
        }
    }

    fn help(self) -> Option<&'static str> {
        match self {
            Column::Step => Some("Steps done / steps planned"),
            Column::FinalTrackScore | Column::BestTrackScore => {
                Some("The AllInOne (CVPR23 Track 1) score: the mean of mAP50, mIoU and top-1 at one evaluation (final: the last; best: the highest)")
            }
            Column::Task(_, Figure::Final) => Some("At the last evaluation"),
            Column::Task(_, Figure::Forgetting) => Some(FORGETTING_HELP),
            Column::Conflict => Some(CONFLICT_HELP),
            Column::Task(_, Figure::ForgettingEnd) => Some("Best so far minus the value at the last evaluation: what the task has lost and not won back"),
            Column::WallTime => Some("Known once the run has finished"),
            _ => None,
        }
    }
}

/// One task's figures of a run (all `None` in a run without the task).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct TaskFigures {
    last: Option<f64>,
    best: Option<f64>,
    forgetting: Option<f64>,
    forgetting_end: Option<f64>,
}

impl TaskFigures {
    fn get(&self, figure: Figure) -> Option<f64> {
        match figure {
            Figure::Final => self.last,
            Figure::Best => self.best,
            Figure::Forgetting => self.forgetting,
            Figure::ForgettingEnd => self.forgetting_end,
        }
    }
}

/// One table row, the values extracted from a run so they can be sorted and tested.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    name: String,
    /// The run's tasks (which columns concern it).
    tasks: TaskSet,
    strategy: String,
    status: String,
    /// A failed run's message.
    status_detail: Option<String>,
    step: usize,
    total_steps: usize,
    figures: PerTask<TaskFigures>,
    /// Mean of mAP50, mIoU and top-1 (three-task runs).
    final_track_score: Option<f64>,
    best_track_score: Option<f64>,
    /// Mean and lowest task-conflict cosine over the evaluations.
    conflict: Option<(f64, f64)>,
    wall_seconds: Option<f64>,
}

impl Row {
    fn new(run: &RunRecord) -> Self {
        let last = run.last_eval();
        Self {
            name: run.name.clone(),
            tasks: run.config.data.run_tasks(),
            strategy: run.strategy_summary(),
            status: run.status_label(),
            status_detail: match &run.status {
                RunStatus::Failed(message) => Some(message.clone()),
                _ => None,
            },
            step: run.step,
            total_steps: run.total_steps,
            figures: PerTask::from_fn(|task| TaskFigures {
                last: last.and_then(|e| e.metric[task]),
                best: run.best(task),
                forgetting: run.max_forgetting(task),
                forgetting_end: last.and_then(|e| e.forgetting[task]),
            }),
            final_track_score: last.and_then(EvalRecord::track_score),
            best_track_score: run.evals.iter().filter_map(EvalRecord::track_score).reduce(f64::max),
            conflict: conflict_summary(run),
            // Only a finished run's log carries its wall time.
            wall_seconds: (run.wall_seconds > 0.0).then_some(run.wall_seconds),
        }
    }

    fn cell(&self, column: Column) -> String {
        let number = |v: Option<f64>| v.map_or_else(|| "—".to_string(), |v| format!("{v:.3}"));
        match column {
            Column::Run => self.name.clone(),
            Column::Strategy => self.strategy.clone(),
            Column::Status => self.status.clone(),
            Column::Step => format!("{}/{}", self.step, self.total_steps),
            Column::Conflict => self.conflict.map_or_else(|| "—".to_string(), |(mean, low)| format!("{mean:.3} ({low:.3})")),
            Column::WallTime => self.wall_seconds.map_or_else(|| "—".to_string(), format_duration),
            _ => number(self.number(column)),
        }
    }

    fn number(&self, column: Column) -> Option<f64> {
        match column {
            Column::Task(task, figure) => self.figures[task].get(figure),
            Column::FinalTrackScore => self.final_track_score,
            Column::BestTrackScore => self.best_track_score,
            Column::Conflict => self.conflict.map(|(mean, _)| mean),
            Column::WallTime => self.wall_seconds,
            Column::Step => Some(self.step as f64),
            Column::Run | Column::Strategy | Column::Status => None,
        }
    }
}

impl ComparePanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        let checked = &shared.selection.checked;
        let mut rows: Vec<Row> =
            shared.session.records.iter().filter(|r| checked.is_empty() || checked.contains(&r.name)).map(Row::new).collect();
        if let Some((column, descending)) = self.sort {
            sort_rows(&mut rows, column, descending);
        }
        if rows.is_empty() {
            ui.label("No runs yet: start one on Setup, or a strategy sweep below.");
        } else {
            // The table scrolls sideways rather than widening the panel past the window.
            egui::ScrollArea::horizontal().id_salt("compare-table-scroll").show(ui, |ui| self.table(ui, &rows));
        }
        if rows.iter().any(|r| r.figures.iter().any(|(_, figures)| figures.last.is_some())) {
            egui::CollapsingHeader::new("Final metrics and forgetting").id_salt("compare-chart").default_open(true).show(ui, |ui| {
                outcome_chart(ui, &rows);
            });
        }
        if rows.len() >= 2 {
            ui.separator();
            config_differences(ui, shared, &rows);
        }
        ui.separator();
        self.sweep(ui, shared);
    }

    fn table(&mut self, ui: &mut egui::Ui, rows: &[Row]) {
        egui::ScrollArea::horizontal().id_salt("compare-table-scroll").show(ui, |ui| {
            let columns = Column::shown(rows);
            egui::Grid::new("compare-table").striped(true).num_columns(columns.len()).show(ui, |ui| {
                for &column in &columns {
                    self.header(ui, column);
                }
                ui.end_row();
                for row in rows {
                    for &column in &columns {
                        let text = row.cell(column);
                        let label = if matches!(column, Column::Strategy) {
                            // A long description (pseudo-labels' settings) would push the metrics off screen: cut, whole on hover.
                            let cell = ui.scope(|ui| {
                                ui.set_max_width(STRATEGY_CELL_WIDTH);
                                ui.add(egui::Label::new(&text).truncate())
                            });
                            cell.inner.on_hover_text(&text)
                        } else {
                            ui.label(text)
                        };
                        if let (Column::Status, Some(detail)) = (column, &row.status_detail) {
                            label.on_hover_text(detail);
                        }
                    }
                    ui.end_row();
                }
            });
        });
    }

    /// A header button: a click sorts by its column, a second click reverses.
    /// The arrow is a label of its own so the button's text stays the same.
    fn header(&mut self, ui: &mut egui::Ui, column: Column) {
        ui.horizontal(|ui| {
            let mut button = ui.add(egui::Button::new(egui::RichText::new(column.header()).strong()).frame(false));
            if let Some(help) = column.help() {
                button = button.on_hover_text(help);
            }
            if button.clicked() {
                self.sort = Some(next_sort(self.sort, column));
            }
            match self.sort {
                Some((sorted, descending)) if sorted == column => {
                    ui.label(if descending { "⬇" } else { "⬆" });
                }
                _ => {}
            }
        });
    }

    fn sweep(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.strong("Strategy sweep");
        ui.label(format!("Queues the chosen preset once with each strategy ({}), on the CPU one after another.", SWEEP_STRATEGIES.join(", ")));
        let base = self.sweep_base.get_or_insert_with(|| shared.settings.preset.clone());
        ui.horizontal(|ui| {
            ui.label("Base preset");
            egui::ComboBox::from_id_salt("sweep-base").selected_text(base.as_str()).show_ui(ui, |ui| {
                for name in preset_names() {
                    ui.selectable_value(base, name.clone(), name);
                }
            });
            ui.checkbox(&mut self.sweep_both_orders, "sequential family in both orders")
                .on_hover_text("Also run naive, sequential, freeze, lwf, ewc, replay and pseudo starting with the run's next task (segmentation after detection: named …-seg-first)");
            let hint = format!("Queue the base preset once per strategy on {}", shared.devices_text());
            if ui.button("Start strategy sweep").on_hover_text(hint).clicked() {
                let notice = start_sweep(base, self.sweep_both_orders, shared);
                shared.notifications.push(notice);
            }
        });
    }
}

/// Queues the sweep of `base` and checks its runs so Curves overlays them.
fn start_sweep(base: &str, both_orders: bool, shared: &mut Shared) -> Notice {
    let configs = match TrainConfig::load_preset(base, &[]).and_then(|config| sweep_configs(&config, both_orders)) {
        Ok(configs) => configs,
        Err(error) => return Notice::error(format!("strategy sweep: {error:#}")),
    };
    let mut queued = Vec::new();
    for config in configs {
        match shared.session.enqueue(config, &shared.devices) {
            Ok(name) => {
                shared.selection.checked.insert(name.clone());
                queued.push(name);
            }
            // The runs queued so far stay queued; say which one could not be.
            Err(error) => return Notice::error(format!("strategy sweep: queued {}, then: {error:#}", queued.len())),
        }
    }
    Notice::info(format!("strategy sweep: queued {}", queued.join(", ")))
}

/// `base` once per sweep strategy, named `<base>-<strategy preset>`. Each takes
/// the strategy of its preset; a switch step is moved to the same fraction of
/// `base`'s steps as in its preset, so the phases split a longer or shorter run
/// alike. With `both_orders`, each sequential-family run is followed by a
/// twin starting with the run's next task (`…-seg-first` after detection).
pub fn sweep_configs(base: &TrainConfig, both_orders: bool) -> Result<Vec<TrainConfig>> {
    let tasks = base.data.run_tasks();
    if tasks.len() < 2 {
        anyhow::bail!("{} trains one task ({}): the strategies it would compare share a network between tasks", base.name, String::from(tasks));
    }
    let mut configs = Vec::new();
    for &preset in &SWEEP_STRATEGIES {
        let source = TrainConfig::load_preset(preset, &[])?;
        let mut config = base.clone();
        config.strategy = source.strategy;
        config.strategy.rescale_steps(source.steps, base.steps);
        config.name = format!("{}-{preset}", base.name);
        config.validate().with_context(|| format!("strategy sweep with {preset} on {}", base.name))?;
        // The twin starts with the next of the run's tasks instead.
        let other = config.strategy.sequence().and_then(|s| tasks.without(s.first_task()).iter().next()).filter(|_| both_orders);
        let twin = other.map(|other| TrainConfig {
            name: format!("{}-{}-first", config.name, other.key()),
            strategy: config.strategy.clone().with_first(other),
            ..config.clone()
        });
        configs.push(config);
        configs.extend(twin);
    }
    Ok(configs)
}

/// Per run, grouped bars: final mAP50 and mIoU, and the forgetting at the end
/// of each task (drawn below zero, as losses).
fn outcome_chart(ui: &mut egui::Ui, rows: &[Row]) {
    // Each task's final metric, then each task's forgetting at the end.
    let finals = Task::ALL.map(|task| (Column::Task(task, Figure::Final), final_colour(task), 1.0));
    let ends = Task::ALL.map(|task| (Column::Task(task, Figure::ForgettingEnd), forgetting_colour(task), -1.0));
    let all = finals.into_iter().chain(ends).map(|(column, colour, sign)| {
        let name = match column {
            Column::Task(task, Figure::ForgettingEnd) => format!("{task} forgetting at end"),
            _ => column.header(),
        };
        (name, colour, move |row: &Row| row.number(column).map(|v| sign * v))
    });
    // Classification's bars only where a run has that task.
    let series: Vec<_> = all.filter(|(_, _, value)| rows.iter().any(|r| value(r).is_some())).collect();
    let names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
    let width = 0.8 / series.len().max(1) as f64;
    let centre = (series.len() as f64 - 1.0) / 2.0;
    let charts: Vec<egui_plot::BarChart> = series
        .iter()
        .enumerate()
        .map(|(k, (name, color, value))| {
            let bars = rows
                .iter()
                .enumerate()
                .filter_map(|(i, row)| value(row).map(|v| (i, v)))
                .map(|(i, v)| egui_plot::Bar::new(i as f64 + (k as f64 - centre) * width, v).width(width * 0.9).name(&names[i]))
                .collect();
            egui_plot::BarChart::new(name.as_str(), bars).color(*color)
        })
        .collect();
    egui_plot::Plot::new("compare-outcomes")
        .height(220.0)
        .allow_scroll(false)
        .include_y(-0.2)
        .include_y(1.0)
        .legend(egui_plot::Legend::default())
        .x_axis_formatter(super::category_axis(names))
        .show(ui, |plot_ui| {
            for chart in charts {
                plot_ui.bar_chart(chart);
            }
        });
}

fn final_colour(task: Task) -> egui::Color32 {
    match task {
        Task::Det => egui::Color32::from_rgb(78, 121, 167),
        Task::Seg => egui::Color32::from_rgb(89, 161, 79),
        Task::Cls => egui::Color32::from_rgb(176, 122, 161),
    }
}

fn forgetting_colour(task: Task) -> egui::Color32 {
    match task {
        Task::Det => egui::Color32::from_rgb(242, 142, 43),
        Task::Seg => egui::Color32::from_rgb(225, 87, 89),
        Task::Cls => egui::Color32::from_rgb(237, 201, 72),
    }
}

/// The mean and the lowest task-conflict cosine of a run's evaluations.
fn conflict_summary(run: &RunRecord) -> Option<(f64, f64)> {
    let values: Vec<f64> = run.evals.iter().filter_map(|e| e.conflict.map(|c| c.shared)).collect();
    let low = values.iter().copied().reduce(f64::min)?;
    Some((values.iter().sum::<f64>() / values.len() as f64, low))
}

/// The configuration keys that differ between the listed runs, one column per run.
fn config_differences(ui: &mut egui::Ui, shared: &Shared, rows: &[Row]) {
    let configs: Vec<&TrainConfig> = rows
        .iter()
        .filter_map(|row| shared.session.records.iter().find(|r| r.name == row.name).map(|r| &r.config))
        .collect();
    let diff = config_diff(&configs);
    let title = match diff.len() {
        0 => "Configuration: the same in every listed run".to_string(),
        n => format!("Configuration: {n} key(s) differ"),
    };
    egui::CollapsingHeader::new(title).id_salt("config-diff").default_open(true).show(ui, |ui| {
        egui::Grid::new("config-diff-table").striped(true).num_columns(rows.len() + 1).show(ui, |ui| {
            ui.strong("key");
            for row in rows {
                ui.strong(&row.name);
            }
            ui.end_row();
            for key in &diff {
                ui.monospace(&key.key);
                for value in &key.values {
                    ui.label(value.as_deref().unwrap_or("—"));
                }
                ui.end_row();
            }
        });
    });
}

/// A click on `column`: sorts by it ascending, or reverses it if it is already the sort.
fn next_sort(current: Option<(Column, bool)>, column: Column) -> (Column, bool) {
    match current {
        Some((sorted, descending)) if sorted == column => (column, !descending),
        _ => (column, false),
    }
}

/// Sorts by `column`; runs without a value (not evaluated yet) go last either
/// way, and ties keep the name order so the table does not jump around.
fn sort_rows(rows: &mut [Row], column: Column, descending: bool) {
    let directed = |order: Ordering| if descending { order.reverse() } else { order };
    rows.sort_by(|a, b| {
        let order = match column {
            Column::Run => directed(a.name.cmp(&b.name)),
            Column::Strategy => directed(a.strategy.cmp(&b.strategy)),
            Column::Status => directed(a.status.cmp(&b.status)),
            _ => match (a.number(column), b.number(column)) {
                (Some(x), Some(y)) => directed(x.total_cmp(&y)),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            },
        };
        order.then_with(|| a.name.cmp(&b.name))
    });
}

/// `42s`, `3m 05s`, `1h 02m`.
fn format_duration(seconds: f64) -> String {
    let total = seconds.max(0.0).round() as u64;
    match total {
        0..60 => format!("{total}s"),
        60..3600 => format!("{}m {:02}s", total / 60, total % 60),
        _ => format!("{}h {:02}m", total / 3600, total % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, best_map50: Option<f64>) -> Row {
        let mut figures = PerTask::<TaskFigures>::default();
        figures[Task::Det] = TaskFigures { last: best_map50, best: best_map50, ..Default::default() };
        Row {
            name: name.into(),
            tasks: TaskSet::DET_SEG,
            strategy: "joint ()".into(),
            status: "completed".into(),
            status_detail: None,
            step: 10,
            total_steps: 10,
            figures,
            final_track_score: None,
            best_track_score: None,
            conflict: None,
            wall_seconds: None,
        }
    }

    const BEST_MAP50: Column = Column::Task(Task::Det, Figure::Best);
    const BEST_MIOU: Column = Column::Task(Task::Seg, Figure::Best);
    const BEST_TOP1: Column = Column::Task(Task::Cls, Figure::Best);

    #[test]
    fn classification_columns_show_only_when_a_run_has_classification() {
        let two_task = vec![row("a", Some(0.5))];
        assert_eq!(Column::shown(&two_task).len(), Column::all().len() - 6);
        let mut three = Row { tasks: TaskSet::ALL, ..row("b", None) };
        three.figures[Task::Cls] = TaskFigures { last: Some(0.3), best: Some(0.4), ..Default::default() };
        let mixed = vec![row("a", Some(0.5)), three];
        let shown = Column::shown(&mixed);
        assert!(shown.contains(&BEST_TOP1) && shown.contains(&Column::Task(Task::Cls, Figure::ForgettingEnd)), "{shown:?}");
        let final_top1 = Column::Task(Task::Cls, Figure::Final);
        assert_eq!((mixed[1].cell(final_top1), mixed[0].cell(BEST_TOP1)), ("0.300".to_string(), "—".to_string()));
        let headers: Vec<String> = shown.iter().map(|c| c.header()).collect();
        assert_eq!(headers[4..8], ["final mAP50", "best mAP50", "detection forgetting", "at end"]);
        assert_eq!(headers[12..14], ["final top-1", "best top-1"]);
        // A segmentation specialist's table: no detection and no classification columns.
        let shown = Column::shown(&[Row { tasks: Task::Seg.into(), ..row("c", None) }]);
        assert!(shown.contains(&BEST_MIOU) && !shown.contains(&BEST_MAP50) && !shown.contains(&final_top1), "{shown:?}");
        // Classification without the other two: its columns, no track score.
        let shown = Column::shown(&[Row { tasks: TaskSet::of(&[Task::Det, Task::Cls]), ..row("d", None) }]);
        assert!(shown.contains(&BEST_TOP1) && !shown.contains(&Column::BestTrackScore) && !shown.contains(&BEST_MIOU), "{shown:?}");
    }

    #[test]
    fn three_task_runs_get_the_track_score_of_their_last_and_best_evaluation() {
        use crate::train::events::Event;
        let dir = tempfile::tempdir().unwrap();
        let mut record = RunRecord::new(&dir.path().join("a"), TrainConfig::load_preset("allinone", &[]).unwrap(), RunStatus::Completed);
        for (step, map50, miou, top1) in [(100, 0.6, 0.3, 0.3), (200, 0.3, 0.3, 0.15)] {
            record.apply(&Event::Eval(EvalRecord { step, metric: PerTask::from([Some(map50), Some(miou), Some(top1)]), ..Default::default() }));
        }
        let row = Row::new(&record);
        let close = |v: Option<f64>, expected: f64| v.is_some_and(|v| (v - expected).abs() < 1e-12);
        assert!(close(row.best_track_score, 0.4) && close(row.final_track_score, 0.25), "{row:?}");
        assert_eq!(row.cell(Column::FinalTrackScore), "0.250");
        assert!(Column::shown(&[row]).contains(&Column::BestTrackScore));
    }

    fn names(rows: &[Row]) -> Vec<&str> {
        rows.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn sorting_puts_missing_values_last_and_breaks_ties_by_name() {
        let mut rows = vec![row("d", None), row("c", Some(0.2)), row("b", Some(0.5)), row("a", Some(0.2))];
        sort_rows(&mut rows, BEST_MAP50, false);
        assert_eq!(names(&rows), ["a", "c", "b", "d"]);
        sort_rows(&mut rows, BEST_MAP50, true);
        assert_eq!(names(&rows), ["b", "a", "c", "d"]);
        sort_rows(&mut rows, Column::Run, true);
        assert_eq!(names(&rows), ["d", "c", "b", "a"]);
    }

    #[test]
    fn a_second_click_reverses_and_another_column_starts_ascending() {
        let first = next_sort(None, BEST_MIOU);
        assert_eq!(first, (BEST_MIOU, false));
        let second = next_sort(Some(first), BEST_MIOU);
        assert_eq!(second, (BEST_MIOU, true));
        assert_eq!(next_sort(Some(second), Column::Run), (Column::Run, false));
    }

    #[test]
    fn cells_show_dashes_for_what_is_not_known_yet() {
        let mut r = row("a", Some(0.25));
        r.wall_seconds = Some(3725.0);
        assert_eq!(r.cell(BEST_MAP50), "0.250");
        assert_eq!(r.cell(BEST_MIOU), "—");
        assert_eq!(r.cell(Column::Step), "10/10");
        assert_eq!(r.cell(Column::WallTime), "1h 02m");
        assert_eq!(r.cell(Column::Conflict), "—");
        r.conflict = Some((0.1234, -0.25));
        assert_eq!(r.cell(Column::Conflict), "0.123 (-0.250)");
        assert_eq!(format_duration(42.4), "42s");
        assert_eq!(format_duration(185.0), "3m 05s");
    }

    #[test]
    fn the_sweep_gives_the_base_each_strategy() {
        let base = TrainConfig::load_preset("quick", &[]).unwrap();
        let configs = sweep_configs(&base, false).unwrap();
        let names: Vec<&str> = configs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "quick-alternate",
                "quick-alternate-pseudo",
                "quick-joint",
                "quick-joint-pcgrad",
                "quick-joint-uncertainty",
                "quick-naive",
                "quick-sequential",
                "quick-freeze",
                "quick-lwf",
                "quick-ewc",
                "quick-replay",
                "quick-pseudo"
            ]
        );
        let kinds: Vec<String> = configs.iter().map(|c| c.strategy.label()).collect();
        assert_eq!(
            kinds,
            [
                "alternate",
                "alternate + pseudo-labels",
                "joint",
                "joint + pcgrad",
                "joint",
                "sequential",
                "sequential",
                "freeze",
                "lwf",
                "ewc",
                "replay",
                "pseudo"
            ]
        );
        assert_eq!(configs[5].strategy.sequence().unwrap().lr_factor, 1.0, "naive keeps the full rate");
        // Everything but the strategy and the name is the base's.
        for config in &configs {
            assert_eq!(TrainConfig { name: base.name.clone(), strategy: base.strategy.clone(), ..config.clone() }, base);
        }
        assert_eq!(configs[4].strategy.weighting(), crate::train::strategy::Weighting::Uncertainty);
        // quick has 450 steps, the strategy presets 500 with the switch at 250.
        assert_eq!(configs[5].strategy.sequence().unwrap().switch_step, 225);
        assert_eq!(configs[1].strategy.pseudo_labels(0).unwrap().start_step, 225, "the burn-in too");
    }

    #[test]
    fn the_switch_step_keeps_its_fraction_of_the_run() {
        let mut base = TrainConfig::load_preset("quick", &[]).unwrap();
        base.steps = 1000;
        let configs = sweep_configs(&base, false).unwrap();
        let switches: Vec<usize> = configs.iter().filter_map(|c| c.strategy.sequence()).map(|s| s.switch_step).collect();
        assert_eq!(switches, [500; 7]);
        base.steps = 1;
        let Err(error) = sweep_configs(&base, false) else { panic!("a one-step sweep has no switch step") };
        assert!(format!("{error:#}").contains("strategy sweep with naive"), "{error:#}");
    }

    #[test]
    fn a_three_task_sweep_runs_every_strategy_over_the_three_tasks() {
        let base = TrainConfig::load_preset("allinone", &[]).unwrap();
        let configs = sweep_configs(&base, true).unwrap();
        assert_eq!(configs.len(), 12 + 7);
        // The sequential family's twins start with segmentation, then the run's other tasks.
        let twin = configs.iter().find(|c| c.name == "allinone-naive-seg-first").unwrap();
        let order = twin.strategy.schedule(twin.run_shape()).unwrap().order;
        assert_eq!(order, [Task::Seg, Task::Det, Task::Cls]);
        assert!(configs.iter().all(|c| c.validate().is_ok()));
    }

    #[test]
    fn both_orders_add_a_segmentation_first_twin_to_the_sequential_family() {
        let base = TrainConfig::load_preset("quick", &[]).unwrap();
        let configs = sweep_configs(&base, true).unwrap();
        assert_eq!(configs.len(), 12 + 7);
        let naive: Vec<(&str, Task)> =
            configs[5..7].iter().map(|c| (c.name.as_str(), c.strategy.sequence().unwrap().first_task())).collect();
        assert_eq!(naive, [("quick-naive", Task::Det), ("quick-naive-seg-first", Task::Seg)]);
        assert!(configs.iter().filter(|c| c.strategy.sequence().is_none()).all(|c| !c.name.ends_with("-first")));
    }

    #[test]
    fn evaluated_runs_get_forgetting_at_end_and_the_outcome_chart() {
        use crate::session::run_record::RunStatus;
        use crate::train::events::{EvalRecord, Event};
        use egui_kittest::kittest::Queryable;
        let dir = tempfile::tempdir().unwrap();
        let mut shared = Shared::new(crate::gui::settings::Settings { runs_dir: dir.path().into(), ..Default::default() });
        let mut record = RunRecord::new(&dir.path().join("a"), TrainConfig::load_preset("quick", &[]).unwrap(), RunStatus::Completed);
        for (step, map50, det_forgetting) in [(100, 0.5, 0.0), (200, 0.2, 0.3), (300, 0.4, 0.1)] {
            let eval = EvalRecord {
                step,
                metric: PerTask::from([Some(map50), Some(0.6), None]),
                forgetting: PerTask::from([Some(det_forgetting), Some(0.0), None]),
                pixel_acc: Some(0.8),
                ..Default::default()
            };
            record.apply(&Event::Eval(eval));
        }
        let row = Row::new(&record);
        // The largest drop (0.3 at step 200) and what is still lost at the end (0.1).
        assert_eq!((row.figures[Task::Det].forgetting, row.figures[Task::Det].forgetting_end), (Some(0.3), Some(0.1)));
        shared.session.records.push(record);
        let mut harness = egui_kittest::Harness::builder()
            .with_size([1400.0, 900.0])
            .build_ui_state(|ui, (panel, shared): &mut (ComparePanel, Shared)| panel.ui(ui, shared), (ComparePanel::default(), shared));
        harness.step();
        harness.get_by_label("Final metrics and forgetting");
        assert_eq!(harness.query_all_by_label("at end").count(), 2);
        harness.get_by_label("0.100");
    }

    #[test]
    fn headers_sort_and_the_sweep_queues_one_run_per_strategy() {
        use egui_kittest::kittest::Queryable;
        let dir = tempfile::tempdir().unwrap();
        let shared = Shared::new(crate::gui::settings::Settings { runs_dir: dir.path().into(), ..Default::default() });
        let mut harness = egui_kittest::Harness::builder()
            .with_size([1600.0, 1400.0])
            .build_ui_state(|ui, (panel, shared): &mut (ComparePanel, Shared)| panel.ui(ui, shared), (ComparePanel::default(), shared));
        harness.step();
        harness.get_by_label("Start strategy sweep").click();
        harness.step();
        harness.step();
        let shared = &harness.state().1;
        let queued: Vec<&str> = shared.session.records.iter().map(|r| r.name.as_str()).collect();
        let names: Vec<String> = SWEEP_STRATEGIES.iter().map(|preset| format!("quick-{preset}")).collect();
        assert_eq!(queued, names);
        assert!(queued.iter().all(|name| shared.selection.checked.contains(*name)));
        assert!(shared.notifications.items.iter().any(|(n, _)| n.text.starts_with("strategy sweep: queued quick-alternate")));
        // The first run trains meanwhile; stopped, the table's columns no longer change width under the clicks below.
        harness.state_mut().1.session.shutdown();
        harness.step();
        // The table lists them; the configuration differences have them as columns, and as `name`.
        assert_eq!(harness.query_all_by_label("quick-lwf").count(), 3);
        // Only the keys that differ: the name and the strategy's.
        harness.get_by_label("strategy.kind");
        assert!(harness.query_by_label("seed").is_none() && harness.query_by_label("optim.lr").is_none());
        harness.get_by_label_contains("key(s) differ");
        // A header click sorts, a second reverses.
        harness.get_by_label("best mAP50").click();
        harness.step();
        assert_eq!(harness.state().0.sort, Some((BEST_MAP50, false)));
        harness.get_by_label("best mAP50").click();
        harness.step();
        assert_eq!(harness.state().0.sort, Some((BEST_MAP50, true)));
        harness.get_by_label("⬇");
    }
}
