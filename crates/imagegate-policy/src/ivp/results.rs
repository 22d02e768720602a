//! The contract between the engine and the pure evaluation: what the engine must verify
//! ([`Check`]s of a [`crate::ivp::VerificationPlan`]) and what it hands back
//! ([`VerificationResults`], e.g. a [`ResultsMap`]). CEL reads these results; it never
//! fetches or verifies anything itself.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::Value;

/// One verification of one image.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Check {
    /// Signatures of the image by this attestor (`verifyImageSignatures`).
    Signature {
        /// Attestor name (`spec.attestors[].name`).
        attestor: String,
    },
    /// This attestation of the image, signed by this attestor
    /// (`verifyAttestationSignatures`).
    Attestation {
        /// Attestor name.
        attestor: String,
        /// Attestation name (`spec.attestations[].name`).
        attestation: String,
    },
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Signature { attestor } => write!(f, "attestor {attestor}"),
            Check::Attestation {
                attestor,
                attestation,
            } => write!(f, "attestation {attestation} by attestor {attestor}"),
        }
    }
}

/// The outcome of one [`Check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// A signature (or attestation) by the attestor verified.
    Verified,
    /// Checked and not verified (no signature, wrong key, identity mismatch, …): counts 0.
    Failed {
        /// Why, for logs and messages.
        reason: String,
    },
    /// Could not be checked (registry error, deadline): the expression errors and the
    /// policy's `failurePolicy` decides.
    Error {
        /// Why (names the registry, never a secret).
        reason: String,
    },
}

/// What the engine verified, read by the CEL functions during evaluation.
pub trait VerificationResults {
    /// The outcome of `check` for `image` (the image string as extracted from the
    /// resource), `None` when it was not verified.
    fn outcome(&self, image: &str, check: &Check) -> Option<&CheckOutcome>;
    /// The verified payload of `attestation` for `image` (for in-toto attestations the
    /// statement's predicate, as Kyverno's `extractPayload` returns it).
    fn payload(&self, image: &str, attestation: &str) -> Option<&Value>;
    /// Image metadata for `getImageData` (Kyverno's image data object), when fetched.
    fn image_data(&self, image: &str) -> Option<&Value>;
}

/// A plain in-memory [`VerificationResults`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultsMap {
    /// Outcomes by image and check.
    pub outcomes: HashMap<(String, Check), CheckOutcome>,
    /// Verified payloads by image and attestation name.
    pub payloads: HashMap<(String, String), Value>,
    /// Image data by image.
    pub image_data: HashMap<String, Value>,
}

impl ResultsMap {
    /// Records the outcome of `check` for `image`.
    pub fn insert(&mut self, image: &str, check: Check, outcome: CheckOutcome) -> &mut Self {
        self.outcomes.insert((image.to_owned(), check), outcome);
        self
    }

    /// Records the verified payload of `attestation` for `image`.
    pub fn insert_payload(&mut self, image: &str, attestation: &str, payload: Value) -> &mut Self {
        self.payloads
            .insert((image.to_owned(), attestation.to_owned()), payload);
        self
    }
}

impl VerificationResults for ResultsMap {
    fn outcome(&self, image: &str, check: &Check) -> Option<&CheckOutcome> {
        self.outcomes.get(&(image.to_owned(), check.clone()))
    }
    fn payload(&self, image: &str, attestation: &str) -> Option<&Value> {
        self.payloads
            .get(&(image.to_owned(), attestation.to_owned()))
    }
    fn image_data(&self, image: &str) -> Option<&Value> {
        self.image_data.get(image)
    }
}

/// Which images a policy's expressions tried to verify, and whether any check passed:
/// the evidence `validationConfigurations.required` reads. Merge the records of every
/// policy of a request before calling [`crate::ivp::enforce_required`] (Kyverno shares
/// them across the policies of a request).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verifications {
    /// Image → whether at least one verification of it passed.
    pub images: BTreeMap<String, bool>,
}

impl Verifications {
    /// Records one verification attempt.
    pub fn record(&mut self, image: &str, verified: bool) {
        let entry = self.images.entry(image.to_owned()).or_insert(false);
        *entry |= verified;
    }

    /// Adds another record (another policy of the same request).
    pub fn merge(&mut self, other: &Verifications) {
        for (image, verified) in &other.images {
            self.record(image, *verified);
        }
    }
}
