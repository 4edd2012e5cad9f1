#!/usr/bin/env bash
# scripts/steady-state.sh [PATTERN...]: does umalloc's memory use settle, or grow round after round?
#
# Runs each workload pattern that has rounds and prints its peak RSS so far (VmHWM) after each
# one (rss=1, see bench/common.h) under LD_PRELOAD=build/libumalloc.so, long enough for 12
# rounds, and requires the peak after round 10 to be within 10 % of the peak after round 3
# (rounds 1-2 are the warm-up, while caches and pools fill). The peak, not the RSS of the
# moment: a leak raises it round after round, while the ups and downs of a steady state raise it
# only until the highest of them. A pattern over the tolerance runs once more and must pass then:
# threadchurn's whole process is about 2 MiB, and on a loaded machine its peak moves by a few
# hundred KiB (glibc's too) when more of its threads overlap; growth by a leak repeats. Prints a
# table, exits 1 if any pattern fails (or a run fails).
#
# Patterns: threadchurn-1by1, threadchurn-batch8 (a thread per request), larson (thread
# replacement), larson-sized (the same with sized frees), mstress (threads replaced every round,
# blocks passed between threads), alloc-test (a fixed pool of random slots), rptest (blocks freed
# by the next thread of a ring), steady (a full pool whose blocks are replaced at random: its
# pages stay all but full, and memory must not creep up as freed blocks wait in them). Give names
# to run only those. A round is one batch of threads for threadchurn, one generation of threads
# for larson and mstress, and a fixed number of steps of thread 0 for alloc-test, rptest and
# steady.
#
# Environment:
#   UMALLOC_LIB=path  the library to preload (default build/libumalloc.so); UMALLOC_LIB=none runs
#                     under glibc's malloc (no preload), for comparison; any other allocator's
#                     .so works too
#   STEADY_TOL=N      the tolerance in percent (default 10)
#   VERBOSE=1         also print every round's RSS
# About 10 s under glibc or umalloc on the 2-core machine.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
BIN=build/bench/bin
LIB=${UMALLOC_LIB:-$ROOT/build/libumalloc.so}
TOL=${STEADY_TOL:-10}
FIRST=3
LAST=10

# name | program and arguments (12 rounds each) | CPUs to run it on (taskset; empty: all).
# larson keeps 10000 blocks per thread (about 10 MiB live), so that the process's own couple of
# MiB and page-sized noise do not decide. mstress's rounds are 400000 steps a thread (about
# 40 ms): its peak rises while a few dozen big blocks scatter over the pages, which takes a few
# million steps whatever the allocator, and round 3 must come after that, not during it (with
# rounds a quarter as long, glibc's own peak after round 10 was 6-21 % above round 3's).
# rptest runs on one CPU. Its blocks in use are the batches queued in the ring, and how many
# queue up depends on how the threads share the CPUs: run side by side they hand batches over as
# they come (a few in flight), while a thread that waits for a CPU lets the other fill its queue
# (up to 16 batches). On two CPUs a run switches between the two whenever the machine's load
# changes, and a switch after round 3 doubles the blocks in use, which reads as growth (a CPU hog
# beside it: 1.33 once in 8 runs, for any allocator that keeps size classes apart). On one CPU
# every thread runs until its queue is full, in every round: the ring is as deep as it gets, the
# most memory the pattern can ask for, and the run does not depend on the machine's load.
PATTERNS='
threadchurn-1by1|threadchurn threads=24000 batch=1 report=2000
threadchurn-batch8|threadchurn threads=12000 batch=8 report=1000
larson|larson threads=2 rounds=12 ops=2000000 slots=10000
larson-sized|larson threads=2 rounds=12 ops=2000000 slots=10000 sized=1
mstress|mstress threads=2 rounds=12 iters=400000
alloc-test|alloc-test threads=1 iters=6000000 report=500000
rptest|rptest threads=2 iters=24000 report=1000|0
steady|steady threads=1 slots=30000 iters=2400000 report=200000 min=32 max=512
'

if [ "$LIB" = none ]; then
    label="glibc (no preload)"
    preload=
else
    [ -f "$LIB" ] || { echo "steady-state: $LIB not found (run make, or set UMALLOC_LIB)" >&2; exit 1; }
    label=$LIB
    preload=$LIB
fi
make -s -f bench/bench.mk || { echo "steady-state: building the workloads failed" >&2; exit 1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Runs the pattern (name, args, out, err set) and prints its line; sets r1, r2, ratio, verdict
# (PASS, FAIL, or ERROR when the run itself failed).
run_pattern() {
    local t0 rc secs
    t0=$(date +%s%N)
    local pin=()
    [ -z "$cpus" ] || pin=(taskset -c "$cpus")
    if [ -n "$preload" ]; then
        LD_PRELOAD=$preload timeout 120 "${pin[@]}" "$BIN/${args[0]}" "${args[@]:1}" rss=1 >"$out" 2>"$err"
    else
        timeout 120 "${pin[@]}" "$BIN/${args[0]}" "${args[@]:1}" rss=1 >"$out" 2>"$err"
    fi
    rc=$?
    secs=$(( ($(date +%s%N) - t0) / 1000000 ))
    r1=$(awk -v n=$FIRST '$1 == "round" && $2 == n {sub("peak_kb=", "", $4); print $4}' "$err")
    r2=$(awk -v n=$LAST '$1 == "round" && $2 == n {sub("peak_kb=", "", $4); print $4}' "$err")
    if [ $rc != 0 ] || ! grep -q ' ok checksum=' "$out" || [ -z "$r1" ] || [ -z "$r2" ]; then
        printf '%-20s %14s %14s %7s  %s\n' "$name" "${r1:--}" "${r2:--}" - "FAIL (run failed: exit $rc)"
        grep -v '^round ' "$err" | tail -5 | sed 's/^/    | /'
        verdict=ERROR
        return
    fi
    read -r ratio verdict < <(awk -v a="$r1" -v b="$r2" -v t="$TOL" 'BEGIN {
        r = b / a; d = r - 1; if (d < 0) d = -d
        printf "%.3f %s\n", r, (d * 100 <= t ? "PASS" : "FAIL") }')
    printf '%-20s %14s %14s %7s  %s\n' "$name" "$r1" "$r2" "$ratio" "$verdict ($((secs / 1000)).$(printf '%03d' $((secs % 1000))) s)"
}

echo "steady-state: peak RSS after round $LAST vs round $FIRST, tolerance ${TOL} %, allocator: $label"
printf '%-20s %14s %14s %7s  %s\n' pattern "round-$FIRST KiB" "round-$LAST KiB" ratio result
status=0
ran=0
command -v taskset >/dev/null || { echo "steady-state: taskset not found (util-linux)" >&2; exit 1; }
while IFS='|' read -r name cmd cpus; do
    [ -n "$name" ] || continue
    if [ $# -gt 0 ]; then
        want=0
        for p in "$@"; do [ "$p" = "$name" ] && want=1; done
        [ $want = 1 ] || continue
    fi
    ran=$((ran + 1))
    # shellcheck disable=SC2206
    args=($cmd)
    out=$TMP/$name.out
    err=$TMP/$name.err
    for try in 1 2; do
        run_pattern
        [ "$verdict" = FAIL ] && [ $try = 1 ] || break
        echo "    over the tolerance: once more (a busy machine moves a small process's RSS; a leak fails twice)"
    done
    [ "$verdict" = PASS ] || status=1
    if [ "${VERBOSE:-0}" = 1 ]; then
        awk '$1 == "round" {sub("peak_kb=", "", $4); printf "%s%s", sep, $4; sep = " "} END {print ""}' "$err" |
            sed 's/^/    peak_kb by round: /'
    fi
done <<<"$PATTERNS"
[ $ran -gt 0 ] || { echo "steady-state: no pattern named $*" >&2; exit 2; }
[ $status = 0 ] && echo "steady-state: all PASS" || echo "steady-state: FAIL"
exit $status
