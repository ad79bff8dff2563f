//! Replica 0's state as bytes, for the other replicas to start from: its
//! `last` checkpoint (weights, optimiser, EMA, teacher, trainer state) and the
//! run's `switch` checkpoint when there is one, as a run folder of their own.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The files under `root` (recursively), packed: per file its relative path
/// and its bytes, each preceded by its length.
pub fn pack(root: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for path in files(root)? {
        let name = path.strip_prefix(root).expect("listed under root").to_string_lossy().into_owned();
        let data = std::fs::read(&path).with_context(|| format!("{}: cannot read", path.display()))?;
        for part in [name.as_bytes(), &data] {
            out.extend((part.len() as u64).to_le_bytes());
            out.extend_from_slice(part);
        }
    }
    Ok(out)
}

/// Writes what [`pack`] packed under `root`.
pub fn unpack(bytes: &[u8], root: &Path) -> Result<()> {
    fn take<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8]> {
        let Some((len, tail)) = rest.split_first_chunk::<8>() else { bail!("a replica snapshot ends early") };
        let len = u64::from_le_bytes(*len) as usize;
        if tail.len() < len {
            bail!("a replica snapshot ends early");
        }
        let (part, tail) = tail.split_at(len);
        *rest = tail;
        Ok(part)
    }
    let mut rest = bytes;
    while !rest.is_empty() {
        let name = String::from_utf8_lossy(take(&mut rest)?).into_owned();
        let path = root.join(&name);
        if name.split(['/', '\\']).any(|c| c == "..") {
            bail!("a replica snapshot names {name:?} outside its folder");
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, take(&mut rest)?).with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok(())
}

/// A new, empty folder under the system's temporary folder, for a snapshot
/// being packed or a replica's copy of one.
pub fn scratch_dir(what: &str) -> Result<PathBuf> {
    static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("twinhead-{what}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    Ok(dir)
}

fn files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        match path.is_dir() {
            true => found.extend(files(&path)?),
            false => found.push(path),
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_packed_folder_unpacks_the_same() {
        let (from, to) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::create_dir_all(from.path().join("checkpoints/last")).unwrap();
        std::fs::write(from.path().join("checkpoints/last/state.json"), b"{}").unwrap();
        std::fs::write(from.path().join("empty"), b"").unwrap();
        let bytes = super::pack(from.path()).unwrap();
        super::unpack(&bytes, to.path()).unwrap();
        assert_eq!(std::fs::read(to.path().join("checkpoints/last/state.json")).unwrap(), b"{}");
        assert_eq!(std::fs::read(to.path().join("empty")).unwrap(), b"");
        assert!(super::unpack(&bytes[..bytes.len() - 1], to.path()).is_err());
    }
}
