//! Pure checks of fetched evidence: bytes in, verified statements or a reason out. No
//! I/O and no async: these are testable without tokio and can run on a blocking pool.

pub mod bundle;
pub mod key;
pub mod keyless;
pub mod notary;
pub mod tlog;
