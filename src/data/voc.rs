//! PASCAL VOC reader (and writer, for the synthetic set): `Annotations/*.xml`,
//! `JPEGImages/*.jpg`, `ImageSets/Main/<split>.txt`, as the devkit ships them.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

use super::coco_ids::CocoIds;
use super::classes::ClassList;
use super::problem::{keep_passing, log_skipped, split_checked, Problem};

/// A box in VOC pixel coordinates: 1-based and inclusive, `[xmin, ymin, xmax, ymax]`.
pub type VocBox = [f32; 4];

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VocObject {
    pub name: String,
    /// Index into the dataset's class list.
    pub class: usize,
    pub pose: String,
    pub truncated: bool,
    pub difficult: bool,
    pub bbox: VocBox,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VocAnnotation {
    pub filename: String,
    pub width: u32,
    pub height: u32,
    pub depth: u32,
    pub objects: Vec<VocObject>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VocRecord {
    pub id: String,
    pub image_path: PathBuf,
    pub annotation_path: PathBuf,
    pub annotation: VocAnnotation,
}

/// Where the class list of a VOC-format dataset comes from.
#[derive(Debug, Clone)]
pub enum VocClasses {
    /// The 20 PASCAL VOC classes.
    Pascal,
    /// A given list (for users' own VOC-format data).
    List(ClassList),
    /// Every object name found in the split's XMLs, sorted.
    Discover,
}

/// One split of a VOC-format dataset. Records with a problem are left out of
/// `records` and listed in `problems`.
#[derive(Debug, Clone)]
pub struct VocDataset {
    pub root: PathBuf,
    pub split: String,
    pub classes: ClassList,
    pub records: Vec<VocRecord>,
    pub problems: Vec<Problem>,
    /// Images the split lists, those left out for a problem included.
    pub listed: usize,
    /// The ids a COCO file gave the images and categories, when read from one.
    pub file_ids: Option<CocoIds>,
}

/// The class list file a VOC-format dataset may carry in its root (the synthetic set does).
pub const CLASS_LIST_FILE: &str = "classes.txt";

impl VocClasses {
    /// `<root>/classes.txt` when the dataset carries one, else the 20 PASCAL classes.
    pub fn for_root(root: &Path) -> Result<Self> {
        let path = root.join(CLASS_LIST_FILE);
        Ok(if path.is_file() { Self::List(ClassList::read_plain(&path)?) } else { Self::Pascal })
    }
}

/// The split name under which [`VocDataset::open_all`] reads every listed image.
pub const ALL_SPLITS: &str = "all";

/// Finds the dataset root below `dir`: `dir` itself when it holds `Annotations/`,
/// else `dir/VOC2007`, else `dir/VOCdevkit/VOC2007`.
pub fn resolve_root(dir: &Path) -> Result<PathBuf> {
    if !dir.is_dir() {
        bail!("{}: VOC folder does not exist", dir.display());
    }
    for candidate in [dir.to_path_buf(), dir.join("VOC2007"), dir.join("VOCdevkit").join("VOC2007")] {
        if candidate.join("Annotations").is_dir() {
            return Ok(candidate);
        }
    }
    bail!(
        "{}: not a VOC dataset (expected Annotations/, JPEGImages/ and ImageSets/Main/ here, \
         or in VOC2007/ or VOCdevkit/VOC2007/ below it)",
        dir.display()
    )
}

/// The split names with a list file in `ImageSets/Main/` (per-class lists excluded).
pub fn available_splits(root: &Path) -> Vec<String> {
    let mut splits: Vec<String> = std::fs::read_dir(root.join("ImageSets").join("Main"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".txt").map(str::to_string))
        .filter(|s| !s.contains('_'))
        .collect();
    splits.sort();
    splits
}

/// Reads the image ids of a split list (first token of each non-empty line).
pub fn read_split(root: &Path, split: &str) -> Result<Vec<String>> {
    let path = root.join("ImageSets").join("Main").join(format!("{split}.txt"));
    if !path.is_file() {
        let available = available_splits(root);
        bail!(
            "{}: split list not found (available splits: {})",
            path.display(),
            if available.is_empty() { "none".to_string() } else { available.join(", ") }
        );
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read split list", path.display()))?;
    Ok(text.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect())
}

impl VocDataset {
    /// The ids COCO files written for this split use: its file's own, else numbered.
    pub fn coco_ids(&self) -> CocoIds {
        match &self.file_ids {
            Some(ids) => ids.clone(),
            None => CocoIds::numbered(self.records.iter().map(|r| r.id.as_str()), self.classes.len()),
        }
    }

    /// Opens one split: parses every listed annotation, checks its boxes and classes,
    /// and checks that the image exists with the size the XML states (header only;
    /// [`VocDataset::verify_images`] decodes fully).
    pub fn open(dir: &Path, split: &str, classes: VocClasses) -> Result<Self> {
        let root = resolve_root(dir)?;
        let ids = read_split(&root, split)?;
        Self::open_ids(root, split, ids, classes)
    }

    /// Opens every image listed in any split (or, without split lists, every
    /// annotation), under the split name [`ALL_SPLITS`].
    pub fn open_all(dir: &Path, classes: VocClasses) -> Result<Self> {
        let root = resolve_root(dir)?;
        let splits = available_splits(&root);
        let mut not_text = Vec::new();
        let mut ids: Vec<String> = if splits.is_empty() {
            std::fs::read_dir(root.join("Annotations"))
                .with_context(|| format!("{}: cannot list", root.join("Annotations").display()))?
                .flatten()
                .filter_map(|e| match e.file_name().to_str() {
                    Some(name) => name.strip_suffix(".xml").map(str::to_string),
                    None => {
                        not_text.push(Problem::new(e.path(), "the file name is not UTF-8, and VOC ids are text: rename it"));
                        None
                    }
                })
                .collect()
        } else {
            let mut ids = Vec::new();
            for split in &splits {
                ids.extend(read_split(&root, split)?);
            }
            ids
        };
        ids.sort();
        ids.dedup();
        let mut dataset = Self::open_ids(root, ALL_SPLITS, ids, classes)?;
        dataset.problems.extend(not_text);
        Ok(dataset)
    }

    fn open_ids(root: PathBuf, split: &str, ids: Vec<String>, classes: VocClasses) -> Result<Self> {
        let listed = ids.len();
        let parsed: Vec<(String, PathBuf, Result<RawAnnotation, String>)> = ids
            .par_iter()
            .map(|id| {
                let path = root.join("Annotations").join(format!("{id}.xml"));
                let raw = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read annotation: {e}"))
                    .and_then(|text| parse_annotation(&text));
                (id.clone(), path, raw)
            })
            .collect();
        let classes = match classes {
            VocClasses::Pascal => ClassList::voc(),
            VocClasses::List(list) => list,
            VocClasses::Discover => discover_classes(&parsed, &root)?,
        };
        let checked: Vec<Result<VocRecord, Problem>> = parsed
            .into_par_iter()
            .map(|(id, annotation_path, raw)| {
                let raw = raw.map_err(|reason| Problem::new(&annotation_path, reason))?;
                let annotation = raw
                    .resolve(&classes)
                    .map_err(|reason| Problem::new(&annotation_path, reason))?;
                let image_path = root.join("JPEGImages").join(format!("{id}.jpg"));
                check_image_header(&image_path, annotation.width, annotation.height)?;
                Ok(VocRecord { id, image_path, annotation_path, annotation })
            })
            .collect();
        let mut problems = Vec::new();
        let records = split_checked(checked, &mut problems);
        log_skipped(&format!("VOC {} split {split}", root.display()), &problems);
        Ok(Self { root, split: split.to_string(), classes, records, problems, listed, file_ids: None })
    }

    /// Decodes every image; a record whose image does not decode or whose decoded
    /// size differs from its XML moves to `problems`.
    pub fn verify_images(&mut self, on_item: &(dyn Fn() + Sync)) {
        let results: Vec<Option<Problem>> = self
            .records
            .par_iter()
            .map(|r| {
                on_item();
                let (w, h) = (r.annotation.width, r.annotation.height);
                match image::open(&r.image_path) {
                    Err(e) => Some(Problem::new(&r.image_path, format!("image does not decode: {e}"))),
                    Ok(img) if (img.width(), img.height()) != (w, h) => Some(Problem::new(
                        &r.image_path,
                        format!("image is {}x{} but the annotation says {w}x{h}", img.width(), img.height()),
                    )),
                    Ok(_) => None,
                }
            })
            .collect();
        self.records = keep_passing(std::mem::take(&mut self.records), results, &mut self.problems);
    }
}

pub(crate) fn check_image_header(path: &Path, width: u32, height: u32) -> Result<(), Problem> {
    if !path.is_file() {
        return Err(Problem::new(path, "image file is missing"));
    }
    let dims = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| Problem::new(path, format!("cannot open image: {e}")))?
        .into_dimensions()
        .map_err(|e| Problem::new(path, format!("image does not decode: {e}")))?;
    if dims != (width, height) {
        return Err(Problem::new(
            path,
            format!("image is {}x{} but the annotation says {width}x{height}", dims.0, dims.1),
        ));
    }
    Ok(())
}

fn discover_classes(
    parsed: &[(String, PathBuf, Result<RawAnnotation, String>)],
    root: &Path,
) -> Result<ClassList> {
    let mut names: Vec<String> = parsed
        .iter()
        .filter_map(|(_, _, raw)| raw.as_ref().ok())
        .flat_map(|raw| raw.objects.iter().map(|o| o.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        bail!("{}: no object names found to discover classes from", root.display());
    }
    Ok(ClassList::new(names))
}

/// An annotation as written in the XML, before class names are resolved.
#[derive(Debug)]
struct RawAnnotation {
    filename: String,
    width: u32,
    height: u32,
    depth: u32,
    objects: Vec<RawObject>,
}

#[derive(Debug)]
struct RawObject {
    name: String,
    pose: String,
    truncated: bool,
    difficult: bool,
    bbox: VocBox,
}

impl RawAnnotation {
    /// Resolves class names and checks every box lies inside the image and is non-empty.
    fn resolve(self, classes: &ClassList) -> Result<VocAnnotation, String> {
        let mut objects = Vec::with_capacity(self.objects.len());
        for (i, o) in self.objects.into_iter().enumerate() {
            let class = classes
                .index_of(&o.name)
                .ok_or_else(|| format!("object {}: unknown class {:?}", i + 1, o.name))?;
            let [x0, y0, x1, y1] = o.bbox;
            // Inclusive pixel coordinates: xmin == xmax is a valid 1-pixel-wide box.
            if x1 < x0 || y1 < y0 {
                return Err(format!("object {} ({}): empty box {:?}", i + 1, o.name, o.bbox));
            }
            if x0 < 1.0 || y0 < 1.0 || x1 > self.width as f32 || y1 > self.height as f32 {
                return Err(format!(
                    "object {} ({}): box {:?} outside the {}x{} image (VOC boxes are 1-based)",
                    i + 1,
                    o.name,
                    o.bbox,
                    self.width,
                    self.height
                ));
            }
            objects.push(VocObject {
                name: o.name,
                class,
                pose: o.pose,
                truncated: o.truncated,
                difficult: o.difficult,
                bbox: o.bbox,
            });
        }
        Ok(VocAnnotation {
            filename: self.filename,
            width: self.width,
            height: self.height,
            depth: self.depth,
            objects,
        })
    }
}

/// Reads one annotation file, class names resolved against `classes`.
pub fn read_annotation(path: &Path, classes: &ClassList) -> Result<VocAnnotation, Problem> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read annotation: {e}"))
        .and_then(|text| parse_annotation(&text))
        .and_then(|raw| raw.resolve(classes))
        .map_err(|reason| Problem::new(path, reason))
}

fn parse_annotation(text: &str) -> Result<RawAnnotation, String> {
    let doc = roxmltree::Document::parse(text).map_err(|e| format!("malformed XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "annotation" {
        return Err(format!("root element is <{}>, expected <annotation>", root.tag_name().name()));
    }
    let size = child(root, "size").ok_or("missing <size>")?;
    let width: u32 = parse_field(size, "width")?;
    let height: u32 = parse_field(size, "height")?;
    let depth: u32 = child_text(size, "depth").map_or(Ok(3), |t| {
        t.parse().map_err(|_| format!("<depth> is not a number: {t:?}"))
    })?;
    if width == 0 || height == 0 {
        return Err(format!("image size {width}x{height} is empty"));
    }
    let filename = child_text(root, "filename").unwrap_or_default().to_string();
    let mut objects = Vec::new();
    for (i, obj) in root.children().filter(|n| n.has_tag_name("object")).enumerate() {
        let err = |e: String| format!("object {}: {e}", i + 1);
        let name = child_text(obj, "name").ok_or_else(|| err("missing <name>".into()))?.to_string();
        let bndbox = child(obj, "bndbox").ok_or_else(|| err("missing <bndbox>".into()))?;
        let coord = |tag: &str| -> Result<f32, String> {
            let t = child_text(bndbox, tag).ok_or_else(|| err(format!("missing <{tag}>")))?;
            t.parse::<f64>().map(|v| v as f32).map_err(|_| err(format!("<{tag}> is not a number: {t:?}")))
        };
        let bbox = [coord("xmin")?, coord("ymin")?, coord("xmax")?, coord("ymax")?];
        let flag = |tag: &str| -> Result<bool, String> {
            match child_text(obj, tag) {
                None | Some("0") | Some("") => Ok(false),
                Some("1") => Ok(true),
                Some(t) => Err(err(format!("<{tag}> must be 0 or 1, found {t:?}"))),
            }
        };
        objects.push(RawObject {
            pose: child_text(obj, "pose").unwrap_or("Unspecified").to_string(),
            truncated: flag("truncated")?,
            difficult: flag("difficult")?,
            name,
            bbox,
        });
    }
    Ok(RawAnnotation { filename, width, height, depth, objects })
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, tag: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children().find(|n| n.has_tag_name(tag))
}

fn child_text<'a>(node: roxmltree::Node<'a, '_>, tag: &str) -> Option<&'a str> {
    child(node, tag).map(|n| n.text().unwrap_or("").trim())
}

fn parse_field<T: std::str::FromStr>(node: roxmltree::Node, tag: &str) -> Result<T, String> {
    let text = child_text(node, tag).ok_or_else(|| format!("missing <{tag}>"))?;
    text.parse().map_err(|_| format!("<{tag}> is not a number: {text:?}"))
}

/// Renders an annotation as a devkit-style XML document.
pub fn annotation_xml(a: &VocAnnotation, database: &str) -> String {
    let mut xml = format!(
        "<annotation>\n\t<folder>VOC2007</folder>\n\t<filename>{}</filename>\n\t<source>\n\t\t<database>{}</database>\n\t</source>\n\t<size>\n\t\t<width>{}</width>\n\t\t<height>{}</height>\n\t\t<depth>{}</depth>\n\t</size>\n\t<segmented>0</segmented>\n",
        escape(&a.filename), escape(database), a.width, a.height, a.depth
    );
    for o in &a.objects {
        xml.push_str(&format!(
            "\t<object>\n\t\t<name>{}</name>\n\t\t<pose>{}</pose>\n\t\t<truncated>{}</truncated>\n\t\t<difficult>{}</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>{}</xmin>\n\t\t\t<ymin>{}</ymin>\n\t\t\t<xmax>{}</xmax>\n\t\t\t<ymax>{}</ymax>\n\t\t</bndbox>\n\t</object>\n",
            escape(&o.name), escape(&o.pose), o.truncated as u8, o.difficult as u8,
            o.bbox[0], o.bbox[1], o.bbox[2], o.bbox[3]
        ));
    }
    xml.push_str("</annotation>\n");
    xml
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(name: &str, bbox: VocBox, difficult: bool) -> VocObject {
        VocObject { name: name.into(), class: 0, pose: "Left".into(), truncated: true, difficult, bbox }
    }

    #[test]
    fn xml_round_trips_every_field() {
        let a = VocAnnotation {
            filename: "000001.jpg".into(),
            width: 64,
            height: 48,
            depth: 3,
            objects: vec![object("dog", [3.0, 4.0, 30.0, 40.0], true)],
        };
        let raw = parse_annotation(&annotation_xml(&a, "test")).unwrap();
        let classes = ClassList::new(vec!["dog".into()]);
        assert_eq!(raw.resolve(&classes).unwrap(), a);
    }

    #[test]
    fn bad_annotations_name_the_problem() {
        let xml = |obj: &str| {
            format!("<annotation><size><width>10</width><height>10</height></size>{obj}</annotation>")
        };
        let classes = ClassList::voc();
        let check = |text: &str| parse_annotation(text).and_then(|r| r.resolve(&classes)).unwrap_err();
        assert!(check("<annotation><size>").starts_with("malformed XML"));
        assert!(check("<annotation/>").contains("missing <size>"));
        let box_xml = |name: &str, b: [&str; 4]| {
            xml(&format!("<object><name>{name}</name><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox></object>", b[0], b[1], b[2], b[3]))
        };
        assert!(check(&box_xml("unicorn", ["1", "1", "5", "5"])).contains("unknown class \"unicorn\""));
        assert!(check(&box_xml("dog", ["1", "1", "11", "5"])).contains("outside"));
        assert!(check(&box_xml("dog", ["0", "1", "5", "5"])).contains("outside"));
        assert!(check(&box_xml("dog", ["6", "1", "5", "5"])).contains("empty box"));
        assert!(parse_annotation(&box_xml("dog", ["5", "1", "5", "5"])).and_then(|r| r.resolve(&classes)).is_ok());
        assert!(check(&box_xml("dog", ["a", "1", "5", "5"])).contains("<xmin> is not a number"));
        assert!(parse_annotation(&box_xml("dog", ["1", "1", "5.5", "5"])).is_ok());
    }
}
