//! One split of any task's dataset, as its reader opened it: what every
//! reader's split has (a folder, a name, classes, records and the records left
//! out) asked the same way, whichever of the three it is.

use std::path::Path;

use super::ade::AdeDataset;
use super::classify::ClsDataset;
use super::voc::VocDataset;
use super::{ClassList, Problem};

/// A split of boxes, masks or class labels.
#[derive(Debug, Clone)]
pub enum DatasetSplit {
    Det(VocDataset),
    Seg(AdeDataset),
    Cls(ClsDataset),
}

impl DatasetSplit {
    /// The dataset's root folder (as resolved by its reader).
    pub fn root(&self) -> &Path {
        match self {
            Self::Det(split) => &split.root,
            Self::Seg(split) => &split.root,
            Self::Cls(split) => &split.root,
        }
    }

    /// The split's name (`train`, `val`, …).
    pub fn name(&self) -> &str {
        match self {
            Self::Det(split) => &split.split,
            Self::Seg(split) => &split.split,
            Self::Cls(split) => &split.split,
        }
    }

    pub fn classes(&self) -> &ClassList {
        match self {
            Self::Det(split) => &split.classes,
            Self::Seg(split) => &split.classes,
            Self::Cls(split) => &split.classes,
        }
    }

    /// The records left out, each with its problem.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Det(split) => &split.problems,
            Self::Seg(split) => &split.problems,
            Self::Cls(split) => &split.problems,
        }
    }

    /// The records read.
    pub fn len(&self) -> usize {
        match self {
            Self::Det(split) => split.records.len(),
            Self::Seg(split) => split.records.len(),
            Self::Cls(split) => split.records.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
