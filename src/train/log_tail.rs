//! Reading a run's `metrics.jsonl` as it grows: only the bytes appended since
//! the last read, a half-written last line kept until its end arrives, and a
//! log replaced under the reader (a resumed run rewrites it without the steps
//! it lost) noticed by the file's identity, so the reader starts over.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::events::Event;

/// The longest event line read; a longer one is counted unreadable (evaluations
/// of 150 classes with per-class values are a few KiB).
pub const MAX_LINE: usize = 4 << 20;

/// Which file a path names: the same path names another file once the log is
/// replaced by a rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity(u64, u64);

impl FileIdentity {
    pub fn of(metadata: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Self(metadata.dev(), metadata.ino())
        }
        #[cfg(not(unix))]
        {
            let created = metadata.created().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            Self(created.map_or(0, |d| d.as_nanos() as u64), 0)
        }
    }

    /// A short text for protocol headers.
    pub fn token(self) -> String {
        format!("{:x}-{:x}", self.0, self.1)
    }
}

/// What a read of the log found.
#[derive(Debug, Default, PartialEq)]
pub struct TailRead {
    /// The log was replaced (or truncated) since the last read: what was read
    /// before no longer holds, and `events` are the new log's from its start.
    pub replaced: bool,
    /// The events of the lines completed since the last read.
    pub events: Vec<Event>,
    /// Lines that did not parse (a newer build's event, damage), skipped.
    pub unreadable: usize,
}

/// The raw lines a read of the log found (what a server streams on).
#[derive(Debug, Default, PartialEq)]
pub struct TailLines {
    /// As [`TailRead::replaced`].
    pub replaced: bool,
    pub lines: Vec<Option<Vec<u8>>>,
}

/// A reader of one run's log that remembers where it stopped.
#[derive(Debug)]
pub struct LogTail {
    path: PathBuf,
    identity: Option<FileIdentity>,
    offset: u64,
    /// The start of a line whose end has not been written yet.
    partial: Vec<u8>,
    /// Skipping the rest of an overlong line.
    skipping: bool,
    /// Complete lines read so far (each one record number).
    lines: usize,
}

impl LogTail {
    /// A reader of the log at `path` (a run's `metrics.jsonl`) from its start.
    pub fn new(path: &Path) -> Self {
        Self { path: path.to_path_buf(), identity: None, offset: 0, partial: Vec::new(), skipping: false, lines: 0 }
    }

    /// Records (complete lines) read so far.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// Whether the log ends in a line without its end (being written, or torn by a kill).
    pub fn torn(&self) -> bool {
        !self.partial.is_empty() || self.skipping
    }

    pub fn identity(&self) -> Option<FileIdentity> {
        self.identity
    }

    /// Reads what was appended since the last call (everything on the first).
    pub fn read(&mut self) -> std::io::Result<TailRead> {
        let lines = self.read_lines()?;
        let mut read = TailRead { replaced: lines.replaced, ..Default::default() };
        for line in lines.lines {
            match line.and_then(|bytes| serde_json::from_slice::<Event>(&bytes).ok()) {
                Some(event) => read.events.push(event),
                None => read.unreadable += 1,
            }
        }
        Ok(read)
    }

    /// The lines completed since the last call, as written (`None` for a
    /// line longer than [`MAX_LINE`], whose bytes were not kept).
    pub fn read_lines(&mut self) -> std::io::Result<TailLines> {
        let mut read = TailLines::default();
        let metadata = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // No log (yet, or any more): a log read before is gone.
                if self.identity.take().is_some() {
                    self.restart();
                    read.replaced = true;
                }
                return Ok(read);
            }
            Err(e) => return Err(e),
        };
        let identity = FileIdentity::of(&metadata);
        if self.identity.is_some_and(|seen| seen != identity) || metadata.len() < self.offset {
            self.restart();
            read.replaced = true;
        }
        self.identity = Some(identity);
        if metadata.len() == self.offset {
            return Ok(read);
        }
        let mut file = File::open(&self.path)?;
        // The file opened may already be a newer one than the metadata read: then the next read notices.
        file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = Vec::new();
        file.take(metadata.len() - self.offset).read_to_end(&mut bytes)?;
        self.offset += bytes.len() as u64;
        for &byte in &bytes {
            if byte != b'\n' {
                if self.skipping {
                    continue;
                }
                if self.partial.len() >= MAX_LINE {
                    self.skipping = true;
                    self.partial.clear();
                    continue;
                }
                self.partial.push(byte);
                continue;
            }
            self.lines += 1;
            match std::mem::take(&mut self.skipping) {
                true => read.lines.push(None),
                false => read.lines.push(Some(std::mem::take(&mut self.partial))),
            }
        }
        Ok(read)
    }

    fn restart(&mut self) {
        self.offset = 0;
        self.partial.clear();
        self.skipping = false;
        self.lines = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::train::run_dir::METRICS_FILE;
    use crate::train::events::FinishReason;

    fn line(event: &Event) -> String {
        serde_json::to_string(event).unwrap() + "\n"
    }

    #[test]
    fn appended_lines_are_read_once_and_a_torn_line_when_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(METRICS_FILE);
        let mut tail = LogTail::new(&path);
        assert_eq!(tail.read().unwrap(), TailRead::default());
        let paused = line(&Event::Paused { step: 3 });
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
        file.write_all(paused.as_bytes()).unwrap();
        file.write_all(&paused.as_bytes()[..7]).unwrap();
        let read = tail.read().unwrap();
        assert_eq!((read.replaced, read.events.clone(), tail.lines()), (false, vec![Event::Paused { step: 3 }], 1));
        assert!(tail.read().unwrap().events.is_empty());
        file.write_all(&paused.as_bytes()[7..]).unwrap();
        file.write_all(b"{\"event\": \"from_a_newer_build\"}\n").unwrap();
        let read = tail.read().unwrap();
        assert_eq!((read.events, read.unreadable, tail.lines()), (vec![Event::Paused { step: 3 }], 1, 3));
    }

    #[test]
    fn a_replaced_log_is_read_again_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(METRICS_FILE);
        std::fs::write(&path, line(&Event::Paused { step: 1 }) + &line(&Event::Resumed { step: 1 })).unwrap();
        let mut tail = LogTail::new(&path);
        assert_eq!(tail.read().unwrap().events.len(), 2);
        // A resumed run writes its log anew through a rename, then appends.
        let tmp = dir.path().join("metrics.tmp");
        std::fs::write(&tmp, line(&Event::Paused { step: 1 })).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let finished = Event::Finished { step: 1, reason: FinishReason::Stopped, wall_seconds: 1.0 };
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(line(&finished).as_bytes()).unwrap();
        let read = tail.read().unwrap();
        assert!(read.replaced);
        assert_eq!(read.events, vec![Event::Paused { step: 1 }, finished]);
        assert_eq!(tail.lines(), 2);
    }
}
