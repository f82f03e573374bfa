//! `--forwarded-allow-ips`: when the peer is a trusted proxy, its `Forwarded` /
//! `X-Forwarded-*` headers say who the client is and how it came (the rules are in
//! `ferrule_proto::forwarded`). From any other peer they stay ordinary headers.
use std::net::IpAddr;

use ferrule_proto::forwarded::{resolve_forwarded, ForwardedHeaders, TrustList};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::environ::latin1;

/// Whether a request head holds any header the rules read (a cheap test before the environ
/// is searched).
pub fn any_in_head(head: &ferrule_proto::http1::RequestHead) -> bool {
    head.fields().any(|(name, _)| {
        name.len() >= 9
            && (name[..9].eq_ignore_ascii_case(b"forwarded")
                || name
                    .get(..12)
                    .is_some_and(|p| p.eq_ignore_ascii_case(b"x-forwarded-")))
    })
}

/// Rewrites REMOTE_ADDR/PORT, wsgi.url_scheme, HTTP_HOST, SERVER_NAME/PORT and SCRIPT_NAME of
/// `env` from the forwarding headers, if `peer` is trusted. `peer` None (a Unix socket) is
/// trusted: only local processes allowed by the socket's permissions can connect.
pub fn apply(
    py: Python<'_>,
    env: &Bound<'_, PyDict>,
    trust: &TrustList,
    peer: Option<IpAddr>,
) -> PyResult<()> {
    let peer = peer.unwrap_or(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST));
    if !trust.contains(peer) && !trust.trusts_all() {
        return Ok(());
    }
    let keys = [
        intern!(py, "HTTP_FORWARDED"),
        intern!(py, "HTTP_X_FORWARDED_FOR"),
        intern!(py, "HTTP_X_FORWARDED_PROTO"),
        intern!(py, "HTTP_X_FORWARDED_HOST"),
        intern!(py, "HTTP_X_FORWARDED_PORT"),
        intern!(py, "HTTP_X_FORWARDED_PREFIX"),
    ];
    let mut values: [Option<Vec<u8>>; 6] = Default::default();
    let mut any = false;
    for (slot, key) in values.iter_mut().zip(keys) {
        if let Some(v) = env.get_item(key)? {
            let s = v.cast::<PyString>()?.to_cow()?;
            // Environ strings are latin-1 "bytes as str": back to the bytes that were sent.
            *slot = Some(s.chars().map(|c| u32::from(c) as u8).collect());
            any = true;
        }
    }
    if !any {
        return Ok(());
    }
    let [forwarded, xff, proto, host, port, prefix] = &values;
    let headers = ForwardedHeaders {
        forwarded: forwarded.as_deref(),
        x_forwarded_for: xff.as_deref(),
        x_forwarded_proto: proto.as_deref(),
        x_forwarded_host: host.as_deref(),
        x_forwarded_port: port.as_deref(),
        x_forwarded_prefix: prefix.as_deref(),
    };
    let o = resolve_forwarded(peer, trust, &headers);
    if o.is_empty() {
        return Ok(());
    }
    if let Some(ip) = o.remote_addr {
        env.set_item(intern!(py, "REMOTE_ADDR"), ip.to_string())?;
        if let Some(p) = o.remote_port {
            env.set_item(intern!(py, "REMOTE_PORT"), p.to_string())?;
        }
    }
    if let Some(scheme) = o.scheme {
        env.set_item(intern!(py, "wsgi.url_scheme"), scheme.as_str())?;
    }
    if let Some(h) = o.host {
        env.set_item(intern!(py, "HTTP_HOST"), latin1(py, h))?;
    }
    if let Some(name) = o.server_name {
        env.set_item(intern!(py, "SERVER_NAME"), latin1(py, name))?;
    }
    if let Some(p) = o.port {
        env.set_item(intern!(py, "SERVER_PORT"), p.to_string())?;
    } else if o.host.is_some() || o.scheme.is_some() {
        // A host without a port, or a new scheme with the Host's default port: the scheme's.
        let host_has_port = env
            .get_item(intern!(py, "HTTP_HOST"))?
            .and_then(|h| h.extract::<String>().ok())
            .is_some_and(|h| {
                ferrule_proto::cgi::split_host_port(h.as_bytes())
                    .1
                    .is_some()
            });
        if !host_has_port {
            let scheme = o.scheme.map_or_else(
                || {
                    env.get_item(intern!(py, "wsgi.url_scheme"))
                        .ok()
                        .flatten()
                        .and_then(|s| s.extract::<String>().ok())
                        .unwrap_or_default()
                },
                |s| s.as_str().to_owned(),
            );
            let port = if scheme == "https" { "443" } else { "80" };
            env.set_item(intern!(py, "SERVER_PORT"), port)?;
        }
    }
    if let Some(p) = o.prefix {
        let script = env
            .get_item(intern!(py, "SCRIPT_NAME"))?
            .and_then(|s| s.extract::<String>().ok())
            .unwrap_or_default();
        let mut joined: String = p.iter().map(|&c| c as char).collect();
        joined.push_str(&script);
        env.set_item(intern!(py, "SCRIPT_NAME"), joined)?;
    }
    Ok(())
}
