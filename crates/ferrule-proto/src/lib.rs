//! Sans-IO codecs for Ferrule.
//!
//! Nothing here touches a socket, a thread or Python: every parser takes a byte slice and the
//! [`Limits`] and answers `Ok(Some(..))`, `Ok(None)` ("need more bytes") or a typed
//! [`ParseError`] that maps to exactly one HTTP status. That keeps them testable with raw bytes
//! and fuzzable.
#![forbid(unsafe_code)]

pub mod cgi;
pub mod error;
pub mod http1;
pub mod limits;

pub use error::ParseError;
pub use limits::Limits;
