// Node `ws` client with the documented client-side heartbeat.
//
// Usage: node clients/node_ws.mjs [giveup]
// A ping() every 1 s; every pong (or message) resets a 3 s deadline; on
// timeout the socket is terminate()d (close() would wait for the closing
// handshake, 30 s in ws) and a new one opened with exponential backoff and
// jitter. Each attempt has a 3 s handshake timeout. Re-subscribes on open.
// FLATLINE_CLOSE_AFTER=N: close with 1000 N s after the first open, then
// never reconnect. SIGTERM: close with 1000 and exit.
// giveup: the same, but after one reconnect attempt that does not open, it
// gives up for good (a `maxRetries: 1` configuration): it never comes back
// after a partition longer than its handshake timeout.
import WebSocket from 'ws';
import { makeLog, requireUrl, backoffDelay, closeAfterSeconds } from './log.mjs';

const giveup = process.argv[2] === 'giveup';
const log = makeLog(giveup ? 'node-ws-giveup' : 'node-ws-good');
const url = requireUrl(log);
const HEARTBEAT_MS = 1000;
const TIMEOUT_MS = 3000;
const HANDSHAKE_TIMEOUT_MS = 3000;
const closeAfter = closeAfterSeconds();

let ws = null;
let attempt = 0;
let failures = 0;
let opens = 0;
let intentional = false;
let stopped = false;
let reconnectTimer = null;

function scheduleReconnect(why) {
  if (stopped || intentional || reconnectTimer) return;
  if (giveup && failures >= 1) { log('giving-up', `after ${failures} failed attempt(s): no more reconnects`); return; }
  const delay = backoffDelay(failures);
  failures += 1;
  log('reconnect-scheduled', `in=${delay}ms why=${why}`);
  reconnectTimer = setTimeout(() => { reconnectTimer = null; connect(); }, delay);
}

function connect() {
  if (stopped || intentional) return;
  attempt += 1;
  const n = attempt;
  log('connecting', `attempt=${n} url=${url}`);
  const sock = new WebSocket(url, { handshakeTimeout: HANDSHAKE_TIMEOUT_MS });
  ws = sock;
  let heartbeat = null;
  let deadline = null;
  const arm = () => {
    clearTimeout(deadline);
    deadline = setTimeout(() => {
      log('heartbeat-timeout', `attempt=${n} no pong for ${TIMEOUT_MS}ms: terminate()`);
      clearInterval(heartbeat);
      sock.terminate();
    }, TIMEOUT_MS);
  };
  sock.on('open', () => {
    failures = 0;
    opens += 1;
    log('open', `attempt=${n} opens=${opens}`);
    sock.send(JSON.stringify({ type: 'subscribe', channel: 'ticks' }));
    log('sent-subscribe');
    arm();
    heartbeat = setInterval(() => { if (sock.readyState === WebSocket.OPEN) sock.ping(); }, HEARTBEAT_MS);
    if (closeAfter > 0 && opens === 1) {
      setTimeout(() => {
        intentional = true;
        clearTimeout(reconnectTimer); reconnectTimer = null;
        clearInterval(heartbeat); clearTimeout(deadline);
        log('close-intentional', 'code=1000');
        if (ws) ws.close(1000, 'done');
      }, closeAfter * 1000);
    }
  });
  sock.on('pong', arm);
  sock.on('message', (data, isBinary) => {
    arm();
    log('message', isBinary ? '[binary]' : data.toString().slice(0, 120));
  });
  sock.on('error', (e) => log('error', `attempt=${n} ${e.message}`));
  sock.on('close', (code, reason) => {
    clearInterval(heartbeat); clearTimeout(deadline);
    log('close', `attempt=${n} code=${code} reason=${JSON.stringify(reason.toString())} intentional=${intentional}`);
    if (ws === sock) ws = null;
    if (intentional || stopped) { log('no-reconnect', intentional ? 'closed intentionally' : 'stopped'); return; }
    scheduleReconnect('close');
  });
}

function stop(signal) {
  if (stopped) return;
  stopped = true;
  clearTimeout(reconnectTimer);
  log('stop', `signal=${signal}`);
  if (ws && ws.readyState === WebSocket.OPEN) {
    ws.close(1000, 'stopping');
    ws.once('close', () => { log('stopped'); process.exit(0); });
    setTimeout(() => process.exit(0), 1000).unref();
  } else {
    if (ws) ws.terminate();
    log('stopped');
    process.exit(0);
  }
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

log('start', `${giveup ? 'giveup (1 retry) ' : ''}heartbeat=ping() every ${HEARTBEAT_MS}ms timeout=${TIMEOUT_MS}ms handshakeTimeout=${HANDSHAKE_TIMEOUT_MS}ms closeAfter=${closeAfter}s`);
connect();
