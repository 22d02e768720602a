//! The engine against a real `docker-registry` (and, for what it lacks, such as the
//! OCI 1.1 referrers API, the test kit's stub): attestors (keys, certificates, keyless
//! `.sig` layers, cosign v3 Sigstore bundles, Notation), policy evaluation in both
//! phases, ImageValidatingPolicies, exceptions, deadlines and budgets, and the binary's
//! AdmissionReview fixtures answered by the engine alone (`reviews`).
#![allow(clippy::expect_used, clippy::unwrap_used)] // test set-up failures panic with their message

mod budget;
mod bundles;
mod certificates;
mod context; // rule `context` entries: ConfigMap-held keys, verdicts per key
mod deadline;
mod exceptions;
mod insecure;
mod ivp;
mod keyless;
mod notation;
mod outcomes;
mod reviews;
mod semantics;

use std::path::PathBuf;
use std::sync::Arc;

use imagegate_engine::{
    Access, AdmissionInput, AttestorFailure, Engine, ImageSubject, PolicySet, Verifier,
    verify_attestations, verify_attestors,
};
use imagegate_oci::{ClientOptions, DockerConfig, Reference, RegistryClient};
use imagegate_policy::conditions::Context;
use imagegate_policy::load::load_documents;
use imagegate_policy::matching::MatchContext;
use imagegate_policy::model::ImageVerification;
use imagegate_sigstore::TrustedRoot;

/// The shared vectors, or `None` (the test prints "skipped").
pub fn vectors() -> Option<PathBuf> {
    let dir = imagegate_testkit::vectors_dir();
    if dir.is_none() {
        eprintln!("skipped: no shared vectors");
    }
    dir
}

pub fn read(path: PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn read_text(path: PathBuf) -> String {
    String::from_utf8(read(path)).unwrap()
}

pub fn verification(json: serde_json::Value) -> ImageVerification {
    serde_json::from_value(json).expect("verifyImages entry")
}

/// A Pod named `test-pod` with one container `app` running `image`.
pub fn pod(image: &str) -> AdmissionInput {
    AdmissionInput::for_resource(
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "test-pod", "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": image}]},
        }),
        MatchContext::default(),
    )
}

/// An anonymous registry client with default limits.
pub fn client() -> RegistryClient {
    RegistryClient::new(DockerConfig::anonymous(), ClientOptions::default()).expect("client")
}

/// A verifier over [`client`], without the engine's caches.
pub fn verifier() -> Verifier {
    Verifier::new(Arc::new(client()))
}

/// An engine over [`client`] with default caches (digest, evidence and verdict caches
/// on), as the webhook runs.
pub fn engine() -> Engine {
    Engine::builder(client()).build()
}

/// `text` (a PEM) with every line indented by `spaces`, for a YAML block scalar.
pub fn indent(text: &str, spaces: usize) -> String {
    text.lines()
        .map(|l| format!("{}{l}", " ".repeat(spaces)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The ClusterPolicies, Policies, ImageValidatingPolicies and PolicyExceptions of
/// `yaml`, prepared as the binary prepares a policy file.
pub fn policy_set(yaml: &str) -> PolicySet {
    let loaded = load_documents(yaml, "test").expect("policies load");
    PolicySet::new(loaded.policies)
        .with_image_validating(loaded.image_validating)
        .with_exceptions(loaded.exceptions)
        .with_cel_exceptions(loaded.cel_exceptions.into_iter().map(std::sync::Arc::new))
}

/// Runs the attestors, then the attestations, of `entry` on `image` (a digest reference).
pub async fn check(
    image: &str,
    entry: &ImageVerification,
    trusted_root: Option<&TrustedRoot>,
) -> Result<(), AttestorFailure> {
    check_with(&verifier(), image, entry, trusted_root).await
}

pub async fn check_with(
    verifier: &Verifier,
    image: &str,
    entry: &ImageVerification,
    trusted_root: Option<&TrustedRoot>,
) -> Result<(), AttestorFailure> {
    let reference = Reference::parse(image).unwrap();
    let digest = verifier
        .resolve(&reference, Access::of(entry))
        .await
        .unwrap();
    let subject = ImageSubject {
        image: &reference,
        digest: &digest,
        verification: entry,
        rekor_keys: &[],
        trusted_root,
    };
    verify_attestors(verifier, &subject).await?;
    let context = Context::new(serde_json::json!({}));
    verify_attestations(verifier, &subject, image, &context).await
}

#[track_caller]
pub fn assert_fails_with(outcome: Result<(), AttestorFailure>, text: &str) {
    match outcome {
        Ok(()) => panic!("verification passed; expected a failure mentioning {text:?}"),
        Err(failure) => {
            let message = failure.to_string();
            eprintln!("expected failure: {message}");
            assert!(message.contains(text), "expected {text:?} in {message:?}")
        }
    }
}
