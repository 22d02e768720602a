//! `imagegate test`: runs Kyverno CLI test folders (`kyverno-test.yaml`,
//! `cli.kyverno.io/v1alpha1` `Test`) and compares every expected result. A test's
//! values (`variables:` file or `values:`) are its cluster inputs.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use imagegate_engine::{EngineResponse, RuleStatus};
use serde::Deserialize;
use serde_json::Value;

use super::{EXIT_FAILED, EXIT_OK};
use crate::cli::TestArgs;
use crate::values::Values;

/// The test file name Kyverno looks for.
const TEST_FILE: &str = "kyverno-test.yaml";
/// Folders deeper than this are not searched.
const MAX_DEPTH: usize = 16;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TestFile {
    #[serde(default)]
    policies: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    /// PolicyException files.
    #[serde(default)]
    exceptions: Vec<String>,
    #[serde(default)]
    results: Vec<ExpectedResult>,
    /// A Kyverno CLI values file (context values, namespace labels), relative to the
    /// test file.
    #[serde(default)]
    variables: Option<String>,
    /// The same values written in the test file (Kyverno reads the file only without
    /// them).
    #[serde(default)]
    values: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExpectedResult {
    policy: String,
    /// Absent for ImageValidatingPolicy results.
    #[serde(default)]
    rule: String,
    /// A result of an ImageValidatingPolicy, matched by policy name alone.
    #[serde(default)]
    is_image_validating_policy: bool,
    #[serde(default)]
    resources: Vec<String>,
    /// Older test files name one resource.
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    /// `pass`, `fail`, `skip`, `warn`, `error` (older files: `status`).
    #[serde(default, alias = "status")]
    result: String,
    #[serde(default, alias = "patchedResources")]
    patched_resource: Option<String>,
}

/// One checked expectation.
struct Row {
    policy: String,
    rule: String,
    resource: String,
    expected: String,
    actual: String,
    reason: String,
}

/// Runs every test file found under the folders.
pub async fn run(args: TestArgs) -> anyhow::Result<u8> {
    let mut files = Vec::new();
    for dir in &args.dirs {
        find_test_files(dir, 0, &mut files)?;
    }
    if files.is_empty() {
        bail!(
            "no {TEST_FILE} found under {}",
            args.dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    files.sort();
    let config = args.registry.engine_config(&args.trust);
    let engine = crate::engine::build(&config, Default::default())?;
    let mut out = std::io::stdout().lock();
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in &files {
        writeln!(out, "\nLoading test {}", file.display())?;
        let rows = match run_file(&engine, &config, file).await {
            Ok(rows) => rows,
            Err(e) => {
                writeln!(out, "  error: {e:#}")?;
                failed += 1;
                continue;
            }
        };
        writeln!(
            out,
            "{:<4} {:<28} {:<28} {:<36} {:<8} REASON",
            "ID", "POLICY", "RULE", "RESOURCE", "RESULT"
        )?;
        for (i, row) in rows.iter().enumerate() {
            let ok = row.expected == row.actual && row.reason.is_empty();
            let verdict = if ok { "Pass" } else { "Fail" };
            let reason = if ok {
                "Ok".to_owned()
            } else if row.reason.is_empty() {
                format!("Want {}, got {}", row.expected, row.actual)
            } else {
                row.reason.clone()
            };
            writeln!(
                out,
                "{:<4} {:<28} {:<28} {:<36} {:<8} {reason}",
                i + 1,
                row.policy,
                row.rule,
                row.resource,
                verdict
            )?;
            if ok {
                passed += 1;
            } else {
                failed += 1;
            }
        }
    }
    writeln!(out, "\n{passed} passed, {failed} failed")?;
    Ok(if failed == 0 { EXIT_OK } else { EXIT_FAILED })
}

fn find_test_files(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if dir.is_file() {
        found.push(dir.to_owned());
        return Ok(());
    }
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            find_test_files(&path, depth + 1, found)?;
        } else if path.file_name().is_some_and(|n| n == TEST_FILE) {
            found.push(path);
        }
    }
    Ok(())
}

/// The test's values: `values:` written in it, else its `variables:` file.
fn test_values(test: &TestFile, file: &Path, base: &Path) -> anyhow::Result<Option<Values>> {
    let values = if let Some(document) = &test.values {
        Values::from_document(document)
            .map_err(|e| anyhow::anyhow!("{}: values: {e}", file.display()))?
    } else if let Some(variables) = &test.variables {
        Values::load(&base.join(variables))?
    } else {
        return Ok(None);
    };
    for warning in &values.warnings {
        tracing::warn!("{}: values: {warning}", file.display());
    }
    Ok(Some(values))
}

/// Runs one test file, with `engine`, or with an engine built from `config` and the
/// test's values when it has some (they are its cluster inputs).
async fn run_file(
    engine: &imagegate_engine::Engine,
    config: &crate::engine::EngineConfig,
    file: &Path,
) -> anyhow::Result<Vec<Row>> {
    let base = file.parent().unwrap_or(Path::new("."));
    let text = imagegate_policy::load::read_limited(file)?;
    let test: TestFile =
        serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let values = test_values(&test, file, base)?.map(Arc::new);
    let with_values = match &values {
        Some(values) => {
            let mut config = config.clone();
            config.cluster = Some(values.clone() as Arc<dyn imagegate_engine::ClusterInputs>);
            Some(crate::engine::build(&config, Default::default())?)
        }
        None => None,
    };
    let engine = with_values.as_ref().unwrap_or(engine);
    let policy_paths: Vec<PathBuf> = test.policies.iter().map(|p| base.join(p)).collect();
    let resource_paths: Vec<PathBuf> = test.resources.iter().map(|p| base.join(p)).collect();
    let exception_paths: Vec<PathBuf> = test.exceptions.iter().map(|p| base.join(p)).collect();
    let resources = crate::resources::load_resources(&resource_paths)?;
    let policies =
        crate::resources::load_with_exceptions(&policy_paths, &exception_paths, &resources)?;

    let responses: Vec<EngineResponse> =
        futures::future::join_all(resources.iter().map(|resource| {
            crate::values::evaluate(engine, &policies, values.as_deref(), resource.clone())
        }))
        .await;
    let index: HashMap<(String, String, String), usize> = resources
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let id = imagegate_engine::ResourceId::of(r);
            ((id.kind, id.namespace, id.name), i)
        })
        .collect();

    let mut rows = Vec::new();
    for expected in &test.results {
        let names: Vec<&String> = expected
            .resources
            .iter()
            .chain(expected.resource.as_ref())
            .collect();
        let (policy_namespace, policy_name) = match expected.policy.split_once('/') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, expected.policy.as_str()),
        };
        for name in names {
            let (namespace, name) = match name.split_once('/') {
                Some((ns, n)) => (ns.to_owned(), n.to_owned()),
                None => (expected.namespace.clone().unwrap_or_default(), name.clone()),
            };
            let kind = expected.kind.clone().unwrap_or_default();
            let found = index
                .iter()
                .find(|((k, ns, n), _)| {
                    (kind.is_empty() || *k == kind)
                        && *n == name
                        && (namespace.is_empty() || *ns == namespace)
                })
                .map(|(_, i)| *i);
            let resource_label = if namespace.is_empty() {
                format!("{kind}/{name}")
            } else {
                format!("{kind}/{namespace}/{name}")
            };
            let mut row = Row {
                policy: expected.policy.clone(),
                rule: expected.rule.clone(),
                resource: resource_label,
                expected: expected.result.to_ascii_lowercase(),
                actual: String::new(),
                reason: String::new(),
            };
            let Some(i) = found else {
                row.reason = "Not found: no such resource in the test's resources".into();
                rows.push(row);
                continue;
            };
            let response = &responses[i];
            let rule = response
                .policies
                .iter()
                .filter(|p| {
                    p.policy == policy_name
                        && (policy_namespace.is_none()
                            || p.namespace.as_deref() == policy_namespace)
                })
                .flat_map(|p| &p.rules)
                .find(|r| {
                    if expected.is_image_validating_policy {
                        r.rule_type == imagegate_engine::IMAGE_VALIDATING_POLICY
                    } else {
                        r.name == expected.rule
                    }
                });
            let status = rule.map_or(RuleStatus::Skip, |r| r.status);
            // Kyverno's CLI reports a failed ImageValidatingPolicy as `fail` whatever
            // its validationActions (Warn only changes what admission returns).
            let status = match status {
                RuleStatus::Warn if expected.is_image_validating_policy => RuleStatus::Fail,
                other => other,
            };
            row.actual = status.as_str().to_owned();
            if let Some(patched_file) = &expected.patched_resource {
                match patched_matches(&base.join(patched_file), &response.patched) {
                    Ok(true) => {}
                    Ok(false) => {
                        row.reason = format!("Patched resource differs from {patched_file}")
                    }
                    Err(e) => row.reason = format!("{e:#}"),
                }
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

fn patched_matches(file: &Path, patched: &Value) -> anyhow::Result<bool> {
    let documents = crate::resources::read_documents(file)?;
    let id = imagegate_engine::ResourceId::of(patched);
    Ok(documents
        .iter()
        .any(|d| imagegate_engine::ResourceId::of(d) == id && d == patched))
}
