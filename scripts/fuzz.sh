#!/usr/bin/env bash
# scripts/fuzz.sh run|merge|replay   (run by `make fuzz`, `make fuzz-merge`, and run-tests.sh)
#
# Drives build/fuzz/fuzz_api (test/fuzz/fuzz_api.c: the whole um_* API against a shadow model,
# libFuzzer, ASan + UBSan):
#   run     fuzz for FUZZ_SECONDS (default 600) over build/fuzz/corpus, which is seeded from the
#           checked-in test/fuzz/corpus first; crash inputs go to build/fuzz/artifacts/. Ends
#           with a summary: executions per second, edges covered (cov:), features (ft:),
#           corpus size. Exit status: the fuzzer's (non-zero on a finding).
#   merge   rebuild test/fuzz/corpus as the smallest set of inputs, from it and from
#           build/fuzz/corpus, that covers all they cover (libFuzzer -merge=1). Inputs named
#           crash-* are regression inputs for bugs found: always kept.
#   replay  run every input of test/fuzz/corpus once (the `fuzz-replay` step of make test);
#           fails on any finding.
# Environment: FUZZ_SECONDS, FUZZ_JOBS (run: parallel fuzzing processes, default 1),
# FUZZ_FLAGS (more libFuzzer flags, e.g. "-seed=1").
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

mode=${1:-}
bin=build/fuzz/fuzz_api
seeds=test/fuzz/corpus
work=build/fuzz/corpus
artifacts=build/fuzz/artifacts
log=build/fuzz/fuzz.log
# Inputs are programs of ~4 bytes an operation: 4 KiB is up to a thousand calls.
max_len=4096
read -r -a extra <<<"${FUZZ_FLAGS:-}"

case "$mode" in run|merge|replay) ;; *) echo "usage: $0 run|merge|replay" >&2; exit 2 ;; esac
if [[ ! -x $bin ]]; then
    echo "fuzz: $bin is missing (make $bin)" >&2
    exit 2
fi

# The harness stops itself on a model failure (abort) and UBSan is built not to recover; leaks
# are not looked for: umalloc's blocks are not ASan's, and the harness allocates none.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
# As in run-tests.sh: a sanitizer runtime can fail to start where the kernel randomizes mmap
# with more than 28 bits; running without ASLR avoids it.
prefix=()
rnd_bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)
if ((rnd_bits > 28)) && setarch "$(uname -m)" -R true 2>/dev/null; then
    prefix=(setarch "$(uname -m)" -R)
fi
# libFuzzer's exit code for a finding is 77 unless told otherwise, which the test runner (and
# automake) read as "skipped": a finding must fail.
common=(-max_len=$max_len -timeout=60 -rss_limit_mb=4096 -detect_leaks=0 -error_exitcode=1)

case "$mode" in
replay)
    shopt -s nullglob
    files=("$seeds"/*)
    if ((${#files[@]} == 0)); then
        echo "fuzz: no input in $seeds" >&2
        exit 1
    fi
    # -runs=0 on a directory: every input once, then the closing coverage line, no fuzzing.
    mkdir -p "$artifacts"
    "${prefix[@]}" "$bin" "${common[@]}" -runs=0 -artifact_prefix="$artifacts/" "${extra[@]}" "$seeds" 2>&1 |
        grep -a -v -E '^#[0-9]+[[:space:]]+pulse' # (progress lines; the rest, findings included, shows)
    rc=${PIPESTATUS[0]}
    if ((rc == 0)); then
        echo "fuzz: replayed ${#files[@]} inputs of $seeds: no finding"
    else
        echo "fuzz: replaying $seeds failed (exit $rc)"
    fi
    exit "$rc"
    ;;
merge)
    new=$(mktemp -d build/fuzz/merge.XXXXXX) || exit 2
    mkdir -p "$work"
    # -use_counters=0: an input is kept for the edges it reaches first, not for how often it
    # takes them (hit-count buckets would keep three times as many, and replay is in make test).
    "${prefix[@]}" "$bin" "${common[@]}" -merge=1 -use_counters=0 "${extra[@]}" "$new" "$seeds" "$work" 2>&1 |
        grep -a -E 'MERGE-OUTER: [0-9]+ new files|ERROR|SUMMARY'
    rc=${PIPESTATUS[0]}
    if ((rc != 0)); then
        echo "fuzz: merge failed (exit $rc); $seeds left as it was" >&2
        rm -rf "$new"
        exit "$rc"
    fi
    cp -p "$seeds"/crash-* "$new"/ 2>/dev/null
    before=$(find "$seeds" -type f | wc -l)
    mkdir -p "$seeds"
    find "$seeds" -type f -delete
    cp -p "$new"/* "$seeds"/
    rm -rf "$new"
    echo "fuzz: $seeds: $before -> $(find "$seeds" -type f | wc -l) inputs, $(cat "$seeds"/* | wc -c) bytes"
    exit 0
    ;;
esac

# run
seconds=${FUZZ_SECONDS:-600}
jobs=${FUZZ_JOBS:-1}
mkdir -p "$work" "$artifacts"
cp -n "$seeds"/* "$work"/ 2>/dev/null
echo "fuzz: $bin for ${seconds}s over $work ($(find "$work" -type f | wc -l) inputs), crashes to $artifacts/"
par=()
((jobs > 1)) && par=(-fork="$jobs")
"${prefix[@]}" "$bin" "${common[@]}" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "${par[@]}" "${extra[@]}" "$work" >"$log" 2>&1 &
pid=$!
# The fuzzer's own status lines, every 30 s or so, rather than all of them.
last=0
while kill -0 "$pid" 2>/dev/null; do
    sleep 5
    now=$SECONDS
    if ((now - last >= 30)); then
        last=$now
        line=$(grep -a -E '^#[0-9]+' "$log" | tail -n 1)
        [[ -n $line ]] && echo "  $line"
    fi
done
wait "$pid"
rc=$?
final=$(grep -a -E '^#[0-9]+.*cov: ' "$log" | tail -n 1)
cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$final")
ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$final")
eps=$(grep -a 'stat::average_exec_per_sec' "$log" | tail -n 1 | awk '{print $2}')
runs=$(grep -a 'stat::number_of_executed_units' "$log" | tail -n 1 | awk '{print $2}')
if [[ -z $eps && $final =~ exec/s:\ ([0-9]+) ]]; then eps=${BASH_REMATCH[1]}; fi
echo "fuzz: ${seconds}s, ${runs:-?} executions, ${eps:-?} exec/s, cov: ${cov:-?} ft: ${ft:-?}," \
     "corpus $(find "$work" -type f | wc -l) inputs; full log: $log"
if ((rc != 0)); then
    grep -a -E 'FAIL:|ERROR:|SUMMARY:|runtime error|Test unit written' "$log" | head -n 12
    echo "fuzz: FINDING (exit $rc): see $log and $artifacts/"
else
    echo "fuzz: no finding. New inputs: make fuzz-merge (keeps $seeds minimal)"
fi
exit "$rc"
