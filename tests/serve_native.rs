//! `flatline serve`, native API, on real sockets: sessions, faults now,
//! verdicts on demand, events, reports, bad input, isolation and shutdown.

mod serve_common;

use futures_util::StreamExt;
use serde_json::{json, Value};
use serve_common::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

async fn session(api: std::net::SocketAddr, upstream: &str) -> (String, String) {
    let a = http(
        api,
        "POST",
        "/sessions",
        &json!({"upstream": upstream}).to_string(),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let v = a.json();
    (
        v["id"].as_str().unwrap().to_string(),
        v["url"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_now_then_verdicts_on_demand() {
    let srv = server().await;
    let api = srv.addr();
    let (up, demo) = echo().await;
    let (id, url) = session(api, &format!("ws://{up}/feed")).await;
    assert!(
        url.starts_with("ws://127.0.0.1:") && url.ends_with("/feed"),
        "{url}"
    );
    let mut c = ws(&url).await;
    echo_text(&mut c, "hello").await;

    let a = http(
        api,
        "POST",
        &format!("/sessions/{id}/faults"),
        r#"{"name": "outage", "kind": "partition"}"#,
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.json()["name"], "outage");
    assert_eq!(a.json()["state"], "active");
    let faults = http(api, "GET", &format!("/sessions/{id}/faults"), "")
        .await
        .json();
    assert_eq!(faults[0]["name"], "outage");
    assert_eq!(faults[0]["kind"], "partition");

    // Undecided while the client has not given up.
    let exp = json!({"name": "notices", "kind": "detects", "after": "outage", "within": "10s"});
    let v = http(
        api,
        "POST",
        &format!("/sessions/{id}/expect"),
        &exp.to_string(),
    )
    .await
    .json();
    assert_eq!(v["passed"], Value::Null, "{v}");
    assert_eq!(v["name"], "notices");

    // The client gives up (its close is seen although the partition holds it).
    drop(c);
    let mut w = exp.clone();
    w["wait"] = json!(true);
    let v = http(
        api,
        "POST",
        &format!("/sessions/{id}/expect"),
        &w.to_string(),
    )
    .await
    .json();
    assert_eq!(v["passed"], true, "{v}");
    assert!(v["observed_ms"].as_f64().is_some(), "{v}");

    // Heal, reconnect, and judge the reconnect.
    let a = http(api, "DELETE", &format!("/sessions/{id}/faults/outage"), "").await;
    assert_eq!(a.status, 204, "{}", a.body);
    let a = http(api, "DELETE", &format!("/sessions/{id}/faults/outage"), "").await;
    assert_eq!(a.status, 404, "{}", a.body);
    let mut c = ws(&url).await;
    echo_text(&mut c, "again").await;
    let v = http(
        api,
        "POST",
        &format!("/sessions/{id}/expect"),
        r#"{"kind": "reconnects", "after": "outage.end", "within": "10s", "wait": true}"#,
    )
    .await
    .json();
    assert_eq!(v["passed"], true, "{v}");
    assert_eq!(v["name"], "reconnects-2");

    // What happened.
    let ev = http(api, "GET", &format!("/sessions/{id}/events"), "").await;
    let lines: Vec<Value> = ev
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines
        .iter()
        .any(|e| e["kind"] == "fault_start" && e["fault"] == "outage"));
    let n = lines.len();
    let later = http(
        api,
        "GET",
        &format!("/sessions/{id}/events?since={}", n - 1),
        "",
    )
    .await;
    assert_eq!(later.body.lines().count(), 1, "{}", later.body);
    let report = http(api, "GET", &format!("/sessions/{id}/report"), "")
        .await
        .json();
    assert_eq!(
        report["expectations"].as_array().unwrap().len(),
        2,
        "{report}"
    );
    let junit = http(api, "GET", &format!("/sessions/{id}/report.xml"), "").await;
    assert!(
        junit.body.contains("<testcase") && junit.body.contains("notices"),
        "{}",
        junit.body
    );
    let t = http(api, "GET", &format!("/sessions/{id}/transcript"), "").await;
    assert!(t.body.contains("outage"), "{}", t.body);
    let html = http(api, "GET", &format!("/sessions/{id}/report.html"), "").await;
    assert!(html.body.starts_with("<!DOCTYPE html>") || html.body.contains("<html"));

    drop(c);
    let a = http(api, "DELETE", &format!("/sessions/{id}?close=rst"), "").await;
    assert_eq!(a.status, 204);
    assert_eq!(
        http(api, "GET", &format!("/sessions/{id}"), "")
            .await
            .status,
        404
    );
    let relay = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(
        tokio::net::TcpStream::connect(relay).await.is_err(),
        "the relay still listens"
    );
    srv.stop().await;
    demo.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx_naming_the_field() {
    let srv = server().await;
    let api = srv.addr();
    let (up, demo) = echo().await;
    let (id, _) = session(api, &format!("ws://{up}/feed")).await;
    let faults = format!("/sessions/{id}/faults");

    let a = http(api, "POST", &faults, r#"{"kind": "partition""#).await;
    assert_eq!(a.status, 400);
    assert!(
        a.json()["error"]
            .as_str()
            .unwrap()
            .contains("malformed JSON at line 1"),
        "{}",
        a.body
    );

    let a = http(api, "POST", &faults, r#"{"kind": "partiton"}"#).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["field"], "kind", "{}", a.body);
    assert!(
        a.json()["hint"]
            .as_str()
            .unwrap()
            .contains("did you mean `partition`"),
        "{}",
        a.body
    );

    let a = http(
        api,
        "POST",
        &faults,
        r#"{"kind": "delay", "latency": "soon"}"#,
    )
    .await;
    assert_eq!(
        (a.status, a.json()["field"].clone()),
        (400, json!("latency")),
        "{}",
        a.body
    );

    let a = http(
        api,
        "POST",
        &faults,
        r#"{"name": "x", "kind": "partition"}"#,
    )
    .await;
    assert_eq!(a.status, 201);
    let a = http(
        api,
        "POST",
        &faults,
        r#"{"name": "x", "kind": "delay", "latency": "1s"}"#,
    )
    .await;
    assert_eq!(a.status, 409, "{}", a.body);

    let a = http(
        api,
        "POST",
        "/sessions/nope/faults",
        r#"{"kind": "partition"}"#,
    )
    .await;
    assert_eq!(a.status, 404);
    assert!(a.json()["error"].as_str().unwrap().contains("nope"));

    let a = http(
        api,
        "POST",
        "/sessions",
        r#"{"upstrem": "ws://127.0.0.1:1/"}"#,
    )
    .await;
    assert_eq!(
        (a.status, a.json()["field"].clone()),
        (400, json!("upstrem")),
        "{}",
        a.body
    );
    assert!(a.json()["hint"].as_str().unwrap().contains("`upstream`"));
    let a = http(api, "POST", "/sessions", r#"{"upstream": "ftp://x:1/"}"#).await;
    assert_eq!(
        (a.status, a.json()["field"].clone()),
        (400, json!("upstream")),
        "{}",
        a.body
    );
    let a = http(
        api,
        "POST",
        "/sessions",
        r#"{"upstream": "ws://127.0.0.1:1/", "listen": "10.1.2.3:0"}"#,
    )
    .await;
    assert_eq!(
        (a.status, a.json()["field"].clone()),
        (400, json!("listen")),
        "{}",
        a.body
    );
    let a = http(
        api,
        "POST",
        "/sessions",
        r#"{"upstream": "ws://127.0.0.1:1/", "scenario": "name: x\nduration: [1]"}"#,
    )
    .await;
    assert_eq!(
        (a.status, a.json()["field"].clone()),
        (400, json!("scenario")),
        "{}",
        a.body
    );

    let big = format!(
        r#"{{"kind": "partition", "name": "{}"}}"#,
        "x".repeat(2 << 20)
    );
    let a = http(api, "POST", &faults, &big).await;
    assert_eq!(a.status, 413, "{}", a.body);

    let a = http(
        api,
        "POST",
        &format!("/sessions/{id}/expect"),
        r#"{"kind": "detects", "after": "nothing", "within": "1s"}"#,
    )
    .await;
    assert_eq!(
        (a.status, a.json()["field"].clone()),
        (400, json!("after")),
        "{}",
        a.body
    );

    // The session still works.
    let a = http(api, "GET", &format!("/sessions/{id}"), "").await;
    assert_eq!(a.status, 200, "{}", a.body);
    srv.stop().await;
    demo.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_sessions_do_not_see_each_other() {
    let srv = server().await;
    let api = srv.addr();
    let (up, demo) = echo().await;
    let upstream = format!("ws://{up}/feed");
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let (id, url) = session(api, &upstream).await;
                let mut c = ws(&url).await;
                echo_text(&mut c, &format!("hello {i}")).await;
                let body = json!({"name": format!("f{i}"), "kind": "delay", "latency": "1ms"});
                let a = http(
                    api,
                    "POST",
                    &format!("/sessions/{id}/faults"),
                    &body.to_string(),
                )
                .await;
                assert_eq!(a.status, 201, "{}", a.body);
                echo_text(&mut c, &format!("bye {i}")).await;
                (id, i)
            })
        })
        .collect();
    for t in tasks {
        let (id, i) = t.await.unwrap();
        let ev = http(api, "GET", &format!("/sessions/{id}/events"), "").await;
        let lines: Vec<Value> = ev
            .body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let accepts = lines.iter().filter(|e| e["kind"] == "accept").count();
        assert_eq!(accepts, 1, "session {id}: {}", ev.body);
        let faults: Vec<&Value> = lines
            .iter()
            .filter(|e| e["kind"] == "fault_start")
            .collect();
        assert_eq!(faults.len(), 1);
        assert_eq!(faults[0]["fault"], format!("f{i}"));
        let texts: Vec<&str> = lines
            .iter()
            .filter_map(|e| e["preview"].as_str())
            .filter(|p| p.starts_with("hello") || p.starts_with("bye"))
            .collect();
        assert!(!texts.is_empty(), "session {id}: no frames seen");
        for t in texts {
            assert!(
                t == format!("hello {i}") || t == format!("bye {i}"),
                "session {id} (client {i}) saw `{t}`"
            );
        }
    }
    let all = http(api, "GET", "/sessions", "").await.json();
    assert_eq!(all.as_array().unwrap().len(), 50);
    srv.stop().await;
    demo.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_streams_events_and_shutdown_leaves_no_listener() {
    let srv = server().await;
    let api = srv.addr();
    let (up, demo) = echo().await;
    let (id, url) = session(api, &format!("ws://{up}/feed")).await;

    let mut s = tokio::net::TcpStream::connect(api).await.unwrap();
    s.write_all(
        format!("GET /sessions/{id}/events?follow=true HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut lines = BufReader::new(s).lines();
    let mut c = ws(&url).await;
    echo_text(&mut c, "streamed").await;
    let seen = tokio::time::timeout(T, async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if l.contains("\"open\"") {
                return true;
            }
        }
        false
    })
    .await
    .expect("an open event streamed in time");
    assert!(seen);

    let relay = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    srv.stop().await;
    // The follower's answer ended, the client saw its connection end, and
    // nothing listens any more.
    let ended = tokio::time::timeout(T, async {
        while lines.next_line().await.ok().flatten().is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the follow stream did not end");
    let closed = tokio::time::timeout(T, async { while let Some(Ok(_)) = c.next().await {} }).await;
    assert!(closed.is_ok(), "the relayed connection was not closed");
    assert!(tokio::net::TcpStream::connect(relay).await.is_err());
    assert!(tokio::net::TcpStream::connect(api).await.is_err());
    demo.stop().await.unwrap();
}
