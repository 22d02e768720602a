//! imagegate-sigstore against the shared vectors, read at test time from
//! `../shared/vectors` (never copied here; found through `IMAGEGATE_VECTORS` or next to
//! the workspace). When the folder is absent each test prints
//! "skipped: ../shared/vectors not found" and returns, unless
//! `IMAGEGATE_REQUIRE_VECTORS=1`, in which case it panics.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test set-up failures panic with their message

use std::path::PathBuf;

/// The shared vectors (read at test time, never copied); `None` prints "skipped".
fn vectors() -> Option<PathBuf> {
    let dir = imagegate_testkit::vectors_dir();
    if dir.is_none() {
        println!("skipped: ../shared/vectors not found");
    }
    dir
}

/// The shared vectors folder, or return from the test (reported skipped).
macro_rules! vectors_or_skip {
    () => {
        match $crate::vectors() {
            Some(dir) => dir,
            None => return,
        }
    };
}

mod conformance;
mod vectors;
