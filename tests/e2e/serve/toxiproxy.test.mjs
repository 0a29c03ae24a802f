// flatline serve driven by the published Toxiproxy client for Node
// (toxiproxy-node-client), with a real WebSocket client through the proxy:
// each mapped toxic's behaviour on the wire.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Toxiproxy } from 'toxiproxy-node-client';
import { API, ECHO_ADDR, open, roundTrip, waitEvent } from './common.mjs';

const toxiproxy = new Toxiproxy(API);
let proxy;
let url;

before(async () => {
  await toxiproxy.reset();
  proxy = await toxiproxy.createProxy({ name: 'node-echo', listen: '127.0.0.1:0', upstream: ECHO_ADDR });
  url = `ws://${proxy.listen}/`;
});
after(async () => { await proxy.remove(); });

test('version and proxy shapes', async () => {
  const v = await toxiproxy.getVersion();
  assert.match(v, /version/);
  const p = await toxiproxy.get('node-echo');
  assert.equal(p.upstream, ECHO_ADDR);
  assert.equal(p.enabled, true);
});

test('latency: each echo takes at least the latency', async () => {
  const ws = await open(url);
  const base = await roundTrip(ws, 'warm');
  const toxic = await proxy.addToxic({ type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 250, jitter: 0 } });
  const slow = await roundTrip(ws, 'slow');
  await toxic.remove();
  const fast = await roundTrip(ws, 'fast');
  console.log(`latency: base ${base.toFixed(1)} ms, with 250 ms toxic ${slow.toFixed(1)} ms, after removal ${fast.toFixed(1)} ms`);
  assert.ok(slow >= 250, `${slow} ms`);
  assert.ok(fast < 250, `${fast} ms after removal`);
  ws.close();
});

test('bandwidth: 64 KB at 64 KB/s takes about a second', async () => {
  const ws = await open(url);
  const toxic = await proxy.addToxic({ type: 'bandwidth', stream: 'downstream', toxicity: 1, attributes: { rate: 64 } });
  const ms = await roundTrip(ws, 'b'.repeat(64000));
  await toxic.remove();
  console.log(`bandwidth: 64000 bytes at 64 KB/s in ${ms.toFixed(0)} ms`);
  assert.ok(ms >= 800, `${ms} ms`);
  ws.close();
});

test('timeout 0: data is held while the toxic exists, delivered after', async () => {
  const ws = await open(url);
  const toxic = await proxy.addToxic({ type: 'timeout', stream: 'upstream', toxicity: 1, attributes: { timeout: 0 } });
  ws.send('held');
  await waitEvent('proxy-node-echo', (e) => e.kind === 'held', 'the held event');
  assert.equal(ws.pending(), 0, 'nothing came back while held');
  await toxic.remove();
  assert.equal(await ws.next('the held message'), 'held');
  ws.close();
});

test('timeout 400: the connection is closed after the timeout', async () => {
  const ws = await open(url);
  const t0 = performance.now();
  const toxic = await proxy.addToxic({ type: 'timeout', stream: 'downstream', toxicity: 1, attributes: { timeout: 400 } });
  ws.send('lost');
  const end = await ws.ended;
  const ms = performance.now() - t0;
  await toxic.remove();
  console.log(`timeout 400: closed after ${ms.toFixed(0)} ms (code ${end.code})`);
  assert.ok(ms >= 400, `${ms} ms`);
  assert.equal(ws.pending(), 0);
});

test('reset_peer: the connection is reset', async () => {
  const ws = await open(url);
  const toxic = await proxy.addToxic({ type: 'reset_peer', stream: 'upstream', toxicity: 1, attributes: { timeout: 0 } });
  ws.send('boom');
  const end = await ws.ended;
  await toxic.remove();
  assert.equal(end.code, 1006);
  assert.equal(end.error?.code, 'ECONNRESET', `error ${end.error}`);
  await waitEvent('proxy-node-echo', (e) => e.kind === 'injected' && e.what === 'rst' && e.to === 'client' && e.fault === 'reset_peer_upstream', 'the injected RST');
});

test('limit_data: the connection is cut after N bytes', async () => {
  const toxic = await proxy.addToxic({ type: 'limit_data', stream: 'downstream', toxicity: 1, attributes: { bytes: 600 } });
  const ws = await open(url);
  ws.send('x'.repeat(1000));
  const end = await ws.ended;
  await toxic.remove();
  assert.equal(end.code, 1006, 'no closing handshake: cut');
  assert.equal(ws.pending(), 0, 'the 1000-byte echo did not fit in 600 bytes');
});

test('extra type: drop removes matching WebSocket frames only', async () => {
  const ws = await open(url);
  const toxic = await proxy.addToxic({ type: 'drop', stream: 'upstream', toxicity: 1, attributes: { match: { text: 'secret' } } });
  ws.send('secret');
  ws.send('visible');
  assert.equal(await ws.next('the echo'), 'visible');
  await toxic.remove();
  ws.close();
});

test('bad input: unknown toxic type is a 400 with a hint', async () => {
  const res = await fetch(`${API}/proxies/node-echo/toxics`, { method: 'POST', body: JSON.stringify({ type: 'latncy' }) });
  assert.equal(res.status, 400);
  const body = await res.json();
  assert.equal(body.field, 'type');
  assert.match(body.hint, /latency/);
});
