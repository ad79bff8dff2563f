//! Drawing predictions over images: stable class colours, the semantic mask
//! blended over the image, and box outlines. Used by `twinhead predict` and the
//! workbench's saved overlays.

use image::{GrayImage, Rgb, RgbImage};

use crate::model::postprocess::Detection;

/// A stable, distinct colour for class `index` (golden-ratio hue steps).
pub fn class_color(index: usize) -> [u8; 3] {
    let hue = (index as f32 * 0.618_034).fract();
    let saturation = if index % 2 == 0 { 0.85 } else { 0.6 };
    hsv_to_rgb(hue, saturation, 0.95)
}

fn hsv_to_rgb(h: f32, s: f32, v: f32) -> [u8; 3] {
    let i = (h * 6.0).floor();
    let f = h * 6.0 - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - f * s), v * (1.0 - (1.0 - f) * s));
    let (r, g, b) = match i as i32 % 6 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    [(r * 255.0) as u8, (g * 255.0) as u8, (b * 255.0) as u8]
}

/// Blends the mask's class colours (ADE encoding; 0 left as is) over `image`.
pub fn blend_mask(image: &mut RgbImage, mask: &GrayImage, opacity: f32) {
    for (pixel, label) in image.pixels_mut().zip(mask.pixels()) {
        if label[0] == 0 {
            continue;
        }
        let color = class_color(label[0] as usize - 1);
        for c in 0..3 {
            pixel[c] = (pixel[c] as f32 * (1.0 - opacity) + color[c] as f32 * opacity).round() as u8;
        }
    }
}

/// Draws each detection at or above `score_threshold` as a 2-pixel outline in its class colour.
pub fn draw_boxes(image: &mut RgbImage, detections: &[Detection], score_threshold: f32) {
    let (w, h) = (image.width() as i64, image.height() as i64);
    for d in detections.iter().filter(|d| d.score >= score_threshold) {
        let color = Rgb(class_color(d.class));
        let [x0, y0, x1, y1] = d.bbox.map(|v| v.round() as i64);
        for t in 0..2 {
            for x in (x0 + t).max(0)..=(x1 - 1 - t).min(w - 1) {
                for y in [y0 + t, y1 - 1 - t] {
                    if (0..h).contains(&y) {
                        image.put_pixel(x as u32, y as u32, color);
                    }
                }
            }
            for y in (y0 + t).max(0)..=(y1 - 1 - t).min(h - 1) {
                for x in [x0 + t, x1 - 1 - t] {
                    if (0..w).contains(&x) {
                        image.put_pixel(x as u32, y as u32, color);
                    }
                }
            }
        }
    }
}

/// A frame `width` pixels wide in `color` along the image's edges.
pub fn draw_frame(image: &mut RgbImage, color: [u8; 3], width: u32) {
    let (w, h) = image.dimensions();
    for (x, y, pixel) in image.enumerate_pixels_mut() {
        if x < width || y < width || x + width >= w || y + width >= h {
            *pixel = image::Rgb(color);
        }
    }
}

/// The image with the mask (if any) blended in and the boxes drawn.
pub fn render(image: &RgbImage, mask: Option<&GrayImage>, detections: &[Detection], opacity: f32, score_threshold: f32) -> RgbImage {
    let mut out = image.clone();
    if let Some(mask) = mask {
        blend_mask(&mut out, mask, opacity);
    }
    draw_boxes(&mut out, detections, score_threshold);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_stable_and_distinct_for_neighbours() {
        assert_eq!(class_color(3), class_color(3));
        for i in 0..150 {
            assert_ne!(class_color(i), class_color(i + 1));
        }
    }

    #[test]
    fn render_blends_labelled_pixels_and_outlines_boxes() {
        let image = RgbImage::from_pixel(10, 10, Rgb([0, 0, 0]));
        let mut mask = GrayImage::new(10, 10);
        mask.put_pixel(5, 5, image::Luma([1]));
        let detections = [Detection { bbox: [2.0, 2.0, 8.0, 8.0], class: 4, score: 0.9 }];
        let out = render(&image, Some(&mask), &detections, 1.0, 0.5);
        assert_eq!(out.get_pixel(5, 5).0, class_color(0));
        assert_eq!(out.get_pixel(2, 2).0, class_color(4));
        assert_eq!(out.get_pixel(7, 5).0, class_color(4));
        assert_eq!(out.get_pixel(4, 4).0, [0, 0, 0]);
        assert_eq!(out.get_pixel(0, 0).0, [0, 0, 0]);
        // Below the threshold nothing is drawn.
        assert_eq!(render(&image, Some(&GrayImage::new(10, 10)), &detections, 1.0, 0.95), image);
    }
}
