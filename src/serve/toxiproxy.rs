//! Toxiproxy's HTTP API (`/version`, `/reset`, `/populate`, `/proxies`,
//! `/proxies/{name}/toxics`) with its JSON shapes and status codes, so that
//! existing Toxiproxy clients work unchanged. A proxy is a session whose
//! upstream is `host:port`; each toxic is one or more faults on that
//! session's timeline (see [`super::toxics`]).

use super::error::{body_object, ApiError};
use super::session::{CloseHow, Session, SessionConfig};
use super::toxics::Toxic;
use super::AppState;
use crate::relay::Upstream;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

type Res<T> = Result<T, ApiError>;
type Body_ = Result<Bytes, BytesRejection>;

/// One proxy.
pub struct Proxy {
    name: String,
    /// The address asked for, then the one bound.
    listen: String,
    upstream: String,
    enabled: bool,
    toxics: Vec<Toxic>,
    session: Option<Arc<Session>>,
    /// Fault names used on the current session (a re-created toxic gets a new one).
    used: HashSet<String>,
    generation: u64,
}

impl Proxy {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": self.toxics.iter().map(Toxic::to_json).collect::<Vec<_>>(),
        })
    }

    /// The toxic's name, or `NAME~N` when the session has used it before.
    fn fault_name(&mut self, toxic: &str) -> String {
        let mut name = toxic.to_string();
        while !self.used.insert(name.clone()) {
            self.generation += 1;
            name = format!("{toxic}~{}", self.generation);
        }
        name
    }

    /// Start listening (if enabled) with every toxic in place.
    async fn start(&mut self, st: &AppState) -> Res<()> {
        if !self.enabled || self.session.is_some() {
            return Ok(());
        }
        let listen = super::native::listen_addr(st, "listen", Some(&self.listen))?;
        let upstream = upstream(&self.upstream)?;
        let s = Session::start(
            format!("proxy-{}", self.name),
            SessionConfig {
                upstream,
                upstream_text: self.upstream.clone(),
                listen,
                seed: 0,
                scenario: None,
                // A Toxiproxy proxy is often not WebSocket at all.
                raw_fallback: true,
            },
        )
        .await?;
        self.listen = s.addr().to_string();
        self.used.clear();
        st.replace_session(s.clone());
        self.session = Some(s);
        for i in 0..self.toxics.len() {
            let t = self.toxics[i].clone();
            self.apply(&t).await?;
        }
        Ok(())
    }

    async fn stop(&mut self, st: &AppState) {
        if let Some(s) = self.session.take() {
            st.forget_session(&s);
            s.stop(CloseHow::Fin).await;
        }
    }

    /// Put a toxic's faults on the running session (if any).
    async fn apply(&mut self, t: &Toxic) -> Res<()> {
        let Some(s) = self.session.clone() else {
            return Ok(());
        };
        let name = self.fault_name(&t.name);
        for f in t.faults(&name, s.log().now(), s.seed())? {
            s.add_live(f).await?;
        }
        Ok(())
    }

    /// Take a toxic's faults off the running session.
    async fn unapply(&mut self, toxic: &str) -> Res<()> {
        let Some(s) = self.session.clone() else {
            return Ok(());
        };
        for (name, _) in s.faults().await? {
            if name == toxic || name.starts_with(&format!("{toxic}~")) {
                s.stop_fault(&name).await?;
            }
        }
        Ok(())
    }
}

/// Every proxy, by name.
#[derive(Default)]
pub struct Proxies {
    map: BTreeMap<String, Proxy>,
}

impl Proxies {
    /// Stop every proxy (server shutdown).
    pub async fn close_all(&mut self, st: &AppState) {
        for p in self.map.values_mut() {
            p.stop(st).await;
        }
        self.map.clear();
    }

    fn get(&mut self, name: &str) -> Res<&mut Proxy> {
        self.map
            .get_mut(name)
            .ok_or_else(|| ApiError::not_found("proxy not found"))
    }
}

/// `host:port` as a relay upstream.
fn upstream(text: &str) -> Res<Upstream> {
    let bad = |why: &str| ApiError::field("upstream", format!("upstream `{text}`: {why}"));
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| bad("expected host:port"))?;
    let port: u16 = port.parse().map_err(|_| bad("the port is not a number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok(Upstream {
        host: host.to_string(),
        port,
        path: "/".into(),
        tls: false,
    })
}

/// The routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/version", get(version))
        .route("/reset", post(reset))
        .route("/populate", post(populate))
        .route("/proxies", get(index).post(create))
        .route(
            "/proxies/{proxy}",
            get(show).post(update).patch(update).delete(remove),
        )
        .route(
            "/proxies/{proxy}/toxics",
            get(toxic_index).post(toxic_create),
        )
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(toxic_show)
                .post(toxic_update)
                .patch(toxic_update)
                .delete(toxic_remove),
        )
}

async fn version() -> Json<Value> {
    Json(json!({ "version": super::VERSION }))
}

async fn reset(State(st): State<Arc<AppState>>) -> Res<StatusCode> {
    let mut all = st.proxies.lock().await;
    for p in all.map.values_mut() {
        let names: Vec<String> = p.toxics.iter().map(|t| t.name.clone()).collect();
        for n in names {
            p.unapply(&n).await?;
        }
        p.toxics.clear();
        p.enabled = true;
        p.start(&st).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn index(State(st): State<Arc<AppState>>) -> Json<Value> {
    let all = st.proxies.lock().await;
    let m: Map<String, Value> = all
        .map
        .iter()
        .map(|(k, p)| (k.clone(), p.to_json()))
        .collect();
    Json(Value::Object(m))
}

/// A proxy from a create or populate entry; `at` names the entry in errors.
fn proxy_from(obj: &Map<String, Value>, at: &str) -> Res<Proxy> {
    super::native::check_keys(obj, &["name", "listen", "upstream", "enabled"])?;
    let text = |k: &str| -> Res<String> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(ApiError::field(
                k,
                format!(
                    "`{k}` must be a string, found {}",
                    super::error::json_type(v)
                ),
            )),
        }
    };
    let name = text("name")?;
    if name.is_empty() {
        return Err(ApiError::field(
            "name",
            format!("missing required field: name{at}"),
        ));
    }
    let up = text("upstream")?;
    if up.is_empty() {
        return Err(ApiError::field(
            "upstream",
            format!("missing required field: upstream{at}"),
        ));
    }
    upstream(&up)?;
    let mut listen = text("listen")?;
    if listen.is_empty() {
        listen = "127.0.0.1:0".into();
    }
    let enabled = match obj.get("enabled") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(ApiError::field(
                "enabled",
                format!("`enabled` must be true or false, found {v}"),
            ))
        }
    };
    Ok(Proxy {
        name,
        listen,
        upstream: up,
        enabled,
        toxics: Vec::new(),
        session: None,
        used: HashSet::new(),
        generation: 0,
    })
}

async fn create(State(st): State<Arc<AppState>>, body: Body_) -> Res<Response> {
    let obj = body_object(body)?;
    let mut p = proxy_from(&obj, "")?;
    let mut all = st.proxies.lock().await;
    if all.map.contains_key(&p.name) {
        return Err(ApiError::conflict("proxy already exists"));
    }
    p.start(&st).await?;
    let v = p.to_json();
    all.map.insert(p.name.clone(), p);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn populate(State(st): State<Arc<AppState>>, body: Body_) -> Res<Response> {
    let bytes = body.map_err(|e| ApiError::new(e.status(), e.to_string()))?;
    let list: Vec<Value> = match serde_json::from_slice(&bytes) {
        Ok(Value::Array(l)) => l,
        Ok(other) => {
            return Err(ApiError::bad(format!(
                "bad request body: expected an array of proxies, found {}",
                super::error::json_type(&other)
            )))
        }
        Err(e) => return Err(ApiError::json(&e)),
    };
    let mut all = st.proxies.lock().await;
    let mut done = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let at = format!(" at proxy {}", i + 1);
        let parsed = match v {
            Value::Object(o) => proxy_from(o, &at),
            _ => Err(ApiError::bad(format!(
                "bad request body: proxy {} is not an object",
                i + 1
            ))),
        };
        let result = match parsed {
            Ok(p) => populate_one(&st, &mut all, p).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(v) => done.push(v),
            Err(e) => {
                let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
                let body = json!({"error": e.error, "status": e.status, "field": e.field, "proxies": done});
                return Ok((status, Json(body)).into_response());
            }
        }
    }
    Ok((StatusCode::CREATED, Json(json!({ "proxies": done }))).into_response())
}

/// Toxiproxy's add-or-replace: the same listen and upstream keep the proxy.
async fn populate_one(st: &AppState, all: &mut Proxies, mut p: Proxy) -> Res<Value> {
    if let Some(old) = all.map.get_mut(&p.name) {
        let same_listen = old.listen == p.listen
            || super::resolve(&p.listen).ok() == super::resolve(&old.listen).ok();
        if same_listen && old.upstream == p.upstream {
            return Ok(old.to_json());
        }
        old.stop(st).await;
    }
    p.start(st).await?;
    let v = p.to_json();
    all.map.insert(p.name.clone(), p);
    Ok(v)
}

async fn show(State(st): State<Arc<AppState>>, Path(name): Path<String>) -> Res<Json<Value>> {
    let mut all = st.proxies.lock().await;
    Ok(Json(all.get(&name)?.to_json()))
}

async fn update(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Body_,
) -> Res<Json<Value>> {
    let obj = body_object(body)?;
    super::native::check_keys(&obj, &["name", "listen", "upstream", "enabled"])?;
    let mut all = st.proxies.lock().await;
    let p = all.get(&name)?;
    let mut merged = Map::new();
    merged.insert("name".into(), json!(p.name));
    merged.insert("listen".into(), json!(p.listen));
    merged.insert("upstream".into(), json!(p.upstream));
    merged.insert("enabled".into(), json!(p.enabled));
    for (k, v) in obj {
        if k != "name" {
            merged.insert(k, v);
        }
    }
    let new = proxy_from(&merged, "")?;
    let moved = new.listen != p.listen || new.upstream != p.upstream;
    if moved || !new.enabled {
        p.stop(&st).await;
    }
    p.listen = new.listen;
    p.upstream = new.upstream;
    p.enabled = new.enabled;
    p.start(&st).await?;
    Ok(Json(p.to_json()))
}

async fn remove(State(st): State<Arc<AppState>>, Path(name): Path<String>) -> Res<StatusCode> {
    let mut all = st.proxies.lock().await;
    all.get(&name)?.stop(&st).await;
    all.map.remove(&name);
    Ok(StatusCode::NO_CONTENT)
}

async fn toxic_index(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Res<Json<Value>> {
    let mut all = st.proxies.lock().await;
    let p = all.get(&name)?;
    Ok(Json(Value::Array(
        p.toxics.iter().map(Toxic::to_json).collect(),
    )))
}

async fn toxic_create(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Body_,
) -> Res<Json<Value>> {
    let obj = body_object(body)?;
    let mut all = st.proxies.lock().await;
    let p = all.get(&name)?;
    let t = Toxic::create(&obj)?;
    if p.toxics.iter().any(|x| x.name == t.name) {
        return Err(ApiError::conflict("toxic already exists"));
    }
    p.apply(&t).await?;
    let v = t.to_json();
    p.toxics.push(t);
    Ok(Json(v))
}

async fn toxic_show(
    State(st): State<Arc<AppState>>,
    Path((name, toxic)): Path<(String, String)>,
) -> Res<Json<Value>> {
    let mut all = st.proxies.lock().await;
    let p = all.get(&name)?;
    p.toxics
        .iter()
        .find(|t| t.name == toxic)
        .map(|t| Json(t.to_json()))
        .ok_or_else(|| ApiError::not_found("toxic not found"))
}

async fn toxic_update(
    State(st): State<Arc<AppState>>,
    Path((name, toxic)): Path<(String, String)>,
    body: Body_,
) -> Res<Json<Value>> {
    let obj = body_object(body)?;
    let mut all = st.proxies.lock().await;
    let p = all.get(&name)?;
    let i = p
        .toxics
        .iter()
        .position(|t| t.name == toxic)
        .ok_or_else(|| ApiError::not_found("toxic not found"))?;
    let mut t = p.toxics[i].clone();
    let mut fields = obj.clone();
    fields.remove("name");
    fields.remove("type");
    fields.remove("stream");
    t.update(&fields)?;
    p.unapply(&toxic).await?;
    p.apply(&t).await?;
    p.toxics[i] = t.clone();
    Ok(Json(t.to_json()))
}

async fn toxic_remove(
    State(st): State<Arc<AppState>>,
    Path((name, toxic)): Path<(String, String)>,
) -> Res<StatusCode> {
    let mut all = st.proxies.lock().await;
    let p = all.get(&name)?;
    let i = p
        .toxics
        .iter()
        .position(|t| t.name == toxic)
        .ok_or_else(|| ApiError::not_found("toxic not found"))?;
    p.unapply(&toxic).await?;
    p.toxics.remove(i);
    Ok(StatusCode::NO_CONTENT)
}
