//! Drawing shared by the Inspect and Preview panels: an image with a semantic
//! mask over it and boxes on top, scaled to fit, the overlay controls, the
//! error view (see `error_view`), a hover readout of what is under the pointer
//! and a legend of the classes shown.
//!
//! The image and the recoloured mask are two textures, the mask drawn with the
//! opacity as its tint and the boxes with the painter, so moving a slider costs
//! nothing; the mask texture is rebuilt only when the hidden segmentation
//! classes change.

use std::collections::{BTreeSet, HashMap};

use eframe::egui::{self, Color32, ColorImage, Rect, Sense, Stroke, StrokeKind, TextureHandle, TextureOptions, Vec2};
use image::imageops::FilterType;
use image::{GrayImage, ImageBuffer, Luma, Pixel, RgbImage};

use super::error_view::{pixel_error_image, ErrorLayer, FALSE_POSITIVE, IGNORED, MISSED, TRUE_POSITIVE};
use crate::data::classes::mask_label_name;
use crate::model::postprocess::{Detection, PostprocessConfig, DISPLAY_SCORE_FLOOR};
use crate::overlay::{self, class_color};
use crate::predictor::Prediction;

/// Longest texture side uploaded: larger images are shown downscaled (every GPU
/// takes 2048, and a panel never shows more pixels than that).
const MAX_TEXTURE_SIDE: u32 = 2048;

/// How predictions are drawn; the same for the window and a saved overlay.
#[derive(Debug, Clone, PartialEq)]
pub struct OverlayOptions {
    /// Predicted boxes below this score are not drawn.
    pub score_threshold: f32,
    /// Of the semantic mask over the image, 0–1.
    pub opacity: f32,
    /// Detection classes not drawn.
    pub hidden_det: BTreeSet<usize>,
    /// Segmentation classes (0-based) left out of the mask.
    pub hidden_seg: BTreeSet<usize>,
    /// Predictions drawn as right / wrong against the ground truth, where there is one.
    pub show_errors: bool,
}

impl Default for OverlayOptions {
    fn default() -> Self {
        Self {
            score_threshold: PostprocessConfig::display().score_threshold,
            // As `twinhead predict` draws.
            opacity: 0.5,
            hidden_det: BTreeSet::new(),
            hidden_seg: BTreeSet::new(),
            show_errors: false,
        }
    }
}

impl OverlayOptions {
    /// The sliders and the class filters (with each class's colour as a legend).
    pub fn controls(&mut self, ui: &mut egui::Ui, det_classes: &[String], seg_classes: &[String]) {
        ui.add(egui::Slider::new(&mut self.score_threshold, DISPLAY_SCORE_FLOOR..=1.0).text("Score threshold"));
        ui.add(egui::Slider::new(&mut self.opacity, 0.0..=1.0).text("Mask opacity"));
        ui.horizontal(|ui| {
            ui.checkbox(&mut self.show_errors, "Show errors").on_hover_text(
                "Against the ground truth: boxes green = true positive, red = false positive, orange dashed = missed; pixels green = right, red = wrong, grey = unlabelled (ignored)",
            );
            if self.show_errors {
                for (color, name) in [(TRUE_POSITIVE, "right / TP"), (FALSE_POSITIVE, "wrong / FP"), (MISSED, "missed"), (IGNORED, "ignored")] {
                    swatch(ui, color);
                    ui.label(name);
                }
            }
        });
        class_filter(ui, "Detection classes", det_classes, &mut self.hidden_det);
        class_filter(ui, "Segmentation classes", seg_classes, &mut self.hidden_seg);
    }

    /// The boxes drawn: classes not hidden, and when `scored` (predictions, not
    /// ground truth) at or above the threshold.
    pub fn visible<'a>(&'a self, boxes: &'a [Detection], scored: bool) -> impl Iterator<Item = &'a Detection> + 'a {
        self.visible_indexed(boxes, scored).map(|(_, d)| d)
    }

    /// [`Self::visible`] with each box's index in `boxes`.
    fn visible_indexed<'a>(&'a self, boxes: &'a [Detection], scored: bool) -> impl Iterator<Item = (usize, &'a Detection)> + 'a {
        boxes
            .iter()
            .enumerate()
            .filter(move |(_, d)| !self.hidden_det.contains(&d.class) && (!scored || d.score >= self.score_threshold))
    }

    /// The overlay as a picture, as the window shows it (for saving).
    pub fn render(&self, image: &RgbImage, prediction: &Prediction) -> RgbImage {
        let boxes: Vec<Detection> = self.visible(&prediction.detections, true).copied().collect();
        let mask = prediction.mask.as_ref().map(|mask| hide_classes(mask, &self.hidden_seg));
        overlay::render(image, mask.as_ref(), &boxes, self.opacity, self.score_threshold)
    }
}

/// Checkboxes showing or hiding each class, in a collapsed section.
fn class_filter(ui: &mut egui::Ui, title: &str, names: &[String], hidden: &mut BTreeSet<usize>) {
    let shown = names.len() - hidden.iter().filter(|&&c| c < names.len()).count();
    egui::CollapsingHeader::new(format!("{title}: {shown} of {} shown", names.len())).id_salt(title).show(ui, |ui| {
        ui.horizontal(|ui| {
            if ui.button("Show all").clicked() {
                hidden.clear();
            }
            if ui.button("Hide all").clicked() {
                *hidden = (0..names.len()).collect();
            }
        });
        egui::ScrollArea::vertical().id_salt(title).max_height(200.0).show(ui, |ui| {
            for (class, name) in names.iter().enumerate() {
                ui.horizontal(|ui| {
                    swatch(ui, color32(class_color(class)));
                    let mut visible = !hidden.contains(&class);
                    if ui.checkbox(&mut visible, name.as_str()).changed() {
                        if visible {
                            hidden.remove(&class);
                        } else {
                            hidden.insert(class);
                        }
                    }
                });
            }
        });
    });
}

/// A small square of `color`, as in a legend.
fn swatch(ui: &mut egui::Ui, color: Color32) {
    let (rect, _) = ui.allocate_exact_size(Vec2::splat(12.0), Sense::hover());
    ui.painter().rect_filled(rect, 2.0, color);
}

/// The class names the layers' indices refer to.
#[derive(Clone, Copy)]
pub struct ClassNames<'a> {
    pub det: &'a [String],
    pub seg: &'a [String],
}

impl ClassNames<'_> {
    fn det(&self, class: usize) -> String {
        self.det.get(class).cloned().unwrap_or_else(|| format!("class {class}"))
    }

    /// A mask label's name (ADE encoding).
    fn label(&self, label: u8) -> String {
        mask_label_name(self.seg, label.into())
    }
}

/// What is drawn over one image.
pub struct Layers<'a> {
    /// Names the mask's texture among the image's ("truth", "prediction").
    pub name: &'static str,
    /// ADE encoding (class + 1, 0 = none), the image's size.
    pub mask: Option<&'a GrayImage>,
    pub boxes: &'a [Detection],
    /// Predicted boxes: filtered by the score threshold and labelled with their
    /// score; ground-truth boxes are not.
    pub scored: bool,
    /// The ground truth to judge these (predicted) layers against, if known.
    pub errors: Option<&'a ErrorLayer>,
}

/// The textures of the images a panel shows, by the key the panel gives each image.
#[derive(Default)]
pub struct TextureCache {
    images: HashMap<String, TextureHandle>,
    /// By image key and layer name, with the hidden classes the texture was made for.
    masks: HashMap<(String, &'static str), (BTreeSet<usize>, TextureHandle)>,
    /// The labels present in each mask (by image key and layer name), for the legend.
    present: HashMap<(String, &'static str), BTreeSet<u8>>,
}

impl TextureCache {
    /// Drops every texture (the panel's images changed).
    pub fn clear(&mut self) {
        self.images.clear();
        self.masks.clear();
        self.present.clear();
    }

    /// Drops the textures of one image (it was predicted again).
    pub fn forget(&mut self, key: &str) {
        self.images.remove(key);
        self.masks.retain(|(k, _), _| k != key);
        self.present.retain(|(k, _), _| k != key);
    }

    fn image(&mut self, ctx: &egui::Context, key: &str, image: &RgbImage) -> &TextureHandle {
        self.images
            .entry(key.to_string())
            .or_insert_with(|| ctx.load_texture(key, rgb_color_image(image), TextureOptions::LINEAR))
    }

    fn mask(&mut self, ctx: &egui::Context, key: &str, name: &'static str, mask: &GrayImage, hidden: &BTreeSet<usize>) -> &TextureHandle {
        let id = (key.to_string(), name);
        if !self.masks.get(&id).is_some_and(|(made_for, _)| made_for == hidden) {
            // Nearest sampling keeps class borders crisp when scaled up.
            let texture = ctx.load_texture(format!("{key}/{name}"), mask_color_image(mask, hidden), TextureOptions::NEAREST);
            self.masks.insert(id.clone(), (hidden.clone(), texture));
            self.present.insert(id.clone(), mask.as_raw().iter().copied().filter(|&l| l > 0).collect());
        }
        &self.masks[&id].1
    }

    /// The right / wrong / ignored picture of `predicted` against `truth`.
    fn pixel_errors(&mut self, ctx: &egui::Context, key: &str, truth: &GrayImage, predicted: &GrayImage) -> &TextureHandle {
        let id = (key.to_string(), "errors");
        self.masks.entry(id).or_insert_with(|| {
            let texture = ctx.load_texture(format!("{key}/errors"), pixel_error_image(truth, predicted), TextureOptions::NEAREST);
            (BTreeSet::new(), texture)
        });
        &self.masks[&(key.to_string(), "errors")].1
    }

    /// The segmentation classes (0-based) in the masks drawn for `key` so far, under `layer` names.
    pub fn classes_present(&self, key: &str, layers: &[&'static str]) -> BTreeSet<usize> {
        layers
            .iter()
            .filter_map(|name| self.present.get(&(key.to_string(), *name)))
            .flatten()
            .map(|&label| label as usize - 1)
            .collect()
    }

    /// `image` (cached under `key`) with `layers` over it, as large as fits in
    /// `max_size`; hovering names the classes (and verdicts) under the pointer.
    #[allow(clippy::too_many_arguments)]
    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        key: &str,
        image: &RgbImage,
        layers: &Layers,
        options: &OverlayOptions,
        names: ClassNames,
        max_size: Vec2,
    ) -> egui::Response {
        let size = fit_size(Vec2::new(image.width() as f32, image.height() as f32), max_size);
        let (rect, response) = ui.allocate_exact_size(size, Sense::hover());
        // Named for screen readers and demo scripts: "truth image", "prediction image".
        response.widget_info(|| egui::WidgetInfo::labeled(egui::WidgetType::Image, true, format!("{} image", layers.name)));
        let painter = ui.painter_at(rect);
        let full = Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
        painter.image(self.image(ui.ctx(), key, image).id(), rect, full, Color32::WHITE);
        let errors = layers.errors.filter(|_| options.show_errors);
        let tint = Color32::WHITE.gamma_multiply(options.opacity);
        // In the error view, what has no ground truth to be judged against is not drawn.
        match (errors, errors.and_then(|e| e.truth_mask.as_ref()), layers.mask) {
            (_, Some(truth), Some(mask)) => {
                painter.image(self.pixel_errors(ui.ctx(), key, truth, mask).id(), rect, full, tint);
            }
            (None, _, Some(mask)) => {
                painter.image(self.mask(ui.ctx(), key, layers.name, mask, &options.hidden_seg).id(), rect, full, tint);
            }
            _ => {}
        }
        let scale = if image.width() == 0 { 1.0 } else { size.x / image.width() as f32 };
        if let Some(errors) = errors {
            for missed in errors.missed(options.score_threshold) {
                paint_box(&painter, rect, scale, missed, MISSED, &format!("missed {}", names.det(missed.class)), true);
            }
        }
        // Best boxes last, so their labels end up on top.
        let judged = errors.is_none_or(|e| e.judged.is_some());
        let boxes: Vec<(usize, &Detection)> =
            options.visible_indexed(layers.boxes, layers.scored).filter(|_| judged).collect();
        for &(i, d) in boxes.iter().rev() {
            let color = errors.and_then(|e| e.box_color(i)).unwrap_or_else(|| color32(class_color(d.class)));
            paint_box(&painter, rect, scale, d, color, &box_label(names.det, d, layers.scored), false);
        }
        match response.hover_pos() {
            Some(pos) if scale > 0.0 => {
                let at = (pos - rect.min) / scale;
                let text = hover_text(layers, errors, &boxes, names, at.x, at.y);
                response.on_hover_text_at_pointer(text)
            }
            _ => response,
        }
    }

    /// The classes drawn for `key` (masks under `mask_layers`, and `boxes`), each with its colour.
    pub fn legend(&self, ui: &mut egui::Ui, key: &str, mask_layers: &[&'static str], boxes: &[&Detection], names: ClassNames) {
        let seg = self.classes_present(key, mask_layers);
        let det: BTreeSet<usize> = boxes.iter().map(|d| d.class).collect();
        if seg.is_empty() && det.is_empty() {
            return;
        }
        ui.horizontal_wrapped(|ui| {
            ui.label("Legend:");
            for (classes, title, pick) in [(&det, "boxes", &names.det), (&seg, "pixels", &names.seg)] {
                if classes.is_empty() {
                    continue;
                }
                ui.weak(title);
                for &class in classes {
                    swatch(ui, color32(class_color(class)));
                    ui.label(pick.get(class).map_or("?", String::as_str));
                }
            }
        });
    }

    /// A small clickable copy of `image` (sharing its texture with [`Self::show`]),
    /// named `name` on hover and, as "thumbnail NAME", for screen readers and demo scripts.
    pub fn thumbnail(&mut self, ui: &mut egui::Ui, key: &str, image: &RgbImage, height: f32, selected: bool, name: &str) -> egui::Response {
        let size = fit_size(Vec2::new(image.width() as f32, image.height() as f32), Vec2::new(height * 4.0, height));
        let texture = self.image(ui.ctx(), key, image);
        let response = ui.add(egui::Image::new((texture.id(), size)).sense(Sense::click())).on_hover_text(name);
        response.widget_info(|| egui::WidgetInfo::labeled(egui::WidgetType::Image, true, format!("thumbnail {name}")));
        if selected {
            let stroke = Stroke::new(2.0, ui.visuals().selection.stroke.color);
            ui.painter().rect_stroke(response.rect, 0.0, stroke, StrokeKind::Outside);
        }
        response
    }
}

/// What is under the pointer at image pixel `(x, y)`: the mask's class there
/// (and the truth's, in the error view) and every box drawn around it.
fn hover_text(layers: &Layers, errors: Option<&ErrorLayer>, boxes: &[(usize, &Detection)], names: ClassNames, x: f32, y: f32) -> String {
    let mut lines = vec![format!("pixel ({}, {})", x.floor(), y.floor())];
    let label_at = |mask: &GrayImage| {
        let (px, py) = (x.floor() as i64, y.floor() as i64);
        let inside = px >= 0 && py >= 0 && (px as u32) < mask.width() && (py as u32) < mask.height();
        inside.then(|| mask.get_pixel(px as u32, py as u32)[0])
    };
    if let Some(label) = layers.mask.and_then(label_at) {
        let who = if layers.scored { "predicted" } else { "truth" };
        lines.push(format!("{who}: {}", names.label(label)));
    }
    if let Some(label) = errors.and_then(|e| e.truth_mask.as_ref()).and_then(label_at) {
        lines.push(format!("truth: {}", names.label(label)));
    }
    for &(i, d) in boxes.iter().filter(|(_, d)| d.bbox[0] <= x && x <= d.bbox[2] && d.bbox[1] <= y && y <= d.bbox[3]) {
        let verdict = errors.and_then(|e| e.box_verdict(i)).map(|v| format!(" ({v})")).unwrap_or_default();
        lines.push(format!("box: {}{verdict}", box_label(names.det, d, layers.scored)));
    }
    lines.join("\n")
}

/// One box outline with its label tab, `bbox` scaled from image pixels into `rect`.
fn paint_box(painter: &egui::Painter, rect: Rect, scale: f32, d: &Detection, color: Color32, label: &str, dashed: bool) {
    let [x0, y0, x1, y1] = d.bbox;
    let outline = Rect::from_min_max(rect.min + Vec2::new(x0, y0) * scale, rect.min + Vec2::new(x1, y1) * scale);
    if dashed {
        let corners = [outline.left_top(), outline.right_top(), outline.right_bottom(), outline.left_bottom(), outline.left_top()];
        painter.extend(egui::Shape::dashed_line(&corners, Stroke::new(2.0, color), 6.0, 4.0));
    } else {
        painter.rect_stroke(outline, 0.0, Stroke::new(2.0, color), StrokeKind::Inside);
    }
    let galley = painter.layout_no_wrap(label.to_string(), egui::FontId::proportional(12.0), Color32::BLACK);
    // Above the box where there is room, else inside its top.
    let top = if outline.top() - galley.size().y >= rect.top() { outline.top() - galley.size().y } else { outline.top() };
    let tab = Rect::from_min_size(egui::pos2(outline.left(), top), galley.size());
    painter.rect_filled(tab, 0.0, color);
    painter.galley(tab.min, galley, Color32::BLACK);
}

/// `person 0.87` for a prediction, `person` for ground truth; an index the
/// class list lacks is named by its number.
pub fn box_label(classes: &[String], d: &Detection, scored: bool) -> String {
    let name = classes.get(d.class).cloned().unwrap_or_else(|| format!("class {}", d.class));
    if scored {
        format!("{name} {:.2}", d.score)
    } else {
        name
    }
}

/// The largest size with `image`'s aspect ratio inside `max` (scaling up too,
/// so small images are not postage stamps); zero for an empty image or box.
pub fn fit_size(image: Vec2, max: Vec2) -> Vec2 {
    let scale = (max.x / image.x).min(max.y / image.y);
    if scale.is_finite() && scale > 0.0 {
        image * scale
    } else {
        Vec2::ZERO
    }
}

fn color32([r, g, b]: [u8; 3]) -> Color32 {
    Color32::from_rgb(r, g, b)
}

/// `image` itself, or a copy resized (with `filter`) to at most [`MAX_TEXTURE_SIDE`].
fn within_texture_limit<P>(image: &ImageBuffer<P, Vec<u8>>, filter: FilterType) -> std::borrow::Cow<'_, ImageBuffer<P, Vec<u8>>>
where
    P: Pixel<Subpixel = u8> + 'static,
{
    let (w, h) = image.dimensions();
    let longest = w.max(h);
    if longest <= MAX_TEXTURE_SIDE {
        return std::borrow::Cow::Borrowed(image);
    }
    let shrink = |side: u32| ((side as u64 * MAX_TEXTURE_SIDE as u64 / longest as u64) as u32).max(1);
    std::borrow::Cow::Owned(image::imageops::resize(image, shrink(w), shrink(h), filter))
}

fn rgb_color_image(image: &RgbImage) -> ColorImage {
    let image = within_texture_limit(image, FilterType::Triangle);
    ColorImage::from_rgb([image.width() as usize, image.height() as usize], image.as_raw())
}

/// The mask in class colours, transparent where nothing is labelled or the class is hidden.
pub fn mask_color_image(mask: &GrayImage, hidden: &BTreeSet<usize>) -> ColorImage {
    let mask = within_texture_limit(mask, FilterType::Nearest);
    let palette: Vec<Color32> = (0..=u8::MAX as usize)
        .map(|label| match label.checked_sub(1) {
            Some(class) if !hidden.contains(&class) => color32(class_color(class)),
            _ => Color32::TRANSPARENT,
        })
        .collect();
    let pixels = mask.as_raw().iter().map(|&label| palette[label as usize]).collect();
    ColorImage::new([mask.width() as usize, mask.height() as usize], pixels)
}

/// The mask with the hidden classes' pixels unlabelled.
pub fn hide_classes(mask: &GrayImage, hidden: &BTreeSet<usize>) -> GrayImage {
    let mut out = mask.clone();
    for pixel in out.pixels_mut() {
        if pixel[0] > 0 && hidden.contains(&(pixel[0] as usize - 1)) {
            *pixel = Luma([0]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class: usize, score: f32) -> Detection {
        Detection { bbox: [1.0, 1.0, 5.0, 5.0], class, score }
    }

    #[test]
    fn visible_boxes_pass_the_threshold_only_when_scored_and_never_when_hidden() {
        let options = OverlayOptions { score_threshold: 0.5, hidden_det: [2].into(), ..Default::default() };
        let boxes = [det(0, 0.9), det(1, 0.3), det(2, 0.95)];
        let scored: Vec<usize> = options.visible(&boxes, true).map(|d| d.class).collect();
        assert_eq!(scored, [0]);
        let truth: Vec<usize> = options.visible(&boxes, false).map(|d| d.class).collect();
        assert_eq!(truth, [0, 1]);
    }

    #[test]
    fn mask_colours_leave_unlabelled_and_hidden_classes_transparent() {
        let mask = GrayImage::from_raw(3, 1, vec![0, 1, 2]).unwrap();
        let colours = mask_color_image(&mask, &[1].into());
        assert_eq!(colours.size, [3, 1]);
        assert_eq!(colours.pixels[0], Color32::TRANSPARENT);
        assert_eq!(colours.pixels[1], color32(class_color(0)));
        assert_eq!(colours.pixels[2], Color32::TRANSPARENT);
    }

    #[test]
    fn a_saved_overlay_leaves_hidden_classes_out() {
        let image = RgbImage::new(10, 10);
        let mask = GrayImage::from_pixel(10, 10, Luma([3]));
        let prediction = Prediction { detections: vec![Detection { bbox: [2.0, 2.0, 8.0, 8.0], class: 1, score: 0.9 }], mask: Some(mask), class_probabilities: vec![] };
        let all = OverlayOptions { opacity: 1.0, ..Default::default() };
        let drawn = all.render(&image, &prediction);
        assert_eq!(drawn.get_pixel(5, 5).0, class_color(2));
        assert_eq!(drawn.get_pixel(2, 2).0, class_color(1));
        let filtered = OverlayOptions { hidden_det: [1].into(), hidden_seg: [2].into(), ..all };
        assert_eq!(filtered.render(&image, &prediction), image);
    }

    #[test]
    fn hovering_names_the_pixel_classes_and_the_boxes_with_their_verdicts() {
        let (det, seg) = (vec!["person".to_string()], vec!["wall".to_string(), "floor".to_string()]);
        let names = ClassNames { det: &det, seg: &seg };
        let predicted = GrayImage::from_raw(2, 1, vec![1, 2]).unwrap();
        let truth = GrayImage::from_raw(2, 1, vec![2, 0]).unwrap();
        let boxes = [Detection { bbox: [0.0, 0.0, 1.5, 1.0], class: 0, score: 0.8 }];
        let errors = ErrorLayer::new(Some(vec![(Detection { score: 1.0, ..boxes[0] }, false)]), Some(truth), &boxes, Some(&predicted));
        let layers = Layers { name: "prediction", mask: Some(&predicted), boxes: &boxes, scored: true, errors: Some(&errors) };
        let drawn = [(0, &boxes[0])];
        let text = hover_text(&layers, Some(&errors), &drawn, names, 0.5, 0.5);
        assert_eq!(text, "pixel (0, 0)\npredicted: wall\ntruth: floor\nbox: person 0.80 (true positive)");
        let text = hover_text(&layers, None, &drawn, names, 1.9, 0.2);
        assert_eq!(text, "pixel (1, 0)\npredicted: floor");
    }

    #[test]
    fn labels_name_the_class_and_the_score_of_predictions() {
        let classes = vec!["person".to_string()];
        assert_eq!(box_label(&classes, &det(0, 0.871), true), "person 0.87");
        assert_eq!(box_label(&classes, &det(0, 0.871), false), "person");
        assert_eq!(box_label(&classes, &det(7, 0.5), false), "class 7");
    }

    #[test]
    fn images_fit_their_box_keeping_the_aspect_ratio() {
        assert_eq!(fit_size(Vec2::new(200.0, 100.0), Vec2::new(100.0, 100.0)), Vec2::new(100.0, 50.0));
        assert_eq!(fit_size(Vec2::new(10.0, 20.0), Vec2::new(100.0, 100.0)), Vec2::new(50.0, 100.0));
        assert_eq!(fit_size(Vec2::new(0.0, 0.0), Vec2::new(100.0, 100.0)), Vec2::ZERO);
        assert_eq!(fit_size(Vec2::new(10.0, 10.0), Vec2::new(f32::INFINITY, f32::INFINITY)), Vec2::ZERO);
    }

    #[test]
    fn textures_larger_than_the_limit_are_downscaled() {
        let wide = GrayImage::new(MAX_TEXTURE_SIDE * 2, 10);
        let colours = mask_color_image(&wide, &BTreeSet::new());
        assert_eq!(colours.size, [MAX_TEXTURE_SIDE as usize, 5]);
        let small = RgbImage::new(4, 3);
        assert_eq!(rgb_color_image(&small).size, [4, 3]);
    }
}
