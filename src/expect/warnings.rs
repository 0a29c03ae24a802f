//! Warnings: what a peer must never do, reported whether or not an
//! expectation asks. Close frames carrying a code reserved for local use
//! (1005 "no status", 1006 "abnormal closure", 1015 "TLS failure", RFC 6455
//! §7.4.1), and reconnect storms (more than [`STORM_ATTEMPTS`] connections
//! accepted within [`STORM_WINDOW`]). With several clients, storms are
//! counted per client ([`super::scope`]); attempts refused before their
//! request was read belong to no known client and are not counted.

use super::common::secs;
use crate::events::{Event, EventKind, Opcode};
use std::collections::BTreeMap;
use std::time::Duration;

/// A storm is more than this many accepts…
pub const STORM_ATTEMPTS: usize = 5;
/// …within this long.
pub const STORM_WINDOW: Duration = Duration::from_secs(1);

/// One sentence per problem, in log order (close codes first, then storms).
pub fn warnings(events: &[Event]) -> Vec<String> {
    let mut out = Vec::new();
    for e in events {
        let EventKind::Frame(f) = &e.kind else {
            continue;
        };
        if f.opcode != Opcode::Close {
            continue;
        }
        if let Some(code @ (1005 | 1006 | 1015)) = f.close_code {
            out.push(format!(
                "the {} sent close code {code} on connection #{} at t={}; {code} is reserved and must never be sent in a close frame",
                f.dir.from_side(),
                e.conn.unwrap_or(0),
                secs(e.t)
            ));
        }
    }
    let owner = super::scope::attribute(events);
    let mut per_client: BTreeMap<Option<usize>, Vec<(u32, Duration)>> = BTreeMap::new();
    for e in events {
        if let (EventKind::Accept { .. }, Some(n)) = (&e.kind, e.conn) {
            let who = owner.get(&n).copied();
            if who.is_some() || owner.is_empty() {
                per_client.entry(who).or_default().push((n, e.t));
            }
        }
    }
    for (who, accepts) in per_client {
        storms(&accepts, who, &mut out);
    }
    out
}

/// Report each run of accepts denser than a storm once.
fn storms(accepts: &[(u32, Duration)], who: Option<usize>, out: &mut Vec<String>) {
    // Mark every accept that lies in a dense window, then report each run of
    // marked accepts (neighbours within the window) once.
    let mut dense = vec![false; accepts.len()];
    let mut j = 0;
    for i in 0..accepts.len() {
        if j < i {
            j = i;
        }
        while j + 1 < accepts.len() && accepts[j + 1].1.saturating_sub(accepts[i].1) <= STORM_WINDOW
        {
            j += 1;
        }
        if j + 1 - i > STORM_ATTEMPTS {
            dense[i..=j].iter_mut().for_each(|d| *d = true);
        }
    }
    let mut i = 0;
    while i < accepts.len() {
        if !dense[i] {
            i += 1;
            continue;
        }
        let mut k = i;
        while k + 1 < accepts.len()
            && dense[k + 1]
            && accepts[k + 1].1.saturating_sub(accepts[k].1) <= STORM_WINDOW
        {
            k += 1;
        }
        let of = who.map(|c| format!(" of client {c}")).unwrap_or_default();
        out.push(format!(
            "reconnect storm{of}: {} connections (#{} to #{}) were accepted between t={} and t={}, more than {STORM_ATTEMPTS} within {} s",
            k + 1 - i,
            accepts[i].0,
            accepts[k].0,
            secs(accepts[i].1),
            secs(accepts[k].1),
            STORM_WINDOW.as_secs()
        ));
        i = k + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testlog::Log;
    use super::*;
    use crate::events::Side::*;

    #[test]
    fn reserved_close_codes() {
        let log = Log::new()
            .connect(1, 0.1)
            .close_frame(1, 2.0, Server, Some(1006))
            .close_frame(1, 2.1, Client, Some(1000))
            .close_frame(1, 2.2, Client, Some(1005))
            .events();
        assert_eq!(
            warnings(&log),
            vec![
                "the server sent close code 1006 on connection #1 at t=2.00 s; 1006 is reserved and must never be sent in a close frame".to_string(),
                "the client sent close code 1005 on connection #1 at t=2.20 s; 1005 is reserved and must never be sent in a close frame".to_string(),
            ]
        );
    }

    #[test]
    fn storms_are_reported_once() {
        let mut log = Log::new();
        // Five within a second: no storm.
        for n in 1..=5 {
            log = log.accept(n, 0.1 * n as f64);
        }
        // Then eight in 0.7 s: one storm.
        for n in 6..=13 {
            log = log.accept(n, 5.0 + 0.1 * (n - 6) as f64);
        }
        let w = warnings(&log.events());
        assert_eq!(
            w,
            vec!["reconnect storm: 8 connections (#6 to #13) were accepted between t=5.00 s and t=5.70 s, more than 5 within 1 s".to_string()]
        );
        assert!(warnings(&Log::new().accept(1, 0.0).events()).is_empty());
    }

    #[test]
    fn storms_are_counted_per_client() {
        let mut log = Log::new();
        // Eight clients connecting within a second is no storm; client 3
        // trying six times in a second is; an attempt of no known client
        // (refused before its request) does not count.
        for n in 1..=8u32 {
            let c = if n > 2 { 3 } else { n as usize };
            log = log.accept(n, 0.1 * n as f64).push(
                Some(n),
                0.1 * n as f64,
                EventKind::Request {
                    path: format!("/feed?flatline_client={c}"),
                    extensions_removed: false,
                },
            );
        }
        let w = warnings(&log.accept(9, 0.85).events());
        assert_eq!(
            w,
            vec!["reconnect storm of client 3: 6 connections (#3 to #8) were accepted between t=0.30 s and t=0.80 s, more than 5 within 1 s".to_string()]
        );
    }
}
