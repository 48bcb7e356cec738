#!/usr/bin/env bash
# Installs LiteLLM's proxy (PyPI litellm[proxy]) in a venv of its own, /opt/litellm-venv, for the
# server benchmark's comparison only (tests/bench/bench_server.c reads ACCRUE_BENCH_LITELLM); never
# part of setup.sh or CI. Prints the path of the `litellm` executable to pass:
#   ACCRUE_BENCH_LITELLM=$(bash tools/bench_litellm.sh) zig build bench-server -Doptimize=ReleaseFast
set -euo pipefail
VENV=${LITELLM_VENV:-/opt/litellm-venv}
if ! "$VENV/bin/litellm" --version >/dev/null 2>&1; then
  if [ -z "${PIP_CERT:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    export PIP_CERT=/etc/ssl/certs/ca-certificates.crt
  fi
  echo "bench_litellm: installing litellm[proxy] into $VENV" >&2
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "litellm[proxy]" >&2
fi
echo "$VENV/bin/litellm"
