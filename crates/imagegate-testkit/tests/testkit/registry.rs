//! Pushing, signing and attesting against the real `docker-registry` (anonymous, Basic
//! and token auth), its request log and its lifecycle.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use imagegate_testkit::oci::{self, ImageIndex};
use imagegate_testkit::{CosignKey, Registry, dsse_pae, simple_signing_payload, vectors_dir};
use reqwest::StatusCode;

use crate::{manifest, verify};

/// `GET url` with optional Basic or Bearer credentials: status, `WWW-Authenticate`, body.
async fn get(
    url: &str,
    basic: Option<(&str, &str)>,
    bearer: Option<&str>,
) -> (StatusCode, String, String) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    // distribution 2.8 answers 404 for an OCI manifest unless Accept names the OCI type.
    let mut request = client.get(url).header(
        "accept",
        format!("{}, {}", oci::OCI_MANIFEST, oci::OCI_INDEX),
    );
    if let Some((user, password)) = basic {
        request = request.basic_auth(user, Some(password));
    }
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, challenge, response.text().await.unwrap())
}

/// Pushes an image, an index, two signatures and an attestation, and checks what the
/// registry returns; shared by the three registry kinds.
fn push_sign_attest(registry: &Registry) {
    let pusher = registry.pusher();
    let repo = "team/app";
    let digest = pusher.push_image(repo, "v1");
    let (media_type, bytes) = pusher.get_manifest(repo, "v1").expect("tagged image");
    assert_eq!(media_type, oci::OCI_MANIFEST);
    assert_eq!(oci::sha256_digest(&bytes), digest);
    assert_eq!(manifest(&bytes).layers.len(), 1);
    assert_ne!(pusher.push_image(repo, "v2"), digest, "images are unique");
    assert!(pusher.get_manifest(repo, "missing").is_none());

    let index_digest = pusher.push_index(repo, "multi", 3);
    let (media_type, bytes) = pusher
        .get_manifest(repo, &index_digest)
        .expect("index by digest");
    assert_eq!(media_type, oci::OCI_INDEX);
    let index: ImageIndex = serde_json::from_slice(&bytes).unwrap();
    let platforms: Vec<String> = index
        .manifests
        .iter()
        .map(|m| {
            let p = m.platform.as_ref().unwrap();
            format!(
                "{}/{}{}",
                p.os,
                p.architecture,
                p.variant
                    .as_deref()
                    .map(|v| format!("/{v}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
    for child in &index.manifests {
        assert!(pusher.get_manifest(repo, &child.digest).is_some());
    }

    // Sign twice (in a separate signature repository): the second signature is appended.
    let key = CosignKey::generate();
    let reference = format!("{}/{repo}", registry.host());
    let annotations = BTreeMap::from([("env".to_owned(), "test".to_owned())]);
    pusher.sign("team/sigs", &reference, &digest, &key, &BTreeMap::new());
    let sig_digest = pusher.sign("team/sigs", &reference, &digest, &key, &annotations);
    let tag = oci::cosign_tag(&digest, "sig");
    assert_eq!(
        tag,
        format!("sha256-{}.sig", digest.strip_prefix("sha256:").unwrap())
    );
    let (media_type, bytes) = pusher
        .get_manifest("team/sigs", &tag)
        .expect(".sig manifest");
    assert_eq!(media_type, oci::OCI_MANIFEST);
    assert_eq!(oci::sha256_digest(&bytes), sig_digest);
    let sig_manifest = manifest(&bytes);
    assert_eq!(
        sig_manifest.config.digest,
        oci::sha256_digest(&oci::cosign_config(&sig_manifest.layers))
    );
    assert_eq!(sig_manifest.layers.len(), 2);
    for (layer, annotations) in sig_manifest
        .layers
        .iter()
        .zip([BTreeMap::new(), annotations])
    {
        assert_eq!(layer.media_type, oci::SIMPLE_SIGNING);
        let payload = simple_signing_payload(&reference, &digest, &annotations);
        assert_eq!(layer.digest, oci::sha256_digest(&payload));
        let signature = &layer.annotations.as_ref().unwrap()[oci::SIGNATURE_ANNOTATION];
        assert!(verify(
            &key.public_der(),
            &payload,
            &STANDARD.decode(signature).unwrap()
        ));
    }

    // Raw layer (e.g. a tampered payload): appended as given.
    pusher.push_signature_layer("team/sigs", &digest, b"{\"tampered\":true}", "AAAA");
    let (_, bytes) = pusher.get_manifest("team/sigs", &tag).unwrap();
    let sig_manifest = manifest(&bytes);
    assert_eq!(sig_manifest.layers.len(), 3);
    assert_eq!(
        sig_manifest.layers[2].annotations.as_ref().unwrap()[oci::SIGNATURE_ANNOTATION],
        "AAAA"
    );

    // Attestation in the image's own repository.
    let predicate = serde_json::json!({ "builder": { "id": "https://example.com/builder" } });
    let att_digest = pusher.attest(
        repo,
        &reference,
        &digest,
        &key,
        "https://slsa.dev/provenance/v0.2",
        &predicate,
    );
    let (_, bytes) = pusher
        .get_manifest(repo, &oci::cosign_tag(&digest, "att"))
        .expect(".att manifest");
    assert_eq!(oci::sha256_digest(&bytes), att_digest);
    let att_manifest = manifest(&bytes);
    assert_eq!(att_manifest.layers.len(), 1);
    let layer = &att_manifest.layers[0];
    assert_eq!(layer.media_type, oci::DSSE_ENVELOPE);
    let layer_annotations = layer.annotations.as_ref().unwrap();
    assert_eq!(layer_annotations[oci::SIGNATURE_ANNOTATION], "");
    assert_eq!(
        layer_annotations["predicateType"],
        "https://slsa.dev/provenance/v0.2"
    );
    // Fetch the envelope blob back and verify it.
    let blob = pusher_blob(registry, repo, &layer.digest);
    let envelope: serde_json::Value = serde_json::from_slice(&blob).unwrap();
    assert_eq!(envelope["payloadType"], "application/vnd.in-toto+json");
    assert_eq!(envelope["signatures"][0]["keyid"], "");
    let statement = STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    let signature = STANDARD
        .decode(envelope["signatures"][0]["sig"].as_str().unwrap())
        .unwrap();
    assert!(verify(
        &key.public_der(),
        &dsse_pae("application/vnd.in-toto+json", &statement),
        &signature
    ));
    let statement: serde_json::Value = serde_json::from_slice(&statement).unwrap();
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v0.1");
    assert_eq!(
        statement["predicateType"],
        "https://slsa.dev/provenance/v0.2"
    );
    assert_eq!(statement["subject"][0]["name"], reference.as_str());
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        digest.strip_prefix("sha256:").unwrap()
    );
    assert_eq!(statement["predicate"], predicate);

    // A second attestation is appended.
    pusher.attest(
        repo,
        &reference,
        &digest,
        &key,
        "https://example.com/other",
        &serde_json::json!({}),
    );
    let (_, bytes) = pusher
        .get_manifest(repo, &oci::cosign_tag(&digest, "att"))
        .unwrap();
    assert_eq!(manifest(&bytes).layers.len(), 2);
}

/// Reads a blob with the registry's credentials (through a token when needed).
fn pusher_blob(registry: &Registry, repo: &str, digest: &str) -> Vec<u8> {
    let url = format!("http://{}/v2/{repo}/blobs/{digest}", registry.host());
    let credentials = registry.credentials();
    let token = registry.token_realm().map(|realm| {
        let (user, password) = credentials.clone().unwrap();
        token_for(&realm, &user, &password, &format!("repository:{repo}:pull"))
    });
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let basic = if token.is_none() {
                        credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
                    } else {
                        None
                    };
                    let client = reqwest::Client::builder().no_proxy().build().unwrap();
                    let mut request = client.get(&url);
                    if let Some((u, p)) = basic {
                        request = request.basic_auth(u, Some(p));
                    }
                    if let Some(t) = &token {
                        request = request.bearer_auth(t);
                    }
                    let response = request.send().await.unwrap();
                    assert_eq!(response.status(), StatusCode::OK);
                    response.bytes().await.unwrap().to_vec()
                })
        })
        .join()
        .unwrap()
    })
}

/// Asks the token issuer for a token (blocking, on a private runtime).
fn token_for(realm: &str, user: &str, password: &str, scope: &str) -> String {
    let url = format!("{realm}?service=imagegate-testkit-registry&scope={scope}");
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let (status, _, body) = get(&url, Some((user, password)), None).await;
                    assert_eq!(status, StatusCode::OK, "{body}");
                    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
                    body["token"].as_str().unwrap().to_owned()
                })
        })
        .join()
        .unwrap()
    })
}

#[test]
fn anonymous_registry_push_sign_attest() {
    let registry = Registry::start();
    assert!(registry.host().starts_with("127.0.0.1:"));
    assert_eq!(registry.credentials(), None);
    push_sign_attest(&registry);
    assert_eq!(registry.token_requests(), 0);
}

#[test]
fn basic_auth_registry_push_sign_attest() {
    let registry = Registry::start_with_basic_auth("alice", "wonderland");
    assert_eq!(
        registry.credentials(),
        Some(("alice".to_owned(), "wonderland".to_owned()))
    );
    push_sign_attest(&registry);
}

#[test]
fn token_auth_registry_push_sign_attest() {
    let registry = Registry::start_with_token_auth("bob", "builder");
    assert_eq!(
        registry.credentials(),
        Some(("bob".to_owned(), "builder".to_owned()))
    );
    push_sign_attest(&registry);
    // Tokens are cached per repository by one pusher... (team/app and team/sigs)
    assert!(
        registry.token_requests() >= 2,
        "{}",
        registry.token_requests()
    );
}

#[tokio::test]
async fn basic_auth_refuses_anonymous_and_accepts_credentials() {
    // The sync API works inside a (current-thread) tokio runtime.
    let registry = Registry::start_with_basic_auth("alice", "wonderland");
    let digest = registry.pusher().push_image("app", "latest");
    let base = format!("http://{}", registry.host());

    let (status, challenge, _) = get(&format!("{base}/v2/"), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    let (status, _, _) = get(&format!("{base}/v2/"), Some(("alice", "wrong")), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = get(&format!("{base}/v2/"), Some(("alice", "wonderland")), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = get(
        &format!("{base}/v2/app/manifests/{digest}"),
        Some(("alice", "wonderland")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn token_auth_challenge_and_flow() {
    let registry = Registry::start_with_token_auth("bob", "builder");
    let base = format!("http://{}", registry.host());
    let realm = registry.token_realm().unwrap();
    assert!(
        realm.starts_with("http://127.0.0.1:") && realm.ends_with("/token"),
        "{realm}"
    );

    // Anonymous: 401 with the Bearer challenge.
    let (status, challenge, _) = get(&format!("{base}/v2/"), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge,
        format!(r#"Bearer realm="{realm}",service="imagegate-testkit-registry""#)
    );
    let (status, challenge, _) = get(&format!("{base}/v2/app/manifests/latest"), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        challenge.ends_with(r#",scope="repository:app:pull""#),
        "{challenge}"
    );

    // The issuer refuses anonymous and wrong credentials.
    assert_eq!(registry.token_requests(), 0);
    let scope_url = format!("{realm}?service=imagegate-testkit-registry&scope=repository:app:pull");
    assert_eq!(
        get(&scope_url, None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&scope_url, Some(("bob", "nope")), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(registry.token_requests(), 2);

    // Push through the pusher (challenge -> token -> retry), then pull with a pull token.
    let digest = registry.pusher().push_image("app", "latest");
    let (status, _, body) = get(&scope_url, Some(("bob", "builder")), None).await;
    assert_eq!(status, StatusCode::OK);
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["token"], answer["access_token"]);
    assert_eq!(answer["expires_in"], 300);
    assert!(answer["issued_at"].as_str().unwrap().ends_with('Z'));
    let token = answer["token"].as_str().unwrap();

    // JWT header and claims.
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header: serde_json::Value =
        serde_json::from_slice(&b64url.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["x5c"].as_array().unwrap().len(), 1);
    let claims: serde_json::Value =
        serde_json::from_slice(&b64url.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["aud"], "imagegate-testkit-registry");
    assert_eq!(claims["sub"], "bob");
    assert_eq!(
        claims["access"],
        serde_json::json!([{ "type": "repository", "name": "app", "actions": ["pull"] }])
    );
    assert_eq!(b64url.decode(parts[2]).unwrap().len(), 64, "ES256 R||S");

    let manifest_url = format!("{base}/v2/app/manifests/{digest}");
    let (status, _, _) = get(&manifest_url, None, Some(token)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = get(&format!("{base}/v2/"), None, Some(token)).await;
    assert_eq!(status, StatusCode::OK);
    // The token grants exactly the requested scope: not another repository...
    let (status, challenge, _) = get(
        &format!("{base}/v2/other/manifests/latest"),
        None,
        Some(token),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    // ...and a forged token is refused.
    let forged = format!("{}.{}.{}", parts[0], parts[1], b64url.encode([7u8; 64]));
    assert_eq!(
        get(&manifest_url, None, Some(&forged)).await.0,
        StatusCode::UNAUTHORIZED
    );

    // requests() works behind token auth too (its sync marker is outside /v2/).
    let requests = registry.requests();
    assert!(requests.iter().any(|r| r.path == "/v2/" && r.status == 401));
    assert!(requests.iter().any(|r| r.path == "/v2/" && r.status == 200));
}

#[test]
fn requests_counts_served_requests() {
    let registry = Registry::start();
    assert!(
        registry.requests().iter().all(|r| r.path == "/v2/"),
        "only readiness probes so far"
    );
    let before = registry.requests().len();
    let pusher = registry.pusher();
    assert!(pusher.get_manifest("counted", "a").is_none());
    assert!(pusher.get_manifest("counted", "b?x=1").is_none());
    let requests = registry.requests();
    assert_eq!(requests.len(), before + 2, "{requests:?}");
    let last = &requests[requests.len() - 1];
    assert_eq!(last.method, "GET");
    assert_eq!(last.path, "/v2/counted/manifests/b?x=1");
    assert_eq!(last.status, 404);

    let digest = pusher.push_blob("counted", b"hello");
    let requests = registry.requests();
    let methods: Vec<&str> = requests[before + 2..]
        .iter()
        .map(|r| r.method.as_str())
        .collect();
    assert_eq!(methods, ["HEAD", "POST", "PUT"]);
    assert_eq!(requests.last().unwrap().status, 201);
    assert!(
        requests
            .last()
            .unwrap()
            .path
            .contains(&format!("digest={}", digest.replace(':', "%3A")))
    );
    // An existing blob is only HEADed.
    pusher.push_blob("counted", b"hello");
    let after = registry.requests();
    assert_eq!(after.len(), requests.len() + 1);
    assert_eq!(
        (
            after.last().unwrap().method.as_str(),
            after.last().unwrap().status
        ),
        ("HEAD", 200)
    );
}

#[test]
fn stop_makes_connections_fail_and_drop_cleans_up() {
    let mut registry = Registry::start();
    registry.pusher().push_image("app", "v1");
    let host = registry.host();
    let dir = registry.dir().to_path_buf();
    assert!(dir.join("storage").is_dir());
    let served = registry.requests().len();

    registry.stop();
    assert_eq!(registry.host(), host);
    let addr = host.parse().unwrap();
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "registry still listening"
    );
    assert_eq!(
        registry.requests().len(),
        served,
        "requests() still answers after stop()"
    );
    registry.stop(); // idempotent

    drop(registry);
    assert!(!dir.exists(), "temporary storage removed on drop");
}

#[test]
fn drop_kills_the_registry() {
    let registry = Registry::start();
    let addr = registry.host().parse().unwrap();
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok());
    drop(registry);
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

#[test]
fn vectors_dir_points_at_shared_vectors() {
    match vectors_dir() {
        Some(dir) => assert!(dir.join("cosign-legacy").is_dir(), "{}", dir.display()),
        None => println!("skipped: no shared vectors directory"),
    }
}

#[test]
fn handles_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Registry>();
    assert_send_sync::<imagegate_testkit::Pusher<'static>>();
    assert_send_sync::<CosignKey>();
}

#[test]
fn registry_in_a_static_is_shared_across_threads() {
    static SHARED: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    let registry = SHARED.get_or_init(Registry::start);
    std::thread::scope(|s| {
        for i in 0..4 {
            s.spawn(move || registry.pusher().push_image("shared", &format!("t{i}")));
        }
    });
    let puts = registry
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.starts_with("/v2/shared/manifests/t"))
        .count();
    assert_eq!(puts, 4);
}
