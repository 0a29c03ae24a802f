// Timestamped decision log for the Node clients: one line per decision on
// stderr, and appended to $FLATLINE_CLIENT_LOG when the runner sets it.
import { appendFileSync } from 'node:fs';

const t0 = Date.now();
const file = process.env.FLATLINE_CLIENT_LOG || '';

export function stamp() {
  const now = new Date();
  const wall = now.toISOString().slice(11, 23);
  const rel = ((now.getTime() - t0) / 1000).toFixed(3).padStart(7);
  return `${wall} +${rel}s`;
}

export function makeLog(name) {
  return (event, detail = '') => {
    const line = `${stamp()} ${name} ${event}${detail ? ' ' + detail : ''}\n`;
    process.stderr.write(line);
    if (file) {
      try { appendFileSync(file, line); } catch { /* logging must never kill the client */ }
    }
  };
}

/** Exponential backoff with jitter: min*2^n, capped, times a random 1..1.25. */
export function backoffDelay(attempt, minMs = envInt('FLATLINE_BACKOFF_MIN_MS', 500),
  maxMs = envInt('FLATLINE_BACKOFF_MAX_MS', 4000)) {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 20));
  return Math.round(base * (1 + 0.25 * Math.random()));
}

export function envInt(name, dflt) {
  const v = Number.parseInt(process.env[name] ?? '', 10);
  return Number.isFinite(v) ? v : dflt;
}

/** Seconds after the first open at which to close intentionally (0 = never). */
export function closeAfterSeconds() {
  const v = Number.parseFloat(process.env.FLATLINE_CLOSE_AFTER ?? '');
  return Number.isFinite(v) && v > 0 ? v : 0;
}

export function requireUrl(log) {
  const url = process.env.FLATLINE_URL;
  if (!url) {
    log('fatal', 'FLATLINE_URL is not set');
    process.exit(3);
  }
  return url;
}
