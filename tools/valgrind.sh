#!/usr/bin/env bash
# Runs the whole test suite under valgrind (memcheck): the Zig build with glibc malloc instead of
# jemalloc (-Dsystem-malloc=true) so memcheck sees every allocation; every test binary, and every
# accrue process the corpus starts, runs under valgrind. Exit status 0 only when all passed clean.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${ACCRUE_VALGRIND_PREFIX:-/tmp/accrue-valgrind}
# valgrind cannot run AVX-512, which the native build may use: build for x86-64-v3.
zig build -Dsystem-malloc=true -Dcpu=x86_64_v3 --prefix "$prefix" >/dev/null
export ACCRUE_TEST_WRAPPER="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"
zig build test -Dsystem-malloc=true -Dcpu=x86_64_v3
