//! `--netns` (`network: netns`): the peers' own TCP stacks see the faults.
//!
//! A user-space relay terminates TCP on both sides, so during a "silent"
//! partition the relay's kernel keeps ACKing what the client sends and the
//! client's kernel never notices anything (no retransmission timeout, no
//! `TCP_USER_TIMEOUT`, no keepalive failure). In this mode flatline makes
//! network namespaces: the relay listens in one, the client command runs in
//! another joined to it by a veth pair, and a `--server-cmd` runs in a third.
//! Faults with a kernel equivalent ([`crate::faults::KernelEffect`]) become
//! nftables rules on those links ([`nft`], applied by [`kernel`]); the others
//! stay in the relay. What a side does while its packets are dropped is read
//! from its namespace's socket table ([`watch`]).
//!
//! Layout (the addresses exist only inside flatline's namespaces):
//!
//! ```text
//!  client ns  eth0 10.77.0.2 ── c0 10.77.0.1  relay ns  s0 10.77.0.5 ── eth0 10.77.0.6  server ns
//! ```
//!
//! Safety: every namespace is named `flatline-PID.START.N-ROLE`
//! ([`ns::PREFIX`]), rules live only in the relay's namespace, and the root
//! namespace's interfaces, routes and firewall are never touched. Everything
//! is deleted when [`Netns`] is dropped; namespaces of a run that was killed
//! are deleted by the next run's [`Netns::create`].

pub mod kernel;
pub mod nflog;
pub mod nft;
pub mod ns;
pub mod session;
pub mod watch;

use crate::events::Direction;
use crate::relay::mark::StreamMark;
use crate::relay::Sockets;
use ns::Ns;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The relay's interface toward the client.
pub const CLIENT_IF: &str = "c0";
/// The relay's interface toward the server.
pub const SERVER_IF: &str = "s0";
/// The relay's address on the client link (`FLATLINE_URL` points here).
pub const RELAY_CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The client's address.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// The relay's address on the server link.
pub const RELAY_SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 5);
/// The server's address.
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 6);

/// Why `--netns` cannot be used or set up (exit status 3).
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// Not root and without the capabilities.
    #[error("--netns needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) to create network namespaces; run as root, or without --netns")]
    Privileges,
    /// A tool is not installed.
    #[error("--netns needs `{tool}` ({package}), which is not in PATH")]
    Missing {
        /// The program.
        tool: &'static str,
        /// The Debian package that has it.
        package: &'static str,
    },
    /// Something failed while making namespaces, links or rules.
    #[error("--netns: {0}")]
    Setup(String),
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            let f = d.join(tool);
            f.is_file()
        })
    })
}

fn has_caps() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0);
    const NET_ADMIN: u64 = 1 << 12;
    const SYS_ADMIN: u64 = 1 << 21;
    eff & (NET_ADMIN | SYS_ADMIN) == NET_ADMIN | SYS_ADMIN
}

/// Whether `--netns` can work here: privileges, `ip` and `nft`.
pub fn preflight() -> Result<(), NetnsError> {
    if !has_caps() {
        return Err(NetnsError::Privileges);
    }
    if !on_path("ip") {
        return Err(NetnsError::Missing {
            tool: "ip",
            package: "Debian package iproute2",
        });
    }
    if !on_path("nft") {
        return Err(NetnsError::Missing {
            tool: "nft",
            package: "Debian package nftables",
        });
    }
    Ok(())
}

/// The relay's local port toward the server, per connection (to find a
/// connection's flow on the server link).
pub type UpstreamPorts = Arc<Mutex<HashMap<u32, u16>>>;

/// Where the relay is in each connection's streams (by connection and the
/// direction the bytes travel), for reading frames in dropped packets.
pub type Marks = Arc<Mutex<HashMap<(u32, Direction), Arc<StreamMark>>>>;

/// The namespaces of one run. Dropping it deletes them (and their links).
#[derive(Debug)]
pub struct Netns {
    // Field order is drop order: the peers' namespaces first.
    client: Ns,
    server: Option<(Ns, u16)>,
    relay: Ns,
    upstream_ports: UpstreamPorts,
    marks: Marks,
    /// Namespaces of killed runs removed at creation.
    pub cleaned: Vec<String>,
}

impl Netns {
    /// Check, remove stale namespaces, and make the relay's and the client's
    /// namespaces; with `server_port`, a server namespace too, whose
    /// `127.0.0.1:PORT` the relay reaches at `10.77.0.6:PORT`.
    pub fn create(server_port: Option<u16>) -> Result<Netns, NetnsError> {
        preflight()?;
        let cleaned = ns::clean_stale();
        let stem = ns::new_stem();
        let relay = Ns::create(format!("{stem}-relay"))?;
        let client = Ns::create(format!("{stem}-client"))?;
        let cidr = |a: Ipv4Addr| format!("{a}/30");
        ns::link(
            &relay,
            CLIENT_IF,
            &cidr(RELAY_CLIENT_ADDR),
            &client,
            "eth0",
            &cidr(CLIENT_ADDR),
        )?;
        let server = match server_port {
            None => None,
            Some(port) => {
                let server = Ns::create(format!("{stem}-server"))?;
                ns::link(
                    &relay,
                    SERVER_IF,
                    &cidr(RELAY_SERVER_ADDR),
                    &server,
                    "eth0",
                    &cidr(SERVER_ADDR),
                )?;
                forward_to_loopback(&server, port)?;
                Some((server, port))
            }
        };
        Ok(Netns {
            client,
            server,
            relay,
            upstream_ports: Arc::default(),
            marks: Arc::default(),
            cleaned,
        })
    }

    /// Where the relay listens: its address on the client link.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(RELAY_CLIENT_ADDR, 0))
    }

    /// The relay's sockets: listener in its namespace, upstream connections
    /// from its namespace to the server's (or from here to a server outside).
    pub fn sockets(&self) -> Arc<dyn Sockets> {
        Arc::new(NsSockets {
            relay: self.relay.path(),
            server_port: self.server.as_ref().map(|(_, p)| *p),
            upstream_ports: self.upstream_ports.clone(),
            marks: self.marks.clone(),
        })
    }

    /// Where the relay is in each connection's streams.
    pub fn marks(&self) -> Marks {
        self.marks.clone()
    }

    /// The client's namespace (commands are started in it with [`enter_in_child`]).
    pub fn client_path(&self) -> PathBuf {
        self.client.path()
    }

    /// The server's namespace, if the server has one.
    pub fn server_path(&self) -> Option<PathBuf> {
        self.server.as_ref().map(|(s, _)| s.path())
    }

    /// The relay's namespace.
    pub fn relay_path(&self) -> PathBuf {
        self.relay.path()
    }

    /// The server's port when it is in a namespace.
    pub fn server_port(&self) -> Option<u16> {
        self.server.as_ref().map(|(_, p)| *p)
    }

    /// Connection number to the relay's local port toward the server.
    pub fn upstream_ports(&self) -> UpstreamPorts {
        self.upstream_ports.clone()
    }

    /// The names of the namespaces (for messages and tests).
    pub fn names(&self) -> Vec<String> {
        let mut v = vec![
            self.relay.name().to_string(),
            self.client.name().to_string(),
        ];
        if let Some((s, _)) = &self.server {
            v.push(s.name().to_string());
        }
        v
    }
}

/// A server in its namespace usually listens on 127.0.0.1: packets for
/// `10.77.0.6:port` are sent there (inside that namespace only).
fn forward_to_loopback(server: &Ns, port: u16) -> Result<(), NetnsError> {
    let name = server.name();
    ns::ip(&[
        "netns",
        "exec",
        name,
        "sysctl",
        "-q",
        "-w",
        "net.ipv4.conf.all.route_localnet=1",
    ])?;
    let script = format!(
        "table ip flatline_nat {{\n  chain pre {{\n    type nat hook prerouting priority -100; policy accept;\n    iifname \"eth0\" tcp dport {port} dnat to 127.0.0.1:{port}\n  }}\n}}\n"
    );
    nft::load(&server.path(), &script)
}

/// Make a child process enter the namespace at `path` before it runs (for
/// `Command::pre_exec`). The file is opened now, in the parent, and closed
/// when the command is dropped.
pub fn enter_in_child(
    path: &std::path::Path,
) -> std::io::Result<impl FnMut() -> std::io::Result<()> + Send + Sync + 'static> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path)?;
    Ok(move || {
        // SAFETY: setns is async-signal-safe and the fd is open.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    })
}

#[derive(Debug)]
struct NsSockets {
    relay: PathBuf,
    server_port: Option<u16>,
    upstream_ports: UpstreamPorts,
    marks: Marks,
}

type ConnectFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = std::io::Result<tokio::net::TcpStream>> + Send>,
>;

impl Sockets for NsSockets {
    fn stream_mark(&self, conn: u32, dir: Direction) -> Option<Arc<StreamMark>> {
        let m = Arc::new(StreamMark::default());
        let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        marks.insert((conn, dir), m.clone());
        Some(m)
    }
    fn listen(&self, addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
        let path = self.relay.clone();
        std::thread::spawn(move || {
            ns::enter(&path)?;
            let l = std::net::TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            Ok(l)
        })
        .join()
        .map_err(|_| std::io::Error::other("namespace thread panicked"))?
    }

    fn connect(&self, conn: u32, authority: &str) -> ConnectFuture {
        let Some(port) = self.server_port else {
            return Box::pin(tokio::net::TcpStream::connect(authority.to_string()));
        };
        let path = self.relay.clone();
        let ports = self.upstream_ports.clone();
        Box::pin(async move {
            let made = std::thread::spawn(move || {
                ns::enter(&path)?;
                let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
                s.set_nonblocking(true)?;
                Ok::<_, std::io::Error>(std::net::TcpStream::from(s))
            })
            .join()
            .map_err(|_| std::io::Error::other("namespace thread panicked"))??;
            let socket = tokio::net::TcpSocket::from_std_stream(made);
            // Bound first, so the flow's port is known before its SYN leaves.
            socket.bind(SocketAddr::V4(SocketAddrV4::new(RELAY_SERVER_ADDR, 0)))?;
            let local = socket.local_addr()?.port();
            if conn != 0 {
                ports
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(conn, local);
            }
            socket
                .connect(SocketAddr::V4(SocketAddrV4::new(SERVER_ADDR, port)))
                .await
        })
    }
}
