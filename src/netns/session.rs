//! One run's use of the namespaces: what the run starts after the relay
//! listens (the kernel-fault controller and the socket-table watchers) and
//! stops at its end (rules removed, then the namespaces deleted).

use super::kernel::{Controller, InKernel, KernelFault, SharedState};
use super::nft::{self, Ports};
use super::watch::{self, Peer};
use super::{Netns, RELAY_CLIENT_ADDR};
use crate::events::EventLog;
use crate::faults::{self, Fault};
use crate::scenario::{RefBase, Scenario};
use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The controller and watchers of a run, and its namespaces.
pub struct Session {
    netns: Netns,
    stop: CancellationToken,
    controller: tokio::task::JoinHandle<()>,
    stop_watch: Arc<AtomicBool>,
    watchers: Vec<std::thread::JoinHandle<()>>,
}

/// How a fault is carried out in `--netns` mode: wrapped so that the relay
/// leaves what the kernel does to the kernel.
pub fn wrap_fault(netns: &Netns, f: Arc<dyn Fault>) -> Arc<dyn Fault> {
    InKernel::wrap(f, netns.server_port().is_some())
}

impl Session {
    /// Start following `log` for the scenario's kernel faults, the relay
    /// listening on `relay_port`; the rules of faults due at t = 0 are in
    /// force when this returns.
    pub fn start(
        netns: Netns,
        scenario: &Scenario,
        log: &EventLog,
        relay_port: u16,
    ) -> Result<Session, super::NetnsError> {
        let mut kernel = HashMap::new();
        for (i, spec) in scenario.faults.iter().enumerate() {
            if let Some(effect) = faults::build(&spec.kind).ok().and_then(|f| f.kernel()) {
                let at_start = spec
                    .at
                    .as_ref()
                    .is_none_or(|r| r.base == RefBase::Start && r.offset.is_zero());
                let f = KernelFault {
                    effect,
                    which: spec.connections.clone(),
                    table: format!("flatline_{}", i + 1),
                    at_start,
                };
                kernel.insert(scenario.fault_name(i), f);
            }
        }
        let shared = SharedState::default();
        let controller = Controller {
            relay_ns: netns.relay_path(),
            ports: Ports {
                relay: relay_port,
                server: netns.server_port(),
            },
            faults: kernel,
            upstream_ports: netns.upstream_ports(),
            shared: shared.clone(),
        };
        controller.preload()?;
        nft::load_rules(&netns.relay_path(), &nft::syn_script())?;
        let stop = CancellationToken::new();
        let controller = tokio::spawn(controller.run(log.clone(), stop.clone()));
        let stop_watch = Arc::new(AtomicBool::new(false));
        let mut peers = vec![(
            netns.client_path(),
            Peer::Client {
                relay: SocketAddrV4::new(RELAY_CLIENT_ADDR, relay_port),
            },
        )];
        if let (Some(path), Some(port)) = (netns.server_path(), netns.server_port()) {
            peers.push((
                path,
                Peer::Server {
                    port,
                    upstream: netns.upstream_ports(),
                },
            ));
        }
        let mut watchers: Vec<std::thread::JoinHandle<()>> = peers
            .into_iter()
            .map(|(path, peer)| {
                let (shared, log, stop) = (shared.clone(), log.clone(), stop_watch.clone());
                std::thread::spawn(move || watch::watch(path, peer, shared, log, stop))
            })
            .collect();
        let (relay_ns, upstream) = (netns.relay_path(), netns.upstream_ports());
        let (log2, stop2, marks) = (log.clone(), stop_watch.clone(), netns.marks());
        let (ready, bound) = std::sync::mpsc::channel();
        watchers.push(std::thread::spawn(move || {
            super::nflog::watch(relay_ns, shared, upstream, marks, log2, stop2, ready)
        }));
        // Bound before any SYN comes (the client starts after this).
        let _ = bound.recv_timeout(std::time::Duration::from_secs(5));
        Ok(Session {
            netns,
            stop,
            controller,
            stop_watch,
            watchers,
        })
    }

    /// Stop watching, remove the rules; the namespaces go when the returned
    /// [`Netns`] is dropped (after the commands in them are stopped).
    pub async fn finish(self) -> Netns {
        self.stop_watch.store(true, Ordering::Relaxed);
        self.stop.cancel();
        let _ = self.controller.await;
        for w in self.watchers {
            let _ = tokio::task::spawn_blocking(move || w.join()).await;
        }
        self.netns
    }
}
