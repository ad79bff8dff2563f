//! The Curves panel: the selected runs' losses, evaluations, learning rate and
//! throughput against step, as six linked plots with the runs overlaid, the
//! phase and strategy changes marked, and export to PNG (a screenshot of the
//! plots) or CSV (the raw data).

use std::collections::HashMap;
use std::sync::Arc;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use eframe::egui::{self, Color32, ColorImage, Rect};
use egui_plot::{FilledArea, HoverPosition, Legend, Line, LineStyle, Plot, PlotBounds, PlotPoint, Points, Text, VLine};

use super::csv_field;
use crate::session::run_record::{RunRecord, Series};
use crate::train::events::EvalRecord;
use crate::model::{Task, TaskSet};
use crate::session::Notice;
use super::shared::{Selection, Shared};

/// At most this many points per plotted series: beyond it, a frame costs more
/// to tessellate than the eye can tell apart on a plot a few hundred pixels wide.
const MAX_POINTS: usize = 2000;
/// Plots never get shorter than this; the page scrolls instead.
const MIN_PLOT_HEIGHT: f32 = 120.0;

#[derive(Default)]
pub struct CurvesPanel {
    smoothing: Smoothing,
    /// Draw each smoothed curve's min/max band (per decimation bucket) behind it.
    envelope: bool,
    /// mAP50 and mIoU zoom to their data instead of the fixed 0–1 axis.
    zoom_metrics: bool,
    /// Where the plots were drawn last frame: the screenshot shows that frame.
    plots_rect: Option<Rect>,
    /// An "Export PNG" screenshot was asked for and has not arrived yet.
    awaiting_screenshot: bool,
    lines: LineCache,
}

/// The EMA weight, 0 (raw) to 0.99; TensorBoard's default of 0.6 to start,
/// because a raw per-batch loss is too noisy to read.
struct Smoothing(f64);

impl Default for Smoothing {
    fn default() -> Self {
        Self(0.6)
    }
}

/// Tags our screenshot request, so a screenshot another panel asked for is not taken for ours.
struct CurvesScreenshot;

/// One of the six plots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Metric {
    /// A task's loss at the steps that trained it.
    Loss(Task),
    /// A task's metric (mAP50, mIoU, top-1) at each evaluation.
    Score(Task),
    Lr,
    ImagesPerSec,
    Conflict,
    ConflictDetCls,
    ConflictSegCls,
}

impl Metric {
    /// In grid order: two per row.
    const ALL: [Metric; 11] = [
        Metric::Loss(Task::Det),
        Metric::Loss(Task::Seg),
        Metric::Loss(Task::Cls),
        Metric::Score(Task::Det),
        Metric::Score(Task::Seg),
        Metric::Score(Task::Cls),
        Metric::Conflict,
        Metric::ConflictDetCls,
        Metric::ConflictSegCls,
        Metric::Lr,
        Metric::ImagesPerSec,
    ];

    /// The name in the CSV export.
    fn key(self) -> String {
        match self {
            Metric::Loss(task) => format!("{}_loss", task.key()),
            Metric::Score(task) => EvalRecord::metric_key(task).into(),
            Metric::Lr => "lr".into(),
            Metric::ImagesPerSec => "images_per_sec".into(),
            Metric::Conflict => "task_conflict".into(),
            Metric::ConflictDetCls => "task_conflict_det_cls".into(),
            Metric::ConflictSegCls => "task_conflict_seg_cls".into(),
        }
    }

    fn title(self) -> String {
        match self {
            Metric::Loss(task) => format!("{task} loss"),
            // "top-1" alone does not say of what.
            Metric::Score(Task::Cls) => "classification top-1".into(),
            Metric::Score(task) => task.metric_name().into(),
            Metric::Lr => "learning rate".into(),
            Metric::ImagesPerSec => "images/s".into(),
            Metric::Conflict => "task conflict: cosine of the detection and segmentation gradients on the shared weights".into(),
            Metric::ConflictDetCls => "conflict detection–classification (backbone)".into(),
            Metric::ConflictSegCls => "conflict segmentation–classification (backbone)".into(),
        }
    }

    fn points(self, series: &Series) -> &[[f64; 2]] {
        match self {
            Metric::Loss(task) => &series.loss[task],
            Metric::Score(task) => &series.metric[task],
            Metric::Lr => &series.lr,
            Metric::ImagesPerSec => &series.images_per_sec,
            Metric::Conflict => &series.conflict,
            Metric::ConflictDetCls => &series.conflict_det_cls,
            Metric::ConflictSegCls => &series.conflict_seg_cls,
        }
    }

    /// Only the per-step measurements are noisy enough to need smoothing. The
    /// evaluations stay raw: there are few of them, each is an exact measure on a
    /// fixed validation subset, and smoothing would blur the very drop (forgetting)
    /// this panel is for. The learning rate is a schedule, not a noisy measure.
    fn smoothed(self) -> bool {
        matches!(self, Metric::Loss(_) | Metric::ImagesPerSec)
    }

    /// The fixed axis of a bounded measure (scores in 0–1, the cosine in −1…1),
    /// drawn unless the user zooms to the data.
    fn fixed_range(self) -> Option<(f64, f64)> {
        match self {
            Metric::Score(_) => Some((0.0, 1.0)),
            Metric::Conflict | Metric::ConflictDetCls | Metric::ConflictSegCls => Some((-1.0, 1.0)),
            _ => None,
        }
    }

    fn format_value(self, value: f64) -> String {
        match self {
            Metric::Lr => format!("{value:.3e}"),
            Metric::ImagesPerSec => format!("{value:.1}"),
            _ => format!("{value:.4}"),
        }
    }
}

impl CurvesPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        let runs = shown_runs(&shared.session.records, &shared.selection);
        let exports = shared.session.runs_root().join("exports");
        if self.awaiting_screenshot {
            if let Some(notice) = self.take_screenshot(ui, &exports) {
                shared.notifications.push(notice);
            }
        }
        ui.horizontal(|ui| {
            ui.add(egui::Slider::new(&mut self.smoothing.0, 0.0..=0.99).text("smoothing"))
                .on_hover_text("Exponential moving average of the losses and images/s (debiased, as TensorBoard does); evaluations and the learning rate are drawn raw");
            ui.checkbox(&mut self.envelope, "min/max band")
                .on_hover_text("Behind each smoothed curve, the range of the raw values it averages");
            ui.checkbox(&mut self.zoom_metrics, "zoom metrics to data").on_hover_text(
                "Off: mAP50 and mIoU share a fixed 0–1 axis and the task conflict −1…1, so runs and early evaluations compare at a glance",
            );
            ui.separator();
            let any = !runs.is_empty();
            if ui.add_enabled(any, egui::Button::new("Export PNG")).on_hover_text("A picture of the plots").clicked() {
                self.request_screenshot(ui.ctx());
            }
            if ui.add_enabled(any, egui::Button::new("Export CSV")).on_hover_text("The raw data of the runs shown: run, metric, step, value").clicked() {
                shared.notifications.push(export_csv(&exports, &runs));
            }
        });
        if runs.is_empty() {
            ui.label("No run to show: check runs in the list, or start one.");
        }
        let markers = marker_lines(&runs);
        let footer_lines = 1 + markers.len();
        let row_height = ui.text_style_height(&egui::TextStyle::Body) + ui.spacing().item_spacing.y;
        let plot_size = plot_size(ui, footer_lines as f32 * row_height, plot_rows(&runs).len());
        let rect = ui.scope(|ui| self.plots(ui, &runs, plot_size)).response.rect;
        // Only what is on screen is in the screenshot.
        self.plots_rect = Some(rect.intersect(ui.clip_rect()));
        ui.label(summary(&runs));
        for line in markers {
            ui.label(line);
        }
    }

    /// In [`plot_rows`]: pairs, and the conflict meter across the whole width.
    fn plots(&mut self, ui: &mut egui::Ui, runs: &[&RunRecord], size: egui::Vec2) {
        self.lines.forget_all_but(runs);
        let mut curves = Metric::ALL.map(|m| self.lines.lines(runs, m, self.smoothing.0));
        let marks = grouped_markers(runs);
        let style = PlotStyle { envelope: self.envelope, unit_axis: !self.zoom_metrics };
        let spacing = ui.spacing().item_spacing.x;
        for row in plot_rows(runs) {
            // The row spans two plots and their gap, shared by its plots.
            let n = row.len() as f32;
            let width = (size.x * 2.0 + spacing * (2.0 - n)) / n;
            ui.horizontal(|ui| {
                for metric in row {
                    let index = Metric::ALL.iter().position(|&m| m == metric).expect("every metric is in ALL");
                    let lines = std::mem::take(&mut curves[index]);
                    ui.vertical(|ui| {
                        // A title longer than its plot is cut short (whole on hover), not widening the row.
                        ui.set_width(width);
                        ui.add(egui::Label::new(egui::RichText::new(metric.title()).strong()).truncate());
                        metric_plot(ui, metric, lines, &marks, egui::vec2(width, size.y), style);
                    });
                }
            });
        }
    }

    fn request_screenshot(&mut self, ctx: &egui::Context) {
        self.awaiting_screenshot = true;
        ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(egui::UserData::new(CurvesScreenshot)));
    }

    /// Crops and saves the screenshot once it has come back (a frame or two later).
    fn take_screenshot(&mut self, ui: &egui::Ui, exports: &Path) -> Option<Notice> {
        let image = ui.input(|i| {
            i.events.iter().find_map(|event| match event {
                egui::Event::Screenshot { image, user_data, .. } if user_data.data.as_ref().is_some_and(|d| d.is::<CurvesScreenshot>()) => {
                    Some(image.clone())
                }
                _ => None,
            })
        })?;
        self.awaiting_screenshot = false;
        let cropped = self.plots_rect.and_then(|rect| crop(&image, rect, ui.ctx().pixels_per_point()));
        let Some(cropped) = cropped else {
            return Some(Notice::error("Export PNG: the plots are not on screen"));
        };
        let path = export_path(exports, "png");
        Some(match save_png(&cropped, &path) {
            Ok(()) => Notice::info(format!("plots saved to {}", path.display())),
            Err(error) => Notice::error(format!("Export PNG: {error:#}")),
        })
    }
}

/// One run's curve on one plot, ready to draw.
struct PlotLine {
    name: String,
    color: Color32,
    /// Smoothed where the metric is smoothed, else raw; decimated.
    points: Vec<[f64; 2]>,
    /// The raw curve and its min/max band, drawn faint behind a smoothed one.
    behind: Option<Arc<RawCurve>>,
}

struct RawCurve {
    points: Vec<[f64; 2]>,
    band: Band,
}

/// Per bucket of raw points: the bucket's middle step and its lowest and highest value.
#[derive(Debug, Default, PartialEq)]
struct Band {
    steps: Vec<f64>,
    low: Vec<f64>,
    high: Vec<f64>,
}

/// What the panel's toggles change in every plot.
#[derive(Clone, Copy)]
struct PlotStyle {
    envelope: bool,
    /// mAP50 and mIoU on a fixed 0–1 axis.
    unit_axis: bool,
}

/// A vertical marker shared by every run that has it at the same step.
#[derive(Clone)]
struct MarkGroup {
    step: usize,
    label: String,
    color: Color32,
    /// How many other labels sit at the same step before this one (stacks the texts).
    slot: usize,
}

/// The runs to draw: the checked ones; with none checked, the focused run; with
/// none focused, the runs training now.
fn shown_runs<'a>(records: &'a [RunRecord], selection: &Selection) -> Vec<&'a RunRecord> {
    if !selection.checked.is_empty() {
        return records.iter().filter(|r| selection.checked.contains(&r.name)).collect();
    }
    if let Some(focused) = selection.focused.as_ref().and_then(|name| records.iter().find(|r| &r.name == name)) {
        return vec![focused];
    }
    records.iter().filter(|r| r.status.is_live()).collect()
}

/// The smoothed, decimated curves, kept between frames: a finished run's never
/// change, and redoing four 20000-step runs every frame took 20 ms.
#[derive(Default)]
struct LineCache(HashMap<(String, Metric), CachedLine>);

struct CachedLine {
    source: SourceKey,
    points: Vec<[f64; 2]>,
    behind: Option<Arc<RawCurve>>,
}

/// What the cached points were made from. A run only grows, or (resumed) drops
/// its tail and grows again, so its length and last point tell a change.
#[derive(PartialEq)]
struct SourceKey {
    len: usize,
    /// Bit patterns, so that a NaN equals itself.
    last: Option<[u64; 2]>,
    smoothing: u64,
}

impl LineCache {
    fn lines(&mut self, runs: &[&RunRecord], metric: Metric, smoothing: f64) -> Vec<PlotLine> {
        runs.iter()
            .enumerate()
            .map(|(index, run)| {
                let raw = metric.points(&run.series);
                let source = SourceKey {
                    len: raw.len(),
                    last: raw.last().map(|p| [p[0].to_bits(), p[1].to_bits()]),
                    smoothing: if metric.smoothed() { smoothing.to_bits() } else { 0 },
                };
                let key = (run.name.clone(), metric);
                let (points, behind) = match self.0.get(&key) {
                    Some(cached) if cached.source == source => (cached.points.clone(), cached.behind.clone()),
                    _ => {
                        let smoothed = metric.smoothed() && smoothing > 0.0;
                        let points = if smoothed { decimate(&smooth(raw, smoothing), MAX_POINTS) } else { decimate(raw, MAX_POINTS) };
                        let behind = smoothed.then(|| Arc::new(RawCurve { points: decimate(raw, MAX_POINTS), band: band(raw, BAND_BUCKETS) }));
                        self.0.insert(key, CachedLine { source, points: points.clone(), behind: behind.clone() });
                        (points, behind)
                    }
                };
                PlotLine { name: run.name.clone(), color: run_color(index), points, behind }
            })
            .collect()
    }

    fn forget_all_but(&mut self, runs: &[&RunRecord]) {
        self.0.retain(|(name, _), _| runs.iter().any(|r| &r.name == name));
    }
}

fn grouped_markers(runs: &[&RunRecord]) -> Vec<MarkGroup> {
    let mut groups: Vec<MarkGroup> = Vec::new();
    for (index, run) in runs.iter().enumerate() {
        for marker in &run.markers {
            match groups.iter_mut().find(|g| g.step == marker.step && g.label == marker.label) {
                // Several runs changed alike at this step: one neutral marker for all.
                Some(group) => group.color = Color32::GRAY,
                None => groups.push(MarkGroup { step: marker.step, label: marker.label.clone(), color: run_color(index), slot: 0 }),
            }
        }
    }
    groups.sort_by(|a, b| (a.step, &a.label).cmp(&(b.step, &b.label)));
    for i in 1..groups.len() {
        if groups[i].step == groups[i - 1].step {
            groups[i].slot = groups[i - 1].slot + 1;
        }
    }
    groups
}

/// The plots' layout, row by row, for the tasks the runs shown have: losses
/// and metrics of detection and segmentation side by side when they are
/// trained together, a loss–metric row per task otherwise; the conflict
/// meters of the pairs they have.
fn plot_rows(runs: &[&RunRecord]) -> Vec<Vec<Metric>> {
    let tasks: TaskSet = runs.iter().flat_map(|r| r.config.data.run_tasks().iter()).collect();
    let mut rows = Vec::new();
    if tasks.contains(Task::Det) && tasks.contains(Task::Seg) {
        rows.extend([vec![Metric::Loss(Task::Det), Metric::Loss(Task::Seg)], vec![Metric::Score(Task::Det), Metric::Score(Task::Seg)]]);
    } else {
        for task in [Task::Det, Task::Seg].into_iter().filter(|&task| tasks.contains(task)) {
            rows.push(vec![Metric::Loss(task), Metric::Score(task)]);
        }
    }
    if tasks.contains(Task::Cls) {
        rows.push(vec![Metric::Loss(Task::Cls), Metric::Score(Task::Cls)]);
    }
    let pairs = [
        (Metric::Conflict, runs.iter().any(|r| r.config.data.run_tasks().contains(Task::Det) && r.config.data.run_tasks().contains(Task::Seg))),
        (Metric::ConflictDetCls, runs.iter().any(|r| !r.series.conflict_det_cls.is_empty())),
        (Metric::ConflictSegCls, runs.iter().any(|r| !r.series.conflict_seg_cls.is_empty())),
    ];
    let conflict: Vec<Metric> = pairs.into_iter().filter(|&(_, shown)| shown).map(|(metric, _)| metric).collect();
    if !conflict.is_empty() {
        rows.push(conflict);
    }
    rows.push(vec![Metric::Lr, Metric::ImagesPerSec]);
    rows
}

/// The size of one plot of a pair: half the width, a share of the height the footer leaves.
fn plot_size(ui: &egui::Ui, footer_height: f32, rows: usize) -> egui::Vec2 {
    let available = ui.available_size();
    let spacing = ui.spacing().item_spacing;
    let title = ui.text_style_height(&egui::TextStyle::Body) + spacing.y;
    let width = ((available.x - spacing.x) / 2.0).max(MIN_PLOT_HEIGHT);
    // Inside an unbounded parent there is no height to share out.
    let rows = rows as f32;
    let height = if available.y.is_finite() { (available.y - footer_height) / rows - title - spacing.y } else { 2.0 * MIN_PLOT_HEIGHT };
    egui::vec2(width, height.max(MIN_PLOT_HEIGHT))
}

/// Draws one plot; returns the bounds it showed.
fn metric_plot(
    ui: &mut egui::Ui,
    metric: Metric,
    lines: Vec<PlotLine>,
    marks: &[MarkGroup],
    size: egui::Vec2,
    style: PlotStyle,
) -> PlotBounds {
    let fixed = metric.fixed_range().filter(|_| style.unit_axis);
    let y_range = fixed.or_else(|| y_range(&lines));
    let marks = marks.to_vec();
    let mut plot = Plot::new(("curves", metric.key(), fixed.is_some()));
    if let Some((low, high)) = fixed {
        plot = plot.include_y(low).include_y(high);
    }
    plot
        .width(size.x)
        .height(size.y)
        .legend(Legend::default())
        .link_axis("curves-x", [true, false])
        .link_cursor("curves-x", [true, false])
        // The wheel scrolls the page; zoom stays on ctrl + wheel and dragging.
        .allow_scroll(false)
        .label_formatter(move |pos: &HoverPosition<'_>| Some(hover_text(metric, pos)))
        .show(ui, move |plot_ui| {
            // Evaluations are sparse: mark each one, so a single evaluation shows too.
            let mark_points = matches!(metric, Metric::Score(_) | Metric::Conflict | Metric::ConflictDetCls | Metric::ConflictSegCls);
            for line in lines {
                if let Some(behind) = &line.behind {
                    // Unnamed, so the legend keeps the smoothed line's colour.
                    if style.envelope {
                        let band = &behind.band;
                        let fill = line.color.gamma_multiply(0.15);
                        plot_ui.add(FilledArea::new("", &band.steps, &band.low, &band.high).fill_color(fill).allow_hover(false));
                    }
                    let faint = Line::new("", behind.points.clone()).color(line.color.gamma_multiply(0.3));
                    plot_ui.line(faint.id(egui::Id::new(("raw", &line.name))).allow_hover(false));
                }
                if mark_points {
                    let points = Points::new(line.name.clone(), line.points.clone()).radius(2.5).color(line.color);
                    plot_ui.points(points.id(egui::Id::new(("eval points", &line.name))));
                }
                plot_ui.line(Line::new(line.name, line.points).color(line.color));
            }
            for (i, mark) in marks.into_iter().enumerate() {
                let x = mark.step as f64;
                plot_ui.vline(VLine::new("", x).id(egui::Id::new(("marker", i))).color(mark.color).style(LineStyle::dashed_loose()));
                // The label sits at the top of the data, so it cannot push the plot's bounds out.
                if let Some((low, high)) = y_range {
                    let y = high - mark.slot as f64 * 0.1 * (high - low);
                    let text = egui::RichText::new(mark.label).small();
                    plot_ui.text(Text::new("", PlotPoint::new(x, y), text).anchor(egui::Align2::LEFT_TOP).color(mark.color).id(egui::Id::new(("marker text", i))));
                }
            }
        })
        .transform
        .bounds()
        .to_owned()
}

/// The lowest and highest finite values drawn, if any.
fn y_range(lines: &[PlotLine]) -> Option<(f64, f64)> {
    let values = lines.iter().flat_map(|l| l.points.iter().map(|p| p[1])).filter(|y| y.is_finite());
    values.fold(None, |range, y| match range {
        None => Some((y, y)),
        Some((low, high)) => Some((f64::min(low, y), f64::max(high, y))),
    })
}

fn hover_text(metric: Metric, position: &HoverPosition<'_>) -> String {
    match position {
        HoverPosition::NearDataPoint { plot_name, position, .. } => {
            format!("{plot_name}\nstep {:.0}\n{}: {}", position.x, metric.title(), metric.format_value(position.y))
        }
        HoverPosition::Elsewhere { position } => format!("step {:.0}\n{}", position.x, metric.format_value(position.y)),
    }
}

/// `"{runs} runs · {points} points · {evaluations} evaluations"`, counting the raw data.
fn summary(runs: &[&RunRecord]) -> String {
    let points: usize = runs.iter().map(|r| Metric::ALL.iter().map(|m| m.points(&r.series).len()).sum::<usize>()).sum();
    let evals: usize = runs.iter().map(|r| r.evals.len()).sum();
    format!("{} runs · {points} points · {evals} evaluations", runs.len())
}

/// `"step {step}: {run}: {label}"` for every marker of the runs shown, by step.
fn marker_lines(runs: &[&RunRecord]) -> Vec<String> {
    let mut markers: Vec<(usize, &str, &str)> =
        runs.iter().flat_map(|r| r.markers.iter().map(|m| (m.step, r.name.as_str(), m.label.as_str()))).collect();
    // Stable: runs keep their list order within a step.
    markers.sort_by_key(|m| m.0);
    markers.into_iter().map(|(step, run, label)| format!("step {step}: {run}: {label}")).collect()
}

/// The colour of the `index`-th shown run: Tableau's 10 categorical colours,
/// so runs overlaid together are told apart at a glance.
fn run_color(index: usize) -> Color32 {
    const PALETTE: [(u8, u8, u8); 10] = [
        (78, 121, 167),
        (242, 142, 43),
        (225, 87, 89),
        (118, 183, 178),
        (89, 161, 79),
        (237, 201, 72),
        (176, 122, 161),
        (255, 157, 167),
        (156, 117, 95),
        (186, 176, 172),
    ];
    let (r, g, b) = PALETTE[index % PALETTE.len()];
    Color32::from_rgb(r, g, b)
}

/// TensorBoard's smoothing: an exponential moving average divided by
/// `1 - weight^n`, so the first points are not pulled towards zero.
/// Non-finite values pass through and do not enter the average.
fn smooth(points: &[[f64; 2]], weight: f64) -> Vec<[f64; 2]> {
    let weight = weight.clamp(0.0, 0.99);
    let mut average = 0.0;
    let mut weight_power = 1.0;
    points
        .iter()
        .map(|&[x, y]| {
            if !y.is_finite() {
                return [x, y];
            }
            average = average * weight + (1.0 - weight) * y;
            weight_power *= weight;
            [x, average / (1.0 - weight_power)]
        })
        .collect()
}

/// At most `max` points (4 at least): the first and the last, and between them the
/// lowest and the highest of each bucket, in order, so spikes and dips survive.
fn decimate(points: &[[f64; 2]], max: usize) -> Vec<[f64; 2]> {
    let max = max.max(4);
    if points.len() <= max {
        return points.to_vec();
    }
    let inner = &points[1..points.len() - 1];
    let buckets = (max - 2) / 2;
    let bucket_size = inner.len().div_ceil(buckets);
    let mut out = Vec::with_capacity(max);
    out.push(points[0]);
    for bucket in inner.chunks(bucket_size) {
        let by_value = |a: &(usize, &[f64; 2]), b: &(usize, &[f64; 2])| a.1[1].total_cmp(&b.1[1]);
        let low = bucket.iter().enumerate().min_by(by_value).map_or(0, |(i, _)| i);
        let high = bucket.iter().enumerate().max_by(by_value).map_or(0, |(i, _)| i);
        out.push(bucket[low.min(high)]);
        if low != high {
            out.push(bucket[low.max(high)]);
        }
    }
    out.push(points[points.len() - 1]);
    out
}

/// Buckets in a min/max band: coarser than the curve, so the band reads as a range.
const BAND_BUCKETS: usize = 200;

/// The lowest and highest finite value of each of about `buckets` runs of
/// consecutive points, at the bucket's middle step.
fn band(points: &[[f64; 2]], buckets: usize) -> Band {
    let mut band = Band::default();
    if points.is_empty() {
        return band;
    }
    for bucket in points.chunks(points.len().div_ceil(buckets.max(1))) {
        let values = bucket.iter().map(|p| p[1]).filter(|v| v.is_finite());
        let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
        if low <= high {
            band.steps.push(0.5 * (bucket[0][0] + bucket[bucket.len() - 1][0]));
            band.low.push(low);
            band.high.push(high);
        }
    }
    band
}

/// Long format, one row per point: `run,metric,step,value`, the raw (unsmoothed) data.
fn csv_text(runs: &[&RunRecord]) -> String {
    let mut text = String::from("run,metric,step,value\n");
    for run in runs {
        let name = csv_field(&run.name);
        for metric in Metric::ALL {
            for &[step, value] in metric.points(&run.series) {
                let _ = writeln!(text, "{name},{},{},{value}", metric.key(), step as u64);
            }
        }
    }
    text
}

fn export_csv(exports: &Path, runs: &[&RunRecord]) -> Notice {
    super::save_csv(&export_path(exports, "csv"), &csv_text(runs), "curves data")
}

/// `<exports>/curves-<unix seconds>.<extension>`.
fn export_path(exports: &Path, extension: &str) -> PathBuf {
    let seconds = super::unix_seconds();
    exports.join(format!("curves-{seconds}.{extension}"))
}

/// The part of a screenshot under `rect` (in points), clipped to the image;
/// `None` when nothing of it is in the image.
fn crop(image: &ColorImage, rect: Rect, pixels_per_point: f32) -> Option<ColorImage> {
    let [width, height] = image.size;
    if image.pixels.len() != width * height {
        return None;
    }
    // Outward to whole pixels, then into the image (a NaN becomes 0).
    let to_pixel = |v: f32, round: fn(f32) -> f32, limit: usize| round(v * pixels_per_point).clamp(0.0, limit as f32) as usize;
    let (left, right) = (to_pixel(rect.min.x, f32::floor, width), to_pixel(rect.max.x, f32::ceil, width));
    let (top, bottom) = (to_pixel(rect.min.y, f32::floor, height), to_pixel(rect.max.y, f32::ceil, height));
    if left >= right || top >= bottom {
        return None;
    }
    let pixels = (top..bottom).flat_map(|row| image.pixels[row * width + left..row * width + right].iter().copied()).collect();
    Some(ColorImage::new([right - left, bottom - top], pixels))
}

fn save_png(image: &ColorImage, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let bytes: Vec<u8> = image.pixels.iter().flat_map(|p| p.to_srgba_unmultiplied()).collect();
    let [width, height] = image.size;
    let buffer = image::RgbaImage::from_raw(u32::try_from(width)?, u32::try_from(height)?, bytes).context("the screenshot's size does not match its pixels")?;
    buffer.save_with_format(path, image::ImageFormat::Png).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::run_record::{Marker, RunStatus};
    use crate::train::config::TrainConfig;

    fn record(name: &str, status: RunStatus) -> RunRecord {
        RunRecord::new(Path::new("runs").join(name).as_path(), TrainConfig::load_preset("quick", &[]).unwrap(), status)
    }

    fn close(a: &[[f64; 2]], b: &[[f64; 2]]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(p, q)| p[0] == q[0] && (p[1] - q[1]).abs() < 1e-12)
    }

    #[test]
    fn the_layout_has_the_rows_of_the_tasks_the_runs_train() {
        use Metric::*;
        let (det, seg, cls) = (Task::Det, Task::Seg, Task::Cls);
        let two = record("two", RunStatus::Completed);
        assert_eq!(plot_rows(&[&two]), [vec![Loss(det), Loss(seg)], vec![Score(det), Score(seg)], vec![Conflict], vec![Lr, ImagesPerSec]]);
        let mut seg_only = record("seg", RunStatus::Completed);
        seg_only.config.data.tasks = Some(Task::Seg.into());
        assert_eq!(plot_rows(&[&seg_only]), [vec![Loss(seg), Score(seg)], vec![Lr, ImagesPerSec]]);
        let mut three = record("three", RunStatus::Completed);
        three.config = TrainConfig::load_preset("allinone", &[]).unwrap();
        three.series.conflict_det_cls = vec![[1.0, 0.5]];
        three.series.conflict_seg_cls = vec![[1.0, 0.5]];
        let rows = plot_rows(&[&seg_only, &three]);
        assert_eq!(rows[2..], [vec![Loss(cls), Score(cls)], vec![Conflict, ConflictDetCls, ConflictSegCls], vec![Lr, ImagesPerSec]]);
        let titles: Vec<String> = [Loss(det), Score(det), Score(cls)].iter().map(|m| m.title()).collect();
        assert_eq!(titles, ["detection loss", "mAP50", "classification top-1"]);
    }

    #[test]
    fn smoothing_is_a_debiased_moving_average() {
        let raw = [[1.0, 1.0], [2.0, 3.0], [3.0, f64::NAN], [4.0, 5.0]];
        assert!(close(&smooth(&raw[..2], 0.0), &raw[..2]));
        // 0.5: (0.5·1)/0.5 = 1; (0.5·0.5 + 0.5·3)/0.75 = 7/3; NaN passes; (0.5·1.75 + 0.5·5)/0.875 = 27/7.
        let smoothed = smooth(&raw, 0.5);
        assert!(close(&smoothed[..2], &[[1.0, 1.0], [2.0, 7.0 / 3.0]]));
        assert!(smoothed[2][1].is_nan());
        assert!((smoothed[3][1] - 27.0 / 7.0).abs() < 1e-12);
        // Debiasing keeps a constant series constant from the first point on.
        assert!(close(&smooth(&[[0.0, 2.0], [1.0, 2.0], [2.0, 2.0]], 0.99), &[[0.0, 2.0], [1.0, 2.0], [2.0, 2.0]]));
    }

    #[test]
    fn decimation_keeps_the_ends_and_each_buckets_extremes() {
        let points: Vec<[f64; 2]> = [0.0, 5.0, 1.0, 9.0, 2.0, 3.0, 8.0, 4.0].iter().enumerate().map(|(i, &y)| [i as f64, y]).collect();
        // Inner points 1..=6 in two buckets of three: [5, 1, 9] keeps 1 and 9, [2, 3, 8] keeps 2 and 8.
        let kept: Vec<f64> = decimate(&points, 6).iter().map(|p| p[0]).collect();
        assert_eq!(kept, [0.0, 2.0, 3.0, 4.0, 6.0, 7.0]);
        assert_eq!(decimate(&points, 8), points);
        let long: Vec<[f64; 2]> = (0..100_000).map(|i| [i as f64, ((i * 7919) % 1000) as f64]).collect();
        let decimated = decimate(&long, MAX_POINTS);
        assert!(decimated.len() <= MAX_POINTS);
        assert!(decimated.windows(2).all(|w| w[0][0] < w[1][0]));
        assert_eq!(decimated.last(), long.last());
        assert!(decimated.iter().any(|p| p[1] == 999.0) && decimated.iter().any(|p| p[1] == 0.0));
    }

    #[test]
    fn the_cache_follows_new_points_and_the_smoothing() {
        let mut run = record("a", RunStatus::Running);
        run.series.loss[Task::Det] = vec![[1.0, 1.0], [2.0, 3.0]];
        run.series.metric[Task::Det] = vec![[2.0, 0.5]];
        let mut cache = LineCache::default();
        let det = |cache: &mut LineCache, run: &RunRecord, w: f64| cache.lines(&[run], Metric::Loss(Task::Det), w).remove(0).points;
        assert_eq!(det(&mut cache, &run, 0.0), run.series.loss[Task::Det]);
        run.series.loss[Task::Det].push([3.0, 5.0]);
        assert_eq!(det(&mut cache, &run, 0.0).len(), 3);
        assert!(close(&det(&mut cache, &run, 0.5), &smooth(&run.series.loss[Task::Det], 0.5)));
        // The raw curve stays behind a smoothed one, with its band.
        let line = cache.lines(&[&run], Metric::Loss(Task::Det), 0.5).remove(0);
        let behind = line.behind.expect("raw curve behind the smoothed one");
        assert_eq!(behind.points, run.series.loss[Task::Det]);
        assert_eq!(behind.band.low.len(), 3);
        assert!(cache.lines(&[&run], Metric::Loss(Task::Det), 0.0).remove(0).behind.is_none(), "unsmoothed: nothing behind");
        // Evaluations are drawn raw whatever the smoothing.
        let map = cache.lines(&[&run], Metric::Score(Task::Det), 0.9).remove(0);
        assert_eq!(map.points, [[2.0, 0.5]]);
        assert!(map.behind.is_none());
        cache.forget_all_but(&[]);
        assert!(cache.0.is_empty());
    }

    #[test]
    fn the_band_holds_each_buckets_extremes() {
        let points: Vec<[f64; 2]> = (0..10).map(|i| [i as f64, if i % 2 == 0 { 1.0 } else { 3.0 }]).collect();
        let b = band(&points, 2);
        assert_eq!(b, Band { steps: vec![2.0, 7.0], low: vec![1.0, 1.0], high: vec![3.0, 3.0] });
        let with_nan = [[0.0, f64::NAN], [1.0, 2.0]];
        assert_eq!(band(&with_nan, 1), Band { steps: vec![0.5], low: vec![2.0], high: vec![2.0] });
        assert_eq!(band(&[], 4), Band::default());
    }

    /// One evaluation at 0: the metric plot still spans 0–1 (not ±50 around a
    /// flat point), unless the user asks to zoom to the data.
    #[test]
    fn metric_plots_keep_a_unit_axis_unless_zoomed() {
        let bounds = |metric: Metric, unit_axis: bool| {
            let mut shown = None;
            let mut harness = egui_kittest::Harness::new_ui(|ui| {
                let line = PlotLine { name: "a".into(), color: Color32::RED, points: vec![[200.0, 0.0]], behind: None };
                let style = PlotStyle { envelope: false, unit_axis };
                shown = Some(metric_plot(ui, metric, vec![line], &[], egui::vec2(300.0, 200.0), style));
            });
            harness.step();
            drop(harness);
            shown.unwrap()
        };
        let unit = bounds(Metric::Score(Task::Det), true);
        assert!(unit.min()[1] <= 0.0 && (1.0..1.2).contains(&unit.max()[1]), "{unit:?}");
        let zoomed = bounds(Metric::Score(Task::Seg), false);
        assert!(zoomed.max()[1] < 1.0, "{zoomed:?}");
        // Losses are never pinned to 0–1.
        let loss = bounds(Metric::Loss(Task::Det), true);
        assert!(loss.max()[1] < 1.0, "{loss:?}");
    }

    #[test]
    fn csv_is_long_format_raw_data_with_quoted_names() {
        let mut run = record("a,b", RunStatus::Completed);
        run.series.loss[Task::Det] = vec![[1.0, 2.5]];
        run.series.lr = vec![[1.0, 0.001]];
        run.series.metric[Task::Det] = vec![[10.0, 0.25]];
        assert_eq!(csv_text(&[&run]), "run,metric,step,value\n\"a,b\",det_loss,1,2.5\n\"a,b\",map50,10,0.25\n\"a,b\",lr,1,0.001\n");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn the_checked_runs_else_the_focused_else_the_live_ones() {
        let records = vec![record("a", RunStatus::Completed), record("b", RunStatus::Running), record("c", RunStatus::Paused)];
        let names = |selection: &Selection| shown_runs(&records, selection).iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        let mut selection = Selection::default();
        assert_eq!(names(&selection), ["b", "c"]);
        selection.focused = Some("a".into());
        assert_eq!(names(&selection), ["a"]);
        selection.checked = ["c".to_string(), "a".to_string(), "gone".to_string()].into();
        assert_eq!(names(&selection), ["a", "c"]);
    }

    #[test]
    fn summary_and_marker_lines() {
        let mut a = record("a", RunStatus::Completed);
        a.series.loss[Task::Det] = vec![[1.0, 2.0], [2.0, 1.0]];
        a.series.metric[Task::Det] = vec![[2.0, 0.3]];
        a.markers = vec![Marker { step: 300, label: "sequential segmentation (lr ×0.1)".into() }];
        let mut b = record("b", RunStatus::Completed);
        b.markers = vec![Marker { step: 100, label: "learning rate: 1.00e-3".into() }];
        assert_eq!(summary(&[&a, &b]), "2 runs · 3 points · 0 evaluations");
        assert_eq!(marker_lines(&[&a, &b]), ["step 100: b: learning rate: 1.00e-3", "step 300: a: sequential segmentation (lr ×0.1)"]);
        b.markers.push(Marker { step: 300, label: "sequential segmentation (lr ×0.1)".into() });
        let groups = grouped_markers(&[&a, &b]);
        assert_eq!(groups.len(), 2);
        assert_eq!((groups[1].step, groups[1].color), (300, Color32::GRAY));
        let colors: Vec<Color32> = (0..10).map(run_color).collect();
        assert!(colors.iter().enumerate().all(|(i, c)| !colors[..i].contains(c)), "ten overlaid runs, ten colours");
        assert_eq!(run_color(10), run_color(0));
    }

    #[test]
    fn crop_takes_the_rect_in_pixels_clipped_to_the_image() {
        // 4×3, each pixel's red channel is its index.
        let image = ColorImage::new([4, 3], (0..12).map(|i| Color32::from_rgb(i, 0, 0)).collect());
        let red = |image: &ColorImage| image.pixels.iter().map(|p| p.r()).collect::<Vec<_>>();
        let one = crop(&image, Rect::from_min_max(egui::pos2(1.0, 1.0), egui::pos2(3.0, 2.0)), 1.0).unwrap();
        assert_eq!((one.size, red(&one)), ([2, 1], vec![5, 6]));
        // At 2 pixels a point, and reaching past the right edge.
        let two = crop(&image, Rect::from_min_max(egui::pos2(0.5, 0.0), egui::pos2(9.0, 1.0)), 2.0).unwrap();
        assert_eq!((two.size, red(&two)), ([3, 2], vec![1, 2, 3, 5, 6, 7]));
        assert!(crop(&image, Rect::from_min_max(egui::pos2(5.0, 0.0), egui::pos2(6.0, 1.0)), 1.0).is_none());
        assert!(crop(&image, Rect::NOTHING, 1.0).is_none());
    }

    #[test]
    fn png_is_written_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = export_path(&dir.path().join("exports"), "png");
        let image = ColorImage::new([2, 1], vec![Color32::from_rgb(10, 20, 30), Color32::WHITE]);
        save_png(&image, &path).unwrap();
        let back = image::open(&path).unwrap().to_rgba8();
        assert_eq!((back.width(), back.height()), (2, 1));
        assert_eq!(back.get_pixel(0, 0).0, [10, 20, 30, 255]);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("curves-") && name.ends_with(".png"), "{name}");
    }

    #[test]
    fn csv_export_names_its_file_in_the_notice() {
        let dir = tempfile::tempdir().unwrap();
        let run = record("a", RunStatus::Completed);
        let notice = export_csv(&dir.path().join("exports"), &[&run]);
        assert_eq!(notice.level, crate::session::NoticeLevel::Info, "{}", notice.text);
        let file = std::fs::read_dir(dir.path().join("exports")).unwrap().next().unwrap().unwrap().path();
        assert!(notice.text.contains(&file.display().to_string()));
        assert_eq!(std::fs::read_to_string(file).unwrap(), "run,metric,step,value\n");
    }

    #[test]
    fn the_panel_lists_markers_and_exports_the_plots_as_png() {
        use egui_kittest::kittest::Queryable;
        let dir = tempfile::tempdir().unwrap();
        let mut shared = Shared::new(crate::gui::settings::Settings { runs_dir: dir.path().into(), ..Default::default() });
        let mut a = record("a", RunStatus::Completed);
        a.series.loss[Task::Det] = (0..5000).map(|i| [i as f64, 1.0 / (1.0 + i as f64)]).collect();
        a.markers = vec![Marker { step: 300, label: "sequential segmentation (lr ×0.1)".into() }];
        shared.session.records.push(a);
        shared.session.records.push(record("b", RunStatus::Completed));
        shared.selection.checked = ["a".to_string(), "b".to_string()].into();
        let mut harness = egui_kittest::Harness::builder()
            .with_size([1000.0, 800.0])
            .build_ui_state(|ui, (panel, shared): &mut (CurvesPanel, Shared)| panel.ui(ui, shared), (CurvesPanel::default(), shared));
        harness.step();
        harness.get_by_label("2 runs · 5000 points · 0 evaluations");
        harness.get_by_label("step 300: a: sequential segmentation (lr ×0.1)");

        harness.get_by_label("Export PNG").click();
        harness.step();
        // No renderer here: hand the panel the screenshot eframe would send.
        let image = std::sync::Arc::new(ColorImage::filled([1000, 800], Color32::RED));
        let user_data = egui::UserData::new(CurvesScreenshot);
        harness.event(egui::Event::Screenshot { viewport_id: egui::ViewportId::ROOT, user_data, image });
        harness.step();
        let (panel, shared) = harness.state();
        assert!(!panel.awaiting_screenshot);
        let (notice, _) = shared.notifications.items.last().expect("a notice");
        assert_eq!(notice.level, crate::session::NoticeLevel::Info, "{}", notice.text);
        let file = std::fs::read_dir(dir.path().join("exports")).unwrap().next().unwrap().unwrap().path();
        assert!(notice.text.contains(&file.display().to_string()), "{}", notice.text);
        let png = image::open(&file).unwrap().to_rgba8();
        let rect = panel.plots_rect.unwrap();
        // Whole pixels, rounded outwards.
        assert!((png.width() as f32 - rect.width()).abs() <= 1.0 && (png.height() as f32 - rect.height()).abs() <= 1.0);
        assert_eq!(png.get_pixel(0, 0).0, [255, 0, 0, 255]);
    }
}
