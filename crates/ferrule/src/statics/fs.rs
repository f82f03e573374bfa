//! Opening a file under a mount's directory so that what is opened lies inside it: the path is
//! built from checked segments (see `path.rs`), and after the open the descriptor's real path
//! (`/proc/self/fd`) must be under the directory, unless symlinks may lead out.
use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// An open file or directory and what `fstat` said of it.
#[derive(Debug)]
pub struct Opened {
    pub file: File,
    pub meta: Metadata,
}

/// Why nothing is served from a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// Nothing there (or nothing that may be read: a permission error, a device, a FIFO).
    Missing,
    /// It is there, through a symlink that leads outside the directory.
    Outside,
}

/// Joins checked segments (no `/`, `.`, `..` or NUL in any) under `root`.
pub fn join(root: &Path, segments: &[Vec<u8>]) -> PathBuf {
    let mut p = root.to_path_buf();
    for s in segments {
        p.push(OsStr::from_bytes(s));
    }
    p
}

/// `path` with `suffix` added to its file name (`a.css` to `a.css.br`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Opens `path` (a regular file or a directory) for reading. Unless `follow_symlinks`, what
/// was opened must lie under `root` (canonical), however the path got there.
pub fn open(path: &Path, root: &Path, follow_symlinks: bool) -> Result<Opened, Miss> {
    // Non-blocking: opening a FIFO must not wait for a writer (it is refused below anyway).
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|_| Miss::Missing)?;
    let meta = file.metadata().map_err(|_| Miss::Missing)?;
    if !meta.is_file() && !meta.is_dir() {
        return Err(Miss::Missing);
    }
    if !follow_symlinks && !beneath(&file, &meta, path, root) {
        return Err(Miss::Outside);
    }
    Ok(Opened { file, meta })
}

/// Whether the open `file` lies under `root`: by the path the kernel gives its descriptor, or
/// (without `/proc`) by the canonical path of `path` naming the same inode.
fn beneath(file: &File, meta: &Metadata, path: &Path, root: &Path) -> bool {
    let link = format!("/proc/self/fd/{}", file.as_raw_fd());
    match std::fs::read_link(link) {
        Ok(real) => real.starts_with(root),
        Err(_) => canonical_beneath(meta, path, root).unwrap_or(false),
    }
}

fn canonical_beneath(meta: &Metadata, path: &Path, root: &Path) -> io::Result<bool> {
    let real = std::fs::canonicalize(path)?;
    let now = std::fs::metadata(&real)?;
    Ok(real.starts_with(root) && now.dev() == meta.dev() && now.ino() == meta.ino())
}

/// Whether a regular file is at `path` (a precompressed sibling), following symlinks.
pub fn is_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// A strong entity-tag from the inode, the modification time to the nanosecond and the
/// length: any change to the file (or its replacement by another) changes it.
pub fn etag(meta: &Metadata) -> String {
    format!(
        "\"{:x}-{:x}.{:x}-{:x}\"",
        meta.ino(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.len()
    )
}

/// The modification time in whole seconds since the epoch (0 before it).
pub fn modified(meta: &Metadata) -> u64 {
    u64::try_from(meta.mtime()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ferrule-statics-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        std::fs::canonicalize(d).expect("canonical temp dir")
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused_unless_followed() {
        let base = tmpdir("links");
        let root = base.join("root");
        std::fs::create_dir(&root).expect("root");
        std::fs::write(base.join("secret.txt"), b"secret").expect("secret");
        std::fs::write(root.join("a.txt"), b"a").expect("a");
        std::os::unix::fs::symlink(base.join("secret.txt"), root.join("out.txt")).expect("out");
        std::os::unix::fs::symlink("a.txt", root.join("in.txt")).expect("in");
        std::os::unix::fs::symlink("..", root.join("up")).expect("up");
        let get = |rel: &str, follow| open(&root.join(rel), &root, follow).map(|o| o.meta.len());
        assert_eq!(get("a.txt", false), Ok(1));
        assert_eq!(get("in.txt", false), Ok(1));
        assert_eq!(get("out.txt", false), Err(Miss::Outside));
        assert_eq!(get("up/secret.txt", false), Err(Miss::Outside));
        assert_eq!(get("out.txt", true), Ok(6));
        assert_eq!(get("nothing.txt", false), Err(Miss::Missing));
        assert_eq!(get("a.txt/x", false), Err(Miss::Missing));
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn fifos_are_not_opened() {
        let root = tmpdir("fifo");
        let fifo = root.join("pipe");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).expect("path");
        // SAFETY: mkfifo reads a NUL-terminated path valid for the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert_eq!(open(&fifo, &root, false).map(|_| ()), Err(Miss::Missing));
        let _ = std::fs::remove_dir_all(root);
    }
}
