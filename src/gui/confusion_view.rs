//! A confusion matrix drawn as a grid of cells, darker for larger values, rows
//! the ground truth and columns the prediction; hovering a cell names both
//! classes and gives its count and share of the row.

use eframe::egui::{self, Color32, Rect, Sense, Vec2};

/// Cells are never smaller than this (150 classes scroll rather than vanish).
const MIN_CELL: f32 = 4.0;
const MAX_CELL: f32 = 28.0;

/// A square matrix with names for its rows and columns.
pub struct Matrix<'a> {
    pub labels: &'a [String],
    /// `counts[gt][pred]`.
    pub counts: &'a [Vec<u64>],
    /// What each cell shows in writing (small matrices only).
    pub text: CellText,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellText {
    None,
    Counts,
    /// The share of the row, in percent.
    RowPercent,
}

impl Matrix<'_> {
    /// Row-normalised share of each cell (0 for an empty row).
    pub fn share(&self, gt: usize, pred: usize) -> f64 {
        let total: u64 = self.counts[gt].iter().sum();
        if total == 0 { 0.0 } else { self.counts[gt][pred] as f64 / total as f64 }
    }

    pub fn ui(&self, ui: &mut egui::Ui, id: &str) {
        let n = self.labels.len();
        let cell = (ui.available_width() * 0.8 / n.max(1) as f32).clamp(MIN_CELL, MAX_CELL);
        let label_width = if cell >= 12.0 { 110.0 } else { 0.0 };
        ui.label("rows: ground truth · columns: prediction · shade: share of the row");
        let size = Vec2::splat(label_width + cell * n as f32);
        // Shown whole up to 560 points, even low in a scrolled panel (the area would shrink to what is left on screen).
        let height = size.y.min(560.0);
        egui::ScrollArea::both().id_salt(id).max_height(height).min_scrolled_height(height).show(ui, |ui| {
            let (rect, response) = ui.allocate_exact_size(size, Sense::hover());
            let painter = ui.painter_at(rect);
            let origin = rect.min + Vec2::splat(label_width);
            let text_color = ui.visuals().text_color();
            for gt in 0..n {
                for pred in 0..n {
                    let share = self.share(gt, pred);
                    let cell_rect = Rect::from_min_size(origin + Vec2::new(pred as f32 * cell, gt as f32 * cell), Vec2::splat(cell));
                    painter.rect_filled(cell_rect.shrink(0.5), 0.0, shade(share, gt == pred));
                    let text = match self.text {
                        _ if self.counts[gt][pred] == 0 => None,
                        CellText::None => None,
                        CellText::Counts => Some(self.counts[gt][pred].to_string()),
                        CellText::RowPercent => Some(format!("{:.0}", 100.0 * share)),
                    };
                    if let Some(text) = text {
                        let ink = if share > 0.5 { Color32::WHITE } else { text_color };
                        let font = egui::FontId::proportional((cell * 0.4).min(12.0));
                        painter.text(cell_rect.center(), egui::Align2::CENTER_CENTER, text, font, ink);
                    }
                }
            }
            if label_width > 0.0 {
                let font = egui::FontId::proportional((cell * 0.7).min(12.0));
                for (i, label) in self.labels.iter().enumerate() {
                    let y = origin.y + (i as f32 + 0.5) * cell;
                    painter.text(egui::pos2(origin.x - 4.0, y), egui::Align2::RIGHT_CENTER, label, font.clone(), text_color);
                    let x = origin.x + (i as f32 + 0.5) * cell;
                    let galley = painter.layout_no_wrap(label.clone(), font.clone(), text_color);
                    // Column names written upwards above their column.
                    let at = egui::pos2(x - galley.size().y / 2.0, origin.y - 4.0);
                    painter.add(egui::epaint::TextShape::new(at, galley, text_color).with_angle(-std::f32::consts::FRAC_PI_2));
                }
            }
            if let Some(pos) = response.hover_pos() {
                let at = (pos - origin) / cell;
                let (gt, pred) = (at.y.floor(), at.x.floor());
                if gt >= 0.0 && pred >= 0.0 && (gt as usize) < n && (pred as usize) < n {
                    let (gt, pred) = (gt as usize, pred as usize);
                    response.on_hover_text_at_pointer(format!(
                        "true {}, predicted {}\n{} ({:.1}% of the row)",
                        self.labels[gt],
                        self.labels[pred],
                        self.counts[gt][pred],
                        100.0 * self.share(gt, pred)
                    ));
                }
            }
        });
    }
}

/// Blue for the diagonal (right), red off it (confusions), stronger with the share.
fn shade(share: f64, diagonal: bool) -> Color32 {
    let strength = (share.clamp(0.0, 1.0).sqrt() * 255.0) as u8;
    let base = if diagonal { Color32::from_rgb(40, 90, 200) } else { Color32::from_rgb(210, 60, 50) };
    Color32::from_rgba_unmultiplied(base.r(), base.g(), base.b(), strength.max(12))
}
