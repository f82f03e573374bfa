//! Process titles, as `ps` and `top` show them: `ferrule: master [NAME]` and
//! `ferrule: worker [NAME]` (setproctitle's way, without a Python dependency). The title is
//! written over the process's own argument strings, whose place the kernel gives in
//! `/proc/self/stat` (`arg_start`, `arg_end`), so it is cut to their length (the interpreter's
//! path and arguments: usually room enough); the thread name (`comm`, 15 bytes) is set too.
//! CPython copied its arguments at start-up (`sys.argv`, `sys.orig_argv` are its own), so
//! nothing reads the original strings afterwards.
use crate::config::{AppSource, Config};

/// The NAME in the titles: `--name`, else the app as given (the mount at `/`, or the first).
#[must_use]
pub fn name(cfg: &Config) -> String {
    if let Some(n) = &cfg.cli.name {
        return n.clone();
    }
    let source = cfg.mounts.last().map_or(&cfg.app, |m| &m.source);
    match source {
        AppSource::Spec(Some(spec)) => spec.clone(),
        AppSource::Spec(None) => "demo".to_owned(),
        AppSource::Paste(ini) => ini.clone(),
    }
}

/// Sets this process's title to `ferrule: ROLE [NAME]`. Failures (no /proc) are silent: the
/// title is a convenience.
pub fn set(role: &str, name: &str) {
    let title = format!("ferrule: {role} [{name}]");
    set_comm(&format!("ferrule: {role}"));
    let Some((start, end)) = arg_area() else {
        return;
    };
    let len = end.saturating_sub(start);
    if len < 2 {
        return;
    }
    let bytes = title.as_bytes();
    let take = bytes.len().min(len - 1);
    // SAFETY: [start, end) is this process's argument area as the kernel reports it: memory
    // of our own initial stack, mapped and writable for the process's life. We write within
    // it only, from one thread (called before any app thread starts), and nothing else reads
    // or writes these bytes (CPython keeps copies of the arguments).
    unsafe {
        let area = std::slice::from_raw_parts_mut(start as *mut u8, len);
        area[..take].copy_from_slice(&bytes[..take]);
        area[take..].fill(0);
    }
}

/// `arg_start` and `arg_end` from `/proc/self/stat` (fields 48 and 49).
fn arg_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Field 2 (comm) is in parentheses and may hold spaces: count from after its end.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(48 - 3);
    let start = fields.next()?.parse().ok()?;
    let end = fields.next()?.parse().ok()?;
    (start > 0 && end > start).then_some((start, end))
}

/// The calling thread's name (the process's `comm` for the main thread), cut to 15 bytes.
fn set_comm(name: &str) {
    let mut buf = [0u8; 16];
    let n = name.len().min(15);
    buf[..n].copy_from_slice(&name.as_bytes()[..n]);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes from `buf`.
    unsafe { libc::prctl(libc::PR_SET_NAME, buf.as_ptr(), 0, 0, 0) };
}
