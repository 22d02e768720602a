//! The registry client against the misbehaving stub: the failure modes a real registry
//! cannot produce. Each test asserts the error variant and that its message is clear.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use imagegate_oci::{
    CallOptions, ClientOptions, Descriptor, DockerConfig, ReferrersSource, RegistryClient,
    RegistryError, sha256_digest,
};

use crate::{anonymous_client, assert_mentions, client_with, non_loopback_ip, options, reference};
use imagegate_testkit::stub::{Reply, Request, Stub};

const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

/// `MANIFEST` as a registry answers it, `HEAD` included (digest and media type headers:
/// resolving a tag then costs one request).
fn manifest_reply() -> Reply {
    Reply::ok(MANIFEST.to_vec())
        .header("Docker-Content-Digest", &sha256_digest(MANIFEST))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
}

fn client(options: ClientOptions) -> RegistryClient {
    client_with(DockerConfig::anonymous(), options)
}

/// The stub's paths for repository `repo`.
fn manifest_path(reference: &str) -> String {
    format!("/v2/repo/manifests/{reference}")
}

#[tokio::test]
async fn manifest_over_the_limit_is_too_large_with_or_without_content_length() {
    let big = vec![b' '; 4096];
    let stub = Stub::start(move |r: &Request| match r.path() {
        "/v2/repo/manifests/length" => Reply::ok(big.clone()),
        "/v2/repo/manifests/chunked" => Reply::chunked(big.clone()),
        "/v2/repo/manifests/exact" => Reply::chunked(vec![b' '; 1024]),
        _ => Reply::status(404),
    })
    .await;
    let client = client(ClientOptions {
        max_manifest_bytes: 1024,
        ..options()
    });
    for tag in ["length", "chunked"] {
        match client
            .get_manifest(&reference(&stub.host(), &format!("repo:{tag}")))
            .await
        {
            Err(e @ RegistryError::TooLarge { limit: 1024, .. }) => assert_mentions(
                &e.to_string(),
                &["manifest", &stub.host(), "1024-byte limit"],
            ),
            other => panic!("{tag}: expected TooLarge, got {other:?}"),
        }
    }
    // Exactly at the limit is fine.
    let exact = client
        .get_manifest(&reference(&stub.host(), "repo:exact"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exact.bytes.len(), 1024);
}

#[tokio::test]
async fn manifest_not_matching_its_digest_is_a_digest_mismatch() {
    let asked = sha256_digest(MANIFEST);
    let served = b"{\"schemaVersion\":2,\"evil\":true}".to_vec();
    let served_digest = sha256_digest(&served);
    let stub = Stub::start({
        let (asked, served) = (asked.clone(), served.clone());
        move |r: &Request| {
            if r.path() == manifest_path(&asked) {
                Reply::ok(served.clone())
            } else if r.path() == manifest_path("tag") {
                // By tag: the registry's own Docker-Content-Digest is checked too.
                Reply::ok(served.clone()).header("Docker-Content-Digest", &asked)
            } else {
                Reply::status(404)
            }
        }
    })
    .await;
    let client = anonymous_client();
    for rest in [format!("repo@{asked}"), "repo:tag".to_owned()] {
        match client.get_manifest(&reference(&stub.host(), &rest)).await {
            Err(e @ RegistryError::DigestMismatch { .. }) => {
                let RegistryError::DigestMismatch {
                    expected, actual, ..
                } = &e
                else {
                    unreachable!()
                };
                assert_eq!((expected, actual), (&asked, &served_digest));
                assert_mentions(
                    &e.to_string(),
                    &["manifest", &stub.host(), &asked, &served_digest],
                );
            }
            other => panic!("{rest}: expected DigestMismatch, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn blob_with_wrong_digest_or_size_is_refused() {
    let content = b"the real layer".to_vec();
    let descriptor = Descriptor {
        media_type: "application/octet-stream".into(),
        digest: sha256_digest(&content),
        size: content.len() as u64,
        annotations: None,
        artifact_type: None,
    };
    let stub = Stub::start(|r: &Request| match r.target.as_str() {
        // Same length, other bytes.
        t if t.starts_with("/v2/wrong-digest/") => Reply::ok(b"the evil layer".to_vec()),
        t if t.starts_with("/v2/too-long/") => Reply::ok(b"the real layer!".to_vec()),
        t if t.starts_with("/v2/too-short/") => Reply::chunked(b"the real".to_vec()),
        _ => Reply::status(404),
    })
    .await;
    let client = anonymous_client();
    let host = stub.host();

    match client
        .get_blob(&reference(&host, "wrong-digest:x"), &descriptor, 1024)
        .await
    {
        Err(e @ RegistryError::DigestMismatch { .. }) => assert_mentions(
            &e.to_string(),
            &["blob", &descriptor.digest, &host, "expected"],
        ),
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    for (repo, actual) in [("too-long", 15), ("too-short", 8)] {
        match client
            .get_blob(&reference(&host, &format!("{repo}:x")), &descriptor, 1024)
            .await
        {
            Err(e @ RegistryError::SizeMismatch { .. }) => {
                assert!(
                    matches!(e, RegistryError::SizeMismatch { expected: 14, actual: a, .. } if a == actual),
                    "{e:?}"
                );
                assert_mentions(
                    &e.to_string(),
                    &[&descriptor.digest, &format!("{actual} bytes"), "says 14"],
                );
            }
            other => panic!("{repo}: expected SizeMismatch, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn truncated_body_is_a_transfer_error_not_a_hang() {
    let stub = Stub::start(|_: &Request| Reply::Truncated {
        declared: 1000,
        body: vec![b'{'; 10],
    })
    .await;
    let client = anonymous_client(); // request_timeout 5 s
    let started = Instant::now();
    match client
        .get_manifest(&reference(&stub.host(), "repo:v1"))
        .await
    {
        Err(e @ RegistryError::Transfer { .. }) => {
            assert_mentions(&e.to_string(), &[&stub.host(), "transfer failed"]);
        }
        other => panic!("expected Transfer, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn endless_redirects_are_too_many_redirects() {
    let stub = Stub::start(|r: &Request| Reply::status(302).header("Location", &r.target)).await;
    let client = anonymous_client();
    match client
        .get_manifest(&reference(&stub.host(), "repo:loop"))
        .await
    {
        Err(e @ RegistryError::TooManyRedirects { .. }) => {
            assert_mentions(&e.to_string(), &[&stub.host(), "too many redirects"]);
        }
        other => panic!("expected TooManyRedirects, got {other:?}"),
    }
    // The first request and a bounded number of redirects, then it stops.
    let served = stub.requests().len();
    assert!((2..=11).contains(&served), "{served} requests");
}

#[tokio::test]
async fn rate_limit_with_a_short_retry_after_is_waited_out() {
    let stub = Stub::start(|r: &Request| match r.nth {
        1 => Reply::status(429).header("Retry-After", "1"),
        _ => Reply::ok(MANIFEST.to_vec()),
    })
    .await;
    let client = anonymous_client();
    let started = Instant::now();
    let manifest = client
        .get_manifest(&reference(&stub.host(), "repo:v1"))
        .await
        .unwrap()
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(manifest.digest, sha256_digest(MANIFEST));
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(stub.requests().len(), 2);
}

#[tokio::test]
async fn rate_limit_with_a_long_retry_after_fails_at_once() {
    let stub = Stub::start(|_: &Request| Reply::status(429).header("Retry-After", "120")).await;
    let client = anonymous_client(); // max_backoff 2 s
    let started = Instant::now();
    match client
        .resolve_digest(&reference(&stub.host(), "repo:v1"))
        .await
    {
        Err(e @ RegistryError::RateLimited { retry_after, .. })
            if retry_after == Duration::from_secs(120) =>
        {
            assert_mentions(&e.to_string(), &[&stub.host(), "rate limited", "120s"]);
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stub.requests().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_max_retries_times_then_exhausted() {
    let stub = Stub::start(|_: &Request| Reply::status(503)).await;
    let client = client(ClientOptions {
        max_retries: 2,
        max_backoff: Duration::from_millis(50),
        ..options()
    });
    match client
        .get_manifest(&reference(&stub.host(), "repo:v1"))
        .await
    {
        Err(
            e @ RegistryError::RetriesExhausted {
                status: 503,
                attempts: 3,
                ..
            },
        ) => assert_mentions(&e.to_string(), &[&stub.host(), "503", "3 attempts"]),
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    assert_eq!(stub.requests().len(), 3);
}

#[tokio::test]
async fn a_registry_that_never_answers_times_out_after_request_timeout() {
    let stub = Stub::start(|_: &Request| Reply::Hang).await;
    let client = client(ClientOptions {
        request_timeout: Duration::from_secs(1),
        ..options()
    });
    let started = Instant::now();
    match client
        .resolve_digest(&reference(&stub.host(), "repo:v1"))
        .await
    {
        Err(e @ RegistryError::Timeout { .. }) => {
            assert!(e.is_unreachable());
            assert_mentions(&e.to_string(), &[&stub.host(), "did not answer within 1s"]);
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2500),
        "{elapsed:?}"
    );
    // It was the plain-HTTP request that hung (the HTTPS probe was refused first).
    assert_eq!(stub.requests().len(), 1);
}

#[tokio::test]
async fn head_without_docker_content_digest_falls_back_to_get_and_hashes() {
    let stub = Stub::start(|r: &Request| match r.path() {
        "/v2/repo/manifests/v1" => Reply::ok(MANIFEST.to_vec())
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
        _ => Reply::status(404),
    })
    .await;
    let client = anonymous_client();
    let digest = client
        .resolve_digest(&reference(&stub.host(), "repo:v1"))
        .await
        .unwrap();
    assert_eq!(digest, sha256_digest(MANIFEST));
    let methods: Vec<String> = stub.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["HEAD", "GET"]);
}

#[tokio::test]
async fn loopback_registry_is_reached_over_plain_http_first_on_one_connection() {
    let stub = Stub::start(|r: &Request| match r.path() {
        "/v2/repo/manifests/v1" => manifest_reply(),
        "/v2/repo/manifests/busy" if r.nth == 1 => {
            Reply::ok(b"{\"errors\":[{\"code\":\"TOOMANYREQUESTS\"}]}".to_vec())
                .status_code(429)
                .header("Retry-After", "0")
        }
        "/v2/repo/manifests/busy" => Reply::ok(MANIFEST.to_vec()),
        _ => Reply::ok(b"{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\"}]}".to_vec()).status_code(404),
    })
    .await;
    let client = anonymous_client();
    let host = stub.host();
    for _ in 0..3 {
        client
            .resolve_digest(&reference(&host, "repo:v1"))
            .await
            .unwrap();
        client
            .get_manifest(&reference(&host, "repo:v1"))
            .await
            .unwrap()
            .unwrap();
        // A 404 with a body, and a retried 429 with a body, must not cost a connection.
        assert_eq!(
            client
                .get_manifest(&reference(&host, "repo:nope"))
                .await
                .unwrap(),
            None
        );
    }
    client
        .get_manifest(&reference(&host, "repo:busy"))
        .await
        .unwrap()
        .unwrap();
    client
        .resolve_digest(&reference(&host, "repo:v1"))
        .await
        .unwrap();
    assert_eq!(stub.requests().len(), 3 * 3 + 2 + 1);
    assert_eq!(
        stub.tls_probes(),
        0,
        "a loopback registry is asked over plain HTTP first: no TLS handshake to wait for"
    );
    assert_eq!(stub.connections(), 1, "one connection for every request");
    assert_eq!(client.requests_sent(), 3 * 3 + 2 + 1);
}

#[tokio::test]
async fn a_loopback_registry_answering_plain_http_with_400_is_tried_over_https() {
    // What a TLS-only Go server answers to plain HTTP. HTTPS is then tried (here it
    // fails too: the stub speaks no TLS), and the 400 is reported as the answer.
    let stub = Stub::start(|_: &Request| {
        Reply::ok(b"Client sent an HTTP request to an HTTPS server.\n".to_vec()).status_code(400)
    })
    .await;
    let client = anonymous_client();
    match client
        .get_manifest(&reference(&stub.host(), "repo:v1"))
        .await
    {
        Err(RegistryError::UnexpectedStatus { status: 400, .. }) => {}
        other => panic!("expected UnexpectedStatus 400, got {other:?}"),
    }
    assert_eq!(stub.tls_probes(), 1, "HTTPS is tried after the 400");
    assert_eq!(stub.requests().len(), 1);
    assert_eq!(
        client.requests_sent(),
        1,
        "the failed TLS handshake sent no request"
    );
}

#[tokio::test]
async fn a_request_on_a_connection_the_server_closed_is_resent_once() {
    // The second request arrives on the kept-alive connection and the server closes it
    // unanswered (idle timeout, restart): a GET is resent on a new connection.
    let stub = Stub::start(|r: &Request| match r.nth {
        2 => Reply::Close,
        _ => Reply::ok(MANIFEST.to_vec()),
    })
    .await;
    let client = anonymous_client();
    let image = reference(&stub.host(), "repo:v1");
    client.get_manifest(&image).await.unwrap().unwrap();
    let again = client.get_manifest(&image).await.unwrap().unwrap();
    assert_eq!(again.digest, sha256_digest(MANIFEST));
    assert_eq!(stub.requests().len(), 3);
    assert_eq!(stub.connections(), 2);

    // A server that closes every request unanswered is a transfer error, after one resend.
    let stub = Stub::start(|_: &Request| Reply::Close).await;
    match anonymous_client()
        .get_manifest(&reference(&stub.host(), "repo:v1"))
        .await
    {
        Err(e @ RegistryError::Transfer { .. }) => {
            assert_mentions(&e.to_string(), &[&stub.host(), "transfer failed"]);
        }
        other => panic!("expected Transfer, got {other:?}"),
    }
    assert_eq!(stub.requests().len(), 2);
}

#[tokio::test]
async fn the_scheme_is_learned_from_an_answer_not_from_a_failed_first_contact() {
    // A loopback registry that is down at first contact: both schemes are refused. When
    // it comes back, the client must try HTTPS again (it may have come back with TLS)
    // rather than remember "plain HTTP" from a registry that never answered.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap(); // closed again at the end of this statement
    let client = anonymous_client();
    let image = reference(&addr.to_string(), "repo:v1");
    let err = client.resolve_digest(&image).await.unwrap_err();
    assert!(matches!(&err, RegistryError::Unreachable { .. }), "{err:?}");
    assert_eq!(
        client.requests_sent(),
        0,
        "refused connections sent no request"
    );

    let stub = Stub::start_at(addr, |_: &Request| manifest_reply()).await;
    assert_eq!(
        client.resolve_digest(&image).await.unwrap(),
        sha256_digest(MANIFEST)
    );
    assert_eq!(stub.tls_probes(), 0, "plain HTTP is tried first again");
    assert_eq!(stub.requests().len(), 1);
    assert_eq!(client.requests_sent(), 1);
}

#[tokio::test]
async fn non_loopback_registry_gets_plain_http_only_when_allowed() {
    let Some(ip) = non_loopback_ip() else {
        eprintln!("skipped: this machine has no non-loopback address");
        return;
    };
    let stub = Stub::start_on(ip, |_: &Request| manifest_reply()).await;
    let host = stub.host();
    let image = reference(&host, "repo:v1");
    assert!(!image.is_loopback());

    match anonymous_client().resolve_digest(&image).await {
        Err(e @ RegistryError::InsecureRefused { .. }) => assert_mentions(
            &e.to_string(),
            &[
                &host,
                "does not speak HTTPS",
                &format!("--allow-insecure-registry {host}"),
            ],
        ),
        other => panic!("expected InsecureRefused, got {other:?}"),
    }
    assert_eq!(stub.tls_probes(), 1);
    assert_eq!(stub.requests().len(), 0, "plain HTTP must not be tried");

    let allowed = client(ClientOptions {
        insecure_registries: vec![host.clone()],
        ..options()
    });
    assert_eq!(
        allowed.resolve_digest(&image).await.unwrap(),
        sha256_digest(MANIFEST)
    );
    assert_eq!(stub.requests().len(), 1);
    assert_eq!(
        stub.tls_probes(),
        1,
        "an allowed registry is asked over HTTP first"
    );

    // Allowed for one call only (a rule's allowInsecureRegistry): that call speaks plain
    // HTTP; the client's other calls, later, still refuse it.
    let client = anonymous_client();
    let per_call = client.call(CallOptions {
        allow_plain_http: true,
        ..CallOptions::default()
    });
    assert_eq!(
        per_call.resolve_digest(&image).await.unwrap(),
        sha256_digest(MANIFEST)
    );
    assert_eq!(stub.requests().len(), 2);
    assert_eq!(stub.tls_probes(), 1);
    match client.resolve_digest(&image).await {
        Err(RegistryError::InsecureRefused { .. }) => {}
        other => panic!("expected InsecureRefused, got {other:?}"),
    }
    assert_eq!(stub.requests().len(), 2, "the learned scheme is not reused");
    assert_eq!(stub.tls_probes(), 2);
}

/// A 401 whose Bearer realm is `realm`, from a stub that also serves the token endpoint
/// at `/token` with `token_reply` and the manifest to requests bearing `Bearer good`.
async fn token_stub(
    realm: impl Fn(&str) -> String + Send + Sync + 'static,
    token_reply: impl Fn() -> Reply + Send + Sync + 'static,
) -> Stub {
    // The stub's own address is only known once it runs; the realm closure gets it
    // from the Host header the client sends.
    Stub::start(move |r: &Request| {
        if r.path() == "/token" {
            return token_reply();
        }
        if r.header("Authorization") == Some("Bearer good") {
            return Reply::ok(MANIFEST.to_vec());
        }
        let host = r.header("Host").unwrap_or_default();
        Reply::status(401).header(
            "WWW-Authenticate",
            &format!(r#"Bearer realm="{}",service="stub""#, realm(host)),
        )
    })
    .await
}

fn local_realm(host: &str) -> String {
    format!("http://{host}/token")
}

#[tokio::test]
async fn plain_http_token_realm_on_a_non_loopback_host_is_refused_before_sending_credentials() {
    const PASSWORD: &str = "n3ver-Sent";
    // Where the realm points: a second stub on a non-loopback address when there is one
    // (it must see no request), else a name that does not resolve. Also a host name that
    // merely starts with "127." — it is not a loopback address.
    let witness = match non_loopback_ip() {
        Some(ip) => Some(
            Stub::start_on(ip, |_: &Request| {
                Reply::ok(b"{\"token\":\"good\"}".to_vec())
            })
            .await,
        ),
        None => None,
    };
    let mut realms = vec![
        "http://auth.example.invalid/token".to_owned(),
        "http://127.attacker.invalid/token".to_owned(),
    ];
    if let Some(witness) = &witness {
        realms.push(format!("http://{}/token", witness.host()));
    }
    for realm in realms {
        let stub = token_stub(
            {
                let realm = realm.clone();
                move |_| realm.clone()
            },
            || Reply::status(500),
        )
        .await;
        let dir = tempfile::tempdir().unwrap();
        let config = crate::docker_config(dir.path(), &stub.host(), "carol", PASSWORD);
        let client = client_with(config, options());
        match client
            .resolve_digest(&reference(&stub.host(), "repo:v1"))
            .await
        {
            Err(e @ RegistryError::TokenService { .. }) => {
                let text = e.to_string();
                assert_mentions(&text, &[&stub.host(), "plain HTTP", "token service"]);
                assert!(!text.contains(PASSWORD), "{text}");
            }
            other => panic!("{realm}: expected TokenService, got {other:?}"),
        }
        assert_eq!(stub.requests().len(), 1, "{realm}");
    }
    if let Some(witness) = witness {
        assert_eq!(witness.requests().len(), 0, "credentials were sent");
    }
}

#[tokio::test]
async fn garbage_from_the_token_service_is_a_clear_token_service_error() {
    for (body, reason) in [
        (b"<html>login</html>".to_vec(), "not a token document"),
        (b"{\"expires_in\":300}".to_vec(), "no token"),
        (b"{\"token\":\"\"}".to_vec(), "no token"),
    ] {
        let stub = token_stub(local_realm, move || Reply::ok(body.clone())).await;
        match anonymous_client()
            .get_manifest(&reference(&stub.host(), "repo:v1"))
            .await
        {
            Err(e @ RegistryError::TokenService { .. }) => {
                // The realm shown is the one the registry named, port included.
                assert_mentions(
                    &e.to_string(),
                    &[
                        &stub.host(),
                        &format!("token service http://{}/token", stub.host()),
                        reason,
                    ],
                );
            }
            other => panic!("expected TokenService ({reason}), got {other:?}"),
        }
    }
}

#[tokio::test]
async fn huge_token_answer_is_too_large() {
    let huge = format!("{{\"token\":\"{}\"}}", "a".repeat(300 * 1024)).into_bytes();
    for chunked in [false, true] {
        let huge = huge.clone();
        let stub = token_stub(local_realm, move || {
            if chunked {
                Reply::chunked(huge.clone())
            } else {
                Reply::ok(huge.clone())
            }
        })
        .await;
        match anonymous_client()
            .resolve_digest(&reference(&stub.host(), "repo:v1"))
            .await
        {
            Err(e @ RegistryError::TooLarge { .. }) => {
                assert_mentions(&e.to_string(), &["token response", &stub.host(), "limit"]);
            }
            other => panic!("chunked={chunked}: expected TooLarge, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn tokens_with_odd_lifetimes_still_work() {
    // `expires_in: 0` (already stale by our margin) must still be used for the request it
    // was fetched for; an absurd `expires_in` must not overflow the clock.
    for expires_in in ["0", "18446744073709551615"] {
        let body = format!("{{\"token\":\"good\",\"expires_in\":{expires_in}}}");
        let stub = token_stub(local_realm, move || Reply::ok(body.clone().into_bytes())).await;
        let manifest = anonymous_client()
            .get_manifest(&reference(&stub.host(), "repo:v1"))
            .await;
        assert!(
            matches!(&manifest, Ok(Some(m)) if m.digest == sha256_digest(MANIFEST)),
            "expires_in {expires_in}: {manifest:?}"
        );
    }
}

#[tokio::test]
async fn a_cached_token_expires_by_time() {
    // Issue 8 item 14: tokens are kept until `expires_in` (less a 5 s margin) passes,
    // then fetched again. 6 s leaves one second of use; 300 s outlasts the test.
    for (expires_in, fetches) in [(6, 2), (300, 1)] {
        let fetched = Arc::new(AtomicUsize::new(0));
        let body = format!("{{\"token\":\"good\",\"expires_in\":{expires_in}}}");
        let stub = token_stub(local_realm, {
            let fetched = fetched.clone();
            move || {
                fetched.fetch_add(1, Ordering::SeqCst);
                Reply::ok(body.clone().into_bytes())
            }
        })
        .await;
        let client = anonymous_client();
        let image = reference(&stub.host(), "repo:v1");
        client.get_manifest(&image).await.unwrap();
        client.get_manifest(&image).await.unwrap();
        assert_eq!(fetched.load(Ordering::SeqCst), 1, "reused at once");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        client.get_manifest(&image).await.unwrap();
        assert_eq!(
            fetched.load(Ordering::SeqCst),
            fetches,
            "expires_in {expires_in}"
        );
    }
}

#[tokio::test]
async fn unauthorized_without_a_usable_challenge_is_malformed() {
    for challenge in [
        None,
        Some("Negotiate abc"),
        Some("Bearer service=\"no-realm\""),
    ] {
        let stub = Stub::start(move |_: &Request| match challenge {
            Some(c) => Reply::status(401).header("WWW-Authenticate", c),
            None => Reply::status(401),
        })
        .await;
        match anonymous_client()
            .resolve_digest(&reference(&stub.host(), "repo:v1"))
            .await
        {
            Err(e @ RegistryError::Malformed { .. }) => assert_mentions(
                &e.to_string(),
                &["malformed answer", &stub.host(), "WWW-Authenticate"],
            ),
            other => panic!("{challenge:?}: expected Malformed, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn blob_redirect_to_storage_does_not_carry_the_credentials() {
    const PASSWORD: &str = "st0rage-Must-Not-See";
    let content = b"layer bytes".to_vec();
    let digest = sha256_digest(&content);
    let storage = Stub::start({
        let content = content.clone();
        move |_: &Request| Reply::ok(content.clone())
    })
    .await;
    let storage_url = format!("http://{}/blob-data", storage.host());
    let registry = Stub::start(move |r: &Request| {
        if r.header("Authorization").is_none() {
            return Reply::status(401).header("WWW-Authenticate", "Basic realm=\"stub\"");
        }
        Reply::status(307).header("Location", &storage_url)
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = crate::docker_config(dir.path(), &registry.host(), "dave", PASSWORD);
    let descriptor = Descriptor {
        media_type: "application/octet-stream".into(),
        digest,
        size: content.len() as u64,
        annotations: None,
        artifact_type: None,
    };
    let bytes = client_with(config, options())
        .get_blob(&reference(&registry.host(), "repo:v1"), &descriptor, 1024)
        .await
        .unwrap();
    assert_eq!(bytes, content);
    let seen = storage.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("Authorization"), None, "{seen:?}");
}

#[tokio::test]
async fn requests_to_one_registry_are_bounded() {
    let stub = Stub::start(|_: &Request| Reply::Hang).await;
    let client = std::sync::Arc::new(client(ClientOptions {
        request_timeout: Duration::from_secs(1),
        max_concurrent_per_registry: 2,
        ..options()
    }));
    let host = stub.host();
    let calls: Vec<_> = (0..6)
        .map(|i| {
            let client = client.clone();
            let image = reference(&host, &format!("repo:v{i}"));
            tokio::spawn(async move { client.resolve_digest(&image).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        stub.requests().len(),
        2,
        "only two requests in flight at once"
    );
    for call in calls {
        assert!(matches!(
            call.await.unwrap(),
            Err(RegistryError::Timeout { .. })
        ));
    }
    assert_eq!(stub.requests().len(), 6);
}

/// A registry with the referrers API answers `404 NAME_UNKNOWN` for a repository it does
/// not know (a signature repository not created yet): the client falls back to the tag
/// for that lookup but keeps asking the API elsewhere on that registry. A plain `404`
/// (docker-registry 2.8 has no such route) is remembered: later lookups go straight to
/// the fallback tag.
#[tokio::test]
async fn only_a_routeless_404_marks_the_referrers_api_missing() {
    let digest = sha256_digest(MANIFEST);
    let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let with_api = Stub::start(move |r: &Request| match r.path() {
        p if p.starts_with("/v2/missing/referrers/") => Reply::ok(
            br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#
                .to_vec(),
        )
        .status_code(404)
        .content_type("application/json"),
        p if p.starts_with("/v2/repo/referrers/") => Reply::ok(index.to_vec())
            .content_type("application/vnd.oci.image.index.v1+json"),
        _ => Reply::status(404),
    })
    .await;
    let client = anonymous_client();
    let missing = client
        .get_referrers(&reference(&with_api.host(), "missing:v1"), &digest, None)
        .await
        .unwrap();
    assert_eq!(missing.source, ReferrersSource::FallbackTag);
    assert!(missing.index.manifests.is_empty());
    let found = client
        .get_referrers(&reference(&with_api.host(), "repo:v1"), &digest, None)
        .await
        .unwrap();
    assert!(
        matches!(found.source, ReferrersSource::Api { .. }),
        "{:?} {:#?}",
        found.source,
        with_api.log()
    );

    let without_api = Stub::start(|r: &Request| match r.path() {
        p if p.contains("/referrers/") => Reply::ok(b"404 page not found\n".to_vec())
            .status_code(404)
            .content_type("text/plain; charset=utf-8"),
        _ => Reply::status(404),
    })
    .await;
    for repo in ["one:v1", "two:v1"] {
        let referrers = client
            .get_referrers(&reference(&without_api.host(), repo), &digest, None)
            .await
            .unwrap();
        assert_eq!(referrers.source, ReferrersSource::FallbackTag);
    }
    let log = without_api.log();
    let asked = log.iter().filter(|l| l.contains("/referrers/")).count();
    assert_eq!(asked, 1, "{log:#?}");
}
