//! The workloads running in a cluster (for `imagegate audit`): Pods and pod controllers,
//! listed page by page, each page with a deadline. An object whose controller is itself
//! listed (a Pod of a ReplicaSet, a ReplicaSet of a Deployment, a Job of a CronJob) is
//! left out: its images are those of its controller's template, audited once there.

use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::Value;

use crate::error::{KubeError, Result};

/// The kinds listed: (group, version, kind, plural).
pub const WORKLOAD_KINDS: [(&str, &str, &str, &str); 7] = [
    ("", "v1", "Pod", "pods"),
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "StatefulSet", "statefulsets"),
    ("apps", "v1", "DaemonSet", "daemonsets"),
    ("apps", "v1", "ReplicaSet", "replicasets"),
    ("batch", "v1", "Job", "jobs"),
    ("batch", "v1", "CronJob", "cronjobs"),
];

/// Objects per LIST page.
const PAGE: u32 = 500;

/// Every workload of the cluster, controllers' own Pods (and ReplicaSets, Jobs) left
/// out (see [`top_level`]). A kind the server does not serve (404) is skipped; any other
/// error (403, timeout) fails: an audit that silently missed workloads would pass.
pub async fn list_workloads(client: &kube::Client, deadline: Duration) -> Result<Vec<Value>> {
    let mut objects = Vec::new();
    for (group, version, kind, plural) in WORKLOAD_KINDS {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let mut params = ListParams::default().limit(PAGE);
        loop {
            let page = match tokio::time::timeout(deadline, api.list(&params)).await {
                Err(_) => {
                    return Err(KubeError::Api(format!(
                        "listing {plural}: no answer within {deadline:?}"
                    )));
                }
                Ok(Err(kube::Error::Api(status))) if status.code == 404 => {
                    tracing::warn!(kind, "the API server does not serve {plural}; skipped");
                    break;
                }
                Ok(Err(e)) => return Err(KubeError::Api(format!("listing {plural}: {e}"))),
                Ok(Ok(page)) => page,
            };
            for item in page.items {
                let mut value = serde_json::to_value(&item)
                    .map_err(|e| KubeError::Api(format!("listing {plural}: {e}")))?;
                // LIST items carry no apiVersion/kind.
                value["apiVersion"] = Value::String(resource.api_version.clone());
                value["kind"] = Value::String(kind.to_owned());
                objects.push(value);
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
    }
    Ok(top_level(objects))
}

/// The objects whose controller (the owner reference with `controller: true`) is not
/// itself a workload kind: bare Pods, Deployments, Pods of an operator's custom kind, …
pub fn top_level(objects: Vec<Value>) -> Vec<Value> {
    objects
        .into_iter()
        .filter(|object| {
            !has_controller_of_kind(object, |kind| {
                WORKLOAD_KINDS.iter().any(|(_, _, k, _)| *k == kind)
            })
        })
        .collect()
}

/// Whether `object`'s controller (its owner reference with `controller: true`) is of a
/// kind `is_reported` accepts: then the object is reported on its controller, as Kyverno
/// reports a ReplicaSet's Pods on the ReplicaSet.
pub fn has_controller_of_kind(object: &Value, is_reported: impl Fn(&str) -> bool) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|owner| {
            owner.get("controller").and_then(Value::as_bool) == Some(true)
                && owner
                    .get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(&is_reported)
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn owned_by_a_listed_controller_is_left_out() {
        let object = |kind: &str, name: &str, owner: Option<(&str, bool)>| {
            let mut o = json!({"kind": kind, "metadata": {"name": name}});
            if let Some((owner_kind, controller)) = owner {
                o["metadata"]["ownerReferences"] =
                    json!([{"kind": owner_kind, "name": "x", "controller": controller}]);
            }
            o
        };
        let kept = top_level(vec![
            object("Pod", "bare", None),
            object("Pod", "of-replicaset", Some(("ReplicaSet", true))),
            object("ReplicaSet", "of-deployment", Some(("Deployment", true))),
            object("Job", "of-cronjob", Some(("CronJob", true))),
            object("Pod", "of-operator", Some(("Rollout", true))),
            object("Pod", "not-controller", Some(("ReplicaSet", false))),
            object("Deployment", "app", None),
        ]);
        let names: Vec<&str> = kept
            .iter()
            .filter_map(|o| o.pointer("/metadata/name").and_then(Value::as_str))
            .collect();
        assert_eq!(names, ["bare", "of-operator", "not-controller", "app"]);
    }
}
