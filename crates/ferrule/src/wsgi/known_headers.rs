//! StartResponse headers met in earlier responses, known by the identity of the app's objects.
//!
//! An app passes the same objects to `start_response` request after request: a header
//! tuple written as a constant in its code (`("Content-Type", "text/plain")` is one object,
//! kept by the code), names from a module's constants. Such an object, seen again, needs no
//! second check or encoding: the tuple's `Name: value\r\n` line, or the name's bytes and what
//! it means to the server, are kept with a reference to the object itself. The reference
//! keeps the object alive, so its address stays its own, and a tuple or `str` never changes.
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

/// What a response header's name means to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    ContentLength,
    Date,
    Server,
    Other,
}

impl NameKind {
    /// The kind of a valid name; None for a hop-by-hop one (dropped, PEP 3333).
    #[must_use]
    pub fn of(name: &[u8]) -> Option<Self> {
        if ferrule_proto::http1::is_hop_by_hop(name) {
            None
        } else if name.eq_ignore_ascii_case(b"content-length") {
            Some(Self::ContentLength)
        } else if name.eq_ignore_ascii_case(b"date") {
            Some(Self::Date)
        } else if name.eq_ignore_ascii_case(b"server") {
            Some(Self::Server)
        } else {
            Some(Self::Other)
        }
    }
}

/// Entries of each table; a new entry replaces the oldest.
const ENTRIES: usize = 8;

/// A header tuple and its encoded line.
struct KnownPair {
    tuple: Py<PyTuple>,
    line: Box<[u8]>,
    kind: NameKind,
    /// The Content-Length it sets.
    length: Option<u64>,
}

/// A header name, its latin-1 bytes (a valid token) and its kind.
struct KnownName {
    name: Py<PyString>,
    bytes: Box<[u8]>,
    kind: NameKind,
}

#[derive(Default)]
pub struct KnownHeaders {
    pairs: Vec<KnownPair>,
    names: Vec<KnownName>,
    next_pair: usize,
    next_name: usize,
}

/// Whether something besides the app's header list and the caller holds `obj` (a
/// reference from the list, one from the caller): a constant of the app's code, a value
/// the app keeps. An object built for this response alone is not worth keeping.
fn held_elsewhere(obj: &Bound<'_, PyAny>) -> bool {
    // SAFETY: reads the reference count of a live object the caller holds, with the GIL
    // held (the Bound).
    unsafe { pyo3::ffi::Py_REFCNT(obj.as_ptr()) > 2 }
}

impl KnownHeaders {
    /// The index, name kind and Content-Length of this very tuple, if it was seen before.
    pub fn pair(&self, item: &Bound<'_, PyAny>) -> Option<(usize, NameKind, Option<u64>)> {
        let i = self
            .pairs
            .iter()
            .position(|p| p.tuple.as_ptr() == item.as_ptr())?;
        self.pairs.get(i).map(|p| (i, p.kind, p.length))
    }

    /// The encoded line of the tuple at `i` (from [`KnownHeaders::pair`]).
    pub fn line(&self, i: usize) -> &[u8] {
        self.pairs.get(i).map_or(&[], |p| &p.line)
    }

    /// The index and kind of this very name `str`, if it was seen before.
    pub fn name(&self, name: &Bound<'_, PyString>) -> Option<(usize, NameKind)> {
        self.names
            .iter()
            .position(|n| n.name.as_ptr() == name.as_ptr())
            .and_then(|i| Some((i, self.names.get(i)?.kind)))
    }

    /// The bytes of the name at `i` (from [`KnownHeaders::name`]).
    pub fn name_bytes(&self, i: usize) -> &[u8] {
        self.names.get(i).map_or(&[], |n| &n.bytes)
    }

    /// Keeps a checked tuple's line if the tuple is likely to come again.
    pub fn remember_pair(
        &mut self,
        tuple: &Bound<'_, PyTuple>,
        line: &[u8],
        kind: NameKind,
        length: Option<u64>,
    ) {
        if !tuple.is_exact_instance_of::<PyTuple>() || !held_elsewhere(tuple.as_any()) {
            return;
        }
        let entry = KnownPair {
            tuple: tuple.clone().unbind(),
            line: line.into(),
            kind,
            length,
        };
        put(&mut self.pairs, &mut self.next_pair, entry);
    }

    /// Keeps a checked name if the `str` is likely to come again.
    pub fn remember_name(&mut self, name: &Bound<'_, PyString>, bytes: &[u8], kind: NameKind) {
        if !name.is_exact_instance_of::<PyString>() || !held_elsewhere(name.as_any()) {
            return;
        }
        let entry = KnownName {
            name: name.clone().unbind(),
            bytes: bytes.into(),
            kind,
        };
        put(&mut self.names, &mut self.next_name, entry);
    }
}

/// Adds `entry` to a table of at most [`ENTRIES`], replacing the oldest when full.
fn put<T>(table: &mut Vec<T>, next: &mut usize, entry: T) {
    if table.len() < ENTRIES {
        table.push(entry);
    } else if let Some(slot) = table.get_mut(*next) {
        *slot = entry;
        *next = (*next + 1) % ENTRIES;
    }
}
