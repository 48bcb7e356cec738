#!/usr/bin/env bash
# The whole test suite, from a fresh Debian bookworm machine (as root): installs what is missing
# (Debian packages, the pinned Zig, eth-account for the cross-check), builds, runs every test.
# The last line is "N passed, N failed, N skipped"; exit status 0 only when nothing failed.
set -euo pipefail
cd "$(dirname "$0")/.."
ACCRUE_SETUP_ETH=1 ACCRUE_SETUP_TESTS=1 bash tools/setup.sh
zig build
zig build test

