//! The AdmissionReview fixtures of the binary (`crates/imagegate/tests/data/reviews/`,
//! read in place, their README says what each must get) answered by the engine alone:
//! `admission::review` over an engine from `Engine::builder`, against a real registry
//! holding the images they name (the test kit's fixture [`World`]). The binary's
//! `imagegate review` tests check the same answers through the process; these pin them
//! to the engine, with the rule results behind each answer.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use imagegate_engine::admission::{AdmissionReview, Answered, review};
use imagegate_engine::{EngineResponse, Phase, RuleStatus};
use imagegate_policy::model::FailureAction;
use imagegate_testkit::fixtures::{SIGNED_POD_REVIEWS, World, decoded_patch};
use serde_json::{Value, json};

use crate::{engine, policy_set};

/// The binary crate's fixtures (read from there, never copied).
fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../imagegate/tests/data")
}

/// The fixtures materialised for one world, and the reviews answered so far.
struct Fixtures {
    world: World,
    dir: tempfile::TempDir,
    answered: BTreeSet<String>,
}

impl Fixtures {
    fn new() -> Fixtures {
        let world = World::new(data_dir());
        let dir = world.materialize("reviews");
        Fixtures {
            world,
            dir,
            answered: BTreeSet::new(),
        }
    }

    fn var(&self, name: &str) -> &str {
        &self.world.vars[name]
    }

    /// Answers the review of file `review` in `phase` under the policies of file
    /// `policy`, as `imagegate review` does: the answer as JSON, and the engine's
    /// decision behind it.
    async fn answer(&mut self, policy: &str, review_file: &str, phase: Phase) -> (Value, Answered) {
        self.answered.insert(review_file.to_owned());
        let read = |name: &str| {
            let path = self.dir.path().join(name);
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        let policies = policy_set(&String::from_utf8(read(policy)).expect("UTF-8 policy"));
        let request = AdmissionReview::parse(&read(review_file))
            .unwrap_or_else(|e| panic!("{review_file}: {e}"));
        let answered = review(&engine(), &policies, &request, phase).await;
        let answer = serde_json::to_value(&answered.review).expect("answer serialises");
        (answer, answered)
    }

    /// Whether the review of file `review` is refused before any evaluation, with a
    /// message naming `cause`.
    fn assert_malformed(&mut self, review_file: &str, cause: &str) {
        self.answered.insert(review_file.to_owned());
        let bytes = std::fs::read(self.dir.path().join(review_file)).expect("fixture");
        match AdmissionReview::parse(&bytes) {
            Ok(parsed) => panic!("{review_file} parsed: {parsed:?}"),
            Err(e) => {
                let message = e.to_string();
                assert!(
                    message.starts_with("malformed AdmissionReview: ") && message.contains(cause),
                    "{review_file}: {message}"
                );
            }
        }
    }

    /// The review fixtures no case answered (each must have its expectation here).
    fn unanswered(&self) -> Vec<String> {
        let mut files: Vec<String> = std::fs::read_dir(self.dir.path())
            .expect("fixture folder")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| name.ends_with(".json") && !self.answered.contains(name))
            .collect();
        files.sort();
        files
    }
}

/// The one rule result of `evaluated` (a single policy with a single rule).
#[track_caller]
fn only_rule(answered: &Answered) -> (&str, FailureAction, &str, RuleStatus) {
    let evaluated: &EngineResponse = answered.evaluated.as_ref().expect("evaluated in time");
    assert_eq!(evaluated.policies.len(), 1, "{evaluated:#?}");
    let policy = &evaluated.policies[0];
    assert_eq!(policy.rules.len(), 1, "{evaluated:#?}");
    let rule = &policy.rules[0];
    (&rule.name, rule.failure_action, &rule.message, rule.status)
}

#[tokio::test]
async fn every_review_fixture_gets_its_documented_answer() {
    let mut f = Fixtures::new();
    let host = f.var("REGISTRY").to_owned();
    let signed = format!("{host}/kyverno/test-verify-image:signed");
    let pinned = format!("{signed}@{}", f.var("DIGEST_SIGNED"));
    let unsigned_message = format!(
        "failed to verify image {host}/kyverno/test-verify-image:unsigned: \
         .attestors[0].entries[0].keys: no signatures found"
    );

    // A signed Pod, both AdmissionReview versions: admitted, pinned to the digest that
    // was verified, annotated; the answer echoes the request's uid and apiVersion.
    for (file, api_version, uid) in SIGNED_POD_REVIEWS {
        let (answer, answered) = f.answer("policy-enforce.yaml", file, Phase::Mutate).await;
        assert_eq!(answer["apiVersion"], api_version, "{file}");
        assert_eq!(answer["kind"], "AdmissionReview", "{file}");
        let response = &answer["response"];
        assert_eq!(response["uid"], uid, "{file}");
        assert_eq!(response["allowed"], true, "{file}: {response:#}");
        assert!(response.get("status").is_none(), "{file}: {response:#}");
        assert_eq!(
            decoded_patch(response),
            [
                json!({"op": "replace", "path": "/spec/containers/0/image", "value": pinned}),
                json!({"op": "add", "path": "/metadata/annotations", "value": {
                    "kyverno.io/verify-images": format!("{{\"{pinned}\":\"pass\"}}")
                }}),
            ],
            "{file}"
        );
        assert_eq!(
            only_rule(&answered),
            (
                "verify-signature",
                FailureAction::Enforce,
                format!("verified image signatures for {signed}").as_str(),
                RuleStatus::Pass
            ),
            "{file}"
        );
    }

    // The Pod as the mutating phase left it: the validating phase admits it unchanged.
    let (answer, answered) = f
        .answer(
            "policy-enforce.yaml",
            "signed-pod-pinned-v1.json",
            Phase::Validate,
        )
        .await;
    assert_eq!(
        answer["response"],
        json!({"uid": "0b4e2a8c-0d6e-4c8f-9b1f-5d1d6e2f7a03", "allowed": true})
    );
    assert_eq!(only_rule(&answered).3, RuleStatus::Pass);

    // Unsigned under Enforce: denied with Kyverno's text; the object has no namespace,
    // the request does (as `kubectl run` sends it).
    let (answer, answered) = f
        .answer("policy-enforce.yaml", "unsigned-pod-v1.json", Phase::Mutate)
        .await;
    assert_eq!(
        answer["response"],
        json!({
            "uid": "0b4e2a8c-0d6e-4c8f-9b1f-5d1d6e2f7a04",
            "allowed": false,
            "status": {
                "status": "Failure",
                "code": 403,
                "message": format!(
                    "\n\nresource Pod/default/unsigned was blocked due to the following policies\n\n\
                     check-image:\n  verify-signature: '{unsigned_message}'\n"
                ),
            },
        })
    );
    assert_eq!(
        only_rule(&answered),
        (
            "verify-signature",
            FailureAction::Enforce,
            unsigned_message.as_str(),
            RuleStatus::Fail
        )
    );

    // The same under Audit: admitted with a warning, nothing pinned.
    let (answer, answered) = f
        .answer("policy-audit.yaml", "unsigned-pod-v1.json", Phase::Mutate)
        .await;
    assert_eq!(
        answer["response"],
        json!({
            "uid": "0b4e2a8c-0d6e-4c8f-9b1f-5d1d6e2f7a04",
            "allowed": true,
            "warnings": [format!("policy audit-image.verify-signature: {unsigned_message}")],
        })
    );
    assert_eq!(
        only_rule(&answered),
        (
            "verify-signature",
            FailureAction::Audit,
            unsigned_message.as_str(),
            RuleStatus::Fail
        )
    );

    // A client-written `kyverno.io/verify-images` claiming the unsigned image passed:
    // the validating phase verifies again and denies.
    let (answer, answered) = f
        .answer(
            "policy-enforce.yaml",
            "forged-annotation-v1.json",
            Phase::Validate,
        )
        .await;
    let forged_message = format!(
        "failed to verify image {host}/kyverno/test-verify-image@{}: \
         .attestors[0].entries[0].keys: no signatures found",
        f.var("DIGEST_UNSIGNED")
    );
    assert_eq!(answer["response"]["allowed"], false, "{answer:#}");
    assert_eq!(
        answer["response"]["status"]["message"],
        format!(
            "\n\nresource Pod/default/unsigned was blocked due to the following policies\n\n\
             check-image:\n  verify-signature: '{forged_message}'\n"
        )
    );
    assert_eq!(only_rule(&answered).3, RuleStatus::Fail);

    // A DELETE has nothing to verify, in either phase.
    for phase in [Phase::Mutate, Phase::Validate] {
        let (answer, answered) = f
            .answer("policy-enforce.yaml", "delete-v1.json", phase)
            .await;
        assert_eq!(
            answer["response"],
            json!({"uid": "0b4e2a8c-0d6e-4c8f-9b1f-5d1d6e2f7a06", "allowed": true}),
            "{phase:?}"
        );
        assert!(answered.evaluated.is_none(), "{phase:?}");
    }

    // Nobody listens on 127.0.0.1:1: the rule errors; `failurePolicy: Fail` denies,
    // `Ignore` admits with a warning even under Enforce (Kyverno's BlockRequest).
    let unreachable = "failed to verify image 127.0.0.1:1/app/missing:v1: ";
    let (answer, answered) = f
        .answer(
            "policy-unreachable-fail.yaml",
            "unreachable-registry-v1.json",
            Phase::Mutate,
        )
        .await;
    let response = &answer["response"];
    assert_eq!(response["allowed"], false, "{response:#}");
    let message = response["status"]["message"].as_str().expect("message");
    assert!(
        message.starts_with(&format!(
            "\n\nresource Pod/default/unreachable was blocked due to the following policies\n\n\
             unreachable-fail:\n  verify-signature: '{unreachable}"
        )),
        "{message}"
    );
    assert_eq!(only_rule(&answered).3, RuleStatus::Error);
    let (answer, answered) = f
        .answer(
            "policy-unreachable-ignore.yaml",
            "unreachable-registry-v1.json",
            Phase::Mutate,
        )
        .await;
    let response = &answer["response"];
    assert_eq!(response["allowed"], true, "{response:#}");
    assert!(response.get("patch").is_none(), "{response:#}");
    let warnings = response["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{response:#}");
    assert!(
        warnings[0]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!(
                "policy unreachable-ignore.verify-signature: {unreachable}"
            )),
        "{response:#}"
    );
    assert_eq!(only_rule(&answered).3, RuleStatus::Error);

    // An ImageValidatingPolicy (Kyverno's chainsaw `match-conditions`): the unsigned
    // prod Pod is denied with the validation's message, the signed one admitted as is
    // (`mutateDigest: false`).
    let (answer, _) = f
        .answer(
            "policy-ivp.yaml",
            "unsigned-prod-pod-v1.json",
            Phase::Validate,
        )
        .await;
    let response = &answer["response"];
    assert_eq!(response["allowed"], false, "{response:#}");
    assert_eq!(
        response["status"]["message"],
        "Policy ivpol-sample failed: failed to verify image with notary cert"
    );
    let (answer, answered) = f
        .answer(
            "policy-ivp.yaml",
            "signed-prod-pod-v1.json",
            Phase::Validate,
        )
        .await;
    let response = &answer["response"];
    assert_eq!(response["allowed"], true, "{response:#}");
    assert!(response.get("patch").is_none(), "{response:#}");
    assert!(response.get("warnings").is_none(), "{response:#}");
    assert_eq!(only_rule(&answered).3, RuleStatus::Pass);

    // Not AdmissionReviews with a request: refused before anything is evaluated.
    f.assert_malformed("malformed-no-request.json", "no request");
    f.assert_malformed("malformed-not-json.json", "EOF");

    assert_eq!(
        f.unanswered(),
        Vec::<String>::new(),
        "review fixtures without an expectation here"
    );
}
