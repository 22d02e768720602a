//! The pure part of the policy reflector: watcher events in, the published policy set and
//! the status conditions to write out. No I/O, so every transition is unit-tested.
//!
//! Rules: a valid object replaces the loaded version of that policy; an invalid one keeps
//! the previous version (if any) and is reported; a complete re-list (after 410 Gone)
//! replaces all policies of that kind at once, keeping previous versions of ones that are
//! now invalid; a delete removes. A status write is asked for only when the object's
//! `Ready` condition does not already say the same (so our own writes do not loop).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use imagegate_policy::load::load_policies;
use imagegate_policy::model::Policy;
use serde_json::Value;

/// Which of the two watched kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `kyverno.io/v1` ClusterPolicy.
    ClusterPolicy,
    /// `kyverno.io/v1` Policy (namespaced).
    Policy,
}

impl Kind {
    /// The `kind` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ClusterPolicy => "ClusterPolicy",
            Kind::Policy => "Policy",
        }
    }
}

/// Identity of a watched policy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyKey {
    /// ClusterPolicy or Policy.
    pub kind: Kind,
    /// Namespace (empty for a ClusterPolicy).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl PolicyKey {
    /// The key of an object of `kind`, `None` without a name.
    pub fn of(kind: Kind, obj: &Value) -> Option<PolicyKey> {
        let meta = obj.get("metadata")?;
        Some(PolicyKey {
            kind,
            namespace: meta
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            name: meta.get("name")?.as_str()?.to_owned(),
        })
    }
}

impl std::fmt::Display for PolicyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            Kind::ClusterPolicy => write!(f, "ClusterPolicy/{}", self.name),
            Kind::Policy => write!(f, "Policy/{}/{}", self.namespace, self.name),
        }
    }
}

/// The loaded policies, published as one immutable value (swapped atomically).
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    policies: BTreeMap<PolicyKey, Arc<Policy>>,
    /// Objects whose current version is invalid, with the validation error (a
    /// previous version may still be in `policies`).
    invalid: BTreeMap<PolicyKey, String>,
}

impl PolicySet {
    /// The loaded version of one policy.
    pub fn get(&self, key: &PolicyKey) -> Option<&Arc<Policy>> {
        self.policies.get(key)
    }

    /// All loaded policies in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&PolicyKey, &Arc<Policy>)> {
        self.policies.iter()
    }

    /// How many are loaded.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// Whether none is loaded.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// The objects whose current version is invalid, with why (for metrics).
    pub fn invalid(&self) -> impl Iterator<Item = (&PolicyKey, &String)> {
        self.invalid.iter()
    }
}

/// A `Ready` condition to write on an object's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusWrite {
    /// The object.
    pub key: PolicyKey,
    /// `True` or `False`.
    pub ready: bool,
    /// `Loaded` or `Invalid`.
    pub reason: &'static str,
    /// What imagegate made of it (the validation errors when invalid).
    pub message: String,
}

/// Validates one API object with the same loader as policy files.
pub fn load_object(key: &PolicyKey, obj: &Value) -> Result<Policy, String> {
    let text = obj.to_string();
    let mut policies = load_policies(&text, &key.to_string()).map_err(|e| e.to_string())?;
    match (policies.pop(), policies.is_empty()) {
        (Some(p), true) => Ok(p),
        _ => Err(format!("{key}: expected exactly one policy")),
    }
}

/// Whether the object's `status.conditions` already carry this Ready condition.
fn already_reported(obj: &Value, ready: bool, reason: &str, message: &str) -> bool {
    let want = if ready { "True" } else { "False" };
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c["type"] == "Ready"
                && c["status"] == want
                && c["reason"] == reason
                && c["message"] == message
        })
}

/// The reflector's state between events.
#[derive(Debug, Default)]
pub struct Reflector {
    set: PolicySet,
    /// Objects of a re-list in progress, per kind.
    relisting: BTreeMap<Kind, BTreeMap<PolicyKey, Arc<Policy>>>,
    /// Kinds whose first complete list has arrived.
    listed: Vec<Kind>,
    /// Every object seen by the re-lists in progress (valid or not).
    relisted: BTreeSet<PolicyKey>,
}

/// What one event changed.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The set changed and must be published.
    pub changed: bool,
    /// Status conditions to write.
    pub status: Vec<StatusWrite>,
    /// Invalid policies seen (key, error), for logs and metrics.
    pub invalid: Vec<(PolicyKey, String)>,
}

impl Reflector {
    /// The current set.
    pub fn set(&self) -> &PolicySet {
        &self.set
    }

    /// Whether both kinds have been listed completely at least once.
    pub fn ready(&self) -> bool {
        self.listed.contains(&Kind::ClusterPolicy) && self.listed.contains(&Kind::Policy)
    }

    /// Validates `obj`; returns the policy to hold under its key (new or previous).
    fn admit(
        &mut self,
        kind: Kind,
        obj: &Value,
        out: &mut Outcome,
    ) -> Option<(PolicyKey, Option<Arc<Policy>>)> {
        let key = PolicyKey::of(kind, obj)?;
        match load_object(&key, obj) {
            Ok(policy) => {
                let message = format!("loaded by imagegate ({} rules)", policy.spec.rules.len());
                if !already_reported(obj, true, "Loaded", &message) {
                    out.status.push(StatusWrite {
                        key: key.clone(),
                        ready: true,
                        reason: "Loaded",
                        message,
                    });
                }
                out.changed |= self.set.invalid.remove(&key).is_some();
                Some((key, Some(Arc::new(policy))))
            }
            Err(error) => {
                if !already_reported(obj, false, "Invalid", &error) {
                    out.status.push(StatusWrite {
                        key: key.clone(),
                        ready: false,
                        reason: "Invalid",
                        message: error.clone(),
                    });
                }
                if self.set.invalid.get(&key) != Some(&error) {
                    self.set.invalid.insert(key.clone(), error.clone());
                    out.changed = true;
                }
                out.invalid.push((key.clone(), error));
                let previous = self.set.policies.get(&key).cloned();
                Some((key, previous))
            }
        }
    }

    /// A re-list of `kind` begins.
    pub fn init(&mut self, kind: Kind) {
        self.relisting.insert(kind, BTreeMap::new());
        self.relisted.retain(|k| k.kind != kind);
    }

    /// One object of a re-list.
    pub fn init_apply(&mut self, kind: Kind, obj: &Value) -> Outcome {
        let mut out = Outcome::default();
        match self.admit(kind, obj, &mut out) {
            Some((key, Some(policy))) => {
                self.relisted.insert(key.clone());
                self.relisting.entry(kind).or_default().insert(key, policy);
            }
            Some((key, None)) => {
                self.relisted.insert(key);
            }
            None => {}
        }
        out
    }

    /// The re-list of `kind` is complete: its policies are replaced at once.
    pub fn init_done(&mut self, kind: Kind) -> Outcome {
        let listed = self.relisting.remove(&kind).unwrap_or_default();
        self.set.policies.retain(|k, _| k.kind != kind);
        self.set.policies.extend(listed);
        let relisted = std::mem::take(&mut self.relisted);
        let (seen, others): (BTreeSet<PolicyKey>, BTreeSet<PolicyKey>) =
            relisted.into_iter().partition(|k| k.kind == kind);
        self.relisted = others;
        self.set
            .invalid
            .retain(|k, _| k.kind != kind || seen.contains(k));
        if !self.listed.contains(&kind) {
            self.listed.push(kind);
        }
        Outcome {
            changed: true,
            ..Outcome::default()
        }
    }

    /// An object was added or modified.
    pub fn apply(&mut self, kind: Kind, obj: &Value) -> Outcome {
        let mut out = Outcome::default();
        if let Some((key, Some(p))) = self.admit(kind, obj, &mut out) {
            let same = self
                .set
                .policies
                .get(&key)
                .is_some_and(|old| Arc::ptr_eq(old, &p) || **old == *p);
            if !same {
                self.set.policies.insert(key, p);
                out.changed = true;
            }
        }
        out
    }

    /// An object was deleted.
    pub fn delete(&mut self, kind: Kind, obj: &Value) -> Outcome {
        let changed = PolicyKey::of(kind, obj).is_some_and(|k| {
            let invalid = self.set.invalid.remove(&k).is_some();
            self.set.policies.remove(&k).is_some() || invalid
        });
        Outcome {
            changed,
            ..Outcome::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(name: &str, action: &str) -> Value {
        json!({
            "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
            "metadata": {"name": name},
            "spec": {"validationFailureAction": action, "rules": [{
                "name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "verifyImages": [{"imageReferences": ["*"], "mutateDigest": false, "attestors": [{"entries": [{"keys": {"publicKeys": "k8s://ns/key"}}]}]}]
            }]}
        })
    }

    #[test]
    fn invalid_update_keeps_previous_and_reports() {
        let mut r = Reflector::default();
        r.init(Kind::ClusterPolicy);
        let out = r.init_apply(Kind::ClusterPolicy, &policy("p", "Enforce"));
        assert!(out.status[0].ready);
        r.init_done(Kind::ClusterPolicy);
        assert!(!r.ready());
        r.init(Kind::Policy);
        r.init_done(Kind::Policy);
        assert!(r.ready());
        let key = PolicyKey {
            kind: Kind::ClusterPolicy,
            namespace: String::new(),
            name: "p".into(),
        };
        let before = r.set().get(&key).cloned().unwrap();

        let out = r.apply(Kind::ClusterPolicy, &policy("p", "Sometimes"));
        // Published for the invalid-policy metric; the policy itself is unchanged.
        assert!(out.changed);
        assert_eq!(r.set().invalid().count(), 1);
        assert_eq!(out.status.len(), 1);
        assert!(!out.status[0].ready);
        assert!(
            out.status[0].message.contains("validationFailureAction"),
            "{}",
            out.status[0].message
        );
        assert!(Arc::ptr_eq(r.set().get(&key).unwrap(), &before));

        // A re-list with the invalid version still keeps the previous one.
        r.init(Kind::ClusterPolicy);
        r.init_apply(Kind::ClusterPolicy, &policy("p", "Sometimes"));
        r.init_done(Kind::ClusterPolicy);
        assert!(Arc::ptr_eq(r.set().get(&key).unwrap(), &before));

        assert_eq!(r.set().invalid().count(), 1);
        let out = r.apply(Kind::ClusterPolicy, &policy("p", "Audit"));
        assert!(out.changed && out.status[0].ready, "{out:?}");
        assert_eq!(r.set().invalid().count(), 0);
        assert!(r.delete(Kind::ClusterPolicy, &policy("p", "Audit")).changed);
        assert!(r.set().is_empty());
    }

    #[test]
    fn status_already_written_is_not_written_again() {
        let mut r = Reflector::default();
        let mut obj = policy("p", "Enforce");
        let first = r.apply(Kind::ClusterPolicy, &obj);
        let w = &first.status[0];
        obj["status"] = json!({"conditions": [{"type": "Ready", "status": "True", "reason": w.reason, "message": w.message}]});
        let again = r.apply(Kind::ClusterPolicy, &obj);
        assert!(again.status.is_empty() && !again.changed);
    }

    #[test]
    fn relist_drops_policies_deleted_meanwhile() {
        let mut r = Reflector::default();
        r.apply(Kind::ClusterPolicy, &policy("a", "Enforce"));
        r.apply(Kind::ClusterPolicy, &policy("b", "Enforce"));
        r.init(Kind::ClusterPolicy);
        r.init_apply(Kind::ClusterPolicy, &policy("b", "Audit"));
        assert!(r.init_done(Kind::ClusterPolicy).changed);
        let names: Vec<&str> = r.set().iter().map(|(k, _)| k.name.as_str()).collect();
        assert_eq!(names, ["b"]);
    }
}
