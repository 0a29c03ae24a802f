//! `--netns`: the peers' own kernels see the faults. These tests make
//! network namespaces, so they need root (or CAP_NET_ADMIN and
//! CAP_SYS_ADMIN) and `nft`; elsewhere each one says it is skipped and
//! passes. CI runs them as root.
//!
//! The client is this test binary itself, started again inside the client's
//! namespace with `FLATLINE_NETNS_HELPER` set (see [`helper_client`]): a
//! plain WebSocket client with `TCP_USER_TIMEOUT` and no heartbeat, sending
//! 100 bytes every 100 ms, as in the issue that asked for this mode.

use flatline::events::{Direction, Event, EventKind, Opcode, Side};
use flatline::netns::ns;
use flatline::report::Report;
use flatline::run::{run, RunOptions};
use flatline::scenario::parse_str;
use std::io::{Read, Write};
use std::time::Duration;
use tokio::sync::Mutex;

/// The tests share the machine's namespaces list: one at a time, so each can
/// check that its run left none of this process's behind.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

fn skip() -> bool {
    match flatline::netns::preflight() {
        Ok(()) => false,
        Err(e) => {
            eprintln!("skipped: {e}");
            true
        }
    }
}

fn ours() -> Vec<String> {
    let mine = format!("{}{}.", ns::PREFIX, std::process::id());
    ns::list_ours()
        .into_iter()
        .filter(|n| n.starts_with(&mine))
        .collect()
}

/// This binary as the client command.
fn helper_cmd(mode: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    format!(
        "FLATLINE_NETNS_HELPER={mode} exec {} helper_client --exact --nocapture --test-threads=1",
        exe.display()
    )
}

/// Not a test on its own: the client that the tests start in a namespace.
#[test]
fn helper_client() {
    let Ok(mode) = std::env::var("FLATLINE_NETNS_HELPER") else {
        return;
    };
    if mode == "keepalive-server" {
        keepalive_server();
    }
    let url = std::env::var("FLATLINE_URL").expect("FLATLINE_URL");
    let rest = url.strip_prefix("ws://").expect("ws:// URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr: std::net::SocketAddr = authority.parse().expect("address");
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if mode == "user-timeout" {
        sock.set_tcp_user_timeout(Some(Duration::from_millis(2000)))
            .unwrap();
    }
    sock.connect(&addr.into()).unwrap();
    let mut s: std::net::TcpStream = sock.into();
    let path = if path.is_empty() { "/" } else { path };
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "EOF in the 101 head");
        head.push(b[0]);
    }
    println!("open");
    // A masked text frame of 100 bytes (mask 0: payload unchanged).
    let mut frame = vec![0x81, 0x80 | 100, 0, 0, 0, 0];
    frame.extend_from_slice(&[b'x'; 100]);
    let opened = std::time::Instant::now();
    if mode == "pings" {
        pings(s);
    }
    loop {
        if mode == "close-later" && opened.elapsed() > Duration::from_millis(800) {
            // Quiet until 1.5 s (nothing unacknowledged when the link dies),
            // then a close frame 1000 (masked, mask 0), then silence: no FIN.
            std::thread::sleep(Duration::from_millis(700));
            s.set_nodelay(true).unwrap();
            s.write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]).unwrap();
            println!("close frame sent");
            std::thread::sleep(Duration::from_secs(1000));
        }
        if let Err(e) = s.write_all(&frame) {
            println!("write failed: {e} ({:?})", e.kind());
            std::process::exit(3);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A heartbeat: a masked ping numbered `hb N` every 250 ms (mask 0), each
/// in its own packet.
fn pings(mut s: std::net::TcpStream) -> ! {
    s.set_nodelay(true).unwrap();
    for n in 0.. {
        let body = format!("hb {n}");
        let mut frame = vec![0x89, 0x80 | body.len() as u8, 0, 0, 0, 0];
        frame.extend_from_slice(body.as_bytes());
        if let Err(e) = s.write_all(&frame) {
            println!("write failed: {e}");
            std::process::exit(3);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    unreachable!()
}

/// A WebSocket server that says nothing after the handshake and relies on
/// TCP keepalive (1 s idle, 1 s apart, 2 probes) to notice a vanished
/// client; it prints how its read ended.
fn keepalive_server() -> ! {
    let l = std::net::TcpListener::bind("127.0.0.1:9001").unwrap();
    // flatline's readiness probe connects first: every connection is served.
    loop {
        let (s, _) = l.accept().unwrap();
        std::thread::spawn(move || serve_with_keepalive(s));
    }
}

fn serve_with_keepalive(mut s: std::net::TcpStream) {
    let ka = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(1))
        .with_interval(Duration::from_secs(1))
        .with_retries(2);
    socket2::SockRef::from(&s).set_tcp_keepalive(&ka).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).unwrap_or(0) == 0 {
            return;
        }
        head.push(b[0]);
    }
    s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n").unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return println!("read: EOF"),
            Ok(_) => {}
            Err(e) => return println!("read failed: {e} ({:?})", e.kind()),
        }
    }
}

const DETECTS: &str = "
name: user-timeout
description: The link dies for good one second after the client opens.
duration: 12s
faults:
  - name: outage
    kind: partition
    direction: DIRECTION
    at: open#1 + 1s
expect:
  - name: client notices
    kind: detects
    after: outage
    within: 5s
";

async fn run_with(scenario: &str, mode: &str, netns: bool) -> Report {
    let sc = parse_str(scenario, "netns.yaml").unwrap().scenario;
    let opts = RunOptions {
        client_cmd: Some(helper_cmd(mode)),
        netns,
        ..RunOptions::default()
    };
    let report = run(&sc, &opts, |_| {}, |_| {}).await.unwrap();
    assert!(ours().is_empty(), "namespaces left behind: {:?}", ours());
    report
}

fn kernel_notes(r: &Report) -> Vec<String> {
    r.events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Kernel { fault, what } => Some(format!("{fault}: {what}")),
            _ => None,
        })
        .collect()
}

fn gave_up(r: &Report) -> Option<&Event> {
    r.events.iter().find(|e| {
        matches!(
            &e.kind,
            EventKind::KernelGaveUp {
                from: Side::Client,
                ..
            }
        )
    })
}

#[tokio::test]
async fn tcp_user_timeout_is_judged_by_the_kernel_in_netns_mode_only() {
    let _one = ONE_AT_A_TIME.lock().await;
    if skip() {
        return;
    }
    let scenario = DETECTS.replace("DIRECTION", "both");
    let r = run_with(&scenario, "user-timeout", true).await;
    let notes = kernel_notes(&r);
    assert!(
        notes.iter().any(|n| n.contains("nftables drop both ways")),
        "{notes:?}"
    );
    let v = &r.expectations[0];
    assert!(v.passed, "{}: {:?}", v.detail, r.events);
    let seen = gave_up(&r).expect("the give-up, seen in the socket table");
    let EventKind::KernelGaveUp { what, .. } = &seen.kind else {
        unreachable!()
    };
    assert!(what.contains("retransmissions"), "{what}");
    // TCP_USER_TIMEOUT is 2 s: the kernel gave up after that, not before.
    let observed = v.observed.expect("a time");
    assert!(observed >= Duration::from_millis(1900), "{observed:?}");

    // The same client through the relay alone: its kernel never notices.
    let r = run_with(&scenario, "user-timeout", false).await;
    let v = &r.expectations[0];
    assert!(!v.passed, "{}", v.detail);
    assert!(gave_up(&r).is_none());
}

/// The client's text frames the relay received in `(t, until)` (not those
/// only seen in dropped packets). The report folds frames nothing judges
/// into runs, which never span another event of their connection or a
/// global one (such as the kernel rule's or the give-up's), so a run lies
/// wholly inside the window or outside it.
fn client_frames_after(r: &Report, t: Duration, until: Duration) -> usize {
    let client_text = |f: &flatline::events::FrameInfo| {
        f.dir == Direction::ToServer && f.opcode == Opcode::Text && !f.dropped
    };
    r.events
        .iter()
        .filter(|e| e.t > t && e.t < until)
        .map(|e| match &e.kind {
            EventKind::Frame(f) if client_text(f) => 1,
            EventKind::Frames(run) if client_text(&run.frame) && run.last < until => {
                run.count as usize
            }
            _ => 0,
        })
        .sum()
}

fn kernel_time(r: &Report) -> Duration {
    r.events
        .iter()
        .find(|e| matches!(e.kind, EventKind::Kernel { .. }))
        .expect("a kernel event")
        .t
}

#[tokio::test]
async fn one_way_partitions_lose_the_acks_or_the_data() {
    let _one = ONE_AT_A_TIME.lock().await;
    if skip() {
        return;
    }
    // Toward the server: nothing the client sends arrives, and its kernel
    // gives up for want of ACKs.
    let r = run_with(
        &DETECTS.replace("DIRECTION", "to_server"),
        "user-timeout",
        true,
    )
    .await;
    assert!(r.expectations[0].passed, "{}", r.expectations[0].detail);
    let cut = kernel_time(&r);
    let given_up = gave_up(&r).expect("give-up").t;
    // One frame may have been in flight when the rule was loaded.
    assert!(client_frames_after(&r, cut, given_up) <= 1);

    // Toward the client: the relay still receives the client's frames, but
    // its ACKs are lost, so the client's kernel gives up all the same.
    let r = run_with(
        &DETECTS.replace("DIRECTION", "to_client"),
        "user-timeout",
        true,
    )
    .await;
    assert!(r.expectations[0].passed, "{}", r.expectations[0].detail);
    let cut = kernel_time(&r);
    let given_up = gave_up(&r).expect("give-up").t;
    assert!(
        client_frames_after(&r, cut, given_up) >= 2,
        "the relay should keep receiving: {:?}",
        r.events
    );
}

#[tokio::test]
async fn reset_is_a_kernel_reject_with_tcp_reset() {
    let _one = ONE_AT_A_TIME.lock().await;
    if skip() {
        return;
    }
    let scenario = "
name: reset
description: A middlebox forgets the flow one second in.
duration: 4s
faults:
  - name: forget
    kind: reset
    toward: client
    at: open#1 + 1s
";
    let r = run_with(scenario, "plain", true).await;
    let notes = kernel_notes(&r);
    assert!(
        notes.iter().any(|n| n.contains("reject with tcp reset")),
        "{notes:?}"
    );
    let client = r.commands.iter().find(|c| c.role == "client").unwrap();
    assert!(
        client.output_tail.contains("ConnectionReset"),
        "{}",
        client.output_tail
    );
}

const IDLE: &str = "
name: idle
description: Nothing happens; the run is ended from outside.
duration: 20s
expect:
  # Open until the run ends: from the first open on (an expectation that a
  # connection attempt decides would stop the run before the open is seen).
  - kind: no_reconnect
    after: open#1
    for: 19s
";

#[tokio::test]
async fn interrupted_runs_and_killed_clients_leave_no_namespace() {
    let _one = ONE_AT_A_TIME.lock().await;
    if skip() {
        return;
    }
    let sc = parse_str(IDLE, "idle.yaml").unwrap().scenario;
    // Ctrl-C once the client is connected.
    let opts = RunOptions {
        client_cmd: Some(helper_cmd("plain")),
        netns: true,
        ..RunOptions::default()
    };
    let interrupt = opts.interrupt.clone();
    let mut during = Vec::new();
    let r = run(
        &sc,
        &opts,
        |_| {},
        |e| {
            if matches!(e.kind, EventKind::Open) {
                during = ours();
                interrupt.cancel();
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(during.len(), 2, "relay and client namespaces: {during:?}");
    assert!(r.warnings.iter().any(|w| w.contains("interrupted")));
    assert!(ours().is_empty(), "left behind: {:?}", ours());

    // A client that crashes (SIGKILL) mid-run.
    let opts = RunOptions {
        client_cmd: Some(format!(
            "{} & sleep 0.5; kill -9 $!; sleep 1000",
            helper_cmd("plain")
        )),
        netns: true,
        ..RunOptions::default()
    };
    let interrupt = opts.interrupt.clone();
    let r = run(
        &sc,
        &opts,
        |_| {},
        |e| {
            if matches!(e.kind, EventKind::Closed { .. }) {
                interrupt.cancel();
            }
        },
    )
    .await
    .unwrap();
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e.kind, EventKind::Closed { .. })));
    assert!(ours().is_empty(), "left behind: {:?}", ours());
}

/// A `flatline run --netns` of the idle scenario, as a process, read up to
/// the line that prints its URL (its namespaces exist by then).
struct IdleRun {
    child: std::process::Child,
    /// Its stderr after the URL line; kept open (and read) until it is
    /// killed: a closed pipe would end it early.
    out: std::io::BufReader<std::process::ChildStderr>,
    /// The URL line.
    line: String,
    dir: std::path::PathBuf,
}

impl IdleRun {
    fn start(tag: &str) -> IdleRun {
        let dir = std::env::temp_dir().join(format!("flatline-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("idle.yaml");
        std::fs::write(&file, IDLE).unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_flatline"))
            .args(["run", "--netns", "--client-cmd", "exec sleep 1000"])
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains("relay at") {
            line.clear();
            assert!(
                std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0,
                "no URL"
            );
        }
        IdleRun {
            child,
            out,
            line,
            dir,
        }
    }
}

/// The namespaces that the run with process id `pid` made.
fn namespaces_of(pid: u32) -> Vec<String> {
    let p = format!("{}{pid}.", ns::PREFIX);
    ns::list_ours()
        .into_iter()
        .filter(|n| n.starts_with(&p))
        .collect()
}

#[tokio::test]
async fn a_killed_run_is_cleaned_up_by_the_next() {
    let _one = ONE_AT_A_TIME.lock().await;
    if skip() {
        return;
    }
    let IdleRun {
        mut child,
        mut out,
        line,
        dir,
    } = IdleRun::start("netns");
    let pid = child.id();
    let theirs = || namespaces_of(pid);
    assert!(line.contains("10.77.0.1"), "{line}");
    let drain = std::thread::spawn(move || std::io::Read::read_to_end(&mut out, &mut Vec::new()));
    assert_eq!(theirs().len(), 2, "{:?}", theirs());
    // The URL is printed just before the client starts: a bounded wait for
    // its process to show up in the namespace (another process's state has
    // no event to await) before the run is killed, so that the client is
    // orphaned there.
    let client_ns = theirs()
        .into_iter()
        .find(|n| n.ends_with("-client"))
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let orphan: i32 = loop {
        let out = std::process::Command::new("ip")
            .args(["netns", "pids", &client_ns])
            .output()
            .unwrap();
        if let Ok(p) = String::from_utf8_lossy(&out.stdout).trim().parse() {
            break p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the client never started: {:?}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = drain.join();
    assert_eq!(theirs().len(), 2, "a SIGKILLed run cannot clean up");
    // The next run (here: the next set of namespaces) removes them, and
    // ends the client command orphaned in the client's namespace.
    let next = flatline::netns::Netns::create(None).unwrap();
    assert!(theirs().is_empty(), "{:?}", theirs());
    assert!(next.cleaned.iter().any(|n| n.contains(&format!("{pid}."))));
    drop(next);
    assert!(ours().is_empty());
    // SIGKILL is asynchronous: a bounded wait for the orphan to be gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while running(orphan) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!running(orphan), "the killed run's client survived");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Running (a zombie waiting for its reaper runs nothing).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(
        |s| !matches!(s.rsplit(')').next().map(str::trim_start), Some(st) if st.starts_with('Z')),
    )
}

#[tokio::test]
async fn a_server_relying_on_tcp_keepalive_notices_a_vanished_client() {
    let _one = ONE_AT_A_TIME.lock().await;
    if skip() {
        return;
    }
    let scenario = "
name: vanished-client
description: The client's network goes away for good one second in.
duration: 12s
upstream: ws://127.0.0.1:9001/feed
faults:
  - name: gone
    kind: partition
    at: open#1 + 1s
expect:
  - name: server notices
    kind: detects
    side: server
    after: gone
    within: 6s
";
    let sc = parse_str(scenario, "vanished.yaml").unwrap().scenario;
    let opts = RunOptions {
        client_cmd: Some(helper_cmd("plain")),
        server_cmd: Some(helper_cmd("keepalive-server")),
        netns: true,
        ..RunOptions::default()
    };
    let r = run(&sc, &opts, |_| {}, |_| {}).await.unwrap();
    assert!(ours().is_empty(), "left behind: {:?}", ours());
    let v = &r.expectations[0];
    assert!(v.passed, "{}: {:?}", v.detail, r.events);
    // The socket table shows the keepalive expiry; the RST the server's
    // kernel then sends is in a dropped packet at the same moment: either
    // may be logged first.
    assert!(
        v.detail.contains("keepalive") || v.detail.contains("RST (seen in the dropped packet)"),
        "{}",
        v.detail
    );
    let server = r.commands.iter().find(|c| c.role == "server").unwrap();
    assert!(
        server.output_tail.contains("TimedOut"),
        "{}",
        server.output_tail
    );
}

#[tokio::test]
async fn a_close_frame_in_dropped_packets_counts_when_it_was_sent() {
    let _one = ONE_AT_A_TIME.lock().await;
    if skip() {
        return;
    }
    // The partition starts at 1 s, the client sends its close frame at
    // 1.5 s: the relay never receives it, the dropped packet shows it.
    let scenario = DETECTS
        .replace("DIRECTION", "both")
        .replace("within: 5s", "within: 2s");
    let r = run_with(&scenario, "close-later", true).await;
    let v = &r.expectations[0];
    assert!(v.passed, "{}: {:?}", v.detail, r.events);
    assert!(v.detail.contains("close frame 1000"), "{}", v.detail);
    let seen = gave_up(&r).expect("the give-up, seen in a dropped packet");
    assert!(
        matches!(&seen.kind, EventKind::KernelGaveUp { seen, .. } if seen == "dropped packet"),
        "{seen:?}"
    );
    // The close frame itself is logged once, as seen in a dropped packet.
    let closes: Vec<bool> = r
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Frame(f) if f.opcode == Opcode::Close => Some(f.dropped),
            _ => None,
        })
        .collect();
    assert_eq!(closes, [true], "{:?}", r.events);
}

#[tokio::test]
async fn refused_is_a_kernel_rst_to_the_syn() {
    let _one = ONE_AT_A_TIME.lock().await;
    if skip() {
        return;
    }
    let scenario = "
name: refused
description: Nothing accepts connections for the whole run.
duration: 3s
faults:
  - name: nope
    kind: refuse
    how: refused
";
    let r = run_with(scenario, "plain", true).await;
    let notes = kernel_notes(&r);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("SYNs to the relay answered with RST")),
        "{notes:?}"
    );
    // The relay kept listening: the kernel answered, and no attempt got through.
    assert!(!r.events.iter().any(|e| matches!(
        e.kind,
        EventKind::Accept { .. } | EventKind::StoppedListening { .. }
    )));
    let client = r.commands.iter().find(|c| c.role == "client").unwrap();
    assert!(
        client.output_tail.contains("ConnectionRefused"),
        "{}",
        client.output_tail
    );
}

#[tokio::test]
async fn without_nft_the_run_stops_before_anything_starts() {
    let _one = ONE_AT_A_TIME.lock().await;
    if skip() {
        return;
    }
    // A PATH with `ip` but no `nft`.
    let dir = std::env::temp_dir().join(format!("flatline-nonft-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("ip");
    let _ = std::os::unix::fs::symlink(ip, dir.join("ip"));
    let file = dir.join("idle.yaml");
    std::fs::write(&file, IDLE).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flatline"))
        .args(["run", "--netns", "--client-cmd", "true"])
        .arg(&file)
        .env("PATH", &dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("`nft`") && err.contains("nftables"), "{err}");
    assert!(ours().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn ctrl_c_on_the_command_line_removes_the_namespaces() {
    let _one = ONE_AT_A_TIME.lock().await;
    if skip() {
        return;
    }
    let IdleRun {
        mut child,
        mut out,
        dir,
        ..
    } = IdleRun::start("netns-int");
    let pid = child.id();
    let theirs = || namespaces_of(pid);
    assert_eq!(theirs().len(), 2, "{:?}", theirs());
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGINT);
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "an interrupted run does not pass: {rest}"
    );
    assert!(theirs().is_empty(), "{:?}", theirs());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn network_netns_in_a_scenario_is_the_same_as_the_flag() {
    use flatline::scenario::Network;
    let sc = parse_str(
        &IDLE.replace("duration:", "network: netns\nduration:"),
        "n.yaml",
    )
    .unwrap()
    .scenario;
    assert_eq!(sc.network, Network::Netns);
    assert_eq!(
        parse_str(IDLE, "n.yaml").unwrap().scenario.network,
        Network::Relay
    );
    let Err(err) = parse_str(
        &IDLE.replace("duration:", "network: kernel\nduration:"),
        "n.yaml",
    ) else {
        panic!("an unknown network was accepted");
    };
    assert!(err.to_string().contains("n.yaml:"), "{err}");
}

const HEARTBEAT: &str = "
name: heartbeat-through-a-partition
description: The client pings every 250 ms; the link is down from 1.125 s to 1.625 s.
duration: 3500ms
faults:
  # Between pings, so that the rule's load time does not decide which ping
  # is the first one dropped.
  - name: outage
    kind: partition
    direction: both
    at: open#1 + 1125ms
    duration: 500ms
expect:
  - name: pings
    kind: heartbeat
    from: client
    match: {opcode: ping}
    every: 250ms
    tolerance: 200ms
    after: open#1
    for: 2500ms
";

/// A run and the client's pings as logged one by one (the report folds
/// frames into runs): (time, payload, seen in a dropped packet).
async fn run_pings(netns: bool) -> (Report, Vec<(Duration, String, bool)>) {
    let sc = parse_str(HEARTBEAT, "heartbeat.yaml").unwrap().scenario;
    let opts = RunOptions {
        client_cmd: Some(helper_cmd("pings")),
        netns,
        ..RunOptions::default()
    };
    let mut pings = Vec::new();
    let r = run(
        &sc,
        &opts,
        |_| {},
        |e| match &e.kind {
            EventKind::Frame(f) if f.dir == Direction::ToServer && f.opcode == Opcode::Ping => {
                pings.push((e.t, f.preview.clone(), f.dropped))
            }
            _ => {}
        },
    )
    .await
    .unwrap();
    assert!(ours().is_empty(), "namespaces left behind: {:?}", ours());
    (r, pings)
}

#[tokio::test]
async fn pings_in_dropped_packets_are_logged_once_when_sent() {
    let _one = ONE_AT_A_TIME.lock().await;
    if skip() {
        return;
    }
    let (kernel, pings) = run_pings(true).await;
    let (relay, _) = run_pings(false).await;
    eprintln!("netns pings: {pings:?}");
    let mut names: Vec<&str> = pings.iter().map(|p| p.1.as_str()).collect();
    let all = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), all, "a ping logged twice: {pings:?}");
    let cut = kernel_time(&kernel);
    let dropped: Vec<_> = pings.iter().filter(|p| p.2).collect();
    assert!(
        !dropped.is_empty(),
        "no ping seen in dropped packets: {pings:?}"
    );
    assert!(dropped.iter().all(|p| p.0 >= cut), "{pings:?}");
    // Those seen on the link are logged when sent, not at the heal.
    let heal = kernel
        .events
        .iter()
        .find(|e| matches!(e.kind, EventKind::FaultEnd { .. }))
        .expect("the partition ends")
        .t;
    assert!(dropped[0].0 < heal, "heal at {heal:?}: {pings:?}");
    let (k, d) = (&kernel.expectations[0], &relay.expectations[0]);
    assert_eq!(
        k.passed, d.passed,
        "netns: {} / relay: {}",
        k.detail, d.detail
    );
    assert!(d.passed, "{}", d.detail);
}
