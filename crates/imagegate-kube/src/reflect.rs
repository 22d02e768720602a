//! The pure part of the policy reflector: watcher events in, the published policy set and
//! the status conditions to write out. No I/O, so every transition is unit-tested.
//!
//! One reflector for every kind imagegate reads from the API ([`Kind`]): `kyverno.io/v1`
//! ClusterPolicy and Policy, `policies.kyverno.io` (Namespaced)ImageValidatingPolicy, and
//! the PolicyExceptions of both groups. Each object is validated (CEL compiled) by the
//! same loader as policy files.
//!
//! Rules: a valid object replaces the loaded version of that object; an invalid one keeps
//! the previous version (if any) and is reported; a complete re-list (after 410 Gone)
//! replaces all objects of that kind at once, keeping previous versions of ones that are
//! now invalid; a delete removes; a kind the API does not serve (its CRD is not
//! installed) counts as listed and empty. A status write is asked for only for kinds with
//! a status and only when the object's `Ready` condition does not already say the same
//! (so our own writes do not loop).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use imagegate_policy::exception::PolicyException;
use imagegate_policy::ivp::{CompiledCelException, CompiledIvp};
use imagegate_policy::load::load_documents;
use imagegate_policy::model::Policy;
use serde_json::Value;

/// The kinds watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `kyverno.io/v1` ClusterPolicy.
    ClusterPolicy,
    /// `kyverno.io/v1` Policy (namespaced).
    Policy,
    /// `policies.kyverno.io` ImageValidatingPolicy.
    ImageValidatingPolicy,
    /// `policies.kyverno.io` NamespacedImageValidatingPolicy.
    NamespacedImageValidatingPolicy,
    /// `kyverno.io/v2` (and `v2beta1`) PolicyException, for ClusterPolicy/Policy rules.
    PolicyException,
    /// `policies.kyverno.io` PolicyException, for ImageValidatingPolicies.
    CelPolicyException,
}

impl Kind {
    /// Every kind, in the order they are listed.
    pub const ALL: [Kind; 6] = [
        Kind::ClusterPolicy,
        Kind::Policy,
        Kind::ImageValidatingPolicy,
        Kind::NamespacedImageValidatingPolicy,
        Kind::PolicyException,
        Kind::CelPolicyException,
    ];

    /// The `kind` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ClusterPolicy => "ClusterPolicy",
            Kind::Policy => "Policy",
            Kind::ImageValidatingPolicy => imagegate_policy::ivp::KIND_CLUSTER,
            Kind::NamespacedImageValidatingPolicy => imagegate_policy::ivp::KIND_NAMESPACED,
            Kind::PolicyException | Kind::CelPolicyException => "PolicyException",
        }
    }

    /// The API group.
    pub fn group(self) -> &'static str {
        match self {
            Kind::ClusterPolicy | Kind::Policy | Kind::PolicyException => "kyverno.io",
            Kind::ImageValidatingPolicy
            | Kind::NamespacedImageValidatingPolicy
            | Kind::CelPolicyException => "policies.kyverno.io",
        }
    }

    /// The version watched: the storage version of Kyverno's CRDs (served by every
    /// Kyverno release that has the kind, and by imagegate's own CRDs).
    pub fn version(self) -> &'static str {
        match self {
            Kind::ClusterPolicy | Kind::Policy => "v1",
            Kind::PolicyException => "v2",
            Kind::ImageValidatingPolicy
            | Kind::NamespacedImageValidatingPolicy
            | Kind::CelPolicyException => "v1beta1",
        }
    }

    /// The resource (plural).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::ClusterPolicy => "clusterpolicies",
            Kind::Policy => "policies",
            Kind::ImageValidatingPolicy => "imagevalidatingpolicies",
            Kind::NamespacedImageValidatingPolicy => "namespacedimagevalidatingpolicies",
            Kind::PolicyException | Kind::CelPolicyException => "policyexceptions",
        }
    }

    /// Whether objects of the kind live in namespaces.
    pub fn namespaced(self) -> bool {
        !matches!(self, Kind::ClusterPolicy | Kind::ImageValidatingPolicy)
    }

    /// Whether imagegate reports on the object's status (policies have one, exceptions
    /// do not).
    pub fn has_status(self) -> bool {
        !self.is_exception()
    }

    /// Whether the kind is a PolicyException of either group.
    pub fn is_exception(self) -> bool {
        matches!(self, Kind::PolicyException | Kind::CelPolicyException)
    }

    /// Where the kind keeps its conditions: Kyverno's `status.conditions` for
    /// `kyverno.io` policies, `status.conditionStatus` for `policies.kyverno.io` ones.
    fn conditions_pointer(self) -> &'static str {
        match self {
            Kind::ImageValidatingPolicy | Kind::NamespacedImageValidatingPolicy => {
                "/status/conditionStatus/conditions"
            }
            _ => "/status/conditions",
        }
    }
}

/// Identity of a watched object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyKey {
    /// Its kind.
    pub kind: Kind,
    /// Namespace (empty for a cluster-wide kind).
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
                .filter(|_| kind.namespaced())
                .unwrap_or("")
                .to_owned(),
            name: meta.get("name")?.as_str()?.to_owned(),
        })
    }
}

impl std::fmt::Display for PolicyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Kind::PolicyException => "PolicyException.kyverno.io",
            Kind::CelPolicyException => "PolicyException.policies.kyverno.io",
            other => other.as_str(),
        };
        if self.namespace.is_empty() {
            write!(f, "{kind}/{}", self.name)
        } else {
            write!(f, "{kind}/{}/{}", self.namespace, self.name)
        }
    }
}

/// One loaded object.
#[derive(Debug, Clone, PartialEq)]
pub enum Loaded {
    /// A ClusterPolicy or Policy.
    Policy(Arc<Policy>),
    /// An ImageValidatingPolicy or NamespacedImageValidatingPolicy, compiled.
    ImageValidating(Arc<CompiledIvp>),
    /// A `kyverno.io` PolicyException.
    Exception(Arc<PolicyException>),
    /// A `policies.kyverno.io` PolicyException, compiled.
    CelException(Arc<CompiledCelException>),
}

impl Loaded {
    /// Whether both are the same object (one `Arc`) or equal.
    fn same(&self, other: &Loaded) -> bool {
        match (self, other) {
            (Loaded::Policy(a), Loaded::Policy(b)) => Arc::ptr_eq(a, b) || a == b,
            (Loaded::ImageValidating(a), Loaded::ImageValidating(b)) => Arc::ptr_eq(a, b) || a == b,
            (Loaded::Exception(a), Loaded::Exception(b)) => Arc::ptr_eq(a, b) || a == b,
            (Loaded::CelException(a), Loaded::CelException(b)) => Arc::ptr_eq(a, b) || a == b,
            _ => false,
        }
    }

    /// A short account for the Ready condition's message.
    fn summary(&self) -> String {
        match self {
            Loaded::Policy(p) => format!("loaded by imagegate ({} rules)", p.spec.rules.len()),
            Loaded::ImageValidating(p) => format!(
                "loaded by imagegate ({} validations, {} attestors)",
                p.policy.spec.validations.len(),
                p.policy.spec.attestors.len()
            ),
            Loaded::Exception(_) | Loaded::CelException(_) => "loaded by imagegate".to_owned(),
        }
    }
}

/// The loaded objects, published as one immutable value (swapped atomically).
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    loaded: BTreeMap<PolicyKey, Loaded>,
    /// Objects whose current version is invalid, with the validation error (a
    /// previous version may still be in `loaded`).
    invalid: BTreeMap<PolicyKey, String>,
}

impl PolicySet {
    /// The loaded version of one ClusterPolicy or Policy.
    pub fn get(&self, key: &PolicyKey) -> Option<&Arc<Policy>> {
        match self.loaded.get(key)? {
            Loaded::Policy(p) => Some(p),
            _ => None,
        }
    }

    /// The loaded version of any object.
    pub fn get_loaded(&self, key: &PolicyKey) -> Option<&Loaded> {
        self.loaded.get(key)
    }

    /// The ClusterPolicies and Policies in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&PolicyKey, &Arc<Policy>)> {
        self.loaded.iter().filter_map(|(k, l)| match l {
            Loaded::Policy(p) => Some((k, p)),
            _ => None,
        })
    }

    /// The ImageValidatingPolicies and NamespacedImageValidatingPolicies in key order.
    pub fn image_validating(&self) -> impl Iterator<Item = (&PolicyKey, &Arc<CompiledIvp>)> {
        self.loaded.iter().filter_map(|(k, l)| match l {
            Loaded::ImageValidating(p) => Some((k, p)),
            _ => None,
        })
    }

    /// The `kyverno.io` PolicyExceptions in key order.
    pub fn exceptions(&self) -> impl Iterator<Item = (&PolicyKey, &Arc<PolicyException>)> {
        self.loaded.iter().filter_map(|(k, l)| match l {
            Loaded::Exception(e) => Some((k, e)),
            _ => None,
        })
    }

    /// The `policies.kyverno.io` PolicyExceptions in key order.
    pub fn cel_exceptions(&self) -> impl Iterator<Item = (&PolicyKey, &Arc<CompiledCelException>)> {
        self.loaded.iter().filter_map(|(k, l)| match l {
            Loaded::CelException(e) => Some((k, e)),
            _ => None,
        })
    }

    /// The set as the engine evaluates it: policies prepared, exceptions attached.
    pub fn to_engine(&self) -> imagegate_engine::PolicySet {
        imagegate_engine::PolicySet::new(self.iter().map(|(_, p)| p.as_ref().clone()).collect())
            .with_exceptions(self.exceptions().map(|(_, e)| e.as_ref().clone()))
            .with_cel_exceptions(self.cel_exceptions().map(|(_, e)| Arc::clone(e)))
            .with_image_validating(self.image_validating().map(|(_, p)| p.as_ref().clone()))
    }

    /// How many objects (of every kind) are loaded.
    pub fn len(&self) -> usize {
        self.loaded.len()
    }

    /// Whether none is loaded.
    pub fn is_empty(&self) -> bool {
        self.loaded.is_empty()
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

/// Validates one API object of `key.kind` with the same loader as policy files.
pub fn load_object(key: &PolicyKey, obj: &Value) -> Result<Loaded, String> {
    let text = obj.to_string();
    let loaded = load_documents(&text, &key.to_string()).map_err(|e| e.to_string())?;
    let mut found: Vec<Loaded> = match key.kind {
        Kind::ClusterPolicy | Kind::Policy => loaded
            .policies
            .into_iter()
            .map(|p| Loaded::Policy(Arc::new(p)))
            .collect(),
        Kind::ImageValidatingPolicy | Kind::NamespacedImageValidatingPolicy => loaded
            .image_validating
            .into_iter()
            .map(|p| Loaded::ImageValidating(Arc::new(p)))
            .collect(),
        Kind::PolicyException => loaded
            .exceptions
            .into_iter()
            .map(|e| Loaded::Exception(Arc::new(e)))
            .collect(),
        Kind::CelPolicyException => loaded
            .cel_exceptions
            .into_iter()
            .map(|e| Loaded::CelException(Arc::new(e)))
            .collect(),
    };
    match (found.pop(), found.is_empty()) {
        (Some(one), true) => Ok(one),
        _ => Err(format!("{key}: expected exactly one {}", key.kind.as_str())),
    }
}

/// Whether the object's conditions already carry this Ready condition.
fn already_reported(kind: Kind, obj: &Value, ready: bool, reason: &str, message: &str) -> bool {
    let want = if ready { "True" } else { "False" };
    obj.pointer(kind.conditions_pointer())
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
#[derive(Debug)]
pub struct Reflector {
    set: PolicySet,
    /// The kinds watched (readiness waits for each one's first list).
    kinds: Vec<Kind>,
    /// Objects of a re-list in progress, per kind.
    relisting: BTreeMap<Kind, BTreeMap<PolicyKey, Loaded>>,
    /// Kinds whose first complete list has arrived.
    listed: Vec<Kind>,
    /// Every object seen by the re-lists in progress (valid or not).
    relisted: BTreeSet<PolicyKey>,
}

impl Default for Reflector {
    /// A reflector of every kind.
    fn default() -> Self {
        Reflector::new(&Kind::ALL)
    }
}

/// What one event changed.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The set changed and must be published.
    pub changed: bool,
    /// Status conditions to write.
    pub status: Vec<StatusWrite>,
    /// Invalid objects seen (key, error), for logs and metrics.
    pub invalid: Vec<(PolicyKey, String)>,
}

impl Reflector {
    /// A reflector of `kinds`.
    pub fn new(kinds: &[Kind]) -> Reflector {
        Reflector {
            set: PolicySet::default(),
            kinds: kinds.to_vec(),
            relisting: BTreeMap::new(),
            listed: Vec::new(),
            relisted: BTreeSet::new(),
        }
    }

    /// The current set.
    pub fn set(&self) -> &PolicySet {
        &self.set
    }

    /// Whether every watched kind has been listed completely at least once.
    pub fn ready(&self) -> bool {
        self.kinds.iter().all(|k| self.listed.contains(k))
    }

    /// Validates `obj`; returns the object to hold under its key (new or previous).
    fn admit(
        &mut self,
        kind: Kind,
        obj: &Value,
        out: &mut Outcome,
    ) -> Option<(PolicyKey, Option<Loaded>)> {
        let key = PolicyKey::of(kind, obj)?;
        match load_object(&key, obj) {
            Ok(loaded) => {
                let message = loaded.summary();
                if kind.has_status() && !already_reported(kind, obj, true, "Loaded", &message) {
                    out.status.push(StatusWrite {
                        key: key.clone(),
                        ready: true,
                        reason: "Loaded",
                        message,
                    });
                }
                out.changed |= self.set.invalid.remove(&key).is_some();
                Some((key, Some(loaded)))
            }
            Err(error) => {
                if kind.has_status() && !already_reported(kind, obj, false, "Invalid", &error) {
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
                let previous = self.set.loaded.get(&key).cloned();
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
            Some((key, Some(loaded))) => {
                self.relisted.insert(key.clone());
                self.relisting.entry(kind).or_default().insert(key, loaded);
            }
            Some((key, None)) => {
                self.relisted.insert(key);
            }
            None => {}
        }
        out
    }

    /// The re-list of `kind` is complete: its objects are replaced at once.
    pub fn init_done(&mut self, kind: Kind) -> Outcome {
        let listed = self.relisting.remove(&kind).unwrap_or_default();
        self.set.loaded.retain(|k, _| k.kind != kind);
        self.set.loaded.extend(listed);
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

    /// The API does not serve `kind` (its CRD is not installed): it holds nothing, and
    /// readiness does not wait for it. The watch keeps retrying; once the CRD appears,
    /// its list replaces this.
    pub fn absent(&mut self, kind: Kind) -> Outcome {
        self.relisting.remove(&kind);
        self.relisted.retain(|k| k.kind != kind);
        let before = self.set.loaded.len() + self.set.invalid.len();
        self.set.loaded.retain(|k, _| k.kind != kind);
        self.set.invalid.retain(|k, _| k.kind != kind);
        let removed = before != self.set.loaded.len() + self.set.invalid.len();
        let first = !self.listed.contains(&kind);
        if first {
            self.listed.push(kind);
        }
        Outcome {
            changed: removed || first,
            ..Outcome::default()
        }
    }

    /// An object was added or modified.
    pub fn apply(&mut self, kind: Kind, obj: &Value) -> Outcome {
        let mut out = Outcome::default();
        if let Some((key, Some(loaded))) = self.admit(kind, obj, &mut out) {
            let same = self
                .set
                .loaded
                .get(&key)
                .is_some_and(|old| old.same(&loaded));
            if !same {
                self.set.loaded.insert(key, loaded);
                out.changed = true;
            }
        }
        out
    }

    /// An object was deleted.
    pub fn delete(&mut self, kind: Kind, obj: &Value) -> Outcome {
        let changed = PolicyKey::of(kind, obj).is_some_and(|k| {
            let invalid = self.set.invalid.remove(&k).is_some();
            self.set.loaded.remove(&k).is_some() || invalid
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
        let mut r = Reflector::new(&[Kind::ClusterPolicy, Kind::Policy]);
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

    fn ivp(name: &str, validation: &str) -> Value {
        json!({
            "apiVersion": "policies.kyverno.io/v1beta1", "kind": "ImageValidatingPolicy",
            "metadata": {"name": name},
            "spec": {
                "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]},
                "attestors": [{"name": "key", "cosign": {"key": {"data": "PEM"}}}],
                "validations": [{"expression": validation}],
            }
        })
    }

    #[test]
    fn ivp_status_lives_under_condition_status_and_invalid_cel_keeps_previous() {
        let mut r = Reflector::default();
        let kind = Kind::ImageValidatingPolicy;
        let out = r.apply(
            kind,
            &ivp(
                "i",
                "images.containers.all(i, verifyImageSignatures(i, [attestors.key]) > 0)",
            ),
        );
        assert!(out.changed && out.status[0].ready, "{out:?}");
        let key = PolicyKey::of(kind, &ivp("i", "")).unwrap();
        let before = r.set().get_loaded(&key).cloned().unwrap();
        assert_eq!(r.set().image_validating().count(), 1);

        let out = r.apply(kind, &ivp("i", "images.containers.all(i, "));
        assert!(!out.status[0].ready);
        assert!(
            out.status[0]
                .message
                .contains("spec.validations[0].expression"),
            "{}",
            out.status[0].message
        );
        assert!(r.set().get_loaded(&key).unwrap().same(&before));

        // Its own write seen again: nothing more to write.
        let mut obj = ivp("i", "images.containers.all(i, ");
        obj["status"] = json!({"conditionStatus": {"conditions": [{"type": "Ready", "status": "False", "reason": "Invalid", "message": out.status[0].message}]}});
        assert!(r.apply(kind, &obj).status.is_empty());
    }

    #[test]
    fn exceptions_have_no_status_and_absent_kinds_count_as_listed() {
        let mut r = Reflector::new(&[Kind::PolicyException, Kind::CelPolicyException]);
        let exception = json!({
            "apiVersion": "kyverno.io/v2", "kind": "PolicyException",
            "metadata": {"name": "e", "namespace": "team"},
            "spec": {"exceptions": [{"policyName": "p", "ruleNames": ["*"]}],
                     "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}},
        });
        r.init(Kind::PolicyException);
        let out = r.init_apply(Kind::PolicyException, &exception);
        assert!(out.status.is_empty() && out.invalid.is_empty(), "{out:?}");
        r.init_done(Kind::PolicyException);
        assert!(!r.ready());
        assert!(r.absent(Kind::CelPolicyException).changed);
        assert!(r.ready());
        assert_eq!(r.set().exceptions().count(), 1);
        assert_eq!(r.set().to_engine().exceptions().len(), 1);

        let cel = json!({
            "apiVersion": "policies.kyverno.io/v1beta1", "kind": "PolicyException",
            "metadata": {"name": "c", "namespace": "team"},
            "spec": {"policyRefs": [{"name": "i", "kind": "ImageValidatingPolicy"}],
                     "matchConditions": [{"name": "x", "expression": "object.metadata.name == 'x'"}]},
        });
        assert!(r.apply(Kind::CelPolicyException, &cel).changed);
        let mut broken = cel.clone();
        broken["spec"]["matchConditions"][0]["expression"] = json!("object.(");
        let out = r.apply(Kind::CelPolicyException, &broken);
        assert!(out.status.is_empty() && out.invalid.len() == 1, "{out:?}");
        assert_eq!(r.set().cel_exceptions().count(), 1);
        // The CRD removed: what it held goes.
        assert!(r.absent(Kind::CelPolicyException).changed);
        assert_eq!(r.set().cel_exceptions().count(), 0);
        assert_eq!(r.set().invalid().count(), 0);
    }
}
