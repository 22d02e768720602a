//! `imagegate apply`: policies applied to resource files, offline (no cluster; a
//! `--values-file` stands in for one).

use std::io::Write as _;
use std::sync::Arc;

use anyhow::Context as _;
use imagegate_engine::{AdmissionInput, EngineResponse, RuleStatus};
use serde_json::{Value, json};

use super::{EXIT_FAILED, EXIT_OK};
use crate::cli::{ApplyArgs, OutputFormat};
use crate::values::Values;

/// Evaluates every resource (both admission phases) and prints results and the
/// mutated resources.
pub async fn run(args: ApplyArgs) -> anyhow::Result<u8> {
    let values = args
        .values_file
        .as_deref()
        .map(Values::load)
        .transpose()?
        .map(Arc::new);
    for warning in values.iter().flat_map(|v| &v.warnings) {
        tracing::warn!("values file: {warning}");
    }
    let resources = crate::resources::load_resources(&args.resource)?;
    let policies =
        crate::resources::load_with_exceptions(&args.policy, &args.exception, &resources)?;
    let mut config = args.registry.engine_config(&args.trust);
    // The values stand in for the cluster, through the engine's cluster inputs.
    config.cluster = values
        .clone()
        .map(|v| v as Arc<dyn imagegate_engine::ClusterInputs>);
    let engine = crate::engine::build(&config, Default::default())?;
    // JSON payloads after the resources (each document of a file is one payload).
    let mut payloads = Vec::new();
    for path in &args.json {
        payloads.extend(
            crate::resources::read_documents(path)?
                .into_iter()
                .map(AdmissionInput::for_json_payload),
        );
    }
    let mut responses =
        futures::future::join_all(resources.into_iter().map(|resource| {
            crate::values::evaluate(&engine, &policies, values.as_deref(), resource)
        }))
        .await;
    responses.extend(
        futures::future::join_all(
            payloads
                .iter()
                .map(|input| engine.evaluate_both(&policies, input)),
        )
        .await,
    );

    let mut out = std::io::stdout().lock();
    let failed = responses.iter().any(|r| {
        r.policies
            .iter()
            .flat_map(|p| &p.rules)
            .any(|rule| matches!(rule.status, RuleStatus::Fail | RuleStatus::Error))
    });
    if args.policy_report {
        let report = policy_report(&responses);
        writeln!(
            out,
            "{}",
            serde_saphyr::to_string(&report).context("report as YAML")?
        )?;
        return Ok(if failed { EXIT_FAILED } else { EXIT_OK });
    }
    match args.output {
        OutputFormat::Json => {
            let document = json!({
                "results": results(&responses),
                "summary": summary(&responses),
                "resources": responses.iter().map(|r| &r.patched).collect::<Vec<_>>(),
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&document)?)?;
        }
        OutputFormat::Yaml => {
            for result in results(&responses) {
                writeln!(
                    out,
                    "{}/{}: {}: {}{}",
                    result["policy"].as_str().unwrap_or_default(),
                    result["rule"].as_str().unwrap_or_default(),
                    result["resource"].as_str().unwrap_or_default(),
                    result["result"].as_str().unwrap_or_default(),
                    result["message"]
                        .as_str()
                        .filter(|m| !m.is_empty())
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default(),
                )?;
            }
            let s = summary(&responses);
            writeln!(
                out,
                "\npass: {}, fail: {}, warn: {}, error: {}, skip: {}",
                s["pass"], s["fail"], s["warn"], s["error"], s["skip"]
            )?;
            for response in &responses {
                writeln!(out, "---")?;
                write!(
                    out,
                    "{}",
                    serde_saphyr::to_string(&response.patched).context("resource as YAML")?
                )?;
            }
        }
    }
    Ok(if failed { EXIT_FAILED } else { EXIT_OK })
}

/// One entry per policy/rule/resource.
fn results(responses: &[EngineResponse]) -> Vec<Value> {
    let mut results = Vec::new();
    for response in responses {
        for policy in &response.policies {
            for rule in &policy.rules {
                results.push(json!({
                    "policy": policy.policy,
                    "rule": rule.name,
                    "resource": response.resource.display(),
                    "result": rule.status.as_str(),
                    "message": rule.message,
                }));
            }
        }
    }
    results
}

fn summary(responses: &[EngineResponse]) -> Value {
    let mut counts = [0usize; 5];
    for rule in responses
        .iter()
        .flat_map(|r| &r.policies)
        .flat_map(|p| &p.rules)
    {
        let index = match rule.status {
            RuleStatus::Pass => 0,
            RuleStatus::Fail => 1,
            RuleStatus::Warn => 2,
            RuleStatus::Error => 3,
            RuleStatus::Skip => 4,
        };
        counts[index] += 1;
    }
    json!({"pass": counts[0], "fail": counts[1], "warn": counts[2], "error": counts[3], "skip": counts[4]})
}

/// A wgpolicyk8s `ClusterPolicyReport` of every result, as `kyverno apply --policy-report`.
fn policy_report(responses: &[EngineResponse]) -> Value {
    let mut results = Vec::new();
    for response in responses {
        for policy in &response.policies {
            for rule in &policy.rules {
                let mut resource = json!({
                    "apiVersion": response.resource.api_version,
                    "kind": response.resource.kind,
                    "name": response.resource.name,
                });
                if !response.resource.namespace.is_empty() {
                    resource["namespace"] = json!(response.resource.namespace);
                }
                results.push(json!({
                    "policy": policy.policy,
                    "rule": rule.name,
                    "result": rule.status.as_str(),
                    "message": rule.message,
                    "scored": true,
                    "source": "imagegate",
                    "resources": [resource],
                }));
            }
        }
    }
    json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "ClusterPolicyReport",
        "metadata": {"name": "merged"},
        "results": results,
        "summary": summary(responses),
    })
}
