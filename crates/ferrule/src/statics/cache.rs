//! A worker's memory of the files its static mounts found, so that a file asked for again is
//! served without walking its path, proving it lies beneath the mount, or probing for its
//! precompressed siblings once more: what a request costs then is one `statx` of the file's
//! directory, one `fstat` of the file (kept open) and the read.
//!
//! An entry is trusted only while nothing it rests on has changed:
//! - the directory holding the file: any name added, removed or renamed in it (a sibling
//!   `.gz` appearing, the file deleted or replaced) changes its modification and change times,
//!   and a directory swapped for another on the path has another inode. An entry is kept only
//!   when the directory's modification time is [`SETTLED`] in the past, so that a change in
//!   the same clock tick as the look-up (timestamps are coarse) cannot go unseen.
//! - the served file itself (kept open): its change time moves with every write, rename and
//!   link count change, and a link count of 0 means it is gone. Its length and `ETag` come
//!   from the `fstat` of this request, and its bytes from the open file, or from memory for a
//!   file of up to [`KEPT_BYTES`] whose change time had settled when it was read (so that a
//!   write after the read shows as a new change time).
//!
//! When either has changed the file is looked up afresh, as without the cache (so the path's
//! containment beneath the mount is proved again). Only GET and HEAD ask. Entries are at most
//! [`MAX_ENTRIES`] (each holds one to four open files); a full cache forgets one.
use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// Files remembered per worker; each keeps its file (and any precompressed sibling) open.
/// Not configurable.
pub const MAX_ENTRIES: usize = 64;

/// Files up to this size are kept in memory (when their change time has settled). Not
/// configurable.
pub const KEPT_BYTES: u64 = 16 * 1024;

/// How long ago a directory must have last changed for its files to be remembered (a
/// filesystem's timestamps may be as coarse as a clock tick; some keep whole seconds).
pub const SETTLED: Duration = Duration::from_secs(2);

/// What changes when a name in a directory is added, removed or renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirStamp {
    dev: u64,
    ino: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl DirStamp {
    pub fn of(meta: &Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Whether the directory last changed long enough ago (see [`SETTLED`]).
    fn settled(&self) -> bool {
        settled(self.mtime.0)
    }
}

/// Whether a time (seconds since the epoch) is at least [`SETTLED`] in the past.
fn settled(secs: i64) -> bool {
    let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) else {
        return false;
    };
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let settled = i64::try_from(SETTLED.as_secs()).unwrap_or(i64::MAX);
    secs < now.saturating_sub(settled)
}

/// What identifies one state of an open file: its change time moves with every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp((i64, i64));

impl FileStamp {
    pub fn of(meta: &Metadata) -> Self {
        Self((meta.ctime(), meta.ctime_nsec()))
    }

    /// Whether the file last changed long enough ago (see [`SETTLED`]).
    pub fn settled(self) -> bool {
        settled(self.0 .0)
    }
}

/// An open file (a found file or one of its siblings) and its state when it was found.
#[derive(Debug, Clone)]
pub struct Kept {
    pub file: Arc<File>,
    pub stamp: FileStamp,
    /// What `fstat` said when it was opened.
    pub meta: Metadata,
    /// Its content, when small and settled (see [`KEPT_BYTES`]).
    pub bytes: Option<Bytes>,
}

impl Kept {
    /// The file's metadata now, if it is still the file that was found: not changed in any
    /// way but its content and times by writes, not unlinked.
    pub fn now(&self) -> Option<Metadata> {
        let meta = self.file.metadata().ok()?;
        (meta.nlink() > 0 && FileStamp::of(&meta) == self.stamp).then_some(meta)
    }
}

/// A regular file found beneath a mount, with its precompressed siblings.
#[derive(Debug, Clone)]
pub struct Located {
    pub file: Kept,
    /// The name its type and hash are read from.
    pub name: Vec<u8>,
    /// Which siblings (in [`super::Coding::ALL`]'s order) are regular files.
    pub there: [bool; 3],
    /// Those that could be opened beneath the mount.
    pub siblings: [Option<Kept>; 3],
}

/// Where a located file's directory is, and its state when the file was found.
#[derive(Debug)]
pub struct Entry {
    pub dir: PathBuf,
    pub stamp: DirStamp,
    pub located: Located,
}

/// A request's key: the mount (by its place in the list), the joined path, the trailing `/`.
pub type Key = (usize, PathBuf, bool);

/// The entries of one worker (a mutex: HTTP/2 streams decide on the edge thread).
#[derive(Debug, Default)]
pub struct Cache {
    entries: Mutex<HashMap<Key, Arc<Entry>>>,
}

impl Cache {
    /// The entry for `key`, if there is one and its directory has not changed.
    pub fn get(&self, key: &Key) -> Option<Arc<Entry>> {
        let entry = self.entries.lock().ok()?.get(key).cloned()?;
        let meta = std::fs::metadata(&entry.dir).ok();
        if meta.is_some_and(|m| DirStamp::of(&m) == entry.stamp) {
            return Some(entry);
        }
        self.forget(key);
        None
    }

    /// Remembers `entry` for `key` if its directory has settled.
    pub fn put(&self, key: Key, entry: Entry) {
        if !entry.stamp.settled() {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            if let Some(old) = entries.keys().next().cloned() {
                entries.remove(&old);
            }
        }
        entries.insert(key, Arc::new(entry));
    }

    /// Forgets the entry for `key` (its file changed).
    pub fn forget(&self, key: &Key) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }

    /// How many entries there are.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }
}
