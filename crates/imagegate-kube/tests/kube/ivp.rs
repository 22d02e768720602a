//! The same reflector for `policies.kyverno.io` ImageValidatingPolicies,
//! NamespacedImageValidatingPolicies and the PolicyExceptions of both groups: published
//! within 2 s, an invalid CEL change keeps the previous version with Kyverno's
//! `status.conditionStatus` written, one re-LIST after 410 without a lost update,
//! exceptions read from `--exception-namespace` only, and kinds without a CRD.

use std::time::{Duration, Instant};

use imagegate_kube::policies::WatchOptions;
use imagegate_kube::reflect::{Kind, Loaded};
use imagegate_kube::{PolicyKey, PolicyWatch};
use imagegate_testkit::apiserver::{ApiServer, kyverno_crds};
use serde_json::{Value, json};

use crate::{cluster_policy, connect, eventually};

const IVPOL: &str = "imagevalidatingpolicies.policies.kyverno.io";
const NIVPOL: &str = "namespacedimagevalidatingpolicies.policies.kyverno.io";
const POLEX: &str = "policyexceptions.kyverno.io";
const CEL_POLEX: &str = "policyexceptions.policies.kyverno.io";

/// An ImageValidatingPolicy (or the namespaced kind) checking a key signature, with
/// `validationActions`.
fn ivp(kind: &str, name: &str, action: &str) -> Value {
    json!({
        "apiVersion": "policies.kyverno.io/v1beta1", "kind": kind,
        "metadata": {"name": name},
        "spec": {
            "validationActions": [action],
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]},
            "matchImageReferences": [{"glob": "registry.example/*"}],
            "attestors": [{"name": "key", "cosign": {"key": {"kms": "k8s://default/keys"}}}],
            "validations": [{"expression": "images.containers.all(i, verifyImageSignatures(i, [attestors.key]) > 0)", "message": "not signed"}],
        }
    })
}

fn key(kind: Kind, namespace: &str, name: &str) -> PolicyKey {
    PolicyKey {
        kind,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}

/// The `validationActions` of the loaded version of an IVP.
fn actions(watch: &PolicyWatch, key: &PolicyKey) -> Option<String> {
    match watch.current().get_loaded(key)? {
        Loaded::ImageValidating(p) => Some(format!("{:?}", p.policy.spec.validation_actions)),
        _ => None,
    }
}

fn condition_status(server: &ApiServer, resource: &str, name: &str) -> Option<Value> {
    server
        .get(resource, None, name)
        .ok()?
        .pointer("/status/conditionStatus")
        .cloned()
}

#[tokio::test]
async fn applied_ivp_is_published_within_2s_and_an_invalid_one_keeps_the_previous() {
    let server = ApiServer::start();
    let cluster = connect(&server).await;
    let watch = PolicyWatch::start(cluster.client.clone());
    watch.wait_ready(Duration::from_secs(10)).await.unwrap();
    let k = key(Kind::ImageValidatingPolicy, "", "signed");

    let applied = Instant::now();
    server
        .create(IVPOL, None, ivp("ImageValidatingPolicy", "signed", "Deny"))
        .unwrap();
    eventually(Duration::from_secs(2), || actions(&watch, &k))
        .await
        .expect("IVP published within 2 s");
    eprintln!("IVP applied → published: {:?}", applied.elapsed());
    let status = eventually(Duration::from_secs(5), || {
        condition_status(&server, IVPOL, "signed").filter(|s| s["ready"] == true)
    })
    .await
    .expect("conditionStatus.ready written");
    assert_eq!(status["conditions"][0]["type"], "Ready");
    assert_eq!(status["conditions"][0]["reason"], "Loaded");
    let obj = server.get(IVPOL, None, "signed").unwrap();
    assert_eq!(obj["metadata"]["managedFields"][0]["manager"], "imagegate");

    // A CEL error: the previous version stays, Kyverno's status says why.
    let mut broken = ivp("ImageValidatingPolicy", "signed", "Audit");
    broken["spec"]["validations"][0]["expression"] = json!("images.containers.all(i, ");
    server
        .merge_patch(IVPOL, None, "signed", json!({"spec": broken["spec"]}))
        .unwrap();
    let status = eventually(Duration::from_secs(5), || {
        condition_status(&server, IVPOL, "signed").filter(|s| s["ready"] == false)
    })
    .await
    .expect("conditionStatus.ready=false written");
    let message = status["conditions"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("spec.validations[0].expression"),
        "{status}"
    );
    assert_eq!(status["conditions"][0]["status"], "False");
    assert_eq!(status["message"].as_str(), Some(message));
    assert_eq!(actions(&watch, &k).as_deref(), Some("[Deny]"));
    assert_eq!(watch.current().invalid().count(), 1);

    // Fixed: the new version, Ready again.
    server
        .merge_patch(
            IVPOL,
            None,
            "signed",
            json!({"spec": ivp("ImageValidatingPolicy", "signed", "Audit")["spec"]}),
        )
        .unwrap();
    eventually(Duration::from_secs(2), || {
        (actions(&watch, &k).as_deref() == Some("[Audit]")).then_some(())
    })
    .await
    .expect("fixed version published");
    assert_eq!(watch.current().invalid().count(), 0);

    server.delete(IVPOL, None, "signed").unwrap();
    eventually(Duration::from_secs(2), || {
        watch.current().is_empty().then_some(())
    })
    .await
    .expect("deletion published");
}

#[tokio::test]
async fn namespaced_ivp_is_keyed_by_its_namespace() {
    let server = ApiServer::start();
    let cluster = connect(&server).await;
    server
        .create("namespaces", None, json!({"metadata": {"name": "team"}}))
        .unwrap();
    let watch = PolicyWatch::start(cluster.client.clone());
    watch.wait_ready(Duration::from_secs(10)).await.unwrap();
    server
        .create(
            NIVPOL,
            Some("team"),
            ivp("NamespacedImageValidatingPolicy", "mine", "Deny"),
        )
        .unwrap();
    let k = key(Kind::NamespacedImageValidatingPolicy, "team", "mine");
    eventually(Duration::from_secs(2), || actions(&watch, &k))
        .await
        .expect("NIVP published");
    let set = watch.current();
    let (_, loaded) = set.image_validating().next().unwrap();
    assert_eq!(loaded.policy.metadata.namespace.as_deref(), Some("team"));
    assert!(loaded.policy.is_namespaced());
    let engine = set.to_engine();
    assert_eq!(engine.image_validating().len(), 1);
    let status = eventually(Duration::from_secs(5), || {
        server
            .get(NIVPOL, Some("team"), "mine")
            .ok()?
            .pointer("/status/conditionStatus/ready")
            .cloned()
    })
    .await
    .unwrap();
    assert_eq!(status, true);
}

/// Plain LISTs (not watches) of a collection path.
fn lists(server: &ApiServer, path: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && !r.watch && r.path == path)
        .count()
}

#[tokio::test]
async fn gone_during_the_ivp_watch_relists_once_and_loses_no_update() {
    let server = ApiServer::start();
    let cluster = connect(&server).await;
    server
        .create(IVPOL, None, ivp("ImageValidatingPolicy", "p", "Deny"))
        .unwrap();
    let watch = PolicyWatch::start(cluster.client.clone());
    watch.wait_ready(Duration::from_secs(10)).await.unwrap();
    let k = key(Kind::ImageValidatingPolicy, "", "p");
    assert_eq!(actions(&watch, &k).as_deref(), Some("[Deny]"));
    eventually(Duration::from_secs(5), || {
        condition_status(&server, IVPOL, "p").filter(|s| s["ready"] == true)
    })
    .await
    .unwrap();
    let path = "/apis/policies.kyverno.io/v1beta1/imagevalidatingpolicies";
    assert_eq!(lists(&server, path), 1);
    eventually(Duration::from_secs(5), || {
        (server.open_watches() >= 6).then_some(())
    })
    .await
    .expect("the watches are open");

    server.expire_history();
    server
        .merge_patch(
            IVPOL,
            None,
            "p",
            json!({"spec": {"validationActions": ["Audit"]}}),
        )
        .unwrap();
    eventually(Duration::from_secs(10), || {
        (actions(&watch, &k).as_deref() == Some("[Audit]")).then_some(())
    })
    .await
    .expect("the update made during the outage is seen");
    assert_eq!(lists(&server, path), 2, "exactly one re-LIST");
}

#[tokio::test]
async fn exceptions_are_read_from_the_exception_namespace_only() {
    let server = ApiServer::start();
    let cluster = connect(&server).await;
    for ns in ["exceptions", "elsewhere"] {
        server
            .create("namespaces", None, json!({"metadata": {"name": ns}}))
            .unwrap();
    }
    let kyverno = |name: &str| {
        json!({
            "apiVersion": "kyverno.io/v2", "kind": "PolicyException",
            "metadata": {"name": name},
            "spec": {"exceptions": [{"policyName": "p", "ruleNames": ["verify"]}],
                     "match": {"any": [{"resources": {"kinds": ["Pod"], "names": ["legacy-*"]}}]}},
        })
    };
    let cel = |name: &str| {
        json!({
            "apiVersion": "policies.kyverno.io/v1beta1", "kind": "PolicyException",
            "metadata": {"name": name},
            "spec": {"policyRefs": [{"name": "signed", "kind": "ImageValidatingPolicy"}],
                     "matchConditions": [{"name": "legacy", "expression": "object.metadata.name.startsWith('legacy-')"}]},
        })
    };
    server
        .create(POLEX, Some("elsewhere"), kyverno("outside"))
        .unwrap();
    server
        .create(CEL_POLEX, Some("elsewhere"), cel("outside"))
        .unwrap();
    let watch = PolicyWatch::start_with(
        cluster.client.clone(),
        WatchOptions {
            exception_namespace: Some("exceptions".into()),
            ..WatchOptions::default()
        },
    );
    watch.wait_ready(Duration::from_secs(10)).await.unwrap();
    assert!(
        watch.current().is_empty(),
        "exceptions elsewhere are not read"
    );

    server
        .create(POLEX, Some("exceptions"), kyverno("legacy"))
        .unwrap();
    server
        .create(CEL_POLEX, Some("exceptions"), cel("legacy"))
        .unwrap();
    eventually(Duration::from_secs(2), || {
        let set = watch.current();
        (set.exceptions().count() == 1 && set.cel_exceptions().count() == 1).then_some(())
    })
    .await
    .expect("both exceptions published");
    let set = watch.current();
    let (k, _) = set.cel_exceptions().next().unwrap();
    assert_eq!(*k, key(Kind::CelPolicyException, "exceptions", "legacy"));
    let engine = set.to_engine();
    assert_eq!(engine.exceptions().len(), 1);
    assert_eq!(engine.cel_exceptions()[0].key(), "exceptions/legacy");
    // Exceptions have no status: nothing is written on them.
    let obj = server.get(CEL_POLEX, Some("exceptions"), "legacy").unwrap();
    assert!(obj.get("status").is_none(), "{obj}");

    // An invalid change keeps the previous version (and is reported as invalid).
    server
        .merge_patch(
            CEL_POLEX,
            Some("exceptions"),
            "legacy",
            json!({"spec": {"matchConditions": [{"name": "legacy", "expression": "object.("}]}}),
        )
        .unwrap();
    eventually(Duration::from_secs(2), || {
        (watch.current().invalid().count() == 1).then_some(())
    })
    .await
    .expect("invalid exception reported");
    assert_eq!(watch.current().cel_exceptions().count(), 1);

    server.delete(POLEX, Some("exceptions"), "legacy").unwrap();
    server
        .delete(CEL_POLEX, Some("exceptions"), "legacy")
        .unwrap();
    eventually(Duration::from_secs(2), || {
        watch.current().is_empty().then_some(())
    })
    .await
    .expect("deletions published");
}

#[tokio::test]
async fn kinds_without_a_crd_hold_nothing_and_do_not_hold_up_readiness() {
    // A cluster with Kyverno's ClusterPolicy and Policy CRDs only (no CEL policies, no
    // PolicyExceptions).
    let crds: Vec<Value> = kyverno_crds()
        .into_iter()
        .filter(|c| {
            let name = c["metadata"]["name"].as_str().unwrap_or_default();
            name == "clusterpolicies.kyverno.io" || name == "policies.kyverno.io"
        })
        .collect();
    let server = ApiServer::start_with_crds(crds);
    let cluster = connect(&server).await;
    server
        .create(
            "clusterpolicies.kyverno.io",
            None,
            cluster_policy("p", "Enforce"),
        )
        .unwrap();
    let watch = PolicyWatch::start(cluster.client.clone());
    watch.wait_ready(Duration::from_secs(10)).await.unwrap();
    assert_eq!(watch.current().iter().count(), 1);
    assert_eq!(watch.current().image_validating().count(), 0);
}
