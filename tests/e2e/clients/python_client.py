"""Python `websockets` (asyncio API) client for the flatline e2e suite.

Usage: .venv/bin/python clients/python_client.py good|bad

good: ``async for ws in connect(url, ping_interval=1, ping_timeout=2,
close_timeout=1, open_timeout=3)``: protocol keepalive pings every 1 s, the
connection is failed (close 1011) when no pong comes within 2 s, the
library's own reconnect loop, re-subscribe on every open.
bad: ``ping_interval=None``: no keepalive at all, otherwise the same.

Env: FLATLINE_URL (required), FLATLINE_CLOSE_AFTER (seconds after the first
open to close intentionally with 1000 and stop reconnecting),
FLATLINE_CLIENT_LOG (also append the log to this file).
Every decision is logged to stderr with a timestamp; so are the library's
own connection-level log lines (frames other than CLOSE are left out).
"""

import asyncio
import json
import logging
import os
import signal
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

T0 = time.monotonic()
VARIANT = "bad" if len(sys.argv) > 1 and sys.argv[1] == "bad" else "good"
NAME = f"python-{VARIANT}"
LOG_FILE = os.environ.get("FLATLINE_CLIENT_LOG", "")


def stamp() -> str:
    now = time.time()
    wall = time.strftime("%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}"
    return f"{wall} +{time.monotonic() - T0:7.3f}s"


def log(event: str, detail: str = "") -> None:
    line = f"{stamp()} {NAME} {event}{' ' + detail if detail else ''}\n"
    sys.stderr.write(line)
    sys.stderr.flush()
    if LOG_FILE:
        try:
            with open(LOG_FILE, "a", encoding="utf-8") as f:
                f.write(line)
        except OSError:
            pass


class LibraryLog(logging.Handler):
    """Forward websockets' own log lines, minus per-frame chatter."""

    NOISY = ("> TEXT", "< TEXT", "> BINARY", "< BINARY", "> PING", "< PING",
             "> PONG", "< PONG", "% sent keepalive ping", "% received keepalive pong",
             "> GET", "> Host", "> Upgrade", "> Connection", "> Sec-", "> User-Agent",
             "< HTTP", "< Upgrade", "< Connection", "< Sec-", "< Date", "< Server")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
        except Exception:  # a malformed record must not kill the client
            return
        is_header = msg[:2] in ("> ", "< ") and ":" in msg[:40] and "CLOSE" not in msg
        if msg.startswith(self.NOISY) or is_header:
            return
        log("lib", f"{record.levelname.lower()}: {msg.splitlines()[0][:200]}")


def close_after_seconds() -> float:
    try:
        v = float(os.environ.get("FLATLINE_CLOSE_AFTER", ""))
    except ValueError:
        return 0.0
    return v if v > 0 else 0.0


async def main() -> int:
    url = os.environ.get("FLATLINE_URL")
    if not url:
        log("fatal", "FLATLINE_URL is not set")
        return 3
    if VARIANT == "good":
        kwargs = dict(ping_interval=1, ping_timeout=2, close_timeout=1, open_timeout=3)
    else:
        kwargs = dict(ping_interval=None)
    close_after = close_after_seconds()
    log("start", f"url={url} {' '.join(f'{k}={v}' for k, v in kwargs.items())} close_after={close_after}s")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    intentional = False
    opens = 0
    current = None

    async def close_later(ws, delay: float) -> None:
        nonlocal intentional
        await asyncio.sleep(delay)
        intentional = True
        log("close-intentional", "code=1000")
        await ws.close(1000, "done")

    async def session() -> None:
        nonlocal opens, current
        log("connecting", "async for ws in connect(...)")
        async for ws in connect(url, **kwargs):
            opens += 1
            current = ws
            log("open", f"opens={opens}")
            await ws.send(json.dumps({"type": "subscribe", "channel": "ticks"}))
            log("sent-subscribe")
            closer = None
            if close_after and opens == 1:
                closer = asyncio.create_task(close_later(ws, close_after))
            try:
                async for msg in ws:
                    text = msg if isinstance(msg, str) else "[binary]"
                    log("message", text[:120])
                log("closed", f"code={ws.close_code} reason={ws.close_reason!r} (clean)")
            except ConnectionClosed as exc:
                log("closed", f"code={ws.close_code} reason={ws.close_reason!r} error={exc}")
            finally:
                current = None
                if closer:
                    closer.cancel()
            if stop.is_set():
                return
            if intentional:
                log("no-reconnect", "closed intentionally")
                await stop.wait()
                return
            log("reconnect", "leaving the iteration; connect() reconnects")

    task = asyncio.create_task(session())
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        exc = task.exception()
        if exc:
            log("fatal", f"reconnect loop ended: {exc!r}")
            return 1
        return 0
    log("stop", "signal")
    ws = current
    if ws is not None:
        try:
            await asyncio.wait_for(ws.close(1000, "stopping"), 2)
        except Exception as exc:  # best effort on the way out
            log("stop-close-failed", repr(exc))
    task.cancel()
    log("stopped")
    return 0


if __name__ == "__main__":
    handler = LibraryLog()
    lib = logging.getLogger("websockets")
    lib.setLevel(logging.DEBUG)
    lib.addHandler(handler)
    lib.propagate = False
    sys.exit(asyncio.run(main()))
