//! Thousands of connections through one relay: `flatline relay` (a
//! [`Relay`] with [`Retention::Stream`], the open-file limit raised as the
//! CLI does) holds N concurrent WebSocket connections to an echo upstream.
//! Printed: the relay's resident memory per idle connection (VmRSS before
//! and after opening them, target at most 10 KiB), the same after one echo
//! on each, and whether every connection stayed byte-exact (each sends a
//! frame with its own payload and must get exactly the expected echo back).
//!
//! Relay, echo upstream and clients are three processes (this binary
//! re-executed with `--serve relay|echo`), so that each stays within its
//! open-file limit: the relay needs two sockets per connection. When the
//! hard limit is too low for N, the bench says so and measures as many as
//! fit. Run:
//!
//! ```text
//! cargo bench --bench conns                 # 10,000 connections
//! cargo bench --bench conns -- --conns 2000
//! ```

use flatline::events::{EventLog, Retention};
use flatline::relay::{nofile, Relay, RelayConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

#[path = "common/child.rs"]
mod child;
use child::{serve_rss, Proc};
#[path = "common/echo.rs"]
mod echo;
use echo::{echo_server, read_head, Res, REQUEST};

/// Connections opened (or exchanging) at once.
const PARALLEL: usize = 64;
/// Target resident memory per idle connection, in KiB.
const TARGET_KIB: f64 = 10.0;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let limit = nofile::raise();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Some(mode) = get("--serve") {
        if let Err(e) = rt.block_on(serve(&mode, get("--upstream"))) {
            eprintln!("serve {mode}: {e}");
            std::process::exit(1);
        }
        return;
    }
    let wanted: u64 = get("--conns")
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    println!("{} concurrent connections through one relay", wanted);
    println!("load: {}", loadavg());
    let n = match limit {
        Ok(l) => match l.warning(wanted) {
            Some(w) => {
                println!("NOTE: {w}; measuring {} instead", l.max_connections());
                l.max_connections()
            }
            None => wanted,
        },
        Err(e) => {
            println!("cannot read the open-file limit ({e}); trying {wanted}");
            wanted
        }
    };
    match rt.block_on(measure(n as usize)) {
        Ok(ok) => {
            println!("load: {}", loadavg());
            if !ok {
                std::process::exit(1);
            }
        }
        Err(e) => {
            println!("error: {e}");
            std::process::exit(1);
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Child: the relay or the echo upstream; prints its address, answers `rss`.
async fn serve(mode: &str, upstream: Option<String>) -> Res<()> {
    let mut _keep = None;
    let addr = match (mode, upstream) {
        ("relay", Some(up)) => {
            let cfg = RelayConfig::new(&format!("ws://{up}/echo"))?;
            let r = Relay::start(cfg, EventLog::with(Retention::Stream, None)).await?;
            let a = r.addr();
            _keep = Some(r);
            a
        }
        ("echo", _) => echo_server().await?,
        (m, _) => return Err(format!("cannot serve {m}").into()),
    };
    serve_rss(addr).await
}

async fn ws_connect(addr: SocketAddr) -> Res<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    s.write_all(REQUEST).await?;
    read_head(&mut s).await?;
    Ok(s)
}

/// Connection `i`'s frame (masked, as a client sends it) and the exact
/// bytes the echo must bring back (the same frame, unmasked).
fn frames_of(i: usize) -> (Vec<u8>, Vec<u8>) {
    let payload: Vec<u8> = (0..100 + i % 50)
        .map(|k| (i.wrapping_mul(131) ^ k.wrapping_mul(7)) as u8)
        .collect();
    let mask = (i as u32).wrapping_mul(2_654_435_761).to_be_bytes();
    let sent = flatline::frame::encode_frame(0x2, true, &payload, Some(mask));
    let back = flatline::frame::encode_frame(0x2, true, &payload, None);
    (sent, back)
}

/// Open `n` connections, measure, exchange one frame on each; whether the
/// targets held.
async fn measure(n: usize) -> Res<bool> {
    let echo = Proc::spawn(&["--serve", "echo"])?;
    let up = echo.addr.to_string();
    let mut relay = Proc::spawn(&["--serve", "relay", "--upstream", &up])?;
    // Warm up (runtime threads, per-thread buffers) before the baseline.
    for _ in 0..PARALLEL {
        drop(ws_connect(relay.addr).await?);
    }
    let before = relay.rss()?;
    let t = Instant::now();
    let gate = Arc::new(Semaphore::new(PARALLEL));
    let mut opening = Vec::with_capacity(n);
    for _ in 0..n {
        let permit = gate.clone().acquire_owned().await?;
        let addr = relay.addr;
        opening.push(tokio::spawn(async move {
            let r = ws_connect(addr).await;
            drop(permit);
            r
        }));
    }
    let mut conns = Vec::with_capacity(n);
    for h in opening {
        conns.push(h.await??);
    }
    let opened = t.elapsed().as_secs_f64();
    let idle = relay.rss()?;
    let per_idle = idle.saturating_sub(before) as f64 / n as f64;
    println!(
        "opened {n} connections in {opened:.1} s; relay RSS {:.1} MB -> {:.1} MB: {per_idle:.2} KiB per idle connection  [{}] (target <= {TARGET_KIB} KiB)",
        before as f64 / 1024.0,
        idle as f64 / 1024.0,
        if per_idle <= TARGET_KIB { "ok" } else { "OVER" }
    );
    // One frame each way on every connection, checked byte for byte.
    let t = Instant::now();
    let mut checks = Vec::with_capacity(n);
    for (i, mut s) in conns.into_iter().enumerate() {
        let permit = gate.clone().acquire_owned().await?;
        checks.push(tokio::spawn(async move {
            let (sent, want) = frames_of(i);
            let r: Res<(bool, TcpStream)> = async {
                s.write_all(&sent).await?;
                let mut got = vec![0u8; want.len()];
                s.read_exact(&mut got).await?;
                Ok((got == want, s))
            }
            .await;
            drop(permit);
            r
        }));
    }
    let mut exact = 0;
    let mut kept = Vec::with_capacity(n);
    for h in checks {
        let (same, s) = h.await??;
        exact += usize::from(same);
        kept.push(s);
    }
    let after = relay.rss()?;
    println!(
        "one echo on each in {:.1} s: {exact} of {n} byte-exact  [{}]; relay RSS {:.1} MB: {:.2} KiB per connection after traffic",
        t.elapsed().as_secs_f64(),
        if exact == n { "ok" } else { "MISMATCH" },
        after as f64 / 1024.0,
        after.saturating_sub(before) as f64 / n as f64
    );
    drop(kept);
    Ok(per_idle <= TARGET_KIB && exact == n)
}
