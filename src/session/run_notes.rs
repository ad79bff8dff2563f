//! What a user says of a run, kept in its folder (`notes.json`) so that it
//! travels with the folder: tags, and whether the run is archived (hidden
//! from the runs list unless asked for, never deleted).

use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::train::run_dir::write_atomic;

pub const NOTES_FILE: &str = "notes.json";
/// The most tags a run keeps, and the longest tag, in bytes.
const MAX_TAGS: usize = 64;
const MAX_TAG: usize = 64;
/// A notes file larger than this is not one of ours.
const MAX_FILE: u64 = 64 << 10;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunNotes {
    pub tags: Vec<String>,
    pub archived: bool,
}

impl RunNotes {
    /// The notes in `run_dir`: none when it has no file; an error naming the
    /// file when it holds something else.
    pub fn read(run_dir: &Path) -> Result<Self> {
        let path = run_dir.join(NOTES_FILE);
        match std::fs::metadata(&path) {
            Err(_) => return Ok(Self::default()),
            Ok(meta) if meta.len() > MAX_FILE => anyhow::bail!("{}: {} bytes, more than a notes file holds", path.display(), meta.len()),
            Ok(_) => {}
        }
        let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
        let notes: Self = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not a run's notes: {e}", path.display()))?;
        Ok(notes.tidied())
    }

    /// Writes the notes into `run_dir` (atomically).
    pub fn write(&self, run_dir: &Path) -> Result<()> {
        write_atomic(&run_dir.join(NOTES_FILE), (serde_json::to_string_pretty(self)? + "\n").as_bytes())
    }

    /// Tags from a comma-separated list, as typed.
    pub fn set_tags(&mut self, text: &str) {
        self.tags = text.split(',').map(str::to_string).collect();
        *self = std::mem::take(self).tidied();
    }

    /// Tags trimmed, non-empty, each once, within the limits.
    fn tidied(mut self) -> Self {
        let mut seen = std::collections::BTreeSet::new();
        self.tags = self
            .tags
            .into_iter()
            .map(|t| t.trim().chars().filter(|c| !c.is_control()).collect::<String>())
            .filter(|t| !t.is_empty() && t.len() <= MAX_TAG && seen.insert(t.clone()))
            .take(MAX_TAGS)
            .collect();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_round_trip_and_refuse_what_is_not_theirs() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RunNotes::read(dir.path()).unwrap(), RunNotes::default());
        let mut notes = RunNotes::default();
        notes.set_tags(" baseline, lr-sweep,,baseline , \u{7}x");
        notes.archived = true;
        assert_eq!(notes.tags, ["baseline", "lr-sweep", "x"]);
        notes.write(dir.path()).unwrap();
        assert_eq!(RunNotes::read(dir.path()).unwrap(), notes);
        std::fs::write(dir.path().join(NOTES_FILE), "[1, 2]").unwrap();
        let error = format!("{:#}", RunNotes::read(dir.path()).unwrap_err());
        assert!(error.contains("notes.json: not a run's notes"), "{error}");
    }
}
