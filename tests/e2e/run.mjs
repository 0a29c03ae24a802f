#!/usr/bin/env node
// The e2e runner: every cell of matrix.json (stack x scenario -> expected
// verdict) is one `flatline run` with the stack's real client (and server),
// judged by flatline's exit status and JSON report.
//
// Usage: node run.mjs [--all | --tier T] [--filter SUBSTRING] [--jobs N] [--keep] [--list]
//   --all       also run the cells of tier "extended" (same as --tier all)
//   --tier T    only the cells of tier T (core, extended, all; default core)
//   --filter S  only cells whose "stack/scenario[+netns]" contains S (repeatable)
//   --jobs N    cells run at once (default 2; the verdicts were the same with 1)
//   --keep      keep the per-cell directory (reports, logs) even when all pass
// Env: FLATLINE_BIN (default: the newer of ../../target/release/flatline
//      and ../../target/debug/flatline), FLATLINE_SCENARIOS (default ../../scenarios),
//      E2E_CELL_TIMEOUT (hard guard per cell, default 30: SIGTERM to flatline
//      at duration + E2E_CELL_TIMEOUT - 10 s, SIGKILL to it, its descendants
//      and their process groups at duration + E2E_CELL_TIMEOUT s).
// Builds nothing. Exits 1 on any mismatch, 3 when it cannot run at all.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, openSync, closeSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve, isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';

const osSignals = osConstants.signals;
const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');

function parseArgs(argv) {
  const a = { tier: 'core', filters: [], jobs: 2, keep: false, list: false };
  for (let i = 0; i < argv.length; i += 1) {
    const x = argv[i];
    if (x === '--all') a.tier = 'all';
    else if (x === '--tier' && i + 1 < argv.length) a.tier = argv[++i];
    else if (x === '--keep') a.keep = true;
    else if (x === '--list') a.list = true;
    else if (x === '--filter' && i + 1 < argv.length) a.filters.push(argv[++i]);
    else if (x === '--jobs' && i + 1 < argv.length) a.jobs = Math.max(1, Number.parseInt(argv[++i], 10) || 1);
    else if (x === '-h' || x === '--help') { console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 17).join('\n')); process.exit(0); }
    else { console.error(`run.mjs: unknown argument ${x}`); process.exit(2); }
  }
  return a;
}

function flatlineBin() {
  const env = process.env.FLATLINE_BIN;
  if (env) return isAbsolute(env) ? env : resolve(process.cwd(), env);
  const candidates = ['target/release/flatline', 'target/debug/flatline'].map((p) => join(repo, p))
    .filter((p) => existsSync(p));
  // Prefer the most recently built one.
  candidates.sort((x, y) => statSync(y).mtimeMs - statSync(x).mtimeMs);
  return candidates[0] || join(repo, 'target/release/flatline');
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
  });
}

function scenarioDuration(file) {
  const m = /^duration:\s*([0-9.]+)\s*(ms|s|m)?\s*$/m.exec(readFileSync(file, 'utf8'));
  if (!m) return 120;
  const v = Number.parseFloat(m[1]);
  return m[2] === 'ms' ? v / 1000 : m[2] === 'm' ? v * 60 : v;
}

function tail(file, n) {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.length).slice(-n);
}

// `stack/scenario`, with `+netns` for the cells run with --netns.
function cellId(c) { return `${c.stack}/${c.scenario}${c.netns ? '+netns' : ''}`; }

function matchesExpectation(e, key) { return e.name === key || e.kind === key; }

async function runCell(cell, stack, opts) {
  const id = cellId(cell);
  const dir = join(opts.tmp, id.replace('/', '__'));
  mkdirSync(dir, { recursive: true });
  const scenario = join(opts.scenarios, `${cell.scenario}.yaml`);
  const result = { cell, id, dir, got: 'error', ok: false, notes: [], failing: [], report: null,
    clientLog: join(dir, 'client.log'), flatlineLog: join(dir, 'flatline.log'), seconds: 0 };
  if (!existsSync(scenario)) { result.notes.push(`scenario file missing: ${scenario}`); return result; }
  const port = await freePort();
  const sub = (s) => s.replaceAll('{port}', String(port));
  const reportFile = join(dir, 'report.json');
  const args = ['run', scenario, '--client-cmd', sub(stack.client), '--report', reportFile];
  if (stack.server) args.push('--server-cmd', sub(stack.server));
  if (stack.upstream) args.push('--upstream', sub(stack.upstream));
  if (stack.flatline_args) args.push(...stack.flatline_args.map(sub));
  // `netns: true`: the client (and server) in network namespaces, partitions
  // as nftables drops that the client's own kernel sees (needs root).
  if (cell.netns) args.push('--netns');
  const env = { ...process.env, ...(opts.scenarioEnv[cell.scenario] || {}), ...(cell.env || {}),
    FLATLINE_CLIENT_LOG: result.clientLog, TMPDIR: dir };
  const started = Date.now();
  const out = openSync(result.flatlineLog, 'a');
  const child = spawn(opts.bin, args, { cwd: here, env, detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  // Hard guard: a hung flatline must not hang CI. SIGTERM (flatline then
  // stops its commands and writes its report) 10 s before the limit, and at
  // duration + slack SIGKILL flatline's process group and every command's
  // group it started (each runs in a group of its own; their pids are in
  // the report only when flatline ends, so they are found through /proc).
  const guardMs = (scenarioDuration(scenario) + opts.slack) * 1000;
  let timedOut = false;
  let killed = false;
  const term = setTimeout(() => {
    timedOut = true;
    try { process.kill(child.pid, 'SIGTERM'); } catch { /* gone */ }
  }, Math.max(1000, guardMs - 10000));
  const kill = setTimeout(() => {
    timedOut = true;
    killed = true;
    killTree(child.pid);
  }, guardMs);
  const code = await new Promise((res) => {
    child.once('error', (e) => { result.notes.push(`cannot start flatline: ${e.message}`); res(-1); });
    child.once('exit', (c, sig) => res(c ?? (sig ? 128 + (osSignals[sig] || 0) : -1)));
  });
  clearTimeout(term);
  clearTimeout(kill);
  result.seconds = (Date.now() - started) / 1000;
  result.exit = code;
  if (timedOut) {
    result.notes.push(killed
      ? `flatline hung: SIGTERM at ${(guardMs - 10000) / 1000} s did not end it, runner SIGKILLed it and its commands at ${guardMs / 1000} s`
      : `flatline did not end by itself: runner sent SIGTERM at ${(guardMs - 10000) / 1000} s (duration + ${opts.slack - 10} s)`);
  }
  if (existsSync(reportFile)) {
    try { result.report = JSON.parse(readFileSync(reportFile, 'utf8')); } catch (e) { result.notes.push(`report unreadable: ${e.message}`); }
  }
  const exps = Array.isArray(result.report?.expectations) ? result.report.expectations : [];
  result.failing = exps.filter((e) => e.passed === false);
  if (code === 0) result.got = 'pass';
  else if (code === 1) result.got = 'fail';
  else result.notes.push(`flatline exited ${code} (2 = invalid, 3 = could not run)`);
  if (result.report && typeof result.report.passed === 'boolean' && (code === 0 || code === 1)
      && result.report.passed !== (code === 0)) {
    result.notes.push(`report.passed=${result.report.passed} disagrees with exit ${code}`);
  }
  result.ok = result.got === cell.expect && result.notes.length === 0;
  if (result.ok && cell.expect === 'fail') {
    for (const key of cell.must_fail || []) {
      if (!result.failing.some((e) => matchesExpectation(e, key))) {
        result.ok = false;
        result.notes.push(`expected expectation '${key}' to fail; failing: ${result.failing.map((e) => e.name).join(', ') || 'none'}`);
      }
    }
  }
  return result;
}

// The pids of `root` and all its descendants (from /proc; Linux only).
function descendants(root) {
  const kids = new Map();
  let entries = [];
  try { entries = readdirSync('/proc').filter((d) => /^[0-9]+$/.test(d)); } catch { return [root]; }
  for (const d of entries) {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number.parseInt(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1], 10);
      if (!kids.has(ppid)) kids.set(ppid, []);
      kids.get(ppid).push(Number.parseInt(d, 10));
    } catch { /* exited meanwhile */ }
  }
  const out = [];
  const todo = [root];
  while (todo.length) {
    const p = todo.pop();
    out.push(p);
    for (const k of kids.get(p) || []) todo.push(k);
  }
  return out;
}

// SIGKILL a process, its descendants and their process groups.
function killTree(root) {
  const pids = descendants(root);
  for (const p of pids) { try { process.kill(-p, 'SIGKILL'); } catch { /* not a group leader */ } }
  for (const p of pids) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
}

function pad(s, n) { s = String(s); return s.length >= n ? s : s + ' '.repeat(n - s.length); }

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const matrix = JSON.parse(readFileSync(join(here, 'matrix.json'), 'utf8'));
  let cells = matrix.cells.filter((c) => a.tier === 'all' || (c.tier || 'core') === a.tier);
  if (a.filters.length) cells = cells.filter((c) => a.filters.some((f) => cellId(c).includes(f)));
  if (a.list) {
    for (const c of cells) console.log(`${pad(c.stack, 14)} ${pad(c.scenario + (c.netns ? '+netns' : ''), 24)} ${pad(c.expect, 5)} ${c.why}`);
    return 0;
  }
  const bin = flatlineBin();
  if (!existsSync(bin)) {
    console.error(`run.mjs: no flatline binary at ${bin} (build it with cargo build --release, or set FLATLINE_BIN)`);
    return 3;
  }
  const missing = [];
  if (!existsSync(join(here, 'node_modules', 'ws'))) missing.push('node_modules');
  if (!existsSync(join(here, '.venv', 'bin', 'python'))) missing.push('.venv');
  if (cells.some((c) => c.stack.startsWith('browser')) && !existsSync(process.env.CHROMIUM || '/usr/bin/chromium')) missing.push('/usr/bin/chromium');
  if (missing.length) {
    console.error(`run.mjs: missing ${missing.join(', ')}: run tests/e2e/install.sh first`);
    return 3;
  }
  const opts = {
    bin,
    scenarios: process.env.FLATLINE_SCENARIOS ? resolve(process.env.FLATLINE_SCENARIOS) : join(repo, 'scenarios'),
    tmp: mkdtempSync(join(tmpdir(), 'flatline-e2e-')),
    slack: Number.parseFloat(process.env.E2E_CELL_TIMEOUT || '30') || 30,
    scenarioEnv: matrix.scenario_env || {},
  };
  console.log(`flatline: ${bin}\nscenarios: ${opts.scenarios}\ncells: ${cells.length} (jobs ${a.jobs})  work dir: ${opts.tmp}\n`);

  const results = new Array(cells.length);
  let next = 0;
  async function worker() {
    while (next < cells.length) {
      const i = next++;
      const c = cells[i];
      const stack = matrix.stacks[c.stack];
      if (!stack) { results[i] = { cell: c, id: `${c.stack}/${c.scenario}`, got: 'error', ok: false, notes: [`unknown stack ${c.stack}`], failing: [] }; continue; }
      const r = await runCell(c, stack, opts);
      results[i] = r;
      console.log(`${r.ok ? 'ok  ' : 'BAD '} ${pad(r.id, 36)} expected ${pad(c.expect, 4)} got ${pad(r.got, 5)} ${r.seconds ? r.seconds.toFixed(1) + ' s' : ''}`);
    }
  }
  await Promise.all(Array.from({ length: Math.min(a.jobs, cells.length) }, worker));

  console.log(`\n${pad('stack', 14)} ${pad('scenario', 24)} ${pad('expected', 9)} ${pad('got', 6)} ${pad('', 8)} failing expectations`);
  for (const r of results) {
    const f = r.failing.map((e) => e.name).join(', ');
    console.log(`${pad(r.cell.stack, 14)} ${pad(r.cell.scenario + (r.cell.netns ? '+netns' : ''), 24)} ${pad(r.cell.expect, 9)} ${pad(r.got, 6)} ${pad(r.ok ? 'ok' : 'MISMATCH', 8)} ${f}`);
  }
  const bad = results.filter((r) => !r.ok);
  for (const r of bad) {
    console.log(`\n--- MISMATCH ${r.id}: expected ${r.cell.expect}, got ${r.got} (${r.cell.why})`);
    for (const n of r.notes) console.log(`    note: ${n}`);
    const exps = Array.isArray(r.report?.expectations) ? r.report.expectations : [];
    for (const e of exps) {
      const obs = e.observed_ms != null ? ` observed ${e.observed_ms} ms` : '';
      console.log(`    ${e.passed ? 'pass' : 'FAIL'} ${e.name} [${e.kind}]${obs}: ${e.detail}`);
    }
    const clientTail = r.clientLog ? tail(r.clientLog, 25) : [];
    if (clientTail.length) {
      console.log('    client/server log tail:');
      for (const l of clientTail) console.log(`      | ${l}`);
    }
    const flatTail = r.flatlineLog && (r.got === 'error' || !exps.length) ? tail(r.flatlineLog, 15) : [];
    if (flatTail.length) {
      console.log('    flatline output tail:');
      for (const l of flatTail) console.log(`      | ${l}`);
    }
    if (r.dir) console.log(`    files: ${r.dir}`);
  }
  if (!bad.length && !a.keep) rmSync(opts.tmp, { recursive: true, force: true });
  else console.log(`\nwork dir kept: ${opts.tmp}`);
  console.log(`\n${results.length - bad.length} passed, ${bad.length} failed`);
  return bad.length ? 1 : 0;
}

main().then((code) => process.exit(code), (e) => { console.error(e); process.exit(3); });
