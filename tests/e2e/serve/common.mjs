// Shared helpers of the `flatline serve` end-to-end tests (Node).
// FLATLINE_SERVE: the API (default http://127.0.0.1:8474); ECHO_URL: the
// upstream echo server (tools/echo_server.mjs), ws://127.0.0.1:PORT.
import WebSocket from 'ws';

export const API = process.env.FLATLINE_SERVE || 'http://127.0.0.1:8474';
export const ECHO_URL = process.env.ECHO_URL || 'ws://127.0.0.1:9001';
export const ECHO_ADDR = ECHO_URL.replace(/^ws:\/\//, '').replace(/\/.*$/, '');
export const T = 15000;

export function withTimeout(p, ms, what) {
  let timer;
  const guard = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms); });
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}

// A WebSocket that queues what it receives, so tests can await the next message.
export async function open(url) {
  const ws = new WebSocket(url);
  const inbox = [];
  const waiters = [];
  ws.on('message', (data) => {
    const m = data.toString();
    const w = waiters.shift();
    if (w) w(m); else inbox.push(m);
  });
  // `ws` swallows socket errors (an RST only shows as close code 1006):
  // the TCP socket's own error says how the connection ended.
  let error = null;
  ws.on('error', (e) => { error = error || e; });
  ws.ended = new Promise((resolve) => { ws.on('close', (code) => resolve({ code, error })); });
  ws.next = (what = 'a message') => withTimeout(
    inbox.length ? Promise.resolve(inbox.shift()) : new Promise((r) => waiters.push(r)), T, what);
  ws.pending = () => inbox.length;
  await withTimeout(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), T, `open ${url}`);
  ws._socket.on('error', (e) => { error = error || e; });
  return ws;
}

// Send `text` and time until its echo comes back (ms).
export async function roundTrip(ws, text) {
  const t0 = performance.now();
  ws.send(text);
  for (;;) {
    const m = await ws.next(`echo of ${text.slice(0, 20)}`);
    if (m === text) return performance.now() - t0;
  }
}

// The native API, JSON in and out.
export async function api(method, path, body) {
  const init = { method };
  if (body !== undefined) { init.body = JSON.stringify(body); init.headers = { 'Content-Type': 'application/json' }; }
  const res = await fetch(API + path, init);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

// Follow a session's events until one satisfies `pred`.
export async function waitEvent(session, pred, what) {
  const ctl = new AbortController();
  const run = (async () => {
    const res = await fetch(`${API}/sessions/${session}/events?follow=true`, { signal: ctl.signal });
    const dec = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body) {
      buf += dec.decode(chunk, { stream: true });
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const e = JSON.parse(line);
        if (pred(e)) return e;
      }
    }
    throw new Error(`event stream of ${session} ended before ${what}`);
  })();
  try { return await withTimeout(run, T, what); } finally { ctl.abort(); }
}
