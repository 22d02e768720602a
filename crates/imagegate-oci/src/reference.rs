//! Container image references, parsed and normalised the way Docker does.
//!
//! The grammar and the normalisation follow `github.com/distribution/reference`
//! (`ParseNormalizedNamed`), so that an image written in a pod spec names the same
//! repository here as it does for the container runtime:
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [ domain "/" ] path
//! domain           := host [ ":" port ]
//! host             := domain-name | "[" ipv6-hex-and-colons "]"
//! domain-name      := domain-component ( "." domain-component )*
//! domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! port             := [0-9]+
//! path             := path-component ( "/" path-component )*
//! path-component   := [a-z0-9]+ ( separator [a-z0-9]+ )*
//! separator        := "." | "_" | "__" | "-"+
//! tag              := [\w][\w.-]{0,127}
//! digest           := "sha256:" [a-f0-9]{64} | "sha512:" [a-f0-9]{128}
//! ```
//!
//! Normalisation: the first `/`-separated component is the registry when it
//! contains `.` or `:`, is exactly `localhost`, or contains an uppercase letter;
//! otherwise the registry is `docker.io`. `index.docker.io` becomes `docker.io`, and
//! a single-component repository on `docker.io` gets the `library/` prefix. When
//! neither a tag nor a digest is given the tag is `latest`; a reference with both a
//! tag and a digest keeps both (the digest is what gets pulled).
//!
//! Differences from `distribution/reference`, all deliberate: only `sha256` and
//! `sha512` digests are accepted (Docker also accepts `sha384`); a first component
//! that is classified as a registry but is not a valid host is rejected instead of
//! being reinterpreted as a registry-less path; and the empty string is reported as
//! [`ReferenceError::Empty`] instead of "invalid reference format".

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The registry that unqualified names resolve to.
const DEFAULT_REGISTRY: &str = "docker.io";
/// The legacy name of Docker Hub, normalised to [`DEFAULT_REGISTRY`].
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
/// The host that serves the distribution API for Docker Hub.
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// The namespace of official images on Docker Hub.
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag used when a reference names neither a tag nor a digest.
const DEFAULT_TAG: &str = "latest";
/// Maximum length of the repository path, as in `distribution/reference`.
const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// Maximum length of a tag.
const TAG_LENGTH_MAX: usize = 128;

/// Why an image reference could not be parsed.
///
/// Every message quotes the offending input (with escapes, so control characters
/// cannot forge log lines).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The reference is the empty string.
    #[error("invalid image reference: the reference is empty")]
    Empty,

    /// The repository path is longer than 255 characters.
    #[error(
        "invalid image reference {reference:?}: repository name is {length} characters long, the maximum is 255"
    )]
    TooLong {
        /// The reference as given.
        reference: String,
        /// Length of the normalised repository path.
        length: usize,
    },

    /// The reference contains whitespace, control or non-ASCII characters.
    #[error(
        "invalid image reference {reference:?}: invalid reference format (whitespace, control or non-ASCII characters are not allowed)"
    )]
    InvalidFormat {
        /// The reference as given.
        reference: String,
    },

    /// The reference is a bare 64-character hexadecimal string, which is ambiguous
    /// with an image ID.
    #[error(
        "invalid image reference {reference:?}: a repository name cannot be a 64-character hexadecimal string (ambiguous with an image ID)"
    )]
    AmbiguousImageId {
        /// The reference as given.
        reference: String,
    },

    /// The registry part is not a valid host name, IPv4 address or bracketed IPv6
    /// address with an optional numeric port.
    #[error(
        "invalid image reference {reference:?}: registry {registry:?} is not a valid host name, IPv4 address or [IPv6] address with an optional :port"
    )]
    InvalidRegistry {
        /// The reference as given.
        reference: String,
        /// The registry part of the reference.
        registry: String,
    },

    /// The repository path contains uppercase letters.
    #[error(
        "invalid image reference {reference:?}: repository name {repository:?} must be lowercase"
    )]
    UppercaseRepository {
        /// The reference as given.
        reference: String,
        /// The repository path (after normalisation).
        repository: String,
    },

    /// The repository path does not follow the path-component grammar.
    #[error(
        "invalid image reference {reference:?}: repository name {repository:?} is invalid (components of lowercase letters and digits separated by '.', '_', '__' or '-', joined by single '/')"
    )]
    InvalidRepository {
        /// The reference as given.
        reference: String,
        /// The repository path (after normalisation).
        repository: String,
    },

    /// The tag does not match `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    #[error(
        "invalid image reference {reference:?}: tag {tag:?} is invalid (1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-')"
    )]
    InvalidTag {
        /// The reference as given.
        reference: String,
        /// The tag part of the reference.
        tag: String,
    },

    /// The digest is malformed.
    #[error("invalid image reference {reference:?}: digest {digest:?} is invalid: {reason}")]
    InvalidDigest {
        /// The reference as given.
        reference: String,
        /// The digest part of the reference.
        digest: String,
        /// What is wrong with the digest.
        reason: &'static str,
    },

    /// The digest algorithm is well formed but not `sha256` or `sha512`.
    #[error(
        "invalid image reference {reference:?}: digest algorithm {algorithm:?} is not supported (only sha256 and sha512)"
    )]
    UnsupportedDigestAlgorithm {
        /// The reference as given.
        reference: String,
        /// The algorithm part of the digest.
        algorithm: String,
    },
}

/// A normalised container image reference: registry, repository, and a tag
/// and/or a digest.
///
/// Construct one with [`Reference::parse`] or [`str::parse`]. Its [`Display`]
/// form is fully qualified, e.g. `docker.io/library/nginx:latest`.
///
/// [`Display`]: fmt::Display
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parses and normalises an image reference (same as [`str::parse`]).
    ///
    /// `nginx` becomes `docker.io/library/nginx:latest`, `index.docker.io/user/app`
    /// becomes `docker.io/user/app:latest`, `localhost:5000/app@sha256:…` keeps its
    /// registry and has no tag.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if !input.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ReferenceError::InvalidFormat {
                reference: input.to_owned(),
            });
        }
        if input.len() == 64 && input.bytes().all(is_lower_hex) {
            return Err(ReferenceError::AmbiguousImageId {
                reference: input.to_owned(),
            });
        }

        let (registry, remainder) = split_registry(input);
        let name_end = remainder.find([':', '@']).unwrap_or(remainder.len());
        let (path, rest) = remainder.split_at(name_end);
        let (tag, digest) = if let Some(after_colon) = rest.strip_prefix(':') {
            match after_colon.split_once('@') {
                Some((tag, digest)) => (Some(tag), Some(digest)),
                None => (Some(after_colon), None),
            }
        } else if let Some(digest) = rest.strip_prefix('@') {
            (None, Some(digest))
        } else {
            (None, None)
        };

        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("{OFFICIAL_REPO_PREFIX}{path}")
        } else {
            path.to_owned()
        };

        if repository.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::UppercaseRepository {
                reference: input.to_owned(),
                repository,
            });
        }
        if !is_valid_registry(registry) {
            return Err(ReferenceError::InvalidRegistry {
                reference: input.to_owned(),
                registry: registry.to_owned(),
            });
        }
        if !repository.split('/').all(is_valid_path_component) {
            return Err(ReferenceError::InvalidRepository {
                reference: input.to_owned(),
                repository,
            });
        }
        if repository.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::TooLong {
                reference: input.to_owned(),
                length: repository.len(),
            });
        }
        if let Some(tag) = tag
            && !is_valid_tag(tag)
        {
            return Err(ReferenceError::InvalidTag {
                reference: input.to_owned(),
                tag: tag.to_owned(),
            });
        }
        if let Some(digest) = digest {
            validate_digest(input, digest)?;
        }

        let tag = match (tag, digest) {
            (Some(tag), _) => Some(tag.to_owned()),
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Self {
            registry: registry.to_owned(),
            repository,
            tag,
            digest: digest.map(str::to_owned),
        })
    }

    /// The normalised registry, e.g. `docker.io`, `ghcr.io`, `localhost:5000`,
    /// `127.0.0.1:5000`, `[::1]:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path within the registry, e.g. `library/nginx`, `org/app`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag: the one given, `latest` when neither a tag nor a digest was given,
    /// `None` for a digest-only reference.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, e.g. `sha256:<64 hex>`, if the reference has one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The fully qualified repository name, `registry/repository`, e.g.
    /// `docker.io/library/nginx`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same reference pinned to `digest`, keeping the tag (if any) and
    /// replacing any previous digest.
    ///
    /// The digest is not validated: the caller passes one it has already checked
    /// (e.g. computed or verified by the registry client). Use
    /// [`Reference::try_with_digest`] for a digest from untrusted input.
    pub fn with_digest(&self, digest: &str) -> Self {
        Self {
            digest: Some(digest.to_owned()),
            ..self.clone()
        }
    }

    /// Like [`Reference::with_digest`], but validates the digest as a parsed one
    /// is validated (`sha256` or `sha512`, lowercase hex of the right length).
    pub fn try_with_digest(&self, digest: &str) -> Result<Self, ReferenceError> {
        validate_digest(&format!("{}@{digest}", self.name()), digest)?;
        Ok(self.with_digest(digest))
    }

    /// Another tag in the same repository, without a digest (e.g. cosign's
    /// `sha256-<hex>.sig` tags).
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !is_valid_tag(tag) {
            return Err(ReferenceError::InvalidTag {
                reference: format!("{}:{tag}", self.name()),
                tag: tag.to_owned(),
            });
        }
        Ok(Self {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        })
    }

    /// The host (and port) to contact for the distribution API:
    /// `registry-1.docker.io` for `docker.io`, otherwise the registry itself.
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// Whether the registry host is a loopback address: `localhost`, an address
    /// in `127.0.0.0/8`, or `[::1]` (with or without a port).
    pub fn is_loopback(&self) -> bool {
        let host = registry_host(&self.registry);
        if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            return inner.parse::<Ipv6Addr>().is_ok_and(|ip| {
                ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            });
        }
        host.eq_ignore_ascii_case("localhost")
            || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// What goes in `/v2/<repository>/manifests/<reference>`: the digest if
    /// present, otherwise the tag.
    pub fn reference_for_api(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Splits `input` into the registry and the rest (`path[:tag][@digest]`), as
/// `splitDockerDomain` does. The `library/` prefix is added by the caller.
fn split_registry(input: &str) -> (&str, &str) {
    let Some((first, rest)) = input.split_once('/') else {
        return (DEFAULT_REGISTRY, input);
    };
    if first == LEGACY_DEFAULT_REGISTRY {
        (DEFAULT_REGISTRY, rest)
    } else if first == "localhost"
        || first.contains(['.', ':'])
        || first.bytes().any(|b| b.is_ascii_uppercase())
    {
        (first, rest)
    } else {
        (DEFAULT_REGISTRY, input)
    }
}

/// The host part of a registry (without the port), brackets kept for IPv6.
fn registry_host(registry: &str) -> &str {
    if registry.starts_with('[') {
        match registry.find(']') {
            Some(end) => &registry[..=end],
            None => registry,
        }
    } else {
        registry.split_once(':').map_or(registry, |(host, _)| host)
    }
}

/// `host [":" port]` where host is a domain name (or IPv4 address) or a bracketed
/// IPv6 address made of hex digits and colons.
fn is_valid_registry(registry: &str) -> bool {
    let (host_ok, port) = if let Some(after_bracket) = registry.strip_prefix('[') {
        let Some((inner, after)) = after_bracket.split_once(']') else {
            return false;
        };
        let host_ok =
            !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        if after.is_empty() {
            (host_ok, None)
        } else if let Some(port) = after.strip_prefix(':') {
            (host_ok, Some(port))
        } else {
            return false;
        }
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (is_valid_domain_name(host), Some(port)),
            None => (is_valid_domain_name(registry), None),
        }
    };
    host_ok && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `domain-component ("." domain-component)*`.
fn is_valid_domain_name(host: &str) -> bool {
    host.split('.').all(|component| {
        let bytes = component.as_bytes();
        match (bytes.first(), bytes.last()) {
            (Some(first), Some(last)) => {
                first.is_ascii_alphanumeric()
                    && last.is_ascii_alphanumeric()
                    && bytes
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            }
            _ => false,
        }
    })
}

/// `[a-z0-9]+ (separator [a-z0-9]+)*` with separator `.`, `_`, `__` or `-`+.
fn is_valid_path_component(component: &str) -> bool {
    let is_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut rest = component;
    loop {
        let alnum_len = rest.bytes().take_while(|b| is_alnum(*b)).count();
        if alnum_len == 0 {
            return false;
        }
        rest = &rest[alnum_len..];
        if rest.is_empty() {
            return true;
        }
        let sep_len = rest.bytes().take_while(|b| !is_alnum(*b)).count();
        let separator = &rest[..sep_len];
        let separator_ok =
            matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !separator_ok {
            return false;
        }
        rest = &rest[sep_len..];
    }
}

/// `[\w][\w.-]{0,127}` where `\w` is `[A-Za-z0-9_]`.
fn is_valid_tag(tag: &str) -> bool {
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut bytes = tag.bytes();
    tag.len() <= TAG_LENGTH_MAX
        && bytes.next().is_some_and(is_word)
        && bytes.all(|b| is_word(b) || b == b'.' || b == b'-')
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// `digest-algorithm-component (separator digest-algorithm-component)*`, with
/// components `[A-Za-z][A-Za-z0-9]*` and separators `+`, `.`, `-`, `_`.
fn is_well_formed_algorithm(algorithm: &str) -> bool {
    !algorithm.is_empty()
        && algorithm.split(['+', '.', '-', '_']).all(|component| {
            let mut bytes = component.bytes();
            bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
                && bytes.all(|b| b.is_ascii_alphanumeric())
        })
}

/// Accepts `sha256:<64 lowercase hex>` and `sha512:<128 lowercase hex>`.
fn validate_digest(reference: &str, digest: &str) -> Result<(), ReferenceError> {
    let invalid = |reason: &'static str| ReferenceError::InvalidDigest {
        reference: reference.to_owned(),
        digest: digest.to_owned(),
        reason,
    };
    if digest.is_empty() {
        return Err(invalid("the digest after '@' is empty"));
    }
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(invalid("expected <algorithm>:<hex>"));
    };
    let expected_len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ if is_well_formed_algorithm(algorithm) => {
            return Err(ReferenceError::UnsupportedDigestAlgorithm {
                reference: reference.to_owned(),
                algorithm: algorithm.to_owned(),
            });
        }
        _ => return Err(invalid("malformed algorithm, expected <algorithm>:<hex>")),
    };
    if !hex.bytes().all(is_lower_hex) {
        return Err(invalid("the encoded part must be lowercase hexadecimal"));
    }
    if hex.len() != expected_len {
        return Err(invalid(if expected_len == 64 {
            "a sha256 digest has exactly 64 hexadecimal characters"
        } else {
            "a sha512 digest has exactly 128 hexadecimal characters"
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const F64: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    const D64: &str = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";

    fn sha256(hex: &str) -> String {
        format!("sha256:{hex}")
    }

    /// (input, expected Display, registry, repository, tag, digest).
    type ValidRow = (
        String,
        String,
        &'static str,
        String,
        Option<String>,
        Option<String>,
    );

    fn valid_cases() -> Vec<ValidRow> {
        let s = |x: &str| x.to_owned();
        let some = |x: &str| Some(x.to_owned());
        let sha512 = format!("sha512:{}", "f".repeat(128));
        let long_path = format!("{}a", "a/".repeat(127));
        let long_tag = "t".repeat(128);
        vec![
            // Docker Hub normalisation.
            (
                s("nginx"),
                s("docker.io/library/nginx:latest"),
                "docker.io",
                s("library/nginx"),
                some("latest"),
                None,
            ),
            (
                s("nginx:1.25"),
                s("docker.io/library/nginx:1.25"),
                "docker.io",
                s("library/nginx"),
                some("1.25"),
                None,
            ),
            (
                s("docker.io/nginx"),
                s("docker.io/library/nginx:latest"),
                "docker.io",
                s("library/nginx"),
                some("latest"),
                None,
            ),
            (
                s("docker.io/library/nginx"),
                s("docker.io/library/nginx:latest"),
                "docker.io",
                s("library/nginx"),
                some("latest"),
                None,
            ),
            (
                s("index.docker.io/user/repo"),
                s("docker.io/user/repo:latest"),
                "docker.io",
                s("user/repo"),
                some("latest"),
                None,
            ),
            (
                s("index.docker.io/debian"),
                s("docker.io/library/debian:latest"),
                "docker.io",
                s("library/debian"),
                some("latest"),
                None,
            ),
            (
                s("foo/bar"),
                s("docker.io/foo/bar:latest"),
                "docker.io",
                s("foo/bar"),
                some("latest"),
                None,
            ),
            (
                s("library/foo/bar"),
                s("docker.io/library/foo/bar:latest"),
                "docker.io",
                s("library/foo/bar"),
                some("latest"),
                None,
            ),
            (
                s("docker/migrator"),
                s("docker.io/docker/migrator:latest"),
                "docker.io",
                s("docker/migrator"),
                some("latest"),
                None,
            ),
            (
                s("test_com"),
                s("docker.io/library/test_com:latest"),
                "docker.io",
                s("library/test_com"),
                some("latest"),
                None,
            ),
            (
                s("test_com/foo"),
                s("docker.io/test_com/foo:latest"),
                "docker.io",
                s("test_com/foo"),
                some("latest"),
                None,
            ),
            // A single component is never a registry, even with '.' or ':'.
            (
                s("test.com:tag"),
                s("docker.io/library/test.com:tag"),
                "docker.io",
                s("library/test.com"),
                some("tag"),
                None,
            ),
            (
                s("test.com:5000"),
                s("docker.io/library/test.com:5000"),
                "docker.io",
                s("library/test.com"),
                some("5000"),
                None,
            ),
            (
                s("192.168.1.1"),
                s("docker.io/library/192.168.1.1:latest"),
                "docker.io",
                s("library/192.168.1.1"),
                some("latest"),
                None,
            ),
            (
                s("192.168.0.1:80"),
                s("docker.io/library/192.168.0.1:80"),
                "docker.io",
                s("library/192.168.0.1"),
                some("80"),
                None,
            ),
            (
                s("foo_bar.com:8080"),
                s("docker.io/library/foo_bar.com:8080"),
                "docker.io",
                s("library/foo_bar.com"),
                some("8080"),
                None,
            ),
            (
                s("foo/foo_bar.com:8080"),
                s("docker.io/foo/foo_bar.com:8080"),
                "docker.io",
                s("foo/foo_bar.com"),
                some("8080"),
                None,
            ),
            (
                s("lowercase:Uppercase"),
                s("docker.io/library/lowercase:Uppercase"),
                "docker.io",
                s("library/lowercase"),
                some("Uppercase"),
                None,
            ),
            (
                s("localhost"),
                s("docker.io/library/localhost:latest"),
                "docker.io",
                s("library/localhost"),
                some("latest"),
                None,
            ),
            // Other registries.
            (
                s("test.com/repo:tag"),
                s("test.com/repo:tag"),
                "test.com",
                s("repo"),
                some("tag"),
                None,
            ),
            (
                s("test.com:8080/foo"),
                s("test.com:8080/foo:latest"),
                "test.com:8080",
                s("foo"),
                some("latest"),
                None,
            ),
            (
                s("test-com:8080/foo"),
                s("test-com:8080/foo:latest"),
                "test-com:8080",
                s("foo"),
                some("latest"),
                None,
            ),
            (
                s("test:5000/repo"),
                s("test:5000/repo:latest"),
                "test:5000",
                s("repo"),
                some("latest"),
                None,
            ),
            (
                format!("test:5000/repo@{}", sha256(F64)),
                format!("test:5000/repo@{}", sha256(F64)),
                "test:5000",
                s("repo"),
                None,
                Some(sha256(F64)),
            ),
            (
                format!("test:5000/repo:tag@{}", sha256(F64)),
                format!("test:5000/repo:tag@{}", sha256(F64)),
                "test:5000",
                s("repo"),
                some("tag"),
                Some(sha256(F64)),
            ),
            (
                s("localhost/foo"),
                s("localhost/foo:latest"),
                "localhost",
                s("foo"),
                some("latest"),
                None,
            ),
            (
                s("localhost:5000/foo"),
                s("localhost:5000/foo:latest"),
                "localhost:5000",
                s("foo"),
                some("latest"),
                None,
            ),
            (
                s("127.0.0.1:5000/docker/docker"),
                s("127.0.0.1:5000/docker/docker:latest"),
                "127.0.0.1:5000",
                s("docker/docker"),
                some("latest"),
                None,
            ),
            (
                s("127.0.0.1:5000/debian"),
                s("127.0.0.1:5000/debian:latest"),
                "127.0.0.1:5000",
                s("debian"),
                some("latest"),
                None,
            ),
            (
                s("192.168.1.1/repo"),
                s("192.168.1.1/repo:latest"),
                "192.168.1.1",
                s("repo"),
                some("latest"),
                None,
            ),
            (
                s("ghcr.io/org/app:v1"),
                s("ghcr.io/org/app:v1"),
                "ghcr.io",
                s("org/app"),
                some("v1"),
                None,
            ),
            (
                s("sub-dom1.foo.com/bar/baz/quux:some-long-tag"),
                s("sub-dom1.foo.com/bar/baz/quux:some-long-tag"),
                "sub-dom1.foo.com",
                s("bar/baz/quux"),
                some("some-long-tag"),
                None,
            ),
            (
                s("b.gcr.io/test.example.com/my-app:test.example.com"),
                s("b.gcr.io/test.example.com/my-app:test.example.com"),
                "b.gcr.io",
                s("test.example.com/my-app"),
                some("test.example.com"),
                None,
            ),
            (
                s("xn--n3h.com:18080/myimage:xn--n3h.com"),
                s("xn--n3h.com:18080/myimage:xn--n3h.com"),
                "xn--n3h.com:18080",
                s("myimage"),
                some("xn--n3h.com"),
                None,
            ),
            (
                format!("xn--7o8h.com/myimage:xn--7o8h.com@{sha512}"),
                format!("xn--7o8h.com/myimage:xn--7o8h.com@{sha512}"),
                "xn--7o8h.com",
                s("myimage"),
                some("xn--7o8h.com"),
                Some(sha512.clone()),
            ),
            // Uppercase is allowed in the registry; an uppercase first component is a registry.
            (
                s("Example.COM/foo"),
                s("Example.COM/foo:latest"),
                "Example.COM",
                s("foo"),
                some("latest"),
                None,
            ),
            (
                s("Foo/bar"),
                s("Foo/bar:latest"),
                "Foo",
                s("bar"),
                some("latest"),
                None,
            ),
            // IPv6 registries.
            (
                s("[::1]:5000/repo"),
                s("[::1]:5000/repo:latest"),
                "[::1]:5000",
                s("repo"),
                some("latest"),
                None,
            ),
            (
                s("[2001:db8::1]/repo"),
                s("[2001:db8::1]/repo:latest"),
                "[2001:db8::1]",
                s("repo"),
                some("latest"),
                None,
            ),
            (
                s("[2001:db8:1:2:3:4:5:6]/repo:tag"),
                s("[2001:db8:1:2:3:4:5:6]/repo:tag"),
                "[2001:db8:1:2:3:4:5:6]",
                s("repo"),
                some("tag"),
                None,
            ),
            (
                s("[2001:db8::]:5000/repo"),
                s("[2001:db8::]:5000/repo:latest"),
                "[2001:db8::]:5000",
                s("repo"),
                some("latest"),
                None,
            ),
            (
                s("[fc00::1]:5000/docker/docker"),
                s("[fc00::1]:5000/docker/docker:latest"),
                "[fc00::1]:5000",
                s("docker/docker"),
                some("latest"),
                None,
            ),
            // Digests, with and without tag.
            (
                format!("nginx@{}", sha256(D64)),
                format!("docker.io/library/nginx@{}", sha256(D64)),
                "docker.io",
                s("library/nginx"),
                None,
                Some(sha256(D64)),
            ),
            (
                format!("busybox:latest@{}", sha256(D64)),
                format!("docker.io/library/busybox:latest@{}", sha256(D64)),
                "docker.io",
                s("library/busybox"),
                some("latest"),
                Some(sha256(D64)),
            ),
            (
                format!("dmcgowan/myapp@{}", sha256(D64)),
                format!("docker.io/dmcgowan/myapp@{}", sha256(D64)),
                "docker.io",
                s("dmcgowan/myapp"),
                None,
                Some(sha256(D64)),
            ),
            (
                format!("reg/a@{}", sha256(D64)),
                format!("docker.io/reg/a@{}", sha256(D64)),
                "docker.io",
                s("reg/a"),
                None,
                Some(sha256(D64)),
            ),
            // Path-component separators.
            (
                s("docker---rules/docker"),
                s("docker.io/docker---rules/docker:latest"),
                "docker.io",
                s("docker---rules/docker"),
                some("latest"),
                None,
            ),
            (
                s("dock__er/docker"),
                s("docker.io/dock__er/docker:latest"),
                "docker.io",
                s("dock__er/docker"),
                some("latest"),
                None,
            ),
            (
                s("d/t"),
                s("docker.io/d/t:latest"),
                "docker.io",
                s("d/t"),
                some("latest"),
                None,
            ),
            (
                s("ubuntu-12.04-base"),
                s("docker.io/library/ubuntu-12.04-base:latest"),
                "docker.io",
                s("library/ubuntu-12.04-base"),
                some("latest"),
                None,
            ),
            // Hex names: only a bare 64-hex string is ambiguous.
            (
                format!("docker.io/{D64}"),
                format!("docker.io/library/{D64}:latest"),
                "docker.io",
                format!("library/{D64}"),
                some("latest"),
                None,
            ),
            (
                s(&D64[..63]),
                format!("docker.io/library/{}:latest", &D64[..63]),
                "docker.io",
                format!("library/{}", &D64[..63]),
                some("latest"),
                None,
            ),
            (
                format!("{D64}:tag"),
                format!("docker.io/library/{D64}:tag"),
                "docker.io",
                format!("library/{D64}"),
                some("tag"),
                None,
            ),
            (
                s("thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev"),
                s(
                    "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest",
                ),
                "docker.io",
                s("library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev"),
                some("latest"),
                None,
            ),
            // Limits: a 255-character path and a 128-character tag are allowed.
            (
                format!("{long_path}:tag-puts-this-over-max"),
                format!("docker.io/{long_path}:tag-puts-this-over-max"),
                "docker.io",
                long_path.clone(),
                some("tag-puts-this-over-max"),
                None,
            ),
            (
                format!("nginx:{long_tag}"),
                format!("docker.io/library/nginx:{long_tag}"),
                "docker.io",
                s("library/nginx"),
                Some(long_tag.clone()),
                None,
            ),
            (
                s("nginx:_under.score-ok"),
                s("docker.io/library/nginx:_under.score-ok"),
                "docker.io",
                s("library/nginx"),
                some("_under.score-ok"),
                None,
            ),
        ]
    }

    /// (input, expected variant name, fragment the message must contain).
    fn invalid_cases() -> Vec<(String, &'static str, &'static str)> {
        let s = |x: &str| x.to_owned();
        vec![
            (s(""), "Empty", "empty"),
            (s(" "), "InvalidFormat", "whitespace"),
            (s("nginx :latest"), "InvalidFormat", "\"nginx :latest\""),
            (s("nginx\n"), "InvalidFormat", "\"nginx\\n\""),
            (s("ngïnx"), "InvalidFormat", "non-ASCII"),
            (s(D64), "AmbiguousImageId", "64-character hexadecimal"),
            (s(F64), "AmbiguousImageId", "image ID"),
            (s("a".repeat(256).as_str()), "TooLong", "maximum is 255"),
            (
                format!("{}a:tag", "a/".repeat(128)),
                "TooLong",
                "257 characters",
            ),
            (
                format!("this_is_not_a_valid_namespace_{}/docker", "x".repeat(240)),
                "TooLong",
                "maximum is 255",
            ),
            (
                s("Uppercase:tag"),
                "UppercaseRepository",
                "\"library/Uppercase\" must be lowercase",
            ),
            (
                s("test:5000/Uppercase/lowercase:tag"),
                "UppercaseRepository",
                "\"Uppercase/lowercase\" must be lowercase",
            ),
            (
                s("docker/Docker"),
                "UppercaseRepository",
                "must be lowercase",
            ),
            (
                s("docker.io/docker/Docker"),
                "UppercaseRepository",
                "must be lowercase",
            ),
            (s("aa/asdf$$^/aa"), "InvalidRepository", "\"aa/asdf$$^/aa\""),
            (
                s("docker///docker"),
                "InvalidRepository",
                "\"docker///docker\"",
            ),
            (s("a//b"), "InvalidRepository", "is invalid"),
            (
                s("docker.io/docker///docker"),
                "InvalidRepository",
                "is invalid",
            ),
            (s("-docker"), "InvalidRepository", "\"library/-docker\""),
            (s("-docker/docker"), "InvalidRepository", "is invalid"),
            (s("docker-/docker"), "InvalidRepository", "is invalid"),
            (s("-docker-/docker"), "InvalidRepository", "is invalid"),
            (s("____/____"), "InvalidRepository", "is invalid"),
            (s("_docker/_docker"), "InvalidRepository", "is invalid"),
            (
                s("dock..er/docker"),
                "InvalidRegistry",
                "registry \"dock..er\"",
            ),
            (s("docker/dock..er"), "InvalidRepository", "is invalid"),
            (
                s("dock_.er/docker"),
                "InvalidRegistry",
                "registry \"dock_.er\"",
            ),
            (s("docker/dock_.er"), "InvalidRepository", "is invalid"),
            (
                s("dock-.er/docker"),
                "InvalidRegistry",
                "registry \"dock-.er\"",
            ),
            (s("docker/dock-.er"), "InvalidRepository", "is invalid"),
            (s("dock___er/docker"), "InvalidRepository", "is invalid"),
            (s("docker/"), "InvalidRepository", "is invalid"),
            (s("docker.io/"), "InvalidRepository", "is invalid"),
            (s("/nginx"), "InvalidRepository", "is invalid"),
            (s("nginx/"), "InvalidRepository", "is invalid"),
            (s(":justtag"), "InvalidRepository", "\"library/\""),
            (
                format!("@{}", sha256(F64)),
                "InvalidRepository",
                "is invalid",
            ),
            (
                s("https://github.com/docker/docker"),
                "InvalidRegistry",
                "\"https:\"",
            ),
            (
                s("-docker.io/docker/docker"),
                "InvalidRegistry",
                "\"-docker.io\"",
            ),
            (
                s("fc00::1:5000/debian"),
                "InvalidRegistry",
                "\"fc00::1:5000\"",
            ),
            (s("[fc00::1]"), "InvalidRepository", "is invalid"),
            (s("[fc00::1]:5000"), "InvalidRepository", "is invalid"),
            (s("[2001:db8::1]:tag"), "InvalidRepository", "is invalid"),
            (
                s("[fe80::1%eth0]:5000/debian"),
                "InvalidRegistry",
                "registry",
            ),
            (
                s("[fe80::1%@invalidzone]:5000/repo"),
                "InvalidRegistry",
                "registry",
            ),
            (
                s("[2001:db8:3:4::192.0.2.33]:5000/debian"),
                "InvalidRegistry",
                "registry",
            ),
            (s("[::1]5000/repo"), "InvalidRegistry", "registry"),
            (s("test.com:/repo"), "InvalidRegistry", "\"test.com:\""),
            (s("test.com:50a/repo"), "InvalidRegistry", "registry"),
            (s("a..b.com/repo"), "InvalidRegistry", "registry"),
            (s("foo_bar.com/repo"), "InvalidRegistry", "\"foo_bar.com\""),
            (s("Foo_Bar/repo"), "InvalidRegistry", "registry"),
            (s("nginx:"), "InvalidTag", "tag \"\""),
            (s("example.com:5000/x:"), "InvalidTag", "tag \"\""),
            (s("nginx:-tag"), "InvalidTag", "\"-tag\""),
            (s("nginx:.tag"), "InvalidTag", "is invalid"),
            (s("nginx:ta/g"), "InvalidRegistry", "\"nginx:ta\""),
            (s("nginx:a:b"), "InvalidTag", "\"a:b\""),
            (
                format!("nginx:{}", "t".repeat(129)),
                "InvalidTag",
                "1 to 128",
            ),
            (s("nginx@"), "InvalidDigest", "empty"),
            (s("nginx:tag@"), "InvalidDigest", "empty"),
            (s("nginx@sha256"), "InvalidDigest", "<algorithm>:<hex>"),
            (s("nginx@sha256:abc"), "InvalidDigest", "exactly 64"),
            (
                format!("nginx@{}", sha256(&F64.to_uppercase())),
                "InvalidDigest",
                "lowercase hexadecimal",
            ),
            (
                format!("nginx@sha512:{F64}"),
                "InvalidDigest",
                "exactly 128",
            ),
            (
                format!("nginx@sha256:{F64}f"),
                "InvalidDigest",
                "exactly 64",
            ),
            (
                format!("nginx@sha256:{}g", &F64[..63]),
                "InvalidDigest",
                "hexadecimal",
            ),
            (
                format!("nginx@:{F64}"),
                "InvalidDigest",
                "malformed algorithm",
            ),
            (
                format!("nginx@{}@{}", sha256(F64), sha256(F64)),
                "InvalidDigest",
                "hexadecimal",
            ),
            (
                format!("validname@invaliddigest:{F64}"),
                "UnsupportedDigestAlgorithm",
                "\"invaliddigest\"",
            ),
            (
                format!("nginx@sha384:{}", "f".repeat(96)),
                "UnsupportedDigestAlgorithm",
                "only sha256 and sha512",
            ),
            (
                format!("nginx@SHA256:{F64}"),
                "UnsupportedDigestAlgorithm",
                "\"SHA256\"",
            ),
            (
                format!("nginx@md5:{}", &F64[..32]),
                "UnsupportedDigestAlgorithm",
                "\"md5\"",
            ),
        ]
    }

    fn variant(err: &ReferenceError) -> &'static str {
        match err {
            ReferenceError::Empty => "Empty",
            ReferenceError::TooLong { .. } => "TooLong",
            ReferenceError::InvalidFormat { .. } => "InvalidFormat",
            ReferenceError::AmbiguousImageId { .. } => "AmbiguousImageId",
            ReferenceError::InvalidRegistry { .. } => "InvalidRegistry",
            ReferenceError::UppercaseRepository { .. } => "UppercaseRepository",
            ReferenceError::InvalidRepository { .. } => "InvalidRepository",
            ReferenceError::InvalidTag { .. } => "InvalidTag",
            ReferenceError::InvalidDigest { .. } => "InvalidDigest",
            ReferenceError::UnsupportedDigestAlgorithm { .. } => "UnsupportedDigestAlgorithm",
        }
    }

    #[test]
    fn valid_references() {
        let cases = valid_cases();
        assert!(cases.len() >= 40, "only {} valid rows", cases.len());
        for (input, display, registry, repository, tag, digest) in cases {
            let parsed = Reference::parse(&input)
                .unwrap_or_else(|err| panic!("{input:?} should parse, got: {err}"));
            assert_eq!(parsed.to_string(), display, "Display of {input:?}");
            assert_eq!(parsed.registry(), registry, "registry of {input:?}");
            assert_eq!(parsed.repository(), repository, "repository of {input:?}");
            assert_eq!(parsed.tag(), tag.as_deref(), "tag of {input:?}");
            assert_eq!(parsed.digest(), digest.as_deref(), "digest of {input:?}");
            assert_eq!(parsed.name(), format!("{registry}/{repository}"));
            // FromStr is the same, and the normalised form is a fixed point.
            assert_eq!(input.parse::<Reference>().as_ref(), Ok(&parsed));
            assert_eq!(
                Reference::parse(&display).as_ref(),
                Ok(&parsed),
                "reparse of {display:?}"
            );
        }
    }

    #[test]
    fn invalid_references() {
        let cases = invalid_cases();
        assert!(cases.len() >= 40, "only {} invalid rows", cases.len());
        for (input, expected_variant, fragment) in cases {
            let err = match Reference::parse(&input) {
                Ok(parsed) => panic!("{input:?} should be rejected, parsed as {parsed}"),
                Err(err) => err,
            };
            assert_eq!(
                variant(&err),
                expected_variant,
                "variant for {input:?}: {err}"
            );
            let message = err.to_string();
            assert!(
                message.contains(fragment),
                "message for {input:?} should contain {fragment:?}: {message}"
            );
            if !input.is_empty() {
                let quoted = format!("{input:?}");
                assert!(
                    message.contains(&quoted),
                    "message for {input:?} should quote it: {message}"
                );
            }
        }
    }

    #[test]
    fn api_host_and_reference_for_api() {
        let cases = [
            ("nginx", "registry-1.docker.io", "latest"),
            ("index.docker.io/user/repo:v2", "registry-1.docker.io", "v2"),
            ("ghcr.io/org/app:v1", "ghcr.io", "v1"),
            ("localhost:5000/foo", "localhost:5000", "latest"),
            ("[::1]:5000/foo:t", "[::1]:5000", "t"),
            (
                "docker.io.example.com/foo",
                "docker.io.example.com",
                "latest",
            ),
        ];
        for (input, host, api_ref) in cases {
            let parsed = Reference::parse(input).unwrap();
            assert_eq!(parsed.api_host(), host, "api_host of {input:?}");
            assert_eq!(
                parsed.reference_for_api(),
                api_ref,
                "reference_for_api of {input:?}"
            );
        }
        let digest = sha256(D64);
        let pinned = Reference::parse(&format!("reg.io/a/b:v1@{digest}")).unwrap();
        assert_eq!(pinned.reference_for_api(), digest);
    }

    #[test]
    fn loopback_registries() {
        let cases = [
            ("localhost/foo", true),
            ("localhost:5000/foo", true),
            ("LocalHost:5000/foo", true),
            ("127.0.0.1/foo", true),
            ("127.0.0.1:5000/foo", true),
            ("127.1.2.3:5000/foo", true),
            ("[::1]/foo", true),
            ("[::1]:5000/foo", true),
            ("[0:0:0:0:0:0:0:1]:5000/foo", true),
            ("[::ffff:7f00:1]:5000/foo", true),
            ("nginx", false),
            ("localhost", false), // a Docker Hub image named "localhost"
            ("localhost.example.com/foo", false),
            ("128.0.0.1:5000/foo", false),
            ("127.0.0.1.nip.io/foo", false),
            ("10.0.0.1:5000/foo", false),
            ("[::2]:5000/foo", false),
            ("[fc00::1]:5000/foo", false),
            ("ghcr.io/org/app", false),
        ];
        for (input, loopback) in cases {
            let parsed = Reference::parse(input).unwrap();
            assert_eq!(parsed.is_loopback(), loopback, "is_loopback of {input:?}");
        }
    }

    #[test]
    fn with_digest_keeps_tag_and_try_with_digest_validates() {
        let digest = sha256(D64);
        let tagged = Reference::parse("ghcr.io/org/app:v1").unwrap();
        let pinned = tagged.with_digest(&digest);
        assert_eq!(pinned.to_string(), format!("ghcr.io/org/app:v1@{digest}"));
        assert_eq!(pinned.tag(), Some("v1"));
        assert_eq!(pinned.digest(), Some(digest.as_str()));
        assert_eq!(pinned.reference_for_api(), digest);
        assert_eq!(tagged.try_with_digest(&digest), Ok(pinned.clone()));

        let other = sha256(F64);
        let repinned = pinned.try_with_digest(&other).unwrap();
        assert_eq!(repinned.to_string(), format!("ghcr.io/org/app:v1@{other}"));

        let defaulted = Reference::parse("nginx").unwrap().with_digest(&digest);
        assert_eq!(
            defaulted.to_string(),
            format!("docker.io/library/nginx:latest@{digest}")
        );

        let digest_only = Reference::parse(&format!("reg/a@{other}")).unwrap();
        assert_eq!(
            digest_only.try_with_digest(&digest).unwrap().to_string(),
            format!("docker.io/reg/a@{digest}")
        );

        let err = tagged.try_with_digest("sha256:abc").unwrap_err();
        assert!(matches!(err, ReferenceError::InvalidDigest { .. }), "{err}");
        assert!(
            err.to_string().contains("\"ghcr.io/org/app@sha256:abc\""),
            "{err}"
        );
        assert!(matches!(
            tagged.try_with_digest(&format!("md5:{}", &D64[..32])),
            Err(ReferenceError::UnsupportedDigestAlgorithm { .. })
        ));
        assert!(matches!(
            tagged.try_with_digest(""),
            Err(ReferenceError::InvalidDigest { .. })
        ));
    }

    #[test]
    fn equal_inputs_normalise_to_equal_references() {
        let forms = [
            "nginx",
            "nginx:latest",
            "docker.io/nginx",
            "docker.io/library/nginx:latest",
            "index.docker.io/library/nginx",
            "index.docker.io/nginx:latest",
        ];
        let expected = Reference::parse("docker.io/library/nginx:latest").unwrap();
        for form in forms {
            assert_eq!(Reference::parse(form).unwrap(), expected, "{form:?}");
        }
    }
}
