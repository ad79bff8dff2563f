//! The CVPR23 Track1 (AllInOne) submission: one JSON object holding the three
//! tasks' test predictions, exactly as the track's evaluator reads it:
//!
//! - `cls`: a list of single-key objects `{"<image name>": class_id}`;
//! - `dec`: COCO results (`image_id`, `category_id`, `bbox` `[x, y, w, h]`,
//!   `score`) with the dataset's own category ids; test image ids are the
//!   1-based line numbers of `dec/test.txt`;
//! - `seg`: a list of `{"<stem>.png": {"<class id>": [polygon, …], …}}`, every
//!   class in order with every contour of its predicted mask (outer boundaries
//!   and holes alike, as OpenCV's `findContours(RETR_TREE, CHAIN_APPROX_SIMPLE)`
//!   lists them), a polygon being `[[x, y], …]`; an absent class gets `[]`.
//!
//! The evaluator rebuilds each mask with `cv2.fillPoly` class by class in key
//! order and drops polygons of two points or fewer; `tools/track1_check.py`
//! does the same and compares.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use image::GrayImage;
use imageproc::contours::find_contours;
use imageproc::point::Point;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value;

/// The three task folders of a Track1 data folder.
pub const TASK_FOLDERS: [&str; 3] = ["cls", "dec", "seg"];

/// One polygon: contour points `[x, y]` in pixels.
pub type Polygon = Vec<[u32; 2]>;

/// The submission file's content.
#[derive(Debug, Serialize)]
pub struct Submission {
    pub cls: Vec<std::collections::BTreeMap<String, usize>>,
    pub dec: Vec<Value>,
    pub seg: Vec<SegEntry>,
}

/// One segmentation image: its mask file name and the polygons of each class.
#[derive(Debug)]
pub struct SegEntry {
    /// `<stem>.png`.
    pub name: String,
    /// Per class id (index), its polygons.
    pub classes: Vec<Vec<Polygon>>,
}

/// `{"<name>": {"0": […], "1": […], …}}`, the classes in id order (the
/// evaluator fills them in this order; a sorted map would put "10" before "2").
impl Serialize for SegEntry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Classes<'a>(&'a [Vec<Polygon>]);
        impl Serialize for Classes<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.len()))?;
                for (class, polygons) in self.0.iter().enumerate() {
                    map.serialize_entry(&class.to_string(), polygons)?;
                }
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(&self.name, &Classes(&self.classes))?;
        map.end()
    }
}

/// The contours of every class of an ADE-encoded mask (value `c + 1` is class
/// `c`, 0 nothing), `classes` classes: per class, its polygons.
pub fn class_polygons(mask: &GrayImage, classes: usize) -> Vec<Vec<Polygon>> {
    let mut present = vec![false; classes + 1];
    for &v in mask.as_raw() {
        if let Some(slot) = present.get_mut(v as usize) {
            *slot = true;
        }
    }
    (0..classes)
        .map(|class| {
            if !present[class + 1] {
                return Vec::new();
            }
            // A frame of background around the image, as OpenCV pads it: imageproc
            // starts an outer border only right of a background pixel, so a
            // region spanning whole rows (a wall across the top) would be missed.
            let label = class as u8 + 1;
            let inside = |x: u32, y: u32| x >= 1 && y >= 1 && x <= mask.width() && y <= mask.height() && mask.get_pixel(x - 1, y - 1)[0] == label;
            let framed = GrayImage::from_fn(mask.width() + 2, mask.height() + 2, |x, y| image::Luma([u8::from(inside(x, y)) * 255]));
            find_contours::<u32>(&framed)
                .iter()
                .map(|contour| {
                    let points: Vec<Point<u32>> = contour.points.iter().map(|p| Point::new(p.x - 1, p.y - 1)).collect();
                    chain_approx_simple(&points)
                })
                .collect()
        })
        .collect()
}

/// OpenCV's `CHAIN_APPROX_SIMPLE`: of a closed 8-connected border, only the
/// points where the direction changes (a straight, horizontal, vertical or
/// diagonal run keeps its two ends).
pub fn chain_approx_simple(points: &[Point<u32>]) -> Polygon {
    let n = points.len();
    if n < 3 {
        return points.iter().map(|p| [p.x, p.y]).collect();
    }
    let step = |a: &Point<u32>, b: &Point<u32>| (i64::from(b.x) - i64::from(a.x), i64::from(b.y) - i64::from(a.y));
    (0..n)
        .filter(|&i| {
            let (prev, here, next) = (&points[(i + n - 1) % n], &points[i], &points[(i + 1) % n]);
            step(prev, here) != step(here, next)
        })
        .map(|i| [points[i].x, points[i].y])
        .collect()
}

/// The images `<data>/<task>/test.txt` lists, one per line (the first field;
/// further fields, e.g. a label, are ignored), relative to the task folder, its
/// `images/` or absolute. A listed file that is missing is an error naming the line.
pub fn test_list(data: &Path, task: &str) -> Result<Vec<PathBuf>> {
    let folder = data.join(task);
    let list = folder.join("test.txt");
    let text = std::fs::read_to_string(&list).with_context(|| format!("{}: cannot read (the {task} test list)", list.display()))?;
    let mut images = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some(name) = line.split_whitespace().next() else { continue };
        let found = [folder.join(name), folder.join("images").join(name)].into_iter().find(|p| p.is_file());
        match found {
            Some(path) => images.push(path),
            None => bail!("{}: line {}: {name} is neither in {} nor in its images/", list.display(), n + 1, folder.display()),
        }
    }
    if images.is_empty() {
        bail!("{}: lists no image", list.display());
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_square_with_a_hole_gives_its_corners_and_the_holes() {
        // Class 0: a 6×6 square at (1, 1) with a 2×2 hole of class 1 at (3, 3); class 2 absent.
        let mask = GrayImage::from_fn(8, 8, |x, y| {
            let label = match (x, y) {
                (3..=4, 3..=4) => 2,
                (1..=6, 1..=6) => 1,
                _ => 0,
            };
            image::Luma([label])
        });
        let classes = class_polygons(&mask, 3);
        assert_eq!(classes[0].len(), 2, "outer border and hole border: {:?}", classes[0]);
        let mut outer = classes[0][0].clone();
        outer.sort();
        assert_eq!(outer, vec![[1, 1], [1, 6], [6, 1], [6, 6]]);
        // The hole's border runs through the square's pixels around the hole.
        assert!(classes[0][1].iter().all(|&[x, y]| (2..=5).contains(&x) && (2..=5).contains(&y)), "{:?}", classes[0][1]);
        let mut inner = classes[1][0].clone();
        inner.sort();
        assert_eq!(inner, vec![[3, 3], [3, 4], [4, 3], [4, 4]]);
        assert!(classes[2].is_empty());
    }

    #[test]
    fn regions_spanning_whole_rows_have_their_border_too() {
        // Class 0 fills the top rows edge to edge, class 1 the rest: no background anywhere.
        let mask = GrayImage::from_fn(5, 4, |_, y| image::Luma([if y < 2 { 1 } else { 2 }]));
        let classes = class_polygons(&mask, 2);
        let mut top = classes[0][0].clone();
        top.sort();
        assert_eq!(top, vec![[0, 0], [0, 1], [4, 0], [4, 1]]);
        assert_eq!(classes[1].len(), 1);
    }

    #[test]
    fn classes_are_written_in_id_order_and_absent_ones_as_empty_lists() {
        let entry = SegEntry { name: "a.png".into(), classes: (0..12).map(|c| if c == 10 { vec![vec![[1, 2], [3, 4], [5, 6]]] } else { vec![] }).collect() };
        let text = serde_json::to_string(&entry).unwrap();
        assert!(text.starts_with(r#"{"a.png":{"0":[],"1":[],"2":[]"#), "{text}");
        assert!(text.contains(r#""9":[],"10":[[[1,2],[3,4],[5,6]]],"11":[]}}"#), "{text}");
    }

    #[test]
    fn straight_runs_keep_their_ends() {
        let square: Vec<Point<u32>> = [(0, 0), (1, 0), (2, 0), (2, 1), (2, 2), (1, 2), (0, 2), (0, 1)].iter().map(|&(x, y)| Point::new(x, y)).collect();
        assert_eq!(chain_approx_simple(&square), vec![[0, 0], [2, 0], [2, 2], [0, 2]]);
        let single = [Point::new(4u32, 5u32)];
        assert_eq!(chain_approx_simple(&single), vec![[4, 5]]);
    }
}
