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

/// Every string inside `v`.
fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// The earlier faults `obj` may refer to (by name, transitively): only those
/// go into the document, so a request costs the same however many faults the
/// session already has.
fn referenced<'a>(obj: &Map<String, Value>, known: &'a [FaultSpec]) -> Vec<&'a FaultSpec> {
    let mut texts = Vec::new();
    obj.values().for_each(|v| strings(v, &mut texts));
    let mut texts: Vec<String> = texts.into_iter().map(str::to_string).collect();
    let mut picked = vec![false; known.len()];
    loop {
        let mut more = false;
        for (i, f) in known.iter().enumerate() {
            let Some(name) = f.name.as_deref() else {
                continue;
            };
            if !picked[i] && texts.iter().any(|t| t.contains(name)) {
                picked[i] = true;
                more = true;
                if let Some(at) = serde_json::to_value(&f.at)
                    .ok()
                    .as_ref()
                    .and_then(Value::as_str)
                {
                    texts.push(at.to_string());
                }
            }
        }
        if !more {
            break;
        }
    }
    known
        .iter()
        .zip(picked)
        .filter_map(|(f, p)| p.then_some(f))
        .collect()
}

/// `<kind>-<n>`, `n` counting from `index + 1` until the name is free.
fn default_name(kind: &str, index: usize, taken: impl Fn(&str) -> bool) -> String {
    (index + 1..)
        .map(|n| format!("{kind}-{n}"))
        .find(|n| !taken(n))
        .unwrap_or_default()
}

fn known_values(known: &[&FaultSpec]) -> Result<Vec<Value>, ApiError> {
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
    let refs = referenced(&obj, known);
    let index = refs.len();
    let mut faults = known_values(&refs)?;
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
        let taken = |n: &str| known.iter().any(|f| f.name.as_deref() == Some(n));
        spec.name = Some(default_name(spec.kind.name(), known.len(), taken));
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
    let faults = known_values(&referenced(&obj, known))?;
    let loaded = parse_str(&document(faults, vec![Value::Object(obj)]), "request")
        .map_err(|e| field_error(e, "expect", 0))?;
    let mut spec = loaded
        .scenario
        .expect
        .first()
        .cloned()
        .ok_or_else(|| ApiError::bad("no expectation in the request"))?;
    if spec.name.is_none() {
        spec.name = Some(format!("{}-{}", spec.kind.name(), index + 1));
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
    fn only_referenced_faults_are_restated() {
        let mut known = Vec::new();
        for i in 0..50 {
            let f = fault(
                obj(json!({"name": format!("f{i}"), "kind": "partition"})),
                &known,
            );
            known.push(f.unwrap());
        }
        let chained = fault(
            obj(json!({"name": "g", "kind": "partition", "at": "f7.end"})),
            &known,
        )
        .unwrap();
        known.push(chained);
        let o = obj(json!({"kind": "detects", "after": "g.end", "within": "1s"}));
        let names: Vec<_> = referenced(&o, &known)
            .iter()
            .filter_map(|f| f.name.clone())
            .collect();
        assert_eq!(names, ["f7", "g"]);
        let d = fault(obj(json!({"kind": "reset", "toward": "client"})), &known).unwrap();
        assert_eq!(d.name.as_deref(), Some("reset-52"));
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
