// Stand-in for flatline's built-in demo server, for testing the clients
// without flatline: echoes, answers text "ping" with "pong", answers ping
// frames (ws does that itself), answers {"type":"subscribe",...} with
// {"type":"subscribed"}. Usage: node tools/echo_server.mjs PORT
import { WebSocketServer } from 'ws';
import { makeLog } from '../clients/log.mjs';

const log = makeLog('echo-server');
const port = Number.parseInt(process.argv[2] || '0', 10);
const wss = new WebSocketServer({ host: '127.0.0.1', port });
let n = 0;
wss.on('listening', () => log('listening', `port=${wss.address().port}`));
wss.on('connection', (ws, req) => {
  n += 1;
  const id = n;
  log('open', `conn=${id} path=${req.url}`);
  ws.on('message', (data, isBinary) => {
    const text = isBinary ? null : data.toString();
    if (text === 'ping') { ws.send('pong'); return; }
    if (text && text.startsWith('{')) {
      try {
        if (JSON.parse(text).type === 'subscribe') { ws.send('{"type":"subscribed"}'); return; }
      } catch { /* echo it */ }
    }
    ws.send(data, { binary: isBinary });
  });
  ws.on('close', (code, reason) => log('close', `conn=${id} code=${code} reason=${JSON.stringify(reason.toString())}`));
  ws.on('error', (e) => log('error', `conn=${id} ${e.message}`));
});
process.on('SIGTERM', () => { wss.close(); process.exit(0); });
