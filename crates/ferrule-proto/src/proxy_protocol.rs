//! The PROXY protocol header (<https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>),
//! versions 1 (text) and 2 (binary), that a load balancer sends before the client's bytes.
//!
//! Strict, as the spec asks: with `--proxy-protocol` every connection must start with a
//! header, and anything else is an error, never a guess. v1 is one line of at most 107 bytes,
//! `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n` or `PROXY UNKNOWN ...\r\n`; v2 is the
//! 12-byte signature, version/command, family/transport, a u16 BE length and that many bytes of
//! addresses and TLVs (skipped).
//!
//! ```
//! use ferrule_proto::proxy_protocol::parse_proxy_header;
//!
//! let h = parse_proxy_header(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /")
//!     .unwrap()
//!     .unwrap();
//! let (src, dst) = h.addrs.unwrap();
//! assert_eq!((src.to_string(), dst.port(), h.len), ("192.0.2.1:56324".to_owned(), 443, 45));
//! ```
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::ascii::parse_port;
use crate::error::ProxyProtocolError as E;
use crate::ParseError;

/// The v1 signature.
pub const V1_PREFIX: &[u8] = b"PROXY ";
/// Longest v1 line, CRLF included.
pub const V1_MAX_LEN: usize = 107;
/// The v2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Bytes of the v2 header before its addresses.
pub const V2_HEADER_LEN: usize = 16;

/// A parsed PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// (source, destination): the client as the proxy saw it, and the address it reached.
    /// `None` for v1 `UNKNOWN`, a v2 LOCAL command (health checks), and v2 UNSPEC or AF_UNIX
    /// addresses: keep the socket's own peer address.
    pub addrs: Option<(SocketAddr, SocketAddr)>,
    /// Bytes the header took; the client's data follows.
    pub len: usize,
}

/// Parses a PROXY v1 or v2 header at the front of `buf`.
///
/// `Ok(None)`: what has arrived is a prefix of a valid header (read more). `Err`: the bytes are
/// not a PROXY header, or a malformed one; close the connection.
pub fn parse_proxy_header(buf: &[u8]) -> Result<Option<ProxyHeader>, ParseError> {
    let r = if is_prefix_of(buf, &V2_SIGNATURE) {
        parse_v2(buf)
    } else if is_prefix_of(buf, V1_PREFIX) {
        parse_v1(buf)
    } else {
        Err(E::NotProxy)
    };
    r.map_err(ParseError::ProxyProtocol)
}

/// Whether `buf` and `sig` agree on their common length.
fn is_prefix_of(buf: &[u8], sig: &[u8]) -> bool {
    let n = buf.len().min(sig.len());
    buf.get(..n) == sig.get(..n)
}

fn parse_v1(buf: &[u8]) -> Result<Option<ProxyHeader>, E> {
    let window = buf.get(..V1_MAX_LEN).unwrap_or(buf);
    let Some(lf) = memchr::memchr(b'\n', window) else {
        return if buf.len() >= V1_MAX_LEN {
            Err(E::V1NoCrlf)
        } else {
            Ok(None)
        };
    };
    let Some(line) = window.get(..lf).and_then(|l| l.strip_suffix(b"\r")) else {
        return Err(E::V1NoCrlf);
    };
    if line.contains(&b'\r') {
        return Err(E::V1NoCrlf);
    }
    let line = line.get(V1_PREFIX.len()..).ok_or(E::V1Syntax)?;
    let mut fields = line.split(|&c| c == b' ');
    let proto = fields.next().ok_or(E::V1Syntax)?;
    let v6 = match proto {
        // The rest of an UNKNOWN line is ignored, whatever it holds.
        b"UNKNOWN" => {
            return Ok(Some(ProxyHeader {
                addrs: None,
                len: lf + 1,
            }))
        }
        b"TCP4" => false,
        b"TCP6" => true,
        _ => return Err(E::V1Protocol),
    };
    let (Some(src), Some(dst), Some(sport), Some(dport), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(E::V1Syntax);
    };
    let src = v1_addr(src, v6)?;
    let dst = v1_addr(dst, v6)?;
    let sport = v1_port(sport)?;
    let dport = v1_port(dport)?;
    Ok(Some(ProxyHeader {
        addrs: Some((SocketAddr::new(src, sport), SocketAddr::new(dst, dport))),
        len: lf + 1,
    }))
}

fn v1_addr(field: &[u8], v6: bool) -> Result<IpAddr, E> {
    let s = std::str::from_utf8(field).map_err(|_| E::Address)?;
    if v6 {
        s.parse::<Ipv6Addr>().map(IpAddr::V6)
    } else {
        s.parse::<Ipv4Addr>().map(IpAddr::V4)
    }
    .map_err(|_| E::Address)
}

/// A decimal port, 0 to 65535, without sign or leading zero (except `0` itself).
fn v1_port(field: &[u8]) -> Result<u16, E> {
    if field.len() > 1 && field.first() == Some(&b'0') {
        return Err(E::Port);
    }
    parse_port(field).ok_or(E::Port)
}

fn parse_v2(buf: &[u8]) -> Result<Option<ProxyHeader>, E> {
    let Some(&[ver_cmd, fam, len_hi, len_lo]) = buf.get(V2_SIGNATURE.len()..V2_HEADER_LEN) else {
        return Ok(None);
    };
    if ver_cmd >> 4 != 2 {
        return Err(E::V2Version(ver_cmd));
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        c => return Err(E::V2Command(c)),
    };
    // Family: 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX; transport: 0 UNSPEC, 1 STREAM, 2 DGRAM.
    let need = match (fam >> 4, fam & 0x0f) {
        (0, _) => 0,
        (1, 1 | 2) => 12,
        (2, 1 | 2) => 36,
        (3, 1 | 2) => 216,
        _ => return Err(E::V2Family(fam)),
    };
    let len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    if len < need {
        return Err(E::V2LengthShort);
    }
    let total = V2_HEADER_LEN + len;
    let Some(body) = buf.get(V2_HEADER_LEN..total) else {
        return Ok(None);
    };
    let addrs = if local {
        None
    } else {
        v2_addrs(fam >> 4, body)
    };
    Ok(Some(ProxyHeader { addrs, len: total }))
}

/// The addresses of an INET or INET6 block; `None` for UNSPEC and UNIX.
fn v2_addrs(family: u8, body: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let port = |at: usize| -> Option<u16> {
        let &[hi, lo] = body.get(at..at + 2)? else {
            return None;
        };
        Some(u16::from_be_bytes([hi, lo]))
    };
    let (src, dst, ports_at): (IpAddr, IpAddr, usize) = match family {
        1 => {
            let s: [u8; 4] = body.get(0..4)?.try_into().ok()?;
            let d: [u8; 4] = body.get(4..8)?.try_into().ok()?;
            (Ipv4Addr::from(s).into(), Ipv4Addr::from(d).into(), 8)
        }
        2 => {
            let s: [u8; 16] = body.get(0..16)?.try_into().ok()?;
            let d: [u8; 16] = body.get(16..32)?.try_into().ok()?;
            (Ipv6Addr::from(s).into(), Ipv6Addr::from(d).into(), 32)
        }
        _ => return None,
    };
    Some((
        SocketAddr::new(src, port(ports_at)?),
        SocketAddr::new(dst, port(ports_at + 2)?),
    ))
}
