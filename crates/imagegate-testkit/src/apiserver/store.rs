//! The object store: objects by (group, plural, namespace, name), one global
//! `resourceVersion` counter, a bounded event history for WATCH replay (older versions are
//! "compacted": watching or continuing from them answers 410 Gone), and a broadcast of new
//! events to open watches. Pure logic over `serde_json::Value`; the HTTP side is elsewhere.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::kinds::{self, ResourceKind};
use super::selector::Selector;
use super::status::ApiError;

/// Events kept for WATCH replay; older ones are compacted.
const HISTORY: usize = 10_000;
/// Objects the store holds at most (a bound, not a Kubernetes limit).
const MAX_OBJECTS: usize = 200_000;
/// Events buffered per watcher before a slow watcher is cut off (it then re-watches).
const BROADCAST: usize = 4096;

type Key = (String, String, String, String);

/// One change, as WATCH streams send it.
#[derive(Debug)]
pub(crate) struct Event {
    pub(crate) rv: u64,
    pub(crate) group: String,
    pub(crate) plural: String,
    pub(crate) namespace: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub(crate) kind: &'static str,
    pub(crate) object: Value,
}

/// Which objects a LIST or WATCH selects.
#[derive(Debug, Default)]
pub(crate) struct Query {
    pub(crate) namespace: Option<String>,
    pub(crate) labels: Selector,
    pub(crate) fields: Selector,
}

impl Query {
    fn matches(&self, ns: &str, obj: &Value) -> bool {
        self.namespace.as_deref().is_none_or(|n| n == ns)
            && self.labels.matches_labels(obj)
            && self.fields.matches_fields(obj)
    }
}

/// Where a WATCH starts.
pub(crate) enum WatchStart {
    /// Synthetic ADDED events for the current objects, then changes.
    Now(Vec<Arc<Event>>),
    /// Replayed events newer than the requested version, then changes.
    Replay(Vec<Arc<Event>>),
}

/// How a PATCH body is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchType {
    /// RFC 7386 (also used for strategic merge: a documented simplification).
    Merge,
    /// RFC 6902.
    Json,
    /// Server-side apply (a subset: the applied configuration is merged in; `force` and
    /// conflicts between managers are not modelled).
    Apply,
}

/// All state behind the API.
pub(crate) struct Store {
    pub(crate) kinds: Vec<ResourceKind>,
    objects: BTreeMap<Key, Value>,
    rv: u64,
    uid: u64,
    history: VecDeque<Arc<Event>>,
    /// Every version `<= compacted` is gone from the history.
    compacted: u64,
    sender: broadcast::Sender<Arc<Event>>,
}

fn now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Civil-from-days (Howard Hinnant's algorithm) for an RFC 3339 UTC timestamp.
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

/// A lowercase RFC 1123 subdomain, as names of most kinds must be.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphanumeric)
        && name
            .as_bytes()
            .last()
            .is_some_and(u8::is_ascii_alphanumeric)
}

/// Everything of an object except `metadata` and `status` (a change bumps `generation`).
fn spec_part(obj: &Value) -> Value {
    let mut o = obj.as_object().cloned().unwrap_or_default();
    o.remove("metadata");
    o.remove("status");
    Value::Object(o)
}

impl Store {
    pub(crate) fn new() -> Store {
        let (sender, _) = broadcast::channel(BROADCAST);
        let mut store = Store {
            kinds: kinds::builtin(),
            objects: BTreeMap::new(),
            rv: 1,
            uid: 0,
            history: VecDeque::new(),
            compacted: 0,
            sender,
        };
        for ns in ["default", "kube-system", "kube-public"] {
            let _ = store.create(
                &store.kind("", "namespaces").expect("builtin"),
                None,
                json!({"metadata": {"name": ns}}),
            );
        }
        store
    }

    pub(crate) fn current_rv(&self) -> u64 {
        self.rv
    }

    /// The served kind at `group`/`plural` (any version).
    pub(crate) fn kind(&self, group: &str, plural: &str) -> Option<ResourceKind> {
        self.kinds
            .iter()
            .find(|k| k.group == group && k.plural == plural)
            .cloned()
    }

    /// The served kind at `group/version/plural`.
    pub(crate) fn kind_at(&self, group: &str, version: &str, plural: &str) -> Option<ResourceKind> {
        self.kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.plural == plural)
            .cloned()
    }

    /// Serves a new kind (idempotent).
    pub(crate) fn register(&mut self, kind: ResourceKind) {
        if !self
            .kinds
            .iter()
            .any(|k| k.group == kind.group && k.version == kind.version && k.plural == kind.plural)
        {
            self.kinds.push(kind);
        }
    }

    /// Forgets the whole history: any WATCH or `continue` from a version seen so far
    /// answers 410 Gone (as after an etcd compaction).
    pub(crate) fn compact_all(&mut self) {
        // As if other writes had happened and then been compacted: every version a
        // client has seen, the newest included, is now too old to watch from.
        self.rv += 1;
        self.history.clear();
        self.compacted = self.rv;
    }

    fn record(&mut self, kind: &ResourceKind, ns: &str, ty: &'static str, object: Value) {
        let event = Arc::new(Event {
            rv: self.rv,
            group: kind.group.clone(),
            plural: kind.plural.clone(),
            namespace: ns.to_owned(),
            kind: ty,
            object,
        });
        if self.history.len() >= HISTORY
            && let Some(old) = self.history.pop_front()
        {
            self.compacted = old.rv;
        }
        self.history.push_back(event.clone());
        // No receiver is fine: nobody watches.
        let _ = self.sender.send(event);
    }

    fn key(kind: &ResourceKind, ns: &str, name: &str) -> Key {
        (
            kind.group.clone(),
            kind.plural.clone(),
            ns.to_owned(),
            name.to_owned(),
        )
    }

    /// The object as served at the kind's version.
    fn present(kind: &ResourceKind, obj: &Value) -> Value {
        let mut out = obj.clone();
        out["apiVersion"] = json!(kind.api_version());
        out["kind"] = json!(kind.kind);
        out
    }

    fn namespace_of(kind: &ResourceKind, ns: Option<&str>) -> Result<String, ApiError> {
        match (kind.namespaced, ns) {
            (true, Some(ns)) => Ok(ns.to_owned()),
            (true, None) => Err(ApiError::bad_request(
                "the namespace of the object must be given",
            )),
            (false, _) => Ok(String::new()),
        }
    }

    pub(crate) fn get(
        &self,
        kind: &ResourceKind,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let ns = Store::namespace_of(kind, ns)?;
        self.objects
            .get(&Store::key(kind, &ns, name))
            .map(|o| Store::present(kind, o))
            .ok_or_else(|| ApiError::not_found(&kind.group, &kind.qualified(), &kind.plural, name))
    }

    /// LIST with pagination: `limit` 0 means all; `cont` is a token from a previous page.
    pub(crate) fn list(
        &self,
        kind: &ResourceKind,
        query: &Query,
        limit: usize,
        cont: Option<&str>,
    ) -> Result<Value, ApiError> {
        let (list_rv, after) = match cont {
            Some(token) => {
                let bad = || ApiError::bad_request("continue key is not valid");
                let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
                let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
                let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
                if rv < self.compacted {
                    return Err(ApiError::gone(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    ));
                }
                let ns = v
                    .get("ns")
                    .and_then(Value::as_str)
                    .ok_or_else(bad)?
                    .to_owned();
                let name = v
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(bad)?
                    .to_owned();
                (rv, Some((ns, name)))
            }
            None => (self.rv, None),
        };
        let start = Store::key(kind, "", "");
        let mut items = Vec::new();
        let mut next = None;
        let mut remaining = 0u64;
        for ((g, p, ns, name), obj) in self.objects.range(start..) {
            if *g != kind.group || *p != kind.plural {
                break;
            }
            if after
                .as_ref()
                .is_some_and(|(ans, aname)| (ns, name) <= (ans, aname))
                || !query.matches(ns, obj)
            {
                continue;
            }
            if limit > 0 && items.len() == limit {
                if next.is_none() {
                    let last: &Value = items.last().unwrap_or(&Value::Null);
                    let token = json!({
                        "rv": list_rv,
                        "ns": meta_str(last, "namespace").unwrap_or(""),
                        "name": meta_str(last, "name").unwrap_or(""),
                    });
                    next = Some(URL_SAFE_NO_PAD.encode(token.to_string()));
                }
                remaining += 1;
                continue;
            }
            items.push(Store::present(kind, obj));
        }
        let mut metadata = json!({"resourceVersion": list_rv.to_string()});
        if let Some(next) = next {
            metadata["continue"] = json!(next);
            metadata["remainingItemCount"] = json!(remaining);
        }
        Ok(json!({
            "kind": format!("{}List", kind.kind),
            "apiVersion": kind.api_version(),
            "metadata": metadata,
            "items": items,
        }))
    }

    /// Starts a WATCH: the events to send first and a receiver for later ones, taken under
    /// one lock so nothing falls between them.
    pub(crate) fn watch(
        &self,
        kind: &ResourceKind,
        query: &Query,
        rv: Option<u64>,
    ) -> Result<(WatchStart, u64, broadcast::Receiver<Arc<Event>>), ApiError> {
        let rx = self.sender.subscribe();
        let start = match rv {
            None | Some(0) => {
                let list = self.list(kind, query, 0, None)?;
                let events = list["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|o| {
                        Arc::new(Event {
                            rv: self.rv,
                            group: kind.group.clone(),
                            plural: kind.plural.clone(),
                            namespace: meta_str(o, "namespace").unwrap_or("").to_owned(),
                            kind: "ADDED",
                            object: o.clone(),
                        })
                    })
                    .collect();
                WatchStart::Now(events)
            }
            Some(rv) if rv < self.compacted => {
                return Err(ApiError::gone(format!(
                    "too old resource version: {rv} ({})",
                    self.compacted + 1
                )));
            }
            Some(rv) => WatchStart::Replay(
                self.history
                    .iter()
                    .filter(|e| e.rv > rv && Store::event_matches(kind, query, e))
                    .cloned()
                    .collect(),
            ),
        };
        Ok((start, self.rv, rx))
    }

    /// Whether a broadcast event belongs to a watch.
    pub(crate) fn event_matches(kind: &ResourceKind, query: &Query, e: &Event) -> bool {
        e.group == kind.group && e.plural == kind.plural && query.matches(&e.namespace, &e.object)
    }

    pub(crate) fn create(
        &mut self,
        kind: &ResourceKind,
        ns: Option<&str>,
        mut body: Value,
    ) -> Result<Value, ApiError> {
        let ns = Store::namespace_of(kind, ns)?;
        if !body.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        check_type(kind, &body)?;
        if self.objects.len() >= MAX_OBJECTS {
            return Err(ApiError::too_many(
                "the fake API server holds its maximum number of objects",
            ));
        }
        let meta = body.get_mut("metadata").filter(|m| m.is_object());
        let mut meta = match meta {
            Some(m) => std::mem::take(m),
            None => Value::Object(Map::new()),
        };
        let name = match (
            meta.get("name").and_then(Value::as_str),
            meta.get("generateName").and_then(Value::as_str),
        ) {
            (Some(n), _) if !n.is_empty() => n.to_owned(),
            (_, Some(prefix)) => format!("{prefix}{:05x}", self.uid + 1),
            _ => {
                return Err(ApiError::invalid(
                    &kind.kind,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
        };
        if !valid_name(&name) {
            return Err(ApiError::invalid(
                &kind.kind,
                &name,
                &format!(
                    "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ),
            ));
        }
        if let Some(body_ns) = meta.get("namespace").and_then(Value::as_str)
            && kind.namespaced
            && !body_ns.is_empty()
            && body_ns != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if kind.namespaced
            && !self.objects.contains_key(&(
                String::new(),
                "namespaces".into(),
                String::new(),
                ns.clone(),
            ))
        {
            return Err(ApiError::not_found("", "namespaces", "namespaces", &ns));
        }
        let key = Store::key(kind, &ns, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(
                &kind.group,
                &kind.qualified(),
                &kind.plural,
                &name,
            ));
        }
        if kind.group == "apiextensions.k8s.io" {
            let crd_kinds = ResourceKind::from_crd(&body).ok_or_else(|| {
                ApiError::invalid(
                    &kind.kind,
                    &name,
                    "spec: Required value: group, names, scope and versions are required",
                )
            })?;
            for k in crd_kinds {
                self.register(k);
            }
        }
        self.rv += 1;
        self.uid += 1;
        meta["name"] = json!(name);
        if kind.namespaced {
            meta["namespace"] = json!(ns);
        } else if let Some(m) = meta.as_object_mut() {
            m.remove("namespace");
        }
        meta["uid"] = json!(format!("00000000-0000-4000-8000-{:012x}", self.uid));
        meta["resourceVersion"] = json!(self.rv.to_string());
        meta["creationTimestamp"] = json!(now());
        meta["generation"] = json!(1);
        if let Some(m) = meta.as_object_mut() {
            m.remove("generateName");
            m.remove("deletionTimestamp");
        }
        if kind.group.is_empty() && kind.plural == "namespaces" {
            // Since Kubernetes 1.21 every namespace carries its own name as a label.
            meta["labels"]["kubernetes.io/metadata.name"] = json!(name);
            body["status"] = json!({"phase": "Active"});
        } else if kind.status_subresource
            && let Some(o) = body.as_object_mut()
        {
            o.remove("status");
        }
        body["metadata"] = meta;
        normalize(kind, &mut body);
        let obj = Store::present(kind, &body);
        self.objects.insert(key, obj.clone());
        self.record(kind, &ns, "ADDED", obj.clone());
        Ok(obj)
    }

    /// PUT of the object (or, with `status_only`, of its status subresource).
    pub(crate) fn update(
        &mut self,
        kind: &ResourceKind,
        ns: Option<&str>,
        name: &str,
        mut body: Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let ns = Store::namespace_of(kind, ns)?;
        if !body.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        check_type(kind, &body)?;
        let key = Store::key(kind, &ns, name);
        let Some(old) = self.objects.get(&key).cloned() else {
            return Err(ApiError::not_found(
                &kind.group,
                &kind.qualified(),
                &kind.plural,
                name,
            ));
        };
        if meta_str(&body, "name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&body, "name").unwrap_or("")
            )));
        }
        match meta_str(&body, "resourceVersion") {
            Some(rv) if !rv.is_empty() && Some(rv) != meta_str(&old, "resourceVersion") => {
                return Err(ApiError::conflict(
                    &kind.group,
                    &kind.qualified(),
                    &kind.plural,
                    name,
                ));
            }
            _ => {}
        }
        if status_only {
            let status = body.get("status").cloned();
            // Field managers are recorded for status writes too.
            let managed = body.pointer("/metadata/managedFields").cloned();
            body = old.clone();
            if let Some(m) = managed {
                body["metadata"]["managedFields"] = m;
            }
            match status {
                Some(s) => body["status"] = s,
                None => {
                    if let Some(o) = body.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        } else if kind.status_subresource {
            match old.get("status") {
                Some(s) => body["status"] = s.clone(),
                None => {
                    if let Some(o) = body.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
        // Fields the server owns.
        let mut meta = body
            .get("metadata")
            .cloned()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        for f in ["name", "namespace", "uid", "creationTimestamp"] {
            match old["metadata"].get(f) {
                Some(v) => meta[f] = v.clone(),
                None => {
                    if let Some(m) = meta.as_object_mut() {
                        m.remove(f);
                    }
                }
            }
        }
        let generation = old["metadata"]["generation"].as_u64().unwrap_or(1);
        let changed_spec = spec_part(&old) != spec_part(&body);
        meta["generation"] = json!(if changed_spec {
            generation + 1
        } else {
            generation
        });
        if kind.group.is_empty() && kind.plural == "namespaces" {
            meta["labels"]["kubernetes.io/metadata.name"] = json!(name);
        }
        body["metadata"] = meta;
        normalize(kind, &mut body);
        let mut obj = Store::present(kind, &body);
        obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        if obj == old {
            // A no-op write does not create a new version (as on a real server).
            return Ok(obj);
        }
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects.insert(key, obj.clone());
        self.record(kind, &ns, "MODIFIED", obj.clone());
        Ok(obj)
    }

    /// PATCH; an apply patch of a missing object creates it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn patch(
        &mut self,
        kind: &ResourceKind,
        ns: Option<&str>,
        name: &str,
        ty: PatchType,
        patch: Value,
        field_manager: Option<&str>,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let ns_s = Store::namespace_of(kind, ns)?;
        if ty == PatchType::Apply && field_manager.is_none_or(str::is_empty) {
            return Err(ApiError::invalid(
                "PatchOptions.meta.k8s.io",
                "",
                "fieldManager: Required value: is required for apply patch",
            ));
        }
        let managed = |obj: &mut Value| {
            if let (PatchType::Apply, Some(m)) = (ty, field_manager) {
                let entry = json!({"manager": m, "operation": "Apply", "apiVersion": kind.api_version(), "time": now(), "fieldsType": "FieldsV1", "fieldsV1": {}});
                let list = obj["metadata"]["managedFields"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let mut list: Vec<Value> = list
                    .into_iter()
                    .filter(|e| e["manager"] != json!(m))
                    .collect();
                list.push(entry);
                obj["metadata"]["managedFields"] = Value::Array(list);
            }
        };
        let Some(old) = self.objects.get(&Store::key(kind, &ns_s, name)).cloned() else {
            if ty == PatchType::Apply && !status_only {
                let mut body = patch;
                if !body.is_object() {
                    return Err(ApiError::bad_request("the apply patch must be an object"));
                }
                body["metadata"]["name"] = json!(name);
                managed(&mut body);
                return self.create(kind, ns, body);
            }
            return Err(ApiError::not_found(
                &kind.group,
                &kind.qualified(),
                &kind.plural,
                name,
            ));
        };
        let mut doc = old.clone();
        match ty {
            PatchType::Merge | PatchType::Apply => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                json_patch::merge(&mut doc, &patch);
            }
            PatchType::Json => {
                let p: json_patch::Patch = serde_json::from_value(patch)
                    .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                json_patch::patch(&mut doc, &p).map_err(|e| {
                    ApiError::invalid(
                        &kind.kind,
                        name,
                        &format!("the JSON patch could not be applied: {e}"),
                    )
                })?;
            }
        }
        managed(&mut doc);
        if !doc.is_object() {
            return Err(ApiError::invalid(
                &kind.kind,
                name,
                "the patched object is not an object",
            ));
        }
        self.update(kind, ns, name, doc, status_only)
    }

    pub(crate) fn delete(
        &mut self,
        kind: &ResourceKind,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let ns = Store::namespace_of(kind, ns)?;
        let Some(mut obj) = self.objects.remove(&Store::key(kind, &ns, name)) else {
            return Err(ApiError::not_found(
                &kind.group,
                &kind.qualified(),
                &kind.plural,
                name,
            ));
        };
        if kind.group.is_empty() && kind.plural == "namespaces" {
            // Deleting a namespace deletes what is in it (at once, where a real cluster
            // finalizes over seconds).
            let inside: Vec<Key> = self
                .objects
                .keys()
                .filter(|(_, _, n, _)| *n == *name)
                .cloned()
                .collect();
            for k in inside {
                if let (Some(o), Some(kk)) = (self.objects.remove(&k), self.kind(&k.0, &k.1)) {
                    self.rv += 1;
                    let mut o = o;
                    o["metadata"]["resourceVersion"] = json!(self.rv.to_string());
                    self.record(&kk, &k.2, "DELETED", o);
                }
            }
        }
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(kind, &ns, "DELETED", obj.clone());
        Ok(obj)
    }
}

/// `kind`/`apiVersion` of a body must be the resource's, when given.
fn check_type(kind: &ResourceKind, body: &Value) -> Result<(), ApiError> {
    let api_version = body.get("apiVersion").and_then(Value::as_str);
    let k = body.get("kind").and_then(Value::as_str);
    if api_version.is_some_and(|v| v != kind.api_version()) || k.is_some_and(|k| k != kind.kind) {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({}) does not match the expected API version ({})",
            api_version.unwrap_or(""),
            kind.api_version()
        )));
    }
    Ok(())
}

/// Server-side defaulting the fake models: a Secret's `stringData` moves into `data`.
fn normalize(kind: &ResourceKind, body: &mut Value) {
    if kind.group.is_empty() && kind.plural == "secrets" {
        if let Some(Value::Object(sd)) = body.as_object_mut().and_then(|o| o.remove("stringData")) {
            for (k, v) in sd {
                let s = v.as_str().unwrap_or_default();
                body["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(s));
            }
        }
        if body
            .get("type")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            body["type"] = json!("Opaque");
        }
    }
}
