//! Tests of the tls room.
