//! `control.jsonl` in a run folder: how a process that did not start a run
//! (the workbench beside a `twinhead train`, `twinhead serve` for a run it
//! found) steers it. A file, not a socket, because it works wherever the run
//! folder is visible: on this machine, and on a shared file system from a
//! cluster's login node, where no socket of a compute node's process reaches.
//!
//! Each line is `{"id": "...", "control": ...}`, appended in one write. The
//! trainer reads the lines written after it started (a control sent while no
//! trainer ran is never applied later), each once, and logs an
//! [`Event::ControlReceived`](super::events::Event::ControlReceived) with its
//! id before acting on it; a sender that sees the id in the log knows the
//! control was delivered, and one that sees the run finish first knows it was
//! not. Sending the same id again writes nothing, so a retried send is never
//! applied twice.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::events::Control;

pub const CONTROL_FILE: &str = "control.jsonl";

/// The longest line read; a longer one is skipped (no control is that long).
const MAX_LINE: usize = 64 << 10;

/// The most a control file may hold: beyond it, sends are refused.
const MAX_FILE: u64 = 16 << 20;

/// One control, as written to the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlLine {
    /// Chosen by the sender: 1–64 letters, digits, `-` or `_`.
    pub id: String,
    pub control: Control,
}

/// Whether `id` is a control id: 1–64 letters, digits, `-` or `_`.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A fresh control id (time and process, unique enough for one run's controls).
pub fn new_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{nanos:x}-{:x}-{n}", std::process::id())
}

/// Appends `control` to the run's control file under `id`. Returns false,
/// writing nothing, when a control with that id was sent already.
pub fn send(run_dir: &Path, id: &str, control: &Control) -> Result<bool> {
    if !valid_id(id) {
        bail!("control id {id:?}: 1-64 letters, digits, '-' or '_'");
    }
    let path = run_dir.join(CONTROL_FILE);
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(&path)
        .with_context(|| format!("{}: cannot open", path.display()))?;
    // One sender at a time: the id check and the write are one step.
    file.lock().with_context(|| format!("{}: cannot lock", path.display()))?;
    let length = file.metadata().map(|m| m.len()).unwrap_or(0);
    if length > MAX_FILE {
        bail!("{}: {length} bytes of controls already; not sending more", path.display());
    }
    let mut text = String::new();
    (&file).read_to_string(&mut text).with_context(|| format!("{}: cannot read", path.display()))?;
    if text.lines().filter_map(|l| serde_json::from_str::<ControlLine>(l).ok()).any(|l| l.id == id) {
        return Ok(false);
    }
    let mut line = serde_json::to_string(&ControlLine { id: id.to_string(), control: control.clone() })?;
    line.push('\n');
    // A torn line left by a killed writer ends here, so this one stays whole.
    if !text.is_empty() && !text.ends_with('\n') {
        line.insert(0, '\n');
    }
    file.write_all(line.as_bytes()).with_context(|| format!("{}: cannot append", path.display()))?;
    Ok(true)
}

/// Reads the controls appended to a run's control file since it was opened.
pub struct ControlReader {
    path: PathBuf,
    offset: u64,
    /// The start of a line whose end has not been written yet.
    partial: Vec<u8>,
    /// Skipping the rest of a line that grew past [`MAX_LINE`].
    skipping: bool,
}

impl ControlReader {
    /// A reader of `run_dir`'s control file that starts after what it holds now.
    pub fn at_end(run_dir: &Path) -> Self {
        let path = run_dir.join(CONTROL_FILE);
        let offset = std::fs::metadata(&path).map_or(0, |m| m.len());
        Self { path, offset, partial: Vec::new(), skipping: false }
    }

    /// The lines completed since the last call, each parsed, or why it was skipped.
    pub fn poll(&mut self) -> Vec<Result<ControlLine, String>> {
        let length = match std::fs::metadata(&self.path) {
            Ok(m) => m.len(),
            Err(_) => return Vec::new(),
        };
        if length < self.offset {
            // Replaced by a shorter file (removed and sent to again): read it from its start.
            self.offset = 0;
            self.partial.clear();
        }
        if length == self.offset {
            return Vec::new();
        }
        let mut bytes = Vec::new();
        let read = File::open(&self.path).and_then(|mut f| {
            f.seek(SeekFrom::Start(self.offset))?;
            f.take(length - self.offset).read_to_end(&mut bytes)
        });
        if let Err(e) = read {
            return vec![Err(format!("{}: cannot read: {e}", self.path.display()))];
        }
        self.offset += bytes.len() as u64;
        let mut lines = Vec::new();
        for &byte in &bytes {
            if byte != b'\n' {
                if !self.skipping && self.partial.len() < MAX_LINE {
                    self.partial.push(byte);
                } else if !self.skipping {
                    self.skipping = true;
                    self.partial.clear();
                    lines.push(Err(format!("{}: a line longer than {MAX_LINE} bytes, skipped", self.path.display())));
                }
                continue;
            }
            if !std::mem::take(&mut self.skipping) && !self.partial.is_empty() {
                let line = std::mem::take(&mut self.partial);
                lines.push(serde_json::from_slice::<ControlLine>(&line).map_err(|e| {
                    format!("{}: not a control ({e}): {}", self.path.display(), String::from_utf8_lossy(&line[..line.len().min(200)]))
                }));
            }
            self.partial.clear();
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_read_once_each_after_the_reader_starts_and_resent_ids_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        assert!(send(dir.path(), "before", &Control::Pause).unwrap());
        let mut reader = ControlReader::at_end(dir.path());
        assert!(reader.poll().is_empty(), "a control sent before the trainer started is not applied");
        assert!(send(dir.path(), "a1", &Control::SetLearningRate(1e-3)).unwrap());
        assert!(!send(dir.path(), "a1", &Control::SetLearningRate(1e-3)).unwrap(), "the same id twice");
        assert!(send(dir.path(), "b2", &Control::Resume).unwrap());
        let lines: Vec<ControlLine> = reader.poll().into_iter().map(Result::unwrap).collect();
        assert_eq!(lines.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["a1", "b2"]);
        assert_eq!(lines[0].control, Control::SetLearningRate(1e-3));
        assert!(reader.poll().is_empty());
        assert!(send(dir.path(), "bad id!", &Control::Stop).is_err());
    }

    #[test]
    fn a_half_written_line_waits_and_junk_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut reader = ControlReader::at_end(dir.path());
        let path = dir.path().join(CONTROL_FILE);
        std::fs::write(&path, "{\"id\": \"x\", \"control\": \"Pa").unwrap();
        assert!(reader.poll().is_empty());
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"use\"}\nnot json\n").unwrap();
        let lines = reader.poll();
        assert_eq!(lines[0].as_ref().unwrap().control, Control::Pause);
        assert!(lines[1].as_ref().unwrap_err().contains("not a control"), "{lines:?}");
        // A line without an end is bounded.
        file.write_all(&vec![b'x'; MAX_LINE + 10]).unwrap();
        file.write_all(b"\n").unwrap();
        let lines = reader.poll();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].as_ref().unwrap_err().contains("longer than"));
        // A send after a torn line starts a line of its own.
        file.write_all(b"{\"id\": \"torn").unwrap();
        assert!(send(dir.path(), "whole", &Control::Stop).unwrap());
        let lines = reader.poll();
        assert_eq!(lines.last().unwrap().as_ref().unwrap().id, "whole");
    }
}
