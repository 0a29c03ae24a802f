//! Carrying faults out in the kernel. [`InKernel`] stands in for a fault in
//! the relay (the relay then does nothing for it, or only what the kernel
//! cannot do there), and [`Controller`] follows the event log: when such a
//! fault starts, gets a new connection or ends, it loads that fault's
//! nftables table into the relay's namespace and logs what it did.

use super::nft::{self, Flows, Ports};
use super::UpstreamPorts;
use crate::events::{Direction, EventKind, EventLog, Side};
use crate::faults::{Action, Fault, KernelEffect, Refusal, Stage};
use crate::scenario::{ConnWhich, Connections, Directions};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// A fault whose effect the kernel carries out. The relay keeps only what
/// has no kernel rule here: an RST toward a server outside the namespaces.
pub struct InKernel {
    inner: Arc<dyn Fault>,
    server_in_ns: bool,
}

impl InKernel {
    /// Wrap `inner` if it has a kernel effect; otherwise it stays as it is.
    pub fn wrap(inner: Arc<dyn Fault>, server_in_ns: bool) -> Arc<dyn Fault> {
        if inner.kernel().is_some() {
            Arc::new(InKernel {
                inner,
                server_in_ns,
            })
        } else {
            inner
        }
    }
}

impl Fault for InKernel {
    fn kernel(&self) -> Option<KernelEffect> {
        self.inner.kernel()
    }
    fn new_attempts_only(&self) -> bool {
        self.inner.new_attempts_only()
    }
    fn stage(&self, _dir: Direction) -> Option<Box<dyn Stage>> {
        None
    }
    fn actions(&self) -> Vec<Action> {
        self.inner
            .actions()
            .into_iter()
            .filter(|a| matches!(a, Action::Reset(Side::Server)) && !self.server_in_ns)
            .collect()
    }
    fn refusal(&self) -> Option<Refusal> {
        None
    }
}

/// What the controller knows that the socket-table watcher needs: which
/// flow is which connection, and whose packets the kernel is dropping now.
#[derive(Debug, Default)]
pub struct Shared {
    /// Client source port → connection.
    pub client_ports: HashMap<u16, u32>,
    /// Active drops: fault name → (direction, the flows).
    drops: BTreeMap<String, (Directions, Flows, Vec<u32>)>,
    /// Give-ups already logged, by connection and side (one each).
    reported: std::collections::HashSet<(u32, Side)>,
}

impl Shared {
    /// Whether this is the first give-up logged for `side` on `conn`
    /// (the socket table and the dropped packets may both show it).
    pub fn first_report(&mut self, conn: u32, side: Side) -> bool {
        self.reported.insert((conn, side))
    }

    /// Whether the packets `side` sends on `conn` are being dropped.
    pub fn blocked(&self, conn: u32, side: Side) -> bool {
        let dir = side.sending();
        self.drops
            .values()
            .any(|(d, f, conns)| d.covers(dir) && (f.all || (f.except != conns.contains(&conn))))
    }
}

/// The shared state, locked.
pub type SharedState = Arc<Mutex<Shared>>;

struct Active {
    table: String,
    effect: KernelEffect,
    which: Connections,
    flows: Flows,
    conns: Vec<u32>,
}

/// A fault the kernel carries out, as the controller knows it.
#[derive(Debug, Clone)]
pub struct KernelFault {
    /// Its effect.
    pub effect: KernelEffect,
    /// The connections it covers.
    pub which: Connections,
    /// Its nftables table (`flatline_N`, N its position in the scenario).
    pub table: String,
    /// Due at t = 0: loaded before the client starts.
    pub at_start: bool,
}

/// Follows the log and keeps the relay namespace's nftables in step.
pub struct Controller {
    /// The relay's namespace.
    pub relay_ns: PathBuf,
    /// Ports of the two links.
    pub ports: Ports,
    /// The kernel faults by name.
    pub faults: HashMap<String, KernelFault>,
    /// Connection → relay's port toward the server.
    pub upstream_ports: UpstreamPorts,
    /// Shared with the watchers.
    pub shared: SharedState,
}

fn conn_list(conns: &[u32]) -> String {
    if conns.is_empty() {
        return "no connection yet".into();
    }
    let v: Vec<String> = conns.iter().map(|c| format!("#{c}")).collect();
    v.join(", ")
}

fn describe(effect: KernelEffect, f: &Flows, conns: &[u32], healed: bool) -> String {
    let flows = if f.all {
        "every flow to the relay".to_string()
    } else if f.except {
        format!("every flow but {}", conn_list(conns))
    } else {
        conn_list(conns)
    };
    match effect {
        KernelEffect::Drop { direction, .. } if healed => format!(
            "{} flows now answered with TCP RST (on_end: reset) on {flows}",
            direction_words(direction)
        ),
        KernelEffect::Drop { direction, .. } => {
            format!("nftables drop {} on {flows}", direction_words(direction))
        }
        KernelEffect::Reset { toward } => {
            format!("nftables reject with tcp reset toward {toward:?} on {flows}").to_lowercase()
        }
        KernelEffect::RefuseSyn => "nftables: SYNs to the relay answered with RST".into(),
    }
}

fn direction_words(d: Directions) -> &'static str {
    match d {
        Directions::ToServer => "to_server",
        Directions::ToClient => "to_client",
        Directions::Both => "both ways",
    }
}

impl Controller {
    fn flows(&self, which: &Connections, conns: &[u32], live: &[u32]) -> Flows {
        let shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let ups = self
            .upstream_ports
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (all, except, listed) = match which {
            Connections::Which(ConnWhich::All) => (true, false, conns),
            Connections::Which(ConnWhich::New) => (false, true, live),
            _ => (false, false, conns),
        };
        let mut f = Flows {
            all,
            except,
            ..Flows::default()
        };
        for (port, c) in &shared.client_ports {
            if listed.contains(c) {
                f.client_ports.push(*port);
            }
        }
        for c in listed {
            if let Some(p) = ups.get(c) {
                f.server_ports.push(*p);
            }
        }
        f.client_ports.sort_unstable();
        f.server_ports.sort_unstable();
        f
    }

    async fn load(&self, script: String) -> Result<bool, String> {
        let ns = self.relay_ns.clone();
        tokio::task::spawn_blocking(move || nft::load_rules(&ns, &script))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    async fn apply(&self, log: &EventLog, name: &str, a: &Active, healed: bool) {
        let rules = nft::rules(a.effect, &a.flows, self.ports, healed);
        let script = nft::table_script(&a.table, &a.flows, &rules);
        let what = match self.load(script).await {
            Ok(logged) => {
                let mut what = describe(a.effect, &a.flows, &a.conns, healed);
                if !logged && matches!(a.effect, KernelEffect::Drop { .. }) && !healed {
                    what.push_str(" (NFLOG unavailable: dropped packets are not read)");
                }
                what
            }
            Err(e) => format!("FAILED: {e}"),
        };
        log.emit(
            None,
            EventKind::Kernel {
                fault: name.to_string(),
                what,
            },
        );
    }

    fn set_drop(&self, name: &str, a: Option<&Active>) {
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        match a {
            Some(Active {
                effect: KernelEffect::Drop { direction, .. },
                flows,
                conns,
                ..
            }) => {
                shared
                    .drops
                    .insert(name.to_string(), (*direction, flows.clone(), conns.clone()));
            }
            _ => {
                shared.drops.remove(name);
            }
        }
    }

    /// Follow the log until `stop`; every table it made is removed at the end.
    pub async fn run(self, log: EventLog, stop: CancellationToken) {
        let (past, mut rx) = log.snapshot_and_subscribe();
        let mut st = State::default();
        for e in past {
            self.on_event(&log, &mut st, e.conn, &e.kind).await;
        }
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                ev = rx.recv() => match ev {
                    Ok(e) => self.on_event(&log, &mut st, e.conn, &e.kind).await,
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
        }
        let mut script = String::new();
        for f in self.faults.values() {
            script.push_str(&nft::delete_script(&f.table));
        }
        if !script.is_empty() {
            let _ = self.load(script).await;
        }
    }

    /// Load the rules of faults due at t = 0 now, so that they are in force
    /// before the client's first SYN (logging them waits for their start).
    pub fn preload(&self) -> Result<(), super::NetnsError> {
        for f in self.faults.values().filter(|f| f.at_start) {
            let flows = self.flows(&f.which, &[], &[]);
            let rules = nft::rules(f.effect, &flows, self.ports, false);
            nft::load_rules(&self.relay_ns, &nft::table_script(&f.table, &flows, &rules))?;
        }
        Ok(())
    }

    async fn on_event(&self, log: &EventLog, st: &mut State, conn: Option<u32>, kind: &EventKind) {
        match (kind, conn) {
            (EventKind::Accept { peer }, Some(n)) => {
                st.live.push(n);
                if let Ok(a) = peer.parse::<std::net::SocketAddr>() {
                    let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
                    shared.client_ports.insert(a.port(), n);
                }
            }
            (EventKind::Closed { .. }, Some(n)) => st.live.retain(|c| *c != n),
            (EventKind::FaultStart { fault, conns }, _) => {
                let Some(KernelFault {
                    effect,
                    which,
                    table,
                    ..
                }) = self.faults.get(fault)
                else {
                    return;
                };
                // A reset acts on the connections open at its instant.
                let which = match effect {
                    KernelEffect::Reset { .. } => &Connections::List(conns.clone()),
                    _ => which,
                };
                let a = Active {
                    table: table.clone(),
                    effect: *effect,
                    which: which.clone(),
                    flows: self.flows(which, conns, &st.live),
                    conns: if matches!(which, Connections::Which(ConnWhich::New)) {
                        st.live.clone()
                    } else {
                        conns.clone()
                    },
                };
                self.apply(log, fault, &a, false).await;
                self.set_drop(fault, Some(&a));
                st.active.insert(fault.clone(), a);
            }
            (EventKind::FaultJoin { fault }, Some(n)) => {
                let Some(mut a) = st.active.remove(fault) else {
                    return;
                };
                if !a.flows.all && !a.flows.except {
                    a.conns.push(n);
                    a.flows = self.flows(&a.which, &a.conns, &st.live);
                    self.apply(log, fault, &a, false).await;
                    self.set_drop(fault, Some(&a));
                }
                st.active.insert(fault.clone(), a);
            }
            (EventKind::FaultEnd { fault, .. }, _) => {
                let Some(a) = st.active.remove(fault) else {
                    return;
                };
                self.set_drop(fault, None);
                match a.effect {
                    // Instant: its rules stay for the flows it reset.
                    KernelEffect::Reset { .. } => {}
                    KernelEffect::Drop {
                        then_reset: true, ..
                    } => self.apply(log, fault, &a, true).await,
                    _ => {
                        let what = match self.load(nft::delete_script(&a.table)).await {
                            Ok(_) => "rules removed".to_string(),
                            Err(e) => format!("FAILED to remove rules: {e}"),
                        };
                        log.emit(
                            None,
                            EventKind::Kernel {
                                fault: fault.clone(),
                                what,
                            },
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

#[derive(Default)]
struct State {
    live: Vec<u32>,
    active: HashMap<String, Active>,
}
