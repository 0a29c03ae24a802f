// Client self-test without flatline: runs each client against a local
// stand-in server, freezes the server with SIGSTOP (a dead peer that sends
// nothing and closes nothing, like a silent drop), and checks from the
// client's decision log that a careful client notices and reconnects after
// SIGCONT, and that a careless one does not notice.
//
// With --restart instead: the server is killed, stays down 4 s, and is
// started again; every client with reconnection must come back.
//
// Usage: node tools/selftest.mjs [--restart] [NAME-SUBSTRING]
// Prints one line per client and `N passed, M failed`; exits 1 on a failure.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const py = join(root, '.venv/bin/python');
const CASES = [
  { name: 'browser-good', cmd: ['node', 'clients/browser.mjs', 'good'], server: 'echo', careful: true,
    open: / open attempt=/, detect: / heartbeat-timeout /, openTimeoutMs: 15000 },
  { name: 'browser-bad', cmd: ['node', 'clients/browser.mjs', 'bad'], server: 'echo', careful: false,
    open: / open attempt=/, detect: / close attempt=| heartbeat-timeout /, openTimeoutMs: 15000 },
  { name: 'python-good', cmd: [py, 'clients/python_client.py', 'good'], server: 'echo', careful: true,
    open: / open opens=/, detect: /keepalive ping timeout|> CLOSE 1011/ },
  { name: 'python-bad', cmd: [py, 'clients/python_client.py', 'bad'], server: 'echo', careful: false,
    open: / open opens=/, detect: / closed code=|> CLOSE/ },
  { name: 'node-ws-good', cmd: ['node', 'clients/node_ws.mjs'], server: 'echo', careful: true,
    open: / open attempt=/, detect: / heartbeat-timeout / },
  { name: 'node-rws', cmd: ['node', 'clients/node_rws.mjs'], server: 'echo', careful: false,
    open: / open opens=/, detect: / close code=/ },
  { name: 'socketio-good', cmd: ['node', 'clients/sio_client.mjs', 'good'], server: 'sio', careful: true,
    open: / connect id=/, detect: / disconnect reason=ping timeout/ },
  { name: 'socketio-bad', cmd: ['node', 'clients/sio_client.mjs', 'bad'], server: 'sio', careful: true, reconnects: false,
    open: / connect id=/, detect: / disconnect reason=ping timeout/ },
];

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function readLog(file) { return existsSync(file) ? readFileSync(file, 'utf8') : ''; }
function count(text, re) { return text.split('\n').filter((l) => re.test(l)).length; }

async function waitFor(pred, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return pred();
}

function stopProc(p, sig = 'SIGTERM') {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) { resolve(); return; }
    const t = setTimeout(() => { try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ } }, 3000);
    p.once('exit', () => { clearTimeout(t); resolve(); });
    try { process.kill(-p.pid, 'SIGCONT'); process.kill(-p.pid, sig); } catch { resolve(); }
  });
}

async function runCase(c, dir) {
  const port = await freePort();
  const serverLog = join(dir, `${c.name}.server.log`);
  const clientLog = join(dir, `${c.name}.client.log`);
  const serverCmd = c.server === 'sio' ? ['node', 'clients/sio_server.mjs', String(port)]
    : ['node', 'tools/echo_server.mjs', String(port)];
  const spawnServer = () => spawn(serverCmd[0], serverCmd.slice(1), { cwd: root, detached: true,
    stdio: 'ignore', env: { ...process.env, FLATLINE_CLIENT_LOG: serverLog } });
  let server = spawnServer();
  const problems = [];
  let client = null;
  try {
    if (!await waitFor(() => /listening/.test(readLog(serverLog)), 5000)) throw new Error('server did not start');
    const url = c.server === 'sio' ? `ws://127.0.0.1:${port}/` : `ws://127.0.0.1:${port}/feed`;
    client = spawn(c.cmd[0], c.cmd.slice(1), { cwd: root, detached: true, stdio: 'ignore',
      env: { ...process.env, FLATLINE_URL: url, FLATLINE_CLIENT_LOG: clientLog } });
    if (!await waitFor(() => c.open.test(readLog(clientLog)), c.openTimeoutMs ?? 8000)) throw new Error('client never opened');
    await new Promise((r) => setTimeout(r, 2000)); // a couple of heartbeats while healthy
    const opensBefore = count(readLog(clientLog), c.open);
    if (mode === 'restart') {
      // The server process dies (the kernel closes its sockets: FIN, no close
      // frame), stays down for 4 s (connection refused), then comes back.
      await stopProc(server, 'SIGKILL');
      const downAt = Date.now();
      await new Promise((r) => setTimeout(r, 4000));
      server = spawnServer();
      const wantReconnect = c.reconnects !== false;
      const reopened = await waitFor(() => count(readLog(clientLog), c.open) > opensBefore, wantReconnect ? 15000 : 5000);
      const ms = Date.now() - downAt;
      if (wantReconnect && !reopened) problems.push('did not reconnect within 15 s of the restart');
      if (!wantReconnect && reopened) problems.push('reconnected although reconnection is off');
      const attempts = count(readLog(clientLog), c.attempt ?? /connecting|reconnect-attempt|connect_error/);
      return { problems, detail: reopened ? `reopened ${ms} ms after the kill (server down 4000 ms), attempt-ish log lines: ${attempts}` : 'no reconnect', clientLog };
    }
    process.kill(server.pid, 'SIGSTOP');
    const frozenAt = Date.now();
    const detected = await waitFor(() => c.detect.test(readLog(clientLog)), 7000);
    const detectMs = Date.now() - frozenAt;
    if (c.careful && !detected) problems.push('did not notice the frozen server within 7 s');
    if (!c.careful && detected) problems.push(`noticed the frozen server (${detectMs} ms) but has no heartbeat`);
    process.kill(server.pid, 'SIGCONT');
    const wantReconnect = c.careful && c.reconnects !== false;
    const reopened = await waitFor(() => count(readLog(clientLog), c.open) > opensBefore, wantReconnect ? 12000 : 4000);
    if (wantReconnect && !reopened) problems.push('did not reconnect within 12 s of SIGCONT');
    if (c.reconnects === false && reopened) problems.push('reconnected although reconnection is off');
    return { problems, detail: detected ? `detected after ${detectMs} ms` : 'no detection', clientLog };
  } catch (e) {
    problems.push(String(e.message || e));
    return { problems, detail: '', clientLog };
  } finally {
    if (client) await stopProc(client);
    await stopProc(server);
  }
}

const argv = process.argv.slice(2);
const mode = argv.includes('--restart') ? 'restart' : 'freeze';
const filter = argv.filter((x) => !x.startsWith('--'))[0] || '';
const dir = mkdtempSync(join(tmpdir(), 'flatline-e2e-selftest-'));
let passed = 0;
let failed = 0;
for (const c of CASES.filter((x) => x.name.includes(filter))) {
  const r = await runCase(c, dir);
  if (r.problems.length === 0) {
    passed += 1;
    console.log(`ok    ${c.name.padEnd(14)} ${r.detail}`);
  } else {
    failed += 1;
    console.log(`FAIL  ${c.name.padEnd(14)} ${r.problems.join('; ')} (${r.detail})`);
    console.log(readLog(r.clientLog).split('\n').slice(-15).map((l) => '      | ' + l).join('\n'));
  }
}
console.log(`logs in ${dir}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
