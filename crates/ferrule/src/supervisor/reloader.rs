//! `--reload`: inotify watches on the app's source tree and the extra files, read without
//! blocking from the master's loop (no thread): a changed `.py` file restarts the workers.
use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::log::warning;

/// Most directories watched; beyond, a warning says that the rest is not.
const MAX_WATCHES: usize = 8192;

const MASK: u32 = libc::IN_CLOSE_WRITE
    | libc::IN_MOVED_TO
    | libc::IN_MOVED_FROM
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_DELETE_SELF;

/// The inotify watches of a master run with `--reload`.
pub struct Reloader {
    fd: OwnedFd,
    /// Watch descriptor -> (directory, whether `.py` files under it count).
    dirs: HashMap<i32, (PathBuf, bool)>,
    extra: Vec<PathBuf>,
}

/// Directories not worth watching under a source tree.
fn skipped(name: &[u8]) -> bool {
    name.starts_with(b".") || name == b"__pycache__" || name == b"node_modules"
}

impl Reloader {
    /// Watches `.py` files under `tree` (recursively) and each of `extra`.
    pub fn new(tree: Option<&Path>, extra: &[PathBuf]) -> std::io::Result<Self> {
        // SAFETY: inotify_init1 only creates a descriptor, which we own from here on.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut r = Self {
            fd,
            dirs: HashMap::new(),
            extra: Vec::new(),
        };
        if let Some(tree) = tree {
            r.watch_tree(tree);
        }
        for file in extra {
            let file = std::path::absolute(file).unwrap_or_else(|_| file.clone());
            // The directory, so that an editor replacing the file (rename) is seen too.
            if let Some(dir) = file.parent() {
                if !r.dirs.values().any(|(d, _)| d == dir) {
                    r.add(dir, false);
                }
            }
            r.extra.push(file);
        }
        Ok(r)
    }

    fn add(&mut self, dir: &Path, tree: bool) {
        if self.dirs.len() >= MAX_WATCHES {
            return;
        }
        let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
            return;
        };
        // SAFETY: a valid descriptor and a NUL-terminated path.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), MASK) };
        if wd < 0 {
            warning!(
                "--reload: cannot watch {}: {}",
                dir.display(),
                std::io::Error::last_os_error()
            );
            return;
        }
        let entry = self.dirs.entry(wd).or_insert((dir.to_path_buf(), tree));
        entry.1 |= tree;
        if self.dirs.len() == MAX_WATCHES {
            warning!("--reload: watching the first {MAX_WATCHES} directories only");
        }
    }

    /// Watches `dir` and the directories under it. Returns a `.py` file found in them: for a
    /// directory that just appeared, its files may have been written before the watch began.
    fn watch_tree(&mut self, dir: &Path) -> Option<PathBuf> {
        self.add(dir, true);
        let entries = std::fs::read_dir(dir).ok()?;
        let mut found = None;
        for e in entries.flatten() {
            let name = e.file_name();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if !skipped(name.as_bytes()) {
                    let inner = self.watch_tree(&e.path());
                    found = found.or(inner);
                }
            } else if name.as_bytes().ends_with(b".py") {
                found.get_or_insert_with(|| e.path());
            }
        }
        found
    }

    /// Reads the pending events without blocking: the first changed file that counts.
    pub fn changed(&mut self) -> Option<PathBuf> {
        let mut found = None;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            // SAFETY: reads into our buffer, at most its length, from a non-blocking fd.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            let Ok(n) = usize::try_from(n) else {
                return found; // EAGAIN: nothing more for now
            };
            if n == 0 {
                return found;
            }
            let mut rest = buf.get(..n).unwrap_or_default();
            // struct inotify_event: wd i32, mask u32, cookie u32, len u32, then the name.
            while let Some((head, tail)) = rest.split_at_checked(16) {
                let word = |i: usize| {
                    head.get(i..i + 4)
                        .and_then(|b| <[u8; 4]>::try_from(b).ok())
                        .map_or(0, u32::from_ne_bytes)
                };
                let (wd, mask, len) = (word(0) as i32, word(4), word(12) as usize);
                let Some((name, after)) = tail.split_at_checked(len) else {
                    break;
                };
                rest = after;
                let name = name.split(|&b| b == 0).next().unwrap_or_default();
                if let Some(path) = self.event(wd, mask, name) {
                    found.get_or_insert(path);
                }
            }
        }
    }

    /// One event: the path that changed, if it counts.
    fn event(&mut self, wd: i32, mask: u32, name: &[u8]) -> Option<PathBuf> {
        if mask & libc::IN_Q_OVERFLOW != 0 {
            return Some(PathBuf::from("(many files)"));
        }
        if mask & libc::IN_IGNORED != 0 {
            self.dirs.remove(&wd);
            return None;
        }
        let (dir, tree) = self.dirs.get(&wd).cloned()?;
        let path = dir.join(std::ffi::OsStr::from_bytes(name));
        if self.extra.contains(&path) {
            return Some(path);
        }
        if !tree {
            return None;
        }
        if mask & libc::IN_ISDIR != 0 {
            if mask & (libc::IN_CREATE | libc::IN_MOVED_TO) != 0 && !skipped(name) {
                return self.watch_tree(&path);
            }
            return None;
        }
        name.ends_with(b".py").then_some(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ferrule-reload-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("pkg")).expect("scratch directory");
        dir
    }

    #[test]
    fn python_files_in_the_tree_and_extra_files_count_others_do_not() {
        let dir = scratch("tree");
        let extra = dir.join("settings.toml");
        let mut r = Reloader::new(Some(&dir), std::slice::from_ref(&extra)).expect("inotify");
        std::fs::write(dir.join("notes.txt"), "x").expect("write");
        assert_eq!(r.changed(), None);
        std::fs::write(dir.join("pkg/mod.py"), "X = 1").expect("write");
        assert_eq!(r.changed(), Some(dir.join("pkg/mod.py")));
        std::fs::write(&extra, "a = 1").expect("write");
        assert_eq!(r.changed(), Some(extra));
        // A directory made with a file already in it: the file counts.
        std::fs::create_dir_all(dir.join("new/sub")).expect("mkdir");
        std::fs::write(dir.join("new/sub/m.py"), "").expect("write");
        assert!(r.changed().is_some());
        std::fs::write(dir.join("new/sub/m.py"), "Y = 2").expect("write");
        assert_eq!(r.changed(), Some(dir.join("new/sub/m.py")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
