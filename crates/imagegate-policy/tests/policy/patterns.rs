//! Image patterns and the wildcard grammar.

use crate::util::*;

#[test]
fn image_patterns() {
    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let tagged_and_digested = format!("ghcr.io/a/b:v1@{D}");
    // (patterns, image as written, expected)
    let table: Vec<(Vec<&str>, &str, bool)> = vec![
        (
            vec!["ghcr.io/kyverno/*"],
            "ghcr.io/kyverno/test-verify-image:signed",
            true,
        ),
        (
            vec!["ghcr.io/kyverno/test-verify-image*"],
            "ghcr.io/kyverno/test-verify-image:signed",
            true,
        ),
        (
            vec!["ghcr.io/kyverno/test-verify-image:?igned"],
            "ghcr.io/kyverno/test-verify-image:signed",
            true,
        ),
        (
            vec!["ghcr.io/kyverno/test-verify-image:signe?"],
            "ghcr.io/kyverno/test-verify-image:signed-x",
            false,
        ),
        (vec!["*"], "nginx", true),
        (vec!["docker.io/*"], "nginx", true),
        (vec!["docker.io/library/nginx:*"], "nginx", true),
        (vec!["docker.io/library/nginx:latest"], "nginx", true),
        // Kyverno matches the reference with `library/`, not referenceWithTag; the
        // pattern's canonical spelling adds `library/` too.
        (vec!["docker.io/nginx*"], "nginx", true),
        (vec!["docker.io/library/nginx*"], "docker.io/nginx", true),
        // Patterns must include the registry.
        (vec!["nginx*"], "nginx", false),
        (vec!["ghcr.io/a/b:v1"], "ghcr.io/a/b:v1", true),
        // With a digest, the text is registry/path@digest: the tag is not in it.
        (vec!["ghcr.io/a/b:v1*"], &tagged_and_digested, false),
        (vec!["ghcr.io/a/b@sha256:*"], &tagged_and_digested, true),
        (vec!["localhost:5000/*"], "localhost:5000/app/x:1", true),
        // Case-sensitive, except the registry host (host names are not).
        (vec!["GHCR.io/*"], "ghcr.io/a/b:1", true),
        (vec!["ghcr.io/A/*"], "ghcr.io/a/b:1", false),
        (vec!["quay.io/*", "ghcr.io/*"], "ghcr.io/a/b", true),
        (vec![], "nginx", false),
        // `*` crosses `/`.
        (vec!["ghcr.io/*/b:*"], "ghcr.io/a/c/b:v1", true),
        (vec!["index.docker.io/*"], "index.docker.io/user/app", true),
    ];
    for (patterns, image, expected) in table {
        let patterns: Vec<String> = patterns.into_iter().map(str::to_owned).collect();
        let info = ImageInfo::parse(image).unwrap();
        assert_eq!(
            image_matches(&patterns, &info),
            expected,
            "{patterns:?} vs {image} ({})",
            info.reference
        );
    }
    // A string target is a reference, canonicalised like an ImageInfo's.
    assert!(image_matches(
        &["docker.io/*".to_owned()],
        "docker.io/library/nginx:latest"
    ));
    assert!(image_matches(&["docker.io/*".to_owned()], "nginx"));
    assert!(!image_matches(&["quay.io/*".to_owned()], "nginx"));
}

/// Issue 8 item 3: every spelling that reaches the same registry and repository is
/// covered by a pattern written in any of them (imageReferences), and so is skipped
/// by a skipImageReferences pattern (the engine uses the same function for both).
#[test]
fn image_patterns_cover_every_spelling_of_a_registry() {
    // (pattern, image as written, expected)
    let table = [
        ("ghcr.io/org/*", "GHCR.io/org/app:v1", true),
        ("ghcr.io/org/*", "ghcr.io:443/org/app:v1", true),
        ("ghcr.io/org/*", "GhCr.Io:443/org/app:v1", true),
        ("ghcr.io/org/*", "ghcr.io:5000/org/app:v1", false),
        ("ghcr.io/org/*", "ghcr.io/other/app:v1", false),
        ("ghcr.io:443/org/*", "ghcr.io/org/app:v1", true),
        ("GHCR.IO/org/*", "ghcr.io/org/app:v1", true),
        ("docker.io/*", "index.docker.io/user/app:1", true),
        ("docker.io/*", "registry-1.docker.io/user/app:1", true),
        ("docker.io/*", "docker.io:443/user/app:1", true),
        ("docker.io/*", "nginx", true),
        (
            "docker.io/library/nginx:*",
            "index.docker.io/nginx:1.27",
            true,
        ),
        (
            "docker.io/library/nginx:*",
            "registry-1.docker.io/library/nginx:1.27",
            true,
        ),
        (
            "docker.io/library/nginx:*",
            "index.docker.io/nginxx:1.27",
            false,
        ),
        ("index.docker.io/*", "nginx", true),
        ("registry-1.docker.io/user/*", "docker.io/user/app", true),
        ("index.docker.io/*", "quay.io/user/app", false),
        // A wildcard in the registry is matched as written only.
        ("*.docker.io/*", "nginx", false),
        ("*.docker.io/*", "index.docker.io/user/app", true),
        // Other hosts are not folded into Docker Hub.
        ("docker.io/*", "mirror.gcr.io/library/nginx", false),
        ("docker.io/*", "docker.io.evil.example/app", false),
    ];
    for (pattern, image, expected) in table {
        let info = ImageInfo::parse(image).unwrap();
        assert_eq!(
            image_matches(&[pattern.to_owned()], &info),
            expected,
            "{pattern} vs {image} ({})",
            info.reference
        );
    }
}

#[test]
fn canonical_image_spellings() {
    let table = [
        ("nginx", "docker.io/library/nginx"),
        ("nginx:1", "docker.io/library/nginx:1"),
        (
            "index.docker.io/nginx@sha256:ab",
            "docker.io/library/nginx@sha256:ab",
        ),
        ("registry-1.docker.io/u/app:1", "docker.io/u/app:1"),
        ("GHCR.io:443/Org/app:v1", "ghcr.io/Org/app:v1"),
        ("localhost:5000/app", "localhost:5000/app"),
        ("[::1]:443/app", "[::1]/app"),
        ("ghcr.io/org/app:443", "ghcr.io/org/app:443"),
    ];
    for (text, expected) in table {
        assert_eq!(canonical_image(text), expected, "{text}");
    }
}

#[test]
fn wildcard_grammar() {
    let table = [
        ("", "", true),
        ("", "a", false),
        ("*", "", true),
        ("*", "anything/at:all", true),
        ("?", "", false),
        ("?", "é", true),
        ("a*b*c", "a-b-c", true),
        ("a*b*c", "a-c-b", false),
        ("a\\*", "a\\x", true),
        ("[ab]", "a", false),
        ("abc", "ABC", false),
    ];
    for (pattern, text, expected) in table {
        assert_eq!(
            wildcard_match(pattern, text),
            expected,
            "{pattern:?} vs {text:?}"
        );
    }
}
