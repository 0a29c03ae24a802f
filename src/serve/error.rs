//! Errors of the control API, as HTTP answers: a status and a JSON body
//! `{"error": "...", "status": N}` (Toxiproxy's shape), plus `field` (the
//! offending field) and `hint` (`did you mean …?`) when they are known.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answer of the API.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("{error}")]
pub struct ApiError {
    /// What is wrong, one sentence.
    pub error: String,
    /// The HTTP status.
    pub status: u16,
    /// The field at fault (`kind`, `at`, `attributes.latency`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A suggestion or what was expected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl ApiError {
    /// An error with a status and a message.
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            error: error.into(),
            status: status.as_u16(),
            field: None,
            hint: None,
        }
    }

    /// 400 about one field.
    pub fn field(field: &str, error: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field.to_string()),
            ..ApiError::new(StatusCode::BAD_REQUEST, error)
        }
    }

    /// 400.
    pub fn bad(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, error)
    }

    /// 404.
    pub fn not_found(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, error)
    }

    /// 409.
    pub fn conflict(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, error)
    }

    /// With a hint.
    pub fn with_hint(mut self, hint: Option<String>) -> ApiError {
        self.hint = hint;
        self
    }

    /// Malformed JSON: where and why.
    pub fn json(e: &serde_json::Error) -> ApiError {
        ApiError::bad(format!(
            "malformed JSON at line {}, column {}: {e}",
            e.line(),
            e.column()
        ))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self)).into_response()
    }
}

/// Read a request body as a JSON object: an empty body is `{}`, anything
/// that is not an object is a 400 naming what it is.
pub fn body_object(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    let bytes = body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                format!(
                    "request body too large (the limit is {} bytes)",
                    super::MAX_BODY_BYTES
                ),
            )
        } else {
            ApiError::new(status, format!("cannot read the request body: {e}"))
        }
    })?;
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(other) => Err(ApiError::bad(format!(
            "expected a JSON object, found {}",
            json_type(&other)
        ))),
        Err(e) => Err(ApiError::json(&e)),
    }
}

/// `a string`, `a number`…
pub fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
