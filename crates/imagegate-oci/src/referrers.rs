//! OCI 1.1 referrers: the manifests that name an image as their `subject` (cosign v3
//! stores Sigstore bundles this way).
//!
//! Two sources, as in the distribution spec: the referrers API
//! (`GET /v2/<repo>/referrers/<digest>`, an image index) and, for registries without it
//! (they answer `404`; docker-registry 2.8 is one), the referrers tag schema: an image
//! index tagged `sha256-<hex>` that clients maintain.

use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};

use crate::client::{Call, CallOptions, RegistryClient};
use crate::error::{RegistryError, Result};
use crate::manifest::{ImageIndex, OCI_INDEX};
use crate::reference::Reference;

/// Where a list of referrers came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferrersSource {
    /// The OCI 1.1 referrers API.
    Api {
        /// Whether the registry applied the `artifactType` filter asked for
        /// (`OCI-Filters-Applied: artifactType`).
        filtered: bool,
    },
    /// The `sha256-<hex>` referrers tag (fallback).
    FallbackTag,
}

/// The referrers of one manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrers {
    /// The index listing them (empty when there are none).
    pub index: ImageIndex,
    /// Where it came from.
    pub source: ReferrersSource,
}

/// Largest error body read from a referrers `404` (distribution error documents are
/// a few hundred bytes).
const MAX_ERROR_BODY: u64 = 16 * 1024;

/// Whether a `404` body is a distribution error saying the repository is unknown
/// (`NAME_UNKNOWN`). The spec lets a registry with the referrers API answer `404` only
/// for a repository it does not know (a signature repository not created yet): that
/// says nothing about the API, and remembering it as missing would send every later
/// lookup on that registry to fallback tags that registries with the API never write.
fn names_unknown_repository(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<Code>,
    }
    #[derive(serde::Deserialize)]
    struct Code {
        #[serde(default)]
        code: String,
    }
    serde_json::from_slice::<Errors>(body)
        .is_ok_and(|e| e.errors.iter().any(|e| e.code == "NAME_UNKNOWN"))
}

/// The referrers tag of `digest`: `sha256:<hex>` → `sha256-<hex>`; `None` for a digest
/// that is not `algorithm:hex`.
pub fn referrers_tag(digest: &str) -> Option<String> {
    let (algorithm, hex) = digest.split_once(':')?;
    let valid = !algorithm.is_empty()
        && !hex.is_empty()
        && algorithm.bytes().all(|b| b.is_ascii_alphanumeric())
        && hex.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then(|| format!("{algorithm}-{hex}"))
}

impl RegistryClient {
    /// The referrers of `digest`; see [`Call::get_referrers`].
    pub async fn get_referrers(
        &self,
        repository: &Reference,
        digest: &str,
        artifact_type: Option<&str>,
    ) -> Result<Referrers> {
        self.call(CallOptions::default())
            .get_referrers(repository, digest, artifact_type)
            .await
    }
}

impl Call<'_> {
    /// The referrers of `digest` in the repository of `repository`: from the referrers
    /// API, or, when the registry answers `404` there, from the `sha256-<hex>` fallback
    /// tag (at once for a registry that answered `404` before). `artifact_type` is
    /// passed to the API as a filter (registries may ignore it; see
    /// [`ReferrersSource::Api::filtered`]); the fallback index is returned unfiltered.
    /// No referrers at all is an empty index.
    pub async fn get_referrers(
        &self,
        repository: &Reference,
        digest: &str,
        artifact_type: Option<&str>,
    ) -> Result<Referrers> {
        let registry = repository.registry().to_owned();
        let malformed = |reason: String| RegistryError::Malformed {
            registry: registry.clone(),
            reason,
        };
        if !crate::client::is_valid_digest(digest) {
            return Err(malformed(format!("{digest:?} is not a digest")));
        }
        if self.client().lacks_referrers_api(repository.api_host()) {
            return self.fallback_referrers(repository, digest).await;
        }
        let mut path = format!("referrers/{digest}");
        if let Some(artifact_type) = artifact_type {
            let encoded: String =
                url::form_urlencoded::byte_serialize(artifact_type.as_bytes()).collect();
            path.push_str("?artifactType=");
            path.push_str(&encoded);
        }
        let limit = self.max_manifest_bytes();
        let response = self
            .send(repository, Method::GET, &path, &[OCI_INDEX], limit)
            .await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            // Read (bounded) rather than dropped: the connection stays reusable, and
            // the body tells a missing repository from a missing API.
            let body = self
                .read_limited(&registry, response, MAX_ERROR_BODY, "referrers 404 answer")
                .await
                .unwrap_or_default();
            if !names_unknown_repository(&body) {
                self.client().note_no_referrers_api(repository.api_host());
            }
            return self.fallback_referrers(repository, digest).await;
        }
        if !status.is_success() {
            return Err(self.client().unexpected(repository, status, "GET", &path));
        }
        let filtered = response
            .headers()
            .get("oci-filters-applied")
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|f| f.trim() == "artifactType"));
        let bytes = self
            .read_limited(&registry, response, limit, "referrers index")
            .await?;
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| malformed(format!("referrers answer is not an image index: {e}")))?;
        Ok(Referrers {
            index,
            source: ReferrersSource::Api { filtered },
        })
    }

    async fn fallback_referrers(&self, repository: &Reference, digest: &str) -> Result<Referrers> {
        let registry = repository.registry().to_owned();
        let malformed = |reason: String| RegistryError::Malformed {
            registry: registry.clone(),
            reason,
        };
        let tag = referrers_tag(digest).ok_or_else(|| malformed(format!("digest {digest:?}")))?;
        let tagged = repository
            .with_tag(&tag)
            .map_err(|e| malformed(format!("referrers tag {tag}: {e}")))?;
        let index = match self.get_manifest(&tagged).await? {
            None => ImageIndex {
                schema_version: 2,
                media_type: Some(OCI_INDEX.to_owned()),
                manifests: Vec::new(),
            },
            Some(fetched) => fetched.image_index().map_err(|e| {
                malformed(format!("referrers tag {tagged} is not an image index: {e}"))
            })?,
        };
        Ok(Referrers {
            index,
            source: ReferrersSource::FallbackTag,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unknown_repository_404_keeps_the_referrers_api_possible() {
        assert!(names_unknown_repository(
            br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#
        ));
        // docker-registry 2.8 has no route: a plain-text 404.
        assert!(!names_unknown_repository(b"404 page not found\n"));
        assert!(!names_unknown_repository(b""));
        assert!(!names_unknown_repository(
            br#"{"errors":[{"code":"NOT_FOUND"}]}"#
        ));
    }

    #[test]
    fn referrers_tags() {
        let hex = "d7d5640c741c60b47fa4b5530daa20a6469b55754a89dd42adbadadb59f9093c";
        assert_eq!(
            referrers_tag(&format!("sha256:{hex}")),
            Some(format!("sha256-{hex}"))
        );
        assert_eq!(referrers_tag("sha256:../x"), None);
        assert_eq!(referrers_tag("nodigest"), None);
        assert_eq!(referrers_tag(":ab"), None);
    }
}
