//! Whether a rule applies to a resource: `match` satisfied and `exclude` not, with
//! Kyverno's semantics (`pkg/engine/utils/match.go` `MatchesResourceDescription`,
//! `pkg/utils/match`).
//!
//! - Within one resource description every given criterion must hold (AND); within
//!   a list criterion (kinds, names, namespaces, operations) one entry suffices (OR).
//! - `match.any`: at least one filter matches; `match.all`: every filter matches;
//!   otherwise the legacy `match.resources`. An empty filter never matches
//!   ("match cannot be empty").
//! - `exclude.any`: excluded when one (non-empty) filter matches; `exclude.all`:
//!   excluded when every filter matches (an empty filter breaks the "all");
//!   otherwise the legacy `exclude.resources`. An empty exclude excludes nothing.
//! - A namespaced `Policy` only applies to resources in its own namespace.
//! - Wildcards `*`/`?` everywhere Kyverno allows them ([`crate::pattern::wildcard_match`]).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::kinds::{parse_kind_selector, split_api_version};
use crate::model::{
    LabelSelector, MatchResources, Policy, ResourceDescription, ResourceFilter, Rule,
    SelectorOperator, Subject,
};
use crate::pattern::{contains_wildcard, wildcard_match};

/// The admission operation of the request being evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Operation {
    /// `CREATE` (also what `imagegate apply` assumes).
    #[default]
    Create,
    /// `UPDATE`.
    Update,
    /// `DELETE`.
    Delete,
    /// `CONNECT`.
    Connect,
}

impl Operation {
    /// The operation as the API server writes it: `CREATE`, `UPDATE`, `DELETE`,
    /// `CONNECT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Connect => "CONNECT",
        }
    }

    /// Parses `CREATE`, `UPDATE`, `DELETE` or `CONNECT` (exact case, as in an
    /// AdmissionReview).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "CREATE" => Some(Self::Create),
            "UPDATE" => Some(Self::Update),
            "DELETE" => Some(Self::Delete),
            "CONNECT" => Some(Self::Connect),
            _ => None,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Operation {
    type Err = UnknownOperation;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| UnknownOperation(s.to_owned()))
    }
}

/// An admission operation other than `CREATE`, `UPDATE`, `DELETE`, `CONNECT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown admission operation '{0}' (expected CREATE, UPDATE, DELETE or CONNECT)")]
pub struct UnknownOperation(pub String);

/// What the request adds to the resource itself for matching.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MatchContext {
    /// The admission operation (`CREATE` for `imagegate apply`).
    pub operation: Operation,
    /// Labels of the resource's namespace, for `namespaceSelector`; `None` when
    /// unknown (no cluster to ask). Unknown labels never let a resource escape: a
    /// `namespaceSelector` in `match` counts as satisfied, one in `exclude` as not.
    pub namespace_labels: Option<BTreeMap<String, String>>,
    /// The AdmissionReview's `request.userInfo` (`username`, `groups`, …), if any.
    /// With no user info, user-based criteria are ignored in `match`, as Kyverno
    /// does when it has no request information.
    pub user_info: Option<Value>,
}

/// Whether `rule` of `policy` applies to `resource`: the match block is satisfied,
/// the exclude block is not, and (for a namespaced `Policy`) the resource is in the
/// policy's namespace.
pub fn rule_matches(rule: &Rule, policy: &Policy, resource: &Value, ctx: &MatchContext) -> bool {
    rule_mismatch_reasons(rule, policy, resource, ctx).is_empty()
}

/// Why `rule` does not apply to `resource` (Kyverno's reasons, e.g. `kind does not
/// match [Deployment]`, `resource excluded since one of the criteria excluded
/// it`); empty when it applies.
pub fn rule_mismatch_reasons(
    rule: &Rule,
    policy: &Policy,
    resource: &Value,
    ctx: &MatchContext,
) -> Vec<String> {
    let res = ResourceView::new(resource);
    if let Some(ns) = policy_namespace(policy)
        && ns != res.namespace
    {
        return vec!["policy and resource namespaces mismatch".to_owned()];
    }
    let mut reasons = match_reasons(&rule.match_, &res, ctx);
    if let Some(exclude) = &rule.exclude {
        reasons.extend(exclude_reasons(exclude, &res, ctx));
    }
    reasons
}

/// Whether a PolicyException's `match` (`any`/`all` filters only) covers `resource`, as
/// Kyverno's `checkMatchesResources`: `any` — one filter holds, `all` — every filter
/// holds, neither — nothing is covered; an empty filter never holds. Stricter than a
/// rule's `match` where imagegate lacks facts: unknown namespace labels or user never
/// satisfy a `namespaceSelector` or user criterion, so an exception is never granted on
/// a guess (the same test as an `exclude` filter).
pub fn exception_matches(m: &MatchResources, resource: &Value, ctx: &MatchContext) -> bool {
    let res = ResourceView::new(resource);
    let user = RequestUser::from_context(ctx);
    let user = user.as_ref();
    if !m.any.is_empty() {
        m.any
            .iter()
            .any(|f| Filter::of(f).holds_for_certain(&res, ctx, user))
    } else if !m.all.is_empty() {
        m.all
            .iter()
            .all(|f| Filter::of(f).holds_for_certain(&res, ctx, user))
    } else {
        false
    }
}

/// The namespace a policy is confined to: that of a namespaced `Policy`, `None` for
/// a `ClusterPolicy`.
pub fn policy_namespace(policy: &Policy) -> Option<&str> {
    if policy.is_cluster_policy() {
        return None;
    }
    policy.namespace().filter(|ns| !ns.is_empty())
}

/// The parts of a Kubernetes object that matching looks at.
struct ResourceView<'a> {
    group: &'a str,
    version: &'a str,
    kind: &'a str,
    name: &'a str,
    namespace: &'a str,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

impl<'a> ResourceView<'a> {
    fn new(resource: &'a Value) -> Self {
        let str_at = |v: Option<&'a Value>| v.and_then(Value::as_str).unwrap_or("");
        let metadata = resource.get("metadata");
        let (group, version) = split_api_version(str_at(resource.get("apiVersion")));
        let name = match str_at(metadata.and_then(|m| m.get("name"))) {
            "" => str_at(metadata.and_then(|m| m.get("generateName"))),
            name => name,
        };
        Self {
            group,
            version,
            kind: str_at(resource.get("kind")),
            name,
            namespace: str_at(metadata.and_then(|m| m.get("namespace"))),
            labels: string_map(metadata.and_then(|m| m.get("labels"))),
            annotations: string_map(metadata.and_then(|m| m.get("annotations"))),
        }
    }
}

/// Whether the kind pattern (as written in `kinds`: `Pod`, `v1/Pod`,
/// `apps/v1/Deployment`, `apps/*/Deployment`, `*`, `Pod/ephemeralcontainers`, …)
/// matches a resource with this `apiVersion` and `kind` (no subresource).
pub fn kind_matches(pattern: &str, api_version: &str, kind: &str) -> bool {
    kind_matches_subresource(pattern, api_version, kind, "")
}

/// [`kind_matches`] for a request on a subresource (e.g. `ephemeralcontainers`,
/// `status`). A pattern without subresource matches any subresource; a pattern with
/// one matches only that subresource (so `Pod/ephemeralcontainers` does not match a
/// plain Pod).
pub fn kind_matches_subresource(
    pattern: &str,
    api_version: &str,
    kind: &str,
    subresource: &str,
) -> bool {
    let (group, version) = split_api_version(api_version);
    let (pg, pv, pk, ps) = parse_kind_selector(pattern);
    wildcard_match(pg, group)
        && wildcard_match(pv, version)
        && wildcard_match(pk, kind)
        && (ps.is_empty() || wildcard_match(ps, subresource))
}

/// Error in a label selector (Kubernetes rejects such selectors; Kyverno then
/// treats the filter as not matching). Unknown operators are already rejected when
/// the policy is parsed.
fn selector_error(sel: &LabelSelector) -> Option<String> {
    for req in &sel.match_expressions {
        match req.operator {
            SelectorOperator::In | SelectorOperator::NotIn if req.values.is_empty() => {
                return Some(format!(
                    "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty (key {})",
                    req.key
                ));
            }
            SelectorOperator::Exists | SelectorOperator::DoesNotExist if !req.values.is_empty() => {
                return Some(format!(
                    "values: Invalid value: {:?}: values set must be empty for exists and does not exist (key {})",
                    req.values, req.key
                ));
            }
            _ => {}
        }
    }
    None
}

/// Whether the label selector matches `labels`, as Kyverno's `CheckSelector`:
/// `matchLabels` entries are equalities, except that an entry with `*`/`?` in its key
/// or value holds when some label matches both wildcards; `matchExpressions` with
/// `In`, `NotIn` (also true when the label is absent), `Exists`, `DoesNotExist`. An
/// empty selector matches everything; an invalid one (`In`/`NotIn` without values,
/// `Exists`/`DoesNotExist` with values) matches nothing.
pub fn label_selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    check_selector(sel, labels).unwrap_or(false)
}

fn check_selector(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> Result<bool, String> {
    if let Some(err) = selector_error(sel) {
        return Err(err);
    }
    for (k, v) in &sel.match_labels {
        let ok = if contains_wildcard(k) || contains_wildcard(v) {
            labels
                .iter()
                .any(|(lk, lv)| wildcard_match(k, lk) && wildcard_match(v, lv))
        } else {
            labels.get(k) == Some(v)
        };
        if !ok {
            return Ok(false);
        }
    }
    for req in &sel.match_expressions {
        let actual = labels.get(&req.key);
        let ok = match req.operator {
            SelectorOperator::In => actual.is_some_and(|a| req.values.contains(a)),
            SelectorOperator::NotIn => actual.is_none_or(|a| !req.values.contains(a)),
            SelectorOperator::Exists => actual.is_some(),
            SelectorOperator::DoesNotExist => actual.is_none(),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn annotations_match(
    expected: &BTreeMap<String, String>,
    actual: &BTreeMap<String, String>,
) -> bool {
    expected.iter().all(|(k, v)| {
        actual
            .iter()
            .any(|(ak, av)| wildcard_match(k, ak) && wildcard_match(v, av))
    })
}

fn description_is_empty(d: &ResourceDescription) -> bool {
    d.kinds.is_empty()
        && d.name.as_deref().is_none_or(str::is_empty)
        && d.names.is_empty()
        && d.namespaces.is_empty()
        && d.annotations.is_empty()
        && d.selector.is_none()
        && d.namespace_selector.is_none()
        && d.operations.is_empty()
}

/// Kyverno's `doesResourceMatchConditionBlock` for the resource part: the reasons
/// the description does not match (empty when it matches).
fn description_reasons(
    d: &ResourceDescription,
    res: &ResourceView<'_>,
    ctx: &MatchContext,
) -> Vec<String> {
    let mut errs = Vec::new();
    if !d.kinds.is_empty() {
        let api_version = if res.group.is_empty() {
            res.version.to_owned()
        } else {
            format!("{}/{}", res.group, res.version)
        };
        if !d
            .kinds
            .iter()
            .any(|k| kind_matches(k, &api_version, res.kind))
        {
            errs.push(format!("kind does not match {:?}", d.kinds));
        }
    }
    if let Some(name) = d.name.as_deref().filter(|n| !n.is_empty())
        && !wildcard_match(name, res.name)
    {
        errs.push("name does not match".to_owned());
    }
    if !d.names.is_empty() && !d.names.iter().any(|n| wildcard_match(n, res.name)) {
        errs.push("none of the names match".to_owned());
    }
    if !d.namespaces.is_empty() {
        let ns = if res.kind == "Namespace" {
            res.name
        } else {
            res.namespace
        };
        if !d.namespaces.iter().any(|p| wildcard_match(p, ns)) {
            errs.push("namespace does not match".to_owned());
        }
    }
    if !d.annotations.is_empty() && !annotations_match(&d.annotations, &res.annotations) {
        errs.push("annotations does not match".to_owned());
    }
    if let Some(sel) = &d.selector {
        match check_selector(sel, &res.labels) {
            Err(e) => errs.push(format!("failed to parse selector: {e}")),
            Ok(false) => errs.push("selector does not match".to_owned()),
            Ok(true) => {}
        }
    }
    if let Some(sel) = &d.namespace_selector
        && res.kind != "Namespace"
        && !res.kind.is_empty()
        && let Some(namespace_labels) = &ctx.namespace_labels
    {
        match check_selector(sel, namespace_labels) {
            Err(e) => errs.push(format!("failed to parse namespace selector: {e}")),
            Ok(false) => errs.push("namespace selector does not match".to_owned()),
            Ok(true) => {}
        }
    }
    if !d.operations.is_empty() && !d.operations.iter().any(|op| op == ctx.operation.as_str()) {
        errs.push("operation does not match".to_owned());
    }
    errs
}

/// The request's user, as far as matching needs it: Kyverno's `RequestInfo`.
#[derive(Default)]
struct RequestUser {
    username: String,
    groups: Vec<String>,
    roles: Vec<String>,
    cluster_roles: Vec<String>,
}

impl RequestUser {
    /// Reads `ctx.user_info`: either an AdmissionReview `userInfo` (`username`,
    /// `groups`) or Kyverno's `RequestInfo` shape (`roles`, `clusterRoles`,
    /// `userInfo`). `None` when there is no request information at all.
    fn from_context(ctx: &MatchContext) -> Option<Self> {
        let value = ctx.user_info.as_ref()?;
        let object = value.as_object().filter(|o| !o.is_empty())?;
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let user = object.get("userInfo").unwrap_or(value);
        Some(Self {
            username: user
                .get("username")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            groups: strings(user.get("groups")),
            roles: strings(object.get("roles")),
            cluster_roles: strings(object.get("clusterRoles")),
        })
    }
}

/// The user-based criteria of a filter (Kyverno's `UserInfo`).
struct UserCriteria<'a> {
    subjects: &'a [Subject],
    roles: &'a [String],
    cluster_roles: &'a [String],
}

impl UserCriteria<'_> {
    fn is_empty(&self) -> bool {
        self.subjects.is_empty() && self.roles.is_empty() && self.cluster_roles.is_empty()
    }

    /// Kyverno's user checks: each given criterion must hold; within one, any entry.
    /// Roles and cluster roles are those the caller resolved (none by default), so a
    /// `roles`/`clusterRoles` criterion only holds when the caller supplies them.
    fn reasons(&self, user: &RequestUser) -> Vec<String> {
        let mut errs = Vec::new();
        if !self.roles.is_empty() && !user.roles.iter().any(|r| self.roles.contains(r)) {
            errs.push("user info does not match roles for the given conditionBlock".to_owned());
        }
        if !self.cluster_roles.is_empty()
            && !user
                .cluster_roles
                .iter()
                .any(|r| self.cluster_roles.contains(r))
        {
            errs.push(
                "user info does not match clustersRoles for the given conditionBlock".to_owned(),
            );
        }
        if !self.subjects.is_empty() && !self.subjects.iter().any(|s| subject_matches(s, user)) {
            errs.push("user info does not match subject for the given conditionBlock".to_owned());
        }
        errs
    }
}

/// Kyverno's `CheckSubjects` for one subject (names may hold wildcards).
fn subject_matches(subject: &Subject, user: &RequestUser) -> bool {
    match subject.kind.as_str() {
        "ServiceAccount" => {
            let username = format!(
                "system:serviceaccount:{}:{}",
                subject.namespace.as_deref().unwrap_or(""),
                subject.name
            );
            wildcard_match(&username, &user.username)
        }
        "Group" => user.groups.iter().any(|g| wildcard_match(&subject.name, g)),
        "User" => wildcard_match(&subject.name, &user.username),
        _ => false,
    }
}

/// One filter: a resource description and user criteria.
struct Filter<'a> {
    resources: &'a ResourceDescription,
    user: UserCriteria<'a>,
}

impl<'a> Filter<'a> {
    fn of(f: &'a ResourceFilter) -> Self {
        Self {
            resources: &f.resources,
            user: UserCriteria {
                subjects: &f.subjects,
                roles: &f.roles,
                cluster_roles: &f.cluster_roles,
            },
        }
    }

    /// The legacy form written directly under `match`/`exclude`.
    fn legacy(m: &'a MatchResources, empty: &'a ResourceDescription) -> Self {
        Self {
            resources: m.resources.as_ref().unwrap_or(empty),
            user: UserCriteria {
                subjects: &m.subjects,
                roles: &m.roles,
                cluster_roles: &m.cluster_roles,
            },
        }
    }

    fn is_empty(&self) -> bool {
        description_is_empty(self.resources) && self.user.is_empty()
    }

    /// Kyverno's `doesResourceMatchConditionBlock`: empty when the filter holds.
    fn reasons(
        &self,
        res: &ResourceView<'_>,
        ctx: &MatchContext,
        user: &RequestUser,
    ) -> Vec<String> {
        let mut errs = description_reasons(self.resources, res, ctx);
        errs.extend(self.user.reasons(user));
        errs
    }

    /// For match: reasons it does not hold (user criteria ignored without request
    /// information, as Kyverno does); an empty filter never holds.
    fn match_reasons(
        &self,
        res: &ResourceView<'_>,
        ctx: &MatchContext,
        user: Option<&RequestUser>,
    ) -> Vec<String> {
        let cleared;
        let (filter, user) = match user {
            Some(user) => (self, user),
            None => {
                cleared = Filter {
                    resources: self.resources,
                    user: UserCriteria {
                        subjects: &[],
                        roles: &[],
                        cluster_roles: &[],
                    },
                };
                (&cleared, &NO_USER)
            }
        };
        if filter.is_empty() {
            return vec!["match cannot be empty".to_owned()];
        }
        filter.reasons(res, ctx, user)
    }

    /// For exclude and PolicyExceptions: whether the (non-empty) filter certainly holds
    /// (unknown namespace labels or user prove nothing).
    fn holds_for_certain(
        &self,
        res: &ResourceView<'_>,
        ctx: &MatchContext,
        user: Option<&RequestUser>,
    ) -> bool {
        // Unknown namespace labels cannot prove an exclusion.
        if ctx.namespace_labels.is_none() && self.resources.namespace_selector.is_some() {
            return false;
        }
        !self.is_empty() && self.reasons(res, ctx, user.unwrap_or(&NO_USER)).is_empty()
    }
}

static NO_USER: RequestUser = RequestUser {
    username: String::new(),
    groups: Vec::new(),
    roles: Vec::new(),
    cluster_roles: Vec::new(),
};

const EXCLUDED_BY_ONE: &str = "resource excluded since one of the criteria excluded it";

fn match_reasons(m: &MatchResources, res: &ResourceView<'_>, ctx: &MatchContext) -> Vec<String> {
    let user = RequestUser::from_context(ctx);
    let user = user.as_ref();
    if !m.any.is_empty() {
        if m.any
            .iter()
            .any(|f| Filter::of(f).match_reasons(res, ctx, user).is_empty())
        {
            Vec::new()
        } else {
            vec!["no resource matched".to_owned()]
        }
    } else if !m.all.is_empty() {
        m.all
            .iter()
            .flat_map(|f| Filter::of(f).match_reasons(res, ctx, user))
            .collect()
    } else {
        let empty = ResourceDescription::default();
        Filter::legacy(m, &empty).match_reasons(res, ctx, user)
    }
}

fn exclude_reasons(m: &MatchResources, res: &ResourceView<'_>, ctx: &MatchContext) -> Vec<String> {
    let user = RequestUser::from_context(ctx);
    let user = user.as_ref();
    if !m.any.is_empty() {
        m.any
            .iter()
            .filter(|f| Filter::of(f).holds_for_certain(res, ctx, user))
            .map(|_| EXCLUDED_BY_ONE.to_owned())
            .collect()
    } else if !m.all.is_empty() {
        if m.all
            .iter()
            .all(|f| Filter::of(f).holds_for_certain(res, ctx, user))
        {
            vec!["resource excluded since the combination of all criteria exclude it".to_owned()]
        } else {
            Vec::new()
        }
    } else {
        let empty = ResourceDescription::default();
        if Filter::legacy(m, &empty).holds_for_certain(res, ctx, user) {
            vec![EXCLUDED_BY_ONE.to_owned()]
        } else {
            Vec::new()
        }
    }
}
