//! Docker `config.json` files.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Writes `DIR/config.json` as docker writes it after `docker login`:
/// `{"auths":{"HOST":{"auth":"base64(user:password)"}}}`. Returns the file's path.
pub fn write_docker_config(dir: &Path, registry_host: &str, user: &str, password: &str) -> PathBuf {
    let auth = STANDARD.encode(format!("{user}:{password}"));
    let config = serde_json::json!({ "auths": { registry_host: { "auth": auth } } });
    let path = dir.join("config.json");
    let bytes = serde_json::to_vec_pretty(&config).expect("serialising docker config.json");
    std::fs::write(&path, bytes)
        .unwrap_or_else(|e| panic!("imagegate-testkit: cannot write {}: {e}", path.display()));
    path
}
