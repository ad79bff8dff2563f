//! Dataset statistics as charts, under a folder's check summary on Setup:
//! objects per class, pixel share per class, images per class, box sizes and
//! image sizes (the numbers `data check --json` prints).

use eframe::egui;
use egui_plot::{Bar, BarChart, Legend, Plot, Points};

use crate::data::check::{AdeSummary, ClsSummary, SizeSummary, VocSummary};

/// The most classes a pixel-share chart shows (ADE20K has 150).
const MAX_PIXEL_BARS: usize = 40;
const PLOT_HEIGHT: f32 = 180.0;

pub fn voc_charts(ui: &mut egui::Ui, voc: &VocSummary) {
    egui::CollapsingHeader::new("Detection statistics").id_salt("voc-stats").show(ui, |ui| {
        ui.label("Objects per class (difficult ones darker)");
        let names: Vec<String> = voc.per_class.keys().cloned().collect();
        let total: Vec<Bar> = voc
            .per_class
            .values()
            .enumerate()
            .map(|(i, c)| Bar::new(i as f64, (c.objects - c.difficult) as f64).name(&names[i]).width(0.7))
            .collect();
        let difficult: Vec<Bar> =
            voc.per_class.values().enumerate().map(|(i, c)| Bar::new(i as f64, c.difficult as f64).name(&names[i]).width(0.7)).collect();
        let plain = BarChart::new("objects", total).color(egui::Color32::from_rgb(90, 140, 220));
        let hard = BarChart::new("difficult", difficult).color(egui::Color32::from_rgb(40, 70, 130)).stack_on(&[&plain]);
        class_axis_plot("voc-per-class", names).legend(Legend::default()).show(ui, |plot_ui| {
            plot_ui.bar_chart(plain);
            plot_ui.bar_chart(hard);
        });
        ui.columns(2, |columns| {
            columns[0].label(format!("Box sizes ({} objects), pixels", voc.box_sizes.len()));
            let boxes: Vec<[f64; 2]> = voc.box_sizes.iter().map(|&[w, h]| [f64::from(w), f64::from(h)]).collect();
            size_scatter(&mut columns[0], "voc-box-sizes", "box", boxes);
            image_sizes(&mut columns[1], "voc-image-sizes", &voc.image_sizes);
        });
    });
}

pub fn ade_charts(ui: &mut egui::Ui, ade: &AdeSummary) {
    egui::CollapsingHeader::new("Segmentation statistics").id_salt("ade-stats").show(ui, |ui| {
        let mut classes = ade.class_pixel_fraction.clone();
        classes.sort_by(|a, b| b.1.total_cmp(&a.1));
        let shown = classes.len().min(MAX_PIXEL_BARS);
        ui.label(format!(
            "Share of labelled pixels per class, most frequent first ({shown} of {} classes present)",
            classes.len()
        ));
        let labelled = (1.0 - ade.unlabelled_fraction).max(f64::MIN_POSITIVE);
        let bars: Vec<Bar> = classes[..shown]
            .iter()
            .enumerate()
            .map(|(i, (name, fraction))| Bar::new(i as f64, 100.0 * fraction / labelled).name(name).width(0.7))
            .collect();
        let names = classes[..shown].iter().map(|(name, _)| name.clone()).collect();
        class_axis_plot("ade-per-class", names).show(ui, |plot_ui| {
            plot_ui.bar_chart(BarChart::new("% of pixels", bars).color(egui::Color32::from_rgb(90, 180, 120)));
        });
        image_sizes(ui, "ade-image-sizes", &ade.image_sizes);
    });
}

pub fn cls_charts(ui: &mut egui::Ui, cls: &ClsSummary) {
    egui::CollapsingHeader::new("Classification statistics").id_salt("cls-stats").show(ui, |ui| {
        ui.label(format!("Images per class ({} classes)", cls.per_class.len()));
        let names: Vec<String> = cls.per_class.iter().map(|(name, _)| name.clone()).collect();
        let bars: Vec<Bar> =
            cls.per_class.iter().enumerate().map(|(i, (name, n))| Bar::new(i as f64, *n as f64).name(name).width(0.7)).collect();
        class_axis_plot("cls-per-class", names).show(ui, |plot_ui| {
            plot_ui.bar_chart(BarChart::new("images", bars).color(egui::Color32::from_rgb(200, 140, 70)));
        });
        image_sizes(ui, "cls-image-sizes", &cls.image_sizes);
    });
}

/// A bar plot whose x axis names the classes at integer positions.
fn class_axis_plot(id: &'static str, names: Vec<String>) -> Plot<'static> {
    Plot::new(id)
        .height(PLOT_HEIGHT)
        .allow_scroll(false)
        .include_y(0.0)
        .x_axis_formatter(super::category_axis(names))
}

fn image_sizes(ui: &mut egui::Ui, id: &'static str, sizes: &SizeSummary) {
    ui.label(format!(
        "Image sizes ({} images; mean {:.0} × {:.0})",
        sizes.count, sizes.mean_width, sizes.mean_height
    ));
    let points = sizes.sizes.iter().map(|&[w, h]| [f64::from(w), f64::from(h)]).collect();
    size_scatter(ui, id, "image", points);
}

fn size_scatter(ui: &mut egui::Ui, id: &'static str, name: &str, points: Vec<[f64; 2]>) {
    Plot::new(id)
        .height(PLOT_HEIGHT)
        .allow_scroll(false)
        .include_x(0.0)
        .include_y(0.0)
        .x_axis_label("width")
        .y_axis_label("height")
        .show(ui, |plot_ui| plot_ui.points(Points::new(name, points).radius(1.5)));
}
