#!/usr/bin/env bash
# sanitize.sh asan|tsan: the whole test suite built with Debian's gcc under a sanitizer, and run by
# the same tests/run.sh. Zig 0.17 cannot build with the sanitizers, so this compiles the same
# sources (the lists come from build.zig) with glibc malloc in place of jemalloc
# (ACCRUE_SYSTEM_MALLOC), so the sanitizer sees every Lua allocation, and with the Debug build's
# invariants on (ACCRUE_DEBUG). Exit status 0 only when every test passed clean.
#   asan: AddressSanitizer + UndefinedBehaviorSanitizer, leak detection on.
#   tsan: ThreadSanitizer (the watchdog, cancel from other threads, the Merkle workers, the ledger's
#         writer): any data race fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/build_lists.sh
kind=${1:?usage: tools/sanitize.sh asan|tsan}
extra=() # linked into every binary
case "$kind" in
  asan) san=(-fsanitize=address,undefined -fno-sanitize-recover=undefined)
        export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
        export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} ;;
  tsan) san=(-fsanitize=thread)
        export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:allocator_may_return_null=1}
        extra=(tools/tsan_longjmp.c -Wl,--export-dynamic-symbol=__longjmp_chk) ;; # see that file
  *) echo "sanitize.sh: unknown sanitizer '$kind' (asan or tsan)" >&2; exit 2 ;;
esac
out=${ACCRUE_SANITIZE_DIR:-/tmp/accrue-$kind}
mkdir -p "$out/obj"
flags=(-std=c11 -D_GNU_SOURCE -DACCRUE_SYSTEM_MALLOC -DACCRUE_DEBUG -g -O1 -fno-omit-frame-pointer
       "${san[@]}" -Wall -Wextra -Wno-unused-parameter -I.)
libs=$(pkg-config --cflags --libs lua5.4 libwebsockets libuv openssl sqlite3 libsecp256k1 jansson nettle)
objs=()
for src in $(core_sources); do
  obj="$out/obj/$(echo "$src" | tr / _).o"
  gcc "${flags[@]}" $(pkg-config --cflags lua5.4) -c "$src" -o "$obj"
  objs+=("$obj")
done
# The demo registry's files, built into the binary as C arrays (build.zig does the same).
gcc -O1 tools/embed.c -o "$out/embed"
embedded=()
for f in $(zig_list demo_files); do embedded+=("$f=$f"); done
"$out/embed" "$out/demo_files.c" rt_demo_files "${embedded[@]}"
gcc "${flags[@]}" -c "$out/demo_files.c" -o "$out/obj/demo_files.o"
objs+=("$out/obj/demo_files.o")
# Laid out as installed (bin/, share/accrue/web), so that accrue serve finds its web page.
mkdir -p "$out/bin" "$out/share/accrue"
ln -sfn "$PWD/runtime/web" "$out/share/accrue/web"
gcc "${flags[@]}" runtime/main.c "${objs[@]}" "${extra[@]}" $libs -lpthread -lm -o "$out/bin/accrue"
tests=()
for t in $(zig_tests unit_tests); do
  gcc "${flags[@]}" "tests/test_$t.c" "${objs[@]}" "${extra[@]}" $libs -lpthread -lm -o "$out/test_$t"
  tests+=("$out/test_$t")
done
# Slower under a sanitizer: tests that bound wall time stretch them by this (tests/util.h). Under
# TSan, allocation-heavy Lua runs ~55x slower than the Debug build (mem_gc_churn_ok: 0.14 s, 7.9 s).
case "$kind" in
  asan) export ACCRUE_TIME_SCALE=${ACCRUE_TIME_SCALE:-5} ;;
  tsan) export ACCRUE_TIME_SCALE=${ACCRUE_TIME_SCALE:-20} ;;
esac
bash tests/run.sh "$out/bin/accrue" "${tests[@]}"
