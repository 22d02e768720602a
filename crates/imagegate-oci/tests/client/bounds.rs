//! Bounded memory and state against hostile registries and hostile Pods: bodies hold
//! their places until read, a byte budget for bodies in flight, per-call limits, and
//! caches keyed by host that forget.

use std::sync::Arc;
use std::time::Duration;

use imagegate_oci::{CallOptions, ClientOptions, Descriptor, RegistryError, sha256_digest};
use imagegate_testkit::stub::{Reply, Request, Stub};

use crate::{anonymous_client, assert_mentions, client_with, options, reference};

fn blob(content: &[u8]) -> Descriptor {
    Descriptor {
        media_type: "application/octet-stream".into(),
        digest: sha256_digest(content),
        size: content.len() as u64,
        annotations: None,
        artifact_type: None,
    }
}

/// Fetches `count` copies of `content` concurrently (one repository each) from a stub
/// that writes each body slowly; returns the most bodies it was writing at once.
async fn fetch_slowly(options: ClientOptions, content: Vec<u8>, count: usize) -> usize {
    let descriptor = blob(&content);
    let body = Arc::new(content);
    let served = Arc::clone(&body);
    let stub = Stub::start(move |_: &Request| Reply::Slow {
        body: served.as_ref().clone(),
        chunks: 3,
        pause: Duration::from_millis(10),
    })
    .await;
    let client = Arc::new(client_with(
        imagegate_oci::DockerConfig::anonymous(),
        options,
    ));
    let calls: Vec<_> = (0..count)
        .map(|i| {
            let client = Arc::clone(&client);
            let image = reference(&stub.host(), &format!("sig{i}:x"));
            let descriptor = descriptor.clone();
            tokio::spawn(async move { client.get_blob(&image, &descriptor, u64::MAX).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().len(), body.len());
    }
    stub.max_in_flight()
}

#[tokio::test]
async fn a_body_holds_its_registry_place_until_it_is_read() {
    let most = fetch_slowly(
        ClientOptions {
            max_concurrent_per_registry: 2,
            ..options()
        },
        vec![7u8; 64 * 1024],
        6,
    )
    .await;
    assert!(most <= 2, "{most} bodies were in flight to one registry");
}

#[tokio::test]
async fn sixty_four_signature_layers_of_3_mb_stay_within_the_byte_budget() {
    // Issue 8 item 9: 64 `.sig` layers of 3 MB fetched at once. With an 8 MiB budget no
    // more than two bodies may be in flight (each reserves its size before it is asked).
    let most = fetch_slowly(
        ClientOptions {
            max_body_bytes_in_flight: 8 * 1024 * 1024,
            // 32 rounds of two bodies on a shared machine: waiting for the budget is
            // bounded by the request deadline, so give it room.
            request_timeout: Duration::from_secs(60),
            ..options()
        },
        vec![3u8; 3_000_000],
        64,
    )
    .await;
    assert!(most <= 2, "{most} bodies of 3 MB were in flight at once");
}

#[tokio::test]
async fn a_call_can_lower_the_limits_and_cap_the_bytes_it_reads() {
    const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#;
    let content = b"the real layer".to_vec();
    let descriptor = blob(&content);
    let stub = Stub::start(move |r: &Request| {
        if r.path().contains("/manifests/") {
            Reply::ok(MANIFEST.to_vec())
        } else {
            Reply::ok(content.clone())
        }
    })
    .await;
    let client = anonymous_client();
    let image = reference(&stub.host(), "repo:v1");

    let small = client.call(CallOptions {
        max_manifest_bytes: Some(16),
        max_blob_bytes: Some(8),
        ..CallOptions::default()
    });
    assert_eq!(small.max_manifest_bytes(), 16);
    match small.get_manifest(&image).await {
        Err(e @ RegistryError::TooLarge { limit: 16, .. }) => {
            assert_mentions(&e.to_string(), &["manifest", "16-byte limit"]);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    match small.get_blob(&image, &descriptor, 1024).await {
        Err(RegistryError::TooLarge { limit: 8, .. }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // A call can never raise the client's limits.
    let raised = client.call(CallOptions {
        max_manifest_bytes: Some(u64::MAX),
        ..CallOptions::default()
    });
    assert_eq!(raised.max_manifest_bytes(), options().max_manifest_bytes);

    // 20 bytes for the whole call: the first 14-byte blob fits, the second does not.
    let capped = client.call(CallOptions {
        max_total_bytes: Some(20),
        ..CallOptions::default()
    });
    assert_eq!(
        capped
            .get_blob(&image, &descriptor, 1024)
            .await
            .unwrap()
            .len(),
        14
    );
    let clone = capped.clone(); // clones share the count
    match clone.get_blob(&image, &descriptor, 1024).await {
        Err(e @ RegistryError::CallBudgetExceeded { limit: 20, .. }) => {
            assert_mentions(&e.to_string(), &[&descriptor.digest, "20-byte budget"]);
        }
        other => panic!("expected CallBudgetExceeded, got {other:?}"),
    }
    assert_eq!(capped.bytes_read(), 14);
    // Bodies without a declared size are counted as they arrive.
    let stub = Stub::start(|_: &Request| Reply::chunked(vec![b' '; 64])).await;
    let capped = client.call(CallOptions {
        max_total_bytes: Some(20),
        ..CallOptions::default()
    });
    match capped
        .get_manifest(&reference(&stub.host(), "repo:v1"))
        .await
    {
        Err(RegistryError::CallBudgetExceeded { .. }) => {}
        other => panic!("expected CallBudgetExceeded, got {other:?}"),
    }
}

#[tokio::test]
async fn state_kept_per_registry_and_repository_is_bounded() {
    // Every Pod chooses hosts and repositories: eight registries with five repositories
    // each, behind token authentication, through a client that remembers three.
    let client = client_with(
        imagegate_oci::DockerConfig::anonymous(),
        ClientOptions {
            max_cached_registries: 3,
            ..options()
        },
    );
    let mut stubs = Vec::new();
    for _ in 0..8 {
        let stub = Stub::start(|r: &Request| {
            if r.path() == "/token" {
                return Reply::ok(b"{\"token\":\"good\",\"expires_in\":300}".to_vec());
            }
            if r.header("Authorization") == Some("Bearer good") {
                return Reply::ok(b"{}".to_vec())
                    .header("Docker-Content-Digest", &sha256_digest(b"{}"));
            }
            let host = r.header("Host").unwrap_or_default();
            Reply::status(401).header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="http://{host}/token",service="stub""#),
            )
        })
        .await;
        for repo in 0..5 {
            client
                .resolve_digest(&reference(&stub.host(), &format!("repo{repo}:v1")))
                .await
                .unwrap();
        }
        stubs.push(stub);
    }
    let sizes = client.cache_sizes();
    assert!(sizes.schemes <= 3, "{sizes:?}");
    assert!(sizes.permits <= 3, "{sizes:?}");
    assert!(sizes.credentials <= 3, "{sizes:?}");
    assert!(sizes.authorizations <= 12, "{sizes:?}");
    assert!(sizes.authorizations > 0, "{sizes:?}");
    // A forgotten registry is simply negotiated again.
    client
        .resolve_digest(&reference(&stubs[0].host(), "repo0:v1"))
        .await
        .unwrap();
}

/// Set (to the helper's log file) in the child process of
/// `a_creds_store_helper_is_asked_only_about_hosts_it_lists`.
const HELPER_LOG: &str = "IMAGEGATE_TEST_HELPER_LOG";

/// A fake `docker-credential-imagegate-test`: logs each action; lists one server.
const FAKE_HELPER: &str = r#"#!/bin/sh
echo "$1" >> "$IMAGEGATE_TEST_HELPER_LOG"
case "$1" in
  list) echo '{"https://known.example:5000":"alice"}' ;;
  get)
    read -r server
    if [ "$server" = "known.example:5000" ]; then
      echo '{"Username":"alice","Secret":"s3cret"}'
    else
      echo "credentials not found in native keychain"; exit 1
    fi ;;
esac
"#;

#[test]
fn a_creds_store_helper_is_asked_only_about_hosts_it_lists() {
    // Issue 8 item 14: every image names a host; a `credsStore` must not cost a helper
    // process per host. The helper is found through PATH, which a test cannot change in
    // its own process, so the lookups run in a child: this test binary, filtered to
    // `creds_store_lookups`, with PATH and the log file set.
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let helper = dir.path().join("docker-credential-imagegate-test");
    std::fs::write(&helper, FAKE_HELPER).unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = dir.path().join("helper.log");
    let path = std::env::join_paths(std::iter::once(dir.path().to_owned()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["bounds::creds_store_lookups", "--exact", "--nocapture"])
        .env("PATH", path)
        .env(HELPER_LOG, &log)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let actions = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        actions.lines().collect::<Vec<_>>(),
        ["list", "get"],
        "one list for fifty unknown hosts, one get for the known one"
    );
}

/// The lookups of `a_creds_store_helper_is_asked_only_about_hosts_it_lists`, run in its
/// child process; outside it (no log file set) there is no helper and nothing to do.
#[tokio::test]
async fn creds_store_lookups() {
    if std::env::var_os(HELPER_LOG).is_none() {
        return;
    }
    let config = imagegate_oci::DockerConfig::parse(
        std::path::Path::new("config.json"),
        br#"{"credsStore":"imagegate-test"}"#,
    )
    .unwrap();
    for i in 0..50 {
        let host = format!("attacker-{i}.example");
        assert_eq!(config.credential_for(&host).await.unwrap(), None);
    }
    assert_eq!(
        config.credential_for("known.example:5000").await.unwrap(),
        Some(imagegate_oci::Credential::UserPassword {
            username: "alice".into(),
            password: "s3cret".into(),
        })
    );
}
