// socket.io v4 server for the e2e suite, websocket transport only, with a
// fast heartbeat: Engine.IO ping every 1 s, client must answer within 1 s.
// Answers the `subscribe` event with `subscribed`, and `echo` with `echo`.
// Usage: node clients/sio_server.mjs PORT    (listens on 127.0.0.1:PORT)
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { makeLog } from './log.mjs';

const log = makeLog('sio-server');
const port = Number.parseInt(process.argv[2] || '', 10);
if (!Number.isInteger(port) || port <= 0) { log('fatal', 'usage: sio_server.mjs PORT'); process.exit(2); }
const http = createServer((req, res) => res.writeHead(404).end());
const io = new Server(http, { pingInterval: 1000, pingTimeout: 1000, transports: ['websocket'] });
io.on('connection', (socket) => {
  log('connection', `id=${socket.id}`);
  socket.on('subscribe', (msg) => { log('subscribe', `id=${socket.id} ${JSON.stringify(msg)}`); socket.emit('subscribed', { type: 'subscribed' }); });
  socket.on('echo', (msg) => socket.emit('echo', msg));
  socket.on('disconnect', (reason) => log('disconnect', `id=${socket.id} reason=${reason}`));
});
http.listen(port, '127.0.0.1', () => log('listening', `port=${port} pingInterval=1000 pingTimeout=1000`));
function stop(signal) {
  log('stop', `signal=${signal}`);
  io.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
