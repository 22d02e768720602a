//! Notation signatures made by the test kit's signer (its own chains, independent of the
//! verifier), pushed to a real docker-registry (2.8: no referrers API, so the
//! `sha256-<hex>` referrers tag) or served by the stub through the referrers API. Every
//! registry case runs from one table in both policy forms — a ClusterPolicy `type:
//! Notary` rule and an ImageValidatingPolicy `notary` attestor — so neither can drift;
//! then the request counts of a cold verification, and verdict keys per type.

use std::sync::Arc;

use imagegate_engine::{PolicySet, RuleStatus};
use imagegate_testkit::Registry;
use imagegate_testkit::notation::{
    self, COSE, JWS, KeySpec, NotationCa, NotationSigner, NotationTsa, SignOptions, Validity,
};
use imagegate_testkit::oci::Descriptor;
use imagegate_testkit::stub::{Stub, by_path};
use serde_json::{Value, json};

use crate::{assert_fails_with, check, check_with, engine, pod, verification};

const SBOM_TYPE: &str = "application/vnd.cyclonedx+json";

/// A `type: Notary` entry trusting `certificates` (`{cert, certChain, ctlog}`).
fn notary_entry(certificates: Value, extra: Value) -> imagegate_policy::model::ImageVerification {
    let mut entry = json!({
        "type": "Notary",
        "imageReferences": ["*"],
        "attestors": [{"entries": [{"certificates": certificates}]}],
    });
    if let (Some(entry), Some(extra)) = (entry.as_object_mut(), extra.as_object()) {
        entry.extend(extra.clone());
    }
    verification(entry)
}

/// Pushes a fresh image `repo:v1`; its tagged reference and manifest descriptor.
fn push_image(registry: &Registry, repo: &str) -> (String, Descriptor) {
    let pusher = registry.pusher();
    let digest = pusher.push_image(repo, "v1");
    let (media_type, bytes) = pusher.get_manifest(repo, &digest).expect("pushed image");
    let descriptor = Descriptor::of(&media_type, &bytes);
    assert_eq!(descriptor.digest, digest);
    (format!("{}/{repo}:v1", registry.host()), descriptor)
}

fn sign(
    registry: &Registry,
    repo: &str,
    subject: &Descriptor,
    signer: &NotationSigner,
    envelope: &str,
    options: &SignOptions,
) {
    let bytes = if envelope == JWS {
        signer.sign_jws(subject, options)
    } else {
        signer.sign_cose(subject, options)
    };
    notation::push_signature(&registry.pusher(), repo, subject, &bytes, envelope);
}

/// The policy material of a case, written once and expressed in both policy forms.
#[derive(Clone, Copy, Default)]
struct Trust {
    /// The TSA store (`ctlog.tsaCertChain` / `notary.tsaCerts`).
    tsa: Tsa,
    /// Signatures live in `<repo>-signatures` (`repository` of the ClusterPolicy entry;
    /// Kyverno's ImageValidatingPolicy has no such field for notary attestors).
    signature_repository: bool,
    /// A signed SBOM referrer is required, whose `bomFormat` must be this.
    sbom: Option<&'static str>,
}

#[derive(Clone, Copy, Default, PartialEq)]
enum Tsa {
    #[default]
    None,
    /// The root that issued the kit's TSA.
    Trusted,
    /// A root that did not.
    Other,
}

/// How a case ends. The ClusterPolicy form checks the cause in its rule message; the
/// ImageValidatingPolicy form checks which validation failed (CEL sees counts, not
/// causes).
#[derive(Clone, Copy, Debug)]
enum Expect {
    Pass,
    /// The image's own signature does not verify: the cause.
    Signature(&'static str),
    /// No SBOM referrer verifies: the cause.
    Attestation(&'static str),
    /// The SBOM verifies, its payload fails the condition.
    Payload,
}

type Push = Box<dyn Fn(&Kit, &str) -> (String, Descriptor)>;

struct Case {
    name: &'static str,
    /// Pushes the case's image (and what refers to it) as `<repo>:v1`; its reference and
    /// manifest descriptor.
    push: Push,
    trust: Trust,
    expect: Expect,
    /// The ImageValidatingPolicy form's outcome where Kyverno's IVP cannot say the same.
    ivp_expect: Option<Expect>,
}

/// Certificates shared by the cases: the trusted CA, an untrusted one, a TSA.
struct Kit {
    registry: Registry,
    ca: NotationCa,
    other_ca: NotationCa,
    tsa_root: NotationCa,
    tsa: Arc<NotationTsa>,
    other_tsa_root: NotationCa,
}

impl Kit {
    fn new() -> Kit {
        let tsa_root = NotationCa::new("Engine TSA Root", KeySpec::EcP256);
        Kit {
            registry: Registry::start(),
            ca: NotationCa::new("Engine Test Root", KeySpec::EcP384),
            other_ca: NotationCa::new("Other Root", KeySpec::Rsa2048),
            tsa: Arc::new(tsa_root.tsa("Engine TSA")),
            tsa_root,
            other_tsa_root: NotationCa::new("Other TSA Root", KeySpec::EcP256),
        }
    }

    fn tsa_pem(&self, tsa: Tsa) -> Option<String> {
        match tsa {
            Tsa::None => None,
            Tsa::Trusted => Some(self.tsa_root.pem()),
            Tsa::Other => Some(self.other_tsa_root.pem()),
        }
    }
}

const SBOM: &[u8] = br#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[]}"#;

/// An image signed by the kit's CA with a `key` leaf in an `envelope`.
fn signed_with(key: KeySpec, envelope: &'static str) -> Push {
    Box::new(move |kit, repo| {
        let (image, subject) = push_image(&kit.registry, repo);
        let signer = kit.ca.signer(repo, key, Validity::current());
        let options = SignOptions::default();
        sign(&kit.registry, repo, &subject, &signer, envelope, &options);
        (image, subject)
    })
}

/// An image whose leaf expired (2021) and signed inside its validity, with a timestamp
/// by the kit's TSA when `stamped`.
fn expired_leaf(stamped: bool) -> Push {
    Box::new(move |kit, repo| {
        let (image, subject) = push_image(&kit.registry, repo);
        let signer = kit.ca.signer(repo, KeySpec::Rsa2048, Validity::expired());
        let options = SignOptions {
            signing_time: Some(Validity::EXPIRED_INSIDE),
            timestamp: stamped.then(|| (Arc::clone(&kit.tsa), Validity::EXPIRED_INSIDE)),
            ..SignOptions::default()
        };
        sign(&kit.registry, repo, &subject, &signer, COSE, &options);
        (image, subject)
    })
}

/// A signed image with an SBOM referrer, signed by `sbom_signer` (`None`: unsigned).
fn with_sbom(sbom_signer: Option<fn(&Kit) -> &NotationCa>) -> Push {
    Box::new(move |kit, repo| {
        let (image, subject) = signed_with(KeySpec::EcP256, JWS)(kit, repo);
        let pusher = kit.registry.pusher();
        let artifact = notation::push_artifact(&pusher, repo, &subject, SBOM_TYPE, SBOM, SBOM_TYPE);
        if let Some(ca) = sbom_signer {
            let signer = ca(kit).signer("sbom-signer", KeySpec::EcP256, Validity::current());
            let options = SignOptions::default();
            sign(&kit.registry, repo, &artifact, &signer, COSE, &options);
        }
        (image, subject)
    })
}

/// Every registry case of issue 13, each run as a ClusterPolicy `type: Notary` rule and
/// as an ImageValidatingPolicy `notary` attestor.
fn cases() -> Vec<Case> {
    let case = |name, push, trust, expect| Case {
        name,
        push,
        trust,
        expect,
        ivp_expect: None,
    };
    let sbom = |format| Trust {
        sbom: Some(format),
        ..Trust::default()
    };
    let tsa = |tsa| Trust {
        tsa,
        ..Trust::default()
    };
    let none = Trust::default();
    vec![
        case(
            "RSA-2048, JWS",
            signed_with(KeySpec::Rsa2048, JWS),
            none,
            Expect::Pass,
        ),
        case(
            "RSA-3072, COSE",
            signed_with(KeySpec::Rsa3072, COSE),
            none,
            Expect::Pass,
        ),
        case(
            "P-256, COSE",
            signed_with(KeySpec::EcP256, COSE),
            none,
            Expect::Pass,
        ),
        case(
            "P-256, JWS",
            signed_with(KeySpec::EcP256, JWS),
            none,
            Expect::Pass,
        ),
        case(
            "P-384, JWS",
            signed_with(KeySpec::EcP384, JWS),
            none,
            Expect::Pass,
        ),
        case(
            "P-384, COSE",
            signed_with(KeySpec::EcP384, COSE),
            none,
            Expect::Pass,
        ),
        case(
            "unsigned",
            Box::new(|kit, repo| push_image(&kit.registry, repo)),
            none,
            Expect::Signature(".attestors[0].entries[0].certificates: no signatures found"),
        ),
        case(
            "signed by another CA",
            Box::new(|kit, repo| {
                let (image, subject) = push_image(&kit.registry, repo);
                let signer = kit
                    .other_ca
                    .signer(repo, KeySpec::EcP256, Validity::current());
                let options = SignOptions::default();
                sign(&kit.registry, repo, &subject, &signer, JWS, &options);
                (image, subject)
            }),
            none,
            Expect::Signature("invalid signature: authenticity check failed"),
        ),
        case(
            "expired leaf, no timestamp",
            expired_leaf(false),
            none,
            Expect::Signature("invalid signature: authenticTimestamp check failed"),
        ),
        case(
            "tampered descriptor (size + 1)",
            Box::new(|kit, repo| {
                let (image, subject) = push_image(&kit.registry, repo);
                let signer = kit.ca.signer(repo, KeySpec::EcP256, Validity::current());
                let tampered = Descriptor {
                    size: subject.size + 1,
                    ..subject.clone()
                };
                let envelope = signer.sign_jws(&tampered, &SignOptions::default());
                notation::push_signature(&kit.registry.pusher(), repo, &subject, &envelope, JWS);
                (image, subject)
            }),
            none,
            Expect::Signature("invalid signature: integrity check failed"),
        ),
        case(
            "tampered descriptor beside a valid signature",
            Box::new(|kit, repo| {
                let (image, subject) = push_image(&kit.registry, repo);
                let signer = kit.ca.signer(repo, KeySpec::EcP256, Validity::current());
                let tampered = Descriptor {
                    digest: format!("sha256:{}", "0".repeat(64)),
                    ..subject.clone()
                };
                let envelope = signer.sign_cose(&tampered, &SignOptions::default());
                notation::push_signature(&kit.registry.pusher(), repo, &subject, &envelope, COSE);
                let options = SignOptions::default();
                sign(&kit.registry, repo, &subject, &signer, JWS, &options);
                (image, subject)
            }),
            none,
            Expect::Pass,
        ),
        case(
            "expired leaf, timestamp by a trusted TSA",
            expired_leaf(true),
            tsa(Tsa::Trusted),
            Expect::Pass,
        ),
        case(
            "expired leaf, timestamp, no TSA store",
            expired_leaf(true),
            none,
            Expect::Signature("invalid signature: authenticTimestamp check failed"),
        ),
        case(
            "expired leaf, timestamp by a TSA the store does not trust",
            expired_leaf(true),
            tsa(Tsa::Other),
            Expect::Signature("invalid signature"),
        ),
        case(
            "expired leaf, no timestamp, TSA store given",
            expired_leaf(false),
            tsa(Tsa::Trusted),
            Expect::Signature("invalid signature"),
        ),
        Case {
            name: "signatures in a signature repository",
            push: Box::new(|kit, repo| {
                let (image, subject) = push_image(&kit.registry, repo);
                let signer = kit.ca.signer(repo, KeySpec::EcP256, Validity::current());
                let options = SignOptions::default();
                let signatures = format!("{repo}-signatures");
                sign(
                    &kit.registry,
                    &signatures,
                    &subject,
                    &signer,
                    COSE,
                    &options,
                );
                (image, subject)
            }),
            trust: Trust {
                signature_repository: true,
                ..Trust::default()
            },
            expect: Expect::Pass,
            // Kyverno's IVP reads notary signatures from the image's repository only.
            ivp_expect: Some(Expect::Signature("no signatures found")),
        },
        case(
            "signed SBOM referrer",
            with_sbom(Some(|kit| &kit.ca)),
            sbom("CycloneDX"),
            Expect::Pass,
        ),
        case(
            "signed SBOM referrer of another format",
            with_sbom(Some(|kit| &kit.ca)),
            sbom("SPDX"),
            Expect::Payload,
        ),
        case(
            "unsigned SBOM referrer",
            with_sbom(None),
            sbom("CycloneDX"),
            Expect::Attestation("no signatures found"),
        ),
        case(
            "SBOM referrer signed by another CA",
            with_sbom(Some(|kit| &kit.other_ca)),
            sbom("CycloneDX"),
            Expect::Attestation("authenticity check failed"),
        ),
        case(
            "no SBOM referrer",
            signed_with(KeySpec::EcP256, JWS),
            sbom("CycloneDX"),
            Expect::Attestation(
                "no matching attestations: no attestations of type application/vnd.cyclonedx+json found",
            ),
        ),
    ]
}

/// The policy forms every case runs in.
#[derive(Clone, Copy, Debug)]
enum Form {
    ClusterPolicy,
    ImageValidatingPolicy,
}

/// The case's policy in `form` for images under the kit's registry; `repo` names the
/// signature repository.
fn policy(kit: &Kit, trust: &Trust, repo: &str, form: Form) -> PolicySet {
    let host = kit.registry.host();
    let tsa = kit.tsa_pem(trust.tsa);
    let text = match form {
        Form::ClusterPolicy => {
            let mut certificates = json!({"cert": kit.ca.pem()});
            if let Some(tsa) = &tsa {
                certificates["ctlog"] = json!({"tsaCertChain": tsa});
            }
            let attestors = json!([{"entries": [{"certificates": certificates}]}]);
            let mut entry = json!({
                "type": "Notary",
                "imageReferences": [format!("{host}/*")],
                "failureAction": "Enforce",
                "attestors": attestors,
            });
            if trust.signature_repository {
                entry["repository"] = json!(format!("{host}/{repo}-signatures"));
            }
            if let Some(format) = trust.sbom {
                entry["attestations"] = json!([{
                    "type": SBOM_TYPE,
                    "attestors": attestors,
                    "conditions": [{"all": [{
                        "key": "{{ bomFormat }}", "operator": "Equals", "value": format,
                    }]}],
                }]);
            }
            json!({
                "apiVersion": "kyverno.io/v1",
                "kind": "ClusterPolicy",
                "metadata": {"name": "notation"},
                "spec": {"rules": [{
                    "name": "verify",
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "verifyImages": [entry],
                }]},
            })
        }
        Form::ImageValidatingPolicy => {
            let mut notary = json!({"certs": {"value": kit.ca.pem()}});
            if let Some(tsa) = &tsa {
                notary["tsaCerts"] = json!({"value": tsa});
            }
            let mut validations = vec![json!({
                "expression": "images.containers.map(image, verifyImageSignatures(image, [attestors.notary])).all(e, e > 0)",
                "message": IVP_SIGNATURE,
            })];
            let mut spec = json!({
                "failurePolicy": "Fail",
                "validationActions": ["Deny"],
                "matchConstraints": {"resourceRules": [{
                    "apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE"], "resources": ["pods"],
                }]},
                "matchImageReferences": [{"glob": format!("{host}/*")}],
                "attestors": [{"name": "notary", "notary": notary}],
            });
            if let Some(format) = trust.sbom {
                spec["attestations"] = json!([{"name": "sbom", "referrer": {"type": SBOM_TYPE}}]);
                validations.push(json!({
                    "expression": "images.containers.map(image, verifyAttestationSignatures(image, attestations.sbom, [attestors.notary])).all(e, e > 0)",
                    "message": IVP_ATTESTATION,
                }));
                validations.push(json!({
                    "expression": format!("images.containers.map(image, extractPayload(image, attestations.sbom).bomFormat == '{format}').all(e, e)"),
                    "message": IVP_PAYLOAD,
                }));
            }
            spec["validations"] = json!(validations);
            json!({
                "apiVersion": "policies.kyverno.io/v1beta1",
                "kind": "ImageValidatingPolicy",
                "metadata": {"name": "ivpol-notary"},
                "spec": spec,
            })
        }
    };
    crate::policy_set(&text.to_string())
}

const IVP_SIGNATURE: &str = "failed to verify image with notary cert";
const IVP_ATTESTATION: &str = "failed to verify attestation with notary cert";
const IVP_PAYLOAD: &str = "the SBOM has another bomFormat";

/// Evaluates `image` under `form` on a fresh engine (so neither form reuses the other's
/// verdicts) and says how the outcome differs from `expect`, if it does.
async fn outcome_differs(
    policies: &PolicySet,
    form: Form,
    image: &str,
    subject: &Descriptor,
    expect: Expect,
) -> Option<String> {
    let response = engine().evaluate_both(policies, &pod(image)).await;
    let (policy, rule) = match form {
        Form::ClusterPolicy => ("notation", "verify"),
        Form::ImageValidatingPolicy => ("ivpol-notary", "ivpol-notary"),
    };
    let Some(rule) = response.rule(policy, rule) else {
        return Some(format!("the policy did not apply: {response:#?}"));
    };
    let expected_text = match (expect, form) {
        (Expect::Pass, _) => {
            let pinned = format!("{image}@{}", subject.digest);
            let patched = &response.patched["spec"]["containers"][0]["image"];
            return (rule.status != RuleStatus::Pass || response.blocked() || *patched != *pinned)
                .then(|| {
                    format!(
                        "expected a pass pinned to {pinned}; {:?} {:?}, image {patched}",
                        rule.status, rule.message
                    )
                });
        }
        (Expect::Signature(cause) | Expect::Attestation(cause), Form::ClusterPolicy) => {
            cause.to_owned()
        }
        (Expect::Payload, Form::ClusterPolicy) => {
            format!("attestation checks failed for {image} and predicate {SBOM_TYPE}")
        }
        (Expect::Signature(_), Form::ImageValidatingPolicy) => IVP_SIGNATURE.to_owned(),
        (Expect::Attestation(_), Form::ImageValidatingPolicy) => IVP_ATTESTATION.to_owned(),
        (Expect::Payload, Form::ImageValidatingPolicy) => IVP_PAYLOAD.to_owned(),
    };
    (rule.status != RuleStatus::Fail
        || !response.blocked()
        || !rule.message.contains(&expected_text))
    .then(|| {
        format!(
            "expected a denial saying {expected_text:?}; {:?} {:?}",
            rule.status, rule.message
        )
    })
}

#[tokio::test]
async fn every_case_in_both_policy_forms() {
    let kit = Kit::new();
    let mut mismatches = Vec::new();
    let cases = cases();
    for (i, case) in cases.iter().enumerate() {
        let repo = format!("case{i}");
        let (image, subject) = (case.push)(&kit, &repo);
        for form in [Form::ClusterPolicy, Form::ImageValidatingPolicy] {
            let expect = match form {
                Form::ClusterPolicy => case.expect,
                Form::ImageValidatingPolicy => case.ivp_expect.unwrap_or(case.expect),
            };
            let policies = policy(&kit, &case.trust, &repo, form);
            if let Some(why) = outcome_differs(&policies, form, &image, &subject, expect).await {
                mismatches.push(format!("{} ({form:?}): {why}", case.name));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} runs differ:\n{}",
        mismatches.len(),
        2 * cases.len(),
        mismatches.join("\n")
    );
}

#[tokio::test]
async fn a_cert_chain_is_trusted_as_cert_is_and_other_material_is_refused() {
    let kit = Kit::new();
    let (image, _) = signed_with(KeySpec::EcP256, JWS)(&kit, "app");
    // Kyverno trusts `cert` and `certChain` alike.
    check(
        &image,
        &notary_entry(json!({"certChain": kit.ca.pem()}), json!({})),
        None,
    )
    .await
    .unwrap();
    let keys = verification(json!({
        "type": "Notary",
        "imageReferences": ["*"],
        "attestors": [{"entries": [{"keys": {"publicKeys": "x"}}]}],
    }));
    assert_fails_with(
        check(&image, &keys, None).await,
        ".attestors[0].entries[0].keys: type Notary verifies with certificates",
    );
    assert_fails_with(
        check(
            &image,
            &notary_entry(json!({"cert": "not PEM"}), json!({})),
            None,
        )
        .await,
        ".attestors[0].entries[0].certificates: certificates:",
    );
}

/// One check of images under `host` trusting `cert`: a ClusterPolicy entry of `type_`
/// (`None`: no type, which is Cosign), or an ImageValidatingPolicy attestor of `type_`.
fn one_check(host: &str, form: Form, type_: Option<&str>, cert: &str) -> PolicySet {
    let text = match form {
        Form::ClusterPolicy => {
            let mut entry = json!({
                "imageReferences": [format!("{host}/*")],
                "failureAction": "Enforce",
                "attestors": [{"entries": [{"certificates": {"cert": cert}}]}],
            });
            if let Some(type_) = type_ {
                entry["type"] = json!(type_);
            }
            json!({
                "apiVersion": "kyverno.io/v1",
                "kind": "ClusterPolicy",
                "metadata": {"name": "check"},
                "spec": {"rules": [{
                    "name": "verify",
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "verifyImages": [entry],
                }]},
            })
        }
        Form::ImageValidatingPolicy => {
            let attestor = match type_ {
                Some("Notary") => json!({"name": "a", "notary": {"certs": {"value": cert}}}),
                _ => json!({"name": "a", "cosign": {"certificate": {"cert": {"value": cert}}}}),
            };
            json!({
                "apiVersion": "policies.kyverno.io/v1beta1",
                "kind": "ImageValidatingPolicy",
                "metadata": {"name": "check"},
                "spec": {
                    "failurePolicy": "Fail",
                    "validationActions": ["Deny"],
                    "matchConstraints": {"resourceRules": [{
                        "apiGroups": [""], "apiVersions": ["v1"],
                        "operations": ["CREATE"], "resources": ["pods"],
                    }]},
                    "matchImageReferences": [{"glob": format!("{host}/*")}],
                    "attestors": [attestor],
                    "validations": [{
                        "expression": "images.containers.map(image, verifyImageSignatures(image, [attestors.a])).all(e, e > 0)",
                        "message": "not signed",
                    }],
                },
            })
        }
    };
    crate::policy_set(&text.to_string())
}

#[tokio::test]
async fn notary_and_cosign_checks_of_one_certificate_never_share_a_verdict() {
    let kit = Kit::new();
    let host = kit.registry.host();
    let (image, _) = signed_with(KeySpec::EcP256, JWS)(&kit, "app");
    let cert = kit.ca.pem();
    // (form, type, whether the Notation-signed image passes): the same image and
    // certificate, only the verification type differs.
    let checks = [
        (Form::ClusterPolicy, Some("Notary"), true),
        (Form::ClusterPolicy, Some("Cosign"), false),
        (Form::ClusterPolicy, None, false),
        (Form::ImageValidatingPolicy, Some("Notary"), true),
        (Form::ImageValidatingPolicy, Some("Cosign"), false),
    ];
    // Each order on one engine: whichever type is verified first, its verdict (kept:
    // verified for an hour, failed for 30 s) must not answer for the other type. Within
    // a type the two policy forms share one verdict, so the cache holds exactly one
    // verdict per type verified so far.
    let forward: Vec<_> = checks.iter().collect();
    let backward: Vec<_> = checks.iter().rev().collect();
    for order in [forward, backward] {
        let engine = engine();
        let mut types_seen = std::collections::BTreeSet::new();
        for (form, type_, passes) in order {
            let policies = one_check(&host, *form, *type_, &cert);
            let response = engine.evaluate_both(&policies, &pod(&image)).await;
            let rule = response
                .policies
                .first()
                .and_then(|p| p.rules.first())
                .unwrap_or_else(|| panic!("{form:?} {type_:?} did not apply: {response:#?}"));
            let expected = if *passes {
                RuleStatus::Pass
            } else {
                RuleStatus::Fail
            };
            assert_eq!(
                rule.status, expected,
                "{form:?} {type_:?}: {}",
                rule.message
            );
            assert_eq!(response.blocked(), !passes, "{form:?} {type_:?}");
            types_seen.insert(*type_ == Some("Notary"));
            assert_eq!(
                engine.cached_verdicts().await,
                types_seen.len() as u64,
                "after {form:?} {type_:?}"
            );
        }
    }
}

/// The registry requests of a verification sent after `before` (pushes excluded).
fn requests_since(registry: &Registry, before: usize) -> Vec<String> {
    registry.requests()[before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test]
async fn a_cold_verification_of_a_tag_costs_four_requests_once_the_registry_is_known() {
    let registry = Registry::start();
    let ca = NotationCa::new("Engine Test Root", KeySpec::EcP256);
    let signer = ca.signer("signer", KeySpec::EcP256, Validity::current());
    let entry = notary_entry(json!({"cert": ca.pem()}), json!({}));
    let mut images = Vec::new();
    for repo in ["first", "second"] {
        let (image, subject) = push_image(&registry, repo);
        sign(
            &registry,
            repo,
            &subject,
            &signer,
            JWS,
            &SignOptions::default(),
        );
        images.push(image);
    }
    let verifier = crate::verifier();
    let before = registry.requests().len();
    check_with(&verifier, &images[0], &entry, None)
        .await
        .unwrap();
    let first = requests_since(&registry, before);
    // HEAD (tag → descriptor), referrers API (404 on docker-registry 2.8), fallback
    // tag, signature manifest, envelope.
    assert_eq!(first.len(), 5, "{first:#?}");
    assert!(first[1].contains("/referrers/"), "{first:#?}");

    let before = registry.requests().len();
    check_with(&verifier, &images[1], &entry, None)
        .await
        .unwrap();
    let second = requests_since(&registry, before);
    // The registry is known to lack the referrers API: HEAD, fallback tag, signature
    // manifest, envelope.
    assert_eq!(second.len(), 4, "{second:#?}");
    assert!(
        second[0].starts_with("HEAD /v2/second/manifests/v1"),
        "{second:#?}"
    );
    assert!(
        !second.iter().any(|r| r.contains("/referrers/")),
        "{second:#?}"
    );
}

#[tokio::test]
async fn signatures_through_the_referrers_api_cost_four_requests() {
    let ca = NotationCa::new("Engine Test Root", KeySpec::Rsa2048);
    let signer = ca.signer("api-signer", KeySpec::Rsa2048, Validity::current());
    let (answers, subject) = notation::referrers_api_image("lab/app", "v1", &signer);
    let stub = Stub::start(by_path(answers)).await;
    let image = format!("{}/lab/app:v1", stub.host());
    // A fresh client: nothing is known of this registry yet.
    check(
        &image,
        &notary_entry(json!({"cert": ca.pem()}), json!({})),
        None,
    )
    .await
    .unwrap();
    let log = stub.log();
    assert_eq!(log.len(), 4, "{log:#?}");
    assert!(
        log[0].starts_with("HEAD /v2/lab/app/manifests/v1"),
        "{log:#?}"
    );
    assert!(
        log[1].starts_with(&format!(
            "GET /v2/lab/app/referrers/{}?artifactType=application%2Fvnd.cncf.notary.signature",
            subject.digest
        )),
        "{log:#?}"
    );
    let unserved = notation::UNSERVED_REFERRER.trim_start_matches("sha256:");
    assert!(!log.iter().any(|r| r.contains(unserved)), "{log:#?}");
}
