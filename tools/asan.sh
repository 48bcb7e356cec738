#!/usr/bin/env bash
# Runs the whole test suite under AddressSanitizer and UndefinedBehaviorSanitizer.
# Zig 0.17 cannot build with ASan, so this builds the same sources with Debian's gcc, with glibc
# malloc in place of jemalloc (ACCRUE_SYSTEM_MALLOC) so ASan sees every Lua allocation, and runs
# the same tests/run.sh. Leak detection is on. Exit status 0 only when every test passed clean.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/build_lists.sh
out=${ACCRUE_ASAN_DIR:-/tmp/accrue-asan}
mkdir -p "$out/obj"
flags=(-std=c11 -D_GNU_SOURCE -DACCRUE_SYSTEM_MALLOC -g -O1 -fno-omit-frame-pointer
       -fsanitize=address,undefined -fno-sanitize-recover=undefined -Wall -Wextra -Wno-unused-parameter -I.)
libs=$(pkg-config --cflags --libs lua5.4 libwebsockets sqlite3 libsecp256k1 jansson nettle)
objs=()
for src in $(core_sources); do
  obj="$out/obj/$(echo "$src" | tr / _).o"
  gcc "${flags[@]}" $(pkg-config --cflags lua5.4) -c "$src" -o "$obj"
  objs+=("$obj")
done
gcc "${flags[@]}" runtime/main.c "${objs[@]}" $libs -lpthread -o "$out/accrue"
tests=()
for t in $(zig_list unit_tests); do
  gcc "${flags[@]}" "tests/test_$t.c" "${objs[@]}" $libs -lpthread -lm -o "$out/test_$t"
  tests+=("$out/test_$t")
done
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Slower under ASan: tests that bound wall time relax those bounds when a wrapper is named.
export ACCRUE_TEST_WRAPPER=${ACCRUE_TEST_WRAPPER:-}
export ACCRUE_SANITIZED=1
bash tests/run.sh "$out/accrue" "${tests[@]}"
