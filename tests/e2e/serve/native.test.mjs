// flatline serve's native API from a Node test: a session per test, a
// partition cut mid-test, and verdicts asked through `expect` (the careful
// `ws` client of this suite, clients/node_ws.mjs, runs as the client under
// test: 1 s pings, 3 s deadline). Parallel sessions see nothing of each other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { API, ECHO_URL, api } from './common.mjs';

const CLIENT = fileURLToPath(new URL('../clients/node_ws.mjs', import.meta.url));

async function session() {
  const r = await api('POST', '/sessions', { upstream: `${ECHO_URL}/feed` });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}

function startClient(url) {
  const child = spawn(process.execPath, [CLIENT], { env: { ...process.env, FLATLINE_URL: url }, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  return { child, log: () => log };
}

async function stopClient(c) {
  const done = new Promise((r) => c.child.once('exit', r));
  c.child.kill('SIGTERM');
  await done;
}

// A verdict, waiting until it is decided.
async function verdict(id, expectation) {
  const r = await api('POST', `/sessions/${id}/expect`, { ...expectation, wait: true, timeout: '30s' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

test('a partition mid-test: the client notices within its timeout and reconnects after the heal', async () => {
  const s = await session();
  const client = startClient(s.url);
  try {
    const subscribed = await verdict(s.id, { kind: 'sends', from: 'client', match: { text: 'subscribe' }, after: 'open#1', within: '10s' });
    assert.equal(subscribed.passed, true, subscribed.detail);

    const f = await api('POST', `/sessions/${s.id}/faults`, { name: 'outage', kind: 'partition' });
    assert.equal(f.status, 201, JSON.stringify(f.body));
    const noticed = await verdict(s.id, { name: 'notices', kind: 'detects', after: 'outage', within: '5s' });
    console.log(`detects: ${noticed.detail}`);
    assert.equal(noticed.passed, true, noticed.detail);

    const healed = await api('DELETE', `/sessions/${s.id}/faults/outage`);
    assert.equal(healed.status, 204);
    const back = await verdict(s.id, { kind: 'reconnects', after: 'outage.end', within: '10s' });
    console.log(`reconnects: ${back.detail}`);
    assert.equal(back.passed, true, back.detail);
    const resub = await verdict(s.id, { kind: 'sends', from: 'client', match: { text: 'subscribe' }, after: 'outage.end', within: '10s' });
    assert.equal(resub.passed, true, resub.detail);

    const report = await api('GET', `/sessions/${s.id}/report`);
    assert.equal(report.body.expectations.length, 4);
  } finally {
    await stopClient(client);
    assert.equal((await api('DELETE', `/sessions/${s.id}`)).status, 204);
  }
});

test('parallel sessions: a partition in one is invisible to the others', async () => {
  const sessions = await Promise.all([session(), session(), session()]);
  const clients = sessions.map((s) => startClient(s.url));
  try {
    await Promise.all(sessions.map(async (s) => {
      const v = await verdict(s.id, { kind: 'sends', from: 'client', match: { text: 'subscribe' }, after: 'open#1', within: '10s' });
      assert.equal(v.passed, true, v.detail);
    }));
    const [cut, ...calm] = sessions;
    assert.equal((await api('POST', `/sessions/${cut.id}/faults`, { name: 'outage', kind: 'partition', duration: '4s' })).status, 201);
    const results = await Promise.all([
      verdict(cut.id, { kind: 'detects', after: 'outage', within: '5s' }),
      ...calm.map((s) => verdict(s.id, { kind: 'stays_connected', after: 'open#1', for: '6s' })),
    ]);
    for (const v of results) assert.equal(v.passed, true, v.detail);
    for (const s of calm) {
      const ev = await fetch(`${API}/sessions/${s.id}/events`).then((r) => r.text());
      assert.ok(!ev.includes('fault_start'), `session ${s.id} saw a fault: ${ev}`);
      assert.equal(ev.split('\n').filter((l) => l.includes('"kind":"accept"')).length, 1, `session ${s.id} saw another session's connections`);
    }
  } finally {
    await Promise.all(clients.map(stopClient));
    await Promise.all(sessions.map((s) => api('DELETE', `/sessions/${s.id}`)));
  }
});
