// `reconnecting-websocket` over Node `ws`, library defaults, no heartbeat.
//
// Usage: node clients/node_rws.mjs
// Reconnects from onclose with growing randomised delays (library defaults:
// 1..5 s growing by 1.3x up to 10 s, 4 s connection timeout), so it handles a
// server going away or restarting, but nothing notices a silent drop.
// Re-subscribes on open. FLATLINE_CLOSE_AFTER=N: rws.close(1000) N s after
// the first open (the library then stops reconnecting). SIGTERM: close 1000.
import WebSocket from 'ws';
import ReconnectingWebSocket from 'reconnecting-websocket';
import { makeLog, requireUrl, closeAfterSeconds } from './log.mjs';

const log = makeLog('node-rws');
const url = requireUrl(log);
const closeAfter = closeAfterSeconds();
let opens = 0;
let stopped = false;

// The package ships CommonJS with the class as `default`.
const RWS = ReconnectingWebSocket.default || ReconnectingWebSocket;
const rws = new RWS(url, [], { WebSocket, debug: false });

rws.addEventListener('open', () => {
  opens += 1;
  log('open', `opens=${opens} retryCount=${rws.retryCount}`);
  rws.send(JSON.stringify({ type: 'subscribe', channel: 'ticks' }));
  log('sent-subscribe');
  if (closeAfter > 0 && opens === 1) {
    setTimeout(() => { log('close-intentional', 'code=1000'); rws.close(1000, 'done'); }, closeAfter * 1000);
  }
});
rws.addEventListener('message', (ev) => log('message', String(ev.data).slice(0, 120)));
rws.addEventListener('error', (ev) => log('error', String(ev.message || ev.error || 'error')));
rws.addEventListener('close', (ev) => log('close', `code=${ev.code} reason=${JSON.stringify(ev.reason || '')} retryCount=${rws.retryCount}`));

function stop(signal) {
  if (stopped) return;
  stopped = true;
  log('stop', `signal=${signal}`);
  rws.close(1000, 'stopping');
  setTimeout(() => { log('stopped'); process.exit(0); }, 300);
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
log('start', `reconnecting-websocket defaults, no heartbeat, closeAfter=${closeAfter}s`);
