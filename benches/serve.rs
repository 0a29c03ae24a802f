//! `flatline serve`: how soon a fault posted to the API shows on the wire,
//! and what one API call costs.
//!
//! * **Fault to wire.** A raw-TCP session relays a stream of 8-byte sequence
//!   numbers written every 100 µs by a client thread to a server thread. A
//!   `partition` is posted; `t0` is when the API's answer has been read. The
//!   last number the server received before the heal was sent at `t_last`;
//!   `t_last - t0` is how long after the answer bytes still got through
//!   (negative: the partition was in force before the answer arrived, which
//!   is the contract). Printed as p50/p99/max over the iterations, with the
//!   send interval as the resolution.
//! * **API overhead per call.** Round trips over one keep-alive HTTP/1.1
//!   connection: `GET /version`, `GET /sessions/{id}`, and a fault
//!   `POST` + `DELETE` pair, against a raw TCP echo of the same size measured
//!   in the same run (the baseline), as p50/p99 and the ratio of p50s.
//!
//! ```text
//! cargo bench --bench serve             # 200 iterations
//! cargo bench --bench serve -- --quick  # 40
//! ```

use flatline::serve::{ServeOptions, Server};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const SEND_EVERY: Duration = Duration::from_micros(100);

/// One blocking HTTP/1.1 client on a keep-alive connection.
struct Http {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Http {
    fn new(api: SocketAddr) -> Http {
        let s = TcpStream::connect(api).expect("connect to the API");
        s.set_nodelay(true).ok();
        Http {
            r: BufReader::new(s.try_clone().expect("clone")),
            w: s,
        }
    }

    /// Send a request and read the answer; (status, body).
    fn call(&mut self, method: &str, path: &str, body: &str) -> (u16, String) {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.w.write_all(req.as_bytes()).expect("write");
        let mut line = String::new();
        self.r.read_line(&mut line).expect("status line");
        let status: u16 = line
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let mut len = 0usize;
        loop {
            line.clear();
            self.r.read_line(&mut line).expect("header");
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut b = vec![0u8; len];
        self.r.read_exact(&mut b).expect("body");
        (status, String::from_utf8_lossy(&b).to_string())
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// p50/p99 of `f` run `n` times, in µs.
fn timed(n: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut v: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            micros(t.elapsed())
        })
        .collect();
    (pct(&mut v, 0.5), pct(&mut v, 0.99))
}

fn echo_baseline(n: usize, size: usize) -> (f64, f64) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            s.set_nodelay(true).ok();
            let mut b = vec![0u8; size];
            while s.read_exact(&mut b).is_ok() {
                if s.write_all(&b).is_err() {
                    break;
                }
            }
        }
    });
    let mut c = TcpStream::connect(a).expect("connect");
    c.set_nodelay(true).ok();
    let msg = vec![b'x'; size];
    let mut back = vec![0u8; size];
    timed(n, || {
        c.write_all(&msg).expect("write");
        c.read_exact(&mut back).expect("read");
    })
}

/// Sequence numbers received, with their arrival time.
type Arrivals = Arc<Mutex<Vec<(u64, Instant)>>>;

/// A raw TCP sink: records when each 8-byte sequence number arrived.
fn sink() -> (SocketAddr, Arrivals) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = l.local_addr().expect("addr");
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        if let Ok((s, _)) = l.accept() {
            let mut r = BufReader::new(s);
            let mut b = [0u8; 8];
            while r.read_exact(&mut b).is_ok() {
                g.lock()
                    .expect("lock")
                    .push((u64::from_be_bytes(b), Instant::now()));
            }
        }
    });
    (a, got)
}

fn fault_to_wire(api: SocketAddr, iterations: usize) {
    let (up, got) = sink();
    let mut http = Http::new(api);
    let body = format!(r#"{{"upstream": "ws://{up}/", "raw_tcp": true}}"#);
    let (status, answer) = http.call("POST", "/sessions", &body);
    assert_eq!(status, 201, "{answer}");
    let v: serde_json::Value = serde_json::from_str(&answer).expect("json");
    let id = v["id"].as_str().expect("id").to_string();
    let relay = v["listen"].as_str().expect("listen").to_string();
    let sent = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (s, st) = (sent.clone(), stop.clone());
    let sender = std::thread::spawn(move || {
        let mut c = TcpStream::connect(&relay).expect("connect to the relay");
        c.set_nodelay(true).ok();
        let mut seq = 0u64;
        while !st.load(Ordering::Relaxed) {
            s.lock().expect("lock").push(Instant::now());
            if c.write_all(&seq.to_be_bytes()).is_err() {
                break;
            }
            seq += 1;
            std::thread::sleep(SEND_EVERY);
        }
    });
    // Let the stream start flowing.
    while got.lock().expect("lock").len() < 100 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut lag = Vec::new();
    let faults = format!("/sessions/{id}/faults");
    for i in 0..iterations {
        let (status, answer) = http.call(
            "POST",
            &faults,
            &format!(r#"{{"name": "p{i}", "kind": "partition"}}"#),
        );
        let t0 = Instant::now();
        assert_eq!(status, 201, "{answer}");
        std::thread::sleep(Duration::from_millis(20));
        let last = got
            .lock()
            .expect("lock")
            .last()
            .map(|(s, _)| *s)
            .unwrap_or(0);
        let t_last = sent.lock().expect("lock")[last as usize];
        lag.push(if t_last >= t0 {
            micros(t_last - t0)
        } else {
            -micros(t0 - t_last)
        });
        let (status, _) = http.call("DELETE", &format!("{faults}/p{i}"), "");
        assert_eq!(status, 204);
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = sender.join();
    let sends = sent.lock().expect("lock");
    let mut gaps: Vec<f64> = sends.windows(2).map(|w| micros(w[1] - w[0])).collect();
    let resolution = pct(&mut gaps, 0.5);
    drop(sends);
    let max = lag.iter().cloned().fold(f64::MIN, f64::max);
    let late = lag
        .iter()
        .filter(|l| **l > micros(SEND_EVERY) * 2.0)
        .count();
    println!(
        "fault to wire (partition, {iterations} times; a send every {resolution:.0} µs (p50)): p50 {:+.0} µs, p99 {:+.0} µs, max {:+.0} µs; bytes got through more than 2 sends after the answer {late} times",
        pct(&mut lag, 0.5),
        pct(&mut lag, 0.99),
        max
    );
    http.call("DELETE", &format!("/sessions/{id}"), "");
}

fn api_overhead(api: SocketAddr, n: usize) {
    let mut http = Http::new(api);
    let (_, answer) = http.call("POST", "/sessions", r#"{"upstream": "ws://127.0.0.1:9/"}"#);
    let v: serde_json::Value = serde_json::from_str(&answer).expect("json");
    let id = v["id"].as_str().expect("id").to_string();
    let (b50, b99) = echo_baseline(n, 150);
    println!("baseline: TCP echo of 150 bytes: p50 {b50:.0} µs, p99 {b99:.0} µs");
    let (p50, p99) = timed(n, || {
        http.call("GET", "/version", "");
    });
    println!(
        "GET /version: p50 {p50:.0} µs, p99 {p99:.0} µs ({:.1}x the baseline)",
        p50 / b50
    );
    let path = format!("/sessions/{id}");
    let (p50, p99) = timed(n, || {
        http.call("GET", &path, "");
    });
    println!(
        "GET /sessions/{{id}}: p50 {p50:.0} µs, p99 {p99:.0} µs ({:.1}x)",
        p50 / b50
    );
    let mut i = 0;
    let faults = format!("/sessions/{id}/faults");
    let (p50, p99) = timed(n, || {
        i += 1;
        http.call(
            "POST",
            &faults,
            &format!(r#"{{"name": "d{i}", "kind": "delay", "latency": "1ms"}}"#),
        );
        http.call("DELETE", &format!("{faults}/d{i}"), "");
    });
    println!(
        "POST fault + DELETE fault: p50 {p50:.0} µs, p99 {p99:.0} µs ({:.1}x, two calls)",
        p50 / b50
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let iterations = if quick { 40 } else { 200 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt
        .block_on(Server::start(
            ServeOptions {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                allow_remote: false,
            },
            CancellationToken::new(),
        ))
        .expect("serve");
    let api = server.addr();
    fault_to_wire(api, iterations);
    api_overhead(api, iterations * 5);
    rt.block_on(server.stop());
}
