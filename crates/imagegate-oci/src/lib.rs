//! Image references and the OCI distribution registry client.
//!
//! Knows nothing about signatures or policies: it names images, fetches manifests and
//! blobs with limits, deadlines and digest checks, and authenticates like docker.
#![deny(missing_docs)]

pub mod challenge;
pub mod client;
pub mod credentials;
pub mod error;
pub mod manifest;
pub mod reference;

pub use client::{ClientOptions, RegistryClient, is_valid_digest, sha256_digest};
pub use credentials::{Credential, CredentialsError, DockerConfig};
pub use error::{RegistryError, Result};
pub use manifest::{Descriptor, FetchedManifest, ImageIndex, ImageManifest};
pub use reference::{Reference, ReferenceError};
