//! Image extraction: standard kinds and `imageExtractors`.

use crate::util::*;

/// (pointer, container, kind, text) of each extracted image.
fn extracted(fixture: &str) -> Vec<(String, String, ContainerKind, String)> {
    extract_images(&resource(fixture), None)
        .unwrap()
        .into_iter()
        .map(|i| (i.pointer, i.container, i.kind, i.text))
        .collect()
}

fn row(
    pointer: &str,
    container: &str,
    kind: ContainerKind,
    text: &str,
) -> (String, String, ContainerKind, String) {
    (
        pointer.to_owned(),
        container.to_owned(),
        kind,
        text.to_owned(),
    )
}

#[test]
fn extract_from_pod() {
    use ContainerKind::*;
    assert_eq!(
        extracted("pod-default.yaml"),
        [
            row("/spec/containers/0/image", "web", Container, "nginx"),
            row(
                "/spec/containers/1/image",
                "sidecar",
                Container,
                "ghcr.io/kyverno/test-verify-image:signed"
            ),
            row(
                "/spec/initContainers/0/image",
                "init",
                InitContainer,
                "busybox:1.36"
            ),
            row(
                "/spec/ephemeralContainers/0/image",
                "debugger",
                EphemeralContainer,
                "localhost:5000/tools/debug@sha256:1111111111111111111111111111111111111111111111111111111111111111"
            ),
        ]
    );
    let images = extract_images(&resource("pod-default.yaml"), None).unwrap();
    assert!(images.iter().all(|i| i.pull_secrets == ["regcred"]));
    assert_eq!(images[0].extractor, "containers");
    assert_eq!(images[2].extractor, "initContainers");
    assert_eq!(images[0].oci.to_string(), "docker.io/library/nginx:latest");
}

#[test]
fn extract_from_controllers() {
    use ContainerKind::*;
    let table = [
        (
            "deployment.yaml",
            vec![
                row(
                    "/spec/template/spec/containers/0/image",
                    "web",
                    Container,
                    "ghcr.io/acme/web:v1",
                ),
                row(
                    "/spec/template/spec/containers/1/image",
                    "proxy",
                    Container,
                    "docker.io/envoyproxy/envoy:v1.30.1",
                ),
                row(
                    "/spec/template/spec/initContainers/0/image",
                    "migrate",
                    InitContainer,
                    "ghcr.io/acme/migrate:v2",
                ),
            ],
        ),
        (
            "statefulset.json",
            vec![row(
                "/spec/template/spec/containers/0/image",
                "postgres",
                Container,
                "postgres:16",
            )],
        ),
        (
            "daemonset.json",
            vec![
                row(
                    "/spec/template/spec/containers/0/image",
                    "agent",
                    Container,
                    "quay.io/acme/agent:3.1",
                ),
                row(
                    "/spec/template/spec/initContainers/0/image",
                    "setup",
                    InitContainer,
                    "quay.io/acme/setup:3.1",
                ),
            ],
        ),
        (
            "job.json",
            vec![row(
                "/spec/template/spec/containers/0/image",
                "backup",
                Container,
                "ghcr.io/acme/backup@sha256:2222222222222222222222222222222222222222222222222222222222222222",
            )],
        ),
        (
            "cronjob.yaml",
            vec![row(
                "/spec/jobTemplate/spec/template/spec/containers/0/image",
                "report",
                Container,
                "ghcr.io/acme/report:2024.1",
            )],
        ),
        (
            "replicaset.json",
            vec![row(
                "/spec/template/spec/containers/0/image",
                "web",
                Container,
                "ghcr.io/acme/web:v1",
            )],
        ),
        // Kinds without a pod template have no standard images.
        ("clusterrole-viewer.json", vec![]),
    ];
    for (fixture, expected) in table {
        assert_eq!(extracted(fixture), expected, "{fixture}");
    }
    let cron = extract_images(&resource("cronjob.yaml"), None).unwrap();
    assert_eq!(cron[0].pull_secrets, ["ghcr"]);
}

#[test]
fn extract_with_image_extractors() {
    let extractors: BTreeMap<String, Vec<imagegate_policy::model::ImageExtractorConfig>> =
        serde_json::from_value(json!({
            "Task": [
                {"path": "/spec/steps/*/image", "key": "name", "name": "steps"},
                {"path": "/spec/sidecarImages/*", "value": "ref"},
            ],
            "Pod": [{"path": "/spec/containers/*/image", "jmesPath": "to_string(@)"}],
        }))
        .unwrap();
    let images = extract_images(&resource("custom-tekton-task.yaml"), Some(&extractors)).unwrap();
    let rows: Vec<_> = images
        .iter()
        .map(|i| {
            (
                i.pointer.as_str(),
                i.container.as_str(),
                i.kind,
                i.extractor.as_str(),
                i.text.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                "/spec/steps/0/image",
                "clone",
                ContainerKind::Custom,
                "steps",
                "ghcr.io/tektoncd/git-init:v0.40.2"
            ),
            (
                "/spec/steps/1/image",
                "build",
                ContainerKind::Custom,
                "steps",
                "gcr.io/kaniko-project/executor:v1.9.0"
            ),
            // Without `key`, Kyverno keys the image by its pointer; map keys are
            // escaped per RFC 6901.
            (
                "/spec/sidecarImages/a-proxy/ref",
                "/spec/sidecarImages/a-proxy/ref",
                ContainerKind::Custom,
                "custom",
                "docker.io/library/nginx:1.25"
            ),
            (
                "/spec/sidecarImages/cache~1redis~01/ref",
                "/spec/sidecarImages/cache~1redis~01/ref",
                ContainerKind::Custom,
                "custom",
                "redis:7"
            ),
        ]
    );
    // An extractor for the kind replaces the standard ones (jmesPath applied).
    let pod = extract_images(&resource("pod-default.yaml"), Some(&extractors)).unwrap();
    assert_eq!(pod.len(), 2);
    assert_eq!(pod[0].pointer, "/spec/containers/0/image");
    assert_eq!(pod[0].kind, ContainerKind::Custom);
    // Extractors for other kinds leave the standard extraction in place.
    assert_eq!(
        extract_images(&resource("deployment.yaml"), Some(&extractors))
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn extraction_errors_and_skips() {
    match extract_images(&resource("pod-bad-image.json"), None) {
        Err(ImageError::InvalidImage { pointer, image, .. }) => {
            assert_eq!(pointer, "/spec/containers/1/image");
            assert_eq!(image, "Nginx:Latest");
        }
        other => panic!("expected InvalidImage, got {other:?}"),
    }
    let message = extract_images(&resource("pod-bad-image.json"), None)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("/spec/containers/1/image") && message.contains("Nginx:Latest"),
        "{message}"
    );
    // Missing and blank images are skipped, as Kyverno does.
    assert_eq!(
        extracted("pod-missing-and-blank-images.json"),
        [row(
            "/spec/containers/2/image",
            "real",
            ContainerKind::Container,
            "nginx:1.25"
        )]
    );
    // A container without a name is an error (Kyverno: "invalid key").
    let nameless = json!({"kind": "Pod", "spec": {"containers": [{"image": "nginx"}]}});
    assert!(matches!(
        extract_images(&nameless, None),
        Err(ImageError::InvalidKey { .. })
    ));
    // `containers` that is not a list is an error.
    let scalar = json!({"kind": "Pod", "spec": {"containers": "nginx"}});
    assert!(matches!(
        extract_images(&scalar, None),
        Err(ImageError::InvalidType { .. })
    ));
    // An empty extractor list for the kind is an error.
    let empty: BTreeMap<String, Vec<imagegate_policy::model::ImageExtractorConfig>> =
        serde_json::from_value(json!({"Pod": []})).unwrap();
    assert!(matches!(
        extract_images(&resource("pod-default.yaml"), Some(&empty)),
        Err(ImageError::NoExtractors { .. })
    ));
}

// ---------------------------------------------------------------- ImageInfo
