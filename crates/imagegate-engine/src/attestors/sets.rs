//! Attestor sets (N of M, nested) and attestation checks with their conditions, over
//! the single entries of [`super::entry`].

use std::collections::BTreeMap;

use futures::FutureExt as _;
use futures::future::{BoxFuture, join_all};
use imagegate_policy::conditions::{self, Context};
use imagegate_policy::model::{AttestationCheck, Attestor, AttestorSet};

use super::entry::{attestation_statements, split_pem_blocks, verify_entry};
use super::{AttestorFailure, ImageSubject};
use crate::fetch::Verifier;

/// Verifies every attestor set of the entry (all sets must be satisfied).
pub async fn verify_attestors(
    verifier: &Verifier,
    subject: &ImageSubject<'_>,
) -> Result<(), AttestorFailure> {
    for (i, set) in subject.verification.attestors.iter().enumerate() {
        verify_set(verifier, subject, set, format!(".attestors[{i}]")).await?;
    }
    Ok(())
}

/// Verifies every attestation check of the entry: its attestors made attestations of
/// the type, and every such statement satisfies the conditions.
pub async fn verify_attestations(
    verifier: &Verifier,
    subject: &ImageSubject<'_>,
    image_display: &str,
    context: &Context,
) -> Result<(), AttestorFailure> {
    for (i, check) in subject.verification.attestations.iter().enumerate() {
        let predicate_type = check
            .type_
            .as_deref()
            .or(check.predicate_type.as_deref())
            .unwrap_or_default();
        let path = format!(".attestations[{i}]");
        if predicate_type.is_empty() {
            return Err(AttestorFailure::config(&path, "a type is required"));
        }
        for (j, set) in check.attestors.iter().enumerate() {
            verify_attestation_set(
                verifier,
                subject,
                check,
                predicate_type,
                set,
                &format!("{path}.attestors[{j}]"),
                image_display,
                context,
            )
            .await?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn verify_attestation_set(
    verifier: &Verifier,
    subject: &ImageSubject<'_>,
    check: &AttestationCheck,
    predicate_type: &str,
    set: &AttestorSet,
    path: &str,
    image_display: &str,
    context: &Context,
) -> Result<(), AttestorFailure> {
    let entries = expand_static_keys(set);
    let required = required_count(set, entries.len());
    let mut verified = 0;
    let mut errors = Vec::new();
    for (k, entry) in entries.iter().enumerate() {
        let entry_path = format!("{path}.entries[{k}]");
        let (kind_path, statements) =
            match attestation_statements(verifier, subject, entry, predicate_type, &entry_path)
                .await
            {
                Ok(found) => found,
                Err(failure) => {
                    errors.push(failure);
                    continue;
                }
            };
        for statement in &statements {
            let predicate = statement.predicate.clone();
            let scoped = match predicate {
                serde_json::Value::Object(map) => context.with_entries(map),
                _ => context.clone(),
            };
            match conditions::evaluate(&check.conditions, &scoped) {
                Ok(result) if result.passed => {}
                Ok(result) => {
                    return Err(AttestorFailure::ConditionsFailed {
                        path: kind_path,
                        image: image_display.to_owned(),
                        predicate_type: predicate_type.to_owned(),
                        message: result.message.unwrap_or_default(),
                    });
                }
                Err(e) => {
                    return Err(AttestorFailure::config(
                        &kind_path,
                        format!("failed to check attestations: {e}"),
                    ));
                }
            }
        }
        verified += 1;
        if verified >= required {
            return Ok(());
        }
    }
    let mut message = format!(
        "image attestations verification failed, verifiedCount: {verified}, requiredCount: {required}"
    );
    if !errors.is_empty() {
        message.push_str(": ");
        message.push_str(&join_messages(&errors));
    }
    Err(AttestorFailure::Unsatisfied {
        message,
        cause: AttestorFailure::cause_of_all(&errors),
    })
}

/// One attestor set: `count` of its (expanded) entries must verify.
fn verify_set<'a>(
    verifier: &'a Verifier,
    subject: &'a ImageSubject<'a>,
    set: &'a AttestorSet,
    path: String,
) -> BoxFuture<'a, Result<(), AttestorFailure>> {
    async move {
        let entries = expand_static_keys(set);
        let required = required_count(set, entries.len());
        // Entries are independent: verify them concurrently (their evidence fetches are
        // coalesced, so entries sharing a repository cost one fetch).
        let outcomes = join_all(entries.iter().enumerate().map(|(i, entry)| {
            let entry_path = format!("{path}.entries[{i}]");
            async move {
                match entry.attestor.as_deref() {
                    Some(nested) => {
                        verify_set(verifier, subject, nested, format!("{entry_path}.attestor")).await
                    }
                    None => verify_entry(verifier, subject, entry, &entry_path).await,
                }
            }
        }))
        .await;
        let verified = outcomes.iter().filter(|o| o.is_ok()).count();
        if verified >= required {
            return Ok(());
        }
        let errors: Vec<AttestorFailure> = outcomes.into_iter().filter_map(Result::err).collect();
        let cause = AttestorFailure::cause_of_all(&errors);
        let mut message = join_messages(&errors);
        if required < entries.len() {
            message = format!(
                "{path}: image verification failed, verifiedCount: {verified}, requiredCount: {required}: {message}"
            );
        }
        Err(AttestorFailure::Unsatisfied { message, cause })
    }
    .boxed()
}

/// Kyverno counts every key of a multi-key PEM as its own entry.
fn expand_static_keys(set: &AttestorSet) -> Vec<Attestor> {
    let mut entries = Vec::with_capacity(set.entries.len());
    for entry in &set.entries {
        let blocks = entry
            .keys
            .as_ref()
            .and_then(|k| k.public_keys.as_deref())
            .map(split_pem_blocks)
            .unwrap_or_default();
        if blocks.len() > 1 {
            for block in blocks {
                let mut single = entry.clone();
                if let Some(keys) = single.keys.as_mut() {
                    keys.public_keys = Some(block);
                }
                entries.push(single);
            }
        } else {
            entries.push(entry.clone());
        }
    }
    entries
}

fn required_count(set: &AttestorSet, expanded: usize) -> usize {
    match set.count {
        Some(n) if n > 0 => n,
        _ => expanded,
    }
}

fn join_messages(errors: &[AttestorFailure]) -> String {
    let mut seen = BTreeMap::new();
    for (i, e) in errors.iter().enumerate() {
        seen.entry(e.to_string()).or_insert(i);
    }
    let mut ordered: Vec<(usize, String)> = seen.into_iter().map(|(m, i)| (i, m)).collect();
    ordered.sort();
    ordered
        .into_iter()
        .map(|(_, m)| m)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_key_pem_counts_as_several_entries() {
        // Bodies need only be well-formed PEM here; they are not parsed as keys.
        let pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n-----BEGIN PUBLIC KEY-----\nBBBB\n-----END PUBLIC KEY-----\n";
        let set: AttestorSet = serde_json::from_value(serde_json::json!({
            "entries": [{"keys": {"publicKeys": pem}}, {"keys": {"publicKeys": "x"}}]
        }))
        .unwrap();
        let expanded = expand_static_keys(&set);
        assert_eq!(expanded.len(), 3);
        assert_eq!(required_count(&set, expanded.len()), 3);
        assert!(
            expanded[1]
                .keys
                .as_ref()
                .unwrap()
                .public_keys
                .as_deref()
                .unwrap()
                .contains("BBBB")
        );
    }
}
