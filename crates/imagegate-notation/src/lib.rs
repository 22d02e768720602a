//! Notary Project (Notation) signatures, verified over bytes that others fetched. This
//! crate never talks to the network and never reads the clock: the caller passes "now".
//!
//! Modules, in the order a verification uses them:
//! - [`envelope`]: envelope formats, signing schemes, the headers both formats share.
//! - `jws`, `cose`: the JWS JSON and COSE_Sign1 envelope decoders.
//! - [`descriptor`]: the Notary payload and the OCI descriptor it signs.
//! - `crypto`, `certificate`: keys, signature algorithms, the certificate chain rules.
//! - [`trust`]: the trust stores of a verification (Kyverno's Notary trust policy).
//! - [`timestamp`]: RFC 3161 timestamp countersignatures.
//! - [`verify`]: one envelope for one artifact: integrity, authenticity, authentic
//!   timestamp, expiry.
//! - [`limits`]: size and count limits on hostile input.
//! - [`error`]: [`NotationError`], named after causes, and the [`Check`] each belongs to.
#![deny(missing_docs)]

mod certificate;
mod cose;
mod crypto;
pub mod descriptor;
pub mod envelope;
pub mod error;
mod jws;
pub mod limits;
mod time;
pub mod timestamp;
pub mod trust;
pub mod verify;

pub use crypto::SignatureAlgorithm;
pub use descriptor::{Descriptor, PAYLOAD_MEDIA_TYPE, Payload};
pub use envelope::{COSE_MEDIA_TYPE, EnvelopeFormat, JWS_MEDIA_TYPE, SigningScheme};
pub use error::{Check, NotationError, Result};
pub use timestamp::TimestampRange;
pub use trust::{TrustPolicy, read_certificates};
pub use verify::{Revocation, VerifiedSignature, verify_signature};

/// `artifactType` of Notation signature manifests.
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
