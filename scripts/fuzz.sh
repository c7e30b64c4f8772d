#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, one per untrusted input format) with clang 16 under ASan and
# UBSan, and runs each on its seed corpus fuzz/corpus/<target>/.
#
#   scripts/fuzz.sh [TARGET...]        each target for FUZZ_RUNS (default 1000000) executions, one
#                                      at a time; prints executions, time, corpus and findings per
#                                      target
#   scripts/fuzz.sh --ci [TARGET...]   each target for FUZZ_SECONDS (default 25) seconds, two at a
#                                      time (CI's 2 cores)
# Targets: those of MAGELLANO_FUZZ_TARGETS in fuzz/CMakeLists.txt (default: all).
# Exits 1 when any target finds something: a crash, a sanitizer report, an exception other than
# magellano::Error, a leak, an input slower than 25 s or one using more than 2 GB. libFuzzer
# writes the input to $FUZZ_OUT/<target>/ (default: <build>/fuzz-findings/); once fixed, copy it
# to fuzz/corpus/<target>/regress-<what> so it stays fixed. New coverage goes to
# <build>/fuzz-corpus/<target>/, never into the repository's seeds.
#
# The build tree is $SANITIZE_BUILD_DIR (default build-san), the sanitizer stage's
# (scripts/sanitize.sh, which configures it: clang 16, MAGELLANO_SANITIZE=ON, MAGELLANO_FUZZ=ON).
set -euo pipefail
cd "$(dirname "$0")/.."

ci=0
if [ "${1:-}" = "--ci" ]; then ci=1; shift; fi
read -r -a all <<<"$(sed -n '/^set(MAGELLANO_FUZZ_TARGETS/,/)/p' fuzz/CMakeLists.txt |
                     sed 's/^set(MAGELLANO_FUZZ_TARGETS//; s/).*//' | tr '\n' ' ')"
[ ${#all[@]} -gt 0 ] || { echo "fuzz: no MAGELLANO_FUZZ_TARGETS list in fuzz/CMakeLists.txt" >&2; exit 2; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [[ " ${all[*]} " == *" $t "* ]] || { echo "fuzz: unknown target '$t'; use one of: ${all[*]}" >&2; exit 2; }
done

build=${SANITIZE_BUILD_DIR:-build-san}
out=${FUZZ_OUT:-$build/fuzz-findings}

SANITIZE_BUILD_DIR=$build scripts/sanitize.sh --configure
cmake --build "$build" -j"$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}")

# The targets write each input to files in a scratch folder under $TMPDIR (fuzz/fuzz_support.hpp):
# one folder for this run, in memory where there is /dev/shm, removed at the end.
scratch_parent=/dev/shm; [ -d "$scratch_parent" ] || scratch_parent=${TMPDIR:-/tmp}
TMPDIR=$(mktemp -d "$scratch_parent/magellano-fuzz-run.XXXXXX")
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT

# Runs one target; its log goes to $out/<target>.log.
run_one() {
  local t=$1; shift
  mkdir -p "$out/$t" "$build/fuzz-corpus/$t"
  # detect_leaks: libFuzzer reports leaks itself; the seeds' folder is read, never written.
  ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
    "$build/fuzz/fuzz_$t" -timeout=25 -rss_limit_mb=2048 -artifact_prefix="$out/$t/" -print_final_stats=1 \
    "$@" "$build/fuzz-corpus/$t" "fuzz/corpus/$t" >"$out/$t.log" 2>&1
}

# One line per target: executions, seconds, edges covered, corpus (inputs/bytes), findings.
report() {
  local t=$1 rc=$2 log="$out/$1.log" runs secs cov corpus finding
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  corpus=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -1 | cut -d' ' -f2)
  finding="none"
  if [ "$rc" -ne 0 ]; then
    finding=$(grep -m1 -E '^==[0-9]+==ERROR|^SUMMARY|deadly signal|uncaught exception|ALARM|out-of-memory|runtime error' "$log" || echo "exit $rc")
  fi
  printf '%-14s %8s execs %5ss  cov %5s  corpus %12s  findings: %s\n' "$t" "${runs:-?}" "${secs:-?}" \
    "${cov:-?}" "${corpus:-?}" "$finding"
}

failed=0
if [ $ci -eq 1 ]; then
  seconds=${FUZZ_SECONDS:-25}
  echo "fuzz: each target for ${seconds} s, two at a time"
  for ((i = 0; i < ${#targets[@]}; i += 2)); do
    pids=()
    for t in "${targets[@]:i:2}"; do
      run_one "$t" -max_total_time="$seconds" & pids+=($!)
    done
    j=0
    for t in "${targets[@]:i:2}"; do
      rc=0; wait "${pids[$j]}" || rc=$?
      report "$t" "$rc"; [ "$rc" -eq 0 ] || failed=1
      j=$((j + 1))
    done
  done
else
  runs=${FUZZ_RUNS:-1000000}
  echo "fuzz: each target for ${runs} executions"
  for t in "${targets[@]}"; do
    rc=0; run_one "$t" -runs="$runs" || rc=$?
    report "$t" "$rc"; [ "$rc" -eq 0 ] || failed=1
  done
fi
if [ $failed -ne 0 ]; then
  echo "fuzz: FINDINGS; the logs and inputs are in $out/" >&2
  exit 1
fi
echo "fuzz: no findings"
