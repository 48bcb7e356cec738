#!/usr/bin/env bash
# Runs every test binary given after the accrue binary, each under a time limit, adds up their
# "# SUITE: N passed, N failed, N skipped" lines (tests/check.h) and closes with the slowest suites
# and tests and the total, "N passed, N failed, N skipped". Exit status 0 only when every suite ran
# to its summary and nothing failed.
#
# Environment:
#   ACCRUE_TESTS=base,sandbox   only the suites named (test_NAME), for a quicker loop while working
#   ACCRUE_TEST_FILTER=a,b,-c   only the tests whose name contains a or b, not c (tests/check.h)
#   ACCRUE_TEST_VERBOSE=1       every test's "ok NAME (ms)" line too, not only what is not ok
#   ACCRUE_SUITE_TIMEOUT=S      a suite is stopped after S seconds (default 300), times the scale
#   ACCRUE_TIME_SCALE=N         how much slower the tool in use runs (tools/sanitize.sh and
#                               tools/valgrind.sh set it; tests/util.h's test_time_scale reads it)
#   ACCRUE_TEST_WRAPPER=CMD     runs each test binary under CMD (valgrind), nothing more
set -u
accrue=$1; shift
export ACCRUE_BIN="$accrue"
scale=${ACCRUE_TIME_SCALE:-1}
if ! awk -v s="$scale" 'BEGIN { exit !(s ~ /^[0-9]+(\.[0-9]+)?$/ && s >= 1 && s <= 1000) }'; then
  echo "# ACCRUE_TIME_SCALE='$scale' is not a number from 1 to 1000; using 1"; scale=1
fi
limit=$(awk -v t="${ACCRUE_SUITE_TIMEOUT:-300}" -v s="$scale" 'BEGIN { v = t * s; print (v >= 1 ? int(v) : 1) }')
log=$(mktemp "${TMPDIR:-/tmp}/accrue-run-XXXXXX")
trap 'rm -f "$log"' EXIT
summary_re='^# ([A-Za-z0-9_-]+): ([0-9]+) passed, ([0-9]+) failed(, ([0-9]+) skipped)?$'
passed=0; failed=0; skipped=0; status=0
suite_times=""; test_times=""
for t in "$@"; do
  name=$(basename "$t"); name=${name#test_}
  if [ -n "${ACCRUE_TESTS:-}" ]; then
    case ",$ACCRUE_TESTS," in *",$name,"*) ;; *) continue ;; esac
  fi
  start=$EPOCHREALTIME
  # Its own process group (timeout's default), killed whole; stdout and stderr in one file, in order.
  # Stopping run.sh stops the suite too (timeout passes the signal on).
  timeout --kill-after=10 "$limit" ${ACCRUE_TEST_WRAPPER:-} "$t" >"$log" 2>&1 </dev/null &
  suite=$!
  trap 'kill -TERM $suite 2>/dev/null; exit 143' TERM INT HUP
  wait $suite; rc=$?
  trap - TERM INT HUP
  secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  suite_times+="$secs $name"$'\n'
  line=""
  while IFS= read -r l || [ -n "$l" ]; do
    if [[ $l =~ ^(not\ )?ok\ (.*)\ \(([0-9.]+)\ ms\)$ ]]; then
      test_times+="${BASH_REMATCH[3]} $name/${BASH_REMATCH[2]}"$'\n'
      [ -z "${BASH_REMATCH[1]}" ] && [ -z "${ACCRUE_TEST_VERBOSE:-}" ] && continue
    fi
    if [[ $l =~ $summary_re ]]; then line=$l; printf '%s (%s s)\n' "$l" "$secs"; continue; fi
    printf '%s\n' "$l"
  done <"$log"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "# $name: timed out after $limit s (ACCRUE_SUITE_TIMEOUT, times ACCRUE_TIME_SCALE)"
    failed=$((failed + 1)); status=1; continue
  fi
  if [ -z "$line" ]; then
    echo "# $name: crashed or printed no summary (exit $rc)"
    failed=$((failed + 1)); status=1; continue
  fi
  [[ $line =~ $summary_re ]]
  p=${BASH_REMATCH[2]}; f=${BASH_REMATCH[3]}; s=${BASH_REMATCH[5]:-0}
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); echo "# $name: exit $rc"; fi
  [ "$rc" -ne 0 ] && status=1
done
slowest() { printf '%s' "$1" | sort -rn | head -n "$2" | awk -v u="$3" '{ printf "%s%s %s %s", (NR > 1 ? ", " : ""), $2, $1, u }'; }
[ -n "$suite_times" ] && echo "# slowest suites: $(slowest "$suite_times" 3 s)"
[ -n "$test_times" ] && echo "# slowest tests: $(slowest "$test_times" 5 ms)"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] || status=1
exit $status
