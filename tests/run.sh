#!/usr/bin/env bash
# Runs every test binary given after the accrue binary, adds up their "# suite: N passed, N failed"
# lines and closes with the total. Exit status 0 only when every suite ran and nothing failed.
# ACCRUE_TEST_WRAPPER (e.g. "valgrind --error-exitcode=99 -q") runs each test binary under a tool.
# ACCRUE_TESTS=base,sandbox runs only the suites named (test_NAME), for a quicker loop while working.
set -u
accrue=$1; shift
export ACCRUE_BIN="$accrue"
passed=0; failed=0; status=0
for t in "$@"; do
  if [ -n "${ACCRUE_TESTS:-}" ]; then
    case ",$ACCRUE_TESTS," in *",$(basename "$t" | sed 's/^test_//'),"*) ;; *) continue ;; esac
  fi
  out=$(${ACCRUE_TEST_WRAPPER:-} "$t" 2> >(cat >&2)); rc=$?
  printf '%s\n' "$out"
  line=$(printf '%s\n' "$out" | grep -E '^# [A-Za-z0-9_-]+: [0-9]+ passed, [0-9]+ failed' | tail -n 1)
  if [ -z "$line" ]; then
    echo "# $(basename "$t"): crashed or printed no summary (exit $rc)"
    failed=$((failed + 1)); status=1; continue
  fi
  p=$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")
  f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); echo "# $(basename "$t"): exit $rc"; fi
  [ "$rc" -ne 0 ] && status=1
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] || status=1
exit $status
