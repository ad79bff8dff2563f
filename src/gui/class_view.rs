//! The classification head's answer for one image: the top-5 classes with
//! their probabilities as bars, and, where the true class is known, whether
//! the top-1 is right and where the true class ranks. Shared by Inspect,
//! Preview and the Timeline.

use eframe::egui;

use crate::eval::cls::{ranking, top_classes};

const RIGHT: egui::Color32 = egui::Color32::from_rgb(60, 170, 90);

/// Draws the top-5 of `probabilities` (nothing for a network without a
/// classification head); `truth` marks the true class.
pub fn top5_ui(ui: &mut egui::Ui, probabilities: &[f32], names: &[String], truth: Option<usize>) {
    if probabilities.is_empty() {
        return;
    }
    let best = ranking(probabilities)[0];
    match truth {
        Some(truth) => {
            let rank = ranking(probabilities).iter().position(|&c| c == truth).map_or(0, |r| r + 1);
            ui.label(format!("True class: {}", names[truth]));
            if best == truth {
                ui.colored_label(RIGHT, format!("✔ right: top-1 {}", names[best]));
            } else {
                ui.colored_label(ui.visuals().error_fg_color, format!("✖ wrong: top-1 {}, the true class ranks {rank}", names[best]));
            }
        }
        None => {
            ui.label(format!("Top-1 class: {}", names[best]));
        }
    }
    ui.strong("Top-5 classes");
    egui::Grid::new(ui.next_auto_id()).striped(true).show(ui, |ui| {
        for (name, probability) in top_classes(probabilities, names, 5) {
            let is_truth = truth.is_some_and(|t| names[t] == name);
            let label = egui::RichText::new(name);
            ui.label(if is_truth { label.strong().color(RIGHT) } else { label });
            ui.add(egui::ProgressBar::new(probability).desired_width(160.0).text(format!("{probability:.3}")));
            ui.end_row();
        }
    });
}
