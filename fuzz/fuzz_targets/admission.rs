//! AdmissionReview → answer, both phases, with no network: the fixed policies only check
//! images of `127.0.0.1:1` (nobody listens there, so every fetch fails at once and the
//! engine answers from its failure path); every other image is parsed, matched and
//! skipped. The glue is kept to this file because the engine is being restructured.
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use imagegate_engine::admission::{AdmissionReview, review};
use imagegate_engine::{CacheOptions, Engine, Phase, PolicySet};
use imagegate_oci::{ClientOptions, DockerConfig, RegistryClient};
use imagegate_policy::load::load_policies;
use libfuzzer_sys::fuzz_target;

const POLICIES: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: fuzz-enforce
spec:
  validationFailureAction: Enforce
  failurePolicy: Fail
  webhookTimeoutSeconds: 2
  rules:
    - name: keys
      match:
        any:
          - resources:
              kinds: [Pod]
      preconditions:
        all:
          - key: "{{ request.operation }}"
            operator: AnyIn
            value: [CREATE, UPDATE]
      verifyImages:
        - imageReferences: ["127.0.0.1:1/*"]
          mutateDigest: true
          verifyDigest: true
          attestors:
            - entries:
                - keys:
                    publicKeys: |-
                      -----BEGIN PUBLIC KEY-----
                      MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEIsYZ9NFCTz8PhAZwagzCQtMTrPeN
                      BjaBvXc41s3UUrcIxhnwVwr7yoxRltLDMYoojq2V13/RX1phKzjd5PKRgw==
                      -----END PUBLIC KEY-----
                    rekor:
                      ignoreTlog: true
          attestations:
            - type: https://slsa.dev/provenance/v0.2
              attestors:
                - entries:
                    - keyless:
                        subject: "*@example.com"
                        issuer: https://accounts.example.com
                        rekor:
                          url: https://rekor.sigstore.dev
              conditions:
                - all:
                    - key: "{{ invocation.parameters.env }}"
                      operator: Equals
                      value: prod
"#;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    engine: Engine,
    policies: PolicySet,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let options = ClientOptions {
        request_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(200),
        max_retries: 0,
        ..ClientOptions::default()
    };
    let client = RegistryClient::new(DockerConfig::anonymous(), options)
        .unwrap_or_else(|e| panic!("client: {e}"));
    // Every input is evaluated afresh, so a run repeats.
    let engine = Engine::builder(client)
        .caches(CacheOptions::disabled())
        .build();
    let policies = load_policies(POLICIES, "fuzz-policies.yaml")
        .unwrap_or_else(|e| panic!("fixed policies: {e}"));
    Fixture {
        runtime,
        engine,
        policies: PolicySet::new(policies),
    }
});

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = AdmissionReview::parse(data) else {
        return;
    };
    let fixture = &*FIXTURE;
    for phase in [Phase::Mutate, Phase::Validate] {
        let answered =
            fixture
                .runtime
                .block_on(review(&fixture.engine, &fixture.policies, &parsed, phase));
        if let Err(e) = serde_json::to_vec(&answered.review) {
            panic!("the answer does not serialise: {e}");
        }
    }
});
