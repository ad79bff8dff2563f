//! Classification datasets: an image list (`name.jpg id` per line, as Stanford
//! Cars and the CVPR23 Track1 `cls/train.txt` ship it) or class folders
//! (torchvision's ImageFolder: one sub-folder per class).
//!
//! List layout: `<root>/<split>.txt`, image paths relative to `<root>` (or to
//! `<root>/images/`), class names from `classes.txt` or `names.txt` in the root
//! (line `i` names id `i`), else `class_<id>` up to the largest id listed.
//! Folder layout: `<root>/<split>/<class>/*.jpg`, or `<root>/<class>/*.jpg`
//! read as the split `all`; classes are the folder names, sorted.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::ade::{sub_folders, FLAT_SPLIT};
use super::classes::ClassList;
use super::problem::{keep_passing, log_skipped, split_checked, Problem};

/// How a classification dataset is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClsFormat {
    /// `<split>.txt` lists of `image id` lines.
    List,
    /// One folder per class.
    Folders,
}

impl ClsFormat {
    pub fn name(self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Folders => "folders",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClsRecord {
    pub id: String,
    pub image_path: PathBuf,
    /// Index into the dataset's class list.
    pub class: usize,
}

/// One split of a classification dataset. Records with a problem are left out
/// of `records` and listed in `problems`.
#[derive(Debug, Clone)]
pub struct ClsDataset {
    pub root: PathBuf,
    pub split: String,
    pub classes: ClassList,
    pub records: Vec<ClsRecord>,
    pub problems: Vec<Problem>,
}

/// The class-name files of the list layout, in the order they are looked for.
pub const NAME_FILES: [&str; 2] = ["classes.txt", "names.txt"];

const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "bmp"];

fn is_image(path: &Path) -> bool {
    path.is_file() && path.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn images_in(dir: &Path) -> Vec<PathBuf> {
    let mut images: Vec<PathBuf> = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| is_image(p)).collect();
    images.sort();
    images
}

/// The splits of a classification root in `format`.
pub fn available_splits(root: &Path, format: ClsFormat) -> Vec<String> {
    match format {
        ClsFormat::List => {
            let mut splits: Vec<String> = std::fs::read_dir(root)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_str()?.to_string();
                    (!NAME_FILES.contains(&name.as_str())).then(|| name.strip_suffix(".txt").map(str::to_string))?
                })
                .collect();
            splits.sort();
            splits
        }
        ClsFormat::Folders if holds_class_folders(root) => vec![FLAT_SPLIT.to_string()],
        ClsFormat::Folders => sub_folders(root),
    }
}

/// The format of the classification dataset in `dir`, from its layout.
pub fn detect(dir: &Path) -> Result<ClsFormat> {
    if !dir.is_dir() {
        bail!("{}: classification dataset folder does not exist", dir.display());
    }
    let lists = !available_splits(dir, ClsFormat::List).is_empty();
    let folders = !sub_folders(dir).is_empty();
    match (lists, folders) {
        (true, false) => Ok(ClsFormat::List),
        (false, true) => Ok(ClsFormat::Folders),
        (true, true) if !sub_folders(dir).iter().any(|f| f != "images") => Ok(ClsFormat::List),
        (true, true) => bail!("{}: the layout fits both classification formats (list, folders); say which with --cls-format", dir.display()),
        (false, false) => bail!(
            "{}: not a classification dataset. Expected one of:\n  list: <split>.txt with `image class_id` lines, classes.txt optional\n  folders: <split>/<class>/*.jpg or <class>/*.jpg",
            dir.display()
        ),
    }
}

/// Whether `dir`'s sub-folders hold images themselves (class folders), not split folders.
pub fn holds_class_folders(dir: &Path) -> bool {
    class_folders(dir).iter().any(|(_, folder)| !images_in(folder).is_empty())
}

/// The sub-folders of `dir` by name, sorted: a class's name is its folder's,
/// shown with U+FFFD where it is not UTF-8 (its images are read all the same).
fn class_folders(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut folders: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    folders.sort();
    folders
}

impl ClsDataset {
    pub fn open(root: &Path, format: ClsFormat, split: &str) -> Result<Self> {
        if !root.is_dir() {
            bail!("{}: classification folder does not exist", root.display());
        }
        let dataset = match format {
            ClsFormat::List => Self::open_list(root, split)?,
            ClsFormat::Folders => Self::open_folders(root, split)?,
        };
        log_skipped(&format!("classification {} split {}", root.display(), dataset.split), &dataset.problems);
        Ok(dataset)
    }

    fn open_list(root: &Path, split: &str) -> Result<Self> {
        // Classes named by number alone are made up to the largest id: a huge one would take all memory.
        const MAX_UNNAMED_CLASSES: usize = 1 << 16;
        let list = root.join(format!("{split}.txt"));
        if !list.is_file() {
            bail!("{}: split list not found (available splits: {})", list.display(), available_splits(root, ClsFormat::List).join(", "));
        }
        let text = std::fs::read_to_string(&list).with_context(|| format!("{}: cannot read", list.display()))?;
        let names = match NAME_FILES.iter().map(|f| root.join(f)).find(|p| p.is_file()) {
            Some(path) => Some(ClassList::read_plain(&path)?),
            None => None,
        };
        let mut problems = Vec::new();
        let mut listed: Vec<(String, usize)> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.is_empty() {
                continue;
            }
            let at = |reason: String| Problem::new(&list, format!("line {}: {reason}", n + 1));
            let [name, id] = fields[..] else {
                problems.push(at(format!("expected `image class_id`, found {} fields", fields.len())));
                continue;
            };
            match id.parse::<usize>() {
                Err(_) => problems.push(at(format!("class id {id:?} is not a number"))),
                Ok(id) if names.is_none() && id >= MAX_UNNAMED_CLASSES => problems.push(at(format!(
                    "class id {id}: without a class-names file ({}) a list numbers at most {MAX_UNNAMED_CLASSES} classes",
                    NAME_FILES[0]
                ))),
                Ok(id) if names.as_ref().is_some_and(|c| id >= c.len()) => {
                    let count = names.as_ref().map_or(0, ClassList::len);
                    problems.push(at(format!("class id {id} is past the {count} classes named (0..{})", count.saturating_sub(1))));
                }
                Ok(id) => listed.push((name.to_string(), id)),
            }
        }
        let classes = names.unwrap_or_else(|| {
            let count = listed.iter().map(|(_, id)| id + 1).max().unwrap_or(0);
            ClassList::new((0..count).map(|id| format!("class_{id}")).collect())
        });
        let checked: Vec<Result<ClsRecord, Problem>> = listed
            .into_par_iter()
            .map(|(name, class)| {
                let image_path = [root.join(&name), root.join("images").join(&name)]
                    .into_iter()
                    .find(|p| p.is_file())
                    .ok_or_else(|| Problem::new(root.join(&name), format!("listed in {} but missing", list.display())))?;
                Ok(ClsRecord { id: Path::new(&name).with_extension("").to_string_lossy().into_owned(), image_path, class })
            })
            .collect();
        let records = split_checked(checked, &mut problems);
        Ok(Self { root: root.to_path_buf(), split: split.to_string(), classes, records, problems })
    }

    fn open_folders(root: &Path, split: &str) -> Result<Self> {
        let available = available_splits(root, ClsFormat::Folders);
        if !available.iter().any(|s| s == split) {
            bail!("{}: split {split:?} not found (available splits: {})", root.display(), available.join(", "));
        }
        let dir = if split == FLAT_SPLIT && holds_class_folders(root) { root.to_path_buf() } else { root.join(split) };
        let folders = class_folders(&dir);
        if folders.is_empty() {
            bail!("{}: no class folders", dir.display());
        }
        let records = folders
            .iter()
            .enumerate()
            .flat_map(|(class, (name, folder))| {
                images_in(folder).into_iter().map(move |image_path| ClsRecord {
                    id: format!("{name}/{}", image_path.file_stem().unwrap_or_default().to_string_lossy()),
                    image_path,
                    class,
                })
            })
            .collect();
        let names = folders.into_iter().map(|(name, _)| name).collect();
        Ok(Self { root: root.to_path_buf(), split: split.to_string(), classes: ClassList::new(names), records, problems: Vec::new() })
    }

    /// Decodes every image; a record whose image does not decode moves to `problems`.
    pub fn verify_images(&mut self, on_item: &(dyn Fn() + Sync)) {
        let results: Vec<Option<Problem>> = self
            .records
            .par_iter()
            .map(|r| {
                on_item();
                image::open(&r.image_path).err().map(|e| Problem::new(&r.image_path, format!("image does not decode: {e}")))
            })
            .collect();
        self.records = keep_passing(std::mem::take(&mut self.records), results, &mut self.problems);
    }

    /// Images per class, in class order.
    pub fn per_class(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for r in &self.records {
            counts[r.class] += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::new(4, 4).save(path).unwrap();
    }

    #[test]
    fn a_list_names_classes_from_a_file_or_by_id_and_its_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        image(&root.join("a.png"));
        image(&root.join("images").join("b.png"));
        std::fs::write(root.join("train.txt"), "a.png 2\nb.png\t0\n\nmissing.png 1\nc.png x\nd.png 1 2\n").unwrap();
        let set = ClsDataset::open(root, ClsFormat::List, "train").unwrap();
        assert_eq!(set.classes.names(), ["class_0", "class_1", "class_2"]);
        assert_eq!(set.records.iter().map(|r| (r.id.as_str(), r.class)).collect::<Vec<_>>(), [("a", 2), ("b", 0)]);
        let reasons: Vec<String> = set.problems.iter().map(ToString::to_string).collect();
        assert_eq!(reasons.len(), 3, "{reasons:#?}");
        assert!(reasons[0].contains("train.txt: line 5: class id \"x\" is not a number"), "{reasons:#?}");
        assert!(reasons[1].contains("line 6: expected `image class_id`, found 3 fields"), "{reasons:#?}");
        assert!(reasons[2].contains("missing.png: listed in") && reasons[2].ends_with("but missing"), "{reasons:#?}");
        std::fs::write(root.join("classes.txt"), "audi\nbmw\n").unwrap();
        let set = ClsDataset::open(root, ClsFormat::List, "train").unwrap();
        assert_eq!(set.classes.names(), ["audi", "bmw"]);
        assert!(set.problems.iter().any(|p| p.reason.contains("line 1: class id 2 is past the 2 classes named")));
        assert_eq!(available_splits(root, ClsFormat::List), ["train"]);
        // Without names, a huge id would make a class list as long: refused by line, not allocated.
        std::fs::remove_file(root.join("classes.txt")).unwrap();
        std::fs::write(root.join("train.txt"), format!("a.png 3000000000\nb.png {}\nb.png 1\n", u64::MAX)).unwrap();
        let set = ClsDataset::open(root, ClsFormat::List, "train").unwrap();
        assert_eq!(set.classes.len(), 2);
        assert_eq!(set.problems.len(), 2, "{:?}", set.problems);
        assert!(set.problems[0].reason.contains("class id 3000000000: without a class-names file"), "{:?}", set.problems);
    }

    #[test]
    fn class_folders_with_or_without_split_folders() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        image(&root.join("train").join("dog").join("1.png"));
        image(&root.join("train").join("cat").join("2.jpg"));
        image(&root.join("train").join("cat").join("3.png"));
        image(&root.join("val").join("cat").join("4.png"));
        assert_eq!(available_splits(root, ClsFormat::Folders), ["train", "val"]);
        let set = ClsDataset::open(root, ClsFormat::Folders, "train").unwrap();
        assert_eq!(set.classes.names(), ["cat", "dog"]);
        assert_eq!(set.per_class(), [2, 1]);
        let flat = ClsDataset::open(&root.join("train"), ClsFormat::Folders, FLAT_SPLIT).unwrap();
        assert_eq!(flat.records.len(), 3);
        assert!(ClsDataset::open(root, ClsFormat::Folders, "test").unwrap_err().to_string().contains("available splits: train, val"));
    }
}
