//! Scenarios 7–11: the attacks of issue 8 ("Done means") against the real `imagegate
//! serve` (the release binary), a fresh server per attack so that its peak resident set
//! (`VmHWM` of `/proc/PID/status`) is that attack's: time to answer, HTTP status and
//! verdict, peak RSS. Targets: every answer within the deadline (the policies say
//! `webhookTimeoutSeconds: 10`, so 9 s), peak RSS < 256 MiB (the chart's limit), and
//! 4 000 containers < 1 s.
//!
//! 7 chain attack: a keyless `.sig` whose `dev.sigstore.cosign/chain` carries 24 CA
//! certificates with one name and one key (none chains to the policy's root);
//! 8 a Pod of 4 000 containers of one signed image (cold, then warm);
//! 9 a `.sig` manifest of 64 layers of 3 MB;
//! 10 an 8 MiB review of a kind no policy matches (a ConfigMap);
//! 11 label flood: eight reviews with 2 MiB strings in kind, namespace and operation,
//! then the size of `/metrics`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;
use imagegate_testkit::oci::{self, Descriptor};
use serde_json::{Value, json};

use crate::Options;
use crate::fixture::{self, Fixture, pod};
use crate::report::{Met, Row, ms};
use crate::webhook::Server;

/// The deadline of the attack policies (`webhookTimeoutSeconds: 10`, minus a second).
const DEADLINE: Duration = Duration::from_secs(9);
/// The chart's memory limit.
const RSS_LIMIT_MIB: f64 = 256.0;
/// CA certificates in the chain annotation of scenario 7.
const CHAIN_CAS: usize = 24;

/// One attack's outcome.
struct Outcome {
    status: u16,
    allowed: Option<bool>,
    elapsed: Duration,
}

impl Outcome {
    fn describe(&self) -> String {
        let verdict = match self.allowed {
            Some(true) => "admitted",
            Some(false) => "denied",
            None => "no verdict",
        };
        format!("HTTP {} {verdict} in {}", self.status, ms(self.elapsed))
    }
}

pub async fn run(options: &Options, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    if !options.imagegate.is_file() {
        rows.push(Row::new(
            "7–11 attacks",
            format!(
                "not run: {} missing (cargo build --release -p imagegate)",
                options.imagegate.display()
            ),
            "answers within 9 s, peak RSS < 256 MiB",
            Met::No,
        ));
        return Ok(());
    }
    let fixture = Fixture::start();
    let dir = tempfile::Builder::new()
        .prefix("imagegate-bench-attacks-")
        .tempdir()?;
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        fixture
            .policy_yaml()
            .replace("webhookTimeoutSeconds: 30", "webhookTimeoutSeconds: 10"),
    )?;
    let only = &options.only;
    if only.contains(&7) {
        eprintln!("bench: scenario 7 (certificate chain attack)");
        if let Err(e) = chain(options, &fixture, dir.path(), rows).await {
            // Reported, and the other attacks still run.
            rows.push(Row::new(
                "7 chain attack",
                format!("no answer: {e:#}"),
                "answered within 9 s, peak RSS < 256 MiB",
                Met::No,
            ));
        }
    }
    if only.contains(&8) {
        eprintln!("bench: scenario 8 (4 000 containers)");
        let image = fixture.push_signed("attack/many", "v1");
        let images = vec![image; 4_000];
        let review = fixture::review_json("uid-many", &pod("many", &images));
        let body = serde_json::to_vec(&review)?;
        let server = Server::start(&options.imagegate, dir.path(), &policy, Some("warn")).await?;
        let start_rss = server.peak_rss_mib();
        let cold = post(&server, &body).await?;
        let warm = post(&server, &body).await?;
        let peak = server.peak_rss_mib();
        rows.push(Row::new(
            "8 Pod with 4 000 containers of one signed image (review 0.3 MiB)",
            format!(
                "cold: {}; warm: {}; peak RSS {peak:.1} MiB ({start_rss:.1} at start)",
                cold.describe(),
                warm.describe()
            ),
            "< 1 s, peak RSS < 256 MiB",
            Met::from(
                cold.allowed == Some(true)
                    && cold.elapsed < Duration::from_secs(1)
                    && warm.elapsed < Duration::from_secs(1)
                    && peak < RSS_LIMIT_MIB,
            ),
        ));
    }
    if only.contains(&9) {
        eprintln!("bench: scenario 9 (64 × 3 MB signature layers)");
        let image = big_signature(&fixture, "attack/layers", 64, 3_000_000)?;
        let review = fixture::review_json("uid-layers", &pod("layers", &[image]));
        let body = serde_json::to_vec(&review)?;
        let scenario = "9 `.sig` manifest of 64 layers of 3 MB (unsigned garbage)";
        rows.push(one_review(options, dir.path(), &policy, scenario, &body, false).await?);
    }
    if only.contains(&10) {
        eprintln!("bench: scenario 10 (8 MiB review)");
        let review = big_review();
        let body = serde_json::to_vec(&review)?;
        let scenario = format!(
            "10 review of {:.2} MiB for a kind no policy matches (ConfigMap)",
            body.len() as f64 / 1024.0 / 1024.0
        );
        rows.push(one_review(options, dir.path(), &policy, &scenario, &body, true).await?);
    }
    if only.contains(&11) {
        eprintln!("bench: scenario 11 (label flood)");
        let server = Server::start(&options.imagegate, dir.path(), &policy, Some("warn")).await?;
        let start_rss = server.peak_rss_mib();
        let before = server.metrics_text().await?.len();
        let mut slowest = Outcome {
            status: 0,
            allowed: None,
            elapsed: Duration::ZERO,
        };
        for i in 0..8 {
            let huge = |first: char| format!("{first}{}{i}", "a".repeat(2 * 1024 * 1024));
            let mut review =
                fixture::review_json(&format!("uid-flood-{i}"), &pod("p", &["nginx:1".into()]));
            review["request"]["kind"]["kind"] = json!(huge('K'));
            review["request"]["namespace"] = json!(huge('n'));
            review["request"]["operation"] = json!(huge('C'));
            let outcome = post(&server, &serde_json::to_vec(&review)?).await?;
            if outcome.elapsed >= slowest.elapsed {
                slowest = outcome;
            }
        }
        let after = server.metrics_text().await?.len();
        let peak = server.peak_rss_mib();
        rows.push(Row::new(
            "11 label flood: 8 reviews with 2 MiB kind, namespace and operation",
            format!(
                "slowest {}; /metrics {before} → {after} bytes; peak RSS {peak:.1} MiB ({start_rss:.1} at start)",
                slowest.describe()
            ),
            "/metrics grows < 16 KiB, answers within 9 s, peak RSS < 256 MiB",
            Met::from(
                after < before + 16 * 1024 && slowest.elapsed < DEADLINE && peak < RSS_LIMIT_MIB,
            ),
        ));
    }
    Ok(())
}

/// A fresh server with `policy` answers one review of `body`: its row, met when the
/// verdict is `allowed`, in time and under the memory limit.
async fn one_review(
    options: &Options,
    dir: &Path,
    policy: &Path,
    scenario: &str,
    body: &[u8],
    allowed: bool,
) -> anyhow::Result<Row> {
    let server = Server::start(&options.imagegate, dir, policy, Some("warn")).await?;
    let start = server.peak_rss_mib();
    let outcome = post(&server, body).await?;
    let peak = server.peak_rss_mib();
    Ok(Row::new(
        scenario,
        format!(
            "{}; peak RSS {peak:.1} MiB ({start:.1} at start)",
            outcome.describe()
        ),
        "answered within 9 s, peak RSS < 256 MiB",
        Met::from(
            outcome.allowed == Some(allowed) && outcome.elapsed < DEADLINE && peak < RSS_LIMIT_MIB,
        ),
    ))
}

/// POSTs `body` to `/mutate` and times the answer.
async fn post(server: &Server, body: &[u8]) -> anyhow::Result<Outcome> {
    let client = server.client(Duration::from_secs(60))?;
    let started = Instant::now();
    let response = client
        .post(server.url())
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .context("posting the attack review")?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    let elapsed = started.elapsed();
    let allowed = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v["response"]["allowed"].as_bool());
    Ok(Outcome {
        status,
        allowed,
        elapsed,
    })
}

/// An image whose `.sig` manifest holds `layers` simple-signing layers of `size`
/// bytes each (distinct contents, a garbage signature annotation).
fn big_signature(
    fixture: &Fixture,
    repo: &str,
    layers: usize,
    size: usize,
) -> anyhow::Result<String> {
    let pusher = fixture.registry.pusher();
    let digest = pusher.push_image(repo, "v1");
    let mut descriptors = Vec::with_capacity(layers);
    for i in 0..layers {
        let mut blob = vec![b' '; size];
        let tag = format!("{{\"layer\":{i}}}");
        blob[..tag.len()].copy_from_slice(tag.as_bytes());
        pusher.push_blob(repo, &blob);
        let mut layer = Descriptor::of(oci::SIMPLE_SIGNING, &blob);
        layer.annotations = Some(BTreeMap::from([(
            oci::SIGNATURE_ANNOTATION.to_owned(),
            base64::engine::general_purpose::STANDARD.encode(b"not a signature"),
        )]));
        descriptors.push(layer);
    }
    let config = oci::cosign_config(&descriptors);
    pusher.push_blob(repo, &config);
    let manifest = oci::cosign_manifest(&config, &descriptors);
    pusher.push_manifest(
        repo,
        &oci::cosign_tag(&digest, "sig"),
        oci::OCI_MANIFEST,
        &manifest,
    );
    Ok(format!("{}/{repo}:v1", fixture.host()))
}

/// A CREATE review of a ConfigMap of just under 8 MiB.
fn big_review() -> Value {
    let value = "x".repeat(1024 * 1024);
    let data: serde_json::Map<String, Value> = (0..7)
        .map(|i| (format!("k{i}"), json!(value)))
        .chain(std::iter::once((
            "tail".to_owned(),
            json!("y".repeat(900 * 1024)),
        )))
        .collect();
    let object = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "big", "namespace": "default"},
        "data": data,
    });
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "uid-big",
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "operation": "CREATE",
            "name": "big",
            "namespace": "default",
            "userInfo": {"username": "bench"},
            "object": object,
            "dryRun": false,
        }
    })
}

/// Scenario 7: a keyless signature whose certificate chain annotation carries
/// `CHAIN_CAS` self-issued CA certificates with one name and one key, none of which
/// chains to the policy's root (same name, another key): the path search may try every
/// ordering of them.
async fn chain(
    options: &Options,
    fixture: &Fixture,
    dir: &Path,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
    };
    const CA_NAME: &str = "imagegate bench evil CA";
    let ca_params = |serial: u64| -> anyhow::Result<CertificateParams> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, CA_NAME);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(SerialNumber::from(serial.to_be_bytes().to_vec()));
        Ok(params)
    };
    let ca_key = KeyPair::generate()?;
    let mut chain_pem = String::new();
    for i in 0..CHAIN_CAS {
        chain_pem.push_str(&ca_params(i as u64 + 1)?.self_signed(&ca_key)?.pem());
    }
    // The policy's root: the same name, another key.
    let root_key = KeyPair::generate()?;
    let root_pem = ca_params(1_000)?.self_signed(&root_key)?.pem();

    let mut leaf_params = CertificateParams::new(Vec::<String>::new())?;
    leaf_params.subject_alt_names = vec![SanType::Rfc822Name("attacker@example.com".try_into()?)];
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "leaf");
    // As Fulcio issues them (the verifier checks these before the chain).
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    // The leaf's key signs the payload as cosign's ephemeral key does.
    let signing_key = imagegate_testkit::CosignKey::generate();
    let leaf_key = KeyPair::try_from(signing_key.private_pkcs8_der().as_slice())?;
    let issuer = CertifiedIssuer::self_signed(ca_params(1)?, ca_key)?;
    let leaf_pem = leaf_params.signed_by(&leaf_key, &issuer)?.pem();

    let pusher = fixture.registry.pusher();
    let repo = "attack/chain";
    let digest = pusher.push_image(repo, "v1");
    let reference = format!("{}/{repo}", fixture.host());
    let payload = imagegate_testkit::simple_signing_payload(&reference, &digest, &BTreeMap::new());
    let signature = base64::engine::general_purpose::STANDARD.encode(signing_key.sign(&payload));
    pusher.push_signature_manifest(
        repo,
        &digest,
        &payload,
        BTreeMap::from([
            (oci::SIGNATURE_ANNOTATION.to_owned(), signature),
            ("dev.sigstore.cosign/certificate".to_owned(), leaf_pem),
            ("dev.sigstore.cosign/chain".to_owned(), chain_pem),
        ]),
    );

    let roots: String = root_pem
        .trim_end()
        .lines()
        .map(|l| format!("                      {l}\n"))
        .collect();
    let policy = dir.join("chain-policy.yaml");
    std::fs::write(
        &policy,
        format!(
            r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: keyless
spec:
  webhookTimeoutSeconds: 10
  rules:
    - name: keyless
      match:
        any:
          - resources:
              kinds: [Pod]
      verifyImages:
        - imageReferences: ["{host}/*"]
          failureAction: Enforce
          attestors:
            - entries:
                - keyless:
                    subject: attacker@example.com
                    issuer: https://issuer.example
                    roots: |-
{roots}                    rekor:
                      ignoreTlog: true
                    ctlog:
                      ignoreSCT: true
"#,
            host = fixture.host()
        ),
    )?;
    let review = fixture::review_json("uid-chain", &pod("chain", &[format!("{reference}:v1")]));
    let body = serde_json::to_vec(&review)?;
    let scenario = format!(
        "7 chain attack: keyless `.sig` with {CHAIN_CAS} same-name same-key CAs in its chain"
    );
    rows.push(one_review(options, dir, &policy, &scenario, &body, false).await?);
    Ok(())
}
