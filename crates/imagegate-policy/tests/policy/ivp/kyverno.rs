//! Kyverno's own ImageValidatingPolicy tests as the oracle. With `IMAGEGATE_KYVERNO_SRC`
//! naming a Kyverno source tree, every policy of `test/cli/test-image-validating-policy`
//! and `test/conformance/chainsaw/image-validating-policies` must load as Kyverno accepts
//! it, except those that read the cluster or the network from CEL (refused on purpose,
//! with a reason), and every `check-autogen.yaml` assertion must hold for our autogen.
//! Without them the tests report themselves skipped (see [`kyverno_src`]).

use std::path::{Path, PathBuf};

use imagegate_policy::ivp::CompiledIvp;
use imagegate_policy::load::load_documents;
use serde_json::Value;

/// Policies Kyverno's own tests expect the API server or Kyverno to reject, with the
/// message they expect.
const REJECTED: &[(&str, &str)] = &[(
    "validation-checks/invalid-action",
    r#"spec.validationActions[0]: Unsupported value: "test": supported values: "Deny", "Audit", "Warn""#,
)];

/// CEL libraries that do I/O while evaluating; imagegate refuses them at load.
const IO_CALLS: &[&str] = &["resource.", "globalContext.", "http.", "image.GetMetadata"];

/// Kyverno's test folders: `$IMAGEGATE_KYVERNO_SRC` (a Kyverno source tree), else
/// `<vectors>/kyverno-ivp` with the same `test/...` layout (`$IMAGEGATE_VECTORS` or
/// `../shared/vectors`). Missing: skipped, or a failure with IMAGEGATE_REQUIRE_KYVERNO=1.
pub(crate) fn kyverno_src() -> Option<PathBuf> {
    let dir = std::env::var_os("IMAGEGATE_KYVERNO_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::util::vectors_dir().join("kyverno-ivp"));
    if dir.join("test").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("IMAGEGATE_REQUIRE_KYVERNO").as_deref() != Ok("1"),
        "Kyverno's tests are not at {} (set IMAGEGATE_KYVERNO_SRC)",
        dir.display()
    );
    eprintln!("skipped: Kyverno's tests are not at {}", dir.display());
    None
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

fn ivp_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    yaml_files(
        &root.join("test/cli/test-image-validating-policy"),
        &mut files,
    );
    yaml_files(
        &root.join("test/conformance/chainsaw/image-validating-policies"),
        &mut files,
    );
    files
}

/// Chainsaw assertions (partial objects, status) are not policies to load.
fn is_assertion(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.contains("assert") || name.starts_with("check-")
}

#[test]
fn kyverno_policies_load_as_kyverno_accepts_them() {
    let Some(root) = kyverno_src() else { return };
    let mut loaded = 0;
    let mut refused_io = 0;
    let mut failures = Vec::new();
    for file in ivp_files(&root) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        if !text.contains("ImageValidatingPolicy") || is_assertion(&file) {
            continue;
        }
        let name = file.display().to_string();
        let rejected = REJECTED
            .iter()
            .find(|(r, _)| name.contains(r))
            .map(|(_, m)| *m);
        let does_io = IO_CALLS.iter().any(|c| text.contains(c));
        match load_documents(&text, &name) {
            Ok(l) if l.image_validating.is_empty() => {}
            Ok(_) if rejected.is_some() => {
                failures.push(format!("{name}: loaded, but Kyverno rejects it"))
            }
            Ok(_) if does_io => failures.push(format!("{name}: loaded although it does I/O")),
            Ok(l) => loaded += l.image_validating.len(),
            Err(e) if rejected.is_some() => {
                let want = rejected.unwrap_or_default();
                if !e.to_string().contains(want) {
                    failures.push(format!("{name}: expected `{want}` in {e}"));
                }
            }
            Err(e) if does_io && e.to_string().contains("not supported") => refused_io += 1,
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        loaded > 20,
        "only {loaded} policies found under {}",
        root.display()
    );
    eprintln!("{loaded} Kyverno ImageValidatingPolicies loaded, {refused_io} refused for I/O");
}

/// Whether every field of `expected` is in `actual` with the same value (chainsaw's
/// partial match).
fn subset(expected: &Value, actual: &Value, path: &str, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, v) in e {
                match a.get(k) {
                    Some(av) => subset(v, av, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k}: missing")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                subset(ev, av, &format!("{path}[{i}]"), out);
            }
        }
        (Value::String(e), Value::String(a)) if e.trim() == a.trim() => {}
        (e, a) if e == a => {}
        (e, a) => out.push(format!("{path}: expected {e}, got {a}")),
    }
}

#[test]
fn kyverno_autogen_assertions_hold() {
    let Some(root) = kyverno_src() else { return };
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in ivp_files(&root) {
        if file.file_name().and_then(|n| n.to_str()) != Some("check-autogen.yaml") {
            continue;
        }
        let Some(dir) = file.parent() else { continue };
        let Ok(policy_text) = std::fs::read_to_string(dir.join("policy.yaml")) else {
            continue;
        };
        let name = dir.display().to_string();
        let policies: Vec<CompiledIvp> = match load_documents(&policy_text, &name) {
            Ok(l) => l.image_validating,
            Err(e) if IO_CALLS.iter().any(|c| policy_text.contains(c)) => {
                eprintln!("skipped {name}: {e}");
                continue;
            }
            Err(e) => {
                failures.push(e.to_string());
                continue;
            }
        };
        let Some(policy) = policies.first() else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let expected: Value = match serde_saphyr::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{}: {e}", file.display()));
                continue;
            }
        };
        let configs = expected
            .pointer("/status/autogen/configs")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        // Chainsaw matches maps partially: the variants asserted must exist.
        let ours = policy.autogen_variants();
        let missing: Vec<&String> = configs.keys().filter(|k| !ours.contains(k)).collect();
        if !missing.is_empty() {
            failures.push(format!("{name}: variants {ours:?} lack {missing:?}"));
            continue;
        }
        for (variant, config) in &configs {
            let Some(spec) = policy.autogen_spec(variant) else {
                continue;
            };
            let actual = serde_json::to_value(spec).unwrap_or_default();
            let mut diffs = Vec::new();
            subset(
                config.get("spec").unwrap_or(&Value::Null),
                &actual,
                "spec",
                &mut diffs,
            );
            for d in diffs {
                failures.push(format!("{name} ({variant}): {d}"));
            }
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 4, "only {checked} autogen assertions found");
    eprintln!("{checked} Kyverno autogen assertions hold");
}
