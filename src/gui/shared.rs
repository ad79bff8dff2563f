//! The state every panel may read or change: settings, the runs, which runs
//! are selected, and the notifications. Panels keep their own view state.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::serve::client::Client;
use crate::serve::remote::RemoteServer;
use crate::session::{Notice, NoticeLevel, Session};
use super::settings::{ServerEntry, Settings};
use crate::train::config::TrainConfig;
use crate::backend::device::DeviceSpec;
use crate::train::parallel::Placement;

/// The folder under the runs folder holding a mirror of each server's runs
/// (their configuration and timeline, for the panels that read files).
pub const REMOTE_MIRRORS: &str = ".remote";

pub struct Shared {
    pub settings: Settings,
    pub session: Session,
    pub selection: Selection,
    pub notifications: Notifications,
    pub repaint: Repaint,
    /// A configuration for the Setup panel to take over ("duplicate config").
    pub setup_request: Option<TrainConfig>,
    /// Image files dropped on the window, for the Preview panel.
    pub dropped_files: Vec<PathBuf>,
    /// The devices new runs train on, one replica each (chosen on Setup, used
    /// by the sweep too); never empty, all of one kind.
    pub devices: Vec<DeviceSpec>,
    /// The servers connected, by label (their runs are in the session).
    pub servers: HashMap<String, Arc<Client>>,
}

impl Shared {
    /// The state for `settings`, with the past runs read from its runs folder
    /// (folders that could not be read are reported as notifications).
    pub fn new(settings: Settings) -> Self {
        let repaint = Repaint::default();
        let (session, notices) = Session::open(&settings.runs_dir, repaint.callback());
        let mut notifications = Notifications::default();
        notifications.extend(notices);
        let mut shared = Self {
            settings,
            session,
            selection: Selection::default(),
            notifications,
            repaint,
            setup_request: None,
            dropped_files: Vec::new(),
            devices: vec![DeviceSpec::Cpu],
            servers: HashMap::new(),
        };
        for entry in shared.settings.servers.clone() {
            if let Err(error) = shared.connect(&entry) {
                shared.notifications.push(Notice::error(format!("{}: {error:#}", entry.label)));
            }
        }
        shared
    }

    /// Lists the runs of the server `entry` names (its connection is tried,
    /// and tried again, on a thread of its own).
    pub fn connect(&mut self, entry: &ServerEntry) -> anyhow::Result<()> {
        let client = Client::with_token_file(&entry.address, entry.token_file.as_deref(), entry.ca_file.as_deref())?;
        let repaint = self.repaint.clone();
        let mirror = self.settings.runs_dir.join(REMOTE_MIRRORS).join(&entry.label);
        self.session.attach(Box::new(RemoteServer::connect(&entry.label, client.clone(), mirror, Arc::new(move || repaint.request()))));
        self.servers.insert(entry.label.clone(), Arc::new(client));
        Ok(())
    }

    /// Stops listing a server's runs.
    pub fn disconnect(&mut self, label: &str) {
        self.session.detach(label);
        self.servers.remove(label);
    }

    /// The device inference runs on (Inspect, Preview): the first training device.
    pub fn device(&self) -> DeviceSpec {
        self.devices[0]
    }

    /// How the training devices are named (`cuda:0,cuda:1`).
    pub fn devices_text(&self) -> String {
        Placement { devices: self.devices.clone(), nodes: None }.describe()
    }
}

/// Which runs the user picked: `checked` are overlaid on Curves and listed on
/// Compare; `focused` is the one Inspect, Preview and the run buttons act on.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub checked: BTreeSet<String>,
    pub focused: Option<String>,
}

/// Asks the window to repaint from any thread (a trainer's event, a finished job).
/// The context is known from the first frame on.
#[derive(Clone, Default)]
pub struct Repaint(Arc<OnceLock<eframe::egui::Context>>);

impl Repaint {
    pub fn set_context(&self, ctx: &eframe::egui::Context) {
        let _ = self.0.set(ctx.clone());
    }

    pub fn request(&self) {
        if let Some(ctx) = self.0.get() {
            ctx.request_repaint();
        }
    }

    /// A `Fn()` for a job or a trainer relay.
    pub fn callback(&self) -> impl Fn() + Send + Sync + 'static {
        let this = self.clone();
        move || this.request()
    }
}

/// Toasts: information fades after a few seconds, warnings and errors stay until dismissed.
#[derive(Default)]
pub struct Notifications {
    pub items: Vec<(Notice, Instant)>,
}

impl Notifications {
    const INFO_SECONDS: f32 = 6.0;

    pub fn push(&mut self, notice: Notice) {
        match notice.level {
            NoticeLevel::Error => tracing::error!("{}", notice.text),
            NoticeLevel::Warning => tracing::warn!("{}", notice.text),
            NoticeLevel::Info => tracing::info!("{}", notice.text),
        }
        self.items.push((notice, Instant::now()));
    }

    pub fn extend(&mut self, notices: impl IntoIterator<Item = Notice>) {
        for notice in notices {
            self.push(notice);
        }
    }

    /// Drops the information toasts that have been shown long enough.
    pub fn expire(&mut self) {
        self.items.retain(|(n, at)| n.level != NoticeLevel::Info || at.elapsed().as_secs_f32() < Self::INFO_SECONDS);
    }
}
