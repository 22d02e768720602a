//! Issue 8 item 9: the evidence of one image is read within a byte budget, whatever
//! the registry declares: five 3.5 MiB attestation layers (each under the client's
//! 4 MiB blob limit) are refused before any of them is fetched.

use imagegate_engine::{Access, EvidenceKind, VerifyError};
use imagegate_oci::Reference;
use imagegate_testkit::Registry;

#[tokio::test]
async fn evidence_beyond_the_per_image_budget_is_refused() {
    let registry = Registry::start();
    let host = registry.host();
    let pusher = registry.pusher();
    let digest = pusher.push_image("app/heavy", "v1");
    for i in 0..5u8 {
        let envelope = vec![b'a' + i; 3 * 1024 * 1024 + 512 * 1024];
        pusher.push_attestation_layer("app/heavy", &digest, &envelope, "https://example.com/p");
    }
    let verifier = crate::verifier();
    let repository = Reference::parse(&format!("{host}/app/heavy")).unwrap();
    let outcome = verifier
        .evidence(
            &repository,
            EvidenceKind::Attestations,
            &digest,
            Access::default(),
        )
        .await;
    match outcome {
        Err(e) => {
            assert!(
                matches!(e.cause(), VerifyError::EvidenceTooLarge { .. }),
                "{e}"
            );
            assert!(
                e.to_string().contains("larger than the 16777216 bytes"),
                "{e}"
            );
        }
        Ok(evidence) => panic!("read {} layers", evidence.layers.len()),
    }
    let blobs_read = registry
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.contains("/blobs/"))
        .count();
    assert_eq!(blobs_read, 0, "{}", registry.log());
}
