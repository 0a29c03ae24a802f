// Driver for the browser client: serves browser/ on 127.0.0.1, opens it in
// Debian's headless Chromium through playwright-core, forwards the page's
// console to stderr, and runs until SIGTERM/SIGINT (then asks the page to
// close its socket with 1000 and closes the browser).
//
// Usage: node clients/browser.mjs good|bad    (env FLATLINE_URL, optional
// FLATLINE_CLOSE_AFTER=seconds, CHROMIUM=/usr/bin/chromium, FLATLINE_TLS_SPKI
// for a wss:// URL)
import { createServer } from 'node:http';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { makeLog, requireUrl, closeAfterSeconds } from './log.mjs';

const variant = process.argv[2] === 'bad' ? 'bad' : 'good';
const log = makeLog(`browser-${variant}`);
const wsUrl = requireUrl(log);
const here = dirname(fileURLToPath(import.meta.url));
const pageDir = join(here, 'browser');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-quic'];
// wss:// to flatline's generated certificate: trusted by its public key hash
// (flatline exports it as FLATLINE_TLS_SPKI), as a developer would.
if (process.env.FLATLINE_TLS_SPKI) FLAGS.push(`--ignore-certificate-errors-spki-list=${process.env.FLATLINE_TLS_SPKI}`);
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8' };

let context = null;
let page = null;
let userDataDir = null;
let server = null;
let stopping = false;

const httpServer = createServer(async (req, res) => {
  const path = new URL(req.url, 'http://127.0.0.1').pathname;
  if (path === '/favicon.ico') { res.writeHead(204).end(); return; }
  const file = path === '/' ? 'index.html' : path.slice(1);
  if (!/^[a-z]+\.(html|js)$/.test(file)) { res.writeHead(404).end(); return; }
  try {
    const body = await readFile(join(pageDir, file));
    res.writeHead(200, { 'content-type': TYPES[file.slice(file.lastIndexOf('.'))],
      'cache-control': 'no-store' }).end(body);
  } catch {
    res.writeHead(404).end();
  }
});

async function stop(signal) {
  if (stopping) return;
  stopping = true;
  log('stop', `signal=${signal}`);
  try {
    if (page) {
      await Promise.race([page.evaluate(() => window.__flatlineStop && window.__flatlineStop()),
        new Promise((r) => setTimeout(r, 500))]);
      // Let the close frame leave before the browser goes away.
      await new Promise((r) => setTimeout(r, 200));
    }
  } catch (e) { log('stop-page-failed', String(e).split('\n')[0]); }
  try { if (context) await Promise.race([context.close(), new Promise((r) => setTimeout(r, 3000))]); } catch { /* already gone */ }
  try { if (userDataDir) await rm(userDataDir, { recursive: true, force: true }); } catch { /* best effort */ }
  try { server && server.close(); } catch { /* best effort */ }
  log('stopped');
  process.exit(0);
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

async function main() {
  server = await new Promise((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(0, '127.0.0.1', () => resolve(httpServer));
  });
  const port = server.address().port;
  userDataDir = await mkdtemp(join(tmpdir(), 'flatline-e2e-chromium-'));
  log('launch', `chromium=${executablePath} page=http://127.0.0.1:${port}/ ws=${wsUrl}`);
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath, headless: true, args: FLAGS, chromiumSandbox: false,
    // We close the browser ourselves on a signal, after the page's 1000 close.
    handleSIGTERM: false, handleSIGINT: false, handleSIGHUP: false,
  });
  context.on('close', () => {
    if (!stopping) { log('fatal', 'browser closed unexpectedly'); process.exit(3); }
  });
  page = context.pages()[0] || await context.newPage();
  page.on('console', (msg) => log('console', msg.text()));
  page.on('pageerror', (err) => log('pageerror', String(err)));
  page.on('crash', () => { log('fatal', 'page crashed'); process.exit(3); });
  const q = new URLSearchParams({ ws: wsUrl, variant, closeAfter: String(closeAfterSeconds()),
    sendEvery: process.env.FLATLINE_SEND_EVERY_MS || '0' });
  await page.goto(`http://127.0.0.1:${port}/index.html?${q}`);
  log('page-loaded', `chromium ${context.browser()?.version() ?? ''}`.trim());
}

main().catch((e) => {
  log('fatal', String(e && e.stack || e).split('\n').slice(0, 3).join(' | '));
  process.exit(3);
});
