//! Faults, expectations and scenarios sent to the API, read by the scenario
//! loader itself: one fault (or expectation) is placed in a scenario
//! document after the session's earlier faults, so that names, references
//! (`after: outage.end`), kinds and parameters are checked exactly as in a
//! scenario file, with the same "did you mean" hints. Errors name the field.

use super::error::ApiError;
use crate::scenario::{parse_str, ExpectSpec, FaultSpec, Scenario, ScenarioError};
use serde_json::{json, Map, Value};

/// The session's clock has no end; the scenario document needs one.
const OPEN_ENDED: &str = "100000h";

/// A scenario document holding `faults` and `expect`.
fn document(faults: Vec<Value>, expect: Vec<Value>) -> String {
    json!({
        "name": "session",
        "description": "a live session of flatline serve",
        "duration": OPEN_ENDED,
        "faults": faults,
        "expect": expect,
    })
    .to_string()
}

fn known_values(known: &[FaultSpec]) -> Result<Vec<Value>, ApiError> {
    known
        .iter()
        .map(|f| {
            serde_json::to_value(f).map_err(|e| {
                ApiError::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot restate an earlier fault: {e}"),
                )
            })
        })
        .collect()
}

/// Turn a loader error about `list[index]` into an error about the field.
fn field_error(e: ScenarioError, list: &str, index: usize) -> ApiError {
    match e {
        ScenarioError::Invalid {
            path,
            message,
            hint,
            ..
        } => {
            let own = format!("{list}[{index}]");
            let field = path
                .strip_prefix(&own)
                .map(|p| p.trim_start_matches('.').to_string())
                .filter(|p| !p.is_empty());
            let message = message
                .replace(&format!("{own}: "), "")
                .replace(&format!("{own}."), "")
                .replace(&own, "the request");
            let mut err = match &field {
                Some(f) => ApiError::field(f, message),
                None => ApiError::bad(message),
            };
            err.hint = hint;
            err
        }
        other => ApiError::bad(other.to_string()),
    }
}

/// One fault in the scenario format; `known` are the session's faults so
/// far (for references and default names).
pub fn fault(obj: Map<String, Value>, known: &[FaultSpec]) -> Result<FaultSpec, ApiError> {
    let index = known.len();
    let mut faults = known_values(known)?;
    faults.push(Value::Object(obj));
    let loaded = parse_str(&document(faults, Vec::new()), "request")
        .map_err(|e| field_error(e, "faults", index))?;
    let mut spec = loaded
        .scenario
        .faults
        .get(index)
        .cloned()
        .ok_or_else(|| ApiError::bad("no fault in the request"))?;
    if spec.name.is_none() {
        spec.name = Some(loaded.scenario.fault_name(index));
    }
    Ok(spec)
}

/// One expectation in the scenario format; `index` counts the session's
/// expectations so far (for the default name `<kind>-<index>`).
pub fn expectation(
    obj: Map<String, Value>,
    known: &[FaultSpec],
    index: usize,
) -> Result<ExpectSpec, ApiError> {
    let faults = known_values(known)?;
    // Placeholders keep the index (and so the default name) right.
    let mut expect: Vec<Value> = (0..index)
        .map(|i| json!({"kind": "closes_with", "code": 1000, "name": format!("__placeholder-{i}")}))
        .collect();
    expect.push(Value::Object(obj));
    let loaded = parse_str(&document(faults, expect), "request")
        .map_err(|e| field_error(e, "expect", index))?;
    let mut spec = loaded
        .scenario
        .expect
        .get(index)
        .cloned()
        .ok_or_else(|| ApiError::bad("no expectation in the request"))?;
    if spec.name.is_none() {
        spec.name = Some(loaded.scenario.expect_name(index));
    }
    Ok(spec)
}

/// A scenario given at session creation: inline YAML (a string) or JSON (an
/// object). Errors name the line and column inside it.
pub fn scenario(v: &Value) -> Result<Scenario, ApiError> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Object(_) => v.to_string(),
        other => {
            return Err(ApiError::field(
                "scenario",
                format!(
                    "expected inline YAML (a string) or a JSON object, found {}",
                    super::error::json_type(other)
                ),
            ))
        }
    };
    parse_str(&text, "scenario")
        .map(|l| l.scenario)
        .map_err(|e| ApiError::field("scenario", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_fault_gets_a_default_name_and_no_start() {
        let f = fault(obj(json!({"kind": "partition"})), &[]).unwrap();
        assert_eq!(f.name.as_deref(), Some("partition-1"));
        assert!(f.at.is_none() && f.duration.is_none());
        let g = fault(
            obj(json!({"kind": "delay", "latency": "200ms", "at": "partition-1.end"})),
            &[f],
        )
        .unwrap();
        assert_eq!(g.name.as_deref(), Some("delay-2"));
    }

    #[test]
    fn unknown_kind_names_the_field_with_a_hint() {
        let e = fault(obj(json!({"kind": "partiton"})), &[]).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.field.as_deref(), Some("kind"), "{e:?}");
        assert!(
            e.hint
                .as_deref()
                .unwrap_or("")
                .contains("did you mean `partition`"),
            "{e:?}"
        );
    }

    #[test]
    fn bad_parameter_names_the_field() {
        let e = fault(obj(json!({"kind": "delay", "latency": "fast"})), &[]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("latency"), "{e:?}");
        let e = expectation(
            obj(json!({"kind": "detects", "after": "outage", "within": "3s"})),
            &[],
            0,
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("after"), "{e:?}");
    }

    #[test]
    fn an_expectation_refers_to_earlier_faults() {
        let f = fault(obj(json!({"name": "outage", "kind": "partition"})), &[]).unwrap();
        let e = expectation(
            obj(json!({"kind": "detects", "after": "outage", "within": "3s"})),
            &[f],
            2,
        )
        .unwrap();
        assert_eq!(e.name.as_deref(), Some("detects-3"));
    }
}
