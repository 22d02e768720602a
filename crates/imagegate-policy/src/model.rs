//! The Kyverno `kyverno.io/v1` `ClusterPolicy`/`Policy` model as users write it: plain
//! serde types mirroring the YAML field names, `Option` for what may be absent, unknown
//! fields tolerated. Both spellings of `verifyImages` deserialize (the 2021 form with
//! `image`, `key`, `roots`, `subject`, `issuer`, `annotations`, `attestations[].predicateType`
//! and the current form with `imageReferences`, `attestors`, `attestations[].type`).
//!
//! [`normalize`] is the one function that converts the legacy fields into the current
//! form; after it, the engine reads only the current fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// `null` (or an absent field, with `#[serde(default)]`) becomes the type's default.
fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn yes() -> bool {
    true
}

/// A Kyverno `ClusterPolicy` or `Policy` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// `apiVersion`, e.g. `kyverno.io/v1`.
    #[serde(default, deserialize_with = "null_default")]
    pub api_version: String,
    /// `ClusterPolicy` or `Policy`.
    pub kind: PolicyKind,
    /// Object metadata.
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: ObjectMeta,
    /// The policy body.
    #[serde(default, deserialize_with = "null_default")]
    pub spec: Spec,
}

impl Policy {
    /// Whether this is a cluster-wide `ClusterPolicy` (not a namespaced `Policy`).
    pub fn is_cluster_policy(&self) -> bool {
        self.kind == PolicyKind::ClusterPolicy
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// `metadata.namespace` (meaningful for a namespaced `Policy`).
    pub fn namespace(&self) -> Option<&str> {
        self.metadata.namespace.as_deref()
    }

    /// `metadata.annotations` (e.g. `pod-policies.kyverno.io/autogen-controllers`).
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        &self.metadata.annotations
    }

    /// `Kind/name`, or `Kind/namespace/name` for a namespaced policy with a namespace;
    /// used in messages.
    pub fn display_name(&self) -> String {
        match (&self.kind, self.namespace()) {
            (PolicyKind::Policy, Some(ns)) => format!("Policy/{ns}/{}", self.name()),
            (kind, _) => format!("{}/{}", kind.as_str(), self.name()),
        }
    }

    /// `spec.webhookConfiguration.failurePolicy`, else `spec.failurePolicy`, else `Fail`.
    pub fn failure_policy(&self) -> FailurePolicy {
        self.spec
            .webhook_configuration
            .as_ref()
            .and_then(|w| w.failure_policy)
            .or(self.spec.failure_policy)
            .unwrap_or(FailurePolicy::Fail)
    }

    /// `spec.webhookConfiguration.timeoutSeconds`, else `spec.webhookTimeoutSeconds`,
    /// if set and representable.
    pub fn webhook_timeout_seconds(&self) -> Option<u32> {
        self.spec
            .webhook_configuration
            .as_ref()
            .and_then(|w| w.timeout_seconds)
            .or(self.spec.webhook_timeout_seconds)
            .and_then(|s| u32::try_from(s).ok())
    }
}

/// The two policy kinds of `kyverno.io/v1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum PolicyKind {
    /// Cluster-wide policy.
    ClusterPolicy,
    /// Namespaced policy.
    Policy,
}

impl PolicyKind {
    /// The kind as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::ClusterPolicy => "ClusterPolicy",
            PolicyKind::Policy => "Policy",
        }
    }
}

/// The parts of Kubernetes `ObjectMeta` a policy uses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// `metadata.name`.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// `metadata.namespace`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `metadata.uid` (part of cache keys when present).
    #[serde(default)]
    pub uid: Option<String>,
    /// `metadata.resourceVersion` (part of cache keys when present).
    #[serde(default)]
    pub resource_version: Option<String>,
    /// `metadata.labels`.
    #[serde(default, deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    #[serde(default, deserialize_with = "null_default")]
    pub annotations: BTreeMap<String, String>,
}

/// `spec` of a policy. Fields not listed here (e.g. `useServerSideApply`,
/// `generateExisting`, `mutateExistingOnPolicyUpdate`) are accepted and ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// The rules, in order.
    #[serde(default, deserialize_with = "null_default")]
    pub rules: Vec<Rule>,
    /// Deprecated policy-wide failure action (`enforce`/`audit`, any case). [`normalize`]
    /// copies it into every `verifyImages[].failureAction` that is absent.
    #[serde(default)]
    pub validation_failure_action: Option<FailureAction>,
    /// Per-namespace overrides of the failure action.
    #[serde(default, deserialize_with = "null_default")]
    pub validation_failure_action_overrides: Vec<FailureActionOverride>,
    /// Webhook timeout, 1..=30 seconds.
    #[serde(default)]
    pub webhook_timeout_seconds: Option<i32>,
    /// What the API server does when the webhook fails.
    #[serde(default)]
    pub failure_policy: Option<FailurePolicy>,
    /// Whether background scans apply the policy.
    #[serde(default)]
    pub background: Option<bool>,
    /// Whether admission requests are processed (Kyverno default true).
    #[serde(default)]
    pub admission: Option<bool>,
    /// Kyverno ≥ 1.11 webhook settings.
    #[serde(default)]
    pub webhook_configuration: Option<WebhookConfiguration>,
    /// `One` or `All` (default): whether evaluation stops at the first matching rule.
    #[serde(default)]
    pub apply_rules: Option<String>,
    /// Emit API warnings for Audit results.
    #[serde(default)]
    pub emit_warning: Option<bool>,
}

/// Enforce (deny) or Audit (record and admit). Parsed case-insensitively, as Kyverno
/// accepts the deprecated lower-case spellings; serialised as `Enforce`/`Audit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureAction {
    /// Deny the request on failure.
    Enforce,
    /// Record the failure and admit.
    Audit,
}

impl FailureAction {
    /// Parses `enforce`/`audit` in any case.
    pub fn parse(text: &str) -> Option<Self> {
        if text.eq_ignore_ascii_case("enforce") {
            Some(FailureAction::Enforce)
        } else if text.eq_ignore_ascii_case("audit") {
            Some(FailureAction::Audit)
        } else {
            None
        }
    }

    /// `Enforce` or `Audit`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureAction::Enforce => "Enforce",
            FailureAction::Audit => "Audit",
        }
    }
}

impl Serialize for FailureAction {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Kyverno's CRD spellings (imagegate's parser accepts any case; the API server is stricter,
/// as with Kyverno's CRD).
#[cfg(feature = "schema")]
impl schemars::JsonSchema for FailureAction {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FailureAction".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "enum": ["audit", "enforce", "Audit", "Enforce"],
        })
    }
}

impl<'de> Deserialize<'de> for FailureAction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        FailureAction::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid failure action {text:?}: expected Enforce or Audit"
            ))
        })
    }
}

/// Webhook failure policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum FailurePolicy {
    /// Reject the request when the webhook fails.
    Fail,
    /// Admit the request when the webhook fails.
    Ignore,
}

/// One `validationFailureActionOverrides` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct FailureActionOverride {
    /// The action for the selected namespaces.
    pub action: FailureAction,
    /// Namespace names (wildcards allowed).
    #[serde(default, deserialize_with = "null_default")]
    pub namespaces: Vec<String>,
    /// Namespace label selector.
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
}

/// `spec.webhookConfiguration`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct WebhookConfiguration {
    /// Webhook timeout, 1..=30 seconds.
    #[serde(default)]
    pub timeout_seconds: Option<i32>,
    /// Webhook failure policy.
    #[serde(default)]
    pub failure_policy: Option<FailurePolicy>,
    /// CEL match conditions, kept as written.
    #[serde(default)]
    pub match_conditions: Option<Vec<Value>>,
}

/// One rule of a policy. Only `verifyImages` is evaluated; `validate`, `mutate` and
/// `generate` are kept so they can be reported as unsupported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Rule name (unique in the policy, at most 63 characters).
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Which resources the rule applies to.
    #[serde(rename = "match", default, deserialize_with = "null_default")]
    pub match_: MatchResources,
    /// Which resources are excluded.
    #[serde(default)]
    pub exclude: Option<MatchResources>,
    /// Preconditions: a list of conditions (legacy, all must hold) or `{any, all}`.
    #[serde(default)]
    pub preconditions: Option<Value>,
    /// Context entries (variables, ConfigMaps, API calls), kept as written.
    #[serde(default)]
    pub context: Option<Vec<Value>>,
    /// The image verifications of this rule.
    #[serde(default, deserialize_with = "null_default")]
    pub verify_images: Vec<ImageVerification>,
    /// A `validate` rule body (unsupported; reported).
    #[serde(default)]
    pub validate: Option<Value>,
    /// A `mutate` rule body (unsupported; reported).
    #[serde(default)]
    pub mutate: Option<Value>,
    /// A `generate` rule body (unsupported; reported).
    #[serde(default)]
    pub generate: Option<Value>,
    /// Custom image locations per kind (`imageExtractors`).
    #[serde(default)]
    pub image_extractors: Option<BTreeMap<String, Vec<ImageExtractorConfig>>>,
    /// Skip background requests.
    #[serde(default)]
    pub skip_background_requests: Option<bool>,
}

impl Rule {
    /// The rule types present that imagegate does not evaluate (`validate`, `mutate`,
    /// `generate`), in that order.
    pub fn unsupported_rule_types(&self) -> Vec<&'static str> {
        let mut types = Vec::new();
        if self.validate.is_some() {
            types.push("validate");
        }
        if self.mutate.is_some() {
            types.push("mutate");
        }
        if self.generate.is_some() {
            types.push("generate");
        }
        types
    }
}

/// One `imageExtractors` entry: where images are in a custom resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ImageExtractorConfig {
    /// Path to the image field or the list of objects holding it, e.g. `/spec/tasks/*`.
    #[serde(default, deserialize_with = "null_default")]
    pub path: String,
    /// Field of each object holding the image (default `image`).
    #[serde(default)]
    pub value: Option<String>,
    /// Field holding the container name (default `name`).
    #[serde(default)]
    pub name: Option<String>,
    /// Field used as the key of the image in the `images` variable.
    #[serde(default)]
    pub key: Option<String>,
    /// JMESPath applied to the extracted value.
    #[serde(default)]
    pub jmes_path: Option<String>,
}

/// `match`/`exclude`: `any`/`all` filter lists, or the legacy direct form
/// (`resources`, `subjects`, `roles`, `clusterRoles` directly under `match`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct MatchResources {
    /// At least one filter must match.
    #[serde(default, deserialize_with = "null_default")]
    pub any: Vec<ResourceFilter>,
    /// Every filter must match.
    #[serde(default, deserialize_with = "null_default")]
    pub all: Vec<ResourceFilter>,
    /// Legacy direct form: one resource description.
    #[serde(default)]
    pub resources: Option<ResourceDescription>,
    /// Legacy direct form: subjects.
    #[serde(default, deserialize_with = "null_default")]
    pub subjects: Vec<Subject>,
    /// Legacy direct form: roles.
    #[serde(default, deserialize_with = "null_default")]
    pub roles: Vec<String>,
    /// Legacy direct form: cluster roles.
    #[serde(default, deserialize_with = "null_default")]
    pub cluster_roles: Vec<String>,
}

impl MatchResources {
    /// Whether no filter at all is given (neither `any`, `all` nor the legacy form).
    pub fn is_empty(&self) -> bool {
        self.any.is_empty()
            && self.all.is_empty()
            && self.resources.is_none()
            && self.subjects.is_empty()
            && self.roles.is_empty()
            && self.cluster_roles.is_empty()
    }
}

/// One entry of `any`/`all`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ResourceFilter {
    /// The resource description.
    #[serde(default, deserialize_with = "null_default")]
    pub resources: ResourceDescription,
    /// Requesting subjects.
    #[serde(default, deserialize_with = "null_default")]
    pub subjects: Vec<Subject>,
    /// Requesting user's roles.
    #[serde(default, deserialize_with = "null_default")]
    pub roles: Vec<String>,
    /// Requesting user's cluster roles.
    #[serde(default, deserialize_with = "null_default")]
    pub cluster_roles: Vec<String>,
}

/// An RBAC subject (`User`, `Group`, `ServiceAccount`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// `User`, `Group` or `ServiceAccount`.
    #[serde(default, deserialize_with = "null_default")]
    pub kind: String,
    /// Subject name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Namespace of a service account.
    #[serde(default)]
    pub namespace: Option<String>,
    /// API group.
    #[serde(default)]
    pub api_group: Option<String>,
}

/// What resources a filter selects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ResourceDescription {
    /// Kinds: `Pod`, `apps/v1/Deployment`, `Deployment/scale`, wildcards.
    #[serde(default, deserialize_with = "null_default")]
    pub kinds: Vec<String>,
    /// Legacy single name (wildcards allowed).
    #[serde(default)]
    pub name: Option<String>,
    /// Names (wildcards allowed).
    #[serde(default, deserialize_with = "null_default")]
    pub names: Vec<String>,
    /// Namespaces (wildcards allowed).
    #[serde(default, deserialize_with = "null_default")]
    pub namespaces: Vec<String>,
    /// Annotations the resource must have (wildcards allowed in values).
    #[serde(default, deserialize_with = "null_default")]
    pub annotations: BTreeMap<String, String>,
    /// Label selector on the resource.
    #[serde(default)]
    pub selector: Option<LabelSelector>,
    /// Label selector on the resource's namespace.
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
    /// Admission operations: `CREATE`, `UPDATE`, `DELETE`, `CONNECT`.
    #[serde(default, deserialize_with = "null_default")]
    pub operations: Vec<String>,
}

/// A Kubernetes label selector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must be present with these values.
    #[serde(default, deserialize_with = "null_default")]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(default, deserialize_with = "null_default")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One set-based label requirement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    /// Label key.
    pub key: String,
    /// Operator.
    pub operator: SelectorOperator,
    /// Values (for `In`/`NotIn`).
    #[serde(default, deserialize_with = "null_default")]
    pub values: Vec<String>,
}

/// Label selector operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum SelectorOperator {
    /// The label value is one of `values`.
    In,
    /// The label is absent or its value is none of `values`.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// Signature format of a `verifyImages` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum VerificationType {
    /// Cosign signatures and attestations (default).
    Cosign,
    /// Sigstore bundles (OCI 1.1 referrers).
    SigstoreBundle,
    /// Notary Project (Notation) signatures, verified with `certificates`.
    Notary,
}

/// One `verifyImages` entry, in both spellings. After [`normalize`] the legacy fields
/// (`image`, `key`, `roots`, `subject`, `issuer`, `additional_extensions`, `annotations`,
/// `attestations[].predicate_type`) are empty and `failure_action` is always set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ImageVerification {
    /// `type`: Cosign (default), SigstoreBundle or Notary.
    #[serde(rename = "type", default)]
    pub type_: Option<VerificationType>,
    /// Per-entry failure action; [`normalize`] fills it from the policy or `Audit`.
    #[serde(default)]
    pub failure_action: Option<FailureAction>,
    /// Set by [`normalize`] when the entry wrote no `failureAction` (so the one above
    /// came from the policy): only such entries are subject to
    /// `validationFailureActionOverrides` ([`Policy::rule_failure_action`]). Not part
    /// of the YAML.
    #[serde(skip)]
    pub failure_action_inherited: bool,
    /// Image patterns (`*`, `?` wildcards) this entry applies to.
    #[serde(default, deserialize_with = "null_default")]
    pub image_references: Vec<String>,
    /// Image patterns skipped even when they match `image_references`.
    #[serde(default, deserialize_with = "null_default")]
    pub skip_image_references: Vec<String>,
    /// Attestor sets that must all verify the image signature.
    #[serde(default, deserialize_with = "null_default")]
    pub attestors: Vec<AttestorSet>,
    /// Attestation checks.
    #[serde(default, deserialize_with = "null_default")]
    pub attestations: Vec<AttestationCheck>,
    /// Alternate repository holding signatures and attestations.
    #[serde(default)]
    pub repository: Option<String>,
    /// Replace tags with the verified digest (default true).
    #[serde(default = "yes")]
    pub mutate_digest: bool,
    /// Require images to carry a digest (default true).
    #[serde(default = "yes")]
    pub verify_digest: bool,
    /// Require matching images to be verified (default true).
    #[serde(default = "yes")]
    pub required: bool,
    /// Cache verification results (default true).
    #[serde(default = "yes")]
    pub use_cache: bool,
    /// Conditions over the attestation data of all attestations.
    #[serde(default)]
    pub validate: Option<ImageValidation>,
    /// Registry credentials.
    #[serde(default)]
    pub image_registry_credentials: Option<ImageRegistryCredentials>,
    /// Cosign OCI 1.1 (referrers) discovery.
    #[serde(rename = "cosignOCI11", default)]
    pub cosign_oci11: Option<bool>,
    /// Legacy: one image pattern (→ `image_references`).
    #[serde(default)]
    pub image: Option<String>,
    /// Legacy: PEM public key (→ `attestors[].entries[].keys.publicKeys`).
    #[serde(default)]
    pub key: Option<String>,
    /// Legacy: keyless roots (→ `keyless.roots`).
    #[serde(default)]
    pub roots: Option<String>,
    /// Legacy: keyless subject (→ `keyless.subject`).
    #[serde(default)]
    pub subject: Option<String>,
    /// Legacy: keyless issuer (→ `keyless.issuer`).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Legacy: keyless certificate extensions (→ `keyless.additionalExtensions`).
    #[serde(default)]
    pub additional_extensions: Option<BTreeMap<String, String>>,
    /// Legacy: signature annotations (→ entry `annotations`).
    #[serde(default, deserialize_with = "null_default")]
    pub annotations: BTreeMap<String, String>,
}

impl Default for ImageVerification {
    fn default() -> Self {
        Self {
            type_: None,
            failure_action: None,
            failure_action_inherited: false,
            image_references: Vec::new(),
            skip_image_references: Vec::new(),
            attestors: Vec::new(),
            attestations: Vec::new(),
            repository: None,
            mutate_digest: true,
            verify_digest: true,
            required: true,
            use_cache: true,
            validate: None,
            image_registry_credentials: None,
            cosign_oci11: None,
            image: None,
            key: None,
            roots: None,
            subject: None,
            issuer: None,
            additional_extensions: None,
            annotations: BTreeMap::new(),
        }
    }
}

impl ImageVerification {
    /// The verification type, `Cosign` when absent.
    pub fn verification_type(&self) -> VerificationType {
        self.type_.unwrap_or(VerificationType::Cosign)
    }

    /// The failure action, `Audit` (Kyverno's default) when absent.
    pub fn failure_action(&self) -> FailureAction {
        self.failure_action.unwrap_or(FailureAction::Audit)
    }

    /// Whether `imageRegistryCredentials.allowInsecureRegistry: true`: the registries
    /// of the images this entry covers may be reached over plain HTTP (as Kyverno's
    /// `crane.Insecure`), for this entry only.
    pub fn allows_insecure_registry(&self) -> bool {
        self.image_registry_credentials
            .as_ref()
            .is_some_and(|c| c.allow_insecure_registry)
    }

    fn has_legacy_attestor(&self) -> bool {
        non_empty(&self.key)
            || non_empty(&self.issuer)
            || non_empty(&self.subject)
            || non_empty(&self.roots)
            || !self.annotations.is_empty()
    }
}

fn non_empty(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|v| !v.is_empty())
}

/// `verifyImages[].validate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ImageValidation {
    /// Message on failure.
    #[serde(default)]
    pub message: Option<String>,
    /// Deny when the conditions hold.
    #[serde(default)]
    pub deny: Option<Deny>,
}

/// `validate.deny`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Deny {
    /// `{any, all}` or a list of conditions, kept as written.
    #[serde(default)]
    pub conditions: Value,
}

/// `verifyImages[].imageRegistryCredentials`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ImageRegistryCredentials {
    /// Allow plain HTTP / unverified TLS.
    #[serde(default, deserialize_with = "null_default")]
    pub allow_insecure_registry: bool,
    /// Credential providers (`default`, `amazon`, `azure`, `google`, `github`).
    #[serde(default, deserialize_with = "null_default")]
    pub providers: Vec<String>,
    /// Pull secret names.
    #[serde(default, deserialize_with = "null_default")]
    pub secrets: Vec<String>,
}

/// A set of attestors of which `count` (default: all) must verify.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct AttestorSet {
    /// Required number of verified entries; `None` means all.
    #[serde(default)]
    pub count: Option<usize>,
    /// The attestors.
    #[serde(default, deserialize_with = "null_default")]
    pub entries: Vec<Attestor>,
}

impl AttestorSet {
    /// How many entries must verify (`count`, or all entries when absent or 0).
    pub fn required_count(&self) -> usize {
        match self.count {
            Some(n) if n > 0 => n,
            _ => self.entries.len(),
        }
    }
}

/// One attestor: exactly one of `keys`, `certificates`, `keyless`, `attestor`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Attestor {
    /// Static public keys.
    #[serde(default)]
    pub keys: Option<StaticKeyAttestor>,
    /// Certificates.
    #[serde(default)]
    pub certificates: Option<CertificateAttestor>,
    /// Keyless (Fulcio) identity.
    #[serde(default)]
    pub keyless: Option<KeylessAttestor>,
    /// A nested attestor set. Its schema is "any object", as in Kyverno's CRD: a schema
    /// cannot refer to itself.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Option<serde_json::Value>"))]
    pub attestor: Option<Box<AttestorSet>>,
    /// Annotations the signature payload must carry.
    #[serde(default, deserialize_with = "null_default")]
    pub annotations: BTreeMap<String, String>,
    /// Alternate repository for this attestor's signatures.
    #[serde(default)]
    pub repository: Option<String>,
    /// Signature digest algorithm (sha224, sha256, sha384, sha512).
    #[serde(default)]
    pub signature_algorithm: Option<String>,
}

/// `keys`: static public keys, a Secret or a KMS key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct StaticKeyAttestor {
    /// One or more PEM public keys (each counts as a separate entry).
    #[serde(default)]
    pub public_keys: Option<String>,
    /// Secret holding `cosign.pub`.
    #[serde(default)]
    pub secret: Option<SecretReference>,
    /// Deprecated here (use the attestor's): signature digest algorithm.
    #[serde(default)]
    pub signature_algorithm: Option<String>,
    /// KMS key URI.
    #[serde(default)]
    pub kms: Option<String>,
    /// Transparency log settings.
    #[serde(default)]
    pub rekor: Option<Rekor>,
    /// Certificate transparency settings.
    #[serde(default)]
    pub ctlog: Option<CTLog>,
    /// Set by [`normalize`] on the key made from the 2021 `key:` field of a
    /// verifyImages entry: such keys keep cosign 1.x's meaning, signatures and
    /// key-signed attestations verified without the transparency log
    /// ([`StaticKeyAttestor::requires_tlog`]). Never read from YAML; written when set,
    /// so that anything keyed by the serialised entry (verdict caches) tells the two
    /// forms apart.
    #[serde(default, skip_deserializing, skip_serializing_if = "is_false")]
    pub legacy_key_form: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl StaticKeyAttestor {
    /// Whether signatures and attestations by these keys need a transparency-log
    /// entry: yes, unless `rekor.ignoreTlog: true` or the key comes from the 2021
    /// `key:` form (cosign 1.x verified key signatures without the log).
    pub fn requires_tlog(&self) -> bool {
        !self.legacy_key_form && !self.rekor.as_ref().is_some_and(|r| r.ignore_tlog)
    }
}

/// A reference to a Kubernetes Secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// Secret name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Secret namespace.
    #[serde(default, deserialize_with = "null_default")]
    pub namespace: String,
}

/// `certificates`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct CertificateAttestor {
    /// PEM signing certificate.
    #[serde(default)]
    pub cert: Option<String>,
    /// PEM certificate chain.
    #[serde(default)]
    pub cert_chain: Option<String>,
    /// Transparency log settings.
    #[serde(default)]
    pub rekor: Option<Rekor>,
    /// Certificate transparency settings.
    #[serde(default)]
    pub ctlog: Option<CTLog>,
}

/// `keyless`: a Fulcio certificate identity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct KeylessAttestor {
    /// OIDC issuer, exact.
    #[serde(default)]
    pub issuer: Option<String>,
    /// OIDC issuer, regular expression.
    #[serde(default)]
    pub issuer_reg_exp: Option<String>,
    /// Subject (SAN), exact.
    #[serde(default)]
    pub subject: Option<String>,
    /// Subject (SAN), regular expression.
    #[serde(default)]
    pub subject_reg_exp: Option<String>,
    /// PEM roots replacing the Sigstore trusted root.
    #[serde(default)]
    pub roots: Option<String>,
    /// Certificate extensions that must match (`githubWorkflowTrigger`,
    /// `githubWorkflowSha`, `githubWorkflowName`, `githubWorkflowRepository`,
    /// `githubWorkflowRef`, ...).
    #[serde(default)]
    pub additional_extensions: Option<BTreeMap<String, String>>,
    /// Transparency log settings.
    #[serde(default)]
    pub rekor: Option<Rekor>,
    /// Certificate transparency settings.
    #[serde(default)]
    pub ctlog: Option<CTLog>,
}

/// `rekor`. An empty object means the public instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Rekor {
    /// Log URL.
    #[serde(default)]
    pub url: Option<String>,
    /// PEM public key of a custom log.
    #[serde(default)]
    pub pubkey: Option<String>,
    /// Skip transparency log verification.
    #[serde(default, deserialize_with = "null_default")]
    pub ignore_tlog: bool,
}

/// `ctlog`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CTLog {
    /// Skip SCT verification.
    #[serde(rename = "ignoreSCT", default, deserialize_with = "null_default")]
    pub ignore_sct: bool,
    /// PEM public key of a custom CT log.
    #[serde(default)]
    pub pubkey: Option<String>,
    /// PEM certificate chain of an RFC 3161 timestamp authority.
    #[serde(rename = "tsaCertChain", default)]
    pub tsa_cert_chain: Option<String>,
}

/// One `attestations` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct AttestationCheck {
    /// Variable name under which the predicates are available to `validate.deny`.
    #[serde(default)]
    pub name: Option<String>,
    /// Predicate type (e.g. `https://slsa.dev/provenance/v0.2`). [`normalize`] fills it
    /// from `predicate_type`.
    #[serde(rename = "type", default)]
    pub type_: Option<String>,
    /// Legacy spelling of `type`.
    #[serde(default)]
    pub predicate_type: Option<String>,
    /// Attestor sets for the attestation signature; [`normalize`] fills an empty list
    /// from the image's attestors.
    #[serde(default, deserialize_with = "null_default")]
    pub attestors: Vec<AttestorSet>,
    /// Conditions over each predicate; every entry must hold.
    #[serde(default, deserialize_with = "null_default")]
    pub conditions: Vec<AnyAllConditions>,
}

/// `{any: [...], all: [...]}`: at least one of `any` (when non-empty) and every one of
/// `all` must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct AnyAllConditions {
    /// At least one must hold (when non-empty).
    #[serde(default, deserialize_with = "null_default")]
    pub any: Vec<Condition>,
    /// All must hold.
    #[serde(default, deserialize_with = "null_default")]
    pub all: Vec<Condition>,
}

/// One condition: `key operator value`, with `{{ }}` variables in key and value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Left-hand side.
    #[serde(default)]
    pub key: Value,
    /// Operator name (`Equals`, `AnyIn`, `GreaterThan`, `DurationLessThan`, ...).
    #[serde(default, deserialize_with = "null_default")]
    pub operator: String,
    /// Right-hand side.
    #[serde(default)]
    pub value: Value,
    /// Message when the condition fails.
    #[serde(default)]
    pub message: Option<String>,
}

/// Converts the legacy fields of every `verifyImages` entry into the current form, as
/// Kyverno's `ImageVerification.Convert()` does, and fills defaults the engine relies on:
///
/// - `image` → appended to `imageReferences`;
/// - `key` → entry `{keys: {publicKeys: key}}`; otherwise `issuer`/`subject`/`roots`/
///   `additionalExtensions` → entry `{keyless: {...}}`; `annotations` → that entry's
///   `annotations`. The entry becomes a new attestor set appended to every attestation's
///   `attestors` when the entry has attestations (Kyverno's rule), else to `attestors`;
/// - `attestations[].predicateType` → `type` (when `type` is absent);
/// - an attestation without attestors inherits the image's attestors (Kyverno would
///   accept any signer there; imagegate requires the image's attestors);
/// - `failureAction` absent → `spec.validationFailureAction`, else `Audit`, marked
///   [`ImageVerification::failure_action_inherited`];
///
/// Idempotent: normalising a normalised policy changes nothing.
pub fn normalize(policy: &mut Policy) {
    let spec_action = policy.spec.validation_failure_action;
    for rule in &mut policy.spec.rules {
        for iv in &mut rule.verify_images {
            convert_legacy(iv);
            inherit_attestors(iv);
            if iv.failure_action.is_none() {
                iv.failure_action = Some(spec_action.unwrap_or(FailureAction::Audit));
                iv.failure_action_inherited = true;
            }
        }
    }
}

/// The legacy-field conversion of [`normalize`] alone (no defaults, no inheritance).
pub(crate) fn convert_legacy(iv: &mut ImageVerification) {
    if let Some(image) = iv.image.take().filter(|i| !i.is_empty())
        && !iv.image_references.contains(&image)
    {
        iv.image_references.push(image);
    }
    if iv.has_legacy_attestor() {
        let mut entry = Attestor {
            annotations: std::mem::take(&mut iv.annotations),
            ..Attestor::default()
        };
        if let Some(key) = iv.key.take().filter(|k| !k.is_empty()) {
            entry.keys = Some(StaticKeyAttestor {
                public_keys: Some(key),
                legacy_key_form: true,
                ..Default::default()
            });
        } else if non_empty(&iv.issuer) || non_empty(&iv.subject) || non_empty(&iv.roots) {
            entry.keyless = Some(KeylessAttestor {
                issuer: iv.issuer.take().filter(|s| !s.is_empty()),
                subject: iv.subject.take().filter(|s| !s.is_empty()),
                roots: iv.roots.take().filter(|s| !s.is_empty()),
                additional_extensions: iv.additional_extensions.take(),
                ..Default::default()
            });
        }
        let set = AttestorSet {
            count: None,
            entries: vec![entry],
        };
        if iv.attestations.is_empty() {
            iv.attestors.push(set);
        } else {
            for attestation in &mut iv.attestations {
                attestation.attestors.push(set.clone());
            }
        }
    }
    iv.key = None;
    iv.issuer = None;
    iv.subject = None;
    iv.roots = None;
    iv.additional_extensions = None;
    for attestation in &mut iv.attestations {
        if let Some(predicate_type) = attestation.predicate_type.take()
            && attestation.type_.as_deref().is_none_or(str::is_empty)
        {
            attestation.type_ = Some(predicate_type);
        }
    }
}

/// Copies what [`normalize`] recorded outside the YAML (inherited failure actions,
/// legacy keys) from `from` to `to`, the same rule after a round trip through JSON
/// that changed only strings (autogen).
pub(crate) fn restore_normalize_marks(from: &Rule, to: &mut Rule) {
    fn sets(from: &[AttestorSet], to: &mut [AttestorSet]) {
        for (f, t) in from.iter().zip(to) {
            for (fe, te) in f.entries.iter().zip(&mut t.entries) {
                if let (Some(fk), Some(tk)) = (&fe.keys, &mut te.keys) {
                    tk.legacy_key_form = fk.legacy_key_form;
                }
            }
        }
    }
    for (f, t) in from.verify_images.iter().zip(&mut to.verify_images) {
        t.failure_action_inherited = f.failure_action_inherited;
        sets(&f.attestors, &mut t.attestors);
        for (fa, ta) in f.attestations.iter().zip(&mut t.attestations) {
            sets(&fa.attestors, &mut ta.attestors);
        }
    }
}

fn inherit_attestors(iv: &mut ImageVerification) {
    for attestation in &mut iv.attestations {
        if attestation.attestors.is_empty() {
            attestation.attestors = iv.attestors.clone();
        }
    }
}
