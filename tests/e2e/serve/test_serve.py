"""flatline serve from pytest: Toxiproxy's Python client (toxiproxy-python,
pinned) with a real WebSocket client through the proxy, and the native API
with this suite's careful Python client (clients/python_client.py good:
1 s pings, 2 s pong timeout) cut by a partition mid-test.

Env: FLATLINE_SERVE (default http://127.0.0.1:8474), ECHO_URL (the echo
upstream, ws://127.0.0.1:PORT).
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
from toxiproxy import Toxiproxy
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

API = os.environ.get("FLATLINE_SERVE", "http://127.0.0.1:8474")
ECHO_URL = os.environ.get("ECHO_URL", "ws://127.0.0.1:9001")
ECHO_ADDR = urlparse(ECHO_URL).netloc
CLIENT = Path(__file__).resolve().parent.parent / "clients" / "python_client.py"
T = 15


def api(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(API + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read().decode()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode() or "null")


@pytest.fixture(scope="module")
def proxy():
    u = urlparse(API)
    server = Toxiproxy()
    server.update_api_consumer(u.hostname, u.port)
    server.reset()
    p = server.create(name="py-echo", upstream=ECHO_ADDR, listen="127.0.0.1:0")
    yield p
    p.destroy()


def ws(p):
    return connect(f"ws://{p.listen}/", open_timeout=T, close_timeout=1)


def round_trip(c, text):
    t0 = time.monotonic()
    c.send(text)
    while c.recv(timeout=T) != text:
        pass
    return time.monotonic() - t0


def test_latency_is_measured(proxy):
    with ws(proxy) as c:
        round_trip(c, "warm")
        proxy.add_toxic(type="latency", attributes={"latency": 200, "jitter": 0})
        slow = round_trip(c, "slow")
        proxy.destroy_toxic("latency_downstream")
        fast = round_trip(c, "fast")
    print(f"latency: {slow * 1000:.1f} ms with a 200 ms toxic, {fast * 1000:.1f} ms after")
    assert slow >= 0.2
    assert fast < 0.2


def test_bandwidth_caps(proxy):
    with ws(proxy) as c:
        proxy.add_toxic(type="bandwidth", attributes={"rate": 50})
        took = round_trip(c, "b" * 50000)
        proxy.destroy_toxic("bandwidth_downstream")
    print(f"bandwidth: 50000 bytes at 50 KB/s in {took:.2f} s")
    assert took >= 0.8


def test_timeout_holds_until_removed(proxy):
    with ws(proxy) as c:
        proxy.add_toxic(type="timeout", stream="upstream", attributes={"timeout": 0})
        c.send("held")
        with pytest.raises(TimeoutError):
            c.recv(timeout=0.5)
        proxy.destroy_toxic("timeout_upstream")
        assert c.recv(timeout=T) == "held"


def test_reset_peer_resets(proxy):
    with ws(proxy) as c:
        proxy.add_toxic(type="reset_peer", stream="upstream", attributes={"timeout": 0})
        c.send("boom")
        with pytest.raises(ConnectionClosed) as closed:
            c.recv(timeout=T)
        proxy.destroy_toxic("reset_peer_upstream")
    assert isinstance(closed.value.__cause__, ConnectionResetError), repr(closed.value.__cause__)


def test_limit_data_cuts(proxy):
    proxy.add_toxic(type="limit_data", attributes={"bytes": 600})
    try:
        with ws(proxy) as c:
            c.send("x" * 1000)
            with pytest.raises(ConnectionClosed) as closed:
                c.recv(timeout=T)
            assert closed.value.rcvd is None, "cut: no close frame"
    finally:
        proxy.destroy_toxic("limit_data_downstream")


def verdict(sid, expectation):
    status, v = api("POST", f"/sessions/{sid}/expect", {**expectation, "wait": True, "timeout": "30s"})
    assert status == 200, v
    return v


def test_native_partition_mid_test():
    status, s = api("POST", "/sessions", {"upstream": f"{ECHO_URL}/feed"})
    assert status == 201, s
    env = {**os.environ, "FLATLINE_URL": s["url"]}
    client = subprocess.Popen([sys.executable, str(CLIENT), "good"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        v = verdict(s["id"], {"kind": "sends", "from": "client", "match": {"text": "subscribe"},
                              "after": "open#1", "within": "10s"})
        assert v["passed"], v["detail"]
        status, f = api("POST", f"/sessions/{s['id']}/faults", {"name": "outage", "kind": "partition"})
        assert status == 201, f
        v = verdict(s["id"], {"kind": "detects", "after": "outage", "within": "5s"})
        print("detects:", v["detail"])
        assert v["passed"], v["detail"]
        assert api("DELETE", f"/sessions/{s['id']}/faults/outage")[0] == 204
        v = verdict(s["id"], {"kind": "reconnects", "after": "outage.end", "within": "10s"})
        print("reconnects:", v["detail"])
        assert v["passed"], v["detail"]
    finally:
        client.send_signal(signal.SIGTERM)
        client.wait(timeout=T)
        api("DELETE", f"/sessions/{s['id']}")
