//! The demo client over real sockets on 127.0.0.1, against small
//! instrumented servers: subscription, heartbeats, dead-link detection,
//! reconnects, intentional close, backoff and `Retry-After`, and the broken
//! variants.

use flatline::peers::{
    reply_to, run_client, spawn_demo_server, Backoff, ClientError, ClientExit, DemoClientOpts,
    DemoServerOpts, HeartbeatKind, DEFAULT_SUBSCRIBE,
};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const BOUND: Duration = Duration::from_secs(5);

/// What an instrumented server saw.
#[derive(Debug)]
enum Ev {
    Accepted(u32),
    Msg(u32, Message),
}

/// How an instrumented server treats connection `n`.
#[derive(Clone, Copy, Debug)]
enum Behaviour {
    /// Answers like the demo server.
    Answer,
    /// Reads (and records) everything, answers nothing.
    Silent,
    /// Answers, and closes with this code once the subscription arrived.
    CloseAfterSubscribe(u16),
}

struct Recorder {
    addr: SocketAddr,
    events: mpsc::UnboundedReceiver<Ev>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Recorder {
    async fn start(behaviour: impl Fn(u32) -> Behaviour + Send + 'static) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, events) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let tracker = tokio_util::task::TaskTracker::new();
            let mut n = 0;
            loop {
                let (stream, _) = tokio::select! {
                    _ = token.cancelled() => break,
                    r = listener.accept() => r.unwrap(),
                };
                n += 1;
                let _ = tx.send(Ev::Accepted(n));
                let tx = tx.clone();
                let how = behaviour(n);
                let token = token.clone();
                tracker.spawn(async move {
                    tokio::select! {
                        _ = token.cancelled() => {}
                        _ = record(n, stream, how, tx) => {}
                    }
                });
            }
            tracker.close();
            tracker.wait().await;
        });
        Recorder {
            addr,
            events,
            stop,
            task,
        }
    }

    fn url(&self) -> String {
        format!("ws://{}/feed", self.addr)
    }

    async fn next(&mut self) -> Ev {
        timeout(BOUND, self.events.recv())
            .await
            .expect("an event in time")
            .expect("recorder running")
    }

    /// Events until `pred` holds for one (returned with all before it).
    async fn until(&mut self, mut pred: impl FnMut(&Ev) -> bool) -> Vec<Ev> {
        let mut seen = Vec::new();
        loop {
            let ev = self.next().await;
            let done = pred(&ev);
            seen.push(ev);
            if done {
                return seen;
            }
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        timeout(BOUND, self.task).await.unwrap().unwrap();
    }
}

async fn record(n: u32, stream: TcpStream, how: Behaviour, tx: mpsc::UnboundedSender<Ev>) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        let _ = tx.send(Ev::Msg(n, msg.clone()));
        match how {
            Behaviour::Silent => {}
            Behaviour::Answer | Behaviour::CloseAfterSubscribe(_) => {
                let is_subscribe = matches!(&msg, Message::Text(t) if t.contains("subscribe"));
                if let Some(reply) = reply_to(msg) {
                    if ws.send(reply).await.is_err() {
                        return;
                    }
                }
                if let (Behaviour::CloseAfterSubscribe(code), true) = (how, is_subscribe) {
                    let _ = ws
                        .close(Some(CloseFrame {
                            code: CloseCode::from(code),
                            reason: "closing".into(),
                        }))
                        .await;
                }
            }
        }
    }
}

fn opts(url: String) -> DemoClientOpts {
    DemoClientOpts {
        url: Some(url),
        heartbeat: Duration::from_millis(30),
        timeout: Duration::from_millis(300),
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        ..Default::default()
    }
}

type Lines = Arc<Mutex<Vec<String>>>;

fn spawn_client(
    opts: DemoClientOpts,
) -> (
    CancellationToken,
    JoinHandle<Result<ClientExit, ClientError>>,
    Lines,
) {
    let shutdown = CancellationToken::new();
    let lines: Lines = Arc::default();
    let sink = lines.clone();
    let task = tokio::spawn(run_client(opts, shutdown.clone(), move |line| {
        eprintln!("{line}");
        sink.lock().unwrap().push(line.to_owned());
    }));
    (shutdown, task, lines)
}

async fn finish(
    shutdown: CancellationToken,
    task: JoinHandle<Result<ClientExit, ClientError>>,
) -> ClientExit {
    shutdown.cancel();
    timeout(BOUND, task).await.unwrap().unwrap().unwrap()
}

fn close_code(msg: &Message) -> Option<u16> {
    match msg {
        Message::Close(Some(f)) => Some(u16::from(f.code)),
        _ => None,
    }
}

fn is_text(msg: &Message, text: &str) -> bool {
    matches!(msg, Message::Text(t) if t == text)
}

#[tokio::test]
async fn opens_subscribes_heartbeats_and_closes_with_1001_on_shutdown() {
    let mut server = Recorder::start(|_| Behaviour::Answer).await;
    let (shutdown, task, _) = spawn_client(opts(server.url()));

    assert!(matches!(server.next().await, Ev::Accepted(1)));
    match server.next().await {
        Ev::Msg(1, msg) => assert!(is_text(&msg, DEFAULT_SUBSCRIBE), "got {msg:?}"),
        other => panic!("expected the subscription first, got {other:?}"),
    }
    for _ in 0..3 {
        match server.next().await {
            Ev::Msg(1, msg) => assert!(is_text(&msg, "ping"), "got {msg:?}"),
            other => panic!("expected a heartbeat, got {other:?}"),
        }
    }
    assert_eq!(finish(shutdown, task).await, ClientExit::Shutdown);
    let seen = server
        .until(|ev| matches!(ev, Ev::Msg(_, m) if close_code(m).is_some()))
        .await;
    let Some(Ev::Msg(1, last)) = seen.last() else {
        panic!("close on connection 1 expected: {seen:?}")
    };
    assert_eq!(close_code(last), Some(1001));
    server.stop().await;
}

#[tokio::test]
async fn heartbeat_kind_ping_sends_ping_frames() {
    let mut server = Recorder::start(|_| Behaviour::Answer).await;
    let mut o = opts(server.url());
    o.heartbeat_kind = HeartbeatKind::Ping;
    let (shutdown, task, _) = spawn_client(o);
    server
        .until(|ev| matches!(ev, Ev::Msg(1, Message::Ping(_))))
        .await;
    finish(shutdown, task).await;
    server.stop().await;
}

#[tokio::test]
async fn no_heartbeat_sends_nothing_but_the_subscription() {
    let mut server = Recorder::start(|_| Behaviour::Answer).await;
    let mut o = opts(server.url());
    o.no_heartbeat = true;
    // Ten heartbeat intervals, then the client stops itself with 1001.
    o.max_runtime = Some(Duration::from_millis(300));
    let (_shutdown, task, _) = spawn_client(o);
    let seen = server
        .until(|ev| matches!(ev, Ev::Msg(_, m) if close_code(m).is_some()))
        .await;
    let msgs: Vec<&Message> = seen
        .iter()
        .filter_map(|ev| match ev {
            Ev::Msg(_, m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(msgs.len(), 2, "subscription then close only: {seen:?}");
    assert!(is_text(msgs[0], DEFAULT_SUBSCRIBE));
    let exit = timeout(BOUND, task).await.unwrap().unwrap().unwrap();
    assert_eq!(exit, ClientExit::MaxRuntime);
    server.stop().await;
}

#[tokio::test]
async fn detects_a_silent_server_sends_4000_and_reconnects() {
    let mut server = Recorder::start(|n| {
        if n == 1 {
            Behaviour::Silent
        } else {
            Behaviour::Answer
        }
    })
    .await;
    let (shutdown, task, lines) = spawn_client(opts(server.url()));
    let mut saw_close_4000 = false;
    let seen = server
        .until(|ev| {
            if let Ev::Msg(1, m) = ev {
                saw_close_4000 |= close_code(m) == Some(4000);
            }
            matches!(ev, Ev::Msg(2, m) if is_text(m, DEFAULT_SUBSCRIBE))
        })
        .await;
    assert!(
        saw_close_4000,
        "connection 1 must get close 4000 before the reconnect: {seen:?}"
    );
    assert!(lines
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("link declared dead")));
    finish(shutdown, task).await;
    server.stop().await;
}

#[tokio::test]
async fn detects_a_server_that_completes_the_handshake_and_goes_silent() {
    // A raw "server": handshake, then it never reads again (so not even
    // protocol pongs come back).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut o = opts(format!("ws://{}/", listener.local_addr().unwrap()));
    o.heartbeat_kind = HeartbeatKind::Ping;
    let (shutdown, task, _) = spawn_client(o);
    let mut held = Vec::new();
    for _ in 0..2 {
        let (stream, _) = timeout(BOUND, listener.accept()).await.unwrap().unwrap();
        let ws = timeout(BOUND, tokio_tungstenite::accept_async(stream))
            .await
            .unwrap()
            .unwrap();
        held.push(ws);
    }
    finish(shutdown, task).await;
}

#[tokio::test]
async fn server_close_1000_leads_to_a_reconnect_and_a_resubscription() {
    let mut server = Recorder::start(|n| {
        if n == 1 {
            Behaviour::CloseAfterSubscribe(1000)
        } else {
            Behaviour::Answer
        }
    })
    .await;
    let (shutdown, task, _) = spawn_client(opts(server.url()));
    server
        .until(|ev| matches!(ev, Ev::Msg(2, m) if is_text(m, DEFAULT_SUBSCRIBE)))
        .await;
    finish(shutdown, task).await;
    server.stop().await;
}

#[tokio::test]
async fn no_resubscribe_skips_the_subscription_on_reconnect() {
    let mut server = Recorder::start(|n| {
        if n == 1 {
            Behaviour::CloseAfterSubscribe(1011)
        } else {
            Behaviour::Answer
        }
    })
    .await;
    let mut o = opts(server.url());
    o.no_resubscribe = true;
    let (shutdown, task, _) = spawn_client(o);
    let seen = server.until(|ev| matches!(ev, Ev::Msg(2, _))).await;
    match seen.last() {
        Some(Ev::Msg(2, m)) => assert!(is_text(m, "ping"), "first message on #2: {m:?}"),
        other => panic!("unexpected {other:?}"),
    }
    finish(shutdown, task).await;
    server.stop().await;
}

#[tokio::test]
async fn close_after_sends_1000_and_does_not_reconnect() {
    let mut server = Recorder::start(|_| Behaviour::Answer).await;
    let mut o = opts(server.url());
    o.close_after = Some(Duration::from_millis(150));
    let (_shutdown, task, lines) = spawn_client(o);
    let exit = timeout(BOUND, task).await.unwrap().unwrap().unwrap();
    assert_eq!(exit, ClientExit::IntentionalClose);
    let seen = server
        .until(|ev| matches!(ev, Ev::Msg(_, m) if close_code(m).is_some()))
        .await;
    match seen.last() {
        Some(Ev::Msg(1, m)) => assert_eq!(close_code(m), Some(1000)),
        other => panic!("expected close 1000 on connection 1, got {other:?}"),
    }
    let opens = lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(": open"))
        .count();
    assert_eq!(opens, 1);
    server.stop().await;
}

#[tokio::test]
async fn reconnect_after_close_reconnects_after_its_own_close() {
    let mut server = Recorder::start(|_| Behaviour::Answer).await;
    let mut o = opts(server.url());
    o.close_after = Some(Duration::from_millis(100));
    o.reconnect_after_close = true;
    let (shutdown, task, _) = spawn_client(o);
    let mut saw_1000 = false;
    server
        .until(|ev| {
            if let Ev::Msg(1, m) = ev {
                saw_1000 |= close_code(m) == Some(1000);
            }
            matches!(ev, Ev::Accepted(2))
        })
        .await;
    assert!(saw_1000);
    assert_eq!(finish(shutdown, task).await, ClientExit::Shutdown);
    server.stop().await;
}

#[tokio::test]
async fn against_the_demo_server_the_link_stays_up_until_the_intentional_close() {
    let (addr, demo) = spawn_demo_server(DemoServerOpts::default()).await.unwrap();
    let mut o = opts(format!("ws://{addr}/"));
    // Several timeouts long: only the server's pongs keep the link alive.
    o.close_after = Some(Duration::from_millis(1000));
    o.timeout = Duration::from_millis(200);
    let (_shutdown, task, lines) = spawn_client(o);
    let exit = timeout(BOUND, task).await.unwrap().unwrap().unwrap();
    assert_eq!(exit, ClientExit::IntentionalClose);
    let lines = lines.lock().unwrap().clone();
    assert!(
        !lines.iter().any(|l| l.contains("declared dead")),
        "{lines:#?}"
    );
    assert!(lines
        .iter()
        .any(|l| l.contains("server answered the close (code 1000")));
    demo.stop().await.unwrap();
}

/// Accepts connections and resets each at once; counts accepts from the
/// first one for `window`.
async fn count_attempts_against_resets(o: DemoClientOpts, listener: TcpListener) -> usize {
    let (shutdown, task, _) = spawn_client(o);
    let (first, _) = timeout(BOUND, listener.accept()).await.unwrap().unwrap();
    reset(first);
    let end = Instant::now() + Duration::from_millis(600);
    let mut count = 1;
    while let Ok(accepted) = timeout_at(end, listener.accept()).await {
        reset(accepted.unwrap().0);
        count += 1;
    }
    finish(shutdown, task).await;
    count
}

fn reset(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

#[tokio::test]
async fn backoff_spaces_attempts_and_no_backoff_storms() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut o = opts(format!("ws://{}/", listener.local_addr().unwrap()));
    o.backoff_max = Duration::from_secs(2);
    let careful = count_attempts_against_resets(o.clone(), listener).await;

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    o.url = Some(format!("ws://{}/", listener.local_addr().unwrap()));
    o.no_backoff = true;
    let storm = count_attempts_against_resets(o, listener).await;

    // 20ms doubling: at most 0, 20, 60, 140, 300 ms (+ jitter only delays).
    assert!(careful <= 6, "careful client made {careful} attempts");
    assert!(
        storm > 20,
        "the --no-backoff client made only {storm} attempts"
    );
}

async fn answer_503(mut stream: TcpStream, retry_after: &str) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {retry_after}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nbusy\n"
    );
    let _ = stream.write_all(resp.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[tokio::test]
async fn honours_retry_after() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut o = opts(format!("ws://{}/", listener.local_addr().unwrap()));
    o.backoff_min = Duration::from_millis(10);
    o.backoff_max = Duration::from_secs(5);
    let (shutdown, task, lines) = spawn_client(o);
    let (first, _) = timeout(BOUND, listener.accept()).await.unwrap().unwrap();
    answer_503(first, "1").await;
    let answered = Instant::now();
    let (second, _) = timeout(BOUND, listener.accept()).await.unwrap().unwrap();
    assert!(
        answered.elapsed() >= Duration::from_millis(950),
        "retried after {:?} despite Retry-After: 1",
        answered.elapsed()
    );
    drop(second);
    assert!(lines
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("HTTP 503") && l.contains("Retry-After 1000ms")));
    finish(shutdown, task).await;
}

#[tokio::test]
async fn caps_retry_after_at_backoff_max() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut o = opts(format!("ws://{}/", listener.local_addr().unwrap()));
    o.backoff_max = Duration::from_millis(100);
    let (shutdown, task, _) = spawn_client(o);
    let (first, _) = timeout(BOUND, listener.accept()).await.unwrap().unwrap();
    answer_503(first, "3600").await;
    // Without the cap this would take an hour.
    let _second = timeout(BOUND, listener.accept()).await.unwrap().unwrap();
    finish(shutdown, task).await;
}

#[tokio::test]
async fn connect_timeout_abandons_an_unanswered_attempt() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut o = opts(format!("ws://{}/", listener.local_addr().unwrap()));
    o.connect_timeout = Duration::from_millis(100);
    let (shutdown, task, lines) = spawn_client(o);
    // Accept and never answer.
    let _first = timeout(BOUND, listener.accept()).await.unwrap().unwrap();
    let _second = timeout(BOUND, listener.accept()).await.unwrap().unwrap();
    assert!(lines
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("no handshake answer within 100ms")));
    finish(shutdown, task).await;
}

#[tokio::test]
async fn stops_while_waiting_to_reconnect() {
    // Nothing listens: every attempt is refused; shutdown must still end the
    // long wait before the next attempt.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut o = opts(format!("ws://{addr}/"));
    o.backoff_min = Duration::from_secs(30);
    o.backoff_max = Duration::from_secs(60);
    let shutdown = CancellationToken::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let task = tokio::spawn(run_client(o, shutdown.clone(), move |line| {
        let _ = tx.send(line.to_owned());
    }));
    loop {
        let line = timeout(BOUND, rx.recv()).await.unwrap().unwrap();
        if line.contains("failed") && line.contains("retrying in") {
            break;
        }
    }
    assert_eq!(finish(shutdown, task).await, ClientExit::Shutdown);
}

#[tokio::test]
async fn bad_url_is_an_error() {
    let o = DemoClientOpts {
        url: Some("http://[::1".into()),
        ..Default::default()
    };
    let err = run_client(o, CancellationToken::new(), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::BadUrl { .. }), "{err}");
}

#[test]
fn cli_defaults_match_default_and_later_flags_win() {
    let parsed = DemoClientOpts::from_args(Vec::<String>::new()).unwrap();
    assert_eq!(parsed, DemoClientOpts::default());

    let parsed = DemoClientOpts::from_args([
        "--close-after",
        "3s",
        "ws://127.0.0.1:1/x",
        "--heartbeat",
        "400ms",
        "--heartbeat",
        "1.5s",
        "--no-backoff",
        "--heartbeat-kind",
        "ping",
    ])
    .unwrap();
    assert_eq!(parsed.close_after, Some(Duration::from_secs(3)));
    assert_eq!(parsed.heartbeat, Duration::from_millis(1500));
    assert_eq!(parsed.url.as_deref(), Some("ws://127.0.0.1:1/x"));
    assert!(parsed.no_backoff);
    assert_eq!(parsed.heartbeat_kind, HeartbeatKind::Ping);

    assert!(DemoClientOpts::from_args(["--heartbeat", "soon"]).is_err());
    assert!(DemoClientOpts::from_args(["--no-such-flag"]).is_err());
}

#[test]
fn backoff_grows_within_bounds_and_is_reproducible() {
    let min = Duration::from_millis(250);
    let max = Duration::from_secs(5);
    let mut a = Backoff::new(min, max, 7);
    let delays: Vec<Duration> = (0..10).map(|_| a.next_delay()).collect();
    for pair in delays.windows(2) {
        assert!(pair[0] <= pair[1], "delays shrink: {delays:?}");
    }
    assert!(delays.iter().all(|d| *d >= min && *d <= max), "{delays:?}");
    assert!(delays[0] < Duration::from_millis(375));
    assert_eq!(*delays.last().unwrap(), max);

    let mut b = Backoff::new(min, max, 7);
    let again: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
    assert_eq!(delays, again);

    let mut c = Backoff::new(min, max, 8);
    let other: Vec<Duration> = (0..4).map(|_| c.next_delay()).collect();
    assert_ne!(&delays[..4], &other[..], "the seed drives the jitter");

    b.reset();
    assert_eq!(b.failures(), 0);
    assert!(b.next_delay() < Duration::from_millis(375));
}

#[test]
fn first_retry_is_full_jitter_and_no_jitter_is_exact() {
    let min = Duration::from_millis(1000);
    let max = Duration::from_secs(8);
    // Full jitter: 200 clients (seed + index) spread their first retry over
    // [0, min), not at one instant.
    let mut firsts: Vec<Duration> = (0..200)
        .map(|i| Backoff::new(min, max, 5 + i).first_retry())
        .collect();
    assert!(firsts.iter().all(|d| *d < min), "{firsts:?}");
    firsts.sort();
    let spread = firsts[179] - firsts[20];
    assert!(
        spread > Duration::from_millis(600),
        "p10..p90 only {spread:?}"
    );
    assert_eq!(
        Backoff::new(min, max, 5).first_retry(),
        Backoff::new(min, max, 5).first_retry(),
        "seeded"
    );
    // The first retry counts no failure: the backoff still starts at min.
    let mut b = Backoff::new(min, max, 5);
    b.first_retry();
    assert_eq!(b.failures(), 0);
    assert!(b.next_delay() >= min);
    // --no-jitter: every client waits exactly the same.
    let mut n = Backoff::without_jitter(min, max);
    assert_eq!(n.first_retry(), min);
    let delays: Vec<Duration> = (0..5).map(|_| n.next_delay()).collect();
    assert_eq!(delays, [1, 2, 4, 8, 8].map(Duration::from_secs));
}
