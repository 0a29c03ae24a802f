//! Relay benchmark: the same WebSocket echo server reached three ways —
//! directly, through flatline's relay, and through a bare tokio
//! `copy_bidirectional` relay (8 KiB buffers, tokio's default) — measured in
//! one run:
//!
//! * echo round-trip latency p50/p99 at 64 B and 16 KiB over one connection,
//!   with client, server and relay pinned to one CPU (each process runs a
//!   current-thread runtime);
//! * throughput with 64 KiB messages over 1 and 8 connections;
//! * resident memory per idle open connection at 5,000 connections
//!   (VmRSS of the relay process before and after);
//! * wss:// on both legs: flatline terminating TLS toward the client and
//!   toward a TLS echo upstream, against the client talking TLS to that
//!   upstream directly (64 B round-trip p50, throughput).
//!
//! With `NOXIOUS_SERVER=/path/to/noxious-server` (noxious, a Rust port of
//! Toxiproxy, built from its source), noxious joins every measurement as a
//! second peer, driven through its Toxiproxy HTTP API (one proxy, no
//! toxics); without it, the bench says it skipped noxious.
//!
//! Each relay runs in its own process (this binary re-executed with
//! `--serve-relay KIND`), flatline's through the library exactly as
//! `flatline relay` would. Run:
//!
//! ```text
//! cargo bench --bench relay                 # all; latency pinned to CPU 0 by itself
//! cargo bench --bench relay -- --quick      # fewer iterations
//! cargo bench --bench relay -- --throughput-only   # throughput (and CPU per MB) only
//! cargo bench --bench relay -- --latency-rounds 40 # the pinned latency in 40 fresh-process rounds
//! taskset -c 0 cargo bench --bench relay    # everything pinned (throughput too)
//! ```
//!
//! With `taskset` (or any one-CPU affinity) everything runs pinned on
//! current-thread runtimes; otherwise the latency phase re-executes itself
//! pinned to CPU 0 (`--pin 0`) and the rest runs unpinned.

use flatline::events::{EventLog, Retention};
use flatline::relay::{Relay, RelayConfig};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[path = "common/echo.rs"]
mod echo;
#[path = "common/rounds.rs"]
mod rounds;
#[path = "common/tls.rs"]
mod tlsb;
use echo::{echo_server, read_head, Res, REQUEST};
use tokio::io::{AsyncRead, AsyncWrite};

struct Args {
    quick: bool,
    pin: Option<usize>,
    phase: Option<String>,
    serve_relay: Option<String>,
    upstream: Option<String>,
    tls_dir: Option<String>,
    memory_conns: usize,
    /// `--throughput-only`: skip latency, TLS and memory (quick iterations).
    throughput_only: bool,
    /// `--latency-rounds N`: the pinned latency phase again in N fresh
    /// processes (`rounds.rs`); 20 by default, 5 with `--quick`, 0 skips.
    latency_rounds: Option<usize>,
}

fn args() -> Args {
    let mut a = Args {
        quick: false,
        pin: None,
        phase: None,
        serve_relay: None,
        upstream: None,
        tls_dir: None,
        memory_conns: 5000,
        throughput_only: false,
        latency_rounds: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(s) = it.next() {
        match s.as_str() {
            "--quick" => a.quick = true,
            "--throughput-only" => a.throughput_only = true,
            "--latency-rounds" => match it.next().and_then(|v| v.parse().ok()) {
                Some(n) => a.latency_rounds = Some(n),
                None => {
                    eprintln!("--latency-rounds needs a number of rounds (0 skips them)");
                    std::process::exit(2);
                }
            },
            "--pin" => a.pin = it.next().and_then(|v| v.parse().ok()),
            "--phase" => a.phase = it.next(),
            "--serve-relay" => a.serve_relay = it.next(),
            "--upstream" => a.upstream = it.next(),
            "--tls-dir" => a.tls_dir = it.next(),
            "--memory-conns" => {
                a.memory_conns = it.next().and_then(|v| v.parse().ok()).unwrap_or(5000)
            }
            _ => {} // `--bench` from cargo, filters: ignored
        }
    }
    a
}

/// CPUs this process may run on.
fn cpus_allowed() -> usize {
    // SAFETY: a zeroed cpu_set_t is valid; the call fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return 0;
        }
        libc::CPU_COUNT(&set) as usize
    }
}

fn pin_to(cpu: usize) {
    // SAFETY: as above.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!(
                "warning: cannot pin to CPU {cpu}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

fn raise_nofile() {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

fn runtime(single: bool) -> tokio::runtime::Runtime {
    let mut b = if single {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    b.enable_all().build().expect("tokio runtime")
}

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// User + system CPU time of this process, in microseconds.
fn cpu_us() -> u64 {
    // SAFETY: getrusage fills a zeroed struct.
    unsafe {
        let mut r: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut r);
        let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
        us(r.ru_utime) + us(r.ru_stime)
    }
}

fn main() {
    let a = args();
    raise_nofile();
    if let Some(cpu) = a.pin {
        pin_to(cpu);
    }
    let pinned = cpus_allowed() == 1;
    if let Some(kind) = &a.serve_relay {
        let upstream = a.upstream.clone().unwrap_or_default();
        let tls_dir = a.tls_dir.clone().unwrap_or_default();
        if let Err(e) = runtime(pinned).block_on(serve_relay(kind, &upstream, &tls_dir)) {
            eprintln!("relay process: {e}");
            std::process::exit(1);
        }
        return;
    }
    if a.phase.as_deref() == Some("latency") {
        match runtime(pinned).block_on(latency_phase(a.quick)) {
            Ok(lines) => {
                for l in lines {
                    println!("{l}");
                }
            }
            Err(e) => {
                eprintln!("latency phase: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    if a.phase.as_deref() == Some("tls") {
        // `--phase tls`: the wss:// throughput rows only.
        let dur = Duration::from_millis(if a.quick { 700 } else { 2500 });
        if let Err(e) = runtime(pinned).block_on(tls_report(&[], dur)) {
            eprintln!("tls phase: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Err(e) = orchestrate(&a, pinned) {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------- servers

/// The yardstick: a bare tokio relay.
async fn tokio_relay(upstream: SocketAddr) -> Res<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                let Ok(mut s) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = c.set_nodelay(true);
                let _ = s.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut c, &mut s).await;
            });
        }
    });
    Ok(addr)
}

/// Child process: run one relay, print its address, answer `rss` on stdin.
async fn serve_relay(kind: &str, upstream: &str, tls_dir: &str) -> Res<()> {
    let up: SocketAddr = upstream.parse()?;
    let mut _keep = None;
    let addr = match kind {
        "flatline" => {
            // As `flatline relay` runs it: nothing kept per frame.
            let r = Relay::start(
                RelayConfig::new(&format!("ws://{up}/echo"))?,
                EventLog::with(Retention::Stream, None),
            )
            .await?;
            let a = r.addr();
            _keep = Some(r);
            a
        }
        "flatline-tls" => {
            let r = tlsb::flatline_tls(up, std::path::Path::new(tls_dir)).await?;
            let a = r.addr();
            _keep = Some(r);
            a
        }
        "tokio" => tokio_relay(up).await?,
        k => return Err(format!("unknown relay kind {k}").into()),
    };
    println!("ADDR {addr}");
    std::io::stdout().flush()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(cmd) = rx.recv().await {
        match cmd.trim() {
            "rss" => println!("RSS {}", vm_rss_kib()),
            "cpu" => println!("CPU {}", cpu_us()),
            _ => continue,
        }
        std::io::stdout().flush()?;
    }
    Ok(())
}

/// A relay process: ours (flatline, tokio) answer `rss`/`cpu` on stdin;
/// noxious is read through /proc.
struct RelayProc {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Option<BufReader<std::process::ChildStdout>>,
    addr: SocketAddr,
}

/// Where noxious-server is (`NOXIOUS_SERVER`), if it is there.
fn noxious_server() -> Option<std::path::PathBuf> {
    let p = std::path::PathBuf::from(std::env::var_os("NOXIOUS_SERVER")?);
    p.is_file().then_some(p)
}

fn free_port() -> Res<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One HTTP/1.1 request to noxious's Toxiproxy API; the status code.
fn toxiproxy_api(api: SocketAddr, method: &str, path: &str, body: &str) -> Res<u16> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(api)?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    Ok(answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or(format!("noxious answered {answer:?}"))?)
}

impl RelayProc {
    /// noxious-server with one proxy (no toxics) toward `upstream`, driven
    /// through its Toxiproxy HTTP API.
    fn spawn_noxious(bin: &std::path::Path, upstream: SocketAddr) -> Res<RelayProc> {
        let api = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &api.port().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let p = RelayProc {
            child,
            stdin: None,
            out: None,
            addr: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
        };
        let body = format!(
            r#"{{"name":"bench","listen":"{}","upstream":"{upstream}","enabled":true}}"#,
            p.addr
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match toxiproxy_api(api, "POST", "/proxies", &body) {
                Ok(201) | Ok(200) => break,
                Ok(code) => return Err(format!("noxious: POST /proxies answered {code}").into()),
                Err(_) if Instant::now() < deadline => {
                    // Its API is not up yet: nothing to await but the port.
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(format!("noxious API at {api}: {e}").into()),
            }
        }
        Ok(p)
    }

    /// From /proc/PID/status (KiB) or /proc/PID/stat (µs of CPU).
    fn proc_stat(&self, what: &str) -> Res<u64> {
        let pid = self.child.id();
        if what == "rss" {
            let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
            return Ok(s
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                .ok_or("no VmRSS")?);
        }
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let after = s.rsplit(')').next().ok_or("bad stat")?;
        let f: Vec<u64> = after
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        // utime and stime are fields 14 and 15 (11 and 12 after the name).
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Ok((f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) * 1_000_000 / hz)
    }

    fn spawn(kind: &str, upstream: SocketAddr) -> Res<RelayProc> {
        Self::spawn_with(kind, upstream, &[])
    }

    fn spawn_with(kind: &str, upstream: SocketAddr, extra: &[&str]) -> Res<RelayProc> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--serve-relay", kind, "--upstream", &upstream.to_string()])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let mut out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        out.read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("ADDR ")
            .ok_or(format!("relay said {line:?}"))?
            .parse()?;
        Ok(RelayProc {
            child,
            stdin: Some(stdin),
            out: Some(out),
            addr,
        })
    }

    fn ask(&mut self, what: &str) -> Res<u64> {
        let (Some(stdin), Some(out)) = (self.stdin.as_mut(), self.out.as_mut()) else {
            return self.proc_stat(what);
        };
        writeln!(stdin, "{what}")?;
        stdin.flush()?;
        let mut line = String::new();
        out.read_line(&mut line)?;
        let prefix = format!("{} ", what.to_uppercase());
        Ok(line
            .trim()
            .strip_prefix(&prefix)
            .ok_or(format!("relay said {line:?}"))?
            .parse()?)
    }

    fn rss(&mut self) -> Res<u64> {
        self.ask("rss")
    }

    fn cpu(&mut self) -> Res<u64> {
        self.ask("cpu")
    }
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- clients

async fn ws_connect(addr: SocketAddr) -> Res<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    s.write_all(REQUEST).await?;
    read_head(&mut s).await?;
    Ok(s)
}

/// A masked binary frame with `len` bytes of payload, and the length of its echo.
fn client_frame(len: usize) -> (Vec<u8>, usize) {
    let payload: Vec<u8> = (0..len).map(|i| (i * 31) as u8).collect();
    let f = flatline::frame::encode_frame(2, true, &payload, Some([0x12, 0x34, 0x56, 0x78]));
    let echo_len = f.len() - 4;
    (f, echo_len)
}

/// Round-trip times in microseconds.
async fn round_trips(addr: SocketAddr, len: usize, iters: usize) -> Res<Vec<f64>> {
    round_trips_on(ws_connect(addr).await?, len, iters).await
}

/// Round-trip times in microseconds on an open WebSocket (TCP or TLS).
async fn round_trips_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    len: usize,
    iters: usize,
) -> Res<Vec<f64>> {
    let (f, echo_len) = client_frame(len);
    let mut back = vec![0u8; echo_len];
    let warmup = iters / 10;
    let mut out = Vec::with_capacity(iters);
    for i in 0..warmup + iters {
        let t = Instant::now();
        s.write_all(&f).await?;
        // Over TLS, `write_all` may leave the last records in the client's
        // session (the socket was not writable that instant): only a flush
        // sends them. The bench hung once on that, unpinned, on a busy
        // machine. On TCP it does nothing.
        s.flush().await?;
        s.read_exact(&mut back).await?;
        if i >= warmup {
            out.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok(out)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Latency lines: `LAT <path> <size> <p50> <p99> <cpu>`.
async fn latency_phase(quick: bool) -> Res<Vec<String>> {
    let echo = echo_server().await?;
    // (name, relay process; none for the direct path)
    let mut paths: Vec<(&str, Option<RelayProc>)> = vec![
        ("direct", None),
        ("flatline", Some(RelayProc::spawn("flatline", echo)?)),
        ("tokio", Some(RelayProc::spawn("tokio", echo)?)),
    ];
    if let Some(bin) = noxious_server() {
        paths.push(("noxious", Some(RelayProc::spawn_noxious(&bin, echo)?)));
    }
    let mut lines = Vec::new();
    for (size, iters) in [
        (64usize, if quick { 3000 } else { 20000 }),
        (16 * 1024, if quick { 2000 } else { 10000 }),
    ] {
        // noxious leaves Nagle on: its 16 KiB round trips take ~86 ms each.
        let iters_of = |name: &str| {
            if name == "noxious" && size > 1024 {
                (iters / 50).max(40)
            } else {
                iters
            }
        };
        // Interleave the paths in rounds so drift hits all of them alike.
        let mut all: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
        // Relay-process CPU time per round trip (robust to a busy machine).
        let mut cpu = vec![0u64; paths.len()];
        let rounds = 4;
        for round in 0..rounds {
            // Each round in another order: no path always follows the same one.
            let k = paths.len();
            for i in (0..k).map(|j| (j + round) % k) {
                let (name, proc_) = &mut paths[i];
                let addr = proc_.as_ref().map(|p| p.addr).unwrap_or(echo);
                let c0 = match proc_.as_mut() {
                    Some(p) => p.cpu()?,
                    None => 0,
                };
                all[i].extend(round_trips(addr, size, iters_of(name) / rounds).await?);
                if let Some(p) = proc_.as_mut() {
                    cpu[i] += p.cpu()? - c0;
                }
            }
        }
        for (i, (name, _)) in paths.iter().enumerate() {
            let v = &mut all[i];
            let n = v.len() as f64 * 1.1; // warm-up round trips count for CPU too
            v.sort_by(|a, b| a.total_cmp(b));
            lines.push(format!(
                "LAT {name} {size} {:.2} {:.2} {:.2}",
                pct(v, 0.5),
                pct(v, 0.99),
                cpu[i] as f64 / n
            ));
        }
    }
    drop(paths);
    lines.extend(tls_latency(quick).await?);
    Ok(lines)
}

/// wss:// on both legs vs TLS straight to the upstream, 64 B round trips.
async fn tls_latency(quick: bool) -> Res<Vec<String>> {
    let pki = tlsb::pki()?;
    let echo = tlsb::tls_echo_server(pki.acceptor.clone()).await?;
    let dir = pki
        .cert
        .cert_path
        .parent()
        .ok_or("no dir")?
        .display()
        .to_string();
    let fl = RelayProc::spawn_with("flatline-tls", echo, &["--tls-dir", &dir])?;
    let paths = [("direct-tls", echo), ("flatline-tls", fl.addr)];
    let iters = if quick { 3000 } else { 20000 };
    let rounds = 4;
    let mut all: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    for _ in 0..rounds {
        for (i, (_, addr)) in paths.iter().enumerate() {
            let s = tlsb::wss_connect(&pki.connector, *addr).await?;
            all[i].extend(round_trips_on(s, 64, iters / rounds).await?);
        }
    }
    let mut lines = Vec::new();
    for (i, (name, _)) in paths.iter().enumerate() {
        let v = &mut all[i];
        v.sort_by(|a, b| a.total_cmp(b));
        lines.push(format!(
            "LAT {name} 64 {:.2} {:.2} 0",
            pct(v, 0.5),
            pct(v, 0.99)
        ));
    }
    drop(fl);
    Ok(lines)
}

/// MB/s of echoed payload with `conns` connections each streaming 64 KiB messages.
async fn throughput(addr: SocketAddr, conns: usize, dur: Duration) -> Res<f64> {
    let mut streams = Vec::new();
    for _ in 0..conns {
        streams.push(ws_connect(addr).await?);
    }
    throughput_on(streams, dur).await
}

/// As [`throughput`], over wss:// connections.
async fn throughput_tls(
    c: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    conns: usize,
    dur: Duration,
) -> Res<f64> {
    let mut streams = Vec::new();
    for _ in 0..conns {
        streams.push(tlsb::wss_connect(c, addr).await?);
    }
    throughput_on(streams, dur).await
}

/// MB/s of echoed payload over open WebSockets, each streaming 64 KiB messages.
async fn throughput_on<S: AsyncRead + AsyncWrite + Send + 'static>(
    streams: Vec<S>,
    dur: Duration,
) -> Res<f64> {
    let (f, echo_len) = client_frame(64 * 1024);
    let f = std::sync::Arc::new(f);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for s in streams {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let (mut r, mut w) = tokio::io::split(s);
            let (tx, rx) = tokio::sync::oneshot::channel::<u64>();
            let writer = tokio::spawn(async move {
                let mut sent = 0u64;
                while start.elapsed() < dur {
                    if w.write_all(&f).await.is_err() {
                        break;
                    }
                    sent += 1;
                }
                // Over TLS the last records may wait in the session until
                // flushed; unflushed, their echo would never come.
                let _ = w.flush().await;
                let _ = tx.send(sent);
                w
            });
            let mut buf = vec![0u8; 256 * 1024];
            let mut got = 0u64; // bytes echoed back
            let mut want: Option<u64> = None;
            let mut rx = rx;
            while want.is_none_or(|w| got < w) {
                tokio::select! {
                    sent = &mut rx, if want.is_none() => {
                        want = Some(sent.map_err(|_| "writer gone")? * echo_len as u64);
                    }
                    n = r.read(&mut buf) => {
                        let n = n?;
                        if n == 0 {
                            return Err::<(u64, Instant), Box<dyn std::error::Error + Send + Sync>>("eof".into());
                        }
                        got += n as u64;
                    }
                }
            }
            let end = Instant::now();
            let _w = writer.await?;
            Ok((got, end))
        }));
    }
    let mut total = 0u64;
    let mut last = start;
    for t in tasks {
        let (got, end) = t.await??;
        total += got;
        last = last.max(end);
    }
    // Payload bytes only (frame headers are 10 of 65,546 bytes).
    let payload = total as f64 * (64.0 * 1024.0) / echo_len as f64;
    Ok(payload / last.duration_since(start).as_secs_f64() / 1e6)
}

/// KiB of relay-process RSS per idle open connection at `n` connections.
async fn memory(relay: &mut RelayProc, n: usize) -> Res<f64> {
    // Warm up (per-thread buffers, runtime structures) before the baseline.
    for _ in 0..8 {
        drop(ws_connect(relay.addr).await?);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = relay.rss()?;
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(ws_connect(relay.addr).await?);
    }
    // One echo on the last one: everything before it is surely set up.
    let (f, echo_len) = client_frame(64);
    if let Some(s) = conns.last_mut() {
        s.write_all(&f).await?;
        let mut b = vec![0; echo_len];
        s.read_exact(&mut b).await?;
    }
    let after = relay.rss()?;
    drop(conns);
    Ok((after.saturating_sub(before)) as f64 / n as f64)
}

// ---------------------------------------------------------------- report

fn orchestrate(a: &Args, pinned: bool) -> Res<()> {
    println!(
        "flatline relay benchmark ({} mode, relays in separate processes)",
        if pinned { "pinned" } else { "unpinned" }
    );
    // Latency: pinned, in its own process (current-thread runtimes).
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["--phase", "latency"]);
    if a.quick {
        cmd.arg("--quick");
    }
    if !pinned {
        cmd.args(["--pin", "0"]);
    }
    let out = if a.throughput_only {
        None
    } else {
        Some(cmd.stderr(Stdio::inherit()).output()?)
    };
    if out.as_ref().is_some_and(|o| !o.status.success()) {
        return Err("latency phase failed".into());
    }
    let stdout = out.map(|o| o.stdout).unwrap_or_default();
    let mut lat: Vec<(String, usize, f64, f64, f64)> = Vec::new();
    for l in String::from_utf8_lossy(&stdout).lines() {
        let p: Vec<&str> = l.split_whitespace().collect();
        if p.len() == 6 && p[0] == "LAT" {
            lat.push((
                p[1].to_string(),
                p[2].parse()?,
                p[3].parse()?,
                p[4].parse()?,
                p[5].parse()?,
            ));
        }
    }
    let lat_tls: Vec<(String, f64)> = lat
        .iter()
        .filter(|l| l.0.ends_with("-tls"))
        .map(|l| (l.0.clone(), l.2))
        .collect();
    let cpu_of =
        |name: &str, size: usize| lat.iter().find(|l| l.0 == name && l.1 == size).map(|l| l.4);
    let get = |name: &str, size: usize| {
        lat.iter()
            .find(|l| l.0 == name && l.1 == size)
            .map(|l| (l.2, l.3))
    };
    println!("\nEcho round trip, one connection, pinned to one CPU (us):");
    println!(
        "  {:<8} {:>7} {:>9} {:>9} {:>11} {:>11} {:>10} {:>10}",
        "size", "path", "p50", "p99", "p50 added", "p99 added", "p50/direct", "p50/tokio"
    );
    for size in [64usize, 16 * 1024] {
        let (Some(d), Some(t)) = (get("direct", size), get("tokio", size)) else {
            continue;
        };
        for name in ["direct", "tokio", "noxious", "flatline"] {
            let Some(v) = get(name, size) else { continue };
            println!(
                "  {:<8} {:>7} {:>9.1} {:>9.1} {:>+11.1} {:>+11.1} {:>10.2} {:>10.2}",
                if size == 64 { "64 B" } else { "16 KiB" },
                name,
                v.0,
                v.1,
                v.0 - d.0,
                v.1 - d.1,
                v.0 / d.0,
                v.0 / t.0
            );
        }
    }
    if let (Some(f64b), Some(d64), Some(t64), Some(f16), Some(d16), Some(t16)) = (
        get("flatline", 64),
        get("direct", 64),
        get("tokio", 64),
        get("flatline", 16384),
        get("direct", 16384),
        get("tokio", 16384),
    ) {
        println!(
            "  targets: added p50 64 B {:.1} us (<= 10) {}; 16 KiB {:.1} us (<= 16) {}; p99 vs tokio 64 B {:+.1} us, 16 KiB {:+.1} us (<= +5) {}",
            f64b.0 - d64.0,
            ok(f64b.0 - d64.0 <= 10.0),
            f16.0 - d16.0,
            ok(f16.0 - d16.0 <= 16.0),
            f64b.1 - t64.1,
            f16.1 - t16.1,
            ok(f64b.1 - t64.1 <= 5.0 && f16.1 - t16.1 <= 5.0)
        );
    }

    match (get("direct", 64), get("direct", 16384)) {
        _ if a.throughput_only => {}
        (Some(d64), Some(d16)) if noxious_server().is_some() => {
            // Issue 15's targets against both peers, in this same run.
            let added = |name: &str, size: usize, d: (f64, f64)| get(name, size).map(|v| v.0 - d.0);
            let peers = ["tokio", "noxious"];
            let best = |size: usize, d: (f64, f64)| {
                peers
                    .iter()
                    .filter_map(|p| added(p, size, d))
                    .fold(f64::INFINITY, f64::min)
            };
            let p99_peer = peers
                .iter()
                .filter_map(|p| get(p, 64).map(|v| v.1))
                .fold(f64::INFINITY, f64::min);
            if let (Some(f64b), Some(f16), Some(fp99)) = (
                added("flatline", 64, d64),
                added("flatline", 16384, d16),
                get("flatline", 64).map(|v| v.1),
            ) {
                println!(
                    "  vs peers: added p50 64 B {f64b:.1} us vs best peer {:.1} {}; 16 KiB {f16:.1} vs {:.1} {}; p99 64 B {fp99:.1} us vs best peer {p99_peer:.1} x{:.2} (<= 1.1) {}",
                    best(64, d64),
                    ok(f64b <= best(64, d64)),
                    best(16384, d16),
                    ok(f16 <= best(16384, d16)),
                    fp99 / p99_peer,
                    ok(fp99 <= 1.1 * p99_peer)
                );
            }
        }
        _ => println!(
            "  noxious: skipped (set NOXIOUS_SERVER to a noxious-server binary to compare with it)"
        ),
    }

    let n = a.latency_rounds.unwrap_or(if a.quick { 5 } else { 20 });
    if !a.throughput_only && n > 0 {
        rounds::report(&rounds::run(&std::env::current_exe()?, n)?);
    }

    // Throughput and memory: this process, unpinned unless taskset said otherwise.
    let rt = runtime(pinned);
    rt.block_on(async {
        let echo = echo_server().await?;
        let mut fl = RelayProc::spawn("flatline", echo)?;
        let mut tk = RelayProc::spawn("tokio", echo)?;
        let mut nx = match noxious_server() {
            Some(bin) => Some(RelayProc::spawn_noxious(&bin, echo)?),
            None => None,
        };
        let dur = Duration::from_millis(if a.quick { 700 } else { 2500 });
        println!("  relay process CPU per round trip (us, user+sys; robust to other load):");
    for size in [64usize, 16 * 1024] {
        if let (Some(t), Some(f)) = (cpu_of("tokio", size), cpu_of("flatline", size)) {
            println!(
                "    {:<7} tokio {t:>6.2}   flatline {f:>6.2}   flatline/tokio {:.2}",
                if size == 64 { "64 B" } else { "16 KiB" },
                f / t
            );
        }
    }
    println!("\nThroughput, 64 KiB messages echoed (MB/s of payload, one way):");
        println!("  {:<6} {:>9} {:>9} {:>9} {:>10} {:>10} {:>9}", "conns", "direct", "tokio", "flatline", "fl/direct", "fl/tokio", "tokio/dir");
        let mut procs = [None, Some(&mut tk), Some(&mut fl), nx.as_mut()];
        for conns in [1usize, 8] {
            throughput_row(echo, &mut procs, conns, dur).await?;
        }
        if a.throughput_only {
            return Ok(());
        }
        tls_report(&lat_tls, dur).await?;
        let n = a.memory_conns;
        println!("\nResident memory per idle open connection at {n} connections (relay process VmRSS delta / {n}):");
        // Fresh relay processes: memory freed by the throughput runs would
        // otherwise be reused and hide the connections' cost.
        drop((tk, fl, nx));
        let mut tk = RelayProc::spawn("tokio", echo)?;
        let mut fl = RelayProc::spawn("flatline", echo)?;
        let mt = memory(&mut tk, n).await?;
        let mf = memory(&mut fl, n).await?;
        println!("  tokio    {mt:>6.1} KiB");
        if let Some(bin) = noxious_server() {
            let mut nx = RelayProc::spawn_noxious(&bin, echo)?;
            let mx = memory(&mut nx, n).await?;
            println!("  noxious  {mx:>6.1} KiB   flatline {}", ok(mf <= mx));
        }
        println!("  flatline {mf:>6.1} KiB   ratio to tokio {:.2}   target <= 16 KiB {}", mf / mt, ok(mf <= 16.0));
        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    })?;
    Ok(())
}

/// One row of the throughput table: direct, tokio, flatline, noxious (when
/// there), alternated twice, each path's best run; plus each relay
/// process's CPU time per MB relayed (user + sys over both runs: robust to
/// other load on the machine).
async fn throughput_row(
    echo: SocketAddr,
    procs: &mut [Option<&mut RelayProc>; 4],
    conns: usize,
    dur: Duration,
) -> Res<()> {
    let mut best = [0f64; 4];
    let mut cpu = [0u64; 4];
    let mut mb = [0f64; 4];
    for _ in 0..2 {
        for (i, p) in procs.iter_mut().enumerate() {
            let addr = match p {
                Some(p) => p.addr,
                None if i == 0 => echo,
                None => continue,
            };
            let c0 = match p {
                Some(p) => p.cpu()?,
                None => 0,
            };
            let t0 = Instant::now();
            let rate = throughput(addr, conns, dur).await?;
            mb[i] += rate * t0.elapsed().as_secs_f64();
            if let Some(p) = p {
                cpu[i] += p.cpu()? - c0;
            }
            best[i] = best[i].max(rate);
        }
    }
    let [d, t, f, x] = best;
    let per_mb = |i: usize| cpu[i] as f64 / mb[i].max(1e-9);
    if procs[3].is_some() {
        println!(
            "  {conns:<6} noxious {x:>9.0}   fl/noxious {:.2}  target >= 1 {}   CPU us/MB noxious {:.0}",
            f / x,
            ok(f >= x),
            per_mb(3)
        );
    }
    println!(
        "  {:<6} {:>9.0} {:>9.0} {:>9.0} {:>10.2} {:>10.2} {:>9.2}  target fl/tokio >= 0.95 {}",
        conns,
        d,
        t,
        f,
        f / d,
        f / t,
        t / d,
        ok(f / t >= 0.95)
    );
    println!(
        "  {:<6} relay CPU per MB relayed (us): tokio {:.0}, flatline {:.0}, flatline/tokio {:.2}",
        "",
        per_mb(1),
        per_mb(2),
        per_mb(2) / per_mb(1)
    );
    Ok(())
}

/// wss:// on both legs vs direct TLS: latency (from the pinned phase) and
/// throughput (here).
async fn tls_report(lat: &[(String, f64)], dur: Duration) -> Res<()> {
    let p50 = |name: &str| lat.iter().find(|l| l.0 == name).map(|l| l.1);
    println!(
        "\nwss:// on both legs (flatline terminates TLS on each) vs TLS straight to the upstream:"
    );
    if let (Some(d), Some(f)) = (p50("direct-tls"), p50("flatline-tls")) {
        println!(
            "  64 B round trip p50: direct TLS {d:.1} us, flatline TLS both legs {f:.1} us, added {:+.1} us, ratio {:.2}",
            f - d,
            f / d
        );
    }
    let pki = tlsb::pki()?;
    let echo = tlsb::tls_echo_server(pki.acceptor.clone()).await?;
    let dir = pki
        .cert
        .cert_path
        .parent()
        .ok_or("no dir")?
        .display()
        .to_string();
    let fl = RelayProc::spawn_with("flatline-tls", echo, &["--tls-dir", &dir])?;
    println!(
        "  {:<6} {:>11} {:>13} {:>10}",
        "conns", "direct TLS", "flatline TLS", "fl/direct"
    );
    for conns in [1usize, 8] {
        let mut best = [0f64; 2];
        for _ in 0..2 {
            for (i, addr) in [echo, fl.addr].into_iter().enumerate() {
                best[i] = best[i].max(throughput_tls(&pki.connector, addr, conns, dur).await?);
            }
        }
        println!(
            "  {:<6} {:>11.0} {:>13.0} {:>10.2}   (MB/s of payload, one way)",
            conns,
            best[0],
            best[1],
            best[1] / best[0]
        );
    }
    drop(fl);
    Ok(())
}

fn ok(b: bool) -> &'static str {
    if b {
        "ok"
    } else {
        "MISSED"
    }
}
