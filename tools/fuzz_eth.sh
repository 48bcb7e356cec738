#!/usr/bin/env bash
# Fuzzes the EIP-712 typed-data parser and the Merkle VALUES.json parser under AddressSanitizer and
# UndefinedBehaviorSanitizer (Zig's toolchain cannot do ASan, so this uses Debian's gcc). Builds
# tests/fuzz/fuzz_eth.c against the meters sources and the system libraries and runs a fixed number
# of iterations from a fixed seed; exit status non-zero on any sanitizer report.
# usage: tools/fuzz_eth.sh [ITERATIONS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${TMPDIR:-/tmp}/accrue-fuzz-eth
iters=${1:-400000}
seed=${2:-0x5eed1234abcd}
. tools/build_lists.sh # the eth module's sources and those of base, under it, from build.zig
gcc -std=c11 -D_GNU_SOURCE -DACCRUE_DEBUG -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
    -fno-sanitize-recover=undefined -Wall -Wextra -Wno-unused-parameter -I. \
    tests/fuzz/fuzz_eth.c $(zig_list eth_sources) $(zig_list base_sources) \
    $(pkg-config --cflags --libs nettle libsecp256k1 jansson) -lpthread -o "$out"
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
start=$(date +%s)
"$out" "$iters" "$seed"
echo "fuzz_eth.sh: done in $(( $(date +%s) - start )) s"
