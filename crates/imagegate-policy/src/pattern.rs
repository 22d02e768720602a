//! Kyverno's wildcard patterns: `*` (any run of characters, `/` included) and `?`
//! (exactly one character), no escapes, no classes, case-sensitive, anchored at both
//! ends. One implementation serves image patterns (`imageReferences`,
//! `skipImageReferences`) and match/exclude (kinds, names, namespaces, annotations,
//! label selector values).
//!
//! Image patterns are matched against the image's reference as Kyverno prints it
//! (`registry/path:tag`, or `registry/path@digest` when the image has a digest: the
//! tag is then *not* part of the text) **and** against its canonical spelling
//! ([`canonical_image`]: lower-case host, default port `:443` dropped, Docker Hub's
//! aliases folded to `docker.io`, `library/` added). Kyverno matches only the first;
//! matching both closes the bypass where `GHCR.io/org/app`, `ghcr.io:443/org/app` or
//! `index.docker.io/org/app` escapes `ghcr.io/org/*` or `docker.io/*` although the
//! runtime pulls it from the same place. A pattern whose registry is written literally
//! is canonicalised the same way, so `index.docker.io/*` also covers `nginx`.
//!
//! Depends on nothing else in this crate (image types implement [`ImageMatchTarget`]
//! where they are defined).

use std::borrow::Cow;

use wildmatch::WildMatch;

/// Whether `text` matches the Kyverno wildcard `pattern` as a whole.
///
/// `*` matches any sequence (including the empty one and `/`), `?` exactly one
/// character; everything else matches itself, case-sensitively. The empty pattern
/// matches only the empty text, `*` matches everything (the empty text too).
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return pattern == text;
    }
    WildMatch::new(pattern).matches(text)
}

/// Whether the string contains a Kyverno wildcard character (`*` or `?`).
pub fn contains_wildcard(text: &str) -> bool {
    text.contains(['*', '?'])
}

/// Docker Hub under any of its names.
pub fn is_docker_hub(registry: &str) -> bool {
    matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

/// Whether the first component of an image reference names a registry (Docker's and
/// Kyverno's rule): it contains `.` or `:`, is `localhost`, or is not all lower-case.
fn is_registry_component(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

/// Splits `text` into (registry, rest) the way Docker does, `docker.io` when the first
/// component is not a registry.
fn split_registry(text: &str) -> (&str, &str) {
    match text.split_once('/') {
        Some((first, rest)) if is_registry_component(first) => (first, rest),
        _ => ("docker.io", text),
    }
}

/// The registry as the runtime reaches it: lower-case (host names are
/// case-insensitive), without the HTTPS default port, Docker Hub's aliases folded.
fn canonical_registry(registry: &str) -> Cow<'_, str> {
    let lower = registry.to_ascii_lowercase();
    let host = lower.strip_suffix(":443").unwrap_or(&lower);
    let host = if is_docker_hub(host) {
        "docker.io"
    } else {
        host
    };
    if host == registry {
        Cow::Borrowed(registry)
    } else {
        Cow::Owned(host.to_owned())
    }
}

/// The canonical spelling of an image reference (or of a pattern written like one):
/// canonical registry ([`canonical_registry`]) and `library/` before a one-component
/// Docker Hub repository. `GHCR.io:443/org/app:v1` → `ghcr.io/org/app:v1`,
/// `index.docker.io/nginx@sha256:…` → `docker.io/library/nginx@sha256:…`, `nginx:1`
/// → `docker.io/library/nginx:1`. Everything after the registry keeps its case (a
/// repository path is case-sensitive, and an upper-case one is not a valid image).
pub fn canonical_image(text: &str) -> Cow<'_, str> {
    let (registry, rest) = split_registry(text);
    let registry = canonical_registry(registry);
    let path_end = rest.find([':', '@']).unwrap_or(rest.len());
    let library = if registry == "docker.io" && !rest[..path_end].contains('/') {
        "library/"
    } else {
        ""
    };
    let canonical = format!("{registry}/{library}{rest}");
    if canonical == text {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(canonical)
    }
}

/// The canonical spelling of an image pattern, when its registry is written literally
/// (no wildcard in the first component) and it differs from the pattern as written.
fn canonical_pattern(pattern: &str) -> Option<String> {
    let (first, _) = pattern.split_once('/')?;
    if contains_wildcard(first) || !is_registry_component(first) {
        return None;
    }
    match canonical_image(pattern) {
        Cow::Owned(canonical) => Some(canonical),
        Cow::Borrowed(_) => None,
    }
}

/// Whether the image `pattern` matches the image reference `text`: the pattern (as
/// written or canonical) matches the reference as written or canonical.
pub fn image_pattern_matches(pattern: &str, text: &str) -> bool {
    pattern_matches_either(pattern, text, &canonical_image(text))
}

fn pattern_matches_either(pattern: &str, text: &str, canonical_text: &str) -> bool {
    let canonical_pattern = canonical_pattern(pattern);
    [Some(pattern), canonical_pattern.as_deref()]
        .into_iter()
        .flatten()
        .any(|p| wildcard_match(p, text) || wildcard_match(p, canonical_text))
}

/// Something an image pattern can be matched against: the text Kyverno matches.
pub trait ImageMatchTarget {
    /// The text that `imageReferences`/`skipImageReferences` patterns are matched
    /// against.
    fn match_text(&self) -> &str;
}

impl ImageMatchTarget for str {
    /// The string itself, taken as an already normalised reference.
    fn match_text(&self) -> &str {
        self
    }
}

impl ImageMatchTarget for String {
    fn match_text(&self) -> &str {
        self
    }
}

/// Whether any of `patterns` matches `image` (Kyverno's `ImageMatches`, spellings
/// folded as the module explains): `true` for at least one match, `false` for an
/// empty list.
///
/// Pass an `ImageInfo` or `ImageRef` to match what Kyverno matches (its `reference`);
/// a `&str` is taken as such a reference.
pub fn image_matches<T: ImageMatchTarget + ?Sized>(patterns: &[String], image: &T) -> bool {
    let text = image.match_text();
    let canonical_text = canonical_image(text);
    patterns
        .iter()
        .any(|p| pattern_matches_either(p, text, &canonical_text))
}
