// Browser client for the flatline e2e suite, native WebSocket API only.
//
// Query parameters: ws (the WebSocket URL), variant (good | bad),
// closeAfter (seconds after the first open to close intentionally, 0 = never).
//
// good: the classic careful pattern. App-level text "ping" every 1 s; any
//   message resets a 3 s deadline; on timeout the socket is ABANDONED
//   (handlers detached, close() still called, because onclose would wait
//   for the closing handshake, 60 s in Chromium) and a new one is opened at
//   once; every attempt has a 3 s connect timeout; reconnects use
//   exponential backoff with jitter; a flag separates an intentional close()
//   from an abnormal one; re-subscribes on every open.
// bad: no heartbeat, no connect timeout: reconnects only from onclose.
(function () {
  'use strict';
  const P = new URLSearchParams(location.search);
  const url = P.get('ws');
  const variant = P.get('variant') === 'bad' ? 'bad' : 'good';
  const closeAfter = Number.parseFloat(P.get('closeAfter') || '0') || 0;
  // sendEvery=MS: the page sends an app message that often (user activity,
  // not a heartbeat: nothing waits for an answer). Unacknowledged data is
  // what makes the kernel's retransmission timeout apply (`--netns` runs).
  const SEND_EVERY_MS = Number.parseInt(P.get('sendEvery') || '0', 10) || 0;
  let activityTimer = null;
  const HEARTBEAT_MS = 1000;
  const TIMEOUT_MS = 3000;
  const CONNECT_TIMEOUT_MS = 3000;
  const BACKOFF_MIN_MS = Number.parseInt(P.get('backoffMin') || '500', 10);
  const BACKOFF_MAX_MS = Number.parseInt(P.get('backoffMax') || '4000', 10);
  const careful = variant === 'good';
  const name = 'browser-' + variant;
  const t0 = performance.now();

  let ws = null;        // the socket we currently care about
  let conn = 0;         // attempts made by this page
  let failures = 0;     // consecutive attempts that did not open (backoff exponent)
  let opens = 0;
  let intentional = false;
  let stopped = false;
  let heartbeatTimer = null;
  let deadlineTimer = null;
  let connectTimer = null;
  let reconnectTimer = null;

  function log(event, detail) {
    const rel = ((performance.now() - t0) / 1000).toFixed(3);
    console.log(`page +${rel}s ${name} ${event}${detail ? ' ' + detail : ''}`);
    const el = document.getElementById('state');
    if (el) el.textContent = event;
  }

  function clearTimers() {
    clearInterval(heartbeatTimer); heartbeatTimer = null;
    clearTimeout(deadlineTimer); deadlineTimer = null;
    clearTimeout(connectTimer); connectTimer = null;
  }

  function backoff() {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, Math.min(failures, 20)));
    failures += 1;
    return Math.round(base * (1 + 0.25 * Math.random()));
  }

  function scheduleReconnect(why) {
    if (stopped || intentional || reconnectTimer) return;
    const delay = backoff();
    log('reconnect-scheduled', `in=${delay}ms why=${why}`);
    reconnectTimer = setTimeout(() => { reconnectTimer = null; connect(); }, delay);
  }

  function armDeadline(sock) {
    clearTimeout(deadlineTimer);
    deadlineTimer = setTimeout(() => abandon(sock, 'heartbeat-timeout',
      `no message for ${TIMEOUT_MS}ms`), TIMEOUT_MS);
  }

  // Give up a socket without waiting for its closing handshake.
  function abandon(sock, why, detail) {
    if (sock !== ws) return;
    log(why, (detail ? detail + ' ' : '') + 'abandoning socket (handlers detached, close() called)');
    clearTimers();
    sock.onopen = sock.onmessage = sock.onerror = sock.onclose = null;
    try { sock.close(); } catch (e) { log('close-threw', String(e)); }
    ws = null;
    scheduleReconnect(why);
  }

  function connect() {
    if (stopped || intentional) return;
    conn += 1;
    const n = conn;
    log('connecting', `attempt=${n} url=${url}`);
    let sock;
    try {
      sock = new WebSocket(url);
    } catch (e) {
      log('construct-failed', String(e));
      scheduleReconnect('construct-failed');
      return;
    }
    ws = sock;
    if (careful) {
      connectTimer = setTimeout(() => abandon(sock, 'connect-timeout',
        `attempt=${n} not open after ${CONNECT_TIMEOUT_MS}ms`), CONNECT_TIMEOUT_MS);
    }
    sock.onopen = () => {
      clearTimeout(connectTimer); connectTimer = null;
      failures = 0;
      opens += 1;
      log('open', `attempt=${n} opens=${opens}`);
      sock.send(JSON.stringify({ type: 'subscribe', channel: 'ticks' }));
      log('sent-subscribe');
      if (careful) {
        armDeadline(sock);
        heartbeatTimer = setInterval(() => {
          if (sock.readyState === WebSocket.OPEN) sock.send('ping');
        }, HEARTBEAT_MS);
      }
      if (SEND_EVERY_MS > 0) {
        clearInterval(activityTimer);
        activityTimer = setInterval(() => {
          if (sock.readyState === WebSocket.OPEN) sock.send(JSON.stringify({ type: 'activity' }));
        }, SEND_EVERY_MS);
      }
      if (closeAfter > 0 && opens === 1) {
        setTimeout(() => closeIntentionally('closeAfter'), closeAfter * 1000);
      }
    };
    sock.onmessage = (ev) => {
      const data = typeof ev.data === 'string' ? ev.data : '[binary]';
      if (data !== 'pong') log('message', data.slice(0, 120));
      if (careful) armDeadline(sock);
    };
    sock.onerror = () => log('error', `attempt=${n}`);
    sock.onclose = (ev) => {
      log('close', `attempt=${n} code=${ev.code} reason=${JSON.stringify(ev.reason)} wasClean=${ev.wasClean} intentional=${intentional}`);
      clearTimers();
      clearInterval(activityTimer); activityTimer = null;
      if (ws === sock) ws = null;
      if (intentional || stopped) {
        log('no-reconnect', intentional ? 'closed intentionally' : 'stopped');
        return;
      }
      scheduleReconnect('onclose');
    };
  }

  function closeIntentionally(why) {
    intentional = true;
    clearTimeout(reconnectTimer); reconnectTimer = null;
    clearInterval(heartbeatTimer); heartbeatTimer = null;
    clearTimeout(deadlineTimer); deadlineTimer = null;
    if (ws) {
      log('close-intentional', `why=${why} code=1000`);
      ws.close(1000, 'done');
    } else {
      log('close-intentional', `why=${why} (no socket open)`);
    }
  }

  // Called by the driver on SIGTERM: a clean 1000 close, no reconnect.
  window.__flatlineStop = function () {
    stopped = true;
    clearTimeout(reconnectTimer); reconnectTimer = null;
    clearTimers();
    if (ws && ws.readyState <= WebSocket.OPEN) {
      log('stop', 'closing with 1000');
      ws.close(1000, 'stopping');
    } else {
      log('stop');
    }
  };

  if (!url) {
    log('fatal', 'no ws query parameter');
    return;
  }
  log('start', `variant=${variant} heartbeat=${careful ? HEARTBEAT_MS + 'ms' : 'none'} timeout=${careful ? TIMEOUT_MS + 'ms' : 'none'} closeAfter=${closeAfter}s`);
  connect();
})();
