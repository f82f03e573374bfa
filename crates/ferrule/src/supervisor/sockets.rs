//! The master's listening sockets: bound at start, or adopted from the previous image of the
//! master after a `--preload` reload; Unix socket files removed at exit.
use crate::config::{BindAddr, Config};
use crate::log::{error, warning};
use crate::server::listener::{self, Listener};

use super::reexec;

/// Binds every `--bind`. None (the error logged) if one fails.
pub(super) fn bind_all(cfg: &Config) -> Option<Vec<Listener>> {
    let mut listeners = Vec::new();
    for b in &cfg.binds {
        match listener::bind(b, cfg.backlog, cfg.reuse_port) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                error!("{e}");
                return None;
            }
        }
        if let (BindAddr::Unix(path), Some((uid, gid))) = (&b.addr, cfg.user) {
            // Workers running as --user must be able to accept on it: the socket is theirs.
            let gid = cfg.group.unwrap_or(gid);
            if let Err(e) = std::os::unix::fs::chown(path, Some(uid), Some(gid)) {
                error!("--user: cannot hand {} to uid {uid}: {e}", path.display());
                return None;
            }
        }
    }
    Some(listeners)
}

/// After a `--preload` reload: the listening sockets the previous image handed over.
pub(super) fn adopt(cfg: &Config, handoff: &reexec::Handoff) -> Option<Vec<Listener>> {
    if handoff.listeners.len() != cfg.binds.len() {
        warning!(
            "the binds changed ({} before, {} now); they take effect at the next full restart",
            handoff.listeners.len(),
            cfg.binds.len()
        );
    }
    let mut listeners = Vec::new();
    for (i, &(protocol, fd)) in handoff.listeners.iter().enumerate() {
        // The binds are the same as the previous image's, in the same order (or the warning
        // above was given): the bind at the same place says whether it speaks TLS.
        let tls = cfg.binds.get(i).is_some_and(|b| b.tls);
        match listener::adopt(protocol, tls, fd, cfg.reuse_port) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                error!("cannot adopt listening socket {fd} after the reload: {e}");
                return None;
            }
        }
    }
    Some(listeners)
}

pub(super) fn remove_unix_sockets(cfg: &Config) {
    for b in &cfg.binds {
        if let BindAddr::Unix(p) = &b.addr {
            let _ = std::fs::remove_file(p);
        }
    }
}
