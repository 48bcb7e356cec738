#!/usr/bin/env bash
# Installs what building and testing accrue needs on a Debian bookworm machine (run as root):
# the Debian -dev packages of the seven system libraries, and the pinned Zig from PyPI in a venv.
# Idempotent: a second run finds everything present and installs nothing.
set -euo pipefail

ZIG_VERSION=0.17.1          # the one place the Zig version is pinned
VYPER_VERSION=0.4.3         # the claim contract's compiler (meters/settle/contract/claim.vy)
TITANOBOA_VERSION=0.2.8     # runs that contract on py-evm in the tests (tests/settle_chain.py)
VENV=${ACCRUE_VENV:-/opt/accrue-venv}

debs=(build-essential pkg-config python3 python3-venv
      liblua5.4-dev libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libssl-dev libjemalloc-dev libsqlite3-dev
      libsecp256k1-dev libjansson-dev nettle-dev valgrind lua5.4 ca-certificates)
# The web page's test drives a real browser (tests/server/test_page.py): Debian's chromium and its
# driver, with selenium below (given the driver's path, it never fetches one of its own).
if [ "${ACCRUE_SETUP_TESTS:-0}" = 1 ]; then debs+=(chromium chromium-driver); fi
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# pip trusts its own CA bundle, not the system's; the system's also has any CA added locally
# (a proxy's), so use it when it is there.
if [ -z "${PIP_CERT:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  export PIP_CERT=/etc/ssl/certs/ca-certificates.crt
fi

# Debian's python3 refuses system-wide pip installs (PEP 668); a venv works everywhere.
if ! "$VENV/bin/python3" -m ziglang version 2>/dev/null | grep -qx "$ZIG_VERSION"; then
  echo "setup: installing ziglang==$ZIG_VERSION into $VENV" >&2
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "ziglang==$ZIG_VERSION"
fi
if [ "${ACCRUE_SETUP_ETH:-0}" = 1 ] && ! "$VENV/bin/python3" -c 'import eth_account, eth_abi' 2>/dev/null; then
  echo "setup: installing eth-account and eth-abi for the cross-check tests" >&2
  "$VENV/bin/pip" install -q eth-account eth-abi
fi
if [ "${ACCRUE_SETUP_ETH:-0}" = 1 ] && ! "$VENV/bin/python3" -c "
import importlib.metadata as m, sys
sys.exit(m.version('vyper') != '$VYPER_VERSION' or m.version('titanoboa') != '$TITANOBOA_VERSION')" 2>/dev/null; then
  echo "setup: installing vyper==$VYPER_VERSION and titanoboa==$TITANOBOA_VERSION for the claim contract's tests" >&2
  "$VENV/bin/pip" install -q "vyper==$VYPER_VERSION" "titanoboa==$TITANOBOA_VERSION"
fi

if [ "${ACCRUE_SETUP_TESTS:-0}" = 1 ] && ! "$VENV/bin/python3" -c 'import websockets, openai, requests, eth_hash.auto' 2>/dev/null; then
  echo "setup: installing websockets, openai, requests and eth-hash for the server's integration tests" >&2
  "$VENV/bin/pip" install -q websockets openai requests "eth-hash[pycryptodome]"
fi

if [ "${ACCRUE_SETUP_TESTS:-0}" = 1 ] && ! "$VENV/bin/python3" -c 'import selenium' 2>/dev/null; then
  echo "setup: installing selenium for the web page's browser test" >&2
  "$VENV/bin/pip" install -q selenium
fi

# A `zig` on PATH for everything after this.
mkdir -p /usr/local/bin
cat > /usr/local/bin/zig <<SH
#!/bin/sh
exec "$VENV/bin/python3" -m ziglang "\$@"
SH
chmod 755 /usr/local/bin/zig
