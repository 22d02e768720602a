//! A signed image in a real docker-registry (2.8: no referrers API, so the
//! `sha256-<hex>` referrers tag), verified by fetching with the imagegate-oci client.

use imagegate_notation::{Descriptor, SIGNATURE_ARTIFACT_TYPE, verify_signature};
use imagegate_oci::{ClientOptions, DockerConfig, Reference, RegistryClient};
use imagegate_testkit::Registry;
use imagegate_testkit::notation::{self, COSE, JWS, KeySpec, NotationCa, SignOptions, Validity};
use imagegate_testkit::oci;

use super::{now, trust};

#[test]
fn signed_image_verifies_from_the_registry_in_four_requests_after_resolve() {
    let registry = Registry::start();
    let pusher = registry.pusher();
    let digest = pusher.push_image("app", "v1");
    let (media_type, bytes) = pusher.get_manifest("app", &digest).expect("pushed image");
    let subject = oci::Descriptor::of(&media_type, &bytes);
    let ca = NotationCa::new("Registry Test Root", KeySpec::Rsa2048);
    let signer = ca.signer("registry-signer", KeySpec::Rsa2048, Validity::current());
    // Two signatures, as notation leaves after re-signing: one JWS, one COSE.
    notation::push_signature(
        &pusher,
        "app",
        &subject,
        &signer.sign_jws(&subject, &SignOptions::default()),
        JWS,
    );
    notation::push_signature(
        &pusher,
        "app",
        &subject,
        &signer.sign_cose(&subject, &SignOptions::default()),
        COSE,
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = RegistryClient::new(DockerConfig::anonymous(), ClientOptions::default()).unwrap();
    let image = Reference::parse(&format!("{}/app:v1", registry.host())).unwrap();
    let before_resolve = registry.requests().len();
    let resolved = runtime.block_on(client.resolve_digest(&image)).unwrap();
    assert_eq!(resolved, digest);
    let after_resolve = registry.requests().len();
    assert_eq!(after_resolve - before_resolve, 1);

    let verified = runtime.block_on(async {
        let referrers = client
            .get_referrers(&image, &resolved, Some(SIGNATURE_ARTIFACT_TYPE))
            .await
            .unwrap();
        let entry = referrers
            .index
            .manifests
            .iter()
            .find(|m| m.artifact_type.as_deref() == Some(SIGNATURE_ARTIFACT_TYPE))
            .expect("a Notation signature referrer")
            .clone();
        let signature = client
            .get_manifest(&image.with_digest(&entry.digest))
            .await
            .unwrap()
            .unwrap();
        let manifest = signature.image_manifest().unwrap();
        assert_eq!(
            manifest.subject.as_ref().map(|s| s.digest.as_str()),
            Some(resolved.as_str())
        );
        let layer = manifest.layers.first().expect("envelope layer");
        let envelope = client.get_blob(&image, layer, 256 * 1024).await.unwrap();
        let expected = Descriptor::new(&subject.media_type, &resolved, subject.size);
        verify_signature(&envelope, &layer.media_type, &expected, &trust(&ca), now()).unwrap()
    });
    assert!(verified.signer.contains("registry-signer"));
    let requests = registry.requests();
    let after = &requests[after_resolve..];
    println!("requests after resolve: {after:?}");
    // Referrers API (404 on docker-registry 2.8), fallback tag, signature manifest, envelope.
    assert!(
        after.len() <= 4,
        "more than 4 requests after resolve: {after:#?}"
    );
}

#[test]
fn unsigned_image_has_no_signature_referrers() {
    let registry = Registry::start();
    let pusher = registry.pusher();
    let digest = pusher.push_image("app", "unsigned");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = RegistryClient::new(DockerConfig::anonymous(), ClientOptions::default()).unwrap();
    let image = Reference::parse(&format!("{}/app:unsigned", registry.host())).unwrap();
    let referrers = runtime
        .block_on(client.get_referrers(&image, &digest, Some(SIGNATURE_ARTIFACT_TYPE)))
        .unwrap();
    assert!(referrers.index.manifests.is_empty());
}
