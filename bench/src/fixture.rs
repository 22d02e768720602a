//! What every scenario needs: a real `docker-registry` on loopback holding signed
//! images, a Kyverno policy for their key, pods and AdmissionReviews naming them, and
//! engines built the way `imagegate serve` builds its own.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use imagegate_engine::admission::AdmissionReview;
use imagegate_engine::{AdmissionInput, CacheOptions, Engine, EngineResponse, Phase, PolicySet};
use imagegate_oci::{ClientOptions, DockerConfig, RegistryClient};
use imagegate_policy::matching::MatchContext;
use imagegate_testkit::oci::{self, Descriptor, ImageManifest};
use imagegate_testkit::{CosignKey, Registry};
use serde_json::{Value, json};

/// A registry with images signed by one key.
pub struct Fixture {
    /// The running registry (stopped when dropped).
    pub registry: Registry,
    /// The signing key (ECDSA P-256, as `cosign generate-key-pair`).
    pub key: CosignKey,
}

impl Fixture {
    /// Starts an empty anonymous registry and generates a key.
    pub fn start() -> Fixture {
        Fixture {
            registry: Registry::start(),
            key: CosignKey::generate(),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.registry.host()
    }

    /// Pushes a small unique image as `repo:tag` and signs it like
    /// `cosign sign --key K --tlog-upload=false`; returns `HOST/repo:tag`.
    pub fn push_signed(&self, repo: &str, tag: &str) -> String {
        self.push_signed_as(repo, tag, &self.host())
    }

    /// [`Fixture::push_signed`] for clients that reach the registry as `host` (a proxy).
    pub fn push_signed_as(&self, repo: &str, tag: &str, host: &str) -> String {
        let pusher = self.registry.pusher();
        let digest = pusher.push_image(repo, tag);
        let reference = format!("{host}/{repo}");
        pusher.sign(repo, &reference, &digest, &self.key, &BTreeMap::new());
        format!("{reference}:{tag}")
    }

    /// Requests the registry served so far (syncs with its access log first).
    pub fn requests(&self) -> usize {
        self.registry.requests().len()
    }

    /// The requests served after the first `since`, as `METHOD path status` lines
    /// with a count when repeated.
    pub fn requests_since(&self, since: usize) -> Vec<String> {
        let mut counted: BTreeMap<String, usize> = BTreeMap::new();
        for r in self.registry.requests().into_iter().skip(since) {
            *counted
                .entry(format!("{} {} {}", r.method, r.path, r.status))
                .or_default() += 1;
        }
        counted
            .into_iter()
            .map(|(line, n)| if n > 1 { format!("{n}× {line}") } else { line })
            .collect()
    }

    /// User + system CPU seconds the registry process has used.
    pub fn registry_cpu_seconds(&self) -> f64 {
        let dir = self.registry.dir().to_string_lossy().into_owned();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return 0.0;
        };
        for entry in entries.flatten() {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            if cmdline.contains("docker-registry") && cmdline.contains(&dir) {
                return crate::report::cpu_seconds(&entry.path().join("stat"));
            }
        }
        0.0
    }

    /// A ClusterPolicy verifying every image of this registry with this key (no Rekor:
    /// the test kit signs like `--tlog-upload=false`), pinning digests.
    pub fn policy_yaml(&self) -> String {
        policy_yaml(&self.host(), &self.key.public_pem(), 1)
    }

    /// The loaded policy set of [`Fixture::policy_yaml`].
    pub fn policies(&self) -> anyhow::Result<PolicySet> {
        policy_set(&self.policy_yaml())
    }
}

/// The policy text for images under `host/` signed by `public_pem`, with `entries`
/// verifyImages entries that differ only by an extra image pattern matching nothing and
/// by a transparency-log URL that `ignoreTlog` leaves unused: the pattern makes each a
/// distinct rule check and the URL a distinct verdict-cache identity (the cache key is
/// what is verified, not which images an entry names) for the same images.
pub fn policy_yaml(host: &str, public_pem: &str, entries: usize) -> String {
    let key: String = public_pem
        .trim_end()
        .lines()
        .map(|line| format!("                      {line}\n"))
        .collect();
    let entry = |i: usize| {
        let (extra, rekor_url) = if i == 0 {
            (String::new(), String::new())
        } else {
            (
                format!("            - \"bench.invalid/entry-{i}/*\"\n"),
                format!("                      url: \"https://rekor-{i}.invalid\"\n"),
            )
        };
        format!(
            r#"        - imageReferences:
            - "{host}/*"
{extra}          attestors:
            - entries:
                - keys:
                    publicKeys: |-
{key}                    rekor:
                      ignoreTlog: true
{rekor_url}"#
        )
    };
    let entries: String = (0..entries.max(1)).map(entry).collect();
    format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: check-image
  annotations:
    pod-policies.kyverno.io/autogen-controllers: none
spec:
  validationFailureAction: Enforce
  background: false
  webhookTimeoutSeconds: 30
  rules:
    - name: verify-signature
      match:
        any:
          - resources:
              kinds:
                - Pod
      verifyImages:
{entries}"#
    )
}

/// Loads and prepares the policies (ClusterPolicies and ImageValidatingPolicies) of
/// YAML text.
pub fn policy_set(yaml: &str) -> anyhow::Result<PolicySet> {
    let loaded = imagegate_policy::load::load_documents(yaml, "bench")
        .map_err(|e| anyhow::anyhow!("bench policy does not load: {e}"))?;
    Ok(PolicySet::new(loaded.policies).with_image_validating(loaded.image_validating))
}

/// A pod with one container per image.
pub fn pod(name: &str, images: &[String]) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": containers},
    })
}

/// An `admission.k8s.io/v1` CREATE review of `pod`.
pub fn review_json(uid: &str, pod: &Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "name": pod["metadata"]["name"],
            "namespace": "default",
            "userInfo": {"username": "bench", "groups": ["system:authenticated"]},
            "object": pod,
            "dryRun": false,
        }
    })
}

/// The parsed review of [`review_json`].
pub fn review(uid: &str, pod: &Value) -> anyhow::Result<AdmissionReview> {
    let bytes = serde_json::to_vec(&review_json(uid, pod))?;
    AdmissionReview::parse(&bytes).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The registry client `imagegate serve` uses for anonymous registries. Engines built
/// over clones of one client share its connections and tokens.
pub fn client() -> anyhow::Result<RegistryClient> {
    RegistryClient::new(DockerConfig::anonymous(), ClientOptions::default())
        .map_err(|e| anyhow::anyhow!("registry client: {e}"))
}

/// An engine over `client` with `caches`, built as `imagegate serve` builds its own
/// (through [`Engine::builder`]).
pub fn engine(client: RegistryClient, caches: CacheOptions) -> Engine {
    Engine::builder(client).caches(caches).build()
}

/// Evaluates `pod` (mutate phase, as `/mutate` does) and checks it was admitted with
/// one pinning patch per image: a benchmark of a failing verification measures nothing.
pub async fn admit(
    engine: &Engine,
    policies: &PolicySet,
    pod: &Value,
    images: usize,
) -> anyhow::Result<EngineResponse> {
    let input = AdmissionInput::for_resource(pod.clone(), MatchContext::default());
    let response = engine.evaluate(policies, &input, Phase::Mutate).await;
    check_admitted(&response, images)?;
    Ok(response)
}

/// Whether `response` admits with a digest pin for each of `images` (plus the
/// `kyverno.io/verify-images` annotation patch).
pub fn check_admitted(response: &EngineResponse, images: usize) -> anyhow::Result<()> {
    if let Some(message) = response.denial_message() {
        anyhow::bail!("the bench pod was denied: {message}");
    }
    let pins = response
        .patches
        .iter()
        .filter(|p| p["path"].as_str().is_some_and(|p| p.ends_with("/image")))
        .count();
    ensure!(
        pins == images,
        "expected {images} digest pins, got the patch {}",
        serde_json::to_string(&response.patches).unwrap_or_default()
    );
    Ok(())
}

/// Pushes `count` distinct signed images cheaply: one shared config and layer, image
/// manifests that differ by an annotation (so each has its own digest), each signed
/// like cosign (payload blob, config blob, `.sig` manifest). `threads` push in
/// parallel; repositories `bench/many-{i % 100}`, tag `t{i}`. Returns the references.
pub fn push_many(fixture: &Fixture, count: usize, threads: usize) -> anyhow::Result<Vec<String>> {
    push_many_in(fixture, "bench/many", count, threads)
}

/// [`push_many`] into repositories `{prefix}-{i % 100}` (images told apart from other
/// scenarios' in the registry's log by their repository).
pub fn push_many_in(
    fixture: &Fixture,
    prefix: &str,
    count: usize,
    threads: usize,
) -> anyhow::Result<Vec<String>> {
    let pusher = fixture.registry.pusher();
    let repos = 100.min(count.max(1));
    let layer = b"imagegate bench layer\n".repeat(64);
    let layer_digest = oci::sha256_digest(&layer);
    let config = oci::to_go_json(&json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "config": {},
    }));
    for r in 0..repos {
        let repo = format!("{prefix}-{r}");
        pusher.push_blob(&repo, &layer);
        pusher.push_blob(&repo, &config);
    }
    let host = fixture.host();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    let pusher = fixture.registry.pusher();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= count {
                            return Ok(());
                        }
                        ensure!(
                            std::time::Instant::now() < deadline,
                            "pushing {count} images took over 10 minutes"
                        );
                        let repo = format!("{prefix}-{}", i % repos);
                        let manifest = oci::to_go_json(&ImageManifest {
                            schema_version: 2,
                            media_type: Some(oci::OCI_MANIFEST.to_owned()),
                            config: Descriptor::of(oci::OCI_CONFIG, &config),
                            layers: vec![Descriptor::of(oci::OCI_LAYER_TAR, &layer)],
                            annotations: Some(BTreeMap::from([(
                                "dev.imagegate.bench/index".to_owned(),
                                i.to_string(),
                            )])),
                            subject: None,
                        });
                        let digest = pusher.push_manifest(
                            &repo,
                            &format!("t{i}"),
                            oci::OCI_MANIFEST,
                            &manifest,
                        );
                        pusher.sign(
                            &repo,
                            &format!("{host}/{repo}"),
                            &digest,
                            &fixture.key,
                            &BTreeMap::new(),
                        );
                    }
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a push thread panicked"))?
                .context("pushing images")?;
        }
        Ok(())
    })?;
    Ok((0..count)
        .map(|i| format!("{host}/{prefix}-{}:t{i}", i % repos))
        .collect())
}

/// A TCP proxy on `127.0.0.1:<port>` to `target` that holds every chunk `one_way`
/// before passing it on: the loopback registry as if it were `2 × one_way` away.
/// It lives until the runtime stops.
pub async fn delay_proxy(target: &str, one_way: Duration) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    async fn pump(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        delay: Duration,
    ) {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0 {
                break;
            }
            tokio::time::sleep(delay).await;
            if to.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let target = target.to_owned();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                tokio::join!(
                    pump(in_read, out_write, one_way),
                    pump(out_read, in_write, one_way)
                );
            });
        }
    });
    Ok(addr.to_string())
}
