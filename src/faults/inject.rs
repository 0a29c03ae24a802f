//! `inject`: a whole WebSocket message the other side never sent arrives at
//! `side`: an app-level "server says goodbye / reconnect now", a forged
//! heartbeat. `text:` sends a text message, `binary:` (base64) a binary one.
//! It goes in at a frame boundary (never inside a frame the real peer is
//! sending), masked toward the server as RFC 6455 requires (the mask drawn
//! from the pipe's seeded RNG), unmasked toward the client. It is sent once
//! when the fault starts on a connection (after its handshake), or `every`
//! interval while the fault is active, at most `times` times.

use super::{Fault, Injection, Kind, Stage, StageCtx};
use crate::events::{Direction, Side};
use crate::frame::encode_frame;
use crate::scenario::{Dur, FaultCheck, ScenarioError};
use base64::Engine;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `kind: inject`: a forged message toward a side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inject {
    /// Who receives the message.
    pub side: Side,
    /// A text message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A binary message, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<String>,
    /// Send again at this interval while active (default: once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<Dur>,
    /// With `every`: at most this many messages per connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

fn decode(b64: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| e.to_string())
}

impl Inject {
    /// Opcode, payload and how the log names it.
    fn message(&self) -> Result<(u8, Vec<u8>, String), String> {
        match (&self.text, &self.binary) {
            (Some(t), None) => Ok((0x1, t.as_bytes().to_vec(), format!("text message {t:?}"))),
            (None, Some(b)) => {
                let p = decode(b)?;
                let what = format!("binary message ({} bytes)", p.len());
                Ok((0x2, p, what))
            }
            _ => Err("needs exactly one of `text` and `binary`".into()),
        }
    }
}

struct Injector {
    opcode: u8,
    payload: Arc<[u8]>,
    what: Arc<str>,
    every: Option<Duration>,
    left: Option<u32>,
    /// When the next message is due (`None`: none any more).
    due: Option<Instant>,
}

impl Stage for Injector {
    fn wake(&self) -> Option<Instant> {
        self.due
    }
    fn inject(&mut self, ctx: &mut StageCtx<'_>) -> Option<Injection> {
        self.due?;
        if let Some(left) = self.left.as_mut() {
            *left = left.saturating_sub(1);
        }
        self.due = match (self.every, self.left) {
            (_, Some(0)) | (None, _) => None,
            (Some(e), _) => Some(ctx.now + e),
        };
        let mask = (ctx.dir == Direction::ToServer).then(|| ctx.rng.gen::<[u8; 4]>());
        Some(Injection {
            bytes: encode_frame(self.opcode, true, &self.payload, mask),
            what: self.what.to_string(),
        })
    }
}

/// The running `inject`.
struct Injecting {
    to: Side,
    opcode: u8,
    payload: Arc<[u8]>,
    what: Arc<str>,
    every: Option<Duration>,
    times: Option<u32>,
}

impl Fault for Injecting {
    fn stage(&self, dir: Direction) -> Option<Box<dyn Stage>> {
        (dir.to_side() == self.to).then(|| {
            Box::new(Injector {
                opcode: self.opcode,
                payload: self.payload.clone(),
                what: self.what.clone(),
                every: self.every,
                left: self.times,
                due: Some(Instant::now()),
            }) as Box<dyn Stage>
        })
    }
}

impl Kind for Inject {
    fn check(&self, c: &mut FaultCheck<'_>) -> Result<(), ScenarioError> {
        let i = c.label();
        match (&self.text, &self.binary) {
            (None, None) => {
                let msg = format!("{i}: an `inject` fault needs the message: `text` or `binary`");
                let hint = Some("e.g. `text: '{\"type\":\"reconnect\"}'`".into());
                return Err(c.error(&[], false, msg, hint));
            }
            (Some(_), Some(_)) => {
                let msg = format!("{i}.binary: give `text` or `binary`, not both");
                return Err(c.error(&["binary"], true, msg, None));
            }
            (None, Some(b)) => {
                if let Err(e) = decode(b) {
                    let msg = format!("{i}.binary: not base64: {e}");
                    let hint = Some("expected base64, e.g. `binary: AAEC`".into());
                    return Err(c.error(&["binary"], false, msg, hint));
                }
            }
            (Some(_), None) => {}
        }
        if self.every.is_some_and(|e| e.0.is_zero()) {
            let msg = format!("{i}.every must be above zero");
            let hint = Some("expected e.g. `every: 5s`".into());
            return Err(c.error(&["every"], false, msg, hint));
        }
        match self.times {
            Some(_) if self.every.is_none() => {
                let msg = format!("{i}.times only applies with `every` (without it the message is sent once)");
                Err(c.error(&["times"], true, msg, Some("add e.g. `every: 5s`".into())))
            }
            Some(0) => {
                let msg = format!("{i}.times must be 1 or more");
                Err(c.error(&["times"], false, msg, None))
            }
            _ => Ok(()),
        }
    }
    fn build(&self) -> Result<Box<dyn Fault>, String> {
        let (opcode, payload, what) = self.message()?;
        Ok(Box::new(Injecting {
            to: self.side,
            opcode,
            payload: payload.into(),
            what: what.into(),
            every: self.every.map(|d| d.0),
            times: self.times,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::testing::{ctx, rng};
    use crate::frame::FrameScanner;

    fn injector(yaml: &str, dir: Direction) -> Box<dyn Stage> {
        let k: Inject = serde_yaml::from_str(yaml).unwrap();
        k.build().unwrap().stage(dir).expect("stage")
    }

    #[test]
    fn once_by_default_toward_its_side_only() {
        let k: Inject = serde_yaml::from_str("side: client\ntext: bye").unwrap();
        let f = k.build().unwrap();
        assert!(f.stage(Direction::ToServer).is_none());
        let mut s = f.stage(Direction::ToClient).unwrap();
        assert!(s.wake().is_some());
        let mut rng = rng(1, Direction::ToClient);
        let mut c = ctx(&mut rng, Direction::ToClient);
        let inj = s.inject(&mut c).unwrap();
        assert_eq!(inj.bytes, encode_frame(0x1, true, b"bye", None));
        assert_eq!(inj.what, "text message \"bye\"");
        assert_eq!(s.wake(), None);
        assert!(s.inject(&mut c).is_none());
    }

    #[test]
    fn masked_toward_the_server_with_a_seeded_mask() {
        let draw = |seed| {
            let mut s = injector("side: server\nbinary: AAEC", Direction::ToServer);
            let mut rng = rng(seed, Direction::ToServer);
            let mut c = ctx(&mut rng, Direction::ToServer);
            s.inject(&mut c).unwrap().bytes
        };
        let a = draw(3);
        assert_eq!(a, draw(3));
        assert_ne!(a, draw(4));
        assert_eq!(a[0], 0x82);
        assert_eq!(a[1], 0x80 | 3);
        let mut infos = Vec::new();
        FrameScanner::new(Direction::ToServer).feed(&a, |s| {
            if let crate::frame::Scan::Info(_, i) = s {
                infos.push(i.info())
            }
        });
        assert_eq!(infos.len(), 1);
        assert!(infos[0].masked);
        assert_eq!(infos[0].len, 3);
    }

    #[test]
    fn every_interval_at_most_times() {
        let mut s = injector("side: client\ntext: hb\nevery: 5s\ntimes: 2", Direction::ToClient);
        let mut rng = rng(1, Direction::ToClient);
        let mut c = ctx(&mut rng, Direction::ToClient);
        let t0 = c.now;
        assert!(s.inject(&mut c).is_some());
        assert_eq!(s.wake(), Some(t0 + Duration::from_secs(5)));
        c.now = t0 + Duration::from_secs(5);
        assert!(s.inject(&mut c).is_some());
        assert_eq!(s.wake(), None);
    }
}

#[cfg(test)]
mod check_tests {
    fn check(fault: &str) -> Result<(), String> {
        let src = format!("name: x\ndescription: x\nduration: 10s\nfaults:\n  - {fault}\n");
        crate::scenario::parse_str(&src, "x.yaml")
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_message_is_checked() {
        assert!(check("{kind: inject, side: client, text: hi}").is_ok());
        let e = check("{kind: inject, side: client}").unwrap_err();
        assert!(e.contains("needs the message"), "{e}");
        let e = check("{kind: inject, side: client, text: a, binary: AA==}").unwrap_err();
        assert!(e.contains("not both"), "{e}");
        let e = check("{kind: inject, side: server, binary: '***'}").unwrap_err();
        assert!(e.contains("not base64"), "{e}");
        let e = check("{kind: inject, side: client, text: a, times: 2}").unwrap_err();
        assert!(e.contains("only applies with `every`"), "{e}");
        let e = check("{kind: inject, side: client, text: a, every: 0s}").unwrap_err();
        assert!(e.contains("above zero"), "{e}");
    }
}
