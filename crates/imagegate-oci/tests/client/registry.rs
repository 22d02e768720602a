//! The registry client against a real registry (`docker-registry` on loopback).

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use imagegate_oci::manifest::{OCI_INDEX, OCI_MANIFEST};
use imagegate_oci::{
    CallOptions, Descriptor, DockerConfig, PullSecrets, RegistryError, sha256_digest,
};
use imagegate_testkit::Registry;

use crate::{
    anonymous_client, assert_mentions, client_with, docker_config, non_loopback_ip, options,
    reference,
};

#[tokio::test]
async fn resolve_digest_of_a_tag_is_the_pushed_digest_and_of_an_index_the_index_digest() {
    let registry = Registry::start();
    let host = registry.host();
    let pusher = registry.pusher();
    let image_digest = pusher.push_image("app", "v1");
    let index_digest = pusher.push_index("multi", "v1", 3);
    let client = anonymous_client();

    let image = reference(&host, "app:v1");
    assert_eq!(client.resolve_digest(&image).await.unwrap(), image_digest);
    // No platform is chosen: a multi-platform tag resolves to the index itself.
    let index = reference(&host, "multi:v1");
    assert_eq!(client.resolve_digest(&index).await.unwrap(), index_digest);

    // A reference that has a digest already costs no request.
    let sent = client.requests_sent();
    let pinned = reference(&host, &format!("app:v1@{image_digest}"));
    assert_eq!(client.resolve_digest(&pinned).await.unwrap(), image_digest);
    assert_eq!(client.requests_sent(), sent);

    let missing = reference(&host, "app:nope");
    match client.resolve_digest(&missing).await {
        Err(e @ RegistryError::ManifestUnknown { .. }) => {
            assert_mentions(&e.to_string(), &["manifest unknown", &host, "app:nope"]);
        }
        other => panic!("expected ManifestUnknown, got {other:?}"),
    }
}

#[tokio::test]
async fn get_manifest_by_tag_and_by_digest_is_digest_checked_and_404_is_none() {
    let registry = Registry::start();
    let host = registry.host();
    let pusher = registry.pusher();
    let digest = pusher.push_image("app", "v1");
    let index_digest = pusher.push_index("multi", "v1", 2);
    let client = anonymous_client();

    let by_tag = client
        .get_manifest(&reference(&host, "app:v1"))
        .await
        .unwrap()
        .expect("the tag exists");
    assert_eq!(by_tag.digest, digest);
    assert_eq!(sha256_digest(&by_tag.bytes), digest);
    assert_eq!(by_tag.media_type, OCI_MANIFEST);
    assert!(!by_tag.is_index());
    assert_eq!(by_tag.image_manifest().unwrap().layers.len(), 1);

    let by_digest = client
        .get_manifest(&reference(&host, &format!("app@{digest}")))
        .await
        .unwrap()
        .expect("the digest exists");
    assert_eq!(by_digest, by_tag);

    let index = client
        .get_manifest(&reference(&host, "multi:v1"))
        .await
        .unwrap()
        .expect("the index tag exists");
    assert_eq!(index.digest, index_digest);
    assert_eq!(index.media_type, OCI_INDEX);
    assert!(index.is_index());
    assert_eq!(index.image_index().unwrap().manifests.len(), 2);

    let absent_digest = sha256_digest(b"never pushed");
    for missing in [
        "app:nope",
        &format!("app@{absent_digest}"),
        "no/such/repo:v1",
    ] {
        let found = client
            .get_manifest(&reference(&host, missing))
            .await
            .unwrap();
        assert_eq!(found, None, "{missing}");
    }
}

#[tokio::test]
async fn get_blob_checks_limit_size_and_digest() {
    let registry = Registry::start();
    let host = registry.host();
    registry.pusher().push_image("app", "v1");
    let client = anonymous_client();
    let image = reference(&host, "app:v1");
    let manifest = client
        .get_manifest(&image)
        .await
        .unwrap()
        .unwrap()
        .image_manifest()
        .unwrap();

    for descriptor in [&manifest.config, &manifest.layers[0]] {
        let bytes = client.get_blob(&image, descriptor, 1 << 20).await.unwrap();
        assert_eq!(bytes.len() as u64, descriptor.size);
        assert_eq!(sha256_digest(&bytes), descriptor.digest);
    }

    // A descriptor that lies about the size of real content.
    let layer = &manifest.layers[0];
    let lying = Descriptor {
        size: layer.size + 1,
        ..layer.clone()
    };
    match client.get_blob(&image, &lying, 1 << 20).await {
        Err(e @ RegistryError::SizeMismatch { .. }) => {
            let RegistryError::SizeMismatch {
                expected, actual, ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!((*expected, *actual), (layer.size + 1, layer.size));
            assert_mentions(&e.to_string(), &[&layer.digest, &host, "bytes"]);
        }
        other => panic!("expected SizeMismatch, got {other:?}"),
    }

    // Over the limit: refused before any request.
    let sent = client.requests_sent();
    match client.get_blob(&image, layer, layer.size - 1).await {
        Err(e @ RegistryError::TooLarge { .. }) => {
            assert_mentions(&e.to_string(), &[&layer.digest, &host, "limit"]);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // Not a digest (path traversal attempt): refused before any request.
    let traversal = Descriptor {
        digest: "sha256:../../../v2/_catalog".into(),
        ..layer.clone()
    };
    assert!(matches!(
        client.get_blob(&image, &traversal, 1 << 20).await,
        Err(RegistryError::Malformed { .. })
    ));
    assert_eq!(client.requests_sent(), sent);

    let unknown = Descriptor {
        digest: sha256_digest(b"never pushed"),
        size: 12,
        ..layer.clone()
    };
    match client.get_blob(&image, &unknown, 1 << 20).await {
        Err(e @ RegistryError::BlobUnknown { .. }) => {
            assert_mentions(&e.to_string(), &["blob unknown", "app@sha256:", &host]);
        }
        other => panic!("expected BlobUnknown, got {other:?}"),
    }
}

#[tokio::test]
async fn basic_auth_with_docker_config_and_clear_unauthorized_errors() {
    const PASSWORD: &str = "c0rrect-horse-Battery";
    const WRONG: &str = "wr0ng-horse-Battery";
    let registry = Registry::start_with_basic_auth("alice", PASSWORD);
    let host = registry.host();
    let digest = registry.pusher().push_image("private/app", "v1");
    let image = reference(&host, "private/app:v1");
    let dir = tempfile::tempdir().unwrap();

    let client = client_with(
        docker_config(dir.path(), &host, "alice", PASSWORD),
        options(),
    );
    assert_eq!(client.resolve_digest(&image).await.unwrap(), digest);
    let manifest = client.get_manifest(&image).await.unwrap().unwrap();
    let config = manifest.image_manifest().unwrap().config;
    client.get_blob(&image, &config, 1 << 20).await.unwrap();

    let client = client_with(docker_config(dir.path(), &host, "alice", WRONG), options());
    let err = client.resolve_digest(&image).await.unwrap_err();
    assert!(
        matches!(&err, RegistryError::Unauthorized { hint: "", .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert_mentions(&text, &["unauthorized", &host, "private/app"]);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("alice:{WRONG}"));
    for shown in [text, format!("{err:?}")] {
        assert!(!shown.contains(WRONG), "{shown}");
        assert!(!shown.contains(&basic), "{shown}");
    }

    let err = anonymous_client().resolve_digest(&image).await.unwrap_err();
    assert!(
        matches!(&err, RegistryError::Unauthorized { .. }),
        "{err:?}"
    );
    assert_mentions(
        &err.to_string(),
        &[&host, "private/app", "(no credentials configured)"],
    );
}

#[tokio::test]
async fn token_auth_works_and_one_token_serves_every_request_of_a_repository() {
    const PASSWORD: &str = "t0ken-Secret";
    let registry = Registry::start_with_token_auth("bob", PASSWORD);
    let host = registry.host();
    let digest = registry.pusher().push_image("team/app", "v1");
    let image = reference(&host, "team/app:v1");
    let pinned = reference(&host, &format!("team/app@{digest}"));
    let dir = tempfile::tempdir().unwrap();
    let client = client_with(docker_config(dir.path(), &host, "bob", PASSWORD), options());

    let tokens_before = registry.token_requests();
    assert_eq!(client.resolve_digest(&image).await.unwrap(), digest);
    let manifest = client.get_manifest(&image).await.unwrap().unwrap();
    assert_eq!(
        client.get_manifest(&pinned).await.unwrap().unwrap(),
        manifest
    );
    let parsed = manifest.image_manifest().unwrap();
    client
        .get_blob(&image, &parsed.config, 1 << 20)
        .await
        .unwrap();
    client
        .get_blob(&image, &parsed.layers[0], 1 << 20)
        .await
        .unwrap();
    assert_eq!(client.resolve_digest(&image).await.unwrap(), digest);
    assert_eq!(registry.token_requests() - tokens_before, 1);

    let err = client_with(
        docker_config(dir.path(), &host, "bob", "not-it-XYZ"),
        options(),
    )
    .resolve_digest(&image)
    .await
    .unwrap_err();
    assert!(
        matches!(&err, RegistryError::Unauthorized { hint: "", .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("not-it-XYZ"), "{err}");

    let err = anonymous_client().resolve_digest(&image).await.unwrap_err();
    assert!(
        matches!(&err, RegistryError::Unauthorized { .. }),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &[&host, "(no credentials configured)"]);
}

#[tokio::test]
async fn pull_secrets_of_a_call_authenticate_it_alone() {
    const PASSWORD: &str = "pull-S3cret";
    let registry = Registry::start_with_token_auth("carol", PASSWORD);
    let host = registry.host();
    let digest = registry.pusher().push_image("team/private", "v1");
    let image = reference(&host, "team/private:v1");
    let client = anonymous_client();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("carol:{PASSWORD}"));
    let mut secrets = PullSecrets::default();
    secrets
        .add_docker_config_json(
            "secret ns/pull",
            format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#).as_bytes(),
        )
        .unwrap();
    let with_secrets = CallOptions {
        pull_secrets: Some(Arc::new(secrets)),
        ..CallOptions::default()
    };
    assert_eq!(
        client
            .call(with_secrets.clone())
            .resolve_digest(&image)
            .await
            .unwrap(),
        digest
    );
    // The token obtained with the Secret is not used by a call without it.
    let err = client.resolve_digest(&image).await.unwrap_err();
    assert!(
        matches!(&err, RegistryError::Unauthorized { .. }),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["(no credentials configured)"]);
    // Nor by a call whose secrets name other credentials.
    let mut wrong = PullSecrets::default();
    wrong
        .add_dockercfg(
            "secret ns/other",
            format!(r#"{{"{host}":{{"username":"carol","password":"nope-XYZ"}}}}"#).as_bytes(),
        )
        .unwrap();
    let err = client
        .call(CallOptions {
            pull_secrets: Some(Arc::new(wrong)),
            ..CallOptions::default()
        })
        .resolve_digest(&image)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::Unauthorized { hint: "", .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("nope-XYZ"), "{err}");
    // The first call's token still serves it.
    let tokens = registry.token_requests();
    client
        .call(with_secrets)
        .resolve_digest(&image)
        .await
        .unwrap();
    assert_eq!(registry.token_requests(), tokens);
}

#[tokio::test]
async fn one_request_per_lookup_without_ping_and_counted_on_both_sides() {
    let registry = Registry::start();
    let host = registry.host();
    let digest = registry.pusher().push_image("app", "v1");
    let client = anonymous_client();
    let image = reference(&host, "app:v1");

    let served = registry.requests().len();
    client.resolve_digest(&image).await.unwrap();
    // The first lookup costs one registry request: no `/v2/` ping (the failed HTTPS
    // handshake before it is not an HTTP request the registry serves).
    let first = &registry.requests()[served..];
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(
        (
            first[0].method.as_str(),
            first[0].path.as_str(),
            first[0].status
        ),
        ("HEAD", "/v2/app/manifests/v1", 200)
    );

    let (sent, served) = (client.requests_sent(), registry.requests().len());
    for _ in 0..5 {
        client.resolve_digest(&image).await.unwrap();
    }
    let pinned = reference(&host, &format!("app@{digest}"));
    client.get_manifest(&pinned).await.unwrap().unwrap();
    assert_eq!(client.requests_sent() - sent, 6);
    assert_eq!(registry.requests().len() - served, 6);
}

#[tokio::test]
async fn stopped_registry_is_unreachable_quickly() {
    let mut registry = Registry::start();
    let host = registry.host();
    registry.pusher().push_image("app", "v1");
    let image = reference(&host, "app:v1");
    let warm = anonymous_client();
    warm.resolve_digest(&image).await.unwrap();
    registry.stop();

    // A client that knows the registry speaks plain HTTP, and one that does not yet.
    for client in [warm, anonymous_client()] {
        let started = Instant::now();
        let err = client.resolve_digest(&image).await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(matches!(&err, RegistryError::Unreachable { .. }), "{err:?}");
        assert!(err.is_unreachable());
        assert_mentions(&err.to_string(), &["unreachable", &host]);
    }
}

#[tokio::test]
async fn loopback_registries_fall_back_to_plain_http_by_address_and_by_localhost() {
    let registry = Registry::start();
    let digest = registry.pusher().push_image("app", "v1");
    let port = registry.host().rsplit_once(':').unwrap().1.to_owned();
    for host in [registry.host(), format!("localhost:{port}")] {
        let client = anonymous_client();
        let image = reference(&host, "app:v1");
        assert!(image.is_loopback());
        assert_eq!(
            client.resolve_digest(&image).await.unwrap(),
            digest,
            "{host}"
        );
    }
}

/// The registry counts the requests it serves; a registry on a non-loopback address
/// with plain HTTP is tested with the stub in `misbehaving.rs` (the test kit's registry
/// listens on 127.0.0.1 only). Here: a non-loopback registry that is down is
/// `Unreachable` (a network problem), not `InsecureRefused` (a configuration problem).
#[tokio::test]
async fn down_non_loopback_registry_is_unreachable_not_insecure() {
    let Some(ip) = non_loopback_ip() else {
        eprintln!("skipped: this machine has no non-loopback address");
        return;
    };
    let addr = std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap(); // closed again at the end of this statement
    let host = addr.to_string();
    let image = reference(&host, "app:v1");
    assert!(!image.is_loopback());
    let client = client_with(DockerConfig::anonymous(), options());
    let err = client.resolve_digest(&image).await.unwrap_err();
    assert!(matches!(&err, RegistryError::Unreachable { .. }), "{err:?}");
    assert_mentions(&err.to_string(), &["unreachable", &host]);
}

/// Records every answer it is told about.
#[derive(Debug, Default)]
struct Observed(std::sync::Mutex<Vec<(String, Option<u16>)>>);

impl imagegate_oci::RequestObserver for Observed {
    fn observe(&self, registry: &str, status: Option<u16>) {
        self.0.lock().unwrap().push((registry.to_owned(), status));
    }
}

#[tokio::test]
async fn a_clone_shares_the_registry_state_and_the_count_but_observes_for_itself() {
    let registry = Registry::start();
    let host = registry.host();
    registry.pusher().push_image("app", "v1");
    let image = reference(&host, "app:v1");
    let original = anonymous_client();
    let observed = std::sync::Arc::new(Observed::default());
    let clone = original.clone().with_observer(observed.clone());

    clone.resolve_digest(&image).await.unwrap();
    let seen = observed.0.lock().unwrap().clone();
    assert_eq!(seen.last(), Some(&(host.clone(), Some(200))), "{seen:?}");
    // The scheme learnt through the clone serves the original (one request, no HTTPS
    // attempt first), and every request counts for both.
    assert_eq!(original.cache_sizes(), clone.cache_sizes());
    assert_eq!(original.cache_sizes().schemes, 1);
    assert_eq!(original.requests_sent(), 1);
    let served = registry.requests().len();
    original.resolve_digest(&image).await.unwrap();
    assert_eq!(registry.requests().len() - served, 1);
    assert_eq!(clone.requests_sent(), 2);
    // The original's request did not reach the clone's observer.
    assert_eq!(*observed.0.lock().unwrap(), seen);
}
