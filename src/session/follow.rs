//! Following the runs this process does not train: a thread that looks for new
//! run folders and tails each run's log (only the bytes appended since its last
//! look), and tells the session what changed over a channel. A run another
//! process trains (`twinhead train`, a cluster job writing to a shared file
//! system) holds its folder's lock ([`TrainLock`]); the follower reports when
//! that changes, so the workbench marks it *running elsewhere* and, when the
//! lock goes without a finish in the log, *interrupted*.
//!
//! No file is touched on the window's thread: a slow or hung file system
//! delays the news, never a frame.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::run_record::RunRecord;
use crate::train::log_tail::LogTail;
use crate::train::run_dir::{self, LockState, TrainLock};
use crate::train::Event;

/// How often the logs are looked at: a step's point is drawn within about this.
pub const TAIL_EVERY: Duration = Duration::from_millis(300);
/// How often the runs folder is scanned for new runs, and the locks looked at.
const SCAN_EVERY: Duration = Duration::from_secs(1);

/// What the session tells the follower.
pub enum Command {
    /// Follow `dir`, whose log was read up to the tail.
    Follow(PathBuf, LogTail),
    /// This process trains (or has queued) the run in `dir`: its events come over the trainer's channel.
    Own(PathBuf),
    /// This process no longer trains it: follow its log from where it ends now.
    Release(PathBuf),
    /// The run was deleted.
    Forget(PathBuf),
}

/// What the follower tells the session.
#[derive(Debug)]
pub enum News {
    /// A run folder that appeared, read whole.
    Appeared(Box<RunRecord>),
    /// Events appended to the log of the run in `dir`, and lines that did not parse.
    Events(PathBuf, Vec<Event>, usize),
    /// The run's log was replaced (a resumed run drops the steps it lost): the run read anew.
    Replaced(Box<RunRecord>),
    /// Whether a process holds the run's lock changed.
    Lock(PathBuf, LockState),
    /// A folder that could not be read (named once).
    Unreadable(PathBuf, String),
}

pub struct Follower {
    commands: Sender<Command>,
    pub news: Receiver<News>,
    thread: Option<JoinHandle<()>>,
}

impl Follower {
    /// Starts following the runs under `runs_root`; `repaint` is called after news.
    pub fn start(runs_root: &Path, repaint: Arc<dyn Fn() + Send + Sync>) -> Self {
        let (commands, command_rx) = crossbeam_channel::unbounded();
        let (news_tx, news) = crossbeam_channel::unbounded();
        let root = runs_root.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("run follower".into())
            .spawn(move || Watch::new(root, news_tx, repaint).run(command_rx))
            .expect("a thread for the follower");
        Self { commands, news, thread: Some(thread) }
    }

    pub fn send(&self, command: Command) {
        // The thread ends only when this handle drops.
        let _ = self.commands.send(command);
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let (dead, _) = crossbeam_channel::bounded(0);
        self.commands = dead;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One followed run.
struct Followed {
    tail: LogTail,
    lock: LockState,
}

/// The follower thread's state.
struct Watch {
    root: PathBuf,
    news: Sender<News>,
    repaint: Arc<dyn Fn() + Send + Sync>,
    followed: HashMap<PathBuf, Followed>,
    /// Runs this process trains or has queued, and folders already named unreadable.
    skipped: HashSet<PathBuf>,
    last_scan: Option<Instant>,
}

impl Watch {
    fn new(root: PathBuf, news: Sender<News>, repaint: Arc<dyn Fn() + Send + Sync>) -> Self {
        Self { root, news, repaint, followed: HashMap::new(), skipped: HashSet::new(), last_scan: None }
    }

    fn run(mut self, commands: Receiver<Command>) {
        loop {
            match commands.recv_timeout(TAIL_EVERY) {
                Ok(command) => {
                    self.apply(command);
                    // Take every command waiting before reading anything.
                    while let Ok(command) = commands.try_recv() {
                        self.apply(command);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let mut told = false;
            if self.last_scan.is_none_or(|at| at.elapsed() >= SCAN_EVERY) {
                self.last_scan = Some(Instant::now());
                told |= self.scan();
                told |= self.look_at_locks();
            }
            told |= self.tail_logs();
            if told {
                (self.repaint)();
            }
        }
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Follow(dir, tail) => {
                let lock = TrainLock::state(&dir);
                self.skipped.remove(&dir);
                self.followed.insert(dir, Followed { tail, lock });
            }
            Command::Own(dir) => {
                self.followed.remove(&dir);
                self.skipped.insert(dir);
            }
            Command::Release(dir) => {
                self.skipped.remove(&dir);
                // What this process wrote is known; what others append from now on is news.
                let mut tail = LogTail::new(&dir.join(run_dir::METRICS_FILE));
                let _ = tail.read();
                let lock = TrainLock::state(&dir);
                self.followed.insert(dir, Followed { tail, lock });
            }
            Command::Forget(dir) => {
                self.followed.remove(&dir);
                self.skipped.insert(dir);
            }
        }
    }

    fn tell(&self, news: News) -> bool {
        self.news.send(news).is_ok()
    }

    /// Reads the run folders that appeared under the root.
    fn scan(&mut self) -> bool {
        let Ok(entries) = std::fs::read_dir(&self.root) else { return false };
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .map(|e| self.root.join(e.file_name()))
            .filter(|dir| !self.followed.contains_key(dir) && !self.skipped.contains(dir))
            .filter(|dir| dir.join(run_dir::CONFIG_FILE).is_file())
            .collect();
        found.sort();
        let mut told = false;
        for dir in found {
            match RunRecord::follow(&dir) {
                Ok((record, tail)) => {
                    let lock = TrainLock::state(&dir);
                    self.followed.insert(dir, Followed { tail, lock });
                    told |= self.tell(News::Appeared(Box::new(record)));
                }
                Err(error) => {
                    self.skipped.insert(dir.clone());
                    told |= self.tell(News::Unreadable(dir, format!("{error:#}")));
                }
            }
        }
        told
    }

    fn look_at_locks(&mut self) -> bool {
        let mut changed = Vec::new();
        for (dir, followed) in &mut self.followed {
            let lock = TrainLock::state(dir);
            if lock != followed.lock {
                followed.lock = lock;
                changed.push(News::Lock(dir.clone(), lock));
            }
        }
        changed.into_iter().fold(false, |told, news| self.tell(news) | told)
    }

    fn tail_logs(&mut self) -> bool {
        let mut news = Vec::new();
        for (dir, followed) in &mut self.followed {
            let read = match followed.tail.read() {
                Ok(read) => read,
                // A log being replaced, a network mount gone for a moment: the next look tries again.
                Err(_) => continue,
            };
            if read.replaced {
                match RunRecord::replay(dir, read.events, read.unreadable) {
                    Ok(record) => news.push(News::Replaced(Box::new(record))),
                    Err(error) => news.push(News::Unreadable(dir.clone(), format!("{error:#}"))),
                }
            } else if !read.events.is_empty() || read.unreadable > 0 {
                news.push(News::Events(dir.clone(), read.events, read.unreadable));
            }
        }
        news.into_iter().fold(false, |told, news| self.tell(news) | told)
    }
}
