//! The shared test vectors (`../shared/vectors`).

use std::path::PathBuf;

/// Environment variable naming the vectors directory (overrides the default location).
const VECTORS_ENV: &str = "IMAGEGATE_VECTORS";
/// When set to `1`, a missing vectors directory is a test failure instead of a skip.
const REQUIRE_ENV: &str = "IMAGEGATE_REQUIRE_VECTORS";

/// The shared test vectors directory: `$IMAGEGATE_VECTORS` if set, else
/// `<workspace>/../shared/vectors`. `None` when it does not exist, in which case tests
/// should print "skipped" and return; panics instead when `IMAGEGATE_REQUIRE_VECTORS=1`.
pub fn vectors_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os(VECTORS_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/vectors"
        )),
    };
    if dir.is_dir() {
        return Some(dir.canonicalize().unwrap_or(dir));
    }
    if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
        panic!(
            "imagegate-testkit: test vectors directory {} does not exist and {REQUIRE_ENV}=1 \
             (set {VECTORS_ENV} to its location)",
            dir.display()
        );
    }
    None
}
