#!/usr/bin/env bash
# Runs the whole test suite under valgrind (memcheck): the Zig build with glibc malloc instead of
# jemalloc (-Dsystem-malloc=true) so memcheck sees every allocation; every test binary (but the
# corpus's driver), and every corpus script through the accrue binary, runs under valgrind. Exit
# status 0 only when all passed clean.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${ACCRUE_VALGRIND_PREFIX:-/tmp/accrue-valgrind}
# valgrind cannot run AVX-512, which the native build may use: build for x86-64-v3.
zig build -Dsystem-malloc=true -Dcpu=x86_64_v3 --prefix "$prefix" >/dev/null
# Leaks: only definite ones fail the run, and only those (and what they hold) are shown: the
# thread stacks of the process-wide threads (watchdog, Merkle pool) are "possibly lost" by design.
export ACCRUE_TEST_WRAPPER="valgrind -q --fair-sched=yes --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite,indirect"
export ACCRUE_TIME_SCALE=${ACCRUE_TIME_SCALE:-50} # tests stretch their wall-time bounds by this (tests/util.h)
# Every suite but the corpus, whose code under test is the accrue processes it starts: those run
# under memcheck below, each script once.
. tools/build_lists.sh
export ACCRUE_TESTS=${ACCRUE_TESTS:-$(zig_tests unit_tests | grep -vx corpus | paste -sd, -)}
zig build test -Dsystem-malloc=true -Dcpu=x86_64_v3

# The accrue processes the corpus starts are not under valgrind above (its timing bounds would
# not hold). Here every corpus script runs once more through the binary under memcheck, with tight
# limits; only valgrind's verdict counts (exit 99 = memory error), not the script's outcome.
bin="$prefix/bin/accrue"
export VG="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite,indirect"
fails=$(ls tests/corpus/*.lua | xargs -P 2 -I{} sh -c '
  out=$(cd /tmp && timeout 300 $VG "'"$bin"'" run "'"$PWD"'/{}" --no-demo --input x --mem-limit 16777216 \
        --instr-limit 2000000 --time-limit 3000 --output-limit 65536 2>&1 >/dev/null); rc=$?
  if [ $rc -eq 99 ] || [ $rc -ge 124 ]; then echo "valgrind: {} (exit $rc)"; echo "$out" | head -20; fi')
if [ -n "$fails" ]; then echo "$fails"; echo "corpus under valgrind: errors"; exit 1; fi
echo "corpus under valgrind: $(ls tests/corpus/*.lua | wc -l) scripts, no memcheck errors"
