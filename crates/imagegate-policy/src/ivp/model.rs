//! `policies.kyverno.io/v1beta1` (and `v1alpha1`) `ImageValidatingPolicy` and
//! `NamespacedImageValidatingPolicy` as plain serde types: the field names of Kyverno's Go
//! types (`kyverno/api`, `api/policies.kyverno.io/v1beta1`), `Option` where the field may
//! be absent, and accessors for the defaults Kyverno applies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `ImageValidatingPolicy` (cluster-wide).
pub const KIND_CLUSTER: &str = "ImageValidatingPolicy";
/// `NamespacedImageValidatingPolicy`.
pub const KIND_NAMESPACED: &str = "NamespacedImageValidatingPolicy";
/// The API versions accepted for both kinds.
pub const API_VERSIONS: [&str; 2] = [
    "policies.kyverno.io/v1beta1",
    "policies.kyverno.io/v1alpha1",
];

/// One ImageValidatingPolicy or NamespacedImageValidatingPolicy document.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ImageValidatingPolicy {
    /// `policies.kyverno.io/v1beta1` or `policies.kyverno.io/v1alpha1`.
    #[serde(default)]
    pub api_version: String,
    /// [`KIND_CLUSTER`] or [`KIND_NAMESPACED`].
    #[serde(default)]
    pub kind: String,
    /// Name, namespace (namespaced kind), labels, annotations.
    #[serde(default)]
    pub metadata: Metadata,
    /// The policy.
    #[serde(default)]
    pub spec: Spec,
}

impl ImageValidatingPolicy {
    /// `Kind/name`, or `Kind/namespace/name` for the namespaced kind.
    pub fn display_name(&self) -> String {
        match (&self.metadata.namespace, self.kind.as_str()) {
            (Some(ns), KIND_NAMESPACED) => format!("{}/{ns}/{}", self.kind, self.metadata.name),
            _ => format!("{}/{}", self.kind, self.metadata.name),
        }
    }

    /// Whether this is the namespaced kind (it applies only in its own namespace).
    pub fn is_namespaced(&self) -> bool {
        self.kind == KIND_NAMESPACED
    }
}

/// The object metadata a policy uses.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// `metadata.name`.
    #[serde(default)]
    pub name: String,
    /// `metadata.namespace` (namespaced kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `metadata.labels`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `metadata.uid`, when the policy came from the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// `metadata.resourceVersion`, when the policy came from the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

/// `spec` of an ImageValidatingPolicy (`ImageValidatingPolicySpec`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// Which requests the policy applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_constraints: Option<MatchResources>,
    /// `Ignore` or `Fail` (default `Fail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<FailurePolicy>,
    /// CEL audit annotations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_annotations: Vec<AuditAnnotation>,
    /// `Deny`, `Audit`, `Warn` (default `[Deny]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation_actions: Vec<ValidationAction>,
    /// CEL conditions that must all hold for the policy to apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_conditions: Vec<NamedExpression>,
    /// Named CEL expressions, readable as `variables.<name>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<NamedExpression>,
    /// Digest mutation/verification and `required`.
    #[serde(default)]
    pub validation_configurations: ValidationConfiguration,
    /// Which images the policy verifies; the others are skipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_image_references: Vec<MatchImageReference>,
    /// Registry credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
    /// Named CEL image extractors (`images.<name>`); default: the pod's containers.
    #[serde(default, rename = "images", skip_serializing_if = "Vec::is_empty")]
    pub image_extractors: Vec<ImageExtractor>,
    /// Trusted authorities (`attestors.<name>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestors: Vec<Attestor>,
    /// Image metadata to verify (`attestations.<name>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<Attestation>,
    /// CEL validations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validations: Vec<Validation>,
    /// Webhook settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_configuration: Option<WebhookConfiguration>,
    /// Evaluation mode, admission/background switches.
    #[serde(
        default,
        rename = "evaluation",
        skip_serializing_if = "Option::is_none"
    )]
    pub evaluation_configuration: Option<EvaluationConfiguration>,
    /// Pod-controller rule generation.
    #[serde(default, rename = "autogen", skip_serializing_if = "Option::is_none")]
    pub autogen_configuration: Option<AutogenConfiguration>,
}

impl Spec {
    /// The failure policy, `Fail` when unset (Kyverno's default).
    pub fn failure_policy(&self) -> FailurePolicy {
        self.failure_policy.unwrap_or(FailurePolicy::Fail)
    }

    /// The validation actions, `[Deny]` when unset.
    pub fn validation_actions(&self) -> Vec<ValidationAction> {
        if self.validation_actions.is_empty() {
            vec![ValidationAction::Deny]
        } else {
            self.validation_actions.clone()
        }
    }

    /// The evaluation mode, `Kubernetes` when unset.
    pub fn evaluation_mode(&self) -> EvaluationMode {
        self.evaluation_configuration
            .as_ref()
            .and_then(|e| e.mode)
            .unwrap_or_default()
    }

    /// Whether the policy runs at admission (default true).
    pub fn admission_enabled(&self) -> bool {
        self.evaluation_configuration
            .as_ref()
            .and_then(|e| e.admission.as_ref())
            .and_then(|a| a.enabled)
            .unwrap_or(true)
    }

    /// Whether the policy runs in background scans (default true).
    pub fn background_enabled(&self) -> bool {
        self.evaluation_configuration
            .as_ref()
            .and_then(|e| e.background.as_ref())
            .and_then(|a| a.enabled)
            .unwrap_or(true)
    }

    /// `webhookConfiguration.timeoutSeconds`, when set.
    pub fn timeout_seconds(&self) -> Option<i32> {
        self.webhook_configuration
            .as_ref()
            .and_then(|w| w.timeout_seconds)
    }
}

/// `failurePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum FailurePolicy {
    /// Errors are ignored (the request is admitted, with a warning).
    Ignore,
    /// Errors deny.
    Fail,
}

/// One of `validationActions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ValidationAction {
    /// A failed validation denies the request.
    Deny,
    /// A failed validation is recorded in reports.
    Audit,
    /// A failed validation is returned as a warning.
    Warn,
}

/// `evaluation.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum EvaluationMode {
    /// Kubernetes admission requests and resources (default).
    #[default]
    Kubernetes,
    /// Arbitrary JSON payloads (`object` only).
    #[serde(rename = "JSON")]
    Json,
}

/// `matchConstraints` (Kubernetes `MatchResources`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct MatchResources {
    /// Namespaces (by label) the policy applies in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Objects (by label) the policy applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_selector: Option<LabelSelector>,
    /// Requests the policy applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_rules: Vec<NamedRuleWithOperations>,
    /// Requests excluded although a resource rule matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_resource_rules: Vec<NamedRuleWithOperations>,
    /// `Exact` or `Equivalent` (default `Equivalent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_policy: Option<MatchPolicy>,
}

/// `matchPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum MatchPolicy {
    /// Only the exact group/version/resource.
    Exact,
    /// Also equivalent versions of the resource (Kubernetes' default).
    Equivalent,
}

/// A resource rule (`NamedRuleWithOperations`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct NamedRuleWithOperations {
    /// Names of the objects the rule applies to (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT` or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
    /// API groups (`""` is core, `*` all).
    #[serde(default, rename = "apiGroups", skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    /// API versions (`*` all).
    #[serde(default, rename = "apiVersions", skip_serializing_if = "Vec::is_empty")]
    pub api_versions: Vec<String>,
    /// Resources, with optional subresource (`pods`, `pods/ephemeralcontainers`, `*/status`,
    /// `pods/*`, `*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// `Cluster`, `Namespaced` or `*` (default `*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// A Kubernetes label selector.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must have exactly these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One set-based label requirement.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    /// The label key.
    #[serde(default)]
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    #[serde(default)]
    pub operator: String,
    /// Values for `In`/`NotIn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A named CEL expression (`MatchCondition`, `Variable`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct NamedExpression {
    /// The name.
    #[serde(default)]
    pub name: String,
    /// The CEL expression.
    #[serde(default)]
    pub expression: String,
}

/// A CEL validation (Kubernetes `Validation`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    /// CEL expression that must be true.
    #[serde(default)]
    pub expression: String,
    /// Message when it is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// CEL expression producing the message when it is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_expression: Option<String>,
    /// HTTP reason (`Unauthorized`, `Forbidden`, `Invalid`, `RequestEntityTooLarge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An audit annotation (Kubernetes `AuditAnnotation`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct AuditAnnotation {
    /// The annotation key.
    #[serde(default)]
    pub key: String,
    /// CEL expression producing the value (a string, or null to omit it).
    #[serde(default)]
    pub value_expression: String,
}

/// `validationConfigurations`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ValidationConfiguration {
    /// Replace tags with the verified digest (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutate_digest: Option<bool>,
    /// Images must carry a digest (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_digest: Option<bool>,
    /// Every matched image must pass a signature or attestation check (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
}

impl ValidationConfiguration {
    /// `mutateDigest`, default true.
    pub fn mutate_digest(&self) -> bool {
        self.mutate_digest.unwrap_or(true)
    }
    /// `verifyDigest`, default true.
    pub fn verify_digest(&self) -> bool {
        self.verify_digest.unwrap_or(true)
    }
    /// `required`, default true.
    pub fn required(&self) -> bool {
        self.required.unwrap_or(true)
    }
}

/// A glob or CEL expression selecting images.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct MatchImageReference {
    /// A glob (`*` any run, `?` one character).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glob: Option<String>,
    /// A CEL expression over `ref` (the image string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

/// A named CEL image extractor.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ImageExtractor {
    /// `images.<name>`.
    #[serde(default)]
    pub name: String,
    /// CEL expression returning a list of image strings.
    #[serde(default)]
    pub expression: String,
}

/// `credentials`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    /// Plain HTTP / unverified TLS to the registry.
    #[serde(default)]
    pub allow_insecure_registry: bool,
    /// `default`, `amazon`, `azure`, `google`, `github`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<String>,
    /// Names of pull secrets (in Kyverno's namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
}

/// An attestor (`attestors[]`): exactly one of `cosign` and `notary`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Attestor {
    /// `attestors.<name>`.
    #[serde(default)]
    pub name: String,
    /// Cosign signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosign: Option<Cosign>,
    /// Notary Project signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notary: Option<Notary>,
}

/// `attestors[].cosign`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Cosign {
    /// A public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Key>,
    /// Keyless (Fulcio) identities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyless: Option<Keyless>,
    /// A certificate (and chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Certificate>,
    /// Where signatures are stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Transparency log / CT settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctlog: Option<CtLog>,
    /// Sigstore TUF root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuf: Option<Tuf>,
    /// Annotations the signed payload must carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `cosign.key`: exactly one of `data`, `kms`, `expression`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Key {
    /// PEM public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// KMS URI (not supported by imagegate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<String>,
    /// `sha224`, `sha256` (default), `sha384`, `sha512`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_algorithm: Option<String>,
    /// CEL expression returning the PEM key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

/// `cosign.keyless`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Keyless {
    /// Accepted identities (any one).
    #[serde(default)]
    pub identities: Vec<Identity>,
    /// PEM roots (default: the Sigstore public-good roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roots: Option<String>,
}

/// A keyless identity.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// Exact issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Exact subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Issuer regular expression.
    #[serde(
        default,
        rename = "issuerRegExp",
        skip_serializing_if = "Option::is_none"
    )]
    pub issuer_regexp: Option<String>,
    /// Subject regular expression.
    #[serde(
        default,
        rename = "subjectRegExp",
        skip_serializing_if = "Option::is_none"
    )]
    pub subject_regexp: Option<String>,
}

/// A literal string or a CEL expression producing it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct StringOrExpression {
    /// The literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A CEL expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

/// `cosign.certificate`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    /// The signing certificate.
    #[serde(default, rename = "cert", skip_serializing_if = "Option::is_none")]
    pub certificate: Option<StringOrExpression>,
    /// Its chain up to the root.
    #[serde(default, rename = "certChain", skip_serializing_if = "Option::is_none")]
    pub certificate_chain: Option<StringOrExpression>,
}

/// `cosign.source`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// Repository holding the signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Pull secrets for that repository (Kyverno spells the field `PullSecrets`).
    #[serde(default, rename = "PullSecrets", skip_serializing_if = "Vec::is_empty")]
    pub signature_pull_secrets: Vec<LocalObjectReference>,
    /// Prefix of the signature tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_prefix: Option<String>,
}

/// A reference to an object by name.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LocalObjectReference {
    /// The name.
    #[serde(default)]
    pub name: String,
}

/// `cosign.ctlog`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct CtLog {
    /// Rekor URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// PEM Rekor public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekor_pub_key: Option<String>,
    /// PEM CT log public key.
    #[serde(
        default,
        rename = "ctLogPubKey",
        skip_serializing_if = "Option::is_none"
    )]
    pub ct_log_pub_key: Option<String>,
    /// PEM TSA certificate chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsa_cert_chain: Option<String>,
    /// Skip transparency-log verification.
    #[serde(default)]
    pub insecure_ignore_tlog: bool,
    /// Skip SCT verification.
    #[serde(default, rename = "insecureIgnoreSCT")]
    pub insecure_ignore_sct: bool,
}

/// `cosign.tuf`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Tuf {
    /// The root.
    #[serde(default)]
    pub root: TufRoot,
    /// TUF mirror URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
}

/// `tuf.root`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TufRoot {
    /// Path or URL of the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Base64 root data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// `attestors[].notary`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Notary {
    /// Trusted certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certs: Option<StringOrExpression>,
    /// Trusted timestamp-authority certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsa_certs: Option<StringOrExpression>,
}

/// An attestation (`attestations[]`): exactly one of `intoto` and `referrer`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Attestation {
    /// `attestations.<name>`.
    #[serde(default)]
    pub name: String,
    /// An in-toto statement of this predicate type (cosign attestations).
    #[serde(default, rename = "intoto", skip_serializing_if = "Option::is_none")]
    pub in_toto: Option<TypedAttestation>,
    /// An OCI 1.1 referrer of this artifact type (Notary attestations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<TypedAttestation>,
}

/// `intoto`/`referrer` of an attestation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TypedAttestation {
    /// Predicate type or artifact type.
    #[serde(default, rename = "type")]
    pub type_: String,
}

/// `webhookConfiguration`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct WebhookConfiguration {
    /// Webhook timeout (1–30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
}

/// `evaluation`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct EvaluationConfiguration {
    /// `Kubernetes` (default) or `JSON`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<EvaluationMode>,
    /// `admission.enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<Enabled>,
    /// `background.enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<Enabled>,
}

/// `{enabled: bool}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Enabled {
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `autogen`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct AutogenConfiguration {
    /// Which pod controllers to generate for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_controllers: Option<PodControllers>,
}

/// `autogen.podControllers`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PodControllers {
    /// Lower-case plural resource names (`deployments`, `cronjobs`, …); `None`: all,
    /// an empty list: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controllers: Option<Vec<String>>,
}
