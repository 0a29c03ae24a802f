//! `flatline serve`, Toxiproxy's API, on real sockets: shapes and status
//! codes, and each mapped toxic's effect on a WebSocket through the proxy.

mod serve_common;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use serve_common::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

async fn proxy(api: SocketAddr, name: &str, up: SocketAddr) -> String {
    let body = json!({"name": name, "listen": "127.0.0.1:0", "upstream": up.to_string()});
    let a = http(api, "POST", "/proxies", &body.to_string()).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let v = a.json();
    assert_eq!(v["enabled"], true);
    assert_eq!(v["toxics"], json!([]));
    v["listen"].as_str().unwrap().to_string()
}

async fn toxic(api: SocketAddr, proxy: &str, body: Value) -> Value {
    let a = http(
        api,
        "POST",
        &format!("/proxies/{proxy}/toxics"),
        &body.to_string(),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()
}

/// Wait for the connection to end; whether it ended with an error (RST).
async fn ends(c: &mut Ws) -> Result<(), String> {
    let fut = async {
        loop {
            match c.next().await {
                None => return Ok(()),
                Some(Ok(Message::Close(_))) => {}
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
            }
        }
    };
    tokio::time::timeout(T, fut)
        .await
        .expect("the connection ended in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_shapes_and_status_codes() {
    let srv = server().await;
    let api = srv.addr();
    let (up, demo) = echo().await;
    let v = http(api, "GET", "/version", "").await.json();
    assert!(v["version"].is_string());

    let listen = proxy(api, "redis", up).await;
    assert!(
        listen.starts_with("127.0.0.1:") && !listen.ends_with(":0"),
        "{listen}"
    );
    let body = json!({"name": "redis", "upstream": up.to_string()}).to_string();
    assert_eq!(http(api, "POST", "/proxies", &body).await.status, 409);
    let a = http(api, "POST", "/proxies", r#"{"name": "x"}"#).await;
    assert_eq!(a.status, 400);
    assert!(
        a.json()["error"].as_str().unwrap().contains("upstream"),
        "{}",
        a.body
    );
    assert_eq!(http(api, "GET", "/proxies/nope", "").await.status, 404);

    let t = toxic(
        api,
        "redis",
        json!({"type": "latency", "attributes": {"latency": 10}}),
    )
    .await;
    assert_eq!(
        t,
        json!({"name": "latency_downstream", "type": "latency", "stream": "downstream",
               "toxicity": 1.0, "attributes": {"latency": 10, "jitter": 0}})
    );
    let a = http(
        api,
        "POST",
        "/proxies/redis/toxics",
        r#"{"type": "latency"}"#,
    )
    .await;
    assert_eq!(a.status, 409);
    let a = http(
        api,
        "POST",
        "/proxies/redis/toxics",
        r#"{"type": "latncy"}"#,
    )
    .await;
    assert_eq!(a.status, 400);
    assert!(
        a.json()["hint"].as_str().unwrap().contains("latency"),
        "{}",
        a.body
    );
    let a = http(
        api,
        "POST",
        "/proxies/redis/toxics/latency_downstream",
        r#"{"attributes": {"jitter": 5}}"#,
    )
    .await;
    assert_eq!(
        a.json()["attributes"],
        json!({"latency": 10, "jitter": 5}),
        "{}",
        a.body
    );
    assert_eq!(
        http(api, "GET", "/proxies/redis/toxics/latency_downstream", "")
            .await
            .json()["attributes"]["jitter"],
        5
    );
    assert_eq!(
        http(api, "GET", "/proxies/redis/toxics/nope", "")
            .await
            .status,
        404
    );
    let all = http(api, "GET", "/proxies", "").await.json();
    assert_eq!(all["redis"]["toxics"].as_array().unwrap().len(), 1, "{all}");

    // Disable: nothing listens; enable: the same address again.
    let a = http(api, "POST", "/proxies/redis", r#"{"enabled": false}"#).await;
    assert_eq!(a.json()["enabled"], false, "{}", a.body);
    assert!(tokio::net::TcpStream::connect(&listen).await.is_err());
    let a = http(api, "PATCH", "/proxies/redis", r#"{"enabled": true}"#).await;
    assert_eq!(a.json()["listen"], listen.as_str(), "{}", a.body);
    let mut c = ws(&format!("ws://{listen}/feed")).await;
    echo_text(&mut c, "back").await;

    // Reset: toxics gone, everything enabled.
    assert_eq!(http(api, "POST", "/reset", "").await.status, 204);
    assert_eq!(
        http(api, "GET", "/proxies/redis/toxics", "").await.json(),
        json!([])
    );

    let pop = json!([{"name": "redis", "listen": listen, "upstream": up.to_string()},
                     {"name": "pg", "listen": "127.0.0.1:0", "upstream": up.to_string()}]);
    let a = http(api, "POST", "/populate", &pop.to_string()).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.json()["proxies"].as_array().unwrap().len(), 2);

    assert_eq!(http(api, "DELETE", "/proxies/pg", "").await.status, 204);
    assert_eq!(http(api, "DELETE", "/proxies/pg", "").await.status, 404);
    srv.stop().await;
    demo.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_and_bandwidth_on_the_wire() {
    let srv = server().await;
    let api = srv.addr();
    let (up, demo) = echo().await;
    let listen = proxy(api, "p", up).await;
    let mut c = ws(&format!("ws://{listen}/feed")).await;
    echo_text(&mut c, "warm").await;

    toxic(
        api,
        "p",
        json!({"type": "latency", "attributes": {"latency": 300}}),
    )
    .await;
    let t0 = Instant::now();
    echo_text(&mut c, "slow").await;
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(
        http(api, "DELETE", "/proxies/p/toxics/latency_downstream", "")
            .await
            .status,
        204
    );

    // 100 KB/s downstream: a 60 KB echo takes at least ~0.5 s.
    toxic(
        api,
        "p",
        json!({"type": "bandwidth", "attributes": {"rate": 100}}),
    )
    .await;
    let big = "x".repeat(60_000);
    let t0 = Instant::now();
    c.send(Message::Text(big.clone())).await.unwrap();
    let got = tokio::time::timeout(T, async {
        loop {
            if let Message::Text(t) = c.next().await.unwrap().unwrap() {
                if t.len() == big.len() {
                    return;
                }
            }
        }
    })
    .await;
    assert!(got.is_ok());
    assert!(
        t0.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
    srv.stop().await;
    demo.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_holds_reset_peer_resets_limit_data_cuts() {
    let srv = server().await;
    let api = srv.addr();
    let (up, demo) = echo().await;
    let listen = proxy(api, "p", up).await;
    let url = format!("ws://{listen}/feed");

    // timeout 0: data is held (not delivered, not dropped) until removed.
    let mut c = ws(&url).await;
    toxic(
        api,
        "p",
        json!({"type": "timeout", "stream": "upstream", "attributes": {"timeout": 0}}),
    )
    .await;
    c.send(Message::Text("held".into())).await.unwrap();
    wait_event(api, "proxy-p", |e| e["kind"] == "held").await;
    assert_eq!(
        http(api, "DELETE", "/proxies/p/toxics/timeout_upstream", "")
            .await
            .status,
        204
    );
    let fut = async {
        loop {
            if let Message::Text(t) = c.next().await.unwrap().unwrap() {
                if t.contains("held") {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(T, fut)
        .await
        .expect("delivered after the heal");

    // reset_peer: the connection is reset.
    toxic(
        api,
        "p",
        json!({"type": "reset_peer", "stream": "upstream"}),
    )
    .await;
    c.send(Message::Text("boom".into())).await.unwrap();
    let r = ends(&mut c).await;
    let err = r.expect_err("expected a reset, the connection ended cleanly");
    assert!(err.to_lowercase().contains("reset by peer"), "{err}");
    let rst = wait_event(api, "proxy-p", |e| {
        e["kind"] == "injected" && e["what"] == "rst"
    })
    .await;
    assert_eq!(rst["fault"], "reset_peer_upstream", "{rst}");
    assert_eq!(
        http(api, "DELETE", "/proxies/p/toxics/reset_peer_upstream", "")
            .await
            .status,
        204
    );

    // limit_data: the connection ends after N bytes downstream.
    toxic(
        api,
        "p",
        json!({"type": "limit_data", "attributes": {"bytes": 1000}}),
    )
    .await;
    let mut c = ws(&url).await;
    c.send(Message::Text("y".repeat(2000))).await.unwrap();
    let _ = ends(&mut c).await;
    let cut = wait_event(api, "proxy-p", |e| {
        e["kind"] == "injected" && e["what"] == "fin"
    })
    .await;
    assert_eq!(cut["fault"], "limit_data_downstream", "{cut}");
    srv.stop().await;
    demo.stop().await.unwrap();
}

/// A raw TCP echo server (not WebSocket at all).
async fn tcp_echo() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_is_not_websocket_is_relayed_as_raw_tcp() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = server().await;
    let api = srv.addr();
    let up = tcp_echo().await;
    let listen = proxy(api, "redis", up).await;
    toxic(
        api,
        "redis",
        json!({"type": "latency", "attributes": {"latency": 200}}),
    )
    .await;
    let mut c = tokio::net::TcpStream::connect(&listen).await.unwrap();
    let t0 = Instant::now();
    c.write_all(b"*1\r\n$4\r\nPING\r\n").await.unwrap();
    let mut got = vec![0u8; 14];
    tokio::time::timeout(T, c.read_exact(&mut got))
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(&got, b"*1\r\n$4\r\nPING\r\n");
    assert!(
        t0.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t0.elapsed()
    );
    let note = wait_event(api, "proxy-redis", |e| e["kind"] == "note").await;
    assert!(note["text"].as_str().unwrap().contains("raw TCP"), "{note}");
    assert_eq!(note["conn"], 1);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_close_delays_the_fin_not_the_data() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = server().await;
    let api = srv.addr();
    // A server that answers one line and closes.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut b = [0u8; 5];
            if s.read_exact(&mut b).await.is_ok() {
                let _ = s.write_all(b"bye\n").await;
                let _ = s.shutdown().await;
            }
        }
    });
    let listen = proxy(api, "pg", up).await;
    toxic(
        api,
        "pg",
        json!({"type": "slow_close", "attributes": {"delay": 300}}),
    )
    .await;
    let mut c = tokio::net::TcpStream::connect(&listen).await.unwrap();
    c.write_all(b"hello").await.unwrap();
    let mut line = [0u8; 4];
    tokio::time::timeout(T, c.read_exact(&mut line))
        .await
        .expect("data in time")
        .unwrap();
    let t0 = Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(T, c.read_to_end(&mut rest))
        .await
        .expect("FIN in time")
        .unwrap();
    assert!(rest.is_empty());
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "FIN after {:?}",
        t0.elapsed()
    );
    srv.stop().await;
}
