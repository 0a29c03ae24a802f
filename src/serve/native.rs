//! The native API: sessions, faults now, verdicts on demand, events,
//! transcript and reports. See docs/serve.md for the contract.

use super::error::{body_object, json_type, ApiError};
use super::session::{CloseHow, Session, SessionConfig};
use super::{spec, AppState};
use crate::relay::Upstream;
use crate::scenario::Dur;
use crate::timeline::FaultState;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

type Res<T> = Result<T, ApiError>;
type Body_ = Result<Bytes, BytesRejection>;

/// Longest `wait` an expectation may ask for.
const MAX_WAIT: Duration = Duration::from_secs(600);
/// `wait` without `timeout`.
const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// The native routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/sessions", post(create).get(list))
        .route("/sessions/{id}", get(show).delete(remove))
        .route("/sessions/{id}/faults", post(add_fault).get(list_faults))
        .route("/sessions/{id}/faults/{name}", delete(stop_fault))
        .route("/sessions/{id}/expect", post(expect))
        .route("/sessions/{id}/events", get(super::follow::events))
        .route("/sessions/{id}/transcript", get(transcript))
        .route("/sessions/{id}/report", get(report_json))
        .route("/sessions/{id}/report.xml", get(report_junit))
        .route("/sessions/{id}/report.html", get(report_html))
}

/// Reject keys outside `allowed`, with a hint.
pub fn check_keys(obj: &Map<String, Value>, allowed: &[&str]) -> Res<()> {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            let hint = crate::scenario::hint_for(k, allowed);
            return Err(ApiError::field(k, format!("unknown field `{k}`")).with_hint(Some(hint)));
        }
    }
    Ok(())
}

fn string_field(obj: &Map<String, Value>, key: &str) -> Res<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(ApiError::field(
            key,
            format!("`{key}` must be a string, found {}", json_type(v)),
        )),
    }
}

/// A listen address: loopback unless the server allows others.
pub fn listen_addr(state: &AppState, field: &str, text: Option<&str>) -> Res<SocketAddr> {
    let Some(text) = text else {
        return Ok(SocketAddr::from(([127, 0, 0, 1], 0)));
    };
    let addr = super::resolve(text).map_err(|e| ApiError::field(field, e))?;
    if !addr.ip().is_loopback() && !state.allow_remote {
        return Err(ApiError::field(
            field,
            format!("`{text}` is not a loopback address; start `flatline serve --allow-remote` to listen elsewhere"),
        ));
    }
    Ok(addr)
}

async fn create(State(st): State<Arc<AppState>>, body: Body_) -> Res<Response> {
    let obj = body_object(body)?;
    check_keys(&obj, &["upstream", "listen", "seed", "scenario", "raw_tcp"])?;
    let scenario = obj.get("scenario").map(spec::scenario).transpose()?;
    let upstream_text = string_field(&obj, "upstream")?
        .or_else(|| scenario.as_ref().and_then(|s| s.upstream.clone()))
        .ok_or_else(|| {
            ApiError::field(
                "upstream",
                "missing field `upstream` (the WebSocket server, e.g. \"ws://127.0.0.1:9001/feed\")",
            )
        })?;
    let upstream =
        Upstream::parse(&upstream_text).map_err(|e| ApiError::field("upstream", e.to_string()))?;
    let listen = listen_addr(&st, "listen", string_field(&obj, "listen")?.as_deref())?;
    let seed = match obj.get("seed") {
        None | Some(Value::Null) => scenario.as_ref().map_or(0, |s| s.seed),
        Some(v) => v.as_u64().ok_or_else(|| {
            ApiError::field(
                "seed",
                format!("`seed` must be a whole number ≥ 0, found {v}"),
            )
        })?,
    };
    let raw_fallback = match obj.get("raw_tcp") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(ApiError::field(
                "raw_tcp",
                format!("`raw_tcp` must be true or false, found {}", json_type(v)),
            ))
        }
    };
    let id = st.next_id();
    let session = Session::start(
        id.clone(),
        SessionConfig {
            upstream,
            upstream_text,
            listen,
            seed,
            scenario,
            raw_fallback,
        },
    )
    .await?;
    let body = session_json(&session);
    st.insert_session(session)?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

fn session_json(s: &Session) -> Value {
    json!({
        "id": s.id,
        "url": s.url(),
        "listen": s.addr().to_string(),
        "upstream": s.upstream(),
        "seed": s.seed(),
    })
}

async fn list(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(Value::Array(
        st.sessions().iter().map(|s| session_json(s)).collect(),
    ))
}

async fn show(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Res<Json<Value>> {
    let s = st.session(&id)?;
    let mut v = session_json(&s);
    v["events"] = json!(s.log().len());
    v["faults"] = faults_json(&s).await?;
    Ok(Json(v))
}

async fn remove(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Res<StatusCode> {
    let how = match q.get("close").map(String::as_str) {
        None | Some("fin") => CloseHow::Fin,
        Some("rst") | Some("reset") => CloseHow::Rst,
        Some(other) => {
            return Err(ApiError::field(
                "close",
                format!("unknown close `{other}`, expected `fin` or `rst`"),
            ))
        }
    };
    if id.starts_with("proxy-") && st.session(&id).is_ok() {
        return Err(ApiError::conflict(format!(
            "session `{id}` belongs to a Toxiproxy proxy: delete or disable the proxy instead"
        )));
    }
    let s = st.remove_session(&id)?;
    s.stop(how).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn add_fault(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Body_,
) -> Res<Response> {
    let s = st.session(&id)?;
    let obj = body_object(body)?;
    if let Some(Value::String(name)) = obj.get("name") {
        if s.has_fault(name) {
            return Err(ApiError::conflict(format!(
                "session `{id}` already has a fault named `{name}`"
            ))
            .with_hint(Some(
                "fault names are unique within a session (references use them)".into(),
            )));
        }
    }
    let spec = spec::fault(obj, &s.fault_specs())?;
    let name = spec.name.clone().unwrap_or_default();
    let kind = spec.kind.name();
    let state = s.add_fault(spec).await?;
    let mut v = json!({"name": name, "kind": kind});
    state_into(&mut v, &state);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

fn state_into(v: &mut Value, state: &FaultState) {
    let (word, until) = match state {
        FaultState::Pending => ("pending", None),
        FaultState::Active { until } => ("active", *until),
        FaultState::Done => ("done", None),
    };
    v["state"] = json!(word);
    if let Some(u) = until {
        v["until_ms"] = json!(u.as_micros() as f64 / 1000.0);
    }
}

async fn faults_json(s: &Session) -> Res<Value> {
    let specs = s.fault_specs();
    let mut out = Vec::new();
    for (name, state) in s.faults().await? {
        if state == FaultState::Done {
            continue;
        }
        let mut v = specs
            .iter()
            .find(|f| f.name.as_deref() == Some(&name))
            .and_then(|f| serde_json::to_value(f).ok())
            .unwrap_or_else(|| json!({ "name": name }));
        state_into(&mut v, &state);
        out.push(v);
    }
    Ok(Value::Array(out))
}

async fn list_faults(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Res<Json<Value>> {
    let s = st.session(&id)?;
    Ok(Json(faults_json(&s).await?))
}

async fn stop_fault(
    State(st): State<Arc<AppState>>,
    Path((id, name)): Path<(String, String)>,
) -> Res<StatusCode> {
    let s = st.session(&id)?;
    if s.stop_fault(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else if s.has_fault(&name) {
        Err(ApiError::not_found(format!(
            "fault `{name}` of session `{id}` has already ended"
        )))
    } else {
        Err(ApiError::not_found(format!(
            "session `{id}` has no fault `{name}`"
        )))
    }
}

/// `wait` and `timeout` of an expectation request.
fn wait_of(obj: &mut Map<String, Value>) -> Res<Option<Duration>> {
    let wait = match obj.remove("wait") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(v) => {
            return Err(ApiError::field(
                "wait",
                format!("`wait` must be true or false, found {}", json_type(&v)),
            ))
        }
    };
    let timeout = match obj.remove("timeout") {
        None | Some(Value::Null) => DEFAULT_WAIT,
        Some(Value::String(t)) => {
            t.parse::<Dur>()
                .map_err(|e| ApiError::field("timeout", format!("`timeout`: {e}")))?
                .0
        }
        Some(Value::Number(n)) if n.as_f64().is_some_and(|ms| ms >= 0.0) => {
            Duration::from_secs_f64(n.as_f64().unwrap_or(0.0) / 1000.0)
        }
        Some(v) => {
            return Err(ApiError::field(
                "timeout",
                format!("`timeout` must be a duration such as \"30s\", found {v}"),
            ))
        }
    };
    if timeout > MAX_WAIT {
        return Err(ApiError::field(
            "timeout",
            format!("`timeout` is at most {} s", MAX_WAIT.as_secs()),
        ));
    }
    Ok(wait.then_some(timeout))
}

async fn expect(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Body_,
) -> Res<Json<Value>> {
    let s = st.session(&id)?;
    let mut obj = body_object(body)?;
    let wait = wait_of(&mut obj)?;
    let spec = spec::expectation(obj, &s.fault_specs(), s.expect_count())?;
    let name = spec.name.clone().unwrap_or_default();
    match s.expectation(&name) {
        Some(old) if old.kind != spec.kind => {
            return Err(ApiError::conflict(format!(
                "session `{id}` already has a different expectation named `{name}`"
            )))
        }
        Some(_) => {}
        None => s.add_expectation(spec.clone()),
    }
    let v = match wait {
        Some(w) => s.judge_waiting(&spec, w).await?,
        None => s.judge(&spec, false)?,
    };
    Ok(Json(serde_json::to_value(v).unwrap_or(Value::Null)))
}

async fn transcript(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Res<Response> {
    let s = st.session(&id)?;
    let text = s.report().transcript().to_text();
    Ok(typed("text/plain; charset=utf-8", text))
}

async fn report_json(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Res<Response> {
    let s = st.session(&id)?;
    Ok(typed("application/json", s.report().to_json()))
}

async fn report_junit(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Res<Response> {
    let s = st.session(&id)?;
    Ok(typed(
        "application/xml",
        crate::report::junit(&[s.report()]),
    ))
}

async fn report_html(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Res<Response> {
    let s = st.session(&id)?;
    let r = s.report();
    Ok(typed(
        "text/html; charset=utf-8",
        crate::report::html(&r, r.scenario_spec.as_ref()),
    ))
}

/// A body with a content type.
pub fn typed(content_type: &'static str, body: String) -> Response {
    ([(header::CONTENT_TYPE, content_type)], Body::from(body)).into_response()
}
