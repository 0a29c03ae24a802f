#!/usr/bin/env bash
# CI entry point of the e2e suite: node run.mjs with the given arguments.
# Needs tests/e2e/install.sh to have run and a built flatline ($FLATLINE_BIN).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
exec node run.mjs "$@"
