//! The strategy editor of Setup: the strategy kind, and its parameters as
//! fields (the sequence, loss weighting, pseudo-labels and each strategy's
//! own), each with the error that names its key.

use std::path::PathBuf;

use eframe::egui;

use crate::train::pseudo::PseudoLabels;
use crate::train::strategy::{Choice, Mixing, Number, NumberValue, RunShape, Sequence, Setting, StrategyConfig, Task, TaskSet, Weighting};

/// The strategy selector and its settings.
pub fn strategy_editor(ui: &mut egui::Ui, strategy: &mut StrategyConfig, run: RunShape, error: Option<&str>) {
    ui.horizontal(|ui| {
        egui::ComboBox::from_label("Strategy").selected_text(strategy.name()).show_ui(ui, |ui| {
            for kind in StrategyConfig::every_kind(&Sequence::halfway(run.steps)) {
                let name = kind.name();
                let supported = kind.get().supports(run.tasks);
                let option = ui
                    .add_enabled(supported, egui::Button::selectable(strategy.name() == name, name))
                    .on_disabled_hover_text("a sequence needs two or more tasks");
                if option.clicked() && strategy.name() != name {
                    *strategy = StrategyConfig::of_kind(name, strategy, run.steps).expect("a listed kind");
                }
            }
        });
    });
    // Three tasks: the order and every switch step are spelled out, to edit.
    let schedule = strategy.schedule(run).filter(|_| run.tasks.len() > 2);
    if let (Some(schedule), Some(sequence)) = (schedule, strategy.sequence_mut()) {
        if sequence.order.is_empty() {
            (sequence.order, sequence.switch_steps) = (schedule.order, schedule.switches);
        }
    }
    egui::Grid::new("strategy parameters").num_columns(3).spacing([12.0, 4.0]).show(ui, |ui| {
        for setting in strategy.get_mut().settings() {
            match setting {
                Setting::Sequence(sequence) => sequence_rows(ui, sequence, run.tasks, error),
                Setting::Mixing(mixing) => {
                    weighting_rows(ui, mixing, run.tasks, error);
                    pseudo_option_rows(ui, &mut mixing.pseudo_labels, run.tasks, error);
                }
                Setting::PseudoLabels(settings) => pseudo_rows(ui, settings, run.tasks, error),
                Setting::Number(number) => number_row(ui, number, error),
                Setting::Choice(choice) => choice_row(ui, choice, error),
            }
        }
    });
}

fn number_row(ui: &mut egui::Ui, number: Number, error: Option<&str>) {
    ui.label(number.label);
    let drag = match number.value {
        NumberValue::Count(value) => egui::DragValue::new(value).range(0..=number.max as usize),
        NumberValue::Single(value) => egui::DragValue::new(value).range(0.0..=number.max),
        NumberValue::Double(value) => egui::DragValue::new(value).range(0.0..=number.max),
    };
    let response = ui.add(drag.speed(number.speed).suffix(number.suffix));
    if !number.hint.is_empty() {
        response.on_hover_text(number.hint);
    }
    field_error(ui, error, &format!("strategy.{}", number.key));
    ui.end_row();
}

fn choice_row(ui: &mut egui::Ui, choice: Choice, error: Option<&str>) {
    ui.label(choice.label);
    let chosen = choice.value.chosen();
    let combo = egui::ComboBox::from_id_salt(choice.key).selected_text(&chosen).show_ui(ui, |ui| {
        for option in choice.value.options() {
            if ui.selectable_label(option == chosen, &option).clicked() {
                choice.value.choose(&option);
            }
        }
    });
    if !choice.hint.is_empty() {
        combo.response.on_hover_text(choice.hint);
    }
    field_error(ui, error, &format!("strategy.{}", choice.key));
    ui.end_row();
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

fn weighting_rows(ui: &mut egui::Ui, mixing: &mut Mixing, tasks: TaskSet, error: Option<&str>) {
    ui.label("Loss weighting");
    ui.horizontal(|ui| {
        ui.radio_value(&mut mixing.weighting, Weighting::Fixed, "fixed");
        ui.radio_value(&mut mixing.weighting, Weighting::Uncertainty, "uncertainty (learned)");
    });
    ui.label("");
    ui.end_row();
    if mixing.weighting == Weighting::Fixed {
        mixing.fold_older_spelling();
        ui.label("Weights");
        ui.horizontal(|ui| {
            for task in tasks.iter() {
                ui.label(task.key());
                ui.add(egui::DragValue::new(mixing.weights.get_mut(task)).speed(0.05).range(0.0..=100.0))
                    .on_hover_text(format!("The factor of the {task} loss"));
            }
        });
        field_error(ui, error, "strategy.weights");
        ui.end_row();
    }
}

/// The sequence: the first task and the switch step of two tasks, or the
/// whole order (reordered with ⬆) and a switch step per later phase.
fn sequence_rows(ui: &mut egui::Ui, sequence: &mut Sequence, tasks: TaskSet, error: Option<&str>) {
    let Sequence { first, switch_step, order, switch_steps, lr_factor } = sequence;
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
