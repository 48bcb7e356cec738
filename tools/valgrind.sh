#!/usr/bin/env bash
# Runs the whole test suite under valgrind (memcheck): the Zig build with glibc malloc instead of
# jemalloc (-Dsystem-malloc=true) so memcheck sees every allocation; every test binary, and every
# accrue process the corpus starts, runs under valgrind. Exit status 0 only when all passed clean.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${ACCRUE_VALGRIND_PREFIX:-/tmp/accrue-valgrind}
zig build -Dsystem-malloc=true --prefix "$prefix" >/dev/null
export ACCRUE_TEST_WRAPPER="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"
export ACCRUE_BIN_WRAPPER="$ACCRUE_TEST_WRAPPER"
. tools/build_lists.sh
zig build test -Dsystem-malloc=true
