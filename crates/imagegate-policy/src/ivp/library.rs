//! The CEL environment of ImageValidatingPolicies: cel-rust's standard library with the
//! extensions Kubernetes policies use (strings, lists, math, base64, optional values,
//! regex `matches`/`find`/`findAll`, `sets.*`, quantities), Kyverno's image helpers (`image`, `parseImageReference`,
//! `isImage`, `.registry()`, `.repository()`, `.identifier()`, `.tag()`, `.digest()`,
//! `.containsDigest()`), and Kyverno's verification functions bound to results the engine
//! produced before evaluation: `verifyImageSignatures`, `verifyAttestationSignatures`,
//! `extractPayload`, `getImageData`. Nothing here does I/O: the verification functions
//! read [`VerificationResults`] and fail when a result is missing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use cel::extractors::This;
use cel::objects::{Key, Map};
use cel::{Context, Env, ExecutionError, Value};
use imagegate_oci::reference::Reference;

use super::results::{Check, CheckOutcome, VerificationResults, Verifications};
use crate::conditions::quantity::{Quantity, parse_quantity};

/// Kubernetes/Kyverno CEL features cel-rust 0.15 does not provide (or imagegate does not
/// register because they do I/O), reported at load time when an expression uses them.
pub const UNSUPPORTED_FUNCTIONS: &[(&str, &str)] = &[
    ("url", "Kubernetes URL library"),
    ("isURL", "Kubernetes URL library"),
    ("ip", "Kubernetes IP library"),
    ("isIP", "Kubernetes IP library"),
    ("cidr", "Kubernetes CIDR library"),
    ("isCIDR", "Kubernetes CIDR library"),
    ("authorizer", "Kubernetes authorizer library"),
    ("add", "Kubernetes quantity arithmetic"),
    ("sub", "Kubernetes quantity arithmetic"),
];

/// Namespaces whose calls (`math.greatest(..)`) parse as a call on an identifier.
pub(crate) const NAMESPACES: &[&str] = &[
    "math",
    "lists",
    "strings",
    "base64",
    "optional",
    "sets",
    "http",
    "resource",
    "globalContext",
    "imagedata",
    "image",
    "json",
    "yaml",
    "time",
    "random",
    "hash",
    "x509",
    "gzip",
    "cel",
];

/// Kyverno functions that read the cluster or the network while CEL runs; imagegate
/// keeps CEL free of I/O, so a policy using them is refused at load time.
/// (`image.GetMetadata(..)` is Kyverno's image-data library, not the `image(..)` helper.)
pub(crate) const IO_NAMESPACES: &[&str] =
    &["http", "resource", "globalContext", "imagedata", "image"];

/// The shared environment (built once).
pub(crate) fn env() -> Result<Arc<Env>, String> {
    static ENV: OnceLock<Result<Arc<Env>, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        for (name, ext) in [
            ("strings", cel::extensions::strings as fn(&mut Env) -> _),
            ("lists", cel::extensions::lists),
            ("math", cel::extensions::math),
            ("encoders", cel::extensions::encoders),
        ] {
            env.add_extension(ext)
                .map_err(|e| format!("CEL extension {name}: {e}"))?;
        }
        Ok(Arc::new(env))
    })
    .clone()
}

/// Compiles `source` with the shared environment.
pub(crate) fn compile(source: &str) -> Result<cel::Program, String> {
    let env = env()?;
    env.compile(source).map_err(|e| e.to_string())
}

/// A fresh context with the image helpers and Kubernetes extensions registered.
pub(crate) fn base_context() -> Result<Context<'static, 'static>, String> {
    let mut ctx = Context::with_env(env()?);
    register_image_helpers(&mut ctx).map_err(|e| e.to_string())?;
    register_kubernetes(&mut ctx).map_err(|e| e.to_string())?;
    Ok(ctx)
}

/// The Kubernetes CEL libraries cel-rust lacks and policies use: sets, regex
/// `find`/`findAll`, and quantities (comparison and conversion; not arithmetic).
fn register_kubernetes(ctx: &mut Context<'_, '_>) -> Result<(), cel::DeclarationError> {
    ctx.add_function("sets.contains", |a: Arc<Vec<Value>>, b: Arc<Vec<Value>>| {
        b.iter().all(|x| a.contains(x))
    })?;
    ctx.add_function(
        "sets.equivalent",
        |a: Arc<Vec<Value>>, b: Arc<Vec<Value>>| {
            b.iter().all(|x| a.contains(x)) && a.iter().all(|x| b.contains(x))
        },
    )?;
    ctx.add_function(
        "sets.intersects",
        |a: Arc<Vec<Value>>, b: Arc<Vec<Value>>| b.iter().any(|x| a.contains(x)),
    )?;
    ctx.add_function(
        "find",
        |This(s): This<Arc<String>>, re: Arc<String>| -> Result<Value, ExecutionError> {
            let re = regex("find", &re)?;
            let found = re.find(&s).map(|m| m.as_str()).unwrap_or_default();
            Ok(Value::String(Arc::new(found.to_owned())))
        },
    )?;
    ctx.add_function(
        "findAll",
        |This(s): This<Arc<String>>,
         cel::extractors::Arguments(args): cel::extractors::Arguments|
         -> Result<Value, ExecutionError> {
            let (re, limit) = match args.as_slice() {
                [Value::String(re)] => (re, -1),
                [Value::String(re), Value::Int(n)] => (re, *n),
                _ => {
                    return Err(ExecutionError::function_error(
                        "findAll",
                        "expects a regular expression and an optional limit",
                    ));
                }
            };
            let re = regex("findAll", re)?;
            let take = usize::try_from(limit).unwrap_or(usize::MAX);
            Ok(Value::List(Arc::new(
                re.find_iter(&s)
                    .take(take)
                    .map(|m| Value::String(Arc::new(m.as_str().to_owned())))
                    .collect(),
            )))
        },
    )?;
    ctx.add_function("isQuantity", |s: Arc<String>| parse_quantity(&s).is_some())?;
    ctx.add_function(
        "quantity",
        |s: Arc<String>| -> Result<Value, ExecutionError> {
            quantity("quantity", &s).map(|_| Value::String(s))
        },
    )?;
    ctx.add_function(
        "compareTo",
        |This(a): This<Arc<String>>, b: Arc<String>| -> Result<i64, ExecutionError> {
            let (a, b) = (quantity("compareTo", &a)?, quantity("compareTo", &b)?);
            Ok(a.nanos.cmp(&b.nanos) as i64)
        },
    )?;
    ctx.add_function(
        "isLessThan",
        |This(a): This<Arc<String>>, b: Arc<String>| -> Result<bool, ExecutionError> {
            Ok(quantity("isLessThan", &a)?.nanos < quantity("isLessThan", &b)?.nanos)
        },
    )?;
    ctx.add_function(
        "isGreaterThan",
        |This(a): This<Arc<String>>, b: Arc<String>| -> Result<bool, ExecutionError> {
            Ok(quantity("isGreaterThan", &a)?.nanos > quantity("isGreaterThan", &b)?.nanos)
        },
    )?;
    ctx.add_function(
        "asApproximateFloat",
        |This(a): This<Arc<String>>| -> Result<f64, ExecutionError> {
            Ok(quantity("asApproximateFloat", &a)?.as_f64())
        },
    )?;
    ctx.add_function(
        "isInteger",
        |This(a): This<Arc<String>>| -> Result<bool, ExecutionError> {
            Ok(quantity("isInteger", &a)?.nanos % 1_000_000_000 == 0)
        },
    )?;
    ctx.add_function(
        "asInteger",
        |This(a): This<Arc<String>>| -> Result<i64, ExecutionError> {
            let q = quantity("asInteger", &a)?;
            if q.nanos % 1_000_000_000 != 0 {
                return Err(ExecutionError::function_error(
                    "asInteger",
                    format!("{a} is not an integer"),
                ));
            }
            i64::try_from(q.nanos / 1_000_000_000).map_err(|_| {
                ExecutionError::function_error("asInteger", format!("{a} does not fit an int"))
            })
        },
    )?;
    ctx.add_function(
        "sign",
        |This(a): This<Arc<String>>| -> Result<i64, ExecutionError> {
            Ok(quantity("sign", &a)?.nanos.signum() as i64)
        },
    )?;
    Ok(())
}

/// Largest compiled regular expression accepted from an expression's arguments.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

fn regex(function: &str, pattern: &str) -> Result<regex::Regex, ExecutionError> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| ExecutionError::function_error(function, e))
}

fn quantity(function: &str, s: &str) -> Result<Quantity, ExecutionError> {
    parse_quantity(s)
        .ok_or_else(|| ExecutionError::function_error(function, format!("'{s}' is not a quantity")))
}

fn register_image_helpers(ctx: &mut Context<'_, '_>) -> Result<(), cel::DeclarationError> {
    ctx.add_function("image", |s: Arc<String>| -> Result<Value, ExecutionError> {
        parse_image("image", &s).map(|_| Value::String(s))
    })?;
    ctx.add_function(
        "parseImageReference",
        |s: Arc<String>| -> Result<Value, ExecutionError> {
            parse_image("parseImageReference", &s).map(|_| Value::String(s))
        },
    )?;
    ctx.add_function("isImage", |s: Arc<String>| Reference::parse(&s).is_ok())?;
    ctx.add_function(
        "registry",
        |This(s): This<Arc<String>>| -> Result<Value, ExecutionError> {
            let r = parse_image("registry", &s)?;
            // go-containerregistry names Docker Hub `index.docker.io`.
            let registry = match r.registry() {
                "docker.io" => "index.docker.io",
                other => other,
            };
            Ok(Value::String(Arc::new(registry.to_owned())))
        },
    )?;
    ctx.add_function(
        "repository",
        |This(s): This<Arc<String>>| -> Result<Value, ExecutionError> {
            let r = parse_image("repository", &s)?;
            Ok(Value::String(Arc::new(r.repository().to_owned())))
        },
    )?;
    ctx.add_function(
        "identifier",
        |This(s): This<Arc<String>>| -> Result<Value, ExecutionError> {
            let r = parse_image("identifier", &s)?;
            let id = r.digest().or(r.tag()).unwrap_or_default();
            Ok(Value::String(Arc::new(id.to_owned())))
        },
    )?;
    ctx.add_function(
        "tag",
        |This(s): This<Arc<String>>| -> Result<Value, ExecutionError> {
            let r = parse_image("tag", &s)?;
            // A reference with a digest is a digest reference in go-containerregistry:
            // its tag reads as empty.
            let tag = if r.digest().is_some() {
                ""
            } else {
                r.tag().unwrap_or_default()
            };
            Ok(Value::String(Arc::new(tag.to_owned())))
        },
    )?;
    ctx.add_function(
        "digest",
        |This(s): This<Arc<String>>| -> Result<Value, ExecutionError> {
            let r = parse_image("digest", &s)?;
            Ok(Value::String(Arc::new(
                r.digest().unwrap_or_default().to_owned(),
            )))
        },
    )?;
    ctx.add_function(
        "containsDigest",
        |This(s): This<Arc<String>>| -> Result<bool, ExecutionError> {
            Ok(parse_image("containsDigest", &s)?.digest().is_some())
        },
    )?;
    Ok(())
}

fn parse_image(function: &str, s: &str) -> Result<Reference, ExecutionError> {
    Reference::parse(s).map_err(|e| ExecutionError::function_error(function, e))
}

/// What the verification functions need besides the results: the policy's attestation
/// names, and which images the policy's `matchImageReferences` select.
pub(crate) struct Bindings {
    /// Attestation names declared by the policy.
    pub attestations: Vec<String>,
    /// Images selected by `matchImageReferences` (others verify as 0, as in Kyverno).
    pub matched: Vec<String>,
    /// The engine's results.
    pub results: Arc<dyn VerificationResults + Send + Sync>,
    /// What the functions were asked, for `required`.
    pub record: Arc<Mutex<Verifications>>,
}

/// Registers the verification functions on `ctx`.
pub(crate) fn register_verification(
    ctx: &mut Context<'_, '_>,
    bindings: &Arc<Bindings>,
) -> Result<(), cel::DeclarationError> {
    let b = Arc::clone(bindings);
    ctx.add_function(
        "verifyImageSignatures",
        move |image: Arc<String>, attestors: Arc<Vec<Value>>| -> Result<i64, ExecutionError> {
            let names = attestor_names("verifyImageSignatures", &attestors)?;
            count_verified(&b, "verifyImageSignatures", &image, &names, |attestor| {
                Check::Signature {
                    attestor: attestor.to_owned(),
                }
            })
        },
    )?;
    let b = Arc::clone(bindings);
    ctx.add_function(
        "verifyAttestationSignatures",
        move |image: Arc<String>,
              attestation: Arc<String>,
              attestors: Arc<Vec<Value>>|
              -> Result<i64, ExecutionError> {
            const F: &str = "verifyAttestationSignatures";
            if !b.attestations.iter().any(|a| **a == *attestation) {
                return Err(ExecutionError::function_error(
                    F,
                    format!("attestation not found in policy: {attestation}"),
                ));
            }
            let names = attestor_names(F, &attestors)?;
            count_verified(&b, F, &image, &names, |attestor| Check::Attestation {
                attestor: attestor.to_owned(),
                attestation: attestation.to_string(),
            })
        },
    )?;
    let b = Arc::clone(bindings);
    ctx.add_function(
        "extractPayload",
        move |image: Arc<String>, attestation: Arc<String>| -> Result<Value, ExecutionError> {
            const F: &str = "extractPayload";
            if !b.attestations.iter().any(|a| **a == *attestation) {
                return Err(ExecutionError::function_error(
                    F,
                    format!("attestation not found in policy: {attestation}"),
                ));
            }
            match b.results.payload(&image, &attestation) {
                Some(payload) => cel::to_value(payload)
                    .map_err(|e| ExecutionError::function_error(F, e.to_string())),
                None => Err(ExecutionError::function_error(
                    F,
                    format!(
                        "failed to get payload: attestation {attestation} of image {image} was not verified"
                    ),
                )),
            }
        },
    )?;
    let b = Arc::clone(bindings);
    ctx.add_function(
        "getImageData",
        move |image: Arc<String>| -> Result<Value, ExecutionError> {
            match b.results.image_data(&image) {
                Some(data) => cel::to_value(data)
                    .map_err(|e| ExecutionError::function_error("getImageData", e.to_string())),
                None => Err(ExecutionError::function_error(
                    "getImageData",
                    format!("failed to get imagedata for {image}: not fetched"),
                )),
            }
        },
    )?;
    Ok(())
}

/// The attestor names of a list of `attestors.<name>` values.
fn attestor_names(function: &str, attestors: &[Value]) -> Result<Vec<String>, ExecutionError> {
    attestors
        .iter()
        .map(|a| match a {
            Value::Map(map) => match map.map.get(&Key::String(Arc::new("name".to_owned()))) {
                Some(Value::String(name)) => Ok(name.to_string()),
                _ => Err(ExecutionError::function_error(function, "not an attestor")),
            },
            _ => Err(ExecutionError::function_error(
                function,
                "expects a list of attestors (attestors.<name>)",
            )),
        })
        .collect()
}

fn count_verified(
    b: &Bindings,
    function: &str,
    image: &str,
    attestors: &[String],
    check: impl Fn(&str) -> Check,
) -> Result<i64, ExecutionError> {
    if !b.matched.iter().any(|m| m == image) {
        return Ok(0);
    }
    let mut count = 0i64;
    for attestor in attestors {
        let check = check(attestor);
        match b.results.outcome(image, &check) {
            Some(CheckOutcome::Verified) => count += 1,
            Some(CheckOutcome::Failed { .. }) => {}
            Some(CheckOutcome::Error { reason }) => {
                return Err(ExecutionError::function_error(
                    function,
                    format!("failed to verify {image} with {check}: {reason}"),
                ));
            }
            None => {
                return Err(ExecutionError::function_error(
                    function,
                    format!(
                        "no result for {image} with {check}: it was not in the verification plan"
                    ),
                ));
            }
        }
    }
    if !attestors.is_empty()
        && let Ok(mut record) = b.record.lock()
    {
        record.record(image, count > 0);
    }
    Ok(count)
}

/// A CEL map from string keys.
pub(crate) fn string_map(entries: impl IntoIterator<Item = (String, Value)>) -> Value {
    let map: std::collections::HashMap<Key, Value> = entries
        .into_iter()
        .map(|(k, v)| (Key::String(Arc::new(k)), v))
        .collect();
    Value::Map(Map { map: Arc::new(map) })
}

/// The `attestors` variable: `attestors.<name>` is `{name: <name>}`.
pub(crate) fn attestors_value(names: &[String]) -> Value {
    string_map(names.iter().map(|n| {
        (
            n.clone(),
            string_map([("name".to_owned(), Value::String(Arc::new(n.clone())))]),
        )
    }))
}

/// The `attestations` variable: `attestations.<name>` is `<name>`.
pub(crate) fn attestations_value(names: &[String]) -> Value {
    string_map(
        names
            .iter()
            .map(|n| (n.clone(), Value::String(Arc::new(n.clone())))),
    )
}

/// The `images` variable.
pub(crate) fn images_value(images: &BTreeMap<String, Vec<String>>) -> Value {
    string_map(images.iter().map(|(k, v)| {
        (
            k.clone(),
            Value::List(Arc::new(
                v.iter()
                    .map(|s| Value::String(Arc::new(s.clone())))
                    .collect(),
            )),
        )
    }))
}
