//! `GET /sessions/{id}/events`: the session's events as JSON lines (shaped
//! like the report's `events`), from index `since` on; with `follow=true`
//! the answer stays open and streams each new event as it is logged, until
//! the session ends or the client goes away.

use super::error::ApiError;
use super::AppState;
use crate::events::{Event, EventLog};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

fn lines(events: &[Event]) -> Bytes {
    let mut out = String::new();
    for e in events {
        if let Ok(s) = serde_json::to_string(e) {
            out.push_str(&s);
            out.push('\n');
        }
    }
    Bytes::from(out)
}

fn flag(q: &HashMap<String, String>, key: &str) -> Result<bool, ApiError> {
    match q.get(key).map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(v) => Err(ApiError::field(
            key,
            format!("`{key}` must be true or false, found `{v}`"),
        )),
    }
}

/// The handler.
pub async fn events(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let s = st.session(&id)?;
    let since = match q.get("since") {
        None => 0,
        Some(n) => n.parse::<usize>().map_err(|_| {
            ApiError::field(
                "since",
                format!("`since` must be an event index ≥ 0, found `{n}`"),
            )
        })?,
    };
    let follow = flag(&q, "follow")?;
    let ndjson = [(header::CONTENT_TYPE, "application/x-ndjson")];
    if !follow {
        return Ok((ndjson, Body::from(lines(&s.events_since(since)))).into_response());
    }
    let (past, rx) = s.log().snapshot_and_subscribe();
    let first = lines(past.get(since..).unwrap_or(&[]));
    let st = Follow {
        log: s.log().clone(),
        rx,
        seen: past.len(),
        since,
        first: Some(first),
        stop: s.stopped.clone(),
    };
    let stream = futures_util::stream::unfold(st, |mut f| async move {
        let chunk = f.next_chunk().await?;
        Some((Ok::<Bytes, std::io::Error>(chunk), f))
    });
    Ok((ndjson, Body::from_stream(stream)).into_response())
}

struct Follow {
    log: EventLog,
    rx: broadcast::Receiver<Event>,
    /// Index of the next event the subscription delivers.
    seen: usize,
    /// Events before this index are not sent.
    since: usize,
    first: Option<Bytes>,
    stop: CancellationToken,
}

impl Follow {
    /// The next lines to send; `None` ends the answer.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(b) = self.first.take() {
            return Some(b);
        }
        tokio::select! {
            _ = self.stop.cancelled() => {
                // What was logged while stopping, then the end.
                let rest = self.log.events();
                let out = lines(rest.get(self.seen.max(self.since)..).unwrap_or(&[]));
                self.seen = rest.len();
                (!out.is_empty()).then_some(out)
            }
            r = self.rx.recv() => match r {
                Ok(e) => {
                    self.seen += 1;
                    if self.seen <= self.since {
                        return Some(Bytes::new());
                    }
                    Some(lines(std::slice::from_ref(&e)))
                }
                Err(RecvError::Lagged(_)) => {
                    // Fell behind: resubscribe and send what was missed from the log.
                    let (past, rx) = self.log.snapshot_and_subscribe();
                    self.rx = rx;
                    let out = lines(past.get(self.seen.max(self.since)..).unwrap_or(&[]));
                    self.seen = past.len();
                    Some(out)
                }
                Err(RecvError::Closed) => None,
            },
        }
    }
}
