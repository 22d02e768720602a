//! `imagegate audit`: the images of the workloads running in a cluster verified against
//! the cluster's policies (or given ones), read-only — what would happen if the policies
//! enforced. Exit 1 when a workload fails a rule (it would be denied under Enforce) or
//! would be denied as the policies stand.

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use imagegate_engine::{AdmissionInput, EngineResponse, ResourceId, RuleStatus};
use imagegate_kube::{Cluster, NamespaceLabels, PolicyWatch, list_workloads};
use imagegate_policy::matching::MatchContext;
use serde::Serialize;
use serde_json::{Value, json};

use super::{EXIT_FAILED, EXIT_OK};
use crate::cli::{AuditArgs, AuditOutput};

/// Deadline of each LIST page and of the first complete list of the cluster's
/// policies and namespaces.
const API_DEADLINE: Duration = Duration::from_secs(30);

/// One row of the audit: a workload, one image, one rule.
#[derive(Debug, Serialize)]
struct Row {
    namespace: String,
    workload: String,
    image: String,
    digest: String,
    policy: String,
    rule: String,
    result: RuleStatus,
    message: String,
}

/// Audits the cluster's workloads.
pub async fn run(args: AuditArgs) -> anyhow::Result<u8> {
    let cluster = Cluster::connect(args.kubeconfig.as_deref()).await?;
    let namespaces = NamespaceLabels::start(cluster.client.clone());
    let policies = if args.policy.is_empty() {
        let watch = PolicyWatch::start_read_only(cluster.client.clone());
        watch
            .wait_ready(API_DEADLINE)
            .await
            .context("reading the cluster's policies")?;
        crate::resources::load_exceptions(&args.exception)?.add_to(watch.current().to_engine())
    } else {
        crate::resources::load_with_exceptions(&args.policy, &args.exception, &[])?
    };
    if policies.is_empty() {
        anyhow::bail!("no policy to audit against (none in the cluster, none given with --policy)");
    }
    namespaces
        .wait_ready(API_DEADLINE)
        .await
        .context("reading the cluster's namespaces")?;
    let workloads = list_workloads(&cluster.client, API_DEADLINE).await?;
    let engine = crate::engine::build(
        &args.registry.engine_config(&args.trust),
        Default::default(),
    )?;

    let progress = std::io::stderr().is_terminal();
    let total = workloads.len();
    let mut done = 0usize;
    let mut responses: Vec<(Value, EngineResponse)> = Vec::with_capacity(total);
    let mut evaluations = futures::stream::iter(workloads.into_iter().map(|workload| {
        let namespace = workload
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let context = MatchContext {
            namespace_labels: namespaces.labels(namespace).map(|l| (*l).clone()),
            ..MatchContext::default()
        };
        let input = AdmissionInput::for_resource(workload.clone(), context);
        let (engine, policies) = (&engine, &policies);
        async move { (workload, engine.evaluate_both(policies, &input).await) }
    }))
    .buffer_unordered(args.concurrency.max(1));
    while let Some(evaluated) = evaluations.next().await {
        done += 1;
        if progress {
            eprint!("\raudited {done}/{total} workloads");
        }
        responses.push(evaluated);
    }
    if progress {
        eprintln!();
    }
    responses.sort_by_key(|(_, r)| (r.resource.namespace.clone(), r.resource.display()));

    let rows: Vec<Row> = responses.iter().flat_map(|(_, r)| rows(r)).collect();
    let denied = responses.iter().any(|(_, r)| {
        r.blocked()
            || r.policies
                .iter()
                .flat_map(|p| &p.rules)
                .any(|rule| matches!(rule.status, RuleStatus::Fail | RuleStatus::Warn))
    });
    let mut out = std::io::stdout().lock();
    match args.output {
        AuditOutput::Json => {
            let mut summary =
                json!({"workloads": total, "pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0});
            for row in &rows {
                let key = row.result.as_str();
                summary[key] = json!(summary[key].as_u64().unwrap_or(0) + 1);
            }
            let document = json!({"results": rows, "summary": summary});
            writeln!(out, "{}", serde_json::to_string_pretty(&document)?)?;
        }
        AuditOutput::Table => print_table(&mut out, &rows, total)?,
    }
    Ok(if denied { EXIT_FAILED } else { EXIT_OK })
}

/// The rows of one workload: per rule, one per image it checked (or one without image).
fn rows(response: &EngineResponse) -> Vec<Row> {
    let id: &ResourceId = &response.resource;
    let mut rows = Vec::new();
    for policy in &response.policies {
        let policy_key = match &policy.namespace {
            Some(ns) => format!("{ns}/{}", policy.policy),
            None => policy.policy.clone(),
        };
        for rule in &policy.rules {
            if rule.rule_type == imagegate_engine::response::UNSUPPORTED {
                continue;
            }
            let row = |image: &str, digest: &str| Row {
                namespace: id.namespace.clone(),
                workload: format!("{}/{}", id.kind, id.name),
                image: image.to_owned(),
                digest: digest.to_owned(),
                policy: policy_key.clone(),
                rule: rule.name.clone(),
                result: rule.status,
                message: rule.message.clone(),
            };
            if rule.images.is_empty() {
                rows.push(row("", ""));
            }
            for image in &rule.images {
                rows.push(row(&image.image, image.digest.as_deref().unwrap_or("")));
            }
        }
    }
    rows
}

fn print_table(
    out: &mut impl std::io::Write,
    rows: &[Row],
    workloads: usize,
) -> anyhow::Result<()> {
    let header = [
        "NAMESPACE",
        "WORKLOAD",
        "IMAGE",
        "DIGEST",
        "POLICY/RULE",
        "RESULT",
        "MESSAGE",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                dash(&r.namespace),
                r.workload.clone(),
                dash(&r.image),
                dash(&r.digest),
                format!("{}/{}", r.policy, r.rule),
                r.result.as_str().to_owned(),
                r.message.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        text
    };
    writeln!(out, "{}", line(&header.map(str::to_owned)))?;
    for row in &cells {
        writeln!(out, "{}", line(row))?;
    }
    let count = |status: RuleStatus| rows.iter().filter(|r| r.result == status).count();
    writeln!(
        out,
        "\n{workloads} workloads; pass: {}, fail: {}, warn: {}, error: {}, skip: {}",
        count(RuleStatus::Pass),
        count(RuleStatus::Fail),
        count(RuleStatus::Warn),
        count(RuleStatus::Error),
        count(RuleStatus::Skip),
    )?;
    Ok(())
}

fn dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}
