//! Drawing shared by the Inspect and Preview panels: an image with a semantic
//! mask over it and boxes on top, scaled to fit, and the overlay controls.
//!
//! The image and the recoloured mask are two textures, the mask drawn with the
//! opacity as its tint and the boxes with the painter, so moving a slider costs
//! nothing; the mask texture is rebuilt only when the hidden segmentation
//! classes change.

use std::collections::{BTreeSet, HashMap};

use eframe::egui::{self, Color32, ColorImage, Rect, Sense, Stroke, StrokeKind, TextureHandle, TextureOptions, Vec2};
use image::imageops::FilterType;
use image::{GrayImage, ImageBuffer, Luma, Pixel, RgbImage};

use super::inference::SCORE_FLOOR;
use crate::model::postprocess::{Detection, PostprocessConfig};
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
}

impl Default for OverlayOptions {
    fn default() -> Self {
        Self {
            score_threshold: PostprocessConfig::display().score_threshold,
            // As `twinhead predict` draws.
            opacity: 0.5,
            hidden_det: BTreeSet::new(),
            hidden_seg: BTreeSet::new(),
        }
    }
}

impl OverlayOptions {
    /// The sliders and the class filters (with each class's colour as a legend).
    pub fn controls(&mut self, ui: &mut egui::Ui, det_classes: &[String], seg_classes: &[String]) {
        ui.add(egui::Slider::new(&mut self.score_threshold, SCORE_FLOOR..=1.0).text("Score threshold"));
        ui.add(egui::Slider::new(&mut self.opacity, 0.0..=1.0).text("Mask opacity"));
        class_filter(ui, "Detection classes", det_classes, &mut self.hidden_det);
        class_filter(ui, "Segmentation classes", seg_classes, &mut self.hidden_seg);
    }

    /// The boxes drawn: classes not hidden, and when `scored` (predictions, not
    /// ground truth) at or above the threshold.
    pub fn visible<'a>(&'a self, boxes: &'a [Detection], scored: bool) -> impl Iterator<Item = &'a Detection> + 'a {
        boxes
            .iter()
            .filter(move |d| !self.hidden_det.contains(&d.class) && (!scored || d.score >= self.score_threshold))
    }

    /// The overlay as a picture, as the window shows it (for saving).
    pub fn render(&self, image: &RgbImage, prediction: &Prediction) -> RgbImage {
        let boxes: Vec<Detection> = self.visible(&prediction.detections, true).copied().collect();
        let mask = hide_classes(&prediction.mask, &self.hidden_seg);
        overlay::render(image, &mask, &boxes, self.opacity, self.score_threshold)
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
                    let (swatch, _) = ui.allocate_exact_size(Vec2::splat(12.0), Sense::hover());
                    ui.painter().rect_filled(swatch, 2.0, color32(class_color(class)));
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
}

/// The textures of the images a panel shows, by the key the panel gives each image.
#[derive(Default)]
pub struct TextureCache {
    images: HashMap<String, TextureHandle>,
    /// By image key and layer name, with the hidden classes the texture was made for.
    masks: HashMap<(String, &'static str), (BTreeSet<usize>, TextureHandle)>,
}

impl TextureCache {
    /// Drops every texture (the panel's images changed).
    pub fn clear(&mut self) {
        self.images.clear();
        self.masks.clear();
    }

    /// Drops the textures of one image (it was predicted again).
    pub fn forget(&mut self, key: &str) {
        self.images.remove(key);
        self.masks.retain(|(k, _), _| k != key);
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
        }
        &self.masks[&id].1
    }

    /// `image` (cached under `key`) with `layers` over it, as large as fits in `max_size`.
    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        key: &str,
        image: &RgbImage,
        layers: &Layers,
        options: &OverlayOptions,
        det_classes: &[String],
        max_size: Vec2,
    ) -> egui::Response {
        let size = fit_size(Vec2::new(image.width() as f32, image.height() as f32), max_size);
        let (rect, response) = ui.allocate_exact_size(size, Sense::hover());
        let painter = ui.painter_at(rect);
        let full = Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
        painter.image(self.image(ui.ctx(), key, image).id(), rect, full, Color32::WHITE);
        if let Some(mask) = layers.mask {
            let texture = self.mask(ui.ctx(), key, layers.name, mask, &options.hidden_seg);
            painter.image(texture.id(), rect, full, Color32::WHITE.gamma_multiply(options.opacity));
        }
        let scale = if image.width() == 0 { 1.0 } else { size.x / image.width() as f32 };
        // Best boxes last, so their labels end up on top.
        let boxes: Vec<&Detection> = options.visible(layers.boxes, layers.scored).collect();
        for d in boxes.into_iter().rev() {
            paint_box(&painter, rect, scale, d, &box_label(det_classes, d, layers.scored));
        }
        response
    }

    /// A small clickable copy of `image` (sharing its texture with [`Self::show`]).
    pub fn thumbnail(&mut self, ui: &mut egui::Ui, key: &str, image: &RgbImage, height: f32, selected: bool) -> egui::Response {
        let size = fit_size(Vec2::new(image.width() as f32, image.height() as f32), Vec2::new(height * 4.0, height));
        let texture = self.image(ui.ctx(), key, image);
        let response = ui.add(egui::Image::new((texture.id(), size)).sense(Sense::click()));
        if selected {
            let stroke = Stroke::new(2.0, ui.visuals().selection.stroke.color);
            ui.painter().rect_stroke(response.rect, 0.0, stroke, StrokeKind::Outside);
        }
        response
    }
}

/// One box outline with its label tab, `bbox` scaled from image pixels into `rect`.
fn paint_box(painter: &egui::Painter, rect: Rect, scale: f32, d: &Detection, label: &str) {
    let color = color32(class_color(d.class));
    let [x0, y0, x1, y1] = d.bbox;
    let outline = Rect::from_min_max(rect.min + Vec2::new(x0, y0) * scale, rect.min + Vec2::new(x1, y1) * scale);
    painter.rect_stroke(outline, 0.0, Stroke::new(2.0, color), StrokeKind::Inside);
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
        let prediction = Prediction { detections: vec![Detection { bbox: [2.0, 2.0, 8.0, 8.0], class: 1, score: 0.9 }], mask };
        let all = OverlayOptions { opacity: 1.0, ..Default::default() };
        let drawn = all.render(&image, &prediction);
        assert_eq!(drawn.get_pixel(5, 5).0, class_color(2));
        assert_eq!(drawn.get_pixel(2, 2).0, class_color(1));
        let filtered = OverlayOptions { hidden_det: [1].into(), hidden_seg: [2].into(), ..all };
        assert_eq!(filtered.render(&image, &prediction), image);
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
