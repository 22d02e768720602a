//! Kyverno `verifyImages` policies as users write them (and, in [`ivp`], the CEL
//! ImageValidatingPolicy kinds; in [`exception`], PolicyExceptions): the model (legacy and current
//! fields), validation with path-qualified errors, match/exclude, autogen for pod
//! controllers, image extraction and patterns, and conditions (JMESPath variables and
//! Kyverno's operators). Pure: nothing here fetches or verifies. With the `schema` feature
//! the models also derive `schemars::JsonSchema` (imagegate-kube generates the CRDs from it).
#![deny(missing_docs)]

// Leaves: depend on nothing else in this crate.
pub mod error; // path-qualified load and validation errors
pub mod kinds; // pod controllers, template paths, apiVersion and kind-selector grammar
pub mod pattern; // the one wildcard matcher (`*`/`?`) and image patterns

pub mod actions; // Enforce or Audit per rule and namespace (validationFailureActionOverrides)
pub mod autogen; // rules derived for pod controllers
pub mod conditions; // JMESPath variables and Kyverno's operators
pub mod context; // rule `context` entries: model, variables, where ConfigMaps and API calls read
pub mod exception; // kyverno.io/v2 PolicyException: model, what it covers, Kyverno's skip message
pub mod images; // images of a resource and Kyverno's ImageInfo
pub mod ivp; // ImageValidatingPolicy (policies.kyverno.io): model, CEL, plan and evaluation
pub mod load; // policy files and texts → validated, normalised policies
pub mod matching; // match/exclude
pub mod model; // the kyverno.io/v1 policy model and legacy conversion
pub mod unsupported; // warnings for fields imagegate reads but does not act on
pub mod validate; // Kyverno's validation rules
