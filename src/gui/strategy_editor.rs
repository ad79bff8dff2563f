//! The strategy editor of Setup: the strategy kind, and its parameters as
//! fields (the sequence, loss weighting, pseudo-labels and each strategy's
//! own), each with the error that names its key.

use std::path::PathBuf;

use eframe::egui;

use crate::train::pseudo::PseudoLabels;
use crate::train::strategy::{
    FreezeScope, GradientCombination, RunShape, SequenceMut, StrategyConfig, Task, TaskSet, TaskWeights, Weighting, EWC_LAMBDA, FISHER_BATCHES, REPLAY_BUFFER,
    REPLAY_EVERY,
};

/// The strategy kinds, in the order the selector lists them.
const STRATEGIES: [&str; 8] = ["alternate", "joint", "sequential", "freeze", "lwf", "ewc", "replay", "pseudo"];

/// The strategy selector and its parameters.
pub fn strategy_editor(ui: &mut egui::Ui, strategy: &mut StrategyConfig, run: RunShape, error: Option<&str>) {
    ui.horizontal(|ui| {
        egui::ComboBox::from_label("Strategy").selected_text(strategy.name()).show_ui(ui, |ui| {
            for kind in STRATEGIES {
                if ui.selectable_label(strategy.name() == kind, kind).clicked() && strategy.name() != kind {
                    *strategy = default_strategy(kind, strategy, run.steps);
                }
            }
        });
    });
    // Three tasks: the order and every switch step are spelled out, to edit.
    let schedule = strategy.schedule(run).filter(|_| run.tasks.len() > 2);
    if let (Some(schedule), Some(sequence)) = (schedule, strategy.sequence_mut()) {
        if sequence.order.is_empty() {
            (*sequence.order, *sequence.switch_steps) = (schedule.order, schedule.switches);
        }
    }
    egui::Grid::new("strategy parameters").num_columns(3).spacing([12.0, 4.0]).show(ui, |ui| {
        if let Some(sequence) = strategy.sequence_mut() {
            sequence_rows(ui, sequence, run.tasks, error);
        }
        match strategy {
            StrategyConfig::Alternate { period, weighting, weights, det_weight, seg_weight, pseudo_labels } => {
                ui.label("Switch task every");
                ui.add(egui::DragValue::new(period).range(0..=100_000).suffix(" steps"));
                field_error(ui, error, "strategy.period");
                ui.end_row();
                weighting_rows(ui, weighting, weights, [det_weight, seg_weight], run.tasks, error);
                pseudo_option_rows(ui, pseudo_labels, run.tasks, error);
            }
            StrategyConfig::Joint { weighting, weights, det_weight, seg_weight, pseudo_labels, gradients } => {
                weighting_rows(ui, weighting, weights, [det_weight, seg_weight], run.tasks, error);
                pseudo_option_rows(ui, pseudo_labels, run.tasks, error);
                ui.label("Task gradients");
                egui::ComboBox::from_id_salt("gradients").selected_text(gradients.key()).show_ui(ui, |ui| {
                    for method in GradientCombination::ALL {
                        ui.selectable_value(gradients, method, method.key());
                    }
                })
                .response
                .on_hover_text("sum: one backward pass of the summed losses; pcgrad: each task's gradient on the shared weights projected off the others' where they conflict (one backward pass per task)");
                field_error(ui, error, "strategy.gradients");
                ui.end_row();
            }
            StrategyConfig::Sequential { .. } => {}
            StrategyConfig::Freeze { freeze, .. } => {
                ui.label("Freeze in later phases");
                egui::ComboBox::from_id_salt("freeze").selected_text(String::from(*freeze)).show_ui(ui, |ui| {
                    for scope in [
                        FreezeScope::Stages(1),
                        FreezeScope::Stages(2),
                        FreezeScope::Stages(3),
                        FreezeScope::Stages(4),
                        FreezeScope::Backbone,
                        FreezeScope::BackboneAndNeck,
                    ] {
                        ui.selectable_value(freeze, scope, String::from(scope));
                    }
                });
                ui.label("");
                ui.end_row();
            }
            StrategyConfig::Lwf { weight, temperature, .. } => {
                ui.label("Distillation weight");
                ui.add(egui::DragValue::new(weight).speed(0.05).range(0.0..=1000.0));
                ui.label("");
                ui.end_row();
                ui.label("Temperature");
                ui.add(egui::DragValue::new(temperature).speed(0.05).range(0.0..=100.0));
                field_error(ui, error, "strategy.temperature");
                ui.end_row();
            }
            StrategyConfig::Ewc { lambda, fisher_batches, .. } => {
                ui.label("EWC λ");
                ui.add(egui::DragValue::new(lambda).speed(0.5).range(0.0..=1e9));
                ui.label("");
                ui.end_row();
                ui.label("Fisher batches");
                ui.add(egui::DragValue::new(fisher_batches).range(0..=10_000)).on_hover_text("Per earlier task");
                field_error(ui, error, "strategy.fisher_batches");
                ui.end_row();
            }
            StrategyConfig::Replay { buffer, every, .. } => {
                ui.label("Replay buffer");
                ui.add(egui::DragValue::new(buffer).speed(0.01).range(0.0..=1e6))
                    .on_hover_text("Per earlier task. Below 1: a fraction of its training images; 1 or more: a count");
                field_error(ui, error, "strategy.buffer");
                ui.end_row();
                ui.label("Replay on 1 step in");
                ui.add(egui::DragValue::new(every).range(0..=10_000).suffix(" steps"))
                    .on_hover_text("With several earlier tasks, each replay step takes the next one's buffer in turn");
                field_error(ui, error, "strategy.every");
                ui.end_row();
            }
            StrategyConfig::Pseudo { pseudo_labels, .. } => pseudo_rows(ui, pseudo_labels, run.tasks, error),
        }
    });
}

/// `alternate`/`joint`'s pseudo-label switch, and its settings when on.
fn pseudo_option_rows(ui: &mut egui::Ui, pseudo_labels: &mut Option<PseudoLabels>, tasks: TaskSet, error: Option<&str>) {
    ui.label("Pseudo-labels");
    let mut on = pseudo_labels.is_some();
    if ui.checkbox(&mut on, "label each batch for the other tasks (teacher: weight EMA)").changed() {
        *pseudo_labels = on.then(PseudoLabels::default);
    }
    ui.label("");
    ui.end_row();
    if let Some(settings) = pseudo_labels {
        pseudo_rows(ui, settings, tasks, error);
    }
}

fn pseudo_rows(ui: &mut egui::Ui, settings: &mut PseudoLabels, tasks: TaskSet, error: Option<&str>) {
    ui.label("Pseudo-label weight");
    ui.add(egui::DragValue::new(&mut settings.weight).speed(0.05).range(0.0..=100.0));
    field_error(ui, error, "strategy.pseudo_labels.weight");
    ui.end_row();
    ui.label("Box score above");
    ui.add(egui::DragValue::new(&mut settings.box_score).speed(0.01).range(0.0..=1.0))
        .on_hover_text("The teacher's boxes scoring above this become detection targets");
    field_error(ui, error, "strategy.pseudo_labels.box_score");
    ui.end_row();
    ui.label("Pixel confidence from");
    ui.add(egui::DragValue::new(&mut settings.pixel_confidence).speed(0.01).range(0.0..=1.0))
        .on_hover_text("Pixels where the teacher's class probability reaches this become segmentation targets; the rest are ignored");
    field_error(ui, error, "strategy.pseudo_labels.pixel_confidence");
    ui.end_row();
    ui.label("Ignore unsure boxes");
    ui.horizontal(|ui| {
        let mut on = settings.background_score.is_some();
        if ui.checkbox(&mut on, "scoring from").changed() {
            settings.background_score = on.then_some(0.1);
        }
        if let Some(floor) = &mut settings.background_score {
            ui.add(egui::DragValue::new(floor).speed(0.01).range(0.0..=1.0));
        }
    })
    .response
    .on_hover_text("Anchors the teacher scores between this and the box score are neither object nor background for the student");
    field_error(ui, error, "strategy.pseudo_labels.background_score");
    ui.end_row();
    ui.label("Pseudo-labels from step");
    ui.add(egui::DragValue::new(&mut settings.start_step).range(0..=10_000_000))
        .on_hover_text("A burn-in: no pseudo-labels before this step, while the teacher is still learning");
    ui.label("");
    ui.end_row();
    let teachers = [
        (Task::Det, "Detection teacher", "det_teacher", &mut settings.det_teacher, "best-det"),
        (Task::Seg, "Segmentation teacher", "seg_teacher", &mut settings.seg_teacher, "best-seg"),
        (Task::Cls, "Classification teacher", "cls_teacher", &mut settings.cls_teacher, "best-cls"),
    ];
    for (_, label, key, teacher, example) in teachers.into_iter().filter(|(task, ..)| tasks.contains(*task)) {
        let label = ui.label(label);
        let mut text = teacher.as_ref().map(|dir| dir.display().to_string()).unwrap_or_default();
        let edit = egui::TextEdit::singleline(&mut text).hint_text("the strategy's own teacher").desired_width(260.0);
        let response = ui.add(edit).labelled_by(label.id).on_hover_text(format!(
            "A checkpoint folder of another run (e.g. runs/NAME/checkpoints/{example}): its frozen network labels the other dataset's images, a specialist as in MuST"
        ));
        if response.changed() {
            *teacher = (!text.is_empty()).then(|| PathBuf::from(text));
        }
        field_error(ui, error, &format!("strategy.pseudo_labels.{key}"));
        ui.end_row();
    }
}

fn weighting_rows(
    ui: &mut egui::Ui,
    weighting: &mut Weighting,
    weights: &mut TaskWeights,
    older: [&mut f32; 2],
    tasks: TaskSet,
    error: Option<&str>,
) {
    ui.label("Loss weighting");
    ui.horizontal(|ui| {
        ui.radio_value(weighting, Weighting::Fixed, "fixed");
        ui.radio_value(weighting, Weighting::Uncertainty, "uncertainty (learned)");
    });
    ui.label("");
    ui.end_row();
    if *weighting == Weighting::Fixed {
        // A config in the older spelling (det_weight, seg_weight) is edited as the table.
        for (task, old) in [Task::Det, Task::Seg].into_iter().zip(older) {
            *weights.get_mut(task) *= std::mem::replace(old, 1.0);
        }
        ui.label("Weights");
        ui.horizontal(|ui| {
            for task in tasks.iter() {
                ui.label(task.key());
                ui.add(egui::DragValue::new(weights.get_mut(task)).speed(0.05).range(0.0..=100.0))
                    .on_hover_text(format!("The factor of the {task} loss"));
            }
        });
        field_error(ui, error, "strategy.weights");
        ui.end_row();
    }
}

/// The sequence: the first task and the switch step of two tasks, or the
/// whole order (reordered with ⬆) and a switch step per later phase.
fn sequence_rows(ui: &mut egui::Ui, sequence: SequenceMut, tasks: TaskSet, error: Option<&str>) {
    let SequenceMut { first, switch_step, order, switch_steps, lr_factor } = sequence;
    if order.is_empty() {
        // A run of two tasks other than detection and segmentation starts with one of its own.
        if let Some(task) = tasks.iter().next().filter(|_| !tasks.contains(*first)) {
            *first = task;
        }
        ui.label("First task");
        ui.horizontal(|ui| {
            for task in tasks.iter() {
                ui.radio_value(first, task, task.to_string());
            }
        });
        ui.label("");
        ui.end_row();
        ui.label("Switch at step");
        ui.add(egui::DragValue::new(switch_step).range(0..=10_000_000));
        field_error(ui, error, "strategy.switch_step");
        ui.end_row();
    } else {
        ui.label("Task order");
        ui.horizontal(|ui| {
            let mut raise = None;
            for (i, task) in order.iter().enumerate() {
                ui.label(format!("{}. {task}", i + 1));
                if i > 0 && ui.small_button("⬆").on_hover_text(format!("Train {task} before {}", order[i - 1])).clicked() {
                    raise = Some(i);
                }
                if i + 1 < order.len() {
                    ui.separator();
                }
            }
            if let Some(i) = raise {
                order.swap(i - 1, i);
            }
        });
        field_error(ui, error, "strategy.order");
        ui.end_row();
        ui.label("Switch at steps");
        ui.horizontal(|ui| {
            for (step, task) in switch_steps.iter_mut().zip(order.iter().skip(1)) {
                ui.add(egui::DragValue::new(step).range(0..=10_000_000)).on_hover_text(format!("{task} starts here"));
            }
        });
        field_error(ui, error, "strategy.switch_steps");
        ui.end_row();
    }
    ui.label("Later phases' LR factor");
    ui.add(egui::DragValue::new(lr_factor).speed(0.01).range(0.0..=10.0));
    field_error(ui, error, "strategy.lr_factor");
    ui.end_row();
}

/// The error next to the field it is about (errors name their key first).
pub fn field_error(ui: &mut egui::Ui, error: Option<&str>, key: &str) {
    match error.and_then(|e| e.strip_prefix(key)).and_then(|rest| rest.strip_prefix(": ")) {
        Some(why) => ui.colored_label(ui.visuals().error_fg_color, why),
        None => ui.label(""),
    };
}



/// A new strategy of `kind`, keeping the sequence settings of the current one.
fn default_strategy(kind: &str, current: &StrategyConfig, steps: usize) -> StrategyConfig {
    let sequence = current.sequence();
    let first = sequence.map_or(Task::Det, |s| s.first);
    let switch_step = sequence.map_or(steps / 2, |s| s.switch_step);
    let lr_factor = sequence.map_or(0.1, |s| s.lr_factor);
    let (order, switch_steps) = current.sequence_lists();
    match kind {
        "alternate" => StrategyConfig::alternate(),
        "joint" => StrategyConfig::joint(),
        "freeze" => StrategyConfig::Freeze { first, switch_step, order, switch_steps, lr_factor, freeze: FreezeScope::Backbone },
        "lwf" => StrategyConfig::Lwf { first, switch_step, order, switch_steps, lr_factor, weight: 1.0, temperature: 2.0 },
        "ewc" => StrategyConfig::Ewc {
            first,
            switch_step,
            order,
            switch_steps,
            lr_factor,
            lambda: EWC_LAMBDA,
            fisher_batches: FISHER_BATCHES,
        },
        "replay" => {
            StrategyConfig::Replay { first, switch_step, order, switch_steps, lr_factor, buffer: REPLAY_BUFFER, every: REPLAY_EVERY }
        }
        "pseudo" => StrategyConfig::Pseudo { first, switch_step, order, switch_steps, lr_factor, pseudo_labels: PseudoLabels::default() },
        _ => StrategyConfig::Sequential { first, switch_step, order, switch_steps, lr_factor },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_strategy_keeps_the_sequence_and_defaults_the_rest() {
        let (order, switch_steps) = (Vec::new(), Vec::new());
        let current = StrategyConfig::Sequential { first: Task::Seg, switch_step: 40, order: order.clone(), switch_steps: switch_steps.clone(), lr_factor: 0.5 };
        assert_eq!(
            default_strategy("ewc", &current, 100),
            StrategyConfig::Ewc { first: Task::Seg, switch_step: 40, order, switch_steps, lr_factor: 0.5, lambda: EWC_LAMBDA, fisher_batches: FISHER_BATCHES }
        );
        let alternate = default_strategy("alternate", &current, 100);
        assert_eq!(default_strategy("lwf", &alternate, 100).sequence().unwrap().switch_step, 50);
        for kind in STRATEGIES {
            let strategy = default_strategy(kind, &alternate, 100);
            assert_eq!(strategy.name(), kind);
            strategy.validate(RunShape { tasks: TaskSet::DET_SEG, steps: 100 }).unwrap();
        }
    }
}
