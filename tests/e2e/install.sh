#!/usr/bin/env bash
# Idempotent install of everything the e2e suite needs on a fresh Debian
# machine, as root: Debian's chromium, the pinned npm packages (never a
# browser download) and a Python venv with the pinned `websockets`,
# Toxiproxy's Python client and pytest.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if [ ! -x /usr/bin/chromium ]; then
  echo "install.sh: installing Debian chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y chromium
fi

export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
# npm ci wipes node_modules; skip it when the tree was installed from this lock.
lock_sum="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ "$(cat node_modules/.e2e-lock-sha256 2>/dev/null || true)" != "$lock_sum" ]; then
  echo "install.sh: npm ci" >&2
  npm ci --no-audit --no-fund
  echo "$lock_sum" > node_modules/.e2e-lock-sha256
fi

if [ ! -x .venv/bin/python ]; then
  echo "install.sh: creating .venv" >&2
  python3 -m venv .venv
fi
# pip install again only when requirements.txt changed since the last install.
req_sum="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ "$(cat .venv/.e2e-requirements-sha256 2>/dev/null || true)" != "$req_sum" ]; then
  echo "install.sh: pip install -r requirements.txt" >&2
  .venv/bin/pip install --disable-pip-version-check -q -r requirements.txt
  echo "$req_sum" > .venv/.e2e-requirements-sha256
fi
echo "install.sh: ok (chromium: $(/usr/bin/chromium --version 2>/dev/null || echo missing))" >&2
