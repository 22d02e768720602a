//! The images of a resource, each with its exact JSON pointer, and Kyverno's
//! `ImageInfo` view of an image (the `image` / `images` variables).
//!
//! Standard kinds (Kyverno's registered extractors): `Pod` at `/spec`; `DaemonSet`,
//! `Deployment`, `Job`, `ReplicaSet`, `ReplicationController`, `StatefulSet` at
//! `/spec/template/spec`; `CronJob` at `/spec/jobTemplate/spec/template/spec`; each
//! with `containers`, `initContainers` and `ephemeralContainers`. A rule's
//! `imageExtractors` entry for the resource's kind replaces the standard extractors
//! for that kind (Kyverno's `lookupImageExtractor`). Other kinds have no images.
//!
//! As in Kyverno: a missing, non-string or blank image field is skipped; a container
//! without a string `name` (or a custom extractor whose `key` field is missing) is an
//! error; an image that does not parse is an error naming the pointer and the text.

use std::collections::BTreeMap;
use std::fmt;

use imagegate_oci::{Reference, ReferenceError};
use serde_json::{Map, Value};

use crate::kinds::pod_template_path;
use crate::model::ImageExtractorConfig;
use crate::pattern::{ImageMatchTarget, is_docker_hub};

/// The registry Kyverno prepends to names without one (its `defaultRegistry`).
pub const KYVERNO_DEFAULT_REGISTRY: &str = "docker.io";

/// Where an image was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContainerKind {
    /// `containers[*].image`.
    Container,
    /// `initContainers[*].image`.
    InitContainer,
    /// `ephemeralContainers[*].image`.
    EphemeralContainer,
    /// Found by a rule's `imageExtractors` entry ([`ImageRef::extractor`] names it).
    Custom,
}

impl ContainerKind {
    /// The Pod spec field (and the key of Kyverno's `images` variable):
    /// `containers`, `initContainers`, `ephemeralContainers`; `custom` for
    /// [`ContainerKind::Custom`] (the extractor's own name is in [`ImageRef::extractor`]).
    pub fn field(self) -> &'static str {
        match self {
            Self::Container => "containers",
            Self::InitContainer => "initContainers",
            Self::EphemeralContainer => "ephemeralContainers",
            Self::Custom => "custom",
        }
    }

    /// The key of Kyverno's `images` variable for the standard lists (same as
    /// [`ContainerKind::field`]). For [`ContainerKind::Custom`] use
    /// [`ImageRef::extractor`], which holds the extractor's own name.
    pub fn variable_group(self) -> &'static str {
        self.field()
    }
}

impl fmt::Display for ContainerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.field())
    }
}

/// Kyverno's view of an image reference (`pkg/utils/image` `ImageInfo`), as
/// exposed to policies in the `image` and `images` variables.
///
/// Built the way Kyverno builds it with its defaults (default registry `docker.io`,
/// registry mutation enabled):
/// - `registry` is the first component when it looks like a host (contains `.` or
///   `:`, is `localhost`, or has an uppercase letter), else `docker.io`; it is kept
///   as written (`index.docker.io` stays `index.docker.io`);
/// - `path` is the repository path, with `library/` prepended when it is a single
///   component on Docker Hub (`nginx` → `library/nginx`; `localhost:5000/x` stays
///   `x`); `name` is its last component;
/// - `tag` is the tag, `latest` when neither tag nor digest is given, `None` for a
///   digest-only reference; `digest` is the digest if any;
/// - `reference` is `registry/path@digest` when there is a digest, else
///   `registry/path:tag`: the text image patterns are matched against;
/// - `reference_with_tag` is `registry/<path as written>:tag`, computed *before*
///   `library/` is prepended (`nginx` → `docker.io/nginx:latest`), and with an empty
///   tag for a digest-only reference (`ghcr.io/a/b:`), exactly as Kyverno does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageInfo {
    /// Registry host (and port), e.g. `docker.io`, `ghcr.io`, `localhost:5000`.
    pub registry: String,
    /// Repository path, e.g. `library/nginx`, `kyverno/test-verify-image`.
    pub path: String,
    /// Last component of the path, e.g. `nginx`.
    pub name: String,
    /// The tag (`latest` when neither tag nor digest is written).
    pub tag: Option<String>,
    /// The digest, e.g. `sha256:…`, when written.
    pub digest: Option<String>,
    /// Kyverno's `reference`: `registry/path@digest` or `registry/path:tag`.
    pub reference: String,
    /// Kyverno's `referenceWithTag`: `registry/<written path>:tag`.
    pub reference_with_tag: String,
}

impl ImageInfo {
    /// Parses an image string as written in a resource.
    ///
    /// The grammar is checked by [`imagegate_oci::Reference::parse`]; the fields
    /// follow Kyverno (see the type's documentation).
    pub fn parse(image: &str) -> Result<Self, ReferenceError> {
        Self::parse_with_reference(image).map(|(info, _)| info)
    }

    /// Like [`ImageInfo::parse`], also returning the normalised
    /// [`imagegate_oci::Reference`] (what the registry client fetches).
    pub fn parse_with_reference(image: &str) -> Result<(Self, Reference), ReferenceError> {
        let oci = Reference::parse(image)?;
        // Kyverno's addDefaultRegistry: the first component is a registry when it
        // contains '.' or ':', is "localhost", or is not all lowercase.
        let (registry, remainder) = match image.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.to_lowercase() != first =>
            {
                (first.to_owned(), rest)
            }
            _ => (KYVERNO_DEFAULT_REGISTRY.to_owned(), image),
        };
        let name_end = remainder.find([':', '@']).unwrap_or(remainder.len());
        let (written_path, rest) = remainder.split_at(name_end);
        let (tag, digest) = match (rest.strip_prefix(':'), rest.strip_prefix('@')) {
            (Some(after), _) => match after.split_once('@') {
                Some((tag, digest)) => (Some(tag.to_owned()), Some(digest.to_owned())),
                None => (Some(after.to_owned()), None),
            },
            (None, Some(digest)) => (None, Some(digest.to_owned())),
            (None, None) => (None, None),
        };
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag),
            (None, None) => Some("latest".to_owned()),
            (None, Some(_)) => None,
        };
        let tag_text = tag.as_deref().unwrap_or("");
        let reference_with_tag = format!("{registry}/{written_path}:{tag_text}");
        // Docker Hub's official images live under `library/`; other registries have
        // no such namespace (`registry.example.com/app` is the repository `app`).
        let path = if written_path.contains('/') || !is_docker_hub(&registry) {
            written_path.to_owned()
        } else {
            format!("library/{written_path}")
        };
        let name = path.rsplit('/').next().unwrap_or(&path).to_owned();
        let reference = match &digest {
            Some(digest) => format!("{registry}/{path}@{digest}"),
            None => format!("{registry}/{path}:{tag_text}"),
        };
        Ok((
            Self {
                registry,
                path,
                name,
                tag,
                digest,
                reference,
                reference_with_tag,
            },
            oci,
        ))
    }

    /// The JSON object Kyverno exposes for this image (empty `registry`, `tag` and
    /// `digest` are omitted, as Kyverno's `omitempty` does): keys `registry`, `name`,
    /// `path`, `tag`, `digest`, `reference`, `referenceWithTag`.
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        if !self.registry.is_empty() {
            map.insert("registry".into(), Value::String(self.registry.clone()));
        }
        map.insert("name".into(), Value::String(self.name.clone()));
        map.insert("path".into(), Value::String(self.path.clone()));
        if let Some(tag) = self.tag.as_deref().filter(|t| !t.is_empty()) {
            map.insert("tag".into(), Value::String(tag.to_owned()));
        }
        if let Some(digest) = self.digest.as_deref().filter(|d| !d.is_empty()) {
            map.insert("digest".into(), Value::String(digest.to_owned()));
        }
        map.insert("reference".into(), Value::String(self.reference.clone()));
        map.insert(
            "referenceWithTag".into(),
            Value::String(self.reference_with_tag.clone()),
        );
        Value::Object(map)
    }
}

impl fmt::Display for ImageInfo {
    /// Kyverno's `ImageInfo.String()`: the [`ImageInfo::reference`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reference)
    }
}

/// One image found in a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// RFC 6901 JSON pointer to the image string, e.g. `/spec/containers/0/image`.
    pub pointer: String,
    /// The container name (standard extractors), or the value of the extractor's
    /// `key` field, or the pointer when the extractor has no `key` (Kyverno's key).
    pub container: String,
    /// Which list the image came from.
    pub kind: ContainerKind,
    /// Kyverno's extractor name, the first key of the `images` variable:
    /// `containers`, `initContainers`, `ephemeralContainers`, or the custom
    /// extractor's `name` (default `custom`).
    pub extractor: String,
    /// The image string as written in the resource (after `jmesPath`, if any).
    pub text: String,
    /// Kyverno's view of the image.
    pub info: ImageInfo,
    /// The normalised reference to fetch and verify.
    pub oci: Reference,
    /// `imagePullSecrets` names met on the way to the image (e.g. the Pod spec's).
    pub pull_secrets: Vec<String>,
}

impl ImageRef {
    /// The JSON object Kyverno puts in its `images` variable for this image:
    /// [`ImageInfo::to_value`] plus `jsonPointer`.
    pub fn to_value(&self) -> Value {
        let mut value = self.info.to_value();
        if let Value::Object(map) = &mut value {
            map.insert("jsonPointer".into(), Value::String(self.pointer.clone()));
        }
        value
    }
}

impl ImageMatchTarget for ImageInfo {
    /// [`ImageInfo::reference`] (`registry/path@digest` or `registry/path:tag`).
    fn match_text(&self) -> &str {
        &self.reference
    }
}

impl ImageMatchTarget for ImageRef {
    fn match_text(&self) -> &str {
        &self.info.reference
    }
}

/// Why the images of a resource could not be extracted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImageError {
    /// An image string does not parse as an image reference.
    #[error("invalid image '{image}' at {pointer}: {source}")]
    InvalidImage {
        /// JSON pointer of the image string.
        pointer: String,
        /// The image as written.
        image: String,
        /// Why it does not parse.
        source: ReferenceError,
    },
    /// A `*` path segment met something that is neither a list nor an object.
    #[error("invalid type at {pointer}: expected a list or an object to iterate")]
    InvalidType {
        /// JSON pointer of the offending value.
        pointer: String,
    },
    /// The path led to something that is not an object.
    #[error("invalid image config at {pointer}: expected an object")]
    InvalidConfig {
        /// JSON pointer of the offending value.
        pointer: String,
    },
    /// The key field (`name` for containers) is missing or not a string.
    #[error("invalid key at {pointer}: field '{key}' is missing or not a string")]
    InvalidKey {
        /// JSON pointer of the object that lacks the key.
        pointer: String,
        /// The key field.
        key: String,
    },
    /// The rule's `imageExtractors` has an empty list for the resource's kind.
    #[error("no extractors found for {kind}")]
    NoExtractors {
        /// The resource kind.
        kind: String,
    },
    /// An `imageExtractors` entry cannot be used (e.g. an empty `path`).
    #[error("invalid imageExtractors entry for {kind}: {reason}")]
    InvalidExtractor {
        /// The resource kind.
        kind: String,
        /// What is wrong.
        reason: String,
    },
    /// An extractor's `jmesPath` failed or did not produce a string.
    #[error("jmesPath '{expression}' at {pointer}: {reason}")]
    JmesPath {
        /// JSON pointer of the value it was applied to.
        pointer: String,
        /// The expression.
        expression: String,
        /// What went wrong.
        reason: String,
    },
}

/// Escapes one JSON-pointer reference token (RFC 6901: `~` → `~0`, `/` → `~1`).
pub fn escape_pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Builds a JSON pointer from unescaped tokens.
pub fn json_pointer<S: AsRef<str>>(tokens: &[S]) -> String {
    tokens
        .iter()
        .map(|t| format!("/{}", escape_pointer_token(t.as_ref())))
        .collect()
}

/// One extractor: a path of fields (with `*` iterating lists and objects), the
/// object field holding the image, and the key field naming it.
struct Extractor {
    fields: Vec<String>,
    value: String,
    key: Option<String>,
    name: String,
    kind: ContainerKind,
    jmes_path: Option<String>,
}

fn standard_extractors(template: &str) -> Vec<Extractor> {
    let base: Vec<String> = template
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    [
        ContainerKind::Container,
        ContainerKind::InitContainer,
        ContainerKind::EphemeralContainer,
    ]
    .into_iter()
    .map(|kind| {
        let mut fields = base.clone();
        fields.push(kind.field().to_owned());
        fields.push("*".to_owned());
        Extractor {
            fields,
            value: "image".to_owned(),
            key: Some("name".to_owned()),
            name: kind.field().to_owned(),
            kind,
            jmes_path: None,
        }
    })
    .collect()
}

fn custom_extractor(kind: &str, config: &ImageExtractorConfig) -> Result<Extractor, ImageError> {
    let mut fields: Vec<String> = config
        .path
        .split('/')
        .map(|s| s.trim_matches(' '))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let value = match config.value.as_deref().filter(|v| !v.is_empty()) {
        Some(value) => value.to_owned(),
        // Kyverno: without `value`, the last path segment is the image field.
        None => fields.pop().ok_or_else(|| ImageError::InvalidExtractor {
            kind: kind.to_owned(),
            reason: format!(
                "path '{}' names no field and no 'value' is given",
                config.path
            ),
        })?,
    };
    Ok(Extractor {
        fields,
        value,
        key: config.key.clone().filter(|k| !k.is_empty()),
        name: config
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "custom".to_owned()),
        kind: ContainerKind::Custom,
        jmes_path: config.jmes_path.clone().filter(|j| !j.is_empty()),
    })
}

/// The images of `resource`, in extractor order (containers, initContainers,
/// ephemeralContainers for the standard kinds; the configured order for
/// `imageExtractors`), each list in document order.
///
/// `extractors` is the rule's `imageExtractors` (kind → configs); an entry for the
/// resource's kind replaces the standard extractors for that kind.
pub fn extract_images(
    resource: &Value,
    extractors: Option<&BTreeMap<String, Vec<ImageExtractorConfig>>>,
) -> Result<Vec<ImageRef>, ImageError> {
    let kind = resource.get("kind").and_then(Value::as_str).unwrap_or("");
    let list: Vec<Extractor> = match extractors.and_then(|m| m.get(kind)) {
        Some(configs) if configs.is_empty() => {
            return Err(ImageError::NoExtractors {
                kind: kind.to_owned(),
            });
        }
        Some(configs) => configs
            .iter()
            .map(|c| custom_extractor(kind, c))
            .collect::<Result<_, _>>()?,
        None => match pod_template_path(kind) {
            Some(template) => standard_extractors(template),
            None => Vec::new(),
        },
    };
    let mut out = Vec::new();
    for extractor in &list {
        let mut path = Vec::new();
        walk(
            resource,
            &mut path,
            &extractor.fields,
            extractor,
            &[],
            &mut out,
        )?;
    }
    Ok(out)
}

fn walk(
    obj: &Value,
    path: &mut Vec<String>,
    fields: &[String],
    ex: &Extractor,
    inherited_secrets: &[String],
    out: &mut Vec<ImageRef>,
) -> Result<(), ImageError> {
    if obj.is_null() {
        return Ok(());
    }
    if fields.first().is_some_and(|f| f == "*") {
        match obj {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(i.to_string());
                    walk(item, path, &fields[1..], ex, inherited_secrets, out)?;
                    path.pop();
                }
            }
            Value::Object(map) => {
                for (k, item) in map {
                    path.push(k.clone());
                    walk(item, path, &fields[1..], ex, inherited_secrets, out)?;
                    path.pop();
                }
            }
            _ => {
                return Err(ImageError::InvalidType {
                    pointer: json_pointer(path),
                });
            }
        }
        return Ok(());
    }
    let Value::Object(map) = obj else {
        return Err(ImageError::InvalidConfig {
            pointer: json_pointer(path),
        });
    };
    let mut secrets = inherited_secrets.to_vec();
    if let Some(Value::Array(list)) = map.get("imagePullSecrets") {
        secrets.extend(
            list.iter()
                .filter_map(|s| s.get("name").and_then(Value::as_str))
                .map(str::to_owned),
        );
    }
    let Some((field, rest)) = fields.split_first() else {
        return leaf(map, path, ex, secrets, out);
    };
    path.push(field.clone());
    let result = match map.get(field) {
        Some(next) => walk(next, path, rest, ex, &secrets, out),
        None => Ok(()),
    };
    path.pop();
    result
}

fn leaf(
    map: &Map<String, Value>,
    path: &[String],
    ex: &Extractor,
    pull_secrets: Vec<String>,
    out: &mut Vec<ImageRef>,
) -> Result<(), ImageError> {
    let mut tokens = path.to_vec();
    tokens.push(ex.value.clone());
    let pointer = json_pointer(&tokens);
    let container = match &ex.key {
        Some(key) => match map.get(key).and_then(Value::as_str) {
            Some(name) => name.to_owned(),
            None => {
                return Err(ImageError::InvalidKey {
                    pointer: json_pointer(path),
                    key: key.clone(),
                });
            }
        },
        None => pointer.clone(),
    };
    let Some(raw) = map.get(&ex.value).and_then(Value::as_str) else {
        return Ok(());
    };
    if raw.trim().is_empty() {
        return Ok(());
    }
    let text = match &ex.jmes_path {
        Some(expression) => apply_jmes_path(expression, raw, &pointer)?,
        None => raw.to_owned(),
    };
    let (info, oci) =
        ImageInfo::parse_with_reference(&text).map_err(|source| ImageError::InvalidImage {
            pointer: pointer.clone(),
            image: text.clone(),
            source,
        })?;
    out.push(ImageRef {
        pointer,
        container,
        kind: ex.kind,
        extractor: ex.name.clone(),
        text,
        info,
        oci,
        pull_secrets,
    });
    Ok(())
}

/// Applies an extractor's `jmesPath` to the image string (standard JMESPath
/// functions only; Kyverno's custom functions are not available here).
fn apply_jmes_path(expression: &str, value: &str, pointer: &str) -> Result<String, ImageError> {
    let err = |reason: String| ImageError::JmesPath {
        pointer: pointer.to_owned(),
        expression: expression.to_owned(),
        reason,
    };
    let compiled = jmespath::compile(expression).map_err(|e| err(e.to_string()))?;
    let result = compiled
        .search(Value::String(value.to_owned()))
        .map_err(|e| err(e.to_string()))?;
    match result.as_string() {
        Some(s) => Ok(s.clone()),
        None => Err(err(format!("must produce a string, but produced {result}"))),
    }
}
