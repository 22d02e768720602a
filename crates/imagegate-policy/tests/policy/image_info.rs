//! Kyverno's ImageInfo view of an image.

use crate::util::*;

#[test]
fn image_info_fields() {
    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    // input | registry | path | name | tag | digest | reference | referenceWithTag
    // (`-` for none, `$D` for the digest above)
    const TABLE: &str = "
        nginx | docker.io | library/nginx | nginx | latest | - | docker.io/library/nginx:latest | docker.io/nginx:latest
        nginx:1.2 | docker.io | library/nginx | nginx | 1.2 | - | docker.io/library/nginx:1.2 | docker.io/nginx:1.2
        docker.io/library/nginx | docker.io | library/nginx | nginx | latest | - | docker.io/library/nginx:latest | docker.io/library/nginx:latest
        test/nginx | docker.io | test/nginx | nginx | latest | - | docker.io/test/nginx:latest | docker.io/test/nginx:latest
        ghcr.io/a/b:v1@$D | ghcr.io | a/b | b | v1 | $D | ghcr.io/a/b@$D | ghcr.io/a/b:v1
        ghcr.io/a/b@$D | ghcr.io | a/b | b | - | $D | ghcr.io/a/b@$D | ghcr.io/a/b:
        localhost:5000/x | localhost:5000 | x | x | latest | - | localhost:5000/x:latest | localhost:5000/x:latest
        localhost:4443/test/nginx | localhost:4443 | test/nginx | nginx | latest | - | localhost:4443/test/nginx:latest | localhost:4443/test/nginx:latest
        ghcr.io/kyverno/test-verify-image:signed | ghcr.io | kyverno/test-verify-image | test-verify-image | signed | - | ghcr.io/kyverno/test-verify-image:signed | ghcr.io/kyverno/test-verify-image:signed
        index.docker.io/user/app:1 | index.docker.io | user/app | app | 1 | - | index.docker.io/user/app:1 | index.docker.io/user/app:1
    ";
    for line in TABLE.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let line = line.replace("$D", D);
        let cols: Vec<&str> = line.split(" | ").collect();
        let [
            input,
            registry,
            path,
            name,
            tag,
            digest,
            reference,
            with_tag,
        ] = cols[..]
        else {
            panic!("bad row {line}");
        };
        let opt = |c: &str| (c != "-").then(|| c.to_owned());
        let info = ImageInfo::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(info.registry, registry, "{input} registry");
        assert_eq!(info.path, path, "{input} path");
        assert_eq!(info.name, name, "{input} name");
        assert_eq!(info.tag, opt(tag), "{input} tag");
        assert_eq!(info.digest, opt(digest), "{input} digest");
        assert_eq!(info.reference, reference, "{input} reference");
        assert_eq!(
            info.reference_with_tag, with_tag,
            "{input} referenceWithTag"
        );
    }
    assert_eq!(
        ImageInfo::parse("nginx").unwrap().to_value(),
        json!({
            "registry": "docker.io",
            "path": "library/nginx",
            "name": "nginx",
            "tag": "latest",
            "reference": "docker.io/library/nginx:latest",
            "referenceWithTag": "docker.io/nginx:latest",
        })
    );
    let digested = ImageInfo::parse(&format!("ghcr.io/a/b@{D}"))
        .unwrap()
        .to_value();
    assert_eq!(digested["digest"], json!(D));
    assert!(digested.get("tag").is_none());
    for bad in ["", "++", "Nginx", "nginx:bad tag", "ghcr.io/a@sha256:short"] {
        assert!(ImageInfo::parse(bad).is_err(), "{bad:?} should not parse");
    }
}

// ---------------------------------------------------------------- image patterns
