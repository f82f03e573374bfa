//! What a worker keeps from one request's environ for the next (the environ's memo): the
//! `str` of short bytes that repeat (peer and bound addresses, Host, header values and
//! names), and the [`Template`] of a recent request's environ with the header names it
//! had. All of it sits behind [`EnvironBase`](super::EnvironBase)'s lock, reached through
//! [`MemoRef`].
use std::net::SocketAddr;
use std::sync::MutexGuard;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::latin1;

/// Longest bytes [`Memo`] keeps a `str` for.
const MEMO_MAX: usize = 128;
/// Entries of [`Memo`] (a power of two).
const MEMO_SLOTS: usize = 1024;

/// The `str` of short bytes that come back request after request: a keep-alive client's
/// address and port, its Host, its usual header values. A request finding its bytes here
/// takes a reference to the same (immutable) `str` instead of building and freeing one.
/// Direct-mapped on a hash of the bytes: an entry that collides replaces the older one, so
/// it holds at most [`MEMO_SLOTS`] strings of at most [`MEMO_MAX`] bytes.
#[derive(Default)]
pub struct Memo {
    slots: Vec<Option<MemoEntry>>,
    /// Socket addresses (peers, the bound address) and their address and port strings,
    /// two-way set-associative on the port.
    addrs: Vec<Option<AddrEntry>>,
    /// The environ a recent HTTP request started from, and how many missed it since.
    pub(super) template: Option<Template>,
    pub(super) misses: u8,
}

/// Entries of [`Memo`]'s address table (a power of two).
const MEMO_ADDRS: usize = 256;

/// An address, its IP as a str, its port as a str.
type AddrEntry = (SocketAddr, Py<PyString>, Py<PyString>);

/// The bytes' hash, the bytes, their `str`.
type MemoEntry = (u64, Box<[u8]>, Py<PyString>);

impl Memo {
    fn hash(b: &[u8]) -> u64 {
        let mix = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
        let mut h = b.len() as u64;
        let mut words = b.chunks_exact(8);
        for w in &mut words {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            h = mix(h, u64::from_le_bytes(word));
        }
        // The last bytes as a word of their own, without a copy through memory.
        let rest = words.remainder();
        if !rest.is_empty() {
            let w = rest
                .iter()
                .rev()
                .fold(0u64, |w, &c| (w << 8) | u64::from(c));
            h = mix(h, w);
        }
        h
    }

    /// `b` as a latin-1 `str`, the one kept for the same bytes if there is one.
    pub fn str<'py>(&mut self, py: Python<'py>, b: &[u8]) -> Bound<'py, PyString> {
        if b.len() > MEMO_MAX {
            return latin1(py, b);
        }
        if self.slots.is_empty() {
            self.slots.resize_with(MEMO_SLOTS, || None);
        }
        let h = Self::hash(b);
        let idx = (h >> 32) as usize & (MEMO_SLOTS - 1);
        if let Some(Some((kh, kb, s))) = self.slots.get(idx) {
            if *kh == h && **kb == *b {
                return s.bind(py).clone();
            }
        }
        let s = latin1(py, b);
        if let Some(slot) = self.slots.get_mut(idx) {
            *slot = Some((h, b.into(), s.clone().unbind()));
        }
        s
    }

    /// The IP and port of `a` as strings, the ones kept for the same address if any.
    fn addr<'py>(
        &mut self,
        py: Python<'py>,
        a: SocketAddr,
    ) -> (Bound<'py, PyString>, Bound<'py, PyString>) {
        if self.addrs.is_empty() {
            self.addrs.resize_with(MEMO_ADDRS, || None);
        }
        // Two ways per set: the port's slot and its neighbour (Linux gives a client's
        // connections ports of one parity, so the neighbours of its ports are free for it).
        let idx = usize::from(a.port()) & (MEMO_ADDRS - 1);
        for i in [idx, idx ^ 1] {
            if let Some(Some((k, ip, port))) = self.addrs.get(i) {
                if *k == a {
                    return (ip.bind(py).clone(), port.bind(py).clone());
                }
            }
        }
        let ip = with_ip_text(a.ip(), |t| self.str(py, t));
        let port = self.str(py, itoa::Buffer::new().format(a.port()).as_bytes());
        // The newest in the first way, the one it displaces in the second.
        let entry = Some((a, ip.clone().unbind(), port.clone().unbind()));
        if let Some(first) = self.addrs.get_mut(idx) {
            let older = std::mem::replace(first, entry);
            if let Some(second) = self.addrs.get_mut(idx ^ 1) {
                if older.is_some() {
                    *second = older;
                }
            }
        }
        (ip, port)
    }
}

/// The [`Memo`], if it was free.
pub struct MemoRef<'a>(pub(super) Option<MutexGuard<'a, Memo>>);

impl MemoRef<'_> {
    /// [`Memo::str`], or a new `str` when the memo was busy.
    pub fn str<'py>(&mut self, py: Python<'py>, b: &[u8]) -> Bound<'py, PyString> {
        match self.0.as_mut() {
            Some(m) => m.str(py, b),
            None => latin1(py, b),
        }
    }

    /// [`Memo::addr`], or new strings when the memo was busy.
    pub(super) fn addr<'py>(
        &mut self,
        py: Python<'py>,
        a: SocketAddr,
    ) -> (Bound<'py, PyString>, Bound<'py, PyString>) {
        match self.0.as_mut() {
            Some(m) => m.addr(py, a),
            None => (
                with_ip_text(a.ip(), |t| latin1(py, t)),
                latin1(py, itoa::Buffer::new().format(a.port()).as_bytes()),
            ),
        }
    }
}

/// Header values not worth keeping: they differ per user and carry credentials.
pub(super) fn private_header(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"cookie")
        || name.eq_ignore_ascii_case(b"authorization")
        || name.eq_ignore_ascii_case(b"proxy-authorization")
}

/// An environ as a recent request left it (before the app saw it), and the entries that
/// request set on the HTTP base, in order. A keep-alive client sends the same header names
/// request after request, and the values mostly repeat: a request whose entries have the
/// same keys in the same order starts from a copy of this dict and sets only the values that
/// differ from the ones kept here.
pub struct Template {
    pub(super) dict: Py<PyDict>,
    pub(super) keys: Vec<Py<PyString>>,
    /// What each key's value in `dict` was made from.
    pub(super) kept: Vec<Kept>,
    /// The bytes of the [`Kept::Bytes`] values, one after another: a few cache lines to
    /// compare a request with, not one allocation per value.
    pub(super) bytes: Vec<u8>,
    /// Header fields of the request it was made from.
    pub(super) fields: usize,
}

/// What a [`Template`] keeps of a value, to tell whether the next request's is the same.
pub(super) enum Kept {
    /// The very object (interned and shared values: compared by identity).
    Obj(Py<PyAny>),
    /// The bytes its `str` was made from: where they are in [`Template::bytes`].
    Bytes(std::ops::Range<usize>),
    /// Nothing (credentials, a request's own input): the next request always sets its own.
    Nothing,
}

/// Misses in a row after which the [`Template`] is rebuilt from the request that missed.
/// Clients taking turns keep the first one's template rather than rebuilding on each turn.
pub(super) const TEMPLATE_MISSES: u8 = 4;

/// `f` of an IP address's text; IPv4 written digit by digit (the hot path), IPv6 by `Display`.
fn with_ip_text<R>(ip: std::net::IpAddr, f: impl FnOnce(&[u8]) -> R) -> R {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut out = [0u8; 15];
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out[n] = b'.';
                    n += 1;
                }
                let mut buf = itoa::Buffer::new();
                let digits = buf.format(octet).as_bytes();
                out[n..n + digits.len()].copy_from_slice(digits);
                n += digits.len();
            }
            f(&out[..n])
        }
        std::net::IpAddr::V6(_) => f(ip.to_string().as_bytes()),
    }
}
