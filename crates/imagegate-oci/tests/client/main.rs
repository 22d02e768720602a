//! Tests of the registry client (`imagegate_oci::client`).
//!
//! - `registry`: everything a real registry can show, against the CNCF distribution
//!   registry (`docker-registry`) started by `imagegate-testkit`.
//! - `bounds`: memory and state bounds (body budget, per-call limits, bounded caches),
//!   against the test kit's misbehaving registry.
//! - `misbehaving`: the failure modes a real registry cannot produce, against the test
//!   kit's misbehaving registry (`imagegate_testkit::stub`, whose module comment says why
//!   it exists).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

use std::path::Path;
use std::time::Duration;

use imagegate_oci::{ClientOptions, DockerConfig, Reference, RegistryClient};
use imagegate_testkit::stub::non_loopback_ip;

mod bounds;
mod misbehaving;
mod registry;

/// Options for tests: short deadlines so a broken test fails fast, not in minutes.
fn options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        max_backoff: Duration::from_secs(2),
        ..ClientOptions::default()
    }
}

fn anonymous_client() -> RegistryClient {
    RegistryClient::new(DockerConfig::anonymous(), options()).unwrap()
}

fn client_with(config: DockerConfig, options: ClientOptions) -> RegistryClient {
    RegistryClient::new(config, options).unwrap()
}

/// `host/rest` parsed, e.g. `reference("127.0.0.1:5000", "app:v1")`.
fn reference(host: &str, rest: &str) -> Reference {
    Reference::parse(&format!("{host}/{rest}")).unwrap()
}

/// A docker `config.json` as `docker login host` writes it, written by the test kit and
/// parsed from its bytes.
fn docker_config(dir: &Path, host: &str, user: &str, password: &str) -> DockerConfig {
    let path = imagegate_testkit::write_docker_config(dir, host, user, password);
    let bytes = std::fs::read(&path).unwrap();
    DockerConfig::parse(&path, &bytes).unwrap()
}

/// Asserts `text` mentions every one of `needles`.
#[track_caller]
fn assert_mentions(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{text:?} should mention {needle:?}");
    }
}
