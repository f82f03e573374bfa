//! The TLS configuration kept current across certificate renewals: `--reload-certs` polls
//! [`CertStore::changed_since_load`] (a `stat` of each file) and calls
//! [`CertStore::reload`]; a HUP with new options calls [`CertStore::replace`]. A failed load
//! keeps the configuration that works.
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use rustls::server::ServerConfig;

use super::assemble::{build_from, Snapshot};
use super::{TlsError, TlsOptions};

/// What `stat` says of a file: enough to notice a rewrite, a rename over it or a truncation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    mtime: Option<SystemTime>,
    len: u64,
    dev: u64,
    ino: u64,
}

/// One stamp a file, `None` for a file that cannot be stat'ed.
fn stamps(files: &[PathBuf]) -> Vec<Option<Stamp>> {
    files
        .iter()
        .map(|path| {
            std::fs::metadata(path).ok().map(|m| Stamp {
                mtime: m.modified().ok(),
                len: m.len(),
                dev: m.dev(),
                ino: m.ino(),
            })
        })
        .collect()
}

#[derive(Debug)]
struct State {
    opts: TlsOptions,
    /// The files' contents the current configuration was built from.
    snapshot: Snapshot,
    /// The stamps at the last attempt to load (so a broken file is reported once, not at
    /// every poll, and the next write to it is noticed).
    stamps: Vec<Option<Stamp>>,
    warnings: Vec<String>,
}

/// The current `ServerConfig`, rebuilt when its files change.
#[derive(Debug)]
pub struct CertStore {
    state: Mutex<State>,
    current: RwLock<Arc<ServerConfig>>,
}

impl CertStore {
    /// Loads the configuration; [`CertStore::warnings`] then tells what to log.
    pub fn new(opts: TlsOptions) -> Result<Self, TlsError> {
        let stamps = stamps(&opts.files());
        let snapshot = Snapshot::read(&opts)?;
        let built = build_from(&opts, &snapshot)?;
        Ok(Self {
            state: Mutex::new(State {
                opts,
                snapshot,
                stamps,
                warnings: built.warnings,
            }),
            current: RwLock::new(built.config),
        })
    }

    /// The configuration for a new connection.
    pub fn current(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The warnings of the last successful load (an expired certificate, say).
    pub fn warnings(&self) -> Vec<String> {
        self.lock().warnings.clone()
    }

    /// The options the current configuration was built from.
    pub fn options(&self) -> TlsOptions {
        self.lock().opts.clone()
    }

    /// Whether any file's (mtime, size, device, inode) differs from the last load or attempt:
    /// cheap (one `stat` a file), for polling.
    pub fn changed_since_load(&self) -> bool {
        let state = self.lock();
        stamps(&state.opts.files()) != state.stamps
    }

    /// Re-reads the files: `Ok(true)` when their contents changed and the new configuration
    /// is now current, `Ok(false)` when nothing changed. On an error the old configuration
    /// stays current.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let mut state = self.lock();
        let opts = state.opts.clone();
        self.load(&mut state, opts, false)
    }

    /// Builds from new options (a HUP): on success they and their configuration are current;
    /// on an error the old ones stay.
    pub fn replace(&self, opts: TlsOptions) -> Result<(), TlsError> {
        let mut state = self.lock();
        self.load(&mut state, opts, true).map(|_| ())
    }

    fn load(&self, state: &mut State, opts: TlsOptions, force: bool) -> Result<bool, TlsError> {
        // Stamps first: a write after them and before the read is seen at the next poll.
        let new_stamps = stamps(&opts.files());
        let same_opts = opts == state.opts;
        if same_opts {
            state.stamps.clone_from(&new_stamps);
        }
        let snapshot = Snapshot::read(&opts)?;
        if !force && same_opts && snapshot == state.snapshot {
            return Ok(false);
        }
        let built = build_from(&opts, &snapshot)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = built.config;
        *state = State {
            opts,
            snapshot,
            stamps: new_stamps,
            warnings: built.warnings,
        };
        Ok(true)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
