//! Pushing content to a [`Registry`] with its credentials.
//!
//! A thin `reqwest` client speaking the distribution v2 API; for token registries it
//! follows the `401` `Bearer` challenge to the realm, asks for
//! `repository:<repo>:pull,push` with the registry's Basic credentials and caches the
//! token per repository for the pusher's lifetime.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Client, RequestBuilder, Response, StatusCode, Url};

use crate::block::block_on;
use crate::cosign::{self, CosignKey, IN_TOTO_PAYLOAD_TYPE};
use crate::oci::{self, Descriptor, ImageIndex, ImageManifest, Platform};
use crate::registry::{Auth, Registry};

/// Per-request timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Manifest media types asked for when reading.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
/// Platforms of the images in [`Pusher::push_index`], in order.
const PLATFORMS: &[(&str, Option<&str>)] = &[
    ("amd64", None),
    ("arm64", None),
    ("arm", Some("v7")),
    ("ppc64le", None),
    ("s390x", None),
    ("386", None),
    ("riscv64", None),
    ("arm", Some("v6")),
];

/// Pushes and reads content with the registry's credentials (Basic, or Bearer tokens
/// from its token issuer). Panics with the registry's answer on any unexpected status.
pub struct Pusher<'a> {
    registry: &'a Registry,
    /// Bearer tokens per repository (token registries only).
    tokens: Mutex<HashMap<String, String>>,
}

impl Registry {
    /// A pusher using this registry's credentials (here, not in `registry.rs`: pushing
    /// is built on the registry, not the other way round).
    pub fn pusher(&self) -> Pusher<'_> {
        Pusher {
            registry: self,
            tokens: Mutex::new(HashMap::new()),
        }
    }
}

impl<'a> Pusher<'a> {
    /// Uploads a blob (monolithic: `POST /blobs/uploads/` then `PUT ?digest=`), unless
    /// `HEAD` says it exists. Returns `sha256:<hex>`.
    pub fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        block_on(async {
            let client = client();
            self.push_blob_async(&client, repo, bytes).await
        })
    }

    /// `PUT /v2/<repo>/manifests/<reference>` with `Content-Type: media_type`. Returns the
    /// digest (sha256 of `bytes`), checked against the registry's `Docker-Content-Digest`.
    pub fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        block_on(async {
            let client = client();
            self.push_manifest_async(&client, repo, reference, media_type, bytes)
                .await
        })
    }

    /// `GET /v2/<repo>/manifests/<reference>` accepting OCI and Docker manifests and
    /// indexes: `Some((content type, bytes))`, or `None` on 404.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Option<(String, Vec<u8>)> {
        block_on(async {
            let client = client();
            let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
            let response = self
                .send(&client, repo, || {
                    client.get(url.clone()).header(ACCEPT, MANIFEST_ACCEPT)
                })
                .await;
            match response.status() {
                StatusCode::OK => {
                    let media_type = response
                        .headers()
                        .get(CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let bytes = response
                        .bytes()
                        .await
                        .expect("imagegate-testkit: reading a manifest body");
                    Some((media_type, bytes.to_vec()))
                }
                StatusCode::NOT_FOUND => None,
                _ => {
                    self.fail(&format!("GET manifest {repo}:{reference}"), response)
                        .await
                }
            }
        })
    }

    /// `DELETE /v2/<repo>/manifests/<digest>` (the test registry allows deletes): the
    /// manifest and every tag naming it go, as when a signature is removed (`cosign
    /// clean`, a retention policy) or revoked.
    pub fn delete_manifest(&self, repo: &str, digest: &str) {
        block_on(async {
            let client = client();
            let url = self.url(&format!("/v2/{repo}/manifests/{digest}"));
            let response = self
                .send(&client, repo, || client.delete(url.clone()))
                .await;
            if response.status() != StatusCode::ACCEPTED {
                self.fail(&format!("DELETE manifest {repo}@{digest}"), response)
                    .await
            }
        })
    }

    /// Pushes a small unique OCI image (config + one random uncompressed tar layer) tagged
    /// `tag`; returns the manifest digest.
    pub fn push_image(&self, repo: &str, tag: &str) -> String {
        block_on(async {
            let client = client();
            self.push_platform_image(&client, repo, tag, "amd64", None)
                .await
                .digest
        })
    }

    /// Pushes an OCI image index of `platforms` small unique images (linux/amd64,
    /// linux/arm64, linux/arm/v7, ...), tagged `tag`; returns the index digest.
    pub fn push_index(&self, repo: &str, tag: &str, platforms: usize) -> String {
        block_on(async {
            let client = client();
            let mut manifests = Vec::with_capacity(platforms);
            for i in 0..platforms {
                let (architecture, variant) = PLATFORMS[i % PLATFORMS.len()];
                let variant = if i < PLATFORMS.len() {
                    variant.map(str::to_owned)
                } else {
                    Some(format!("x{i}"))
                };
                let mut descriptor = self
                    .push_platform_image(&client, repo, "", architecture, variant.as_deref())
                    .await;
                descriptor.platform = Some(Platform {
                    architecture: architecture.to_owned(),
                    os: "linux".to_owned(),
                    os_version: None,
                    os_features: None,
                    variant,
                });
                manifests.push(descriptor);
            }
            let index = ImageIndex {
                schema_version: 2,
                media_type: Some(oci::OCI_INDEX.to_owned()),
                manifests,
                annotations: None,
            };
            let bytes = oci::to_go_json(&index);
            self.push_manifest_async(&client, repo, tag, oci::OCI_INDEX, &bytes)
                .await
        })
    }

    /// Signs like `cosign sign --key K --tlog-upload=false [-a k=v]...`: the simple-signing
    /// payload for `docker_reference`/`digest` becomes a layer (annotation
    /// `dev.cosignproject.cosign/signature` = base64 DER signature) appended to the
    /// manifest tagged `sha256-<hex>.sig` in `sig_repo`. Returns that manifest's digest.
    pub fn sign(
        &self,
        sig_repo: &str,
        docker_reference: &str,
        digest: &str,
        key: &CosignKey,
        annotations: &BTreeMap<String, String>,
    ) -> String {
        let payload = cosign::simple_signing_payload(docker_reference, digest, annotations);
        let signature = STANDARD.encode(key.sign(&payload));
        self.push_signature_layer(sig_repo, digest, &payload, &signature)
    }

    /// Appends a simple-signing layer with exactly these payload bytes and this
    /// `dev.cosignproject.cosign/signature` annotation to `sha256-<hex>.sig` in `sig_repo`
    /// (for tampered payloads, vectors and foreign signatures). Returns the manifest digest.
    pub fn push_signature_layer(
        &self,
        sig_repo: &str,
        digest: &str,
        payload: &[u8],
        signature_b64: &str,
    ) -> String {
        let mut layer = Descriptor::of(oci::SIMPLE_SIGNING, payload);
        layer.annotations = Some(BTreeMap::from([(
            oci::SIGNATURE_ANNOTATION.to_owned(),
            signature_b64.to_owned(),
        )]));
        self.append_layer(sig_repo, &oci::cosign_tag(digest, "sig"), payload, layer)
    }

    /// Attests like `cosign attest --key K --type T --tlog-upload=false`: an in-toto
    /// Statement v0.1 (`subject: [{name: subject_name, digest: {sha256}}]`) in a DSSE
    /// envelope signed over the PAE, appended as a layer to `sha256-<hex>.att` in
    /// `att_repo`. Returns that manifest's digest.
    pub fn attest(
        &self,
        att_repo: &str,
        subject_name: &str,
        digest: &str,
        key: &CosignKey,
        predicate_type: &str,
        predicate: &serde_json::Value,
    ) -> String {
        let statement = cosign::in_toto_statement(subject_name, digest, predicate_type, predicate);
        let signature = key.sign(&cosign::dsse_pae(IN_TOTO_PAYLOAD_TYPE, &statement));
        let envelope = cosign::dsse_envelope(IN_TOTO_PAYLOAD_TYPE, &statement, &signature);
        self.push_attestation_layer(att_repo, digest, &envelope, predicate_type)
    }

    /// Appends a DSSE envelope layer with exactly these bytes (annotations
    /// `dev.cosignproject.cosign/signature: ""` and `predicateType`) to
    /// `sha256-<hex>.att` in `att_repo`. Returns the manifest digest.
    pub fn push_attestation_layer(
        &self,
        att_repo: &str,
        digest: &str,
        envelope: &[u8],
        predicate_type: &str,
    ) -> String {
        let mut layer = Descriptor::of(oci::DSSE_ENVELOPE, envelope);
        layer.annotations = Some(BTreeMap::from([
            (oci::SIGNATURE_ANNOTATION.to_owned(), String::new()),
            (
                oci::PREDICATE_TYPE_ANNOTATION.to_owned(),
                predicate_type.to_owned(),
            ),
        ]));
        self.append_layer(att_repo, &oci::cosign_tag(digest, "att"), envelope, layer)
    }

    /// Adds `layer` (content `blob`) to the manifest at `repo:tag`, as cosign appends
    /// (an identical layer is not added twice), with cosign's config blob.
    fn append_layer(&self, repo: &str, tag: &str, blob: &[u8], layer: Descriptor) -> String {
        let mut layers =
            match self.get_manifest(repo, tag) {
                Some((_, bytes)) => serde_json::from_slice::<ImageManifest>(&bytes)
                    .unwrap_or_else(|e| {
                        panic!(
                            "imagegate-testkit: {repo}:{tag} is not an image manifest ({e}): {}",
                            String::from_utf8_lossy(&bytes)
                        )
                    })
                    .layers,
                None => Vec::new(),
            };
        if !layers.contains(&layer) {
            layers.push(layer);
        }
        let config = oci::cosign_config(&layers);
        let manifest = oci::cosign_manifest(&config, &layers);
        block_on(async {
            let client = client();
            self.push_blob_async(&client, repo, blob).await;
            self.push_blob_async(&client, repo, &config).await;
            self.push_manifest_async(&client, repo, tag, oci::OCI_MANIFEST, &manifest)
                .await
        })
    }

    async fn push_platform_image(
        &self,
        client: &Client,
        repo: &str,
        tag: &str,
        architecture: &str,
        variant: Option<&str>,
    ) -> Descriptor {
        let layer = random_tar_layer();
        let layer_digest = self.push_blob_async(client, repo, &layer).await;
        let mut config = serde_json::json!({
            "architecture": architecture,
            "os": "linux",
            "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
            "config": {},
        });
        if let Some(variant) = variant {
            config["variant"] = variant.into();
        }
        let config = oci::to_go_json(&config);
        self.push_blob_async(client, repo, &config).await;
        let manifest = oci::to_go_json(&ImageManifest {
            schema_version: 2,
            media_type: Some(oci::OCI_MANIFEST.to_owned()),
            config: Descriptor::of(oci::OCI_CONFIG, &config),
            layers: vec![Descriptor::of(oci::OCI_LAYER_TAR, &layer)],
            annotations: None,
            subject: None,
        });
        let descriptor = Descriptor::of(oci::OCI_MANIFEST, &manifest);
        let reference = if tag.is_empty() {
            descriptor.digest.as_str()
        } else {
            tag
        };
        self.push_manifest_async(client, repo, reference, oci::OCI_MANIFEST, &manifest)
            .await;
        descriptor
    }

    async fn push_blob_async(&self, client: &Client, repo: &str, bytes: &[u8]) -> String {
        let digest = oci::sha256_digest(bytes);
        let blob_url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let head = self
            .send(client, repo, || client.head(blob_url.clone()))
            .await;
        if head.status() == StatusCode::OK {
            return digest;
        }
        if head.status() != StatusCode::NOT_FOUND {
            self.fail(&format!("HEAD blob {repo}@{digest}"), head).await;
        }

        let uploads = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        let started = self
            .send(client, repo, || client.post(uploads.clone()))
            .await;
        if started.status() != StatusCode::ACCEPTED {
            self.fail(&format!("POST blob upload to {repo}"), started)
                .await;
        }
        let location = started
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .expect("imagegate-testkit: blob upload answer without Location")
            .to_owned();
        let mut put_url = self
            .url("/")
            .join(&location)
            .unwrap_or_else(|e| panic!("imagegate-testkit: bad upload Location {location:?}: {e}"));
        put_url.query_pairs_mut().append_pair("digest", &digest);
        let put = self
            .send(client, repo, || {
                client
                    .put(put_url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(bytes.to_vec())
            })
            .await;
        if put.status() != StatusCode::CREATED {
            self.fail(&format!("PUT blob {repo}@{digest}"), put).await;
        }
        digest
    }

    async fn push_manifest_async(
        &self,
        client: &Client,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let digest = oci::sha256_digest(bytes);
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let response = self
            .send(client, repo, || {
                client
                    .put(url.clone())
                    .header(CONTENT_TYPE, media_type)
                    .body(bytes.to_vec())
            })
            .await;
        if response.status() != StatusCode::CREATED {
            self.fail(&format!("PUT manifest {repo}:{reference}"), response)
                .await;
        }
        if let Some(returned) = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            assert_eq!(
                returned, digest,
                "imagegate-testkit: registry computed another digest for manifest {repo}:{reference}"
            );
        }
        digest
    }

    /// Sends a request with the registry's credentials; on a `401` from a token registry,
    /// fetches a token from the challenge's realm and retries once.
    async fn send(
        &self,
        client: &Client,
        repo: &str,
        request: impl Fn() -> RequestBuilder,
    ) -> Response {
        let response = self
            .authorized(request(), repo)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "imagegate-testkit: request to registry {} failed: {e}",
                    self.registry.host()
                )
            });
        if response.status() != StatusCode::UNAUTHORIZED
            || !matches!(self.registry.auth(), Auth::Token { .. })
        {
            return response;
        }
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let token = self.fetch_token(client, &challenge, repo).await;
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(repo.to_owned(), token);
        self.authorized(request(), repo)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "imagegate-testkit: request to registry {} failed: {e}",
                    self.registry.host()
                )
            })
    }

    fn authorized(&self, request: RequestBuilder, repo: &str) -> RequestBuilder {
        match self.registry.auth() {
            Auth::None => request,
            Auth::Basic { user, password } => request.basic_auth(user, Some(password)),
            Auth::Token { .. } => {
                let tokens = self
                    .tokens
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match tokens.get(repo) {
                    Some(token) => request.bearer_auth(token),
                    None => request,
                }
            }
        }
    }

    async fn fetch_token(&self, client: &Client, challenge: &str, repo: &str) -> String {
        let params = parse_bearer_challenge(challenge)
            .unwrap_or_else(|| panic!("imagegate-testkit: not a Bearer challenge: {challenge:?}"));
        let realm = params
            .get("realm")
            .expect("imagegate-testkit: Bearer challenge without realm");
        let mut url = Url::parse(realm)
            .unwrap_or_else(|e| panic!("imagegate-testkit: bad realm {realm:?}: {e}"));
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = params.get("service") {
                query.append_pair("service", service);
            }
            query.append_pair("scope", &format!("repository:{repo}:pull,push"));
        }
        let (user, password) = self
            .registry
            .credentials()
            .expect("token registry has credentials");
        let response = client
            .get(url)
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap_or_else(|e| panic!("imagegate-testkit: token request to {realm} failed: {e}"));
        if response.status() != StatusCode::OK {
            self.fail(&format!("GET token from {realm}"), response)
                .await;
        }
        let body = response
            .bytes()
            .await
            .expect("imagegate-testkit: reading the token answer");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "imagegate-testkit: token answer is not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        });
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .unwrap_or_else(|| panic!("imagegate-testkit: token answer without token: {body}"))
            .to_owned()
    }

    fn url(&self, path: &str) -> Url {
        let url = format!("http://{}{path}", self.registry.host());
        Url::parse(&url).unwrap_or_else(|e| panic!("imagegate-testkit: bad URL {url}: {e}"))
    }

    async fn fail(&self, what: &str, response: Response) -> ! {
        let status = response.status();
        let headers = format!("{:?}", response.headers());
        let body = response.text().await.unwrap_or_default();
        let log = self.registry.log();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "imagegate-testkit: {what} on {} answered {status}: {body}\nheaders: {headers}\nregistry log (tail):\n{}",
            self.registry.host(),
            tail.join("\n")
        );
    }
}

/// A client for plain HTTP on loopback: no proxy (a proxy from the environment must not
/// see test traffic), bounded timeouts.
fn client() -> Client {
    Client::builder()
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("imagegate-testkit: building the HTTP client")
}

/// Parses `Bearer k="v",k2="v2"` into its parameters.
fn parse_bearer_challenge(header: &str) -> Option<HashMap<String, String>> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.insert(key, value.to_owned());
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    Some(params)
}

/// An uncompressed tar with one file of random content (so every image is unique).
fn random_tar_layer() -> Vec<u8> {
    let mut random = [0u8; 32];
    aws_lc_rs::rand::fill(&mut random).expect("imagegate-testkit: random bytes");
    let content = format!("{}\n", hex::encode(random));
    let mut header = [0u8; 512];
    let name = b"imagegate-testkit.txt";
    header[..name.len()].copy_from_slice(name);
    header[100..108].copy_from_slice(b"0000644\0");
    header[108..116].copy_from_slice(b"0000000\0");
    header[116..124].copy_from_slice(b"0000000\0");
    header[124..136].copy_from_slice(format!("{:011o}\0", content.len()).as_bytes());
    header[136..148].copy_from_slice(b"00000000000\0");
    header[148..156].copy_from_slice(b"        ");
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    let checksum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{checksum:06o}\0 ").as_bytes());
    let mut tar = header.to_vec();
    tar.extend_from_slice(content.as_bytes());
    tar.resize(tar.len().div_ceil(512) * 512, 0);
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

#[cfg(test)]
mod tests {
    use super::parse_bearer_challenge;

    #[test]
    fn bearer_challenge() {
        let p = parse_bearer_challenge(
            r#"Bearer realm="http://127.0.0.1:1/token",service="svc",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(p["realm"], "http://127.0.0.1:1/token");
        assert_eq!(p["service"], "svc");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        assert!(parse_bearer_challenge(r#"Basic realm="x""#).is_none());
    }
}
