// socket.io-client v4, websocket transport only.
//
// Usage: node clients/sio_client.mjs good|bad
// good: default reconnection (randomised exponential delays, 1 s .. 5 s).
// bad: `reconnection: false`: the first disconnect is final.
// Heartbeat is socket.io's own: the server pings every 1 s and the client
// gives the connection up when no ping arrives within pingInterval +
// pingTimeout (2 s here). Connects to FLATLINE_URL's host with path
// /socket.io/ (the relay forwards any path). Re-subscribes on connect.
// FLATLINE_CLOSE_AFTER=N: socket.disconnect() N s after the first connect.
import { io } from 'socket.io-client';
import { makeLog, requireUrl, closeAfterSeconds } from './log.mjs';

const variant = process.argv[2] === 'bad' ? 'bad' : 'good';
const log = makeLog(`socketio-${variant}`);
const url = new URL(requireUrl(log));
const origin = `http://${url.host}`;
const closeAfter = closeAfterSeconds();
const opts = { path: '/socket.io/', transports: ['websocket'] };
if (variant === 'bad') opts.reconnection = false;
let opens = 0;
let stopped = false;

log('start', `origin=${origin} opts=${JSON.stringify(opts)} closeAfter=${closeAfter}s`);
const socket = io(origin, opts);
socket.on('connect', () => {
  opens += 1;
  log('connect', `id=${socket.id} opens=${opens}`);
  socket.emit('subscribe', { type: 'subscribe', channel: 'ticks' });
  log('sent-subscribe');
  if (closeAfter > 0 && opens === 1) {
    setTimeout(() => { log('close-intentional', 'socket.disconnect()'); socket.disconnect(); }, closeAfter * 1000);
  }
});
socket.on('subscribed', (m) => log('subscribed', JSON.stringify(m)));
socket.on('disconnect', (reason, details) => log('disconnect', `reason=${reason}${details ? ' details=' + String(details.description?.message ?? details.description ?? '') : ''} active=${socket.active}`));
socket.on('connect_error', (e) => log('connect_error', `${e.message} active=${socket.active}`));
socket.io.on('reconnect_attempt', (n) => log('reconnect-attempt', `n=${n}`));
socket.io.on('reconnect', (n) => log('reconnected', `after=${n} attempts`));
socket.io.on('ping', () => {});
socket.io.engine?.on?.('close', (reason) => log('engine-close', reason));

function stop(signal) {
  if (stopped) return;
  stopped = true;
  log('stop', `signal=${signal}`);
  socket.disconnect();
  setTimeout(() => { log('stopped'); process.exit(0); }, 300);
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
