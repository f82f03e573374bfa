//! Trusted proxies and the headers they set, as gunicorn's `--forwarded-allow-ips`.
//!
//! [`TrustList`] holds the trusted addresses and networks. [`resolve_forwarded`] takes the
//! immediate peer, the list and the request's proxy headers ([`ForwardedHeaders`]) and says
//! what changes ([`ProxyOverrides`]): nothing unless the peer is trusted. RFC 7239 `Forwarded`
//! wins over `X-Forwarded-For/-Proto/-Host/-Port` when both are sent; `X-Forwarded-Prefix`,
//! which `Forwarded` has no field for, applies either way.
//!
//! ```
//! use ferrule_proto::forwarded::{resolve_forwarded, ForwardedHeaders, Scheme, TrustList};
//!
//! let trust: TrustList = "127.0.0.1,::1,10.0.0.0/8".parse().unwrap();
//! let headers = ForwardedHeaders {
//!     x_forwarded_for: Some(b"203.0.113.7, 10.1.2.3"),
//!     x_forwarded_proto: Some(b"https"),
//!     ..ForwardedHeaders::default()
//! };
//! let o = resolve_forwarded("127.0.0.1".parse().unwrap(), &trust, &headers);
//! assert_eq!(o.remote_addr, Some("203.0.113.7".parse().unwrap()));
//! assert_eq!(o.scheme, Some(Scheme::Https));
//! ```
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use crate::ascii::{parse_port, trim_ows};
use crate::cgi::{split_host_port, valid_host};

mod rfc7239;

use rfc7239::{parse_forwarded, Element};

/// A trusted address or network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                masked(u128::from(u32::from(n)), 32, self.prefix)
                    == masked(u128::from(u32::from(a)), 32, self.prefix)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                masked(u128::from(n), 128, self.prefix) == masked(u128::from(a), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// The top `prefix` bits of a `bits`-wide address.
fn masked(v: u128, bits: u8, prefix: u8) -> u128 {
    let drop = bits.saturating_sub(prefix);
    v.checked_shr(u32::from(drop)).unwrap_or(0)
}

/// Addresses and networks whose proxy headers are believed (`--forwarded-allow-ips`,
/// `--proxy-allow-from`). Parsed from a comma-separated list: `127.0.0.1,::1,10.0.0.0/8`;
/// `*` trusts every peer; an empty string trusts none. IPv4-mapped IPv6 addresses
/// (`::ffff:10.0.0.1`) count as the IPv4 address, in the list and in [`TrustList::contains`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustList {
    all: bool,
    nets: Vec<Net>,
}

/// A `--forwarded-allow-ips` entry that is neither an address, a network nor `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadTrustEntry(pub String);

impl fmt::Display for BadTrustEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an IP address, a network (10.0.0.0/8) or *",
            self.0
        )
    }
}

impl std::error::Error for BadTrustEntry {}

impl FromStr for TrustList {
    type Err = BadTrustEntry;

    fn from_str(s: &str) -> Result<Self, BadTrustEntry> {
        let mut list = Self::default();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                list.all = true;
                continue;
            }
            let bad = || BadTrustEntry(entry.to_owned());
            let (addr, prefix) = match entry.split_once('/') {
                Some((a, p)) => {
                    let p: u8 = if p.bytes().all(|c| c.is_ascii_digit()) {
                        p.parse().map_err(|_| bad())?
                    } else {
                        return Err(bad());
                    };
                    (a.parse::<IpAddr>().map_err(|_| bad())?, Some(p))
                }
                None => (entry.parse::<IpAddr>().map_err(|_| bad())?, None),
            };
            let bits = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = prefix.unwrap_or(bits);
            if prefix > bits {
                return Err(bad());
            }
            list.nets.push(canonical_net(addr, prefix));
        }
        Ok(list)
    }
}

/// An IPv4-mapped IPv6 network of prefix 96 or more as the IPv4 network it covers.
fn canonical_net(addr: IpAddr, prefix: u8) -> Net {
    match addr {
        IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
            Some(v4) => Net {
                addr: IpAddr::V4(v4),
                prefix: prefix - 96,
            },
            None => Net { addr, prefix },
        },
        _ => Net { addr, prefix },
    }
}

impl TrustList {
    /// Whether `*` was given: every peer is trusted (say so at start-up).
    #[must_use]
    pub fn trusts_all(&self) -> bool {
        self.all
    }

    /// Whether no peer is trusted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        !self.all && self.nets.is_empty()
    }

    /// Whether `ip` is trusted.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.all || self.nets.iter().any(|n| n.contains(ip))
    }
}

/// The proxy headers of one request, as sent (a repeated header joined with `", "`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardedHeaders<'a> {
    /// `Forwarded` (RFC 7239): wins over the `X-Forwarded-*` headers but the prefix.
    pub forwarded: Option<&'a [u8]>,
    /// `X-Forwarded-For`: the client and the proxies it went through, left to right.
    pub x_forwarded_for: Option<&'a [u8]>,
    /// `X-Forwarded-Proto`: `http` or `https`.
    pub x_forwarded_proto: Option<&'a [u8]>,
    /// `X-Forwarded-Host`: the Host the client sent, port included.
    pub x_forwarded_host: Option<&'a [u8]>,
    /// `X-Forwarded-Port`: the port the client connected to.
    pub x_forwarded_port: Option<&'a [u8]>,
    /// `X-Forwarded-Prefix`: the path the proxy mounts the app at.
    pub x_forwarded_prefix: Option<&'a [u8]>,
}

/// `wsgi.url_scheme` as a proxy reports it: only `http` and `https` are believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `http`.
    Http,
    /// `https`.
    Https,
}

impl Scheme {
    fn parse(v: &[u8]) -> Option<Self> {
        if v.eq_ignore_ascii_case(b"http") {
            Some(Self::Http)
        } else if v.eq_ignore_ascii_case(b"https") {
            Some(Self::Https)
        } else {
            None
        }
    }

    /// `http` or `https`, for `wsgi.url_scheme`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    /// 80 or 443: SERVER_PORT when the forwarded host names no port.
    #[must_use]
    pub fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

/// What a trusted proxy's headers change; `None` fields keep the connection's own value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyOverrides<'a> {
    /// REMOTE_ADDR: the rightmost forwarded address that is not itself trusted (the leftmost
    /// when all are), IPv4-mapped IPv6 shown as IPv4.
    pub remote_addr: Option<IpAddr>,
    /// REMOTE_PORT, when the chosen entry carried one (`for="[2001:db8::1]:4711"`).
    pub remote_port: Option<u16>,
    /// `wsgi.url_scheme`.
    pub scheme: Option<Scheme>,
    /// HTTP_HOST: the forwarded host as sent (`example.com:8443`).
    pub host: Option<&'a [u8]>,
    /// SERVER_NAME: the host without its port (IPv6 literals keep their brackets).
    pub server_name: Option<&'a [u8]>,
    /// SERVER_PORT: X-Forwarded-Port, else the forwarded host's port.
    pub port: Option<u16>,
    /// Prepended to SCRIPT_NAME: X-Forwarded-Prefix, starting with `/`, without a trailing `/`.
    pub prefix: Option<&'a [u8]>,
}

impl ProxyOverrides<'_> {
    /// Whether nothing changes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Resolves the proxy headers of a request that came from `peer`. When `peer` is not in
/// `trust`, nothing changes, whatever the headers say.
#[must_use]
pub fn resolve_forwarded<'a>(
    peer: IpAddr,
    trust: &TrustList,
    headers: &ForwardedHeaders<'a>,
) -> ProxyOverrides<'a> {
    let mut out = ProxyOverrides::default();
    if !trust.contains(peer) {
        return out;
    }
    let elements = headers.forwarded.and_then(parse_forwarded);
    if let Some(elements) = elements {
        let nodes: Vec<_> = elements
            .iter()
            .map(|e| e.for_.and_then(parse_node))
            .collect();
        let chosen = choose(&nodes, trust);
        if let Some((ip, port)) = chosen.and_then(|i| nodes.get(i).copied().flatten()) {
            out.remote_addr = Some(ip);
            out.remote_port = port;
        }
        // The element the chosen address came from was written by a trusted proxy, which
        // saw the client's scheme and Host; with no address, the nearest proxy's element.
        let element: Option<&Element<'_>> = chosen.map_or(elements.last(), |i| elements.get(i));
        if let Some(e) = element {
            out.scheme = e.proto.and_then(Scheme::parse);
            set_host(&mut out, e.host);
        }
    } else {
        if let Some(xff) = headers.x_forwarded_for {
            let nodes: Vec<_> = list(xff).map(parse_node).collect();
            if let Some((ip, port)) =
                choose(&nodes, trust).and_then(|i| nodes.get(i).copied().flatten())
            {
                out.remote_addr = Some(ip);
                out.remote_port = port;
            }
        }
        out.scheme = headers
            .x_forwarded_proto
            .and_then(rightmost)
            .and_then(Scheme::parse);
        set_host(&mut out, headers.x_forwarded_host.and_then(rightmost));
        if let Some(port) = headers
            .x_forwarded_port
            .and_then(rightmost)
            .and_then(parse_port)
        {
            out.port = Some(port);
        }
    }
    out.prefix = headers
        .x_forwarded_prefix
        .and_then(rightmost)
        .filter(|p| p.starts_with(b"/"))
        .map(|p| p.strip_suffix(b"/").unwrap_or(p))
        .filter(|p| !p.is_empty());
    out
}

/// Index of the address to believe: walking from the right, the first one not trusted, or
/// the leftmost when all are. Entries that are no address (`unknown`, `_hidden`) are skipped.
fn choose(nodes: &[Option<(IpAddr, Option<u16>)>], trust: &TrustList) -> Option<usize> {
    let mut chosen = None;
    for (i, node) in nodes.iter().enumerate().rev() {
        let Some((ip, _)) = node else { continue };
        chosen = Some(i);
        if !trust.contains(*ip) {
            break;
        }
    }
    chosen
}

fn set_host<'a>(out: &mut ProxyOverrides<'a>, host: Option<&'a [u8]>) {
    let Some(host) = host.filter(|h| !h.is_empty() && valid_host(h)) else {
        return;
    };
    let (name, port) = split_host_port(host);
    out.host = Some(host);
    out.server_name = Some(name);
    out.port = port.and_then(parse_port);
}

/// The items of a comma-separated header, trimmed, empty ones dropped.
fn list(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&c| c == b',')
        .map(trim_ows)
        .filter(|i| !i.is_empty())
}

/// The last item of a comma-separated header: the one the trusted peer set.
fn rightmost(v: &[u8]) -> Option<&[u8]> {
    list(v).last()
}

/// A node (`192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`, `[2001:db8::1]:4711`) as an address
/// and optional port; `None` for `unknown`, obfuscated names (`_hidden`) and anything else.
/// An obfuscated port (`[::1]:_p`) keeps the address without a port.
fn parse_node(node: &[u8]) -> Option<(IpAddr, Option<u16>)> {
    let s = std::str::from_utf8(node).ok()?;
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some((ip.to_canonical(), None));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some((sa.ip().to_canonical(), Some(sa.port())));
    }
    let (host, port) = match s.strip_prefix('[') {
        Some(rest) => {
            let (h, after) = rest.split_once(']')?;
            (h, after.strip_prefix(':'))
        }
        None => s.rsplit_once(':').map_or((s, None), |(h, p)| (h, Some(p))),
    };
    let ip = host.parse::<IpAddr>().ok()?.to_canonical();
    match port {
        None => Some((ip, None)),
        Some(p) if p.starts_with('_') => Some((ip, None)),
        Some(_) => None,
    }
}
