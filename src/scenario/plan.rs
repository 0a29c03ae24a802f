//! The normalised plan printed by `flatline check`: every default filled in,
//! every fault and expectation under its effective name, in a stable text.

use super::kinds::{expect_params, fault_params};
use super::model::{
    ClientScope, ConnWhich, Connections, ExpectSpec, Extensions, FaultSpec, Scenario,
};
use super::values::{Dur, Reference};
use serde_json::Value;
use std::fmt::Write;
use std::time::Duration;

/// Field order inside `match` mappings.
const MATCH_ORDER: &[&str] = &["opcode", "text", "regex", "min_len", "max_len", "any"];

/// The normalised plan of `s`, one line per item, ending in a newline.
pub fn plan(s: &Scenario) -> String {
    let mut out = String::new();
    let ext = match s.extensions {
        Extensions::Strip => "strip",
        Extensions::Keep => "keep",
    };
    let resolution = s.resolution.unwrap_or(Dur(Duration::from_millis(100)));
    let _ = writeln!(out, "scenario {}", s.name);
    let _ = writeln!(
        out,
        "  duration {}, seed {}, extensions {ext}, resolution {resolution}",
        s.duration, s.seed
    );
    if let Some(u) = &s.upstream {
        let _ = writeln!(out, "  upstream {u}");
    }
    if s.network == super::model::Network::Netns {
        let _ = writeln!(
            out,
            "  network netns (peers in network namespaces, kernel faults)"
        );
    }
    if let Some(n) = s.clients {
        let _ = writeln!(out, "  clients {n}");
    }
    let _ = writeln!(out, "faults ({}):", s.faults.len());
    for (i, f) in s.faults.iter().enumerate() {
        let _ = writeln!(out, "  {}. {}", i + 1, fault_line(&s.fault_name(i), f));
    }
    let _ = writeln!(out, "expect ({}):", s.expect.len());
    for (i, e) in s.expect.iter().enumerate() {
        let _ = writeln!(out, "  {}. {}", i + 1, expect_line(&s.expect_name(i), e));
    }
    out
}

fn fault_line(name: &str, f: &FaultSpec) -> String {
    let kind = f.kind.name();
    let at = f.at.clone().map_or("start".to_string(), |r| r.to_string());
    let how_long = if f.kind.is_instant() {
        "instant".to_string()
    } else {
        match f.duration {
            Some(d) => format!("for {d}"),
            None => "until the run ends".to_string(),
        }
    };
    let conns = match &f.connections {
        Connections::Which(ConnWhich::All) => "all".to_string(),
        Connections::Which(ConnWhich::Open) => "open".to_string(),
        Connections::Which(ConnWhich::New) => "new".to_string(),
        Connections::List(l) => format!(
            "[{}]",
            l.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        ),
    };
    let params = params(serde_json::to_value(&f.kind).ok(), fault_params(kind));
    format!("{name}: {kind} at {at}, {how_long}, connections {conns}{params}")
}

fn expect_line(name: &str, e: &ExpectSpec) -> String {
    let kind = e.kind.name();
    let params = params(serde_json::to_value(&e.kind).ok(), expect_params(kind));
    let scope = match e.clients {
        ClientScope::All => String::new(),
        ClientScope::AtLeast(_) => format!(" (clients {})", e.clients),
    };
    format!("{name}: {kind}{scope}{params}")
}

fn params(v: Option<Value>, order: &[&str]) -> String {
    let Some(Value::Object(map)) = v else {
        return String::new();
    };
    let mut parts = Vec::new();
    for k in order {
        if let Some(v) = map.get(*k) {
            parts.push(format!("{k} {}", flow(v)));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("; {}", parts.join(", "))
    }
}

/// A value in YAML flow style.
fn flow(v: &Value) -> String {
    match v {
        Value::Null => "~".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let plain = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '#' | '/'))
                && s.parse::<f64>().is_err()
                && !matches!(s.as_str(), "true" | "false" | "null" | "~")
                || (s.contains(" + ") && s.parse::<Reference>().is_ok());
            if plain {
                s.clone()
            } else {
                serde_json::to_string(s).unwrap_or_default()
            }
        }
        Value::Array(a) => format!("[{}]", a.iter().map(flow).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by_key(|k| {
                (
                    MATCH_ORDER
                        .iter()
                        .position(|o| o == k)
                        .unwrap_or(usize::MAX),
                    (*k).clone(),
                )
            });
            let items: Vec<String> = keys
                .iter()
                .map(|k| format!("{}: {}", flow(&Value::String((*k).clone())), flow(&m[*k])))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}
