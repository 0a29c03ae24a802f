#!/usr/bin/env bash
# How long headless Chromium with no application heartbeat takes to fire
# `onclose` when the network dies for good, with its own kernel seeing the
# loss (`flatline run --netns`, needs root). The page sends an app message
# every SEND_EVERY_MS (default 1000; 0: idle), so its kernel has unacknowledged
# data to retransmit; net.ipv4.tcp_retries2 is set to RETRIES2 inside the
# client's namespace only (it is a per-namespace sysctl).
#   usage: bash tests/e2e/tools/measure_onclose.sh RETRIES2 [SEND_EVERY_MS]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
retries="${1:?usage: measure_onclose.sh RETRIES2 [SEND_EVERY_MS]}"
every="${2:-1000}"
bin="${FLATLINE_BIN:-$here/../../target/debug/flatline}"
work="$(mktemp -d)"
cd "$here"
FLATLINE_CLIENT_LOG="$work/client.log" FLATLINE_SEND_EVERY_MS="$every" \
  "$bin" run tools/endless-partition.yaml --netns --quiet --report "$work/report.json" \
  --client-cmd "sysctl -qw net.ipv4.tcp_retries2=$retries && exec node clients/browser.mjs bad" || true
node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const v = r.expectations[0];
const gave = r.events.find((e) => e.kind === "kernel_gave_up");
console.log(`tcp_retries2=${process.argv[2]} sendEvery=${process.argv[3]}ms: ${v.detail}`);
if (gave) console.log(`  socket table: ${gave.what} at t=${(gave.t_ms / 1000).toFixed(2)} s`);
' "$work/report.json" "$retries" "$every"
grep -E "browser-bad (close|open)" "$work/client.log" | head -3 || true
rm -rf "$work"
