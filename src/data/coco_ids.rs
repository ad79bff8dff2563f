//! The ids COCO files give images and categories, apart from the COCO reader:
//! every format's records (VOC's too) carry them, and results are written with them.

use std::collections::HashMap;
use std::io::BufReader;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// COCO's ids are numbers; some converters write strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum CocoId {
    Number(i64),
    Text(String),
}

impl CocoId {
    /// The id a dataset of another format gives image `id` in COCO files: the
    /// number when the id is all digits (VOC's "000005" is 5, as the usual
    /// VOC-to-COCO converters do), else the id itself.
    pub fn of_image(id: &str) -> Self {
        match id.parse::<i64>() {
            Ok(n) if id.bytes().all(|b| b.is_ascii_digit()) => Self::Number(n),
            _ => Self::Text(id.to_string()),
        }
    }
}

/// The ids COCO files (results and ground truth) give a dataset's images and
/// classes. A COCO dataset keeps its file's own, so pycocotools scores results
/// against that very file; every other format is numbered by
/// [`CocoIds::numbered`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct CocoIds {
    /// By record id.
    images: HashMap<String, CocoId>,
    /// By class index.
    categories: Vec<CocoId>,
}

impl CocoIds {
    /// Images by [`CocoId::of_image`], categories by 1-based position in the class list.
    pub fn numbered<'a>(record_ids: impl IntoIterator<Item = &'a str>, classes: usize) -> Self {
        Self {
            images: record_ids.into_iter().map(|id| (id.to_string(), CocoId::of_image(id))).collect(),
            categories: (1..=classes as i64).map(CocoId::Number).collect(),
        }
    }

    /// Images by record id and categories by class index, as given.
    pub fn from_parts(images: HashMap<String, CocoId>, categories: Vec<CocoId>) -> Self {
        Self { images, categories }
    }

    /// The ids `path` (a COCO file) gives images named by file stem and the
    /// classes `class_names`, matched by category name: what `predict --coco-ids` uses.
    pub fn read(path: &Path, class_names: &[String]) -> Result<Self> {
        #[derive(Deserialize)]
        struct Listed {
            images: Vec<ListedImage>,
            categories: Vec<CocoCategory>,
        }
        #[derive(Deserialize)]
        struct ListedImage {
            id: CocoId,
            file_name: String,
        }
        let listed: Listed = read_file(path)?;
        let mut images = HashMap::with_capacity(listed.images.len());
        for image in listed.images {
            let stem = Path::new(&image.file_name).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            if let Some(first) = images.insert(stem.clone(), image.id.clone()) {
                bail!("{}: images {first} and {} are both named {stem:?} (predictions are named by file stem)", path.display(), image.id);
            }
        }
        let categories = class_names
            .iter()
            .map(|name| {
                let found = listed.categories.iter().find(|c| &c.name == name);
                found.map(|c| c.id.clone()).ok_or_else(|| {
                    let names: Vec<&str> = listed.categories.iter().map(|c| c.name.as_str()).collect();
                    anyhow::anyhow!("{}: no category named {name:?} (categories: {})", path.display(), names.join(", "))
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { images, categories })
    }

    /// The id of the image whose record id is `id`.
    pub fn image(&self, id: &str) -> Option<&CocoId> {
        self.images.get(id)
    }

    pub fn category(&self, class: usize) -> &CocoId {
        &self.categories[class]
    }

    /// The class a category id stands for.
    pub fn class_of(&self, category: &CocoId) -> Option<usize> {
        self.categories.iter().position(|c| c == category)
    }

    pub fn categories(&self) -> &[CocoId] {
        &self.categories
    }
}

impl std::fmt::Display for CocoId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Text(s) => write!(f, "{s:?}"),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct CocoCategory {
    pub(super) id: CocoId,
    pub(super) name: String,
}

/// A COCO JSON file, streamed into `T`; an error names the file and the field.
pub(super) fn read_file<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let file = std::fs::File::open(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let mut json = serde_json::Deserializer::from_reader(BufReader::with_capacity(1 << 20, file));
    serde_path_to_error::deserialize(&mut json).map_err(|e| {
        anyhow::anyhow!("{}: not a COCO detection file: {} (at {})", path.display(), e.inner(), e.path())
    })
}
