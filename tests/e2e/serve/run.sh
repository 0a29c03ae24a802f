#!/usr/bin/env bash
# End-to-end tests of `flatline serve`: the published Toxiproxy clients
# (toxiproxy-node-client, toxiproxy-python) and the native API from Node
# (node:test) and Python (pytest), against one `flatline serve` on
# 127.0.0.1:$SERVE_PORT (default 8474, Toxiproxy's port) and the suite's
# echo server. Needs tests/e2e/install.sh and a built flatline
# ($FLATLINE_BIN, default target/debug/flatline). Ends by stopping serve with
# SIGTERM and checking it exits 0 and leaves no listener.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
e2e="$(dirname "$here")"
root="$(cd "$e2e/../.." && pwd)"
bin="${FLATLINE_BIN:-$root/target/debug/flatline}"
port="${SERVE_PORT:-8474}"
echo_port="${SERVE_ECHO_PORT:-9474}"
out="$(mktemp -d)"
cd "$e2e"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# Wait (bounded) until something accepts TCP on 127.0.0.1:$1.
wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "serve e2e: nothing listens on 127.0.0.1:$1" >&2
  return 1
}

node tools/echo_server.mjs "$echo_port" 2>"$out/echo.log" &
pids+=($!)
"$bin" serve --listen "127.0.0.1:$port" 2>"$out/serve.log" &
serve_pid=$!
pids+=($serve_pid)
wait_port "$echo_port"
wait_port "$port"

export FLATLINE_SERVE="http://127.0.0.1:$port" ECHO_URL="ws://127.0.0.1:$echo_port"
status=0
echo "=== node --test (toxiproxy-node-client, native API)"
node --test --test-reporter=spec serve/toxiproxy.test.mjs serve/native.test.mjs || status=1
echo "=== pytest (toxiproxy-python, native API)"
.venv/bin/python -m pytest -q -s -p no:cacheprovider serve/test_serve.py || status=1

echo "=== SIGTERM: every session closed, no listener left"
kill -TERM "$serve_pid"
if ! wait "$serve_pid"; then echo "serve e2e: flatline serve did not exit 0" >&2; status=1; fi
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "serve e2e: something still listens on $port" >&2; status=1
fi
if [ "$status" -ne 0 ]; then
  echo "--- flatline serve's output"; cat "$out/serve.log"
fi
rm -rf "$out"
[ "$status" -eq 0 ] && echo "serve e2e: all passed" || echo "serve e2e: FAILED"
exit "$status"
