//! Paths written into JSON reports as text. A file name that is not UTF-8
//! (which JSON cannot hold) is written with U+FFFD in its place, as it is
//! shown on screen, instead of failing the whole report.

use std::path::{Path, PathBuf};

use serde::Serializer;

/// `#[serde(serialize_with = "path_text::one")]`
pub fn one<S: Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&path.to_string_lossy())
}

/// `#[serde(serialize_with = "path_text::groups")]`, for lists of lists of paths.
pub fn groups<S: Serializer>(groups: &[Vec<PathBuf>], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(groups.iter().map(|group| group.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>()))
}
