//! nftables rules for kernel faults, written as `nft -f` scripts and loaded
//! inside the relay's namespace only. Each fault gets a table of its own
//! (`inet flatline_N`), so starting, updating and ending it never touches
//! another fault's rules, and nothing outside flatline's namespaces is seen.

use super::{NetnsError, CLIENT_IF, SERVER_IF};
use crate::faults::KernelEffect;
use crate::scenario::{Directions, Toward};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Which flows a fault's rules cover on each link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flows {
    /// Every flow to the relay's port, new ones included (`connections: all`).
    pub all: bool,
    /// Every flow except those listed (`connections: new`).
    pub except: bool,
    /// The clients' source ports of the covered connections.
    pub client_ports: Vec<u16>,
    /// The relay's source ports toward the server of the covered connections.
    pub server_ports: Vec<u16>,
}

/// The two links' ports: the relay's listening port on the client link and
/// the server's port on the server link (when the server has a namespace).
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// The relay's listening port.
    pub relay: u16,
    /// The server's port, if the server is in a namespace of its own.
    pub server: Option<u16>,
}

/// One rule body, without its verdict: `link` selects the interface and
/// hook, `toward_peer` whether packets go to the peer (output) or come from
/// it (input).
fn matcher(f: &Flows, ports: Ports, server_link: bool, toward_peer: bool) -> Option<String> {
    let (ifname, port, set) = if server_link {
        (SERVER_IF, ports.server?, "sports")
    } else {
        (CLIENT_IF, ports.relay, "cports")
    };
    // On the client link the relay's port is the local one; on the server
    // link the server's port is the remote one.
    let (port_dir, flow_dir) = match (server_link, toward_peer) {
        (false, false) => ("dport", "sport"),
        (false, true) => ("sport", "dport"),
        (true, false) => ("sport", "dport"),
        (true, true) => ("dport", "sport"),
    };
    let iface = if toward_peer { "oifname" } else { "iifname" };
    let mut m = format!("{iface} \"{ifname}\" tcp {port_dir} {port}");
    if !f.all {
        let op = if f.except { "!= " } else { "" };
        m.push_str(&format!(" tcp {flow_dir} {op}@{set}"));
    }
    Some(m)
}

/// The rules (chain, body) of one effect; `healed` is a partition after its
/// end with `on_end: reset`.
pub fn rules(
    effect: KernelEffect,
    f: &Flows,
    ports: Ports,
    healed: bool,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut add = |server_link: bool, toward_peer: bool, extra: &str, verdict: &str| {
        if let Some(m) = matcher(f, ports, server_link, toward_peer) {
            let chain = if toward_peer { "out" } else { "in" };
            out.push((chain, format!("{m}{extra} {verdict}")));
        }
    };
    match effect {
        KernelEffect::Drop {
            direction,
            then_reset,
        } => {
            // Packets from a peer are copied to NFLOG before being dropped,
            // so that what it sent during the partition can be read.
            let logged = format!("log group {} drop", super::nflog::GROUP);
            let (from_peer, to_peer) = if healed && then_reset {
                ("reject with tcp reset", "reject with tcp reset")
            } else {
                (logged.as_str(), "drop")
            };
            if direction != Directions::ToClient {
                // Toward the server: from the client, and out to the server.
                add(false, false, "", from_peer);
                add(true, true, "", to_peer);
            }
            if direction != Directions::ToServer {
                add(true, false, "", from_peer);
                add(false, true, "", to_peer);
            }
        }
        KernelEffect::Reset { toward } => {
            // The peer's own packets are answered with RST; what the relay
            // sends it still reaches it, and its ACK is answered too.
            if toward != Toward::Server {
                add(false, false, "", "reject with tcp reset");
            }
            if toward != Toward::Client {
                add(true, false, "", "reject with tcp reset");
            }
        }
        KernelEffect::RefuseSyn => {
            add(
                false,
                false,
                " tcp flags & (syn | ack) == syn",
                "reject with tcp reset",
            );
        }
    }
    out
}

fn set_decl(name: &str, ports: &[u16]) -> String {
    let mut s = format!("  set {name} {{ type inet_service;");
    if !ports.is_empty() {
        let list: Vec<String> = ports.iter().map(u16::to_string).collect();
        s.push_str(&format!(" elements = {{ {} }};", list.join(", ")));
    }
    s.push_str(" }\n");
    s
}

/// A script that (re)defines table `table` with these rules, atomically.
pub fn table_script(table: &str, f: &Flows, rules: &[(&str, String)]) -> String {
    let mut s = format!("table inet {table}\ndelete table inet {table}\ntable inet {table} {{\n");
    s.push_str(&set_decl("cports", &f.client_ports));
    s.push_str(&set_decl("sports", &f.server_ports));
    for (chain, hook) in [("in", "input"), ("out", "output")] {
        s.push_str(&format!(
            "  chain {chain} {{\n    type filter hook {hook} priority 0; policy accept;\n"
        ));
        for (c, body) in rules {
            if *c == chain {
                s.push_str(&format!("    {body}\n"));
            }
        }
        s.push_str("  }\n");
    }
    s.push_str("}\n");
    s
}

/// A table that logs every SYN reaching the relay (without dropping it):
/// the reader of dropped packets learns each flow's initial sequence number,
/// so it knows where in the stream a dropped segment lies.
pub fn syn_script() -> String {
    format!(
        "table inet flatline_syn {{\n  chain in {{\n    type filter hook input priority -10; \
         policy accept;\n    tcp flags & syn == syn log group {}\n  }}\n}}\n",
        super::nflog::GROUP
    )
}

/// A script that removes table `table` (if it exists).
pub fn delete_script(table: &str) -> String {
    format!("table inet {table}\ndelete table inet {table}\n")
}

/// Run `nft -f -` with `script` inside the namespace at `ns`.
pub fn load(ns: &Path, script: &str) -> Result<(), NetnsError> {
    let f = std::fs::File::open(ns)
        .map_err(|e| NetnsError::Setup(format!("cannot open {}: {e}", ns.display())))?;
    let fd = f.as_raw_fd();
    let mut cmd = Command::new("nft");
    cmd.args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| NetnsError::Setup(format!("cannot run `nft`: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(script.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NetnsError::Setup(format!("`nft` failed: {e}")))?;
    drop(f);
    if out.status.success() {
        Ok(())
    } else {
        Err(NetnsError::Setup(format!(
            "`nft -f -` failed: {}\n{script}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Load rules; where the kernel cannot log to NFLOG (no `nfnetlink_log`),
/// load them without the `log` statements. Whether packets are logged.
pub fn load_rules(ns: &Path, script: &str) -> Result<bool, NetnsError> {
    let log = format!("log group {} ", super::nflog::GROUP);
    match load(ns, script) {
        Ok(()) => Ok(script.contains(&log)),
        Err(_) if script.contains(&log) => load(ns, &script.replace(&log, "")).map(|()| false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORTS: Ports = Ports {
        relay: 4000,
        server: Some(9001),
    };

    #[test]
    fn a_one_way_partition_drops_packets_toward_the_server_on_both_links() {
        let f = Flows {
            client_ports: vec![50000],
            server_ports: vec![40000],
            ..Flows::default()
        };
        let effect = KernelEffect::Drop {
            direction: Directions::ToServer,
            then_reset: false,
        };
        let r = rules(effect, &f, PORTS, false);
        assert_eq!(
            r,
            vec![
                (
                    "in",
                    "iifname \"c0\" tcp dport 4000 tcp sport @cports log group 7 drop".to_string()
                ),
                (
                    "out",
                    "oifname \"s0\" tcp dport 9001 tcp sport @sports drop".to_string()
                ),
            ]
        );
    }

    #[test]
    fn a_partition_of_every_flow_needs_no_port_sets_and_resets_after_the_heal() {
        let f = Flows {
            all: true,
            ..Flows::default()
        };
        let effect = KernelEffect::Drop {
            direction: Directions::ToClient,
            then_reset: true,
        };
        let ports = Ports {
            relay: 4000,
            server: None,
        };
        let r = rules(effect, &f, ports, true);
        assert_eq!(
            r,
            vec![(
                "out",
                "oifname \"c0\" tcp sport 4000 reject with tcp reset".to_string()
            )]
        );
        let s = table_script("flatline_1", &f, &r);
        assert!(s.starts_with("table inet flatline_1\ndelete table inet flatline_1\n"));
        assert!(s.contains("type filter hook output priority 0; policy accept;"));
    }
}
