//! Connections and routing: TLS accept, authentication, discovery, the resource verbs and
//! WATCH streams. Every connection and watch is counted against a bound.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;
use tokio_rustls::TlsAcceptor;

use super::http::{self, ReadError, Request};
use super::kinds::{self, ResourceKind};
use super::protobuf;
use super::selector::Selector;
use super::status::ApiError;
use super::store::{PatchType, Query, Store, WatchStart};
use super::{LoggedApiRequest, Shared};

/// Concurrent connections served at most; more are closed at once.
const MAX_CONNECTIONS: usize = 256;
/// Concurrent WATCH streams at most; more answer 429.
const MAX_WATCHES: usize = 512;
/// Longest WATCH (the real server picks 30–60 min; clients ask for less).
const MAX_WATCH: Duration = Duration::from_secs(1800);

/// Accepts connections until `stop` changes.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: TlsAcceptor,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r { Ok(c) => c, Err(_) => continue },
            _ = stop.changed() => return,
        };
        if shared.connections.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            shared.connections.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let (tls, shared) = (tls.clone(), shared.clone());
        tokio::spawn(async move {
            if let Ok(Ok(stream)) =
                tokio::time::timeout(Duration::from_secs(10), tls.accept(tcp)).await
            {
                serve_connection(stream, &shared).await;
            }
            shared.connections.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// What a handler answers.
enum Reply {
    Json(u16, Value),
    Watch(Box<WatchPlan>),
}

struct WatchPlan {
    /// Send `PartialObjectMetadata` (the client asked for metadata only).
    meta_only: bool,
    kind: ResourceKind,
    query: Query,
    rv: Option<u64>,
    timeout: Duration,
    bookmarks: bool,
}

async fn serve_connection<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    shared: &Arc<Shared>,
) {
    let mut buf = Vec::new();
    loop {
        let req = match http::read_request(&mut stream, &mut buf).await {
            Ok(r) => r,
            Err(ReadError::Closed) => return,
            Err(e) => {
                let err = match e {
                    ReadError::TooLarge => ApiError::too_large(),
                    _ => ApiError::bad_request("a request body needs a Content-Length"),
                };
                let body = err.status().to_string();
                let _ = http::write_response(
                    &mut stream,
                    err.code,
                    "application/json",
                    body.as_bytes(),
                    true,
                )
                .await;
                return;
            }
        };
        let reply = handle(&req, shared).unwrap_or_else(|e| Reply::Json(e.code, e.status()));
        let code = match &reply {
            Reply::Json(code, _) => *code,
            Reply::Watch(_) => 200,
        };
        shared.log(LoggedApiRequest {
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.query.clone(),
            watch: matches!(reply, Reply::Watch(_)),
            code,
            user_agent: req.header("user-agent").unwrap_or("").to_owned(),
        });
        match reply {
            Reply::Json(code, body) => {
                let body = body.to_string();
                if http::write_response(
                    &mut stream,
                    code,
                    "application/json",
                    body.as_bytes(),
                    false,
                )
                .await
                .is_err()
                {
                    return;
                }
            }
            Reply::Watch(plan) => {
                shared.watches.fetch_add(1, Ordering::SeqCst);
                stream_watch(&mut stream, shared, *plan).await;
                shared.watches.fetch_sub(1, Ordering::SeqCst);
                return;
            }
        }
    }
}

fn ok(v: Value) -> Result<Reply, ApiError> {
    Ok(Reply::Json(200, v))
}

fn handle(req: &Request, shared: &Arc<Shared>) -> Result<Reply, ApiError> {
    let path = req.path.trim_end_matches('/');
    match path {
        "/version" => {
            return ok(json!({
                "major": "1", "minor": "33", "gitVersion": "v1.33.0-imagegate-fake",
                "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc",
                "platform": "linux/amd64",
            }));
        }
        "/healthz" | "/readyz" | "/livez" => return ok(json!("ok")),
        _ => {}
    }
    let authorized = req
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t == shared.token);
    if !authorized {
        return Err(ApiError::unauthorized());
    }
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let get = req.method == "GET";
    let store = || shared.store.lock().unwrap_or_else(|p| p.into_inner());
    match segs.as_slice() {
        ["api"] if get => ok(kinds::core_versions(&shared.addr.to_string())),
        ["apis"] if get => ok(kinds::group_list(&store().kinds)),
        ["api", "v1"] if get => kinds::resource_list(&store().kinds, "", "v1")
            .map(json200)
            .ok_or_else(ApiError::no_route),
        ["apis", g] if get => kinds::group(&store().kinds, g)
            .map(json200)
            .ok_or_else(ApiError::no_route),
        ["openapi", "v3"] if get => ok(kinds::openapi_root(&store().kinds)),
        ["openapi", "v3", "api", "v1"] if get => {
            kinds::openapi_group_version(&store().kinds, "", "v1")
                .map(json200)
                .ok_or_else(ApiError::no_route)
        }
        ["openapi", "v3", "apis", g, v] if get => {
            kinds::openapi_group_version(&store().kinds, g, v)
                .map(json200)
                .ok_or_else(ApiError::no_route)
        }
        ["apis", g, v] if get => kinds::resource_list(&store().kinds, g, v)
            .map(json200)
            .ok_or_else(ApiError::no_route),
        ["api", "v1", rest @ ..] => resource(req, shared, "", "v1", rest),
        ["apis", g, v, rest @ ..] => resource(req, shared, g, v, rest),
        _ => Err(ApiError::no_route()),
    }
}

fn json200(v: Value) -> Reply {
    Reply::Json(200, v)
}

fn resource(
    req: &Request,
    shared: &Arc<Shared>,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Reply, ApiError> {
    // [plural], [plural, name], [plural, name, status], and the same under
    // [namespaces, ns, ...]; `namespaces/NAME/status` is the namespace's own status.
    let (ns, rest) = match rest {
        ["namespaces", ns, plural, more @ ..] if *plural != "status" && *plural != "finalize" => (
            Some(*ns),
            std::iter::once(*plural)
                .chain(more.iter().copied())
                .collect::<Vec<_>>(),
        ),
        _ => (None, rest.to_vec()),
    };
    let mut store = shared.store.lock().unwrap_or_else(|p| p.into_inner());
    let kind = rest
        .first()
        .and_then(|p| store.kind_at(group, version, p))
        .ok_or_else(ApiError::no_route)?;
    if ns.is_some() && !kind.namespaced {
        return Err(ApiError::no_route());
    }
    let body = || -> Result<Value, ApiError> {
        let ct = req.header("content-type").unwrap_or("application/json");
        if ct.starts_with(protobuf::MEDIA_TYPE) {
            return protobuf::decode(&req.body, &kind.kind)
                .ok_or_else(|| ApiError::unsupported_media(ct));
        }
        serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
    };
    match (req.method.as_str(), &rest[1..]) {
        ("GET", []) => {
            let query = Query {
                namespace: ns.map(str::to_owned),
                labels: Selector::labels(req.param("labelSelector").unwrap_or(""))
                    .map_err(ApiError::bad_request)?,
                fields: Selector::fields(req.param("fieldSelector").unwrap_or(""))
                    .map_err(ApiError::bad_request)?,
            };
            if matches!(req.param("watch"), Some("true" | "1")) {
                let rv = match req.param("resourceVersion").filter(|v| !v.is_empty()) {
                    Some(v) => Some(v.parse::<u64>().map_err(|_| {
                        ApiError::bad_request(format!("invalid resource version: {v:?}"))
                    })?),
                    None => None,
                };
                if shared.watches.load(Ordering::SeqCst) >= MAX_WATCHES {
                    return Err(ApiError::too_many("too many open watches"));
                }
                let timeout = req
                    .param("timeoutSeconds")
                    .and_then(|t| t.parse::<u64>().ok())
                    .map_or(MAX_WATCH, |s| Duration::from_secs(s).min(MAX_WATCH));
                let bookmarks = matches!(req.param("allowWatchBookmarks"), Some("true" | "1"));
                return Ok(Reply::Watch(Box::new(WatchPlan {
                    meta_only: meta_only(req),
                    kind,
                    query,
                    rv,
                    timeout,
                    bookmarks,
                })));
            }
            let limit = req.param("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
            let list = store.list(
                &kind,
                &query,
                limit,
                req.param("continue").filter(|c| !c.is_empty()),
            )?;
            ok(if meta_only(req) {
                partial_list(list)
            } else {
                list
            })
        }
        ("POST", []) => Ok(Reply::Json(201, store.create(&kind, ns, body()?)?)),
        ("GET", [name]) => {
            let obj = store.get(&kind, ns, name)?;
            ok(if meta_only(req) { partial(&obj) } else { obj })
        }
        ("GET", [name, "status"]) if kind.status_subresource => ok(store.get(&kind, ns, name)?),
        ("PUT", [name]) => ok(store.update(&kind, ns, name, body()?, false)?),
        ("PUT", [name, "status"]) if kind.status_subresource => {
            ok(store.update(&kind, ns, name, body()?, true)?)
        }
        ("PATCH", [name]) => patch(req, &mut store, &kind, ns, name, false),
        ("PATCH", [name, "status"]) if kind.status_subresource => {
            patch(req, &mut store, &kind, ns, name, true)
        }
        ("DELETE", [name]) => {
            // Immediate deletion answers the deleted object (as for kinds without finalizers).
            ok(store.delete(&kind, ns, name)?)
        }
        ("GET" | "PUT" | "PATCH" | "DELETE" | "POST", _) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn patch(
    req: &Request,
    store: &mut Store,
    kind: &ResourceKind,
    ns: Option<&str>,
    name: &str,
    status_only: bool,
) -> Result<Reply, ApiError> {
    let ct = req.header("content-type").unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    let ty = match media {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            PatchType::Merge
        }
        "application/json-patch+json" => PatchType::Json,
        "application/apply-patch+yaml" => PatchType::Apply,
        _ => return Err(ApiError::unsupported_media(ct)),
    };
    let text = std::str::from_utf8(&req.body)
        .map_err(|_| ApiError::bad_request("the patch is not UTF-8"))?;
    let patch: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) if ty == PatchType::Apply => serde_saphyr::from_str(text).map_err(|y| {
            ApiError::bad_request(format!("the apply patch is not valid YAML: {y}"))
        })?,
        Err(e) => {
            return Err(ApiError::bad_request(format!(
                "the patch is not valid JSON: {e}"
            )));
        }
    };
    let created = ty == PatchType::Apply && store.get(kind, ns, name).is_err();
    let obj = store.patch(
        kind,
        ns,
        name,
        ty,
        patch,
        req.param("fieldManager"),
        status_only,
    )?;
    Ok(Reply::Json(if created { 201 } else { 200 }, obj))
}

/// Whether the client asked for `PartialObjectMetadata` (kube-rs and client-go metadata
/// informers do, through `Accept`).
fn meta_only(req: &Request) -> bool {
    req.header("accept")
        .is_some_and(|a| a.contains("as=PartialObjectMetadata"))
}

fn partial(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
}

fn partial_list(list: Value) -> Value {
    let items: Vec<Value> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(partial)
        .collect();
    json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": list["metadata"], "items": items})
}

fn event_line(ty: &str, object: &Value) -> Vec<u8> {
    let mut line = json!({"type": ty, "object": object})
        .to_string()
        .into_bytes();
    line.push(b'\n');
    line
}

async fn stream_watch<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    shared: &Arc<Shared>,
    plan: WatchPlan,
) {
    // Subscribed before anything is read or written, so a cut made at any point of
    // this stream's life ends it.
    let mut epoch = shared.epoch.subscribe();
    let started = shared
        .store
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .watch(&plan.kind, &plan.query, plan.rv);
    if http::start_stream(stream).await.is_err() {
        return;
    }
    let (first, mut last_rv, mut rx) = match started {
        Ok((WatchStart::Now(events) | WatchStart::Replay(events), rv, rx)) => (events, rv, rx),
        Err(e) => {
            // A too-old version is reported inside the stream, as the real server does.
            let _ = http::write_chunk(stream, &event_line("ERROR", &e.status())).await;
            let _ = http::end_stream(stream).await;
            return;
        }
    };
    let shape = |o: &Value| {
        if plan.meta_only {
            partial(o)
        } else {
            o.clone()
        }
    };
    for e in first {
        if http::write_chunk(stream, &event_line(e.kind, &shape(&e.object)))
            .await
            .is_err()
        {
            return;
        }
    }
    let mut stop = shared.stop.subscribe();
    let deadline = tokio::time::sleep(plan.timeout);
    tokio::pin!(deadline);
    let interval = *shared
        .bookmark_interval
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tokio::select! {
            biased;
            // The test hook: drop the connection without a clean end (a broken stream).
            _ = epoch.changed() => return,
            _ = stop.changed() => return,
            r = rx.recv() => match r {
                Ok(e) => {
                    // A stream cut by the test hook delivers nothing written after the
                    // cut, even when the event and the cut are ready at once.
                    if epoch.has_changed().unwrap_or(true) {
                        return;
                    }
                    if e.rv <= last_rv {
                        continue;
                    }
                    last_rv = e.rv;
                    if Store::event_matches(&plan.kind, &plan.query, &e)
                        && http::write_chunk(stream, &event_line(e.kind, &shape(&e.object))).await.is_err()
                    {
                        return;
                    }
                }
                // A watcher that fell behind is cut off; it re-watches from its version.
                Err(RecvError::Lagged(_) | RecvError::Closed) => break,
            },
            _ = ticker.tick(), if plan.bookmarks => {
                let bookmark = shape(&json!({"kind": plan.kind.kind, "apiVersion": plan.kind.api_version(), "metadata": {"resourceVersion": last_rv.to_string()}}));
                if http::write_chunk(stream, &event_line("BOOKMARK", &bookmark)).await.is_err() {
                    return;
                }
            }
            () = &mut deadline => break,
        }
    }
    let _ = http::end_stream(stream).await;
}
