//! Kyverno's wildcard patterns: `*` (any run of characters, `/` included) and `?`
//! (exactly one character), no escapes, no classes, case-sensitive, anchored at both
//! ends. One implementation serves image patterns (`imageReferences`,
//! `skipImageReferences`) and match/exclude (kinds, names, namespaces, annotations,
//! label selector values).
//!
//! Image patterns are matched against the image's normalised reference as Kyverno
//! prints it ([`ImageInfo::reference`]): `registry/path:tag`, or
//! `registry/path@digest` when the image has a digest (the tag is then *not* part of
//! the text). So `ghcr.io/kyverno/*` matches `ghcr.io/kyverno/test-verify-image:signed`,
//! `docker.io/*` matches `nginx`, and `*:v1` does not match `ghcr.io/a/b:v1@sha256:…`.

use wildmatch::WildMatch;

use crate::images::{ImageInfo, ImageRef};

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

/// Something an image pattern can be matched against: the text Kyverno matches.
pub trait ImageMatchTarget {
    /// The text that `imageReferences`/`skipImageReferences` patterns are matched
    /// against.
    fn match_text(&self) -> &str;
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

/// Whether any of `patterns` matches `image` (Kyverno's `ImageMatches`): `true`
/// for at least one match, `false` for an empty list.
///
/// Pass an [`ImageInfo`] or [`ImageRef`] to match exactly what Kyverno matches (the
/// normalised reference); a `&str` is matched as given.
pub fn image_matches<T: ImageMatchTarget + ?Sized>(patterns: &[String], image: &T) -> bool {
    let text = image.match_text();
    patterns.iter().any(|p| wildcard_match(p, text))
}
