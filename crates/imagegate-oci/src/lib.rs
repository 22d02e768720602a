//! Image references and the OCI distribution registry client.
//!
//! Knows nothing about signatures or policies: it names images, fetches manifests and
//! blobs with limits, deadlines and digest checks, and authenticates like docker.
#![deny(missing_docs)]

#[cfg(feature = "client")]
mod bounded;
pub mod challenge;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "client")]
pub mod credentials;
#[cfg(feature = "client")]
pub mod error;
#[cfg(feature = "client")]
pub mod gate;
pub mod manifest;
pub mod reference;
#[cfg(feature = "client")]
pub mod referrers;

#[cfg(feature = "client")]
pub use client::{
    CacheSizes, Call, CallOptions, ClientOptions, RegistryClient, RequestObserver, is_valid_digest,
    sha256_digest,
};
#[cfg(feature = "client")]
pub use credentials::{Credential, CredentialsError, DockerConfig, PullSecrets};
#[cfg(feature = "client")]
pub use error::{RegistryError, Result};
#[cfg(feature = "client")]
pub use gate::RequestGate;
pub use manifest::{Descriptor, FetchedManifest, ImageIndex, ImageManifest};
pub use reference::{Reference, ReferenceError};
#[cfg(feature = "client")]
pub use referrers::{Referrers, ReferrersSource, referrers_tag};
