//! Class vocabularies: the 20 PASCAL VOC classes, the 150 ADE20K (SceneParse150)
//! classes, and user-supplied lists for custom VOC-format data.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// The 20 PASCAL VOC classes in the devkit's order.
const VOC_LIST: &str = include_str!("../../assets/classes/voc20.txt");

/// The 150 SceneParse150 classes in label order: label `i + 1` is line `i`,
/// label 0 is "other" (ignored).
const ADE_LIST: &str = include_str!("../../assets/classes/ade150.txt");

/// The name of mask label `label` (ADE encoding) over the class `names`:
/// 0 is "unlabelled", `i + 1` is `names[i]`, a label past the list is named by its class number.
pub fn mask_label_name(names: &[String], label: usize) -> String {
    match label.checked_sub(1) {
        None => "unlabelled".into(),
        Some(class) => names.get(class).cloned().unwrap_or_else(|| format!("class {class}")),
    }
}

/// An ordered list of class names; a class's index is its id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClassList {
    names: Vec<String>,
}

impl ClassList {
    pub fn new(names: Vec<String>) -> Self {
        Self { names }
    }

    pub fn voc() -> Self {
        Self::from_text(VOC_LIST)
    }

    pub fn ade() -> Self {
        Self::from_text(ADE_LIST)
    }

    /// A built-in list in the plain format (one name per line, `#` comments).
    pub(crate) fn from_text(text: &str) -> Self {
        Self::new(plain_names(text))
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn name(&self, id: usize) -> &str {
        &self.names[id]
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Reads a plain class-list file: one name per line, blank lines and `#` comments skipped.
    pub fn read_plain(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read class list", path.display()))?;
        let names = plain_names(&text);
        if names.is_empty() {
            bail!("{}: class list is empty", path.display());
        }
        check_unique(&names, path)?;
        Ok(Self::new(names))
    }

    /// Writes the list in the format [`ClassList::read_plain`] reads.
    pub fn write_plain(&self, path: &Path) -> Result<()> {
        let mut text = self.names.join("\n");
        text.push('\n');
        std::fs::write(path, text).with_context(|| format!("{}: cannot write", path.display()))
    }

    /// Reads ADE20K's `objectInfo150.txt` (tab-separated `Idx Ratio Train Val Name`)
    /// or `objectInfo150.csv` (`Idx,Ratio,Train,Val,Stuff,Name`, aliases joined by `;`).
    /// Each class is named by its first alias; rows must be numbered 1..N in order.
    pub fn read_ade_object_info(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read class file", path.display()))?;
        let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let mut names = Vec::new();
        for (line_no, line) in text.lines().enumerate().skip(1) {
            if line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = if is_csv {
                line.split(',').collect()
            } else {
                line.split('\t').collect()
            };
            let (idx, name) = match (fields.first(), fields.last()) {
                (Some(idx), Some(name)) if fields.len() >= 5 => (idx.trim(), name.trim()),
                _ => bail!("{}:{}: expected at least 5 columns", path.display(), line_no + 1),
            };
            let idx: usize = idx.parse().with_context(|| {
                format!("{}:{}: class index {idx:?} is not a number", path.display(), line_no + 1)
            })?;
            if idx != names.len() + 1 {
                bail!(
                    "{}:{}: class index {idx} out of order (expected {})",
                    path.display(),
                    line_no + 1,
                    names.len() + 1
                );
            }
            let separator = if is_csv { ';' } else { ',' };
            let first = name.split(separator).next().unwrap_or(name).trim();
            names.push(first.to_string());
        }
        if names.is_empty() {
            bail!("{}: no classes listed", path.display());
        }
        Ok(Self::new(names))
    }
}

/// One name per line; blank lines and `#` comments skipped.
fn plain_names(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect()
}

fn check_unique(names: &[String], path: &Path) -> Result<()> {
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            bail!("{}: class {name:?} is listed twice", path.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_lists_have_the_official_sizes_and_no_duplicates() {
        assert_eq!(ClassList::voc().len(), 20);
        assert_eq!(ClassList::ade().len(), 150);
        // "screen" appears once: "screen door" and "crt screen" are other classes.
        check_unique(ClassList::ade().names(), Path::new("builtin")).unwrap();
        check_unique(ClassList::voc().names(), Path::new("builtin")).unwrap();
        assert_eq!(ClassList::voc().index_of("tvmonitor"), Some(19));
        assert_eq!(ClassList::ade().name(12), "person");
    }

    #[test]
    fn reads_object_info_txt_and_csv() {
        let dir = tempfile::tempdir().unwrap();
        let txt = dir.path().join("objectInfo150.txt");
        std::fs::write(&txt, "Idx\tRatio\tTrain\tVal\tName\n1\t0.1\t1\t1\twall\n2\t0.1\t1\t1\tbuilding, edifice\n").unwrap();
        assert_eq!(ClassList::read_ade_object_info(&txt).unwrap().names(), ["wall", "building"]);
        let csv = dir.path().join("objectInfo150.csv");
        std::fs::write(&csv, "Idx,Ratio,Train,Val,Stuff,Name\n1,0.1,1,1,1,wall\n2,0.1,1,1,1,building;edifice\n").unwrap();
        assert_eq!(ClassList::read_ade_object_info(&csv).unwrap().names(), ["wall", "building"]);
        std::fs::write(&csv, "Idx,Ratio,Train,Val,Stuff,Name\n3,0.1,1,1,1,wall\n").unwrap();
        let err = ClassList::read_ade_object_info(&csv).unwrap_err().to_string();
        assert!(err.contains("objectInfo150.csv:2") && err.contains("out of order"), "{err}");
    }

    #[test]
    fn plain_list_rejects_duplicates_and_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("classes.txt");
        std::fs::write(&path, "# mine\ncat\n\ndog\n").unwrap();
        assert_eq!(ClassList::read_plain(&path).unwrap().names(), ["cat", "dog"]);
        std::fs::write(&path, "cat\ncat\n").unwrap();
        assert!(ClassList::read_plain(&path).unwrap_err().to_string().contains("twice"));
        std::fs::write(&path, "\n# nothing\n").unwrap();
        assert!(ClassList::read_plain(&path).unwrap_err().to_string().contains("empty"));
    }
}
