#!/usr/bin/env bash
# scripts/run-tests.sh [STEP...]   (run by `make test` after the build; STEP names as below)
#
# Runs the test binaries that `make test` built, from the repo root, in this order:
#   unit         build/test/unit        Criterion, the core built plainly
#   unit-asan    build/test/unit-asan   the same tests, core and tests under ASan+UBSan
#   unit-tsan    build/test/unit-tsan   the same tests under TSan
#   system       build/test/system      real programs under LD_PRELOAD=build/libumalloc.so
#   hugepages    scripts/test-hugepages.sh   huge pages, prefault, mlock, um_map_file, as root
#                (sizes the hugetlb pools itself and puts them back); SKIP elsewhere, and FAIL
#                under CI=true when the kernel refuses 2 MiB pages
#   steady-state scripts/steady-state.sh   thread churn, Larson, mstress... under umalloc: peak
#                RSS after round 10 within 10 % of round 3 (memory settles, nothing leaks)
#   fuzz-replay  scripts/fuzz.sh replay   every input of test/fuzz/corpus once through
#                build/fuzz/fuzz_api (libFuzzer, the whole API against a shadow model, ASan+UBSan)
#   bench-instr  scripts/bench-instr.sh --check   (only if that script exists and is executable:
#                fails when the fast path costs more instructions than allowed)
#   install      scripts/test-install.sh   make install/uninstall into a temporary DESTDIR,
#                pkg-config, the launcher, the manual pages, make deb and lintian (dpkg -i
#                only as root with CI=true or UM_TEST_DPKG=1)
#   guest        scripts/test-guest.sh   python3 under umalloc runs out of memory and handles
#                MemoryError, in a qemu guest (scripts/vm-run.sh) with vm.overcommit_memory=2
#   numa         scripts/test-numa.sh   NUMA placement (policies, a thread that moves, migration,
#                per-node statistics) measured with libnuma in a 2-node and a 4-node qemu guest
# Every step runs even if an earlier one failed. Output goes to the terminal and, in full, to
# build/test-logs/STEP.log. A step fails if its binary is missing, if it exits non-zero, times out,
# or (Criterion steps) reports that it ran no test. A step that exits 77 is shown as SKIP, with the
# reason from its last "SKIP: ..." line, and counts as neither passed nor failed. Closes with a per-step summary and the line
# "N passed, N failed" (N counts steps); exits 1 if any step failed.
#
# Environment:
#   UM_CRITERION_FLAGS  flags for the Criterion binaries (default: --jobs 2)
#   UM_STEP_TIMEOUT     seconds one step may take before it is killed (default: 1200)
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

read -r -a crit_flags <<<"${UM_CRITERION_FLAGS:---jobs 2}"
step_timeout=${UM_STEP_TIMEOUT:-1200}
logdir=build/test-logs

all_steps=(unit unit-asan unit-tsan system hugepages steady-state fuzz-replay bench-instr install guest numa)
if (($#)); then
    for s in "$@"; do
        [[ " ${all_steps[*]} " == *" $s "* ]] || { echo "usage: $0 [${all_steps[*]}]" >&2; exit 2; }
    done
    steps=("$@")
else
    steps=("${all_steps[@]}")
fi

# bench-instr is a step only where scripts/bench-instr.sh exists and is executable.
if [[ ! -x scripts/bench-instr.sh ]]; then
    kept=()
    for s in "${steps[@]}"; do [[ $s == bench-instr ]] || kept+=("$s"); done
    if ((${#kept[@]} < ${#steps[@]})) && [[ -e scripts/bench-instr.sh ]]; then
        echo "run-tests: note: scripts/bench-instr.sh is not executable; its --check step is skipped"
    fi
    steps=("${kept[@]}")
fi

mkdir -p "$logdir" || exit 2

# Microseconds since the epoch, and a duration in microseconds as "12.3s" or "2m03.4s".
now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$((10#$t))"; }
fmt_dur() {
    local ds=$(($1 / 100000))    # tenths of a second
    if ((ds < 600)); then
        printf '%d.%ds' $((ds / 10)) $((ds % 10))
    else
        printf '%dm%02d.%ds' $((ds / 600)) $((ds % 600 / 10)) $((ds % 10))
    fi
}

# A sanitizer runtime of gcc 12 can fail to start ("unexpected memory mapping") where the kernel
# randomizes mmap with more than 28 bits; running without ASLR avoids it.
san_prefix=()
rnd_bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)
if ((rnd_bits > 28)) && setarch "$(uname -m)" -R true 2>/dev/null; then
    san_prefix=(setarch "$(uname -m)" -R)
fi

# Ctrl-C or TERM: `timeout` runs each step in its own process group, so end that group too.
pidfile=$(mktemp "${TMPDIR:-/tmp}/umalloc-run-tests.XXXXXX") || exit 2
on_signal() {
    local pid
    pid=$(cat "$pidfile" 2>/dev/null)
    [[ -n $pid ]] && kill -TERM -- "-$pid" 2>/dev/null
    rm -f "$pidfile"
    echo >&2
    echo "run-tests: interrupted" >&2
    exit 130
}
trap 'on_signal' INT TERM
trap 'rm -f "$pidfile"' EXIT

names=() results=() times=() notes=()
npass=0 nfail=0 nskip=0
t_all=$(now_us)

# run_step NAME DISPLAY-CMD BINARY [ENV=VAL...] -- CMD...
run_step() {
    local name=$1 shown=$2 bin=$3 i=${#names[@]}
    shift 3
    local -a envs=()
    while [[ $1 != -- ]]; do envs+=("$1"); shift; done
    shift
    local log=$logdir/$name.log t0 rc note synth
    echo
    echo "==== [$((i + 1))/${#steps[@]}] $name: $shown"
    t0=$(now_us)
    if [[ ! -e $bin ]]; then
        rc=127 note="missing: $bin was not built (try: make $bin)"
        echo "$note" | tee "$log"
    elif [[ ! -x $bin ]]; then
        rc=126 note="not executable: $bin"
        echo "$note" | tee "$log"
    else
        : >"$pidfile"
        (
            trap - INT QUIT
            { echo "$BASHPID" >"$pidfile"
              exec env "${envs[@]}" timeout -k 30 "$step_timeout" "$@" </dev/null 2>&1
            } | tee "$log"
            exit "${PIPESTATUS[0]}"
        ) 2>/dev/null &   # (only bash's own "Aborted ..." job notices go there; the footer says it)
        wait $!
        rc=$?
        : >"$pidfile"
        note=
        case $rc in
            0) ;;
            77) note=$(grep -a '^SKIP: ' "$log" | tail -n 1); note=${note#SKIP: }; note=${note:-exit 77} ;;
            124|137) note="timed out after ${step_timeout}s (UM_STEP_TIMEOUT)" ;;
            *) if ((rc > 128)); then note="killed by signal $((rc - 128))"; else note="exit $rc"; fi ;;
        esac
        # Criterion's closing line, e.g. "[====] Synthesis: Tested: 12 | Passing: 12 | ...".
        synth=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -a 'Synthesis: Tested:' | tail -n 1)
        synth=${synth#*Synthesis: }
        synth=${synth%"${synth##*[![:space:]]}"}
        # Known causes that the tests cannot fix, spelled out.
        if ((rc != 0)); then
            if grep -aq 'Could not initialize inheritable arena' "$log"; then
                note="$note; Criterion's sandbox could not map its arena (under TSan: Criterion issue #274)"
            elif grep -aq 'unexpected memory mapping' "$log"; then
                note="$note; sanitizer vs. ASLR (vm.mmap_rnd_bits=$rnd_bits)"
            fi
        fi
        if [[ -n $synth ]]; then
            note=${note:+$note; }$synth
            if ((rc == 0)) && [[ $synth == "Tested: 0 "* ]]; then
                rc=1 note="ran no test; $synth"
            fi
        fi
    fi
    local dt=$(($(now_us) - t0)) result=PASS
    if ((rc == 0)); then
        npass=$((npass + 1))
    elif ((rc == 77)); then
        result=SKIP nskip=$((nskip + 1))
    else
        result=FAIL nfail=$((nfail + 1))
    fi
    names+=("$name") results+=("$result") times+=("$(fmt_dur "$dt")") notes+=("$note")
    echo "---- $name: $result in $(fmt_dur "$dt")${note:+ ($note)}  [log: $log]"
}

for s in "${steps[@]}"; do
    case $s in
        unit)
            run_step unit "build/test/unit ${crit_flags[*]}" build/test/unit -- \
                build/test/unit "${crit_flags[@]}" ;;
        unit-asan)
            asan="detect_leaks=0:abort_on_error=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
            ubsan="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
            run_step unit-asan \
                "ASAN_OPTIONS=$asan UBSAN_OPTIONS=$ubsan ${san_prefix[*]}${san_prefix[*]:+ }build/test/unit-asan ${crit_flags[*]}" \
                build/test/unit-asan "ASAN_OPTIONS=$asan" "UBSAN_OPTIONS=$ubsan" -- \
                "${san_prefix[@]}" build/test/unit-asan "${crit_flags[@]}" ;;
        unit-tsan)
            tsan="halt_on_error=1:second_deadlock_stack=1:die_after_fork=0${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
            run_step unit-tsan \
                "TSAN_OPTIONS=$tsan ${san_prefix[*]}${san_prefix[*]:+ }build/test/unit-tsan ${crit_flags[*]}" \
                build/test/unit-tsan "TSAN_OPTIONS=$tsan" -- \
                "${san_prefix[@]}" build/test/unit-tsan "${crit_flags[@]}" ;;
        system)
            run_step system "build/test/system ${crit_flags[*]}" build/test/system -- \
                build/test/system "${crit_flags[@]}" ;;
        hugepages)
            run_step hugepages "scripts/test-hugepages.sh" scripts/test-hugepages.sh -- \
                scripts/test-hugepages.sh ;;
        steady-state)
            run_step steady-state "scripts/steady-state.sh" scripts/steady-state.sh -- \
                scripts/steady-state.sh ;;
        fuzz-replay)
            run_step fuzz-replay "scripts/fuzz.sh replay" build/fuzz/fuzz_api -- \
                scripts/fuzz.sh replay ;;
        bench-instr)
            run_step bench-instr "scripts/bench-instr.sh --check" scripts/bench-instr.sh -- \
                scripts/bench-instr.sh --check ;;
        install)
            run_step install "scripts/test-install.sh" scripts/test-install.sh -- \
                scripts/test-install.sh ;;
        guest)
            run_step guest "scripts/test-guest.sh" scripts/test-guest.sh -- \
                scripts/test-guest.sh ;;
        numa)
            run_step numa "scripts/test-numa.sh" scripts/test-numa.sh -- \
                scripts/test-numa.sh ;;
    esac
done

echo
echo "==== summary"
for i in "${!names[@]}"; do
    line=$(printf '  %-4s  %-11s  %8s  %s' "${results[$i]}" "${names[$i]}" "${times[$i]}" "${notes[$i]}")
    echo "${line%"${line##*[![:space:]]}"}"
    # A CI page often shows only the tail of this output: name what failed, and why, here.
    if [[ ${results[$i]} == FAIL && -f $logdir/${names[$i]}.log ]]; then
        sed 's/\x1b\[[0-9;]*m//g' "$logdir/${names[$i]}.log" |
            awk '/Assertion Failed/ { msg = 3 }
                 /^\[FAIL\]|Timed out|[Cc]rash|signal|Sanitizer|runtime error|fuzz_api: FAIL|^FAIL: / { print; next }
                 msg > 0 && /^\[----\] *[^ ]/ { print; msg--; next }' |
            head -n 12 | sed 's/^/        /'
    fi
done
echo "total: $(fmt_dur $(($(now_us) - t_all))); full logs in $logdir/"
((nskip == 0)) || echo "$nskip skipped: the SKIP lines above say why"
echo "$npass passed, $nfail failed"
((nfail == 0))
