//! Shared, dev-only test helpers for imagegate's registry tests.
//!
//! - [`Registry`]: a real CNCF distribution registry (`docker-registry`) on
//!   `127.0.0.1:<random port>` with temporary storage, anonymous, htpasswd (Basic) or
//!   token (Bearer, with an in-process token issuer) authentication; it counts the
//!   requests it served.
//! - [`Pusher`]: pushes blobs, manifests, images, indexes, cosign signatures and
//!   attestations with the registry's credentials.
//! - [`CosignKey`], [`simple_signing_payload`], [`dsse_pae`]: cosign's key-based signing
//!   formats, byte for byte.
//! - [`notation`]: a Notation signer (certificate chains, JWS/COSE envelopes, an RFC 3161
//!   TSA) and pushing signatures with the `sha256-<hex>` referrers tag schema.
//! - [`apiserver::ApiServer`]: a faithful Kubernetes API server fake over HTTPS (checked
//!   against `kubectl`), for cluster-mode tests.
//! - [`write_docker_config`], [`vectors_dir`]: docker `config.json` files and the shared
//!   test vectors.
//! - [`layers::module_cycles`]: which modules of a crate use each other in a cycle.
//! - [`fixtures::World`]: the images, keys and placeholder values of the committed
//!   fixtures of `crates/imagegate/tests/data/`; [`fixtures::decoded_patch`].
//!
//! Everything is synchronous and safe to call from inside a tokio runtime: async work runs
//! on a private runtime in a separate thread. Every wait has a timeout; failures panic with
//! a message that says what happened (this crate is only used by tests).

#![deny(missing_docs)]
#![allow(clippy::expect_used, clippy::unwrap_used)] // dev-only: test-setup failures panic loudly

pub mod apiserver;
mod block;
mod cosign;
mod docker_config;
pub mod fixtures;
mod http1;
pub mod layers;
pub mod notation;
pub mod oci;
mod push;
mod registry;
pub mod sigstore;
pub mod stub;
mod token;
mod vectors;

pub use cosign::{CosignKey, dsse_pae, simple_signing_payload};
pub use docker_config::write_docker_config;
pub use push::Pusher;
pub use registry::{LoggedRequest, Registry};
pub use vectors::vectors_dir;
